"""Real PostgreSQL 15 and PgBouncer 1.18 (transaction mode, SCRAM) for tests and the demo.

``PostgresServer`` runs initdb + postgres on a random port in a fresh directory;
``PgBouncer`` runs in front of it in transaction pool mode with ``auth_type =
scram-sha-256`` and an ``auth_file`` holding the SCRAM secrets read from ``pg_authid``.
Neither may run as root, so when the tests run as root both run as the ``postgres`` OS user
(``runuser -u postgres --``) in directories that user owns. Both are plain classes usable
outside pytest; the ``postgres_stack`` fixture (session-scoped: initdb costs seconds) starts
one of each, and tests create their own databases with ``create_database``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.ports import free_port, wait_for_port
from tests.support.processes import terminate

PG_BIN = Path(os.environ.get("PYNOMALY_PG_BIN", "/usr/lib/postgresql/15/bin"))
PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
RUN_AS = "postgres"


def _as_service_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", RUN_AS, "--", *command] if os.geteuid() == 0 else command


def _own(path: Path) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam(RUN_AS)
        os.chown(path, entry.pw_uid, entry.pw_gid)


class PostgresServer:
    """A throw-away PostgreSQL cluster on 127.0.0.1 with SCRAM password auth."""

    def __init__(
        self,
        *,
        port: int | None = None,
        password: str = "postgres-test-password",  # noqa: S107 - a throw-away test cluster
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.superuser = "postgres"
        self.password = password
        self.base = Path(tempfile.mkdtemp(prefix="pynomaly-pg-"))
        self.data = self.base / "data"
        self.process_started = False

    def _run(self, command: list[str], *, input_text: str | None = None) -> str:
        result = subprocess.run(
            _as_service_user(command),
            input=input_text,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            env={**os.environ, "PGPASSWORD": self.password, "LC_ALL": "C.UTF-8"},
            cwd=self.base,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {result.stderr.strip()}")
        return result.stdout

    def start(self) -> PostgresServer:
        """initdb (first time), configure, start and wait until it accepts connections."""
        _own(self.base)
        if not self.data.exists():
            pwfile = self.base / "pwfile"
            pwfile.write_text(self.password + "\n")
            _own(pwfile)
            self._run(
                [
                    str(PG_BIN / "initdb"), "-D", str(self.data), "-U", self.superuser,
                    "--auth=scram-sha-256", f"--pwfile={pwfile}", "--encoding=UTF8",
                    "--no-sync",
                ]
            )  # fmt: skip
            pwfile.unlink()
            with (self.data / "postgresql.conf").open("a") as conf:
                conf.write(
                    f"listen_addresses = '{self.host}'\nport = {self.port}\n"
                    f"unix_socket_directories = '{self.base}'\n"
                    "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                    "max_connections = 100\nshared_buffers = 32MB\n"
                    "password_encryption = 'scram-sha-256'\n"
                )
        self._run(
            [
                str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.base / "postgres.log"),
                "-w", "-t", "60", "start",
            ]
        )  # fmt: skip
        self.process_started = True
        return self

    def stop(self) -> None:
        """Fast shutdown."""
        if self.process_started:
            self._run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])
            self.process_started = False

    def cleanup(self) -> None:
        """Stop and remove the cluster."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def psql(self, sql: str, *, database: str = "postgres") -> str:
        """Run ``sql`` as the superuser; tuples-only, unaligned output."""
        return self._run(
            [
                str(PG_BIN / "psql"), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
                "-h", self.host, "-p", str(self.port), "-U", self.superuser, "-d", database,
                "-c", sql,
            ]
        )  # fmt: skip

    def create_role(self, name: str, password: str) -> None:
        """A login role with a SCRAM password (ignored if it exists)."""
        quoted = password.replace("'", "''")
        self.psql(
            f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}') THEN "
            f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{quoted}'; END IF; END $$;"
        )

    def create_database(self, name: str, *, owner: str) -> None:
        """A database owned by ``owner``."""
        self.psql(f'CREATE DATABASE "{name}" OWNER "{owner}"')

    def scram_secret(self, role: str) -> str:
        """The role's SCRAM secret from ``pg_authid`` (what PgBouncer's auth_file holds)."""
        query = f"SELECT rolpassword FROM pg_authid WHERE rolname = '{role}'"  # noqa: S608 - test role
        return self.psql(query).strip()

    def dsn(self, user: str, database: str) -> str:
        """A password-less DSN straight to Postgres."""
        return f"postgresql://{user}@{self.host}:{self.port}/{database}"


class PgBouncer:
    """PgBouncer in front of ``postgres`` (transaction mode, SCRAM auth_file)."""

    def __init__(
        self,
        postgres: PostgresServer,
        *,
        users: list[str],
        port: int | None = None,
        pool_mode: str = "transaction",
        default_pool_size: int = 20,
    ) -> None:
        self.postgres = postgres
        self.users = users
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.pool_mode = pool_mode
        self.default_pool_size = default_pool_size
        self.base = Path(tempfile.mkdtemp(prefix="pynomaly-pgbouncer-"))
        self.process: subprocess.Popen[bytes] | None = None

    def _configure(self) -> Path:
        _own(self.base)
        userlist = self.base / "userlist.txt"
        userlist.write_text(
            "".join(f'"{user}" "{self.postgres.scram_secret(user)}"\n' for user in self.users)
        )
        ini = self.base / "pgbouncer.ini"
        ini.write_text(
            "[databases]\n"
            f"* = host={self.postgres.host} port={self.postgres.port}\n"
            "[pgbouncer]\n"
            f"listen_addr = {self.host}\nlisten_port = {self.port}\n"
            "unix_socket_dir =\n"
            f"auth_type = scram-sha-256\nauth_file = {userlist}\n"
            f"pool_mode = {self.pool_mode}\n"
            f"default_pool_size = {self.default_pool_size}\nmax_client_conn = 500\n"
            "ignore_startup_parameters = extra_float_digits,options\n"
            "server_reset_query =\n"
            f"logfile = {self.base / 'pgbouncer.log'}\n"
        )
        for path in (userlist, ini):
            _own(path)
            path.chmod(0o600)
        return ini

    def start(self) -> PgBouncer:
        """(Re)write the config, start, and wait for the port."""
        ini = self._configure()
        self.process = subprocess.Popen(
            _as_service_user([PGBOUNCER, str(ini)]),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.base,
        )
        deadline = time.monotonic() + 20
        while True:
            if self.process.poll() is not None:
                log = (self.base / "pgbouncer.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"pgbouncer exited with {self.process.returncode}: {log}")
            try:
                wait_for_port(self.port, timeout=0.2)
                return self
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise

    def stop(self) -> None:
        """Stop (SIGINT: immediate shutdown, connections closed) and wait."""
        # runuser forwards the signal to pgbouncer.
        terminate(self.process)
        self.process = None

    def restart(self) -> PgBouncer:
        """Start again on the same port."""
        self.stop()
        return self.start()

    def cleanup(self) -> None:
        """Stop and remove the working directory."""
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def dsn(self, user: str, database: str) -> str:
        """A password-less DSN through PgBouncer."""
        return f"postgresql://{user}@{self.host}:{self.port}/{database}"


@dataclass
class PostgresStack:
    """Postgres + PgBouncer + the application role, as the fixture yields them."""

    postgres: PostgresServer
    pgbouncer: PgBouncer
    user: str
    password: str

    def create_database(self, prefix: str = "test") -> str:
        """A fresh database owned by the application role; returns its name."""
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        self.postgres.create_database(name, owner=self.user)
        return name

    def dsn(self, database: str) -> str:
        """Password-less DSN through PgBouncer (pass ``password`` separately)."""
        return self.pgbouncer.dsn(self.user, database)


def start_stack(
    *,
    user: str = "pynomaly",
    password: str = "pynomaly-test-password",  # noqa: S107 - test role
) -> PostgresStack:
    """Start Postgres and PgBouncer with an application role (for the demo and fixtures)."""
    postgres = PostgresServer().start()
    try:
        postgres.create_role(user, password)
        pgbouncer = PgBouncer(postgres, users=[user]).start()
    except BaseException:
        postgres.cleanup()
        raise
    return PostgresStack(postgres, pgbouncer, user, password)


@pytest.fixture(scope="session")
def postgres_stack() -> Iterator[PostgresStack]:
    """PostgreSQL 15 + PgBouncer (transaction mode, SCRAM) for the whole session."""
    stack = start_stack()
    try:
        yield stack
    finally:
        stack.pgbouncer.cleanup()
        stack.postgres.cleanup()

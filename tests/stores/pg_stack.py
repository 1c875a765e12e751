"""Managed-Postgres stack for tests: PostgreSQL 15 and PgBouncer from the rendered files.

The operator's renderers write postgresql.conf, pg_hba.conf and pgbouncer.ini (local port,
socket directory and 127.0.0.1 substituted); the operator's init script creates the
application role and database exactly as in the pod's docker-entrypoint-initdb.d, and the
operator's PgBouncer start script builds the userlist from env (the Secret in a pod).
Both servers refuse to run as root, so they run as the ``postgres`` OS user.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from pynomaly_operator.builders.pgbouncer import ini as pgbouncer_ini
from pynomaly_operator.builders.postgres import conf as postgres_conf
from pynomaly_operator.specs.postgres import PostgresSpec

BIN = Path("/usr/lib/postgresql/15/bin")
HOST = "127.0.0.1"
APP_PASSWORD = "app-test-password"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def _chown(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")


def _wait(predicate: object, *, timeout: float, what: str) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


class PostgresStack:
    """Postgres + PgBouncer started from one ``PostgresSpec``'s rendered files."""

    def __init__(self, spec: PostgresSpec) -> None:
        self.spec = spec
        self.base = Path(tempfile.mkdtemp(prefix="pynomaly-stores-pg-"))
        self.base.chmod(0o755)
        _chown(self.base)
        self.pg_port = _free_port()
        self.bouncer_port = _free_port()
        self.postgres: subprocess.Popen[bytes] | None = None
        self.bouncer: subprocess.Popen[bytes] | None = None

    @property
    def dsn(self) -> str:
        """What the detector gets: through PgBouncer, no password in the URL."""
        return f"postgresql://{self.spec.user}@{HOST}:{self.bouncer_port}/{self.spec.database}"

    def _write(self, name: str, text: str, *, mode: int = 0o644) -> Path:
        path = self.base / name
        path.write_text(text)
        path.chmod(mode)
        _chown(path)
        return path

    def start(self) -> None:
        data = self.base / "data"
        subprocess.run(
            _as_postgres([str(BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]),
            check=True,
            capture_output=True,
            timeout=120,
        )
        self._write(
            postgres_conf.CONFIG_KEY,
            postgres_conf.postgresql_conf(
                self.spec,
                port=self.pg_port,
                listen_addresses=HOST,
                unix_socket_directories=str(self.base),
            ),
        )
        self._write(postgres_conf.HBA_KEY, postgres_conf.pg_hba_conf(self.spec))
        self.start_postgres()
        init = self._write(postgres_conf.INIT_SCRIPT_KEY, postgres_conf.INIT_SCRIPT, mode=0o755)
        subprocess.run(
            _as_postgres(["sh", str(init)]),
            env={
                **os.environ,
                "PGHOST": str(self.base),
                "PGPORT": str(self.pg_port),
                "POSTGRES_USER": "postgres",
                "APP_USER": self.spec.user,
                "APP_PASSWORD": APP_PASSWORD,
                "APP_DB": self.spec.database,
            },
            check=True,
            capture_output=True,
            timeout=60,
        )
        run = self.base / "run"
        run.mkdir(mode=0o700, exist_ok=True)
        _chown(run)
        self._write(
            pgbouncer_ini.CONFIG_KEY,
            pgbouncer_ini.pgbouncer_ini(
                self.spec,
                server_host=HOST,
                server_port=self.pg_port,
                listen_addr=HOST,
                listen_port=self.bouncer_port,
                auth_file=str(run / "userlist.txt"),
            ),
        )
        self._write(pgbouncer_ini.START_SCRIPT_KEY, pgbouncer_ini.START_SCRIPT, mode=0o755)
        self.start_bouncer()

    def start_postgres(self) -> None:
        """Start the server on the existing data directory and wait until it accepts."""
        self.postgres = self._spawn(
            [
                str(BIN / "postgres"),
                "-D",
                str(self.base / "data"),
                "-c",
                f"config_file={self.base / postgres_conf.CONFIG_KEY}",
                "-c",
                f"hba_file={self.base / postgres_conf.HBA_KEY}",
            ],
            "postgres.log",
        )
        _wait(self._pg_ready, timeout=60, what=f"postgres ({self.base}/postgres.log)")

    def stop_postgres(self) -> None:
        """A pod deletion: fast shutdown, every server connection of PgBouncer drops."""
        self._stop(self.postgres, signal.SIGINT)

    def sync_passwords(self) -> None:
        """Run the pod's postStart script: role passwords follow the (test) Secret."""
        script = self._write(
            postgres_conf.SYNC_PASSWORDS_KEY, postgres_conf.SYNC_PASSWORDS_SCRIPT, mode=0o755
        )
        subprocess.run(
            _as_postgres(["sh", str(script)]),
            env={
                **os.environ,
                "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
                "PGHOST": str(self.base),
                "PGPORT": str(self.pg_port),
                "POSTGRES_USER": "postgres",
                "POSTGRES_PASSWORD": "superuser-test-password",
                "APP_USER": self.spec.user,
                "APP_PASSWORD": APP_PASSWORD,
            },
            check=True,
            capture_output=True,
            timeout=60,
        )

    def _pg_ready(self) -> bool:
        result = subprocess.run(
            [
                str(BIN / "pg_isready"),
                "-h",
                str(self.base),
                "-p",
                str(self.pg_port),
                "-U",
                "postgres",
            ],
            capture_output=True,
            check=False,
        )
        return result.returncode == 0

    def _spawn(
        self, args: list[str], log_name: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = (self.base / log_name).open("ab")
        proc = subprocess.Popen(
            _as_postgres(args),
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return proc

    def start_bouncer(self) -> None:
        self.bouncer = self._spawn(
            ["sh", str(self.base / pgbouncer_ini.START_SCRIPT_KEY)],
            "pgbouncer.log",
            env={
                "APP_USER": self.spec.user,
                "APP_PASSWORD": APP_PASSWORD,
                "INI": str(self.base / pgbouncer_ini.CONFIG_KEY),
                "AUTH_FILE": str(self.base / "run" / "userlist.txt"),
            },
        )
        _wait(
            lambda: _accepts(self.bouncer_port),
            timeout=30,
            what=f"pgbouncer ({self.base}/pgbouncer.log)",
        )

    @staticmethod
    def _stop(proc: subprocess.Popen[bytes] | None, sig: signal.Signals) -> None:
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def kill_bouncer(self) -> None:
        """A crash: every client and server connection drops at once."""
        self._stop(self.bouncer, signal.SIGKILL)
        _wait(lambda: not _accepts(self.bouncer_port), timeout=10, what="pgbouncer to go away")

    def psql(self, sql: str) -> str:
        """Run SQL as the superuser over the local socket (bypasses PgBouncer)."""
        result = subprocess.run(
            [
                str(BIN / "psql"),
                "-h",
                str(self.base),
                "-p",
                str(self.pg_port),
                "-U",
                "postgres",
                "-d",
                self.spec.database,
                "-Atc",
                sql,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        return result.stdout.strip()

    def stop(self) -> None:
        self._stop(self.bouncer, signal.SIGINT)
        self._stop(self.postgres, signal.SIGINT)
        shutil.rmtree(self.base, ignore_errors=True)

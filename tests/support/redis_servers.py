"""Real ``redis-server`` processes for tests and the demo.

``RedisServer`` is a plain class (start/stop/kill/restart, ``url``) usable outside pytest; the
``redis_server`` fixture gives each test its own server on a random port. Tests that kill
Redis mid-request restart it on the *same* port with ``restart()``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.ports import free_port
from tests.support.processes import terminate

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer:
    """One redis-server on 127.0.0.1 (no persistence), optionally password-protected."""

    def __init__(
        self,
        *,
        port: int | None = None,
        password: str | None = None,
        workdir: str | Path | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.password = password
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="pynomaly-redis-"))
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://[:password@]127.0.0.1:port/0``."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    @property
    def address(self) -> str:
        """``127.0.0.1:port``."""
        return f"{self.host}:{self.port}"

    def command(self) -> list[str]:
        """The redis-server command line."""
        args = [
            REDIS_SERVER,
            "--port", str(self.port),
            "--bind", self.host,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
            "--logfile", str(self.workdir / f"redis-{self.port}.log"),
        ]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password, "--masterauth", self.password]
        return [*args, *self.extra_args]

    def start(self, *, timeout: float = 20.0) -> RedisServer:
        """Start and wait until it answers PING."""
        self.process = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            if self.ping():
                return self
            time.sleep(0.02)
        raise TimeoutError(f"redis-server on {self.port} did not answer within {timeout}s")

    def ping(self) -> bool:
        """Whether the server answers PING (NOAUTH counts as alive)."""
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                reply = sock.recv(64)
        except OSError:
            return False
        return reply.startswith((b"+PONG", b"-NOAUTH"))

    def stop(self) -> None:
        """SIGTERM and wait."""
        terminate(self.process)
        self.process = None

    def kill(self) -> None:
        """SIGKILL (a crash) and wait."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> RedisServer:
        """Start again on the same port (after ``kill`` or ``stop``)."""
        self.stop()
        return self.start()

    def cleanup(self) -> None:
        """Stop and remove the working directory."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh redis-server for one test (random port, no password)."""
    with RedisServer() as server:
        yield server

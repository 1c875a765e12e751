"""The real ``pynomaly-detector serve`` process for tests that need sockets, signals or
worker processes: uvicorn with the guarded protocol, the probe listener, real workers.

``detector_process(tmp_path, workers=..., **env)`` starts it on free loopback ports with an
embedded store in ``tmp_path``, waits until the probe listener says ready, and stops the
whole process group afterwards (workers never outlive a failed test).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.detector.conftest import SIGNING_KEY
from tests.support.ports import free_port

SCRIPT = Path(sys.executable).with_name("pynomaly-detector")


@dataclass
class DetectorProcess:
    """A running service: its supervisor process and addresses."""

    process: subprocess.Popen[bytes]
    port: int
    probe_port: int
    log: Path

    @property
    def base(self) -> str:
        """The API's base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def probes(self) -> str:
        """The probe listener's base URL (the metrics port)."""
        return f"http://127.0.0.1:{self.probe_port}"

    def log_tail(self) -> str:
        """The end of the service's log, for failure messages."""
        return self.log.read_text(errors="replace")[-4000:]


@contextlib.contextmanager
def detector_process(
    tmp_path: Path, *, workers: int = 1, ready_within: float = 120, **env: str
) -> Iterator[DetectorProcess]:
    """``pynomaly-detector serve`` with ``PYNOMALY_*`` overrides in ``env`` (names without the
    prefix, upper case)."""
    port, probe_port = free_port(), free_port()
    values = {
        **os.environ,
        "PYNOMALY_PORT": str(port),
        "PYNOMALY_METRICS_PORT": str(probe_port),
        "PYNOMALY_WORKERS": str(workers),
        "PYNOMALY_MODEL_DIR": str(tmp_path / "models"),
        "PYNOMALY_ARTIFACT_SIGNING_KEY": SIGNING_KEY,
        "PYNOMALY_LOG_LEVEL": "WARNING",
        "PYNOMALY_ACCESS_LOG": "false",
        **{f"PYNOMALY_{key}": value for key, value in env.items()},
    }
    values.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log_path = tmp_path / f"server-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(SCRIPT), "serve"], env=values, stdout=log, stderr=log, start_new_session=True
        )
    running = DetectorProcess(process, port, probe_port, log_path)
    try:
        deadline = time.monotonic() + ready_within
        while True:
            assert process.poll() is None, running.log_tail()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{running.probes}/readyz", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, "not ready in time:\n" + running.log_tail()
            time.sleep(0.2)
        yield running
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

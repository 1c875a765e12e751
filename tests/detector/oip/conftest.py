"""A real ``pynomaly-detector serve`` (two workers, HTTP + gRPC) for the protocol clients.

The Triton and KServe clients are synchronous (or run their own loops), so the service runs as
its own process, as users run it: two uvicorn workers share the gRPC port (SO_REUSEPORT) like
the HTTP one. One model, ``m`` (ECOD, 4 features), is fitted through REST at start; ``v1``
scores rows through ``/v1/models/m/detect``, the reference every transport must equal.
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
import numpy as np
import pytest

from tests.detector.conftest import SIGNING_KEY, training_rows
from tests.support.ports import free_port

SCRIPT = Path(sys.executable).with_name("pynomaly-detector")
N_FEATURES = 4
TOKEN = "oip-test-token-0123456789"


@dataclass(frozen=True)
class Detector:
    """A running service: where to reach it and how it scores through v1."""

    process: subprocess.Popen[bytes]
    http: str
    """``host:port`` of HTTP (what tritonclient.http takes)."""
    grpc: str
    """``host:port`` of gRPC."""
    log: Path

    @property
    def base(self) -> str:
        return f"http://{self.http}"

    def v1(self, rows: np.ndarray, *, headers: dict[str, str] | None = None) -> np.ndarray:
        """The v1 endpoint's scores of ``rows`` (float64)."""
        response = httpx.post(
            f"{self.base}/v1/models/m/detect",
            json={"instances": rows.tolist()},
            headers=headers,
            timeout=30,
        )
        assert response.status_code == 200, response.text
        return np.array(response.json()["scores"], dtype=np.float64)


@contextlib.contextmanager
def running(tmp: Path, **env: str) -> Iterator[Detector]:
    """``pynomaly-detector serve`` with HTTP and gRPC on free ports, model ``m`` fitted."""
    port, grpc_port = free_port(), free_port()
    log_path = tmp / "server.log"
    environment = {
        **os.environ,
        "PYNOMALY_PORT": str(port),
        "PYNOMALY_GRPC_PORT": str(grpc_port),
        "PYNOMALY_METRICS_PORT": "0",
        "PYNOMALY_WORKERS": "2",
        "PYNOMALY_MODEL_DIR": str(tmp / "models"),
        "PYNOMALY_ARTIFACT_SIGNING_KEY": SIGNING_KEY,
        "PYNOMALY_LOG_LEVEL": "WARNING",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp / "prom"),
        **env,
    }
    log = log_path.open("wb")
    process = subprocess.Popen(
        [str(SCRIPT), "serve"], env=environment, stdout=log, stderr=log, start_new_session=True
    )
    detector = Detector(process, f"127.0.0.1:{port}", f"127.0.0.1:{grpc_port}", log_path)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert process.poll() is None, log_path.read_text()[-3000:]
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{detector.base}/readyz", timeout=1).status_code == 200:
                    break
            time.sleep(0.2)
        else:
            pytest.fail("the service did not become ready: " + log_path.read_text()[-3000:])
        headers = {"Authorization": f"Bearer {TOKEN}"}
        fitted = httpx.put(
            f"{detector.base}/v1/models/m",
            json={"algorithm": "ECOD", "instances": training_rows(300, N_FEATURES)},
            headers=headers,
            timeout=60,
        )
        assert fitted.status_code == 201, fitted.text
        yield detector
    finally:
        with contextlib.suppress(ProcessLookupError):  # the workers must not outlive the test
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        log.close()


@pytest.fixture(scope="package")
def detector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Detector]:
    """One open service for the client tests of this package."""
    with running(tmp_path_factory.mktemp("oip")) as running_detector:
        yield running_detector


@pytest.fixture
def queries() -> np.ndarray:
    """Rows to score: mostly normal, two far outliers."""
    rows = np.random.default_rng(7).normal(size=(64, N_FEATURES))
    rows[:2] += 9.0
    return rows

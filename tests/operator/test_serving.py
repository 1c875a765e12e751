"""``status.model`` reports the version the service serves, asked of the real service.

The detector service runs as its own process (``pynomaly-detector serve``, one worker, the
embedded store) on 127.0.0.1; the operator's ``serving.served_model`` asks it exactly as it
asks a detector Service in the cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pynomaly_operator import status
from pynomaly_operator.reconciling import serving
from pynomaly_operator.specs import detector as specs
from tests.detector.conftest import SIGNING_KEY, training_rows
from tests.support.ports import free_port

pytestmark = pytest.mark.slow

SCRIPT = Path(sys.executable).with_name("pynomaly-detector")


@pytest.fixture
def service(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "PYNOMALY_HOST": "127.0.0.1",
        "PYNOMALY_PORT": str(port),
        "PYNOMALY_METRICS_PORT": str(free_port()),
        "PYNOMALY_WORKERS": "1",
        "PYNOMALY_MODEL_DIR": str(tmp_path / "models"),
        "PYNOMALY_ARTIFACT_SIGNING_KEY": SIGNING_KEY,
        "PYNOMALY_LOG_LEVEL": "WARNING",
    }
    log = (tmp_path / "service.log").open("wb")
    process = subprocess.Popen(
        [str(SCRIPT), "serve"], env=env, stdout=log, stderr=log, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, (tmp_path / "service.log").read_text()[-3000:]
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                break
        time.sleep(0.2)
    else:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail("service did not become ready")
    try:
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        log.close()


def test_status_reports_the_version_the_service_serves(service: str) -> None:
    assert asyncio.run(serving.served_model(service, "fraud")) is None  # nothing fitted yet
    for algorithm in ("IForest", "ECOD"):
        fitted = httpx.put(
            f"{service}/v1/models/fraud",
            json={"algorithm": algorithm, "instances": training_rows()},
            timeout=120,
        )
        assert fitted.status_code in (200, 201), fitted.text
    served = asyncio.run(serving.served_model(service, "fraud"))
    assert served is not None
    assert served["version"] == 2
    assert served["servedAlgorithm"] == "ECOD"
    assert isinstance(served["threshold"], float)

    detector = specs.AnomalyDetector.from_body(
        {"metadata": {"name": "fraud", "namespace": "p"}, "spec": {"model": {"algorithm": "ECOD"}}}
    )
    result = status.compute(
        detector,
        deployment=None,
        hpa=None,
        store_conditions=[],
        problems=[],
        previous=None,
        now="2026-01-01T00:00:00Z",
        served=served,
    )
    assert result["model"]["version"] == 2
    assert result["model"]["algorithm"] == "ECOD"
    specs.AnomalyDetectorStatus.model_validate(result)  # the CRD's status schema holds it


def test_an_unreachable_service_reports_nothing() -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    assert asyncio.run(serving.served_model(closed, "fraud")) is None

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
import numpy as np
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
    yield from _serve(tmp_path)


@pytest.fixture
def drift_service(tmp_path: Path) -> Iterator[str]:
    yield from _serve(tmp_path, PYNOMALY_DRIFT_MIN_ROWS="500")


def _serve(tmp_path: Path, **extra: str) -> Iterator[str]:
    port = free_port()
    env = {
        **extra,
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


def _drift_status(served: dict[str, object] | None, previous: object = None) -> dict[str, object]:
    detector = specs.AnomalyDetector.from_body(
        {
            "metadata": {"name": "fraud", "namespace": "p"},
            "spec": {"model": {"drift": {"threshold": 0.2}}},
        }
    )
    result = status.compute(
        detector,
        deployment=None,
        hpa=None,
        store_conditions=[],
        problems=[],
        previous=previous,  # type: ignore[arg-type]  # a status dict or None
        now="2026-01-01T00:00:00Z",
        served=served,
    )
    specs.AnomalyDetectorStatus.model_validate(result)  # the CRD's status schema holds it
    return result


def _model_drift(result: dict[str, object]) -> dict[str, object]:
    found = [c for c in result["conditions"] if c["type"] == "ModelDrift"]  # type: ignore[attr-defined, index]  # status dicts
    assert len(found) == 1
    return found[0]  # type: ignore[no-any-return]  # a condition dict


@pytest.mark.drift
def test_model_drift_condition_follows_the_traffic(drift_service: str) -> None:
    fitted = httpx.put(
        f"{drift_service}/v1/models/fraud", json={"instances": training_rows(2000)}, timeout=120
    )
    assert fitted.status_code == 201, fitted.text
    served = asyncio.run(serving.served_model(drift_service, "fraud"))
    before = _model_drift(_drift_status(served))
    assert (before["status"], before["reason"]) == ("Unknown", "InsufficientData")

    rng = np.random.default_rng(4)
    for _ in range(10):
        rows = rng.normal(size=(100, 3)).tolist()
        httpx.post(f"{drift_service}/v1/models/fraud/detect", json={"instances": rows}, timeout=30)
    served = asyncio.run(serving.served_model(drift_service, "fraud"))
    normal = _drift_status(served)
    assert "drift" not in normal["model"]  # type: ignore[operator]  # a dict
    condition = _model_drift(normal)
    assert (condition["status"], condition["reason"]) == ("False", "WithinThreshold")
    # Asked again with more normal traffic: the same status, so nothing is written.
    for _ in range(5):
        rows = rng.normal(size=(100, 3)).tolist()
        httpx.post(f"{drift_service}/v1/models/fraud/detect", json={"instances": rows}, timeout=30)
    again = _drift_status(asyncio.run(serving.served_model(drift_service, "fraud")), normal)
    assert again == normal

    for _ in range(30):
        shifted = rng.normal(size=(100, 3))
        shifted[:, 2] += 3.0
        rows = shifted.tolist()
        httpx.post(f"{drift_service}/v1/models/fraud/detect", json={"instances": rows}, timeout=30)
    shifted = _drift_status(asyncio.run(serving.served_model(drift_service, "fraud")), normal)
    condition = _model_drift(shifted)
    assert (condition["status"], condition["reason"]) == ("True", "DriftAboveThreshold")
    assert "feature 'f2'" in str(condition["message"])
    assert "over the threshold 0.2" in str(condition["message"])
    # An operator restart (status carried, service not asked yet) keeps the condition.
    carried = {k: v for k, v in served.items() if k != "drift"} if served else None  # type: ignore[union-attr]  # checked
    restarted = _drift_status(carried, shifted)
    assert _model_drift(restarted) == condition


def test_no_threshold_no_model_drift_condition() -> None:
    detector = specs.AnomalyDetector.from_body({"metadata": {"name": "f", "namespace": "p"}})
    result = status.compute(
        detector,
        deployment=None,
        hpa=None,
        store_conditions=[],
        problems=[],
        previous=None,
        now="2026-01-01T00:00:00Z",
        served={"version": 1, "drift": {"score": 9.0, "features": {}}},
    )
    assert [c["type"] for c in result["conditions"]] == list(status.CONDITION_ORDER)

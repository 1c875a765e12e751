"""``drift`` in ``GET /v1/models/{name}`` and the drift gauges, across real uvicorn workers.

Four workers behind one port (as the operator deploys them) each see part of the traffic;
with Redis the model endpoint reports all of it whichever worker answers, and without Redis
it says that its figures are one worker's.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.detector.conftest import metric_value, service, training_rows
from tests.detector.server_process import detector_process
from tests.support.redis_servers import RedisServer

pytestmark = pytest.mark.drift


def _send(client: httpx.Client, rows: np.ndarray, size: int = 20) -> None:
    for start in range(0, len(rows), size):
        response = client.post(
            "/v1/models/m/detect", json={"instances": rows[start : start + size].tolist()}
        )
        assert response.status_code == 200, response.text


@pytest.mark.redis
@pytest.mark.slow
def test_every_worker_reports_the_traffic_of_all_workers(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    with (
        detector_process(
            tmp_path,
            workers=4,
            REDIS_MODE="standalone",
            REDIS_URL=redis_server.url,
            DRIFT_PUBLISH_SECONDS="0.2",
            DRIFT_MIN_ROWS="200",
        ) as server,
        httpx.Client(base_url=server.base, timeout=30) as client,
    ):
        fit = client.put("/v1/models/m", json={"instances": training_rows(2000, 3)})
        assert fit.status_code == 201, fit.text
        rng = np.random.default_rng(11)
        _send(client, rng.normal(size=(1000, 3)))
        # Each worker publishes within 0.2 s; then every answer covers all 1000 rows.
        deadline = time.monotonic() + 20
        while True:
            bodies = [client.get("/v1/models/m").json()["drift"] for _ in range(12)]
            if all(body["rows"] == 1000 for body in bodies):
                break
            assert time.monotonic() < deadline, bodies
            time.sleep(0.2)
        assert {body["scope"] for body in bodies} == {"cluster"}
        normal = bodies[0]
        assert normal["score"] < 0.1
        assert max(normal["features"].values()) < 0.1
        assert set(normal["features"]) == {"f0", "f1", "f2"}

        shifted = rng.normal(size=(3000, 3))
        shifted[:, 1] += 2.0
        _send(client, shifted)
        deadline = time.monotonic() + 20
        while True:
            body = client.get("/v1/models/m").json()["drift"]
            if body["rows"] == 4000:
                break
            assert time.monotonic() < deadline, body
            time.sleep(0.2)
        assert body["features"]["f1"] > 0.5
        assert body["features"]["f0"] < 0.1
        assert body["score"] > 0.1  # the scores moved too: more rows look anomalous
        assert body["alert_rate"] > normal["alert_rate"]

        exposition = httpx.get(f"{server.probes}/metrics", timeout=10).text
        deadline = time.monotonic() + 10
        while metric_value(exposition, "pynomaly_model_drift_rows", {"model": "m"}) != 4000:
            assert time.monotonic() < deadline, exposition[-3000:]
            time.sleep(0.3)
            exposition = httpx.get(f"{server.probes}/metrics", timeout=10).text
        gauge = metric_value(exposition, "pynomaly_model_feature_drift", {"feature": "f1"})
        assert gauge == pytest.approx(body["features"]["f1"], rel=1e-3)


async def test_without_redis_the_figures_say_they_are_one_workers(tmp_path: Path) -> None:
    async with service(tmp_path, drift_min_rows=100) as client:
        assert (await client.put("/v1/models/m", json={"instances": training_rows()})).status_code
        before = (await client.get("/v1/models/m")).json()["drift"]
        assert before == {
            "score": None,
            "features": {},
            "alert_rate": None,
            "rows": 0,
            "reference": "calibration",
            "scope": "worker",
        }
        rows = np.random.default_rng(2).normal(size=(150, 3)).tolist()
        detected = (await client.post("/v1/models/m/detect", json={"instances": rows})).json()
        after = (await client.get("/v1/models/m")).json()["drift"]
        assert after["rows"] == 150
        assert after["alert_rate"] == pytest.approx(sum(detected["is_anomaly"]) / 150, abs=1e-6)
        assert after["score"] is not None


async def test_drift_can_be_turned_off(tmp_path: Path) -> None:
    async with service(tmp_path, drift_enabled=False) as client:
        await client.put("/v1/models/m", json={"instances": training_rows()})
        assert "drift" not in (await client.get("/v1/models/m")).json()

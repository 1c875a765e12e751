"""Small leaks and truths of the HTTP layer: no lock file per unknown name, 404 for the
anomaly log of an unknown model, JSON booleans refused at any depth of a v2 tensor."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.detector.conftest import service, training_rows

pytestmark = pytest.mark.http


async def test_deleting_unknown_names_leaves_no_lock_files(tmp_path: Path) -> None:
    async with service(tmp_path) as client:
        for index in range(50):
            response = await client.delete(f"/v1/models/never-{index}")
            assert response.status_code == 404
        locks = tmp_path / "models" / ".locks"
        assert not locks.exists() or list(locks.iterdir()) == []


async def test_anomaly_log_of_an_unknown_model_is_404(tmp_path: Path) -> None:
    async with service(tmp_path, anomaly_log_enabled=True) as client:
        response = await client.get("/v1/models/ghost/anomalies")
        assert response.status_code == 404
        assert response.json()["error"] == "model_not_found"
        await client.put(
            "/v1/models/real", json={"algorithm": "ECOD", "instances": training_rows()}
        )
        assert (await client.get("/v1/models/real/anomalies")).status_code == 200


@pytest.mark.parametrize(
    "data",
    [
        [[[0.5, True, 1.0]]],
        [[0.5, 1.0, [False]]],
        [[[[1.0]], [[2.0]], [[True]]]],
    ],
)
async def test_v2_booleans_are_refused_at_any_depth(tmp_path: Path, data: list[object]) -> None:
    async with service(tmp_path) as client:
        await client.put("/v1/models/m", json={"algorithm": "ECOD", "instances": training_rows()})
        body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 3], "data": data}]}
        response = await client.post("/v2/models/m/infer", json=body)
        assert response.status_code in (400, 422), response.text
        assert response.status_code != 200

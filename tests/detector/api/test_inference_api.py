"""Open Inference Protocol v2 endpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.detector.conftest import service, training_rows


def _tensor(data: Any, shape: list[int], datatype: str = "FP64") -> dict[str, Any]:
    return {
        "id": "r1",
        "inputs": [{"name": "input-0", "shape": shape, "datatype": datatype, "data": data}],
    }


async def test_infer_metadata_and_health(tmp_path: Path) -> None:
    async with service(tmp_path) as client:
        await client.put("/v1/models/m", json={"algorithm": "ECOD", "instances": training_rows()})
        response = await client.post("/v2/models/m/infer", json=_tensor([0, 0, 0, 9, 9, 9], [2, 3]))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model_name"] == "m"
        assert body["model_version"] == "1"
        assert body["id"] == "r1"
        scores, flags = body["outputs"]
        assert scores["shape"] == [2]
        assert scores["datatype"] == "FP64"
        assert flags["data"] == [False, True]
        nested = await client.post("/v2/models/m/infer", json=_tensor([[0, 0, 0]], [1, 3], "INT64"))
        assert nested.json()["outputs"][0]["data"] == scores["data"][:1]
        detect = await client.post("/v1/models/m/detect", json={"instances": [[0, 0, 0]]})
        assert detect.json()["scores"] == scores["data"][:1]

        meta = (await client.get("/v2/models/m")).json()
        assert meta["inputs"][0]["shape"] == [-1, 3]
        assert meta["versions"] == ["1"]
        assert (await client.get("/v2/models/m/ready")).status_code == 200
        assert (await client.get("/v2/models/nope/ready")).status_code == 404
        assert (await client.get("/v2/health/live")).status_code == 200
        assert (await client.get("/v2/health/ready")).status_code == 200


BAD: list[tuple[Any, int, str]] = [
    ({"inputs": []}, 422, "exactly one"),
    ({"inputs": "x"}, 422, "exactly one"),
    (_tensor([0, 0, 0], [1, 3], "BYTES"), 422, "not supported"),
    (_tensor([0, 0], [1, 3]), 422, "needs 3"),
    (_tensor([0, 0, "a"], [1, 3]), 422, "only numbers"),
    (_tensor([0.5, True, 0], [1, 3]), 422, "booleans"),
    (_tensor([[0.5, 0, 0], [0, False, 1]], [2, 3]), 422, "booleans"),
    (_tensor([0, 0, 0], [1, 1, 3]), 422, "expected shape"),
    (_tensor([0, 0, 0, 0], [2, 2]), 422, "expects 3 features"),
    (_tensor([[0, 0], [0]], [2, 2]), 422, "regular"),
    (_tensor([0, 0, 0], "1,3"), 422, "shape"),
]


@pytest.mark.parametrize(("body", "status", "message"), BAD)
async def test_bad_infer_requests(tmp_path: Path, body: Any, status: int, message: str) -> None:
    async with service(tmp_path) as client:
        await client.put("/v1/models/m", json={"algorithm": "ECOD", "instances": training_rows()})
        response = await client.post("/v2/models/m/infer", json=body)
        assert response.status_code == status, response.text
        assert message in response.json()["detail"]

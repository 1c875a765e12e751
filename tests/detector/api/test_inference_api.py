"""Open Inference Protocol v2 endpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.detector.conftest import service, training_rows


def _tensor(data: Any, shape: Any, datatype: Any = "FP64") -> dict[str, Any]:
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
    ({"inputs": []}, 400, "non-empty list"),
    ({"inputs": "x"}, 400, "non-empty list"),
    ({"inputs": [1]}, 400, "non-empty list"),
    (_tensor([0, 0, 0], [1, 3], "BYTES"), 400, "not supported"),
    (_tensor([0, 0, 0], [1, 3], {}), 400, "not supported"),
    (_tensor([0, 0, 0], [1, 3], ["FP64"]), 400, "not supported"),
    (_tensor([0, 0], [1, 3]), 400, "needs 3"),
    (_tensor([0, 0, "a"], [1, 3]), 400, "only numbers"),
    (_tensor([0, 0, None], [1, 3]), 400, "only numbers"),
    (_tensor([0, 0, {}], [1, 3]), 400, "only numbers"),
    (_tensor([0.5, True, 0], [1, 3]), 400, "booleans"),
    (_tensor([[0.5, 0, 0], [0, False, 1]], [2, 3]), 400, "booleans"),
    # JSON booleans deeper than one level of nesting (numpy made them 1/0)
    (_tensor([[[0.5, 0, 0]], [[0, False, 1]]], [2, 3]), 400, "booleans"),
    (_tensor([[[[True, 0, 0]]]], [1, 3]), 400, "booleans"),
    (_tensor([0, 0, 0], [1, 1, 3]), 400, "expected shape"),
    (_tensor([0, 0, 0, 0], [2, 2]), 400, "expects 3 features"),
    (_tensor([[0, 0], [0]], [2, 2]), 400, "regular"),
    (_tensor([[0, 0, 0], 0, 0, 0], [2, 3]), 400, "regular"),
    (_tensor([0, 0, 0], "1,3"), 400, "shape"),
    (_tensor([0, 0, 0, 0], [True, 4]), 400, "shape"),
    (_tensor([0, 0, 0], [1.0, 3]), 400, "shape"),
    (_tensor([0, 0, 0], [-1, 3]), 400, "shape"),
    (_tensor([0, 0, 0], None), 400, "shape"),
    (_tensor(None, [1, 3]), 400, "'data'"),
    (_tensor([0, 0, 10**400], [1, 3]), 400, "infinity"),
    (_tensor([], [0, 3]), 400, "no rows"),
    (_tensor([0] * 3, [2_000_000, 3]), 413, "exceed the limit"),
    ({"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 3]}]}, 400, "binary_data_size"),
    ({**_tensor([0, 0, 0], [1, 3]), "outputs": [{"name": "nope"}]}, 400, "unknown output"),
    ({**_tensor([0, 0, 0], [1, 3]), "outputs": "scores"}, 400, "'outputs'"),
    ({**_tensor([0, 0, 0], [1, 3]), "parameters": []}, 400, "'parameters'"),
    ({**_tensor([0, 0, 0], [1, 3]), "parameters": {"binary_data_output": 1}}, 400, "true or"),
]


@pytest.mark.parametrize(("body", "status", "message"), BAD)
async def test_bad_infer_requests(tmp_path: Path, body: Any, status: int, message: str) -> None:
    async with service(tmp_path) as client:
        await client.put("/v1/models/m", json={"algorithm": "ECOD", "instances": training_rows()})
        response = await client.post("/v2/models/m/infer", json=body)
        assert response.status_code == status, response.text
        assert message in response.json()["detail"]

"""The binary tensor data extension on ``POST /v2/models/{name}/infer``.

Requests built byte by byte as the extension specifies (JSON header of
``Inference-Header-Content-Length`` bytes, then raw little-endian tensors): the service reads
inputs straight from the bytes, answers binary outputs when asked, and refuses bad framing
with a 400 that says what is wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from tests.detector.conftest import service, training_rows

ROWS = np.array([[0.0, 0.0, 0.0], [9.0, 9.0, 9.0], [0.5, -0.25, 1.0]])


def _binary(header: dict[str, Any], *chunks: bytes) -> tuple[bytes, dict[str, str]]:
    head = orjson.dumps(header)
    return head + b"".join(chunks), {
        "Inference-Header-Content-Length": str(len(head)),
        "Content-Type": "application/octet-stream",
    }


def _split(response: httpx.Response) -> tuple[dict[str, Any], bytes]:
    length = int(response.headers["inference-header-content-length"])
    return orjson.loads(response.content[:length]), response.content[length:]


async def _fitted(client: httpx.AsyncClient) -> np.ndarray:
    fitted = await client.put(
        "/v1/models/m", json={"algorithm": "ECOD", "instances": training_rows()}
    )
    assert fitted.status_code == 201, fitted.text
    detect = await client.post("/v1/models/m/detect", json={"instances": ROWS.tolist()})
    return np.array(detect.json()["scores"])


async def test_binary_input_and_binary_outputs_equal_v1(tmp_path: Path) -> None:
    async with service(tmp_path) as client:
        v1 = await _fitted(client)
        body, headers = _binary(
            {
                "id": "b1",
                "inputs": [
                    {
                        "name": "input-0",
                        "shape": [3, 3],
                        "datatype": "FP64",
                        "parameters": {"binary_data_size": ROWS.nbytes},
                    }
                ],
                "parameters": {"binary_data_output": True},
            },
            ROWS.astype("<f8").tobytes(),
        )
        response = await client.post("/v2/models/m/infer", content=body, headers=headers)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/octet-stream"
        header, data = _split(response)
        assert header["id"] == "b1"
        scores, flags = header["outputs"]
        assert scores["parameters"]["binary_data_size"] == 24
        assert flags["parameters"]["binary_data_size"] == 3
        assert "data" not in scores
        np.testing.assert_array_equal(np.frombuffer(data[:24], "<f8"), v1)
        assert (
            np.frombuffer(data[24:], "?").tolist()
            == (v1 > header["parameters"]["threshold"]).tolist()
        )


async def test_mixed_json_and_binary_columns_and_per_output_choice(tmp_path: Path) -> None:
    async with service(tmp_path) as client:
        v1 = await _fitted(client)
        first = ROWS[:, :1].ravel().tolist()  # JSON column
        rest = ROWS[:, 1:].astype("<f4")  # FP32 bytes: these values are exact in float32
        body, headers = _binary(
            {
                "inputs": [
                    {"name": "a", "shape": [3], "datatype": "FP64", "data": first},
                    {
                        "name": "b",
                        "shape": [3, 2],
                        "datatype": "FP32",
                        "parameters": {"binary_data_size": rest.nbytes},
                    },
                ],
                "outputs": [
                    {"name": "is_anomaly", "parameters": {"binary_data": False}},
                    {"name": "scores", "parameters": {"binary_data": True}},
                ],
            },
            rest.tobytes(),
        )
        response = await client.post("/v2/models/m/infer", content=body, headers=headers)
        assert response.status_code == 200, response.text
        header, data = _split(response)
        flags, scores = header["outputs"]
        assert scores["parameters"]["binary_data_size"] == 24
        assert flags["name"] == "is_anomaly"
        assert flags["data"] == (v1 > header["parameters"]["threshold"]).tolist()
        np.testing.assert_array_equal(np.frombuffer(data, "<f8"), v1)


async def test_json_request_with_binary_outputs(tmp_path: Path) -> None:
    async with service(tmp_path) as client:
        v1 = await _fitted(client)
        body = {
            "inputs": [
                {"name": "x", "shape": [3, 3], "datatype": "FP64", "data": ROWS.ravel().tolist()}
            ],
            "outputs": [{"name": "scores", "parameters": {"binary_data": True}}],
        }
        response = await client.post("/v2/models/m/infer", json=body)
        header, data = _split(response)
        assert [output["name"] for output in header["outputs"]] == ["scores"]
        np.testing.assert_array_equal(np.frombuffer(data, "<f8"), v1)
        plain = await client.post("/v2/models/m/infer", json={"inputs": body["inputs"]})
        assert "inference-header-content-length" not in plain.headers
        assert plain.headers["content-type"] == "application/json"


def _one_input(size: Any, datatype: str = "FP64", shape: Any = (3, 3)) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": "x",
                "shape": list(shape),
                "datatype": datatype,
                "parameters": {"binary_data_size": size},
            }
        ]
    }


GOOD_BYTES = ROWS.astype("<f8").tobytes()

BAD: list[tuple[bytes, dict[str, str], str]] = [
    (*_binary(_one_input(72), GOOD_BYTES[:-8]), "only 64 bytes"),
    (*_binary(_one_input(64), GOOD_BYTES[:-8]), "needs 72"),
    (*_binary(_one_input(72), GOOD_BYTES + b"\0"), "belong to no input"),
    (*_binary(_one_input(-8), GOOD_BYTES), "non-negative"),
    (*_binary(_one_input(72, "BYTES"), GOOD_BYTES), "not supported"),
    (*_binary(_one_input(72, "FP64", (9,)), GOOD_BYTES), "expects 3 features"),
    (*_binary(_one_input(72, "FP64", (3, True)), GOOD_BYTES), "shape"),
    (*_binary(_one_input(24, "FP64", (1, 3)), np.array([0, np.nan, 0]).tobytes()), "NaN"),
    (*_binary(_one_input(3, "BOOL", (1, 3)), b"\x00\x07\x01"), "0 or 1"),
    (GOOD_BYTES, {"Inference-Header-Content-Length": "12"}, "not valid JSON"),
    (b'{"inputs": []}', {"Inference-Header-Content-Length": "999"}, "between 1 and"),
    (b'{"inputs": []}', {"Inference-Header-Content-Length": "-1"}, "between 1 and"),
    (b'{"inputs": []}', {"Inference-Header-Content-Length": "0"}, "between 1 and"),
    (b"[1]" + GOOD_BYTES, {"Inference-Header-Content-Length": "3"}, "JSON object"),
]


@pytest.mark.parametrize(("body", "headers", "message"), BAD)
async def test_bad_binary_requests_are_400_with_a_message(
    tmp_path: Path, body: bytes, headers: dict[str, str], message: str
) -> None:
    async with service(tmp_path) as client:
        await _fitted(client)
        response = await client.post("/v2/models/m/infer", content=body, headers=headers)
        assert response.status_code == 400, response.text
        assert message in response.json()["detail"]


async def test_binary_bodies_respect_the_body_limit(tmp_path: Path) -> None:
    async with service(tmp_path, max_body_bytes=32768) as client:
        await _fitted(client)
        rows = np.zeros((2000, 3))  # 48 kB of bytes
        body, headers = _binary(_one_input(rows.nbytes, shape=rows.shape), rows.tobytes())
        response = await client.post("/v2/models/m/infer", content=body, headers=headers)
        assert response.status_code == 413, response.text


async def test_server_metadata_announces_the_extension(tmp_path: Path) -> None:
    async with service(tmp_path) as client:
        body = (await client.get("/v2")).json()
        assert body["name"] == "pynomaly-detector"
        assert "binary_tensor_data" in body["extensions"]

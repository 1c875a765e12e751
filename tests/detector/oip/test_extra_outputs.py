"""The extra v2 outputs ``p_values`` and ``explanations``: sent when named, over REST JSON, the
binary extension and gRPC, equal to v1's; clients that name no outputs see no change."""

from __future__ import annotations

import struct
from typing import Any

import grpc
import httpx
import numpy as np
import orjson
import pytest

from pynomaly_detector.api.grpc import inference_pb2 as pb
from tests.detector.oip.conftest import Detector

pytestmark = [pytest.mark.oip, pytest.mark.slow]


def _v1(detector: Detector, rows: np.ndarray) -> dict[str, Any]:
    response = httpx.post(
        f"{detector.base}/v1/models/m/detect",
        json={"instances": rows.tolist(), "explain": True},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _json_request(rows: np.ndarray, outputs: list[dict[str, Any]] | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "inputs": [
            {
                "name": "input-0",
                "shape": list(rows.shape),
                "datatype": "FP64",
                "data": rows.ravel().tolist(),
            }
        ]
    }
    if outputs is not None:
        body["outputs"] = outputs
    return body


def _bytes_elements(raw: bytes) -> list[str]:
    """A BYTES tensor's raw layout: 4-byte little-endian length, then the bytes, per element."""
    out, at = [], 0
    while at < len(raw):
        (length,) = struct.unpack_from("<I", raw, at)
        out.append(raw[at + 4 : at + 4 + length].decode())
        at += 4 + length
    return out


def test_clients_that_name_no_outputs_get_exactly_the_two_outputs(
    detector: Detector, queries: np.ndarray
) -> None:
    response = httpx.post(
        f"{detector.base}/v2/models/m/infer", json=_json_request(queries, None), timeout=30
    )
    assert response.status_code == 200, response.text
    assert [o["name"] for o in response.json()["outputs"]] == ["scores", "is_anomaly"]


def test_named_extra_outputs_over_rest_json_equal_v1(
    detector: Detector, queries: np.ndarray
) -> None:
    expected = _v1(detector, queries)
    outputs = [{"name": "scores"}, {"name": "p_values"}, {"name": "explanations"}]
    response = httpx.post(
        f"{detector.base}/v2/models/m/infer", json=_json_request(queries, outputs), timeout=30
    )
    assert response.status_code == 200, response.text
    got = {o["name"]: o for o in response.json()["outputs"]}
    assert got["p_values"]["datatype"] == "FP64"
    assert got["p_values"]["data"] == expected["p_values"]
    assert got["explanations"]["datatype"] == "BYTES"
    assert got["explanations"]["shape"] == [len(queries)]
    explained = [orjson.loads(text) for text in got["explanations"]["data"]]
    assert explained == expected["explanations"]
    assert explained[0] is not None  # the first rows are far outliers


def test_named_extra_outputs_as_binary_equal_v1(detector: Detector, queries: np.ndarray) -> None:
    expected = _v1(detector, queries)
    outputs = [
        {"name": "p_values", "parameters": {"binary_data": True}},
        {"name": "explanations", "parameters": {"binary_data": True}},
    ]
    response = httpx.post(
        f"{detector.base}/v2/models/m/infer", json=_json_request(queries, outputs), timeout=30
    )
    assert response.status_code == 200, response.text
    length = int(response.headers["inference-header-content-length"])
    header = orjson.loads(response.content[:length])
    sizes = [o["parameters"]["binary_data_size"] for o in header["outputs"]]
    data = response.content[length:]
    p_values = np.frombuffer(data[: sizes[0]], "<f8")
    explanations = _bytes_elements(data[sizes[0] : sizes[0] + sizes[1]])
    assert p_values.tolist() == expected["p_values"]
    assert [orjson.loads(text) for text in explanations] == expected["explanations"]


def test_named_extra_outputs_over_grpc_equal_v1(detector: Detector, queries: np.ndarray) -> None:
    expected = _v1(detector, queries)
    request = pb.ModelInferRequest(model_name="m")
    tensor = request.inputs.add(name="input-0", datatype="FP64", shape=list(queries.shape))
    tensor.contents.fp64_contents.extend(queries.ravel().tolist())
    request.outputs.add(name="p_values")
    request.outputs.add(name="explanations")
    with grpc.insecure_channel(detector.grpc) as channel:
        stub = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer",
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        response = stub(request, timeout=30)
    assert [(o.name, o.datatype) for o in response.outputs] == [
        ("p_values", "FP64"),
        ("explanations", "BYTES"),
    ]
    p_values = np.frombuffer(response.raw_output_contents[0], "<f8")
    explanations = _bytes_elements(response.raw_output_contents[1])
    assert p_values.tolist() == expected["p_values"]
    assert [orjson.loads(text) for text in explanations] == expected["explanations"]


def test_model_metadata_still_lists_the_two_default_outputs(detector: Detector) -> None:
    # Clients that request every output listed in the metadata keep getting what they got.
    metadata = httpx.get(f"{detector.base}/v2/models/m", timeout=30).json()
    assert [o["name"] for o in metadata["outputs"]] == ["scores", "is_anomaly"]

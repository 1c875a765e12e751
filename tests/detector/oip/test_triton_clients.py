"""Triton's clients, unchanged, against the service: HTTP (binary and JSON) and gRPC.

Each asks what a new user's first script asks (live, ready, server and model metadata) and
scores rows; the scores equal the v1 endpoint's exactly (FP64 end to end), the flags follow
the threshold.
"""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.detector.oip.conftest import N_FEATURES, Detector

pytestmark = [pytest.mark.oip, pytest.mark.slow]


def test_http_health_and_metadata(detector: Detector) -> None:
    client = httpclient.InferenceServerClient(detector.http)
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("m")
    assert not client.is_model_ready("absent")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    meta = client.get_model_metadata("m")
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, N_FEATURES]}]
    assert [output["name"] for output in meta["outputs"]] == ["scores", "is_anomaly"]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_http_infer_equals_v1(detector: Detector, queries: np.ndarray, binary: bool) -> None:
    client = httpclient.InferenceServerClient(detector.http)
    tensor = httpclient.InferInput("input-0", list(queries.shape), "FP64")
    tensor.set_data_from_numpy(queries, binary_data=binary)
    outputs = [
        httpclient.InferRequestedOutput("scores", binary_data=binary),
        httpclient.InferRequestedOutput("is_anomaly", binary_data=binary),
    ]
    result = client.infer("m", [tensor], outputs=outputs, request_id="r-7")
    scores = result.as_numpy("scores")
    np.testing.assert_array_equal(scores, detector.v1(queries))
    threshold = result.get_response()["parameters"]["threshold"]
    assert result.as_numpy("is_anomaly").tolist() == (scores > threshold).tolist()
    assert result.as_numpy("is_anomaly")[:2].all()  # the two far rows
    assert result.get_response()["id"] == "r-7"


def test_http_defaults_binary_in_and_out(detector: Detector, queries: np.ndarray) -> None:
    # set_data_from_numpy's default and no outputs named: binary both ways.
    client = httpclient.InferenceServerClient(detector.http)
    tensor = httpclient.InferInput("input-0", list(queries.shape), "FP64")
    tensor.set_data_from_numpy(queries)
    result = client.infer("m", [tensor])
    np.testing.assert_array_equal(result.as_numpy("scores"), detector.v1(queries))


@pytest.mark.parametrize("datatype", ["FP32", "INT64", "UINT8"])
def test_http_other_datatypes(detector: Detector, datatype: str) -> None:
    rows = np.array([[0, 1, 2, 3], [9, 9, 9, 9]])
    client = httpclient.InferenceServerClient(detector.http)
    tensor = httpclient.InferInput("input-0", list(rows.shape), datatype)
    tensor.set_data_from_numpy(rows.astype(grpcclient.triton_to_np_dtype(datatype)))
    result = client.infer("m", [tensor])
    np.testing.assert_array_equal(result.as_numpy("scores"), detector.v1(rows.astype(float)))


def test_http_bad_shape_is_a_clear_error(detector: Detector, queries: np.ndarray) -> None:
    client = httpclient.InferenceServerClient(detector.http)
    tensor = httpclient.InferInput("input-0", [len(queries), N_FEATURES + 1], "FP64")
    tensor.set_data_from_numpy(np.zeros((len(queries), N_FEATURES + 1)))
    with pytest.raises(InferenceServerException, match="expects 4 features"):
        client.infer("m", [tensor])


def test_grpc_health_and_metadata(detector: Detector) -> None:
    client = grpcclient.InferenceServerClient(detector.grpc)
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("m")
    assert not client.is_model_ready("absent")
    assert "binary_tensor_data" in client.get_server_metadata(as_json=True)["extensions"]
    meta = client.get_model_metadata("m", as_json=True)
    assert meta["inputs"] == [
        {"name": "input-0", "datatype": "FP64", "shape": ["-1", str(N_FEATURES)]}
    ]
    assert meta["versions"] == ["1"]


def test_grpc_infer_equals_v1(detector: Detector, queries: np.ndarray) -> None:
    client = grpcclient.InferenceServerClient(detector.grpc)
    tensor = grpcclient.InferInput("input-0", list(queries.shape), "FP64")
    tensor.set_data_from_numpy(queries)
    result = client.infer("m", [tensor], request_id="g-1")
    scores = result.as_numpy("scores")
    np.testing.assert_array_equal(scores, detector.v1(queries))
    threshold = float(result.get_response().parameters["threshold"].string_param)
    assert result.as_numpy("is_anomaly").tolist() == (scores > threshold).tolist()
    assert result.get_response().id == "g-1"
    only = client.infer("m", [tensor], outputs=[grpcclient.InferRequestedOutput("is_anomaly")])
    assert only.as_numpy("scores") is None
    assert only.as_numpy("is_anomaly").tolist() == (scores > threshold).tolist()


def test_grpc_errors_carry_status_and_message(detector: Detector, queries: np.ndarray) -> None:
    client = grpcclient.InferenceServerClient(detector.grpc)
    tensor = grpcclient.InferInput("input-0", list(queries.shape), "FP64")
    tensor.set_data_from_numpy(queries)
    with pytest.raises(InferenceServerException, match="not found") as missing:
        client.infer("absent", [tensor])
    assert missing.value.status() == "StatusCode.NOT_FOUND"
    with pytest.raises(InferenceServerException, match="version 7 is not served") as version:
        client.infer("m", [tensor], model_version="7")
    assert version.value.status() == "StatusCode.NOT_FOUND"
    wide = grpcclient.InferInput("input-0", [2, N_FEATURES + 1], "FP32")
    wide.set_data_from_numpy(np.zeros((2, N_FEATURES + 1), dtype=np.float32))
    with pytest.raises(InferenceServerException, match="expects 4 features") as bad:
        client.infer("m", [wide])
    assert bad.value.status() == "StatusCode.INVALID_ARGUMENT"

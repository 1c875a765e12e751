"""The gRPC service beyond what Triton's client exercises: typed contents, refusals, the
bearer token, metrics and a clean shutdown (a real two-worker process each time)."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest

from pynomaly_detector import metrics
from pynomaly_detector.api.grpc import inference_pb2 as pb
from tests.detector.conftest import metric_value
from tests.detector.oip.conftest import N_FEATURES, TOKEN, Detector, running

pytestmark = [pytest.mark.oip, pytest.mark.slow]

SERVICE = "/inference.GRPCInferenceService/"


def _call(address: str, method: str, request: Any, response_type: Any, **kwargs: Any) -> Any:
    with grpc.insecure_channel(address) as channel:
        stub = channel.unary_unary(
            SERVICE + method,
            request_serializer=type(request).SerializeToString,
            response_deserializer=response_type.FromString,
        )
        return stub(request, timeout=30, **kwargs)


def _infer(address: str, request: Any, **kwargs: Any) -> Any:
    return _call(address, "ModelInfer", request, pb.ModelInferResponse, **kwargs)


def _typed(rows: np.ndarray, datatype: str, field: str) -> Any:
    request = pb.ModelInferRequest(model_name="m")
    tensor = request.inputs.add(name="input-0", datatype=datatype, shape=list(rows.shape))
    getattr(tensor.contents, field).extend(rows.ravel().tolist())
    return request


def _scores(response: Any) -> np.ndarray:
    index = [output.name for output in response.outputs].index("scores")
    return np.frombuffer(response.raw_output_contents[index], "<f8")


@pytest.mark.parametrize(
    ("datatype", "field"),
    [("FP64", "fp64_contents"), ("INT64", "int64_contents"), ("INT32", "int_contents")],
)
def test_typed_contents_equal_v1(
    detector: Detector, queries: np.ndarray, datatype: str, field: str
) -> None:
    rows = queries if datatype == "FP64" else np.round(queries * 10).astype(np.int64)
    response = _infer(detector.grpc, _typed(rows, datatype, field))
    np.testing.assert_array_equal(_scores(response), detector.v1(rows.astype(np.float64)))


def test_column_inputs_mix_raw_bytes(detector: Detector, queries: np.ndarray) -> None:
    request = pb.ModelInferRequest(model_name="m")
    for column in range(N_FEATURES):
        request.inputs.add(name=f"f{column}", datatype="FP64", shape=[len(queries)])
        request.raw_input_contents.append(queries[:, column].astype("<f8").tobytes())
    np.testing.assert_array_equal(_scores(_infer(detector.grpc, request)), detector.v1(queries))


REFUSED: list[tuple[Any, Any, str]] = [
    (
        _typed(np.zeros((1, 4)), "FP64", "fp32_contents"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "contents.fp64_contents",
    ),
    (
        _typed(np.zeros((1, 4)), "FP16", "fp32_contents"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "raw_input_contents",
    ),
    (
        _typed(np.zeros((1, 4)), "BYTES", "fp64_contents"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "not supported",
    ),
    (
        _typed(np.zeros((1, 3)), "FP64", "fp64_contents"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "expects 4 features",
    ),
    (
        _typed(np.full((1, 4), 300), "INT8", "int_contents"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "outside the range",
    ),
    (
        _typed(np.zeros((20_000, 4)), "FP64", "fp64_contents"),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "exceed the limit",
    ),
]


@pytest.mark.parametrize(("request_", "code", "message"), REFUSED)
def test_bad_requests_are_refused_with_a_message(
    detector: Detector, request_: Any, code: Any, message: str
) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        _infer(detector.grpc, request_)
    assert refused.value.code() == code
    assert message in refused.value.details()


def test_raw_contents_must_match_the_inputs(detector: Detector) -> None:
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="input-0", datatype="FP64", shape=[1, N_FEATURES])
    request.raw_input_contents.append(b"\0" * 8 * N_FEATURES)
    request.raw_input_contents.append(b"\0" * 8)
    with pytest.raises(grpc.RpcError, match="2 entries for 1 inputs"):
        _infer(detector.grpc, request)
    short = pb.ModelInferRequest(model_name="m")
    short.inputs.add(name="input-0", datatype="FP64", shape=[1, N_FEATURES])
    short.raw_input_contents.append(b"\0" * 8)
    with pytest.raises(grpc.RpcError, match="needs 32"):
        _infer(detector.grpc, short)


def test_metrics_label_grpc_calls(detector: Detector, queries: np.ndarray) -> None:
    def count(status: str) -> float:
        text = httpx.get(f"{detector.base}/metrics", timeout=10).text
        labels = {"method": "GRPC", "endpoint": "grpc:ModelInfer", "status": status}
        return metric_value(text, "pynomaly_requests_total", labels)

    def counted(expected: tuple[float, float]) -> bool:
        # Each worker folds its counts within metrics.FLUSH_SECONDS; the scrape may lag that.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if (count("200"), count("400")) == expected:
                return True
            time.sleep(0.05)
        return False

    time.sleep(4 * metrics.FLUSH_SECONDS)  # earlier tests' calls are folded by now
    ok, bad = count("200"), count("400")
    for _ in range(3):
        _infer(detector.grpc, _typed(queries, "FP64", "fp64_contents"))
    with pytest.raises(grpc.RpcError):
        _infer(detector.grpc, _typed(np.zeros((1, 3)), "FP64", "fp64_contents"))
    assert counted((ok + 3, bad + 1)), (count("200"), count("400"))


def test_token_auth_then_drain_and_clean_shutdown(tmp_path: Path, queries: np.ndarray) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"# rotated weekly\nold-token-abcdef\n{TOKEN}\n")
    env = {
        "PYNOMALY_SCORING_AUTH": "token",
        "PYNOMALY_API_TOKEN_FILE": str(token_file),
        "PYNOMALY_DRAIN_SECONDS": "2",
    }
    with running(tmp_path, **env) as detector:
        request = _typed(queries, "FP64", "fp64_contents")
        with pytest.raises(grpc.RpcError) as refused:
            _infer(detector.grpc, request)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as wrong:
            _infer(detector.grpc, request, metadata=[("authorization", "Bearer nope")])
        assert wrong.value.code() == grpc.StatusCode.UNAUTHENTICATED
        for token in (TOKEN, "old-token-abcdef"):
            granted = _infer(
                detector.grpc, request, metadata=[("authorization", f"Bearer {token}")]
            )
            assert len(_scores(granted)) == len(queries)
        # Probes stay open, like /livez and /readyz.
        live = _call(detector.grpc, "ServerLive", pb.ServerLiveRequest(), pb.ServerLiveResponse)
        assert live.live

        detector.process.send_signal(signal.SIGTERM)
        ready = _call(detector.grpc, "ServerReady", pb.ServerReadyRequest(), pb.ServerReadyResponse)
        deadline = time.monotonic() + 1.5
        while ready.ready and time.monotonic() < deadline:
            ready = _call(
                detector.grpc, "ServerReady", pb.ServerReadyRequest(), pb.ServerReadyResponse
            )
        assert not ready.ready  # readiness fails first ...
        served = _infer(detector.grpc, request, metadata=[("authorization", f"Bearer {TOKEN}")])
        assert len(_scores(served)) == len(queries)  # ... while scoring goes on
        assert detector.process.wait(timeout=40) == 0  # then a clean exit
        log = detector.log.read_text()
        assert "Traceback" not in log, log[-3000:]

"""The scoring routes, the hot path: /v1 detect and Open Inference Protocol v2 infer.

They live in their own router, included first, because FastAPI matches routes linearly;
they read the data plane from the request state directly (no dependency solving) and parse
bodies with orjson and numpy (no pydantic).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from starlette.responses import Response

from pynomaly_detector.api import deps
from pynomaly_detector.api.bodies import Bound, json_object, json_response
from pynomaly_detector.dataplane import LoadedModel
from pynomaly_detector.detectors.errors import InvalidInputError
from pynomaly_detector.scoring import rows as rowing

router = APIRouter(tags=["scoring"])


@router.post("/v1/models/{name}/detect")
async def detect(request: Request) -> Response:
    """Score ``{"instances": [[...], ...]}``: scores, is_anomaly, threshold, model, version."""
    # The hot path: no dependency solving or parameter validation, state read directly.
    plane = deps.plane_of(request)
    name: str = request.path_params["name"]
    model = await plane.model(name)  # its width bounds the body before it is parsed
    body = await json_object(request, _bound(plane.settings.max_instances_per_request, model))
    if "instances" not in body:
        raise InvalidInputError("'instances' is required: a list of rows")
    detection = await plane.detect(name, body["instances"])
    meta = detection.model.meta
    return json_response(
        {
            "scores": detection.scores,
            "is_anomaly": detection.is_anomaly,
            "threshold": meta.threshold,
            "model": meta.name,
            "version": meta.version,
        }
    )


def _bound(max_rows: int, model: LoadedModel) -> Bound:
    return Bound(rows=max_rows, values=max_rows * max(1, model.meta.n_features))


NUMERIC = frozenset(
    {
        "FP16",
        "FP32",
        "FP64",
        "INT8",
        "INT16",
        "INT32",
        "INT64",
        "UINT8",
        "UINT16",
        "UINT32",
        "UINT64",
    }
)


def _tensor(
    body: dict[str, Any], *, n_features: int, max_rows: int, booleans_possible: bool = True
) -> rowing.FloatArray:
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise InvalidInputError("'inputs' must be a list with exactly one tensor object")
    tensor = inputs[0]
    datatype = tensor.get("datatype")
    if datatype not in NUMERIC:
        raise InvalidInputError(
            f"datatype {datatype!r} is not supported; use one of FP32, FP64, INT64, ..."
        )
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise InvalidInputError("'shape' must be a list of non-negative integers")
    data = tensor.get("data")
    if not isinstance(data, list):
        raise InvalidInputError("'data' must be a list of numbers (flat or nested)")
    try:
        array = np.array(data)
    except (ValueError, TypeError, OverflowError):
        raise InvalidInputError("'data' must be numbers in a regular (non-ragged) layout") from None
    if array.dtype.kind not in "iuf" or (booleans_possible and _has_booleans(data)):
        raise InvalidInputError("'data' must contain only numbers (no strings, booleans or nulls)")
    if len(shape) == 1:
        shape = [1, shape[0]]
    if len(shape) != 2:
        raise InvalidInputError(f"expected shape [rows, {n_features}], got {shape}")
    if shape[0] > max_rows:
        raise rowing.TooManyRowsError(f"{shape[0]} rows exceed the limit of {max_rows} per request")
    if array.size != shape[0] * shape[1]:
        raise InvalidInputError(
            f"'data' has {array.size} values but shape {shape} needs {shape[0] * shape[1]}"
        )
    return rowing.checked(array.reshape(shape), n_features=n_features)


def _has_booleans(data: list[Any]) -> bool:
    """Whether a JSON boolean is nested anywhere in ``data`` (numpy turns true/false mixed
    with numbers into 1/0 without a word, at any depth)."""
    pending = [data]
    while pending:
        items = pending.pop()
        kinds = set(map(type, items))
        if bool in kinds:
            return True
        if list in kinds:
            pending.extend(item for item in items if type(item) is list)
    return False


@router.post("/v2/models/{name}/infer")
async def infer(request: Request) -> Response:
    """Scores and anomaly flags of one FP/INT tensor of shape [rows, features]."""
    plane = deps.plane_of(request)  # hot path: no dependency solving
    settings = plane.settings
    name: str = request.path_params["name"]
    model = await plane.model(name)
    body = await json_object(request, _bound(settings.max_instances_per_request, model))
    raw = await request.body()  # cached: no second read
    values = _tensor(
        body,
        n_features=model.meta.n_features,
        max_rows=settings.max_instances_per_request,
        # JSON booleans are the literals true/false: without those bytes there are none, and
        # the per-value type check (~35 us per 4,096 values) is skipped.
        booleans_possible=b"true" in raw or b"false" in raw,
    )
    detection = await plane.detect_matrix(model, values)
    rows = len(values)
    response: dict[str, Any] = {
        "model_name": name,
        "model_version": str(model.meta.version),
        "parameters": {"threshold": model.meta.threshold},
        "outputs": [
            {"name": "scores", "shape": [rows], "datatype": "FP64", "data": detection.scores},
            {
                "name": "is_anomaly",
                "shape": [rows],
                "datatype": "BOOL",
                "data": detection.is_anomaly,
            },
        ],
    }
    if "id" in body:
        response["id"] = body["id"]
    return json_response(response)

"""The scoring routes, the hot path: /v1 detect and Open Inference Protocol v2 infer.

They live in their own router, included first, because FastAPI matches routes linearly;
they read the data plane from the request state directly (no dependency solving) and parse
bodies with orjson and numpy (no pydantic).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from pynomaly_detector.api import deps, oip
from pynomaly_detector.api.bodies import Bound, json_object, json_response
from pynomaly_detector.detectors.errors import InvalidInputError

router = APIRouter(tags=["scoring"])

NO_CALIBRATION = (
    "this model version was fitted before calibration samples existed; refit it to get p-values"
)


@router.post("/v1/models/{name}/detect")
async def detect(request: Request) -> Response:
    """Score ``{"instances": [[...], ...]}``: scores, is_anomaly, threshold, model, version."""
    # The hot path: no dependency solving or parameter validation, state read directly.
    plane = deps.plane_of(request)
    name: str = request.path_params["name"]
    model = await plane.model(name)  # its width bounds the body before it is parsed
    bound = Bound.for_model(plane.settings.max_instances_per_request, model.meta.n_features)
    body = await json_object(request, bound)
    if "instances" not in body:
        raise InvalidInputError("'instances' is required: a list of rows")
    explain = body.get("explain", False)
    if type(explain) is not bool:
        raise InvalidInputError("'explain' must be true or false")
    if explain:
        plane.check_explainable(model)  # 422 before any scoring work
    detection = await plane.detect_rows(model, body["instances"])
    meta = detection.model.meta
    p_values = detection.p_values
    response = {
        "scores": detection.scores,
        "is_anomaly": detection.is_anomaly,
        "p_values": p_values,
        "threshold": meta.threshold,
        "model": meta.name,
        "version": meta.version,
    }
    if p_values is None:
        response["p_values_unavailable"] = NO_CALIBRATION
    if explain:
        response["explanations"] = await plane.explain(detection)
    return json_response(response)


@router.post("/v2/models/{name}/infer")
async def infer(request: Request) -> Response:
    """Scores and anomaly flags of FP/INT/BOOL tensors of [rows, features] (JSON or binary)."""
    return await oip.infer(request)

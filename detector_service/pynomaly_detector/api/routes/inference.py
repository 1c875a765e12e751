"""Open Inference Protocol v2 (KServe / MLServer REST): metadata and readiness (infer is in
``scoring``)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from pynomaly_detector.api import oip
from pynomaly_detector.api.bodies import json_response
from pynomaly_detector.api.deps import Plane
from pynomaly_detector.api.errors import error_response

router = APIRouter(prefix="/v2", tags=["open inference protocol"])


@router.get("")
async def server_metadata() -> Response:
    """Server name, version and protocol extensions (``binary_tensor_data``)."""
    return json_response(oip.server_metadata())


@router.get("/models/{name}")
async def metadata(name: str, plane: Plane) -> Response:
    """Model metadata in the protocol's shape."""
    meta = await plane.describe(name)
    return json_response(
        {
            "name": name,
            "versions": [str(meta.version)],
            "platform": f"pynomaly/{meta.algorithm}",
            "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, meta.n_features]}],
            "outputs": [
                {"name": "scores", "datatype": "FP64", "shape": [-1]},
                {"name": "is_anomaly", "datatype": "BOOL", "shape": [-1]},
            ],
        }
    )


@router.get("/models/{name}/ready")
async def model_ready(name: str, plane: Plane) -> Response:
    """200 when the model is loaded (loading it if needed)."""
    await plane.model(name)
    return json_response({"name": name, "ready": True})


@router.get("/health/live")
async def live() -> Response:
    """The process serves HTTP."""
    return json_response({"live": True})


@router.get("/health/ready")
async def ready(plane: Plane) -> Response:
    """Same verdict as /readyz."""
    if plane.ready():
        return json_response({"ready": True})
    return error_response(503, "not_ready", "see /readyz")

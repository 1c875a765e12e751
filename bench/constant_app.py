"""The HTTP ceiling: a FastAPI app that answers every scoring route with fixed JSON.

Same framework, server and worker count as the detector service, but no parsing and no
model, so its requests/s is the most any FastAPI-on-uvicorn scorer can reach on this
machine. Run by the benchmark as
    uvicorn constant_app:app --workers 1 --no-access-log --app-dir bench
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import Response

_DETECT = b'{"scores":[0.0],"is_anomaly":[false],"threshold":0.0,"model":"constant","version":1}'
_INFER = (
    b'{"model_name":"constant","outputs":[{"name":"scores","shape":[1],'
    b'"datatype":"FP64","data":[0.0]}]}'
)

app = FastAPI(title="constant endpoint (HTTP ceiling)")


@app.get("/v2/health/ready")
async def ready() -> dict[str, bool]:
    """Readiness, so the benchmark polls every server the same way."""
    return {"ready": True}


@app.post("/v1/models/{name}/detect")
async def detect(name: str) -> Response:
    """Fixed detect answer; the body is received by the server but never parsed."""
    return Response(content=_DETECT, media_type="application/json")


@app.post("/v2/models/{name}/infer")
async def infer(name: str) -> Response:
    """Fixed V2 answer; the body is received by the server but never parsed."""
    return Response(content=_INFER, media_type="application/json")

"""Probes and metrics: /livez checks nothing external, /readyz reports every dependency.

The verdict and the dependency checks are the data plane's (``DataPlane.readiness``); this
module only renders them. /readyz fails (503) while draining after SIGTERM and until the declared
model and warm-up are loaded. A database or Redis outage is *reported* (``"database":
"down"``) but does not fail readiness once models are loaded: replicas keep scoring from
memory, and failing every replica's readiness would turn a store outage into a total outage.
Fits answer 503 with a message while the database is down.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from starlette.responses import Response

from pynomaly_detector import metrics
from pynomaly_detector.api.bodies import json_response
from pynomaly_detector.api.deps import Plane

router = APIRouter(tags=["health"])


@router.get("/livez")
async def livez() -> Response:
    """The event loop answers."""
    return json_response({"live": True})


@router.get("/readyz")
async def readyz(plane: Plane) -> Response:
    """Readiness with the state of every dependency."""
    body = await plane.readiness()
    return json_response(body, status=200 if body["ready"] else 503)


@router.get("/metrics")
async def metrics_endpoint() -> Response:
    """Prometheus text exposition (all workers in multiprocess mode)."""
    metrics.flush()  # this worker's tallies, on the loop that counts them (no lock)
    body = await asyncio.to_thread(metrics.exposition)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

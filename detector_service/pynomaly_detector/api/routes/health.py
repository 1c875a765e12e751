"""Probes and metrics: /livez checks nothing external, /readyz reports every dependency.

Readiness decision: /readyz fails (503) while draining after SIGTERM and until the declared
model and warm-up are loaded. A database or Redis outage is *reported* (``"database":
"down"``) but does not fail readiness once models are loaded: replicas keep scoring from
memory, and failing every replica's readiness would turn a store outage into a total outage.
Fits answer 503 with a message while the database is down.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from pynomaly_detector import metrics
from pynomaly_detector.api.bodies import json_response
from pynomaly_detector.api.deps import AppHealth, AppSettings, Plane
from pynomaly_detector.api.routes.inference import is_ready

router = APIRouter(tags=["health"])


@router.get("/livez")
async def livez() -> Response:
    """The event loop answers."""
    return json_response({"live": True})


@router.get("/readyz")
async def readyz(plane: Plane, health: AppHealth, settings: AppSettings) -> Response:
    """Readiness with the state of every dependency."""
    database_up, redis_up = await asyncio.gather(
        _bounded(plane.store.ping()),
        _bounded(plane.l2.ping()) if plane.l2 is not None else _none(),
    )
    ready = is_ready(plane, health)
    body = {
        "ready": ready,
        "draining": health.draining,
        "declared_model": settings.model_name or None,
        "declared_model_loaded": plane.declared_ready,
        "warm": plane.warm,
        "models": plane.loaded,
        "store": plane.store.kind,
        "database": "up" if database_up else "down",
        "redis": "disabled" if redis_up is None else ("up" if redis_up else "down"),
    }
    if health.preparing_error:
        body["detail"] = health.preparing_error
    return json_response(body, status=200 if ready else 503)


async def _none() -> None:
    return None


PING_TIMEOUT = 0.5
"""Seconds a dependency may take to answer /readyz: kubelet's probe timeout is 1 s by default."""


async def _bounded(ping: Coroutine[Any, Any, bool]) -> bool:
    try:
        return await asyncio.wait_for(ping, PING_TIMEOUT)
    except TimeoutError:
        return False


@router.get("/metrics")
async def metrics_endpoint() -> Response:
    """Prometheus text exposition (all workers in multiprocess mode)."""
    body = await asyncio.to_thread(metrics.exposition)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

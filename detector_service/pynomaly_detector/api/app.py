"""The application factory and its lifespan (the composition root of a worker).

``create_app(settings, ...)`` takes every collaborator explicitly; the lifespan opens Redis,
builds the data plane (``dataplane.build``) with the store, the L2 cache and the
invalidation publisher, and yields typed state that routes reach through ``deps``. Warm-up
and the declared model are loaded in the background (retried with backoff by the data
plane), so the worker answers /livez at once and /readyz turns true when they are loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable
from types import FrameType
from typing import Any, TypedDict

from fastapi import FastAPI
from redis.asyncio import Redis
from starlette.types import ASGIApp, Receive, Scope, Send

from pynomaly_detector import dataplane, logs, metrics, probes
from pynomaly_detector.api import errors, middleware, openapi
from pynomaly_detector.api.fastpath import ScoringRoutes, is_scoring
from pynomaly_detector.api.ratelimiting import RateLimiter
from pynomaly_detector.api.routes import feedback, health, inference, models, promote, scoring
from pynomaly_detector.caching import redis_clients
from pynomaly_detector.caching.invalidation import Invalidation
from pynomaly_detector.caching.redis_cache import RedisScoreCache
from pynomaly_detector.caching.snapshots import SharedSnapshots
from pynomaly_detector.caching.usage import ModelUsage
from pynomaly_detector.dataplane import DataPlane
from pynomaly_detector.registry.local import LocalStore
from pynomaly_detector.registry.postgres import PostgresStore
from pynomaly_detector.registry.store import ModelStore
from pynomaly_detector.settings import Settings

log = logging.getLogger(__name__)


class State(TypedDict):
    """What the lifespan yields; Starlette copies it into every request's ``state``."""

    settings: Settings
    plane: DataPlane
    limiter: RateLimiter | None


class DetectorApp(FastAPI):
    """FastAPI, with the scoring routes served before FastAPI's own stack (``api.fastpath``)."""

    scoring: ASGIApp | None = None
    """detect and infer behind the edge layer; ``None`` sends them through FastAPI too."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.scoring is not None and is_scoring(scope):
            scope["app"] = self
            try:
                await self.scoring(scope, receive, send)
            except Exception:
                # A bug (known errors are answered inside): the JSON 500, unless the response
                # has started (then this send fails), and up to the server, as FastAPI's
                # ServerErrorMiddleware does.
                log.exception("unhandled error on POST %s", scope["path"])
                with contextlib.suppress(Exception):
                    await errors.internal_error_response()(scope, receive, send)
                raise
            return
        await super().__call__(scope, receive, send)


def build_store(settings: Settings) -> ModelStore:
    """Postgres when ``database_url`` is set, else the embedded directory store."""
    if settings.database_url:
        return PostgresStore(
            settings.database_url,
            password=settings.database_password.get_secret_value() or None,
            min_size=settings.database_pool_min_size,
            max_size=settings.database_pool_max_size,
            timeout=settings.database_connect_timeout_seconds,
            acquire_timeout=settings.database_pool_acquire_timeout_seconds,
        )
    return LocalStore(settings.model_dir)


def create_app(
    settings: Settings,
    *,
    store: ModelStore | None = None,
    handle_signals: bool = False,
) -> FastAPI:
    """The FastAPI app of one worker. ``handle_signals`` hooks SIGTERM to fail readiness first."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[State]:
        redis = redis_clients.create(settings)
        l2 = (
            RedisScoreCache(
                redis,
                prefix=settings.cache_redis_key_prefix,
                ttl_seconds=settings.cache_redis_ttl_seconds,
                backoff_max=settings.redis_backoff_max_seconds,
            )
            if redis is not None
            else None
        )
        invalidation = (
            Invalidation(
                redis,
                channel=f"{settings.cache_redis_key_prefix}invalidate",
                backoff_max=settings.redis_backoff_max_seconds,
            )
            if isinstance(redis, Redis)
            else None
        )
        plane = dataplane.build(
            settings,
            store=store or build_store(settings),
            l2=l2,
            announce=invalidation.publish if invalidation is not None else None,
            shared=SharedSnapshots(
                redis,
                prefix=settings.cache_redis_key_prefix,
                stale_seconds=settings.drift_stale_seconds,
            )
            if redis is not None
            else None,
            usage=ModelUsage(os.environ.get(probes.STATUS_DIR_ENV)),
        )
        limiter = (
            RateLimiter(
                rate=settings.rate_limit_requests_per_second,
                burst=settings.rate_limit_burst,
                redis=redis,
                prefix=settings.cache_redis_key_prefix,
            )
            if settings.rate_limit_requests_per_second > 0
            else None
        )
        if not settings.api_token_file:
            log.warning(
                "development mode: PYNOMALY_API_TOKEN_FILE is not set, so anyone who reaches "
                "this port may fit, delete and read the anomaly log of any model"
            )
        metrics.flush()  # counts of an earlier loop in this process (tests) are not left behind
        await plane.start()
        status = probes.WorkerStatus()
        tasks = [
            asyncio.create_task(plane.prepare_until_done(), name="prepare"),
            asyncio.create_task(_sample_memory(), name="memory"),
            asyncio.create_task(_report(status, plane), name="status"),
            asyncio.create_task(plane.revalidate_forever(), name="revalidate"),
        ]
        if plane.monitor is not None:
            tasks.append(asyncio.create_task(plane.monitor.publish_forever(), name="drift"))
        if plane.shadow is not None:
            tasks.append(asyncio.create_task(plane.shadow.run(), name="shadow"))
        if invalidation is not None:
            tasks.append(
                asyncio.create_task(invalidation.run(plane.changed_elsewhere), name="invalidation")
            )

        def drain() -> None:
            plane.drain()
            status.draining, status.ready = True, False
            status.write()  # the probe listener fails readiness now, not at the next beat

        grpc_server = await _start_grpc(settings, plane, limiter)
        restore = _drain_on_sigterm(drain, settings) if handle_signals else None
        try:
            yield {"settings": settings, "plane": plane, "limiter": limiter}
        finally:
            plane.drain()
            if restore is not None:
                restore()
            if grpc_server is not None:  # new RPCs refused, those in flight finish
                await grpc_server.stop(settings.graceful_shutdown_seconds)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            status.remove()
            await plane.close()
            metrics.flush()  # the last quarter-second of counting, before the worker exits
            if redis is not None:
                with contextlib.suppress(Exception):
                    await redis.aclose()

    layers = middleware.stack(settings)
    app = DetectorApp(
        title="Pynomaly detector",
        version="0.1.0",
        lifespan=lifespan,
        middleware=layers,
        docs_url=None,
        redoc_url=None,
        # Prometheus metrics are ours; FastAPI's native OpenTelemetry hooks cost time per request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    errors.install(app)
    app.openapi = lambda: openapi.document(app, settings)  # type: ignore[method-assign]  # FastAPI's documented way to replace the document
    # Declared for the OpenAPI document (and matched first: matching is linear in the routes);
    # requests to them are served by ``app.scoring`` before FastAPI's stack.
    app.include_router(scoring.router)
    app.include_router(inference.router)
    app.include_router(models.router)
    app.include_router(feedback.router)
    app.include_router(promote.router)
    app.include_router(health.router)
    app.scoring = middleware.wrap(layers, ScoringRoutes(list(scoring.router.routes)))
    return app


async def _report(status: probes.WorkerStatus, plane: DataPlane) -> None:
    """This worker's report to the probe listener, from its event loop once a second."""
    while True:
        status.ready = plane.ready()
        status.draining = plane.draining
        status.write()
        plane.usage.save()
        await asyncio.sleep(probes.HEARTBEAT_SECONDS)


async def _start_grpc(settings: Settings, plane: DataPlane, limiter: RateLimiter | None) -> Any:
    """The worker's gRPC server when ``grpc_port`` is set (grpc is imported only then)."""
    if not settings.grpc_port:
        return None
    from pynomaly_detector.api.grpc import server
    from pynomaly_detector.tokens import TokenFile

    tokens = TokenFile(settings.api_token_file) if settings.scoring_auth == "token" else None
    return await server.start(settings, plane=plane, tokens=tokens, limiter=limiter)


async def _sample_memory() -> None:
    while True:
        metrics.sample_memory()
        await asyncio.sleep(10)


def _drain_on_sigterm(drain: Callable[[], None], settings: Settings) -> Any:
    """Wrap uvicorn's SIGTERM handler: fail readiness now, stop listening after the drain."""
    try:
        previous = signal.getsignal(signal.SIGTERM)
    except ValueError:  # not the main thread
        return None
    if not callable(previous):
        return None
    loop = asyncio.get_running_loop()

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        drain()
        log.info("SIGTERM: readiness fails now, shutting down in %ss", settings.drain_seconds)
        if settings.drain_seconds > 0:
            loop.call_soon_threadsafe(
                loop.call_later, settings.drain_seconds, previous, signum, frame
            )
        else:
            previous(signum, frame)

    try:
        signal.signal(signal.SIGTERM, on_sigterm)
    except ValueError:
        return None

    def restore() -> None:
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGTERM, previous)

    return restore


def from_environment() -> FastAPI:
    """uvicorn factory (``--factory``): settings from ``PYNOMALY_*``, JSON logs, SIGTERM drain."""
    settings = Settings()
    logs.configure(settings.log_level)
    return create_app(settings, handle_signals=True)

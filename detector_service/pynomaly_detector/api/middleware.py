"""The middleware stack, pure ASGI (no ``BaseHTTPMiddleware``: it costs a task per request).

Outermost first, as the performance guide orders it: security headers, gzip, rate
limiting, metrics, CORS, request logging, bearer-token authentication (``auth``); then the
body size limit and the request deadline closest to the routes. ``stack`` returns them in
that order. A feature that is off costs nothing: rate limiting, CORS and authentication are
only installed when configured, gzip only wraps responses of clients that accept it, and the
access log is batched (``logs``).
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import orjson
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pynomaly_detector import logs, metrics
from pynomaly_detector.api.auth import BearerAuth
from pynomaly_detector.api.errors import BodyTooLargeError
from pynomaly_detector.settings import Settings
from pynomaly_detector.tokens import TokenFile

UNMONITORED = frozenset({"/livez", "/readyz", "/metrics", "/v2/health/live", "/v2/health/ready"})
"""Probe and scrape paths: not counted, not timed, not logged."""


async def _send_json(
    send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    payload = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class SecurityHeaders:
    """Adds conservative security headers to every response (and ``connection: close``
    while the worker drains after SIGTERM)."""

    HEADERS = [
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
        (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
        (b"cache-control", b"no-store"),
    ]

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        plane = scope.get("state", {}).get("plane")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *self.HEADERS]
                if plane is not None and plane.draining:
                    # Draining: clients reconnect (to another pod) instead of reusing this one.
                    message["headers"].append((b"connection", b"close"))
            await send(message)

        await self.app(scope, receive, with_headers)


class Gzip:
    """Starlette's gzip for clients that accept it; other requests pass straight through.

    Starlette wraps every response in a responder that inspects its messages, accepted
    encoding or not (about 10 us per request); this checks the header first.
    """

    def __init__(self, app: ASGIApp, *, minimum_size: int = 1024) -> None:
        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=minimum_size)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for key, value in scope["headers"]:
                if key == b"accept-encoding":
                    if b"gzip" in value:
                        await self.gzip(scope, receive, send)
                        return
                    break
        await self.app(scope, receive, send)


class RateLimit:
    """429 when the client exceeds the limiter in the lifespan state (probes are exempt)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limiter = scope.get("state", {}).get("limiter")
        if scope["type"] != "http" or limiter is None or scope["path"] in UNMONITORED:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        if not await limiter.allow(client[0] if client else "unknown"):
            metrics.RATE_LIMITED.inc()
            await _send_json(
                send,
                429,
                {"error": "rate_limited", "detail": "request rate limit exceeded; retry later"},
                [(b"retry-after", b"1")],
            )
            return
        await self.app(scope, receive, send)


class Metrics:
    """Counts and times requests by method, route template and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        """Tallied children by (method, endpoint, status): ``labels()`` locks and validates."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNMONITORED:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        metrics.ACTIVE.inc()
        try:
            await self.app(scope, receive, capture)
        finally:
            metrics.ACTIVE.dec()
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            key = (scope["method"], endpoint, status)
            series = self._series.get(key)
            if series is None:
                series = (
                    metrics.tally(metrics.REQUESTS.labels(key[0], endpoint, str(status))),
                    metrics.tally_histogram(metrics.REQUEST_DURATION.labels(key[0], endpoint)),
                )
                if len(self._series) < 10_000:
                    self._series[key] = series
            series[0].inc()
            series[1].observe(time.perf_counter() - started)


class RequestLog:
    """One JSON log line per request, with a request id (``X-Request-ID`` in and out)."""

    def __init__(self, app: ASGIApp, *, enabled: bool = True) -> None:
        self.app = app
        self.log = logs.AccessLog() if enabled else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNMONITORED:
            await self.app(scope, receive, send)
            return
        request_id = b""
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                request_id = value[:128]
                break
        if not request_id:
            # Not a secret: a fast PRNG is enough (os.urandom is a syscall per request).
            request_id = b"%016x" % random.getrandbits(64)
        started = time.perf_counter()
        status = 500

        async def tag(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id)]
            await send(message)

        try:
            await self.app(scope, receive, tag)
        finally:
            if self.log is not None and self.log.enabled():
                client = scope.get("client")
                self.log.write(
                    {
                        "request_id": request_id.decode(errors="replace"),
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                        "client": client[0] if client else None,
                    }
                )


class BodyLimit:
    """413 for bodies above ``max_bytes`` (declared or streamed)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope["headers"]:
            if key == b"content-length":
                if value.isdigit() and int(value) > self.max_bytes:
                    await _send_json(
                        send,
                        413,
                        {
                            "error": "body_too_large",
                            "detail": f"request body exceeds {self.max_bytes} bytes",
                        },
                    )
                    return
                break
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLargeError(f"request body exceeds {self.max_bytes} bytes")
            return message

        await self.app(scope, counted, send)


class Deadline:
    """504 with a message when a request runs longer than ``seconds``."""

    def __init__(self, app: ASGIApp, *, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNMONITORED:
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        deadline = asyncio.timeout(self.seconds)
        try:
            async with deadline:
                await self.app(scope, receive, watch)
        except TimeoutError:
            if not deadline.expired():
                raise
            if started:
                return  # headers already sent: nothing better to do than end the response
            await _send_json(
                send,
                504,
                {
                    "error": "deadline_exceeded",
                    "detail": f"request did not complete within {self.seconds:g} seconds",
                },
            )


def stack(settings: Settings) -> list[Middleware]:
    """The middleware list, outermost first."""
    layers = [Middleware(SecurityHeaders), Middleware(Gzip, minimum_size=1024)]
    if settings.rate_limit_requests_per_second > 0:
        layers.append(Middleware(RateLimit))
    layers.append(Middleware(Metrics))
    if settings.cors_origins:
        layers.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["GET", "POST", "PUT", "DELETE"],
                allow_headers=["*"],
            )
        )
    layers.append(Middleware(RequestLog, enabled=settings.access_log))
    if settings.api_token_file:
        tokens = TokenFile(settings.api_token_file)
        layers.append(
            Middleware(BearerAuth, tokens=tokens, scoring=settings.scoring_auth == "token")
        )
    layers += [
        Middleware(BodyLimit, max_bytes=settings.max_body_bytes),
        Middleware(Deadline, seconds=settings.request_timeout_seconds),
    ]
    return layers

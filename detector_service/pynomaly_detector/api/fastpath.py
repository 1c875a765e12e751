"""A pure-ASGI dispatcher for the two scoring routes, innermost in the middleware stack.

FastAPI's per-request machinery (exception middleware, exit stacks, route matching over
every route, dependency solving) costs more than scoring a row from the L1 cache. For
``POST /v1/models/{name}/detect`` and ``POST /v2/models/{name}/infer`` this layer calls the
same endpoint functions (``routes.scoring``) directly and maps errors with the same table
as the exception handlers; every other request, and any error it does not know, goes
through FastAPI unchanged. The FastAPI routes stay registered (OpenAPI, fallback), and the
outer middleware (metrics, logging, body limit, deadline) applies as for any route.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from pynomaly_detector.api import errors
from pynomaly_detector.api.routes import scoring

Endpoint = Callable[[Request], Awaitable[Response]]

_PATH = re.compile(r"^/(v1/models/([^/]+)/detect|v2/models/([^/]+)/infer)$")


class ScoringFastPath:
    """Serves the scoring routes without FastAPI's routing layer."""

    def __init__(self, app: ASGIApp, *, routes: list[BaseRoute] | None = None) -> None:
        self.app = app
        by_path = {getattr(route, "path", None): route for route in routes or []}
        self._detect = by_path.get("/v1/models/{name}/detect")
        self._infer = by_path.get("/v2/models/{name}/infer")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        match = _PATH.match(scope["path"])
        if match is None:
            await self.app(scope, receive, send)
            return
        endpoint: Endpoint
        if match.group(2) is not None:
            endpoint, route, name = scoring.detect, self._detect, match.group(2)
        else:
            endpoint, route, name = scoring.infer, self._infer, match.group(3)
        scope["route"] = route  # the metrics middleware labels requests by route template
        scope["path_params"] = {"name": name}
        try:
            response = await endpoint(Request(scope, receive))
        except Exception as error:
            known = errors.response_for(error)
            if known is None:
                raise
            response = known
        await response(scope, receive, send)

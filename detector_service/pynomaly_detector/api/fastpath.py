"""The two scoring routes served outside FastAPI's stack, behind the same edge layer.

FastAPI wraps every request in ServerErrorMiddleware, its exception-telemetry and
body-limit layers, ExceptionMiddleware, an exit stack, routing over every route and
dependency solving: more than scoring a row from the L1 cache costs. ``DetectorApp`` (a
FastAPI subclass, ``api.app``) hands ``POST /v1/models/{name}/detect`` and
``POST /v2/models/{name}/infer`` to ``ScoringRoutes`` behind the same middleware list
(``middleware.wrap``: security headers, gzip, rate limit, metrics, request log, auth, body
limit, deadline) before any of that runs, and sends everything else to FastAPI.

``ScoringRoutes`` calls the same endpoint functions (``routes.scoring``) and answers errors
as the exception handlers do (``errors.response_for``, ``HTTPException``); an unexpected
error goes up to ``DetectorApp``, which logs it, answers 500 with the JSON error shape and
re-raises, as FastAPI's ServerErrorMiddleware does (outside the middleware, so that 500 has
no edge headers either). The FastAPI routes stay declared for the OpenAPI document.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import Receive, Scope, Send

from pynomaly_detector.api import errors
from pynomaly_detector.api.routes import scoring

Endpoint = Callable[[Request], Awaitable[Response]]

_PATH = re.compile(r"^/(?:v1/models/([^/]+)/detect|v2/models/([^/]+)/infer)$")

_MATCHED: dict[str, tuple[bool, str] | None] = {}
"""Path -> (v1?, model name), or None for other paths: clients repeat a few paths, and
``is_scoring`` and ``ScoringRoutes`` both need the match (bounded: cleared when full)."""
_MATCHED_MAX = 4096


def _match(path: str) -> tuple[bool, str] | None:
    try:
        return _MATCHED[path]
    except KeyError:
        pass
    found = _PATH.match(path)
    matched = (
        None if found is None else (found.group(1) is not None, found.group(1) or found.group(2))
    )
    if len(_MATCHED) >= _MATCHED_MAX:
        _MATCHED.clear()
    _MATCHED[path] = matched
    return matched


def is_scoring(scope: Scope) -> bool:
    """Whether ``scope`` is a scoring request (``POST`` detect or infer)."""
    return (
        scope["type"] == "http" and scope["method"] == "POST" and _match(scope["path"]) is not None
    )


class ScoringRoutes:
    """Serves detect and infer without FastAPI: endpoint call and error responses."""

    def __init__(self, routes: list[BaseRoute]) -> None:
        by_path = {getattr(route, "path", None): route for route in routes}
        self._detect = by_path.get("/v1/models/{name}/detect")
        self._infer = by_path.get("/v2/models/{name}/infer")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = _match(scope["path"])
        assert match is not None  # is_scoring chose this layer
        endpoint: Endpoint
        v1, name = match
        if v1:
            endpoint, route = scoring.detect, self._detect
        else:
            endpoint, route = scoring.infer, self._infer
        scope["route"] = route  # the metrics label requests by route template
        scope["path_params"] = {"name": name}
        try:
            response = await endpoint(Request(scope, receive))
        except HTTPException as error:
            response = errors.http_error_response(error)
        except Exception as error:
            known = errors.response_for(error)
            if known is None:
                raise  # DetectorApp answers the JSON 500 and re-raises, as FastAPI would
            response = known
        await response(scope, receive, send)

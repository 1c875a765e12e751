"""HTTP error types and handlers: every error is ``{"error": ..., "detail": ...}``.

Bad input of any kind is a 4xx with a message; a 500 means a bug (logged with a traceback).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from pynomaly_detector.detectors.errors import DetectorError
from pynomaly_detector.detectors.fitting import FitFailedError, FitTimeoutError
from pynomaly_detector.registry.models import DeclaredNotFittedError, ModelNotFoundError
from pynomaly_detector.registry.signing import ArtifactRejectedError
from pynomaly_detector.registry.store import NothingToPromoteError, StoreUnavailableError
from pynomaly_detector.scoring.rows import TooManyRowsError
from pynomaly_detector.scoring.tensors import TensorError

log = logging.getLogger(__name__)


class BadRequestError(Exception):
    """The body is not the JSON the endpoint expects (400)."""


class BodyTooLargeError(Exception):
    """The body exceeds ``max_body_bytes`` (413)."""


def validation_problems(error: ValidationError) -> str:
    """A pydantic validation error as one line: ``field.path: message; ...``."""
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}" for item in error.errors()
    )


def error_response(
    status: int, error: str, detail: Any, headers: dict[str, str] | None = None
) -> Response:
    """A JSON error response."""
    return Response(
        orjson.dumps({"error": error, "detail": detail}),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


_STATUS: list[tuple[type[Exception], int, str]] = [
    # The client went away mid-body: nobody reads the answer, and it is not a bug to log.
    (ClientDisconnect, 400, "client_disconnected"),
    (TooManyRowsError, 413, "too_many_rows"),
    (TensorError, 400, "invalid_tensor"),
    (FitTimeoutError, 422, "fit_timeout"),
    (DetectorError, 422, "invalid_input"),
    (FitFailedError, 503, "fit_failed"),
    (BadRequestError, 400, "bad_request"),
    (BodyTooLargeError, 413, "body_too_large"),
    (DeclaredNotFittedError, 404, "model_not_fitted"),
    (ModelNotFoundError, 404, "model_not_found"),
    (NothingToPromoteError, 409, "nothing_to_promote"),
    (StoreUnavailableError, 503, "store_unavailable"),
    (ArtifactRejectedError, 503, "artifact_rejected"),
]


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    for kind, status, error in _STATUS:
        app.add_exception_handler(kind, _handler(status, error))
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(Exception, _bug)


def _handler(status: int, error: str) -> Any:
    async def handle(request: Request, exc: Exception) -> Response:
        return _respond(status, error, exc)

    return handle


def _respond(status: int, error: str, exc: Exception) -> Response:
    if status >= 500:
        log.warning("%s: %s", error, exc)
    message = exc.args[0] if len(exc.args) == 1 else str(exc)
    return error_response(status, error, message)


def response_for(exc: Exception) -> Response | None:
    """The error response of a known error type (what the handlers send), else ``None``."""
    for kind, status, error in _STATUS:
        if isinstance(exc, kind):
            return _respond(status, error, exc)
    return None


async def _validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    detail = [
        {"loc": list(item.get("loc", ())), "msg": item.get("msg", "")} for item in exc.errors()
    ]
    return error_response(422, "invalid_request", detail)


def http_error_response(exc: HTTPException) -> Response:
    """The response of a Starlette ``HTTPException`` (404 and 405 by name)."""
    names = {404: "not_found", 405: "method_not_allowed"}
    return error_response(
        exc.status_code,
        names.get(exc.status_code, "http_error"),
        exc.detail,
        headers=dict(exc.headers) if exc.headers else None,
    )


def internal_error_response() -> Response:
    """The 500 of an unexpected error (a bug; its traceback is logged, not sent)."""
    return error_response(500, "internal_error", "an unexpected error occurred; it was logged")


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return http_error_response(exc)


async def _bug(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return internal_error_response()

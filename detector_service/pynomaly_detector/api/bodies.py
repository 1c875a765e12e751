"""Request and response bodies: orjson in and out, no pydantic on the scoring path."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request
from starlette.responses import Response

from pynomaly_detector.api.errors import BadRequestError

_NUMPY = orjson.OPT_SERIALIZE_NUMPY


async def json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object, or ``BadRequestError`` saying what is wrong."""
    raw = await request.body()
    if not raw:
        raise BadRequestError("the request body is empty; send a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise BadRequestError(f"the request body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise BadRequestError("the request body must be a JSON object")
    return body


def json_response(body: Any, *, status: int = 200) -> Response:
    """``body`` serialised with orjson (numpy arrays included)."""
    return Response(
        orjson.dumps(body, option=_NUMPY), status_code=status, media_type="application/json"
    )

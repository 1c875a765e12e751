"""Request and response bodies: orjson in and out, no pydantic on the scoring path.

Scoring bodies are bounded *while they are read*, before anything is parsed: a JSON array is
opened by ``[`` and values are separated by ``,``, so counting those two bytes in each
received chunk (memchr speed, ~1 ms per MiB) bounds how many rows and values the parse
would create. A body past the bound is refused with 413 as soon as the chunk that crosses it
arrives; the rest is never read or parsed. (Parsing first cost +1.8 GB and an 8 s stall of
the event loop, probes included, for a 60 MB body of short rows.) Brackets and commas inside
JSON strings count too: the bound is conservative, and scoring bodies have no long strings.

Large bodies are parsed with the cyclic garbage collector paused: orjson allocates one list
per row, and the collections those allocations trigger made parsing ~3x slower.
"""

from __future__ import annotations

import functools
import gc
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import Request
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from pynomaly_detector import protocol
from pynomaly_detector.api.errors import BadRequestError
from pynomaly_detector.scoring.rows import TooManyRowsError

_NUMPY = orjson.OPT_SERIALIZE_NUMPY

SLACK = 64
"""Arrays and commas a body may hold besides its rows and values (keys, shape, nesting)."""

GC_PAUSE_BYTES = 256 * 1024
"""Bodies at least this large are parsed with the cyclic garbage collector paused."""


@dataclass(frozen=True, slots=True)
class Bound:
    """The most rows and values a scoring body may carry (checked before parsing)."""

    rows: int
    """Rows per request (``max_instances_per_request``)."""
    values: int | None = None
    """Numbers per request (rows x the model's features), when the model is known."""

    def check(self, arrays: int, commas: int) -> None:
        """``TooManyRowsError`` when the counted brackets or commas exceed the bound."""
        if arrays > self.rows + SLACK:
            raise TooManyRowsError(
                f"the body holds more than {self.rows} rows (JSON arrays counted before parsing); "
                f"at most {self.rows} rows per request"
            )
        if self.values is not None and commas > self.values + SLACK:
            raise TooManyRowsError(
                f"the body holds more than {self.values} values (counted before parsing); "
                f"at most {self.values} values (rows x features) per request"
            )

    @classmethod
    def for_model(cls, max_rows: int, n_features: int) -> Bound:
        """The bound of a scoring body for a model of ``n_features`` features."""
        return _model_bound(max_rows, n_features)


@functools.lru_cache(maxsize=256)
def _model_bound(max_rows: int, n_features: int) -> Bound:
    # Frozen and equal for equal arguments: one per (limit, width) instead of one per request.
    return Bound(rows=max_rows, values=max_rows * max(1, n_features))


async def read_bounded(request: Request, bound: Bound) -> bytes:
    """The raw body, refused with 413 as soon as it crosses ``bound`` (cached on ``request``)."""
    if hasattr(request, "_body"):  # read before (Starlette's cache)
        cached: bytes = request._body
        bound.check(cached.count(b"["), cached.count(b","))
        return cached
    chunks: list[bytes] = []
    arrays = commas = 0
    # ``request.stream()``'s loop, without an async generator per request (its creation,
    # the loop's finalizer registration and a resumption per chunk cost microseconds).
    if request._stream_consumed:
        raise RuntimeError("Stream consumed")
    receive = request.receive
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "http.request":
            chunk = message.get("body", b"")
            if chunk:
                arrays += chunk.count(b"[")
                commas += chunk.count(b",")
                bound.check(arrays, commas)
                chunks.append(chunk)
            if not message.get("more_body", False):
                request._stream_consumed = True
                break
        elif kind == "http.disconnect":
            request._is_disconnected = True
            raise ClientDisconnect()
    raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    request._body = raw  # Starlette's own cache: later ``request.body()`` calls return it
    return raw


def loads_object(raw: bytes) -> dict[str, Any]:
    """``raw`` as a JSON object, or ``BadRequestError`` saying what is wrong."""
    if not raw:
        raise BadRequestError("the request body is empty; send a JSON object")
    paused = len(raw) >= GC_PAUSE_BYTES and gc.isenabled()
    if paused:
        gc.disable()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise BadRequestError(f"the request body is not valid JSON: {error}") from None
    finally:
        if paused:
            gc.enable()
    if not isinstance(body, dict):
        raise BadRequestError("the request body must be a JSON object")
    return body


async def json_object(request: Request, bound: Bound | None = None) -> dict[str, Any]:
    """The body as a JSON object; with ``bound``, checked while it is read (413 beyond)."""
    raw = await (request.body() if bound is None else read_bounded(request, bound))
    return loads_object(raw)


_CONTENT_TYPE = (b"content-type", b"application/json")
protocol.preset([_CONTENT_TYPE])  # written by the HTTP protocol without per-request checks


class JSONBytes(Response):
    """A response of JSON bytes already serialised: Starlette's ``Response`` with the same
    headers (content-length, content-type), built without its content and header checks."""

    media_type = "application/json"

    def __init__(self, body: bytes, status_code: int = 200) -> None:
        self.status_code = status_code
        self.background = None
        self.body = body
        self.raw_headers = [(b"content-length", str(len(body)).encode()), _CONTENT_TYPE]


def json_response(body: Any, *, status: int = 200) -> Response:
    """``body`` serialised with orjson (numpy arrays included)."""
    return JSONBytes(orjson.dumps(body, option=_NUMPY), status)

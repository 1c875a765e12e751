"""The protocol writes a response start exactly as uvicorn's own send would.

``protocol.preset`` header pairs are written as lines rendered once; everything else takes
uvicorn's checks. Both protocols are driven here through in-memory transports on a real
event loop, with the same request and the same ASGI app; the bytes they write must be equal.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from pynomaly_detector import protocol
from pynomaly_detector.api.bodies import JSONBytes
from pynomaly_detector.api.middleware import SECURITY_HEADERS

BODY = b'{"ok":true}'


class Transport(asyncio.Transport):
    """Keeps what is written."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 4000)}.get(name, default)

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _app(headers: list[Any], status: int = 200, body: bytes = BODY) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await receive()
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


async def _exchange(cls: type[HttpToolsProtocol], app: Any, request: bytes) -> bytes:
    return b"".join(await _writes(cls, app, request))


async def _writes(cls: type[HttpToolsProtocol], app: Any, request: bytes) -> list[bytes]:
    # No uvicorn access line, as the service runs (``logs.configure``): with one, our send
    # hands the response start to uvicorn's.
    config = Config(app, lifespan="off", server_header=False, date_header=False, access_log=False)
    config.load()
    loop = asyncio.get_running_loop()
    transport = Transport()
    proto = cls(config=config, server_state=ServerState(), app_state={}, _loop=loop)
    proto.connection_made(transport)
    proto.data_received(request)
    for _ in range(50):
        await asyncio.sleep(0)
        if proto.cycle is not None and proto.cycle.response_complete:
            break
    proto.connection_lost(None)
    return transport.written


GET = b"GET /x HTTP/1.1\r\nhost: a\r\n\r\n"
HEAD = b"HEAD /x HTTP/1.1\r\nhost: a\r\n\r\n"
CLOSE = b"GET /x HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n"
HTTP10 = b"GET /x HTTP/1.0\r\nhost: a\r\n\r\n"
LENGTH = (b"content-length", str(len(BODY)).encode())


@pytest.mark.parametrize(
    ("headers", "request_bytes"),
    [
        ([LENGTH, *SECURITY_HEADERS], GET),
        ([*SECURITY_HEADERS, LENGTH], GET),
        # an equal pair that is not the preset object: uvicorn's path, same bytes
        ([LENGTH, (b"cache-control", b"no-store"), *SECURITY_HEADERS], GET),
        ([LENGTH, [b"x-frame-options", b"DENY"]], GET),
        ([LENGTH, (b"X-Upper", b"v"), *SECURITY_HEADERS], GET),
        ([*SECURITY_HEADERS], GET),  # no length: chunked
        ([*SECURITY_HEADERS, (b"connection", b"close"), LENGTH], GET),
        ([LENGTH, *SECURITY_HEADERS], CLOSE),
        ([LENGTH, *SECURITY_HEADERS], HTTP10),
        ([LENGTH, *SECURITY_HEADERS], HEAD),
        (JSONBytes(BODY).raw_headers + SECURITY_HEADERS, GET),
    ],
)
async def test_the_bytes_written_are_uvicorns(headers: list[Any], request_bytes: bytes) -> None:
    app = _app(headers)
    ours = await _exchange(protocol.GuardedHttpToolsProtocol, app, request_bytes)
    theirs = await _exchange(HttpToolsProtocol, app, request_bytes)
    assert ours == theirs
    assert ours.startswith(b"HTTP/1.1 200 OK\r\n")


@pytest.mark.parametrize("status", [204, 304, 404, 500])
async def test_other_statuses_are_framed_as_uvicorn_frames_them(status: int) -> None:
    app = _app([*SECURITY_HEADERS], status=status, body=b"")
    ours = await _exchange(protocol.GuardedHttpToolsProtocol, app, GET)
    assert ours == await _exchange(HttpToolsProtocol, app, GET)


async def test_an_invalid_header_value_is_still_refused() -> None:
    app = _app([LENGTH, (b"x-request-id", b"bad\x01value")])
    ours = await _exchange(protocol.GuardedHttpToolsProtocol, app, GET)
    # uvicorn refuses the start (RuntimeError, logged); it has marked the response started,
    # so it closes the connection without writing anything: so does ours.
    assert ours == await _exchange(HttpToolsProtocol, app, GET)
    assert ours == b""


def test_a_header_that_frames_the_body_cannot_be_preset() -> None:
    with pytest.raises(ValueError, match="framing"):
        protocol.preset([(b"content-length", b"1")])
    with pytest.raises(ValueError, match="lower-case"):
        protocol.preset([(b"X-Upper", b"v")])
    with pytest.raises(ValueError, match="valid"):
        protocol.preset([(b"x-ok", b"bad\nvalue")])


async def test_a_served_request_leaves_nothing_for_the_garbage_collector() -> None:
    # Every request's objects must be freed by reference counting when it ends: cyclic
    # garbage is freed only by collections, whose cost grows with it (setting ``send`` on
    # the cycle instance made ~10 such objects a request, ~30 us of collection each).
    app = _app([*SECURITY_HEADERS, LENGTH])
    await _exchange(protocol.GuardedHttpToolsProtocol, app, GET)  # imports, first-use caches
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(20):
            assert (await _exchange(protocol.GuardedHttpToolsProtocol, app, GET)).startswith(
                b"HTTP/1.1 200 OK\r\n"
            )
        gc.collect()
        cycles = [type(obj).__name__ for obj in gc.garbage if "Cycle" in type(obj).__name__]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert cycles == []


async def test_a_response_of_known_length_is_one_write() -> None:
    # One send(2) a response: the head waits for the body (uvicorn writes each separately).
    app = _app([*SECURITY_HEADERS, LENGTH])
    ours = await _writes(protocol.GuardedHttpToolsProtocol, app, GET)
    theirs = await _writes(HttpToolsProtocol, app, GET)
    assert len(ours) == 1
    assert len(theirs) == 2
    assert ours == [b"".join(theirs)]


async def test_a_streamed_response_sends_its_head_before_the_body_exists() -> None:
    # Chunked (no Content-Length): the head goes out at once, as uvicorn sends it; so does a
    # known-length head whose body comes in parts.
    release = asyncio.Event()
    seen: list[list[bytes]] = []

    def streaming(headers: list[Any]) -> Any:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return
            await receive()
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b"part", "more_body": True})
            seen.append(list(transport.written))
            await release.wait()
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        return app

    config = Config(
        streaming([]), lifespan="off", server_header=False, date_header=False, access_log=False
    )
    config.load()
    for headers in ([], [(b"content-length", b"4")]):
        release.clear()
        seen.clear()
        transport = Transport()
        config.app = streaming(headers)
        proto = protocol.GuardedHttpToolsProtocol(
            config=config,
            server_state=ServerState(),
            app_state={},
            _loop=asyncio.get_running_loop(),
        )
        proto.connection_made(transport)
        proto.data_received(GET)
        for _ in range(50):
            await asyncio.sleep(0)
            if seen:
                break
        assert seen
        assert seen[0][0].startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"part" in b"".join(seen[0])
        release.set()
        for _ in range(50):
            await asyncio.sleep(0)
        proto.connection_lost(None)

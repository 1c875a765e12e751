"""The edge layer's deadline: one timer per worker cancels exactly the requests that expire.

The edge runs here in front of small ASGI apps whose timing the test controls (a handler
that waits on an event), so which request outlives the deadline is decided, not hoped.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from pynomaly_detector.api.middleware import Edge
from tests.detector.conftest import settings_for


class Handler:
    """Answers ``/fast`` at once; ``/slow`` waits until released (or cancelled)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = asyncio.Event()
        self.cancelled = 0
        self.started = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/slow":
            self.started += 1
            self.entered.set()
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def _client(edge: Edge) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=edge), base_url="http://edge")


async def test_only_expired_requests_get_504_and_the_timer_forgets_them(tmp_path: Path) -> None:
    handler = Handler()
    edge = Edge(handler, settings=settings_for(tmp_path, request_timeout_seconds=0.3))
    async with _client(edge) as client:
        started = time.monotonic()
        slow = [asyncio.create_task(client.get("/slow")) for _ in range(3)]
        fast = [(await client.get("/fast")).status_code for _ in range(20)]
        answers = await asyncio.gather(*slow)
        elapsed = time.monotonic() - started
    assert fast == [200] * 20
    assert [answer.status_code for answer in answers] == [504, 504, 504]
    body = answers[0].json()
    assert body == {
        "error": "deadline_exceeded",
        "detail": "request did not complete within 0.3 seconds",
    }
    assert answers[0].headers["x-content-type-options"] == "nosniff"
    assert len(answers[0].headers["x-request-id"]) == 16
    assert handler.cancelled == 3
    assert 0.3 <= elapsed < 10, elapsed
    assert len(edge.deadlines) == 0  # finished and expired requests are both forgotten


async def test_the_timer_rearms_for_requests_that_started_later(tmp_path: Path) -> None:
    handler = Handler()
    edge = Edge(handler, settings=settings_for(tmp_path, request_timeout_seconds=0.2))
    async with _client(edge) as client:
        first = asyncio.create_task(client.get("/slow"))
        await handler.entered.wait()
        await asyncio.sleep(0.1)  # the second request's deadline is after the first one's
        second_started = time.monotonic()
        second = asyncio.create_task(client.get("/slow"))
        assert (await first).status_code == 504
        assert not second.done()  # its own deadline has not passed yet
        assert (await second).status_code == 504
        assert time.monotonic() - second_started >= 0.2 * 0.9
        # The timer is idle now; a request after it is answered normally.
        assert (await client.get("/fast")).status_code == 200


async def test_a_request_within_its_deadline_is_untouched(tmp_path: Path) -> None:
    handler = Handler()
    edge = Edge(handler, settings=settings_for(tmp_path, request_timeout_seconds=5))
    async with _client(edge) as client:
        slow = asyncio.create_task(client.get("/slow"))
        await handler.entered.wait()
        handler.release.set()
        response = await slow
    assert (response.status_code, response.text) == (200, "ok")
    assert handler.cancelled == 0
    assert len(edge.deadlines) == 0


async def test_a_cancel_from_elsewhere_is_not_turned_into_a_504(tmp_path: Path) -> None:
    handler = Handler()
    edge = Edge(handler, settings=settings_for(tmp_path, request_timeout_seconds=5))
    async with _client(edge) as client:
        slow = asyncio.create_task(client.get("/slow"))
        await handler.entered.wait()
        slow.cancel()  # e.g. the server shutting down: the cancel must propagate
        with pytest.raises(asyncio.CancelledError):
            await slow
    assert handler.cancelled == 1
    assert len(edge.deadlines) == 0


async def test_body_limit_refuses_a_declared_length_before_reading(tmp_path: Path) -> None:
    read = 0

    async def reader(scope: Any, receive: Any, send: Any) -> None:
        nonlocal read
        read += 1
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    edge = Edge(reader, settings=settings_for(tmp_path, max_body_bytes=1024))
    async with _client(edge) as client:
        response = await client.post("/v1/models/m/detect", content=b"x" * 4096)
        small = await client.post("/v1/models/m/detect", content=b"x" * 10)
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"
    assert "x-request-id" in response.headers
    assert (small.status_code, read) == (200, 1)  # the app never saw the oversized request

"""The HTTP/1.1 protocol uvicorn runs: httptools with a read deadline and a request limit.

uvicorn reads a request for as long as the client takes: a client that sends its headers a
byte a second holds a connection forever, and ``limit_concurrency`` counts such connections,
so 1,000 of them made every other request a 503 (probes included). This protocol changes two
things and nothing else:

- **read deadline**: from the first byte of a request (or the connection's opening) the
  client has ``request_read_timeout_seconds`` to send the whole request, headers and body.
  Past it, headers still incomplete get ``408`` and the connection is closed; a body still
  arriving makes the endpoint see a disconnect; a connection that never sent a byte is
  closed silently. Idle keep-alive connections keep uvicorn's
  own ``timeout_keep_alive``.
- **limit on requests, not connections**: ``limit_concurrency`` is compared with the
  requests in progress only; a connection that is still sending headers costs a socket and
  a few hundred bytes, not a slot.

The read deadline is one timer per worker (``ReadDeadlines``), not a ``call_later`` handle per
request: every request has the same time to arrive, so the order in which reads start is the
order of their deadlines; an insertion-ordered dict holds the connections still reading and
one handle fires at the oldest one's deadline. A handle per request cost an allocation, a
heap push and a cancel, and the cancelled handles piled up in the loop's timer heap. The
keep-alive timeout (``timeout_keep_alive``: an idle connection is closed that long after its
last response) is kept the same way, in a second ``ReadDeadlines`` of the worker, instead of
uvicorn's ``call_later`` per response and its cancel when the next request arrives; the
timeout and what happens at it are uvicorn's.

uvicorn selects it by import string (``http=PROTOCOL``), so worker processes import it
themselves; the deadline is read once per process from ``PYNOMALY_*`` settings.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

PROTOCOL = "pynomaly_detector.protocol:GuardedHttpToolsProtocol"
"""What ``cli`` passes to uvicorn as ``http``."""

_TIMEOUT_BODY = (
    b'{"error":"request_timeout","detail":"the request was not received in time; send it again"}'
)
_REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY)
)

_timeout: float | None = None


def read_timeout() -> float:
    """``request_read_timeout_seconds`` of this process's settings (read once)."""
    global _timeout
    if _timeout is None:
        from pynomaly_detector.settings import Settings

        _timeout = Settings().request_read_timeout_seconds
    return _timeout


class RequestsInProgress:
    """The server's connection set as uvicorn's protocol sees it, sized by requests only.

    uvicorn refuses a request when ``len(connections)`` or ``len(tasks)`` reaches
    ``limit_concurrency``; this view keeps the set's contents (shutdown walks the real set)
    but reports the number of requests in progress as its length.
    """

    __slots__ = ("_connections", "_tasks")

    def __init__(self, connections: set[Any], tasks: set[Any]) -> None:
        self._connections = connections
        self._tasks = tasks

    def add(self, connection: Any) -> None:
        self._connections.add(connection)

    def discard(self, connection: Any) -> None:
        self._connections.discard(connection)

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._connections)

    def __contains__(self, connection: object) -> bool:
        return connection in self._connections


class ReadDeadlines:
    """Connections still reading a request, oldest first; one timer for all of them.

    ``arm`` and ``disarm`` are a dict insert and pop. The timer fires at the oldest entry's
    deadline (or, when that entry was disarmed since, at its old deadline: it then re-arms at
    the new oldest one), expires every entry past its deadline and re-arms.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, seconds: float, *, idle: bool = False
    ) -> None:
        self.loop = loop
        self.seconds = seconds
        self.idle = idle
        """Keep-alive clocks: an expired protocol gets ``timeout_keep_alive_handler()``
        (uvicorn's), not ``_expired()``."""
        self._reading: dict[GuardedHttpToolsProtocol, float] = {}
        self._timer: asyncio.TimerHandle | None = None

    def arm(self, protocol: GuardedHttpToolsProtocol) -> None:
        """Start ``protocol``'s clock (again, from now, if it was running)."""
        reading = self._reading
        reading.pop(protocol, None)  # re-inserted last: the dict stays in deadline order
        deadline = self.loop.time() + self.seconds
        reading[protocol] = deadline
        if self._timer is None:
            self._timer = self.loop.call_at(deadline, self._sweep)

    def disarm(self, protocol: GuardedHttpToolsProtocol) -> None:
        """Stop ``protocol``'s clock (the request arrived, or the connection is gone)."""
        self._reading.pop(protocol, None)

    def armed(self, protocol: GuardedHttpToolsProtocol) -> bool:
        """Whether ``protocol``'s clock runs."""
        return protocol in self._reading

    def _sweep(self) -> None:
        self._timer = None
        now = self.loop.time()
        reading = self._reading
        while reading:
            protocol, deadline = next(iter(reading.items()))
            if deadline > now:
                self._timer = self.loop.call_at(deadline, self._sweep)
                return
            del reading[protocol]
            if self.idle:
                protocol.timeout_keep_alive_handler()
            else:
                protocol._expired()

    def __len__(self) -> int:
        return len(self._reading)


_deadlines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ReadDeadlines] = (
    weakref.WeakKeyDictionary()
)


def deadlines_of(loop: asyncio.AbstractEventLoop) -> ReadDeadlines:
    """The read deadlines of the protocols running on ``loop``."""
    found = _deadlines.get(loop)
    if found is None:
        found = _deadlines[loop] = ReadDeadlines(loop, read_timeout())
    return found


_idle: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[float, ReadDeadlines]] = (
    weakref.WeakKeyDictionary()
)


def idle_deadlines_of(loop: asyncio.AbstractEventLoop, seconds: float) -> ReadDeadlines:
    """The keep-alive clocks of the protocols running on ``loop`` with ``seconds`` of it."""
    by_seconds = _idle.get(loop)
    if by_seconds is None:
        by_seconds = _idle[loop] = {}
    found = by_seconds.get(seconds)
    if found is None:
        found = by_seconds[seconds] = ReadDeadlines(loop, seconds, idle=True)
    return found


_PRESET: dict[int, tuple[tuple[bytes, bytes], bytes]] = {}
"""id of a constant header pair -> (the pair, its rendered line): see ``preset``."""

_SPECIAL = frozenset({b"content-length", b"transfer-encoding", b"connection"})


def preset(headers: Iterable[tuple[bytes, bytes]]) -> None:
    """Declare constant response header pairs (module constants, sent on every response):
    checked and rendered once here, then written as their rendered line whenever a response
    carries *that object*, instead of uvicorn's per-header checks (two regular expressions,
    a lower-casing and three comparisons each). Any other pair, equal or not, takes
    uvicorn's path; the bytes on the wire are the same either way."""
    for header in headers:
        name, value = header
        if HEADER_RE.search(name) or HEADER_VALUE_RE.search(value) or name != name.lower():
            raise ValueError(f"not a valid lower-case header: {header!r}")
        if name in _SPECIAL:
            raise ValueError(f"{name!r} changes the framing: it cannot be preset")
        _PRESET[id(header)] = (header, b"".join([name, b": ", value, b"\r\n"]))


async def _send(self: _PresetCycle, message: Any) -> None:
    """uvicorn's ``RequestResponseCycle.send`` (0.54), with two changes and the same bytes:

    - the response start's preset header pairs are written as their rendered lines
      (``preset``); every other header takes uvicorn's checks line for line;
    - the head of a response with a Content-Length waits for its body and both go in one
      write: one ``send(2)`` a response instead of two. A Starlette ``Response`` sends the
      body right after its start; anything else first writes the head, then takes
      uvicorn's path.
    """
    if self.flow.write_paused and not self.disconnected:
        await self.flow.drain()  # pragma: no cover  # uvicorn's back-pressure, unchanged

    if self.disconnected:
        return

    head = self.head
    if head is not None:
        self.head = None
        if (
            message["type"] == "http.response.body"
            and not message.get("more_body", False)
            and len(body := message.get("body", b"")) == self.expected_content_length
        ):
            # uvicorn's last body write and completion, with the head in the same write.
            self.transport.write(head + body)
            self.expected_content_length = 0
            self.response_complete = True
            self.message_event.set()
            if not self.keep_alive:
                self.transport.close()
            self.on_response()
            return
        self.transport.write(head)

    if self.response_started or message["type"] != "http.response.start" or self.access_log:
        # Bodies, every error, and uvicorn's own access line (off here: ``logs.configure``).
        await RequestResponseCycle.send(self, message)
        return

    self.response_started = True
    self.waiting_for_100_continue = False

    status_code = message["status"]
    headers = self.default_headers + list(message.get("headers", []))

    content = [STATUS_LINE[status_code]]
    has_connection_close = False
    found = _PRESET.get
    for header in headers:
        known = found(id(header))
        if known is not None:
            content.append(known[1])
            continue
        name, value = header
        if HEADER_RE.search(name):
            raise RuntimeError("Invalid HTTP header name.")
        if HEADER_VALUE_RE.search(value):
            raise RuntimeError("Invalid HTTP header value.")

        name = name.lower()
        if name == b"content-length" and self.chunked_encoding is None:
            self.expected_content_length = int(value.decode())
            self.chunked_encoding = False
        elif name == b"transfer-encoding" and value.lower() == b"chunked":
            self.expected_content_length = 0
            self.chunked_encoding = True
        elif name == b"connection":
            connection = [token.lower().strip() for token in value.split(b",")]
            if b"close" in connection:
                self.keep_alive = False
                has_connection_close = True
        content.extend([name, b": ", value, b"\r\n"])

    if not self.keep_alive and not has_connection_close:
        content.append(b"connection: close\r\n")

    if (
        self.chunked_encoding is None
        and self.scope["method"] != "HEAD"
        and status_code not in (204, 304)
    ):
        # Neither content-length nor transfer-encoding specified
        self.chunked_encoding = True
        content.append(b"transfer-encoding: chunked\r\n")

    content.append(b"\r\n")
    if self.chunked_encoding is False and self.scope["method"] != "HEAD":
        self.head = b"".join(content)  # written with the body (see above)
    else:
        self.transport.write(b"".join(content))


class _PresetCycle(RequestResponseCycle):
    """uvicorn's request-response cycle with our ``send`` (``_send``)."""

    head: bytes | None = None
    """The response head, while it waits for its body."""
    send = _send  # the same signature, as a plain function


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """httptools with a per-request read deadline; concurrency counted in requests."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connections = RequestsInProgress(self.connections, self.tasks)  # type: ignore[assignment]  # a view of the same set
        self._reads = deadlines_of(self.loop)
        self._idle = idle_deadlines_of(self.loop, self.timeout_keep_alive)
        self._begun = False
        self._headers_done = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # uvicorn narrows the type
        super().connection_made(transport)
        self._reads.arm(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._reads.disarm(self)
        self._idle.disarm(self)  # uvicorn unsets its keep-alive only when exc is None
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._begun = True
        self._headers_done = False
        if not self._reads.armed(self):
            self._reads.arm(self)

    def on_headers_complete(self) -> None:
        self._headers_done = True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._reads.disarm(self)
        super().on_message_complete()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        # The cycle's ``send`` with preset headers (``_send``), before its task starts.
        # uvicorn builds its own class by name, so the instance changes class here: setting
        # ``send`` on the instance instead made every cycle a reference cycle (cycle ->
        # bound method -> cycle) that only the garbage collector could free (~10 objects a
        # request; in-process collections fell from ~21 to ~8 us a request without them).
        cycle.__class__ = _PresetCycle
        super()._start_asgi_task(cycle, app)

    def on_response_complete(self) -> None:
        # uvicorn's, with the keep-alive clock in the worker's idle deadlines (see the module).
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._unset_keepalive_if_required()
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self._idle.arm(self)

    def _unset_keepalive_if_required(self) -> None:
        # Called by uvicorn when data arrives and when the connection is lost.
        self._idle.disarm(self)
        super()._unset_keepalive_if_required()  # a handle uvicorn itself set, if any

    def _expired(self) -> None:
        if self.transport.is_closing():
            return
        if not self._begun or self._headers_done:
            # Opened and never used: close like an idle keep-alive connection. Headers done:
            # the endpoint is running and waits for the rest of the body; it sees a disconnect.
            self.transport.close()
            return
        self.transport.write(_REQUEST_TIMEOUT)
        self.transport.close()

"""The read deadline of the HTTP protocol: one timer per worker for every connection.

``ReadDeadlines`` is driven here with stand-in protocols (objects with ``_expired``) on a
real event loop; the protocol itself, against real slow clients, is covered by
``test_hostile_clients``.
"""

from __future__ import annotations

import asyncio

from pynomaly_detector.protocol import ReadDeadlines


class Reader:
    """Records when the deadline expired it."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    def _expired(self) -> None:
        self.log.append(self.name)


async def test_expires_only_reads_still_running_in_the_order_they_started() -> None:
    loop = asyncio.get_running_loop()
    expired: list[str] = []
    deadlines = ReadDeadlines(loop, 0.8)
    first, second, third = (Reader(name, expired) for name in ("first", "second", "third"))
    deadlines.arm(first)  # type: ignore[arg-type]  # a stand-in with the one method used
    await asyncio.sleep(0.2)
    deadlines.arm(second)  # type: ignore[arg-type]  # as above
    deadlines.arm(third)  # type: ignore[arg-type]  # as above
    deadlines.disarm(second)  # type: ignore[arg-type]  # its request arrived in time
    await asyncio.sleep(0.7)
    assert expired == ["first"]  # third has ~0.1 s left
    await asyncio.sleep(0.4)
    assert expired == ["first", "third"]
    assert len(deadlines) == 0


async def test_a_disarmed_oldest_read_does_not_keep_later_ones_from_expiring() -> None:
    loop = asyncio.get_running_loop()
    expired: list[str] = []
    deadlines = ReadDeadlines(loop, 0.4)
    early, late = Reader("early", expired), Reader("late", expired)
    deadlines.arm(early)  # type: ignore[arg-type]  # a stand-in with the one method used
    await asyncio.sleep(0.2)
    deadlines.arm(late)  # type: ignore[arg-type]  # as above
    deadlines.disarm(early)  # type: ignore[arg-type]  # the timer still points at its deadline
    await asyncio.sleep(0.3)
    assert expired == []  # the timer fired at early's deadline and re-armed at late's
    await asyncio.sleep(0.3)
    assert expired == ["late"]


async def test_arming_again_restarts_the_clock_and_keeps_the_deadline_order() -> None:
    loop = asyncio.get_running_loop()
    expired: list[str] = []
    deadlines = ReadDeadlines(loop, 1.0)
    kept, other = Reader("kept", expired), Reader("other", expired)
    deadlines.arm(kept)  # type: ignore[arg-type]  # a stand-in with the one method used
    await asyncio.sleep(0.3)
    deadlines.arm(other)  # type: ignore[arg-type]  # as above
    await asyncio.sleep(0.3)
    deadlines.arm(kept)  # type: ignore[arg-type]  # a new request on the same connection
    assert deadlines.armed(kept)  # type: ignore[arg-type]  # as above
    await asyncio.sleep(0.85)
    assert expired == ["other"]  # kept has ~0.15 s left
    await asyncio.sleep(0.3)
    assert expired == ["other", "kept"]


class Idle:
    """A stand-in keep-alive connection: records when uvicorn's handler would close it."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    def timeout_keep_alive_handler(self) -> None:
        self.log.append(self.name)

    def _expired(self) -> None:
        raise AssertionError("a keep-alive clock must not expire a read")


async def test_keep_alive_clocks_close_idle_connections_that_get_no_new_request() -> None:
    loop = asyncio.get_running_loop()
    closed: list[str] = []
    idle = ReadDeadlines(loop, 0.4, idle=True)
    quiet, busy = Idle("quiet", closed), Idle("busy", closed)
    idle.arm(quiet)  # type: ignore[arg-type]  # a stand-in with the one method used
    idle.arm(busy)  # type: ignore[arg-type]  # as above
    await asyncio.sleep(0.2)
    idle.disarm(busy)  # type: ignore[arg-type]  # its next request arrived
    await asyncio.sleep(0.35)
    assert closed == ["quiet"]
    assert len(idle) == 0

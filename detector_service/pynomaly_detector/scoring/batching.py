"""Micro-batching: concurrent requests for one model become one model call.

Each ``submit`` appends its rows to a pending queue and awaits a future. One runner task per
batcher takes whole pending requests while their rows fit the row budget ``max_size`` (a
request larger than the budget goes alone: requests are never split) and starts a model
call as soon as a slot is free (at most ``max_concurrency`` calls in flight). While calls
run, new requests pile up and ride the next call, so batches grow with load by themselves;
``max_wait`` only delays an *idle* model's first call so near-simultaneous requests can
share it. The model call itself is the awaitable ``compute``: the scorer decides whether it
runs in a thread or, when small and fast, on the event loop.

A batch that will run on the event loop anyway (``now``: a synchronous model call the scorer
offers for batches of at most ``now_rows`` rows, e.g. a flattened forest without Redis) is
started by a plain callback instead of the runner task and computed right there, without a
task of its own: the batch is formed at the same moment as the runner would form it (the
next turn of the loop after the first submission), from the same pending requests, with the
same row budget, and the scores are the same; it costs one callback instead of two tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pynomaly_detector import metrics

FloatArray = npt.NDArray[np.float64]
Compute = Callable[[FloatArray, Sequence[bytes]], Awaitable[FloatArray]]
"""(rows, each row's float64 bytes as its cache identity) -> scores, one per row."""
ComputeNow = Callable[[FloatArray, Sequence[bytes]], FloatArray]
"""The same, computed synchronously on the event loop (small batches of fast models)."""


@dataclass(slots=True)
class _Pending:
    rows: FloatArray
    row_ids: Sequence[bytes]
    future: asyncio.Future[FloatArray]


class MicroBatcher:
    """Merges concurrent ``submit`` calls into ``compute`` calls of up to ``max_size`` rows.

    A single request with more than ``max_size`` rows is one call of its own.
    """

    def __init__(
        self,
        compute: Compute,
        *,
        max_size: int,
        max_wait: float,
        max_concurrency: int = 1,
        now: ComputeNow | None = None,
        now_rows: int = 0,
    ) -> None:
        self.compute = compute
        self.max_size = max_size
        self.max_wait = max_wait
        self.now = now if max_wait <= 0 and now_rows > 0 else None
        """Synchronous model call for batches of at most ``now_rows`` rows (see the module)."""
        self.now_rows = now_rows
        self._kicked = False
        self._pending: deque[_Pending] = deque()
        self._pending_rows = 0
        self._slots = asyncio.Semaphore(max_concurrency)
        self._in_flight = 0
        self._full = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._calls: set[asyncio.Task[None]] = set()

    async def submit(self, rows: FloatArray, row_ids: Sequence[bytes]) -> FloatArray:
        """Scores of ``rows``, computed together with whatever else is pending."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[FloatArray] = loop.create_future()
        self._pending.append(_Pending(rows, row_ids, future))
        self._pending_rows += len(rows)
        if self._pending_rows >= self.max_size:
            self._full.set()
        if self._runner is None or self._runner.done():
            if self.now is not None and self._in_flight == 0:
                if not self._kicked:
                    self._kicked = True
                    loop.call_soon(self._kick)
            else:
                self._runner = loop.create_task(self._run())
        return await future

    def _kick(self) -> None:
        """Compute the pending batches that fit ``now_rows`` here; the runner takes the rest."""
        self._kicked = False
        while self._pending:
            if self._in_flight or (self._runner is not None and not self._runner.done()):
                return  # an async call or the runner is active: the runner takes the queue
            if self._next_rows() > self.now_rows:
                self._runner = asyncio.get_running_loop().create_task(self._run())
                return
            self._call_now(self._take())

    def _next_rows(self) -> int:
        """Rows of the batch ``_take`` would take now."""
        rows = 0
        for index, item in enumerate(self._pending):
            if index and rows + len(item.rows) > self.max_size:
                break
            rows += len(item.rows)
        return rows

    def _call_now(self, batch: list[_Pending]) -> None:
        assert self.now is not None  # _kick runs only with a synchronous call
        live = [item for item in batch if not item.future.done()]
        if not live:
            return
        rows, row_ids = self._merged(live)
        try:
            scores = self.now(rows, row_ids)
        except Exception as error:
            for item in live:
                if not item.future.done():
                    item.future.set_exception(error)
            return
        self._hand_out(live, scores)

    @staticmethod
    def _merged(live: list[_Pending]) -> tuple[FloatArray, Sequence[bytes]]:
        if len(live) == 1:
            rows, row_ids = live[0].rows, live[0].row_ids
        else:
            rows = np.concatenate([item.rows for item in live])
            row_ids = [row_id for item in live for row_id in item.row_ids]
        metrics.BATCHED_ROWS.observe(len(rows))
        metrics.BATCHED_REQUESTS.observe(len(live))
        return rows, row_ids

    @staticmethod
    def _hand_out(live: list[_Pending], scores: FloatArray) -> None:
        offset = 0
        for item in live:
            size = len(item.rows)
            if not item.future.done():
                item.future.set_result(scores[offset : offset + size])
            offset += size

    async def _run(self) -> None:
        while self._pending:
            if self._in_flight == 0 and self._pending_rows < self.max_size and self.max_wait > 0:
                self._full.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self.max_wait)
            await self._slots.acquire()
            batch = self._take()
            if not batch:
                self._slots.release()
                continue
            self._in_flight += 1
            call = asyncio.get_running_loop().create_task(self._call(batch))
            self._calls.add(call)
            call.add_done_callback(self._calls.discard)

    def _take(self) -> list[_Pending]:
        batch: list[_Pending] = []
        rows = 0
        while self._pending and (not batch or rows + len(self._pending[0].rows) <= self.max_size):
            item = self._pending.popleft()
            rows += len(item.rows)
            batch.append(item)
        self._pending_rows -= rows
        return batch

    async def _call(self, batch: list[_Pending]) -> None:
        try:
            live = [item for item in batch if not item.future.done()]
            if not live:
                return
            rows, row_ids = self._merged(live)
            scores = await self.compute(rows, row_ids)
            self._hand_out(live, scores)
        except Exception as error:
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(error)
        finally:
            self._in_flight -= 1
            self._slots.release()

    async def close(self) -> None:
        """Wait for model calls in flight."""
        if self._calls:
            await asyncio.gather(*self._calls, return_exceptions=True)

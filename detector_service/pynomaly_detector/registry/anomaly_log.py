"""Anomalous rows written to the store in batches, off the hot path.

``record`` never waits: it puts into a bounded queue and counts a drop when the queue is
full (a slow or dead database must not slow scoring). A background task writes batches.
Nothing accepted is lost quietly:

* a batch is taken off the queue only once written; a failed write keeps it (in order) and
  is retried with backoff, up to ``max_attempts`` times, then counted as ``failed``;
* one writer at a time (a lock): ``flush`` from a GET and the background task never race,
  and a GET during an outage leaves the records queued instead of dropping them;
* an unexpected exception is logged with its traceback and counted; the writer keeps going;
* ``close`` lets a write in progress finish and flushes what is left within ``grace``
  seconds (the shutdown grace period); whatever still cannot be written is counted as
  ``dropped`` and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque

from pynomaly_detector import metrics
from pynomaly_detector.registry.store import ModelStore
from pynomaly_detector.registry.versions import AnomalyRecord

log = logging.getLogger(__name__)


class AnomalyLog:
    """Bounded queue + batch writer with bounded retries."""

    def __init__(
        self,
        store: ModelStore,
        *,
        max_queue: int,
        batch_size: int = 500,
        interval: float = 0.5,
        max_attempts: int = 5,
        backoff_max: float = 10.0,
    ) -> None:
        self.store = store
        self.batch_size = batch_size
        self.interval = interval
        self.max_queue = max_queue
        self.max_attempts = max_attempts
        self.backoff_max = backoff_max
        self._queue: deque[AnomalyRecord] = deque()
        self._attempts = 0
        """Failed attempts at writing the batch at the head of the queue."""
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._dropped = metrics.ANOMALY_LOG.labels("dropped")
        self._written = metrics.ANOMALY_LOG.labels("written")
        self._failed = metrics.ANOMALY_LOG.labels("failed")

    def __len__(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        """Start the background writer."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="anomaly-log")

    def record(self, record: AnomalyRecord) -> None:
        """Queue one record, or drop it (counted) when the queue is full."""
        if len(self._queue) >= self.max_queue:
            self._dropped.inc()
            return
        self._queue.append(record)

    async def flush(self) -> bool:
        """Write everything queued now; whether it all went (failed batches stay queued)."""
        async with self._lock:
            while self._queue:
                batch = [
                    self._queue[index] for index in range(min(self.batch_size, len(self._queue)))
                ]
                try:
                    await self.store.write_anomalies(batch)
                except Exception as error:  # any failure: keep the records, retry later
                    self._attempts += 1
                    if self._attempts >= self.max_attempts:
                        self._take(len(batch))
                        self._failed.inc(len(batch))
                        log.error(
                            "anomaly log: %d records lost after %d attempts: %s",
                            len(batch),
                            self._attempts,
                            error,
                            exc_info=not isinstance(error, OSError | ConnectionError),
                        )
                        self._attempts = 0
                        continue
                    log.warning(
                        "anomaly log: write failed (attempt %d of %d, %d records queued): %s",
                        self._attempts,
                        self.max_attempts,
                        len(self._queue),
                        error,
                    )
                    return False
                self._take(len(batch))
                self._written.inc(len(batch))
                self._attempts = 0
            return True

    def _take(self, count: int) -> None:
        for _ in range(count):
            self._queue.popleft()

    async def _run(self) -> None:
        delay = self.interval
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            if self._stopping.is_set():
                return
            try:
                written = await self.flush()
            except Exception:  # never die silently: log, count, keep going
                log.exception("anomaly log writer failed; continuing")
                written = False
            delay = self.interval if written else min(delay * 2, self.backoff_max)

    async def close(self, grace: float = 10.0) -> None:
        """Stop the writer (a write in progress finishes) and flush within ``grace`` s."""
        deadline = time.monotonic() + grace
        self._stopping.set()
        if self._task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._task), grace)
        while self._queue and time.monotonic() < deadline:
            remaining = deadline - time.monotonic()
            try:
                if await asyncio.wait_for(self.flush(), remaining):
                    break
            except TimeoutError:
                break
            await asyncio.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        if self._queue:
            self._dropped.inc(len(self._queue))
            log.error("anomaly log: %d records not written before shutdown", len(self._queue))
            self._queue.clear()
        if self._task is not None and not self._task.done():
            self._task.cancel()

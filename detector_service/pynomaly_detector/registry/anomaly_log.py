"""Anomalous rows written to the store in batches, off the hot path.

``record`` never waits: it puts into a bounded queue and counts a drop when the queue is
full (a slow or dead database must not slow scoring). A background task writes batches;
``close`` flushes what is left on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from pynomaly_detector import metrics
from pynomaly_detector.registry.store import ModelStore, StoreUnavailableError
from pynomaly_detector.registry.versions import AnomalyRecord

log = logging.getLogger(__name__)


class AnomalyLog:
    """Bounded queue + batch writer."""

    def __init__(
        self, store: ModelStore, *, max_queue: int, batch_size: int = 500, interval: float = 0.5
    ) -> None:
        self.store = store
        self.batch_size = batch_size
        self.interval = interval
        self._queue: asyncio.Queue[AnomalyRecord] = asyncio.Queue(maxsize=max_queue)
        self._task: asyncio.Task[None] | None = None
        self._dropped = metrics.ANOMALY_LOG.labels("dropped")
        self._written = metrics.ANOMALY_LOG.labels("written")
        self._failed = metrics.ANOMALY_LOG.labels("failed")

    def start(self) -> None:
        """Start the background writer."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="anomaly-log")

    def record(self, record: AnomalyRecord) -> None:
        """Queue one record, or drop it (counted) when the queue is full."""
        try:
            self._queue.put_nowait(record)
        except asyncio.QueueFull:
            self._dropped.inc()

    async def flush(self) -> None:
        """Write everything queued now."""
        while not self._queue.empty():
            batch: list[AnomalyRecord] = []
            while not self._queue.empty() and len(batch) < self.batch_size:
                batch.append(self._queue.get_nowait())
            try:
                await self.store.write_anomalies(batch)
                self._written.inc(len(batch))
            except StoreUnavailableError as error:
                self._failed.inc(len(batch))
                log.warning("anomaly log: %d records lost: %s", len(batch), error)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

    async def close(self) -> None:
        """Stop the writer and flush what is queued."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

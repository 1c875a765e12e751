"""The anomaly log: bounded queue with a drop counter, batched writes, flush on close."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pynomaly_detector import metrics
from pynomaly_detector.registry.anomaly_log import AnomalyLog
from pynomaly_detector.registry.local import LocalStore
from tests.detector.registry.conftest import draft, record


def _dropped() -> float:
    return float(metrics.ANOMALY_LOG.labels("dropped")._value.get())


async def test_full_queue_drops_and_counts(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    await store.open()
    await store.save(draft("a"))
    log = AnomalyLog(store, max_queue=3, interval=60)
    before = _dropped()
    for score in range(5):
        log.record(record("a", float(score)))  # never blocks
    assert _dropped() - before == 2
    log.start()
    await log.close()  # flushes what is queued
    found = await store.anomalies("a", since=None, limit=10)
    assert [item.score for item in found] == [0.0, 1.0, 2.0]


async def test_background_writer_batches(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    await store.open()
    await store.save(draft("a"))
    log = AnomalyLog(store, max_queue=100, interval=0.05)
    log.start()
    for score in range(10):
        log.record(record("a", float(score)))
    await asyncio.sleep(0.3)
    assert len(await store.anomalies("a", since=None, limit=100)) == 10
    await log.close()

"""The anomaly log: bounded queue with a drop counter, batched writes, flush on close."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from pynomaly_detector import metrics
from pynomaly_detector.registry.anomaly_log import AnomalyLog
from pynomaly_detector.registry.local import LocalStore
from pynomaly_detector.registry.store import StoreUnavailableError
from tests.detector.conftest import wait_until
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


class FlakyStore(LocalStore):
    """A local store whose anomaly writes fail on demand. A fake for one fault only: a store
    error at a chosen write, which a real outage cannot time precisely."""

    def __init__(self, root: Path, *, failures: int = 0, error: type[Exception] = OSError) -> None:
        super().__init__(root)
        self.failures = failures
        self.error = error
        self.slow = 0.0
        self.writing = asyncio.Event()

    async def write_anomalies(self, records: Any) -> None:
        self.writing.set()
        if self.slow:
            await asyncio.sleep(self.slow)
        if self.failures:
            self.failures -= 1
            raise self.error("store down")
        await super().write_anomalies(records)


def _count(outcome: str) -> float:
    return float(metrics.ANOMALY_LOG.labels(outcome)._value.get())


async def _flaky(tmp_path: Path, **options: Any) -> FlakyStore:
    store = FlakyStore(tmp_path, **options)
    await store.open()
    await store.save(draft("a"))
    return store


async def test_a_failed_write_keeps_the_batch_and_retries_it(tmp_path: Path) -> None:
    store = await _flaky(tmp_path, failures=2, error=StoreUnavailableError)
    log = AnomalyLog(store, max_queue=100, interval=0.02, backoff_max=0.05)
    failed = _count("failed")
    for score in range(4):
        log.record(record("a", float(score)))
    assert not await log.flush()  # a GET during the outage: nothing is dropped
    assert len(log) == 4
    log.start()
    await wait_until(lambda: _true(len(log) == 0))
    await log.close()
    found = await store.anomalies("a", since=None, limit=10)
    assert [item.score for item in found] == [0.0, 1.0, 2.0, 3.0]
    assert _count("failed") == failed


async def test_retries_are_bounded_and_every_loss_is_counted(tmp_path: Path) -> None:
    store = await _flaky(tmp_path, failures=1_000)
    log = AnomalyLog(store, max_queue=100, max_attempts=3)
    failed = _count("failed")
    for score in range(5):
        log.record(record("a", float(score)))
    for _ in range(3):
        await log.flush()
    assert len(log) == 0
    assert _count("failed") - failed == 5


async def test_an_unexpected_error_does_not_kill_the_writer(tmp_path: Path) -> None:
    store = await _flaky(tmp_path, failures=1, error=RuntimeError)
    log = AnomalyLog(store, max_queue=100, interval=0.02, backoff_max=0.05)
    log.start()
    log.record(record("a", 1.0))
    await wait_until(lambda: _true(len(log) == 0))
    log.record(record("a", 2.0))
    await wait_until(lambda: _true(len(log) == 0))
    await log.close()
    assert [item.score for item in await store.anomalies("a", since=None, limit=10)] == [1.0, 2.0]


async def test_shutdown_lets_a_write_in_progress_finish(tmp_path: Path) -> None:
    store = await _flaky(tmp_path)
    store.slow = 0.3
    log = AnomalyLog(store, max_queue=100, interval=0.01)
    log.start()
    log.record(record("a", 1.0))
    await store.writing.wait()
    log.record(record("a", 2.0))  # queued while the first write runs
    await log.close(grace=5.0)
    assert [item.score for item in await store.anomalies("a", since=None, limit=10)] == [1.0, 2.0]


async def test_a_torn_line_is_skipped_not_an_error(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    await store.open()
    await store.save(draft("a"))
    await store.write_anomalies([record("a", 1.0)])
    with (tmp_path / "a" / "anomalies.jsonl").open("a") as handle:
        handle.write('{"model": "a", "version": 1, "sco')  # a worker died mid-line
    await store.write_anomalies([record("a", 2.0)])
    found = await store.anomalies("a", since=None, limit=10)
    assert [item.score for item in found] == [1.0, 2.0]


async def _true(value: bool) -> bool:
    return value

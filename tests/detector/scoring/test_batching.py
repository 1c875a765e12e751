"""The micro-batcher merges concurrent submissions and never mixes up results."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import pytest

from pynomaly_detector.scoring.batching import MicroBatcher


async def test_concurrent_submissions_share_model_calls() -> None:
    calls: list[int] = []

    async def compute(rows: np.ndarray, hashes: Sequence[bytes]) -> np.ndarray:
        calls.append(len(rows))
        await asyncio.sleep(0.01)  # a model call takes time: requests pile up meanwhile
        return rows[:, 0] * 2

    batcher = MicroBatcher(compute, max_size=64, max_wait=0.002)
    results = await asyncio.gather(
        *[batcher.submit(np.array([[float(i)]]), []) for i in range(100)]
    )
    assert [float(result[0]) for result in results] == [2.0 * i for i in range(100)]
    assert sum(calls) == 100
    assert max(calls) <= 64
    assert len(calls) <= 5  # not 100 model calls


async def test_multi_row_requests_stay_together_and_in_order() -> None:
    async def compute(rows: np.ndarray, hashes: Sequence[bytes]) -> np.ndarray:
        return rows.sum(axis=1)

    batcher = MicroBatcher(compute, max_size=8, max_wait=0.0)
    sizes = [1, 5, 3, 12, 2]
    inputs = [np.arange(n * 2, dtype=float).reshape(n, 2) + 100 * i for i, n in enumerate(sizes)]
    results = await asyncio.gather(*[batcher.submit(x, []) for x in inputs])
    for x, result in zip(inputs, results, strict=True):
        np.testing.assert_array_equal(result, x.sum(axis=1))


async def test_errors_reach_every_waiter_of_the_batch() -> None:
    async def compute(rows: np.ndarray, hashes: Sequence[bytes]) -> np.ndarray:
        raise ValueError("model broke")

    batcher = MicroBatcher(compute, max_size=8, max_wait=0.001)
    results = await asyncio.gather(
        *[batcher.submit(np.ones((1, 1)), []) for _ in range(3)], return_exceptions=True
    )
    assert all(isinstance(result, ValueError) for result in results)
    # The batcher keeps working afterwards.
    batcher.compute = _double
    assert float((await batcher.submit(np.ones((1, 1)), []))[0]) == 2.0


async def _double(rows: np.ndarray, hashes: Sequence[bytes]) -> np.ndarray:
    return rows[:, 0] * 2


async def test_cancelled_requests_do_not_break_the_batch() -> None:
    gate = asyncio.Event()

    async def compute(rows: np.ndarray, hashes: Sequence[bytes]) -> np.ndarray:
        await gate.wait()
        return rows[:, 0]

    batcher = MicroBatcher(compute, max_size=8, max_wait=0.0)
    first = asyncio.ensure_future(batcher.submit(np.ones((1, 1)), []))
    second = asyncio.ensure_future(batcher.submit(np.full((1, 1), 3.0), []))
    await asyncio.sleep(0.01)
    first.cancel()
    gate.set()
    assert float((await second)[0]) == 3.0
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_requests_merge_up_to_the_row_budget_and_are_never_split() -> None:
    calls: list[int] = []

    async def compute(rows: np.ndarray, hashes: Sequence[bytes]) -> np.ndarray:
        calls.append(len(rows))
        await asyncio.sleep(0.01)
        return rows[:, 0]

    batcher = MicroBatcher(compute, max_size=1024, max_wait=0.0)
    inputs = [np.full((256, 2), float(i)) for i in range(9)] + [np.full((3000, 2), 99.0)]
    results = await asyncio.gather(*[batcher.submit(x, []) for x in inputs])
    for x, result in zip(inputs, results, strict=True):
        np.testing.assert_array_equal(result, x[:, 0])
    assert 3000 in calls  # the oversized request went alone, whole
    assert all(size <= 1024 for size in calls if size != 3000)
    assert any(size > 256 for size in calls)  # 256-row requests were merged
    assert sum(calls) == 9 * 256 + 3000


async def test_small_batches_of_a_synchronous_model_are_merged_and_computed_without_tasks() -> None:
    """``now``: concurrent submissions still form one batch; the awaitable is not used."""
    calls: list[int] = []

    def now(rows: np.ndarray, hashes: Sequence[bytes]) -> np.ndarray:
        calls.append(len(rows))
        return rows[:, 0] * 2

    async def never(rows: np.ndarray, hashes: Sequence[bytes]) -> np.ndarray:
        raise AssertionError("a batch within now_rows went to the awaitable")

    batcher = MicroBatcher(never, max_size=64, max_wait=0.0, now=now, now_rows=256)
    tasks_before = len(asyncio.all_tasks())
    pending = [
        asyncio.ensure_future(batcher.submit(np.array([[float(i)]]), [])) for i in range(100)
    ]
    await asyncio.sleep(0)  # the submissions queue their rows
    assert len(asyncio.all_tasks()) == tasks_before + 100  # no runner or call task
    results = await asyncio.gather(*pending)
    assert [float(result[0]) for result in results] == [2.0 * i for i in range(100)]
    assert calls == [64, 36]  # merged up to the row budget, in submission order


async def test_batches_beyond_now_rows_go_to_the_awaitable_model_call() -> None:
    now_calls: list[int] = []
    async_calls: list[int] = []

    def now(rows: np.ndarray, hashes: Sequence[bytes]) -> np.ndarray:
        now_calls.append(len(rows))
        return rows[:, 0]

    async def compute(rows: np.ndarray, hashes: Sequence[bytes]) -> np.ndarray:
        async_calls.append(len(rows))
        await asyncio.sleep(0.01)
        return rows[:, 0]

    batcher = MicroBatcher(compute, max_size=1024, max_wait=0.0, now=now, now_rows=8)
    inputs = [np.full((4, 1), float(i)) for i in range(4)]  # 16 rows together: over 8
    results = await asyncio.gather(*[batcher.submit(x, []) for x in inputs])
    for x, result in zip(inputs, results, strict=True):
        np.testing.assert_array_equal(result, x[:, 0])
    assert async_calls == [16]
    assert now_calls == []
    # Alone, a small request is computed synchronously again.
    assert float((await batcher.submit(np.full((2, 1), 7.0), []))[0]) == 7.0
    assert now_calls == [2]


async def test_an_error_of_the_synchronous_call_reaches_every_waiter() -> None:
    def now(rows: np.ndarray, hashes: Sequence[bytes]) -> np.ndarray:
        raise ValueError("model broke")

    batcher = MicroBatcher(_double, max_size=8, max_wait=0.0, now=now, now_rows=8)
    results = await asyncio.gather(
        *[batcher.submit(np.ones((1, 1)), []) for _ in range(3)], return_exceptions=True
    )
    assert all(isinstance(result, ValueError) for result in results)

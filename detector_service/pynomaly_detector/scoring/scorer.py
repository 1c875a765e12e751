"""Row scores through the caches: L1 in process, then (per batch) L2 Redis, then the model.

A row's cache key is (model, identity, its float64 bytes) in process and (model, identity,
BLAKE2b of those bytes) in Redis, where the identity (version and artifact hash, see
``registry.models.identity``) names one fitted model forever, so cached scores never go
stale, even across a delete and a refit of the same name or a store that was reset.
Hashing happens only for Redis, once per missed row: a hash per row cost more than the dict
lookup it fed. The L1 lookup happens per request on the event loop; the L2
lookup happens once per *micro-batch*, so Redis costs one round trip per model call, not
per request, and L2 writes happen in the background after the response is computed.

Model calls run in the thread pool, except calls of fast scorers up to ``inline_rows`` rows
(well under a millisecond): on one CPU a thread only adds GIL hand-offs and loop wake-ups,
which cost more than such a call (measured: single rows one at a time ~3.8k -> ~5.1k req/s
inline). Bigger calls go to the pool even when fast: a 10 ms call on the loop delays every
other connection's reads and writes by as much (256-row requests at concurrency 64: p99
~470 ms inline, ~110-145 ms in the pool, same rows/s).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import Executor

import numpy as np
import numpy.typing as npt

from pynomaly_detector.caching.memory import TTLCache
from pynomaly_detector.caching.redis_cache import RedisScoreCache
from pynomaly_detector.detectors.fitted import FittedDetector
from pynomaly_detector.scoring import rows as rowing
from pynomaly_detector.scoring.batching import MicroBatcher

FloatArray = npt.NDArray[np.float64]
RowKey = tuple[str, str, bytes]


class RowScorer:
    """Scores rows of a model version, caching per row and micro-batching model calls."""

    def __init__(
        self,
        *,
        executor: Executor,
        l1: TTLCache[RowKey, float],
        l2: RedisScoreCache | None,
        max_size: int,
        max_wait: float,
        max_concurrency: int,
        inline_rows: int = 0,
    ) -> None:
        self.executor = executor
        self.inline_rows = inline_rows
        self.l1 = l1
        self.l2 = l2
        self.max_size = max_size
        self.max_wait = max_wait
        self.max_concurrency = max_concurrency
        self._batchers: dict[tuple[str, str], MicroBatcher] = {}
        self._background: set[asyncio.Task[None]] = set()

    async def score(
        self, name: str, identity: str, detector: FittedDetector, values: FloatArray
    ) -> FloatArray:
        """Scores of ``values`` (n, d) under the model ``identity`` of ``name``: request rows
        already validated (``rows.matrix`` / ``rows.checked``: finite float64)."""
        caching = self.l1.max_size > 0 or self.l2 is not None
        row_ids = rowing.row_bytes(values) if caching else []
        batcher = self._batchers.get((name, identity))
        if batcher is None:
            batcher = self._batcher(name, identity, detector)
        if self.l1.max_size <= 0:
            return await batcher.submit(values, row_ids)
        if len(row_ids) == 1:  # a single row: one key, no lists
            key = (name, identity, row_ids[0])
            hit = self.l1.get(key)
            if hit is not None:
                return np.array([hit], dtype=np.float64)
            computed = await batcher.submit(values, row_ids)
            self.l1.put(key, float(computed[0]))
            return computed
        keys = [(name, identity, row_id) for row_id in row_ids]
        cached = self.l1.get_many(keys)
        missing = [index for index, score in enumerate(cached) if score is None]
        if not missing:
            return np.array(cached, dtype=np.float64)
        if len(missing) == len(values):
            computed = await batcher.submit(values, row_ids)
            self.l1.put_many(zip(keys, computed.tolist(), strict=True))
            return computed
        scores = np.array([np.nan if score is None else score for score in cached])
        rows, missing_ids = values[missing], [row_ids[index] for index in missing]
        computed = await batcher.submit(rows, missing_ids)
        scores[missing] = computed
        self.l1.put_many(zip([keys[index] for index in missing], computed.tolist(), strict=True))
        return scores

    def _batcher(self, name: str, identity: str, detector: FittedDetector) -> MicroBatcher:
        loop = asyncio.get_running_loop()
        l2 = self.l2

        inline_rows = self.inline_rows if detector.fast else 0

        async def model_call(rows: FloatArray) -> FloatArray:
            if len(rows) <= inline_rows:
                return detector.score(rows)
            return await loop.run_in_executor(self.executor, detector.score, rows)

        async def compute(rows: FloatArray, row_ids: Sequence[bytes]) -> FloatArray:
            if l2 is None or not row_ids:
                return await model_call(rows)
            keys = [l2.key(name, identity, rowing.digest(row)) for row in row_ids]
            cached = await l2.get_many(keys)
            need = [index for index, value in enumerate(cached) if value is None]
            if not need:
                return np.array(cached, dtype=np.float64)
            out = np.array([np.nan if value is None else value for value in cached])
            subset = rows if len(need) == len(rows) else rows[need]
            computed = await model_call(subset)
            out[need] = computed
            writes = [
                (keys[index], score) for index, score in zip(need, computed.tolist(), strict=True)
            ]
            task = loop.create_task(l2.set_many(writes))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return out

        def now(rows: FloatArray, row_ids: Sequence[bytes]) -> FloatArray:
            # Only batches of at most inline_rows rows; rows of requests, checked finite.
            return detector.score(rows, finite=True)

        batcher = MicroBatcher(
            compute,
            max_size=self.max_size,
            max_wait=self.max_wait,
            max_concurrency=self.max_concurrency,
            # Without Redis a small batch of a fast model is one call on the loop: no task.
            now=now if l2 is None else None,
            now_rows=inline_rows,
        )
        self._batchers[(name, identity)] = batcher
        return batcher

    def forget(self, name: str, keep: str | None = None) -> None:
        """Drop batchers and L1 scores of ``name`` (every identity but ``keep``).

        A dropped batcher finishes the calls it already holds: requests that looked the
        old model up just before the change still get its scores, nobody waits forever.
        """
        for key in [key for key in self._batchers if key[0] == name and key[1] != keep]:
            del self._batchers[key]
        self.l1.discard_where(lambda key: key[0] == name and key[1] != keep)

    async def close(self) -> None:
        """Finish model calls and cache writes in flight."""
        for batcher in list(self._batchers.values()):
            await batcher.close()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

"""Row scores through the caches: L1 in process, then (per batch) L2 Redis, then the model.

A row's cache key is (model, version, hash of its float64 bytes); versions are immutable, so
cached scores never go stale. The L1 lookup happens per request on the event loop; the L2
lookup happens once per *micro-batch*, so Redis costs one round trip per model call, not
per request, and L2 writes happen in the background after the response is computed.
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
RowKey = tuple[str, int, bytes]


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
    ) -> None:
        self.executor = executor
        self.l1 = l1
        self.l2 = l2
        self.max_size = max_size
        self.max_wait = max_wait
        self.max_concurrency = max_concurrency
        self._batchers: dict[tuple[str, int], MicroBatcher] = {}
        self._background: set[asyncio.Task[None]] = set()

    async def score(
        self, name: str, version: int, detector: FittedDetector, values: FloatArray
    ) -> FloatArray:
        """Scores of ``values`` (n, d) under ``name`` ``version``."""
        caching = self.l1.max_size > 0 or self.l2 is not None
        hashes = rowing.digests(values) if caching else []
        batcher = self._batchers.get((name, version))
        if batcher is None:
            batcher = self._batcher(name, version, detector)
        if self.l1.max_size <= 0:
            return await batcher.submit(values, hashes)
        scores = np.empty(len(values), dtype=np.float64)
        missing: list[int] = []
        get = self.l1.get
        for index, digest in enumerate(hashes):
            cached = get((name, version, digest))
            if cached is None:
                missing.append(index)
            else:
                scores[index] = cached
        if not missing:
            return scores
        if len(missing) == len(values):
            rows, row_hashes = values, hashes
        else:
            rows, row_hashes = values[missing], [hashes[index] for index in missing]
        computed = await batcher.submit(rows, row_hashes)
        scores[missing] = computed
        put = self.l1.put
        for digest, score in zip(row_hashes, computed.tolist(), strict=True):
            put((name, version, digest), score)
        return scores

    def _batcher(self, name: str, version: int, detector: FittedDetector) -> MicroBatcher:
        loop = asyncio.get_running_loop()
        l2 = self.l2

        async def compute(rows: FloatArray, hashes: Sequence[bytes]) -> FloatArray:
            if l2 is None or not hashes:
                return await loop.run_in_executor(self.executor, detector.score, rows)
            keys = [l2.key(name, version, digest) for digest in hashes]
            cached = await l2.get_many(keys)
            need = [index for index, value in enumerate(cached) if value is None]
            if not need:
                return np.array(cached, dtype=np.float64)
            out = np.array([np.nan if value is None else value for value in cached])
            subset = rows if len(need) == len(rows) else rows[need]
            computed = await loop.run_in_executor(self.executor, detector.score, subset)
            out[need] = computed
            writes = [
                (keys[index], score) for index, score in zip(need, computed.tolist(), strict=True)
            ]
            task = loop.create_task(l2.set_many(writes))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return out

        batcher = MicroBatcher(
            compute,
            max_size=self.max_size,
            max_wait=self.max_wait,
            max_concurrency=self.max_concurrency,
        )
        self._batchers[(name, version)] = batcher
        return batcher

    def forget(self, name: str, *, keep_version: int | None = None) -> None:
        """Drop batchers and L1 scores of ``name`` (all versions but ``keep_version``)."""
        for key in [key for key in self._batchers if key[0] == name and key[1] != keep_version]:
            del self._batchers[key]
        self.l1.discard_where(lambda key: key[0] == name and key[1] != keep_version)

    async def close(self) -> None:
        """Finish model calls and cache writes in flight."""
        for batcher in list(self._batchers.values()):
            await batcher.close()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

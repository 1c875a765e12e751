"""L2: row scores in Redis, bypassed silently (and counted) while Redis is unreachable.

A small circuit breaker makes a dead Redis cost nothing per request: after a failure the
level is skipped for a backoff that doubles up to ``redis_backoff_max_seconds``; the first
call after the pause probes Redis and, on success, the level resumes.

Values are the 8 bytes of the IEEE-754 double, so a score read back from Redis is bit-for-bit
the computed one. Keys are ``{prefix}score:{model}:{version}:{row hash}``.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

from pynomaly_detector import metrics
from pynomaly_detector.caching.redis_clients import RedisClient

log = logging.getLogger(__name__)

_DOUBLE = struct.Struct("<d")


class CircuitBreaker:
    """Open after a failure for an exponentially growing pause; closed again on success."""

    def __init__(self, *, base: float = 0.5, cap: float = 10.0) -> None:
        self.base = base
        self.cap = cap
        self.failures = 0
        self.open_until = 0.0

    def allows(self) -> bool:
        """Whether a call may be attempted now."""
        return time.monotonic() >= self.open_until

    def failed(self) -> None:
        """Record a failure and open for the next pause.

        Calls already in flight when the breaker opened fail with the same outage: they do
        not double the pause again (64 concurrent calls failing at once would otherwise open
        it for the longest pause at the first blip).
        """
        if not self.allows():
            return
        self.failures += 1
        pause = min(self.cap, self.base * 2 ** (self.failures - 1))
        self.open_until = time.monotonic() + pause

    def succeeded(self) -> None:
        """Record a success: the breaker closes."""
        self.failures = 0
        self.open_until = 0.0

    @property
    def is_open(self) -> bool:
        """Whether calls are being skipped."""
        return not self.allows()


class RedisScoreCache:
    """Batch get/set of row scores with a TTL; never raises for Redis failures."""

    def __init__(
        self, client: RedisClient, *, prefix: str, ttl_seconds: int, backoff_max: float = 10.0
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_seconds = ttl_seconds
        self.breaker = CircuitBreaker(cap=backoff_max)
        self._hits = metrics.CACHE_HITS.labels("l2")
        self._misses = metrics.CACHE_MISSES.labels("l2")
        self._errors = metrics.CACHE_ERRORS.labels("l2")

    def key(self, model: str, identity: int | str, row_hash: bytes) -> str:
        """The Redis key of one row's score under one fitted model (its identity)."""
        return f"{self.prefix}score:{model}:{identity}:{row_hash.hex()}"

    async def get_many(self, keys: Sequence[str]) -> list[float | None]:
        """Scores for ``keys`` (``None`` = miss); all misses while Redis is failing."""
        if not keys:
            return []
        if not self.breaker.allows():
            self._misses.inc(len(keys))
            return [None] * len(keys)
        try:
            if isinstance(self.client, Redis):
                raw = await self.client.mget(keys)
            else:
                raw = await self.client.mget_nonatomic(keys)
        except (RedisError, OSError) as error:
            self._failed(error)
            self._misses.inc(len(keys))
            return [None] * len(keys)
        self._succeeded()
        values: list[float | None] = []
        for item in raw:
            if isinstance(item, bytes) and len(item) == _DOUBLE.size:
                values.append(_DOUBLE.unpack(item)[0])
            else:
                values.append(None)
        hits = sum(value is not None for value in values)
        self._hits.inc(hits)
        self._misses.inc(len(values) - hits)
        return values

    async def set_many(self, items: Sequence[tuple[str, float]]) -> None:
        """Store scores with the TTL; skipped while Redis is failing."""
        if not items or not self.breaker.allows():
            return
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for key, value in items:
                    pipe.set(key, _DOUBLE.pack(value), ex=self.ttl_seconds)
                await pipe.execute()
        except (RedisError, OSError) as error:
            self._failed(error)
            return
        self._succeeded()

    async def delete_model(self, model: str) -> None:
        """Best effort: forget the cached scores of every version of ``model``."""
        if not self.breaker.allows():
            return
        pattern = f"{self.prefix}score:{model}:*"
        try:
            batch: list[str | bytes] = []
            async for key in self.client.scan_iter(match=pattern, count=500):
                batch.append(key)
                if len(batch) >= 500:
                    await self.client.delete(*batch)
                    batch = []
            if batch:
                await self.client.delete(*batch)
        except (RedisError, OSError) as error:
            self._failed(error)

    async def ping(self) -> bool:
        """Whether Redis answers now (used by /readyz; never raises)."""
        try:
            return bool(await self.client.ping())
        except (RedisError, OSError):
            return False

    def _failed(self, error: BaseException) -> None:
        self._errors.inc()
        if self.breaker.failures == 0:
            log.warning("redis cache unavailable, bypassing L2: %s", error)
            metrics.L2_CIRCUIT_OPEN.set(1)
        self.breaker.failed()

    def _succeeded(self) -> None:
        if self.breaker.failures:
            metrics.L2_CIRCUIT_OPEN.set(0)
        self.breaker.succeeded()

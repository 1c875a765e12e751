"""Per-client request rate limit, shared through Redis when configured.

Redis: a fixed one-second window per client (``INCR`` + ``EXPIRE`` in one pipeline), so all
replicas share one budget of ``rate + burst`` requests per second. Without Redis, or while
it fails (a circuit breaker skips it), each process enforces a token bucket of the same
size on its own.
"""

from __future__ import annotations

import time

from redis.exceptions import RedisError

from pynomaly_detector.caching.redis_cache import CircuitBreaker
from pynomaly_detector.caching.redis_clients import RedisClient


class RateLimiter:
    """``allow(client)`` -> whether this request is within the limit."""

    def __init__(self, *, rate: float, burst: int, redis: RedisClient | None, prefix: str) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate + burst)
        self.redis = redis
        self.prefix = prefix
        self.breaker = CircuitBreaker()
        self._buckets: dict[str, tuple[float, float]] = {}

    async def allow(self, client: str) -> bool:
        """Count one request of ``client``."""
        if self.redis is not None and self.breaker.allows():
            window = int(time.time())
            key = f"{self.prefix}ratelimit:{client}:{window}"
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.incr(key)
                    pipe.expire(key, 2)
                    count, _ = await pipe.execute()
            except (RedisError, OSError):
                self.breaker.failed()
            else:
                self.breaker.succeeded()
                return int(count) <= self.capacity
        return self._local(client)

    def _local(self, client: str) -> bool:
        now = time.monotonic()
        tokens, last = self._buckets.get(client, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[client] = (tokens, now)
            return False
        self._buckets[client] = (tokens - 1.0, now)
        if len(self._buckets) > 100_000:  # bound memory under many clients
            self._buckets.clear()
        return True

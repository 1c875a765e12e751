"""Per-worker snapshots shared through Redis, so one worker can answer for all of them.

Every uvicorn worker of every replica sees only its own requests. For figures that must
describe all traffic (drift, the challenger's agreement) each worker writes its snapshot
(a flat float64 array whose first element is the wall-clock time it was taken) as one
field of a Redis hash per key: ``HSET {prefix}{key} {member} <bytes>``, with the hash's TTL
renewed at each write. A reader takes ``HGETALL`` and keeps the fields younger than
``stale_seconds`` (a worker that stopped or was recycled drops out, and its field is deleted
by the next reader). One hash per key works in every Redis mode, cluster included.

Best effort like the L2 cache: a Redis failure is counted, logged at debug level and
answered with ``None`` ("not shared"), never raised into a request.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time

import numpy as np
import numpy.typing as npt
from redis.exceptions import RedisError

from pynomaly_detector import metrics
from pynomaly_detector.caching.redis_clients import RedisClient

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]


def worker_id() -> str:
    """A name for one sharer among all workers of all replicas: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class SharedSnapshots:
    """Publish this worker's snapshots and read everyone's (see the module doc)."""

    def __init__(
        self,
        client: RedisClient,
        *,
        prefix: str,
        member: str | None = None,
        stale_seconds: float = 600.0,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.member = member or worker_id()
        self.stale_seconds = stale_seconds
        self._errors = metrics.CACHE_ERRORS.labels("shared_snapshots")

    def _key(self, key: str) -> str:
        return f"{self.prefix}{key}"

    async def publish(self, key: str, snapshot: FloatArray) -> bool:
        """Write this worker's ``snapshot`` under ``key``; whether it was written."""
        name = self._key(key)
        try:
            await self.client.hset(name, self.member, snapshot.astype("<f8").tobytes())
            await self.client.expire(name, max(1, round(self.stale_seconds)))
        except (RedisError, OSError) as error:
            self._errors.inc()
            log.debug("could not share snapshot %s: %s", key, error)
            return False
        return True

    async def gather(self, key: str) -> dict[str, FloatArray] | None:
        """Every live worker's snapshot of ``key`` (None when Redis cannot be read)."""
        name = self._key(key)
        try:
            raw = await self.client.hgetall(name)
        except (RedisError, OSError) as error:
            self._errors.inc()
            log.debug("could not read shared snapshots %s: %s", key, error)
            return None
        cutoff = time.time() - self.stale_seconds
        live: dict[str, FloatArray] = {}
        stale: list[bytes | str] = []
        for field, value in raw.items():
            if not isinstance(value, bytes) or len(value) < 8 or len(value) % 8:
                stale.append(field)
                continue
            snapshot = np.frombuffer(value, dtype="<f8").astype(np.float64)
            if snapshot[0] < cutoff:
                stale.append(field)
                continue
            live[field.decode() if isinstance(field, bytes) else str(field)] = snapshot
        if stale:
            try:
                await self.client.hdel(name, *stale)
            except (RedisError, OSError):
                self._errors.inc()
        return live

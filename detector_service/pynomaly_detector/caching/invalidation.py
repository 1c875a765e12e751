"""Cross-process invalidation of the L3 lookup cache over Redis pub/sub.

A fit or delete in one worker publishes the model's name; every worker of every replica
drops its cached "latest version" of that name, so new versions serve everywhere at once
instead of after ``cache_query_ttl_seconds``. Best effort: while Redis is down messages are
lost and the L3 TTL remains the bound on staleness. Standalone and sentinel modes only
(cluster mode relies on the TTL).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from pynomaly_detector import metrics

log = logging.getLogger(__name__)


class Invalidation:
    """Publish and receive "model changed" messages on one channel."""

    def __init__(
        self,
        client: Redis,
        *,
        channel: str,
        backoff_max: float = 10.0,
    ) -> None:
        self.client = client
        self.channel = channel
        self.backoff_max = backoff_max
        self.subscribed = asyncio.Event()
        self._errors = metrics.CACHE_ERRORS.labels("l3_invalidation")

    async def publish(self, name: str) -> None:
        """Tell every process that ``name`` changed (never raises)."""
        try:
            await self.client.publish(self.channel, name)
        except (RedisError, OSError) as error:
            self._errors.inc()
            log.warning("could not publish invalidation of %s: %s", name, error)

    async def run(self, on_change: Callable[[str], None]) -> None:
        """Call ``on_change(name)`` per message until cancelled, resubscribing after failures."""
        delay = 0.5
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.subscribed.set()
                delay = 0.5
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        data = message["data"]
                        on_change(data.decode() if isinstance(data, bytes) else str(data))
            except (RedisError, OSError) as error:
                self.subscribed.clear()
                self._errors.inc()
                log.debug("invalidation channel down, retrying in %.1fs: %s", delay, error)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]  # unannotated in redis-py
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff_max)

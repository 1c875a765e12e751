"""L2 against a real redis-server: round trips, TTL, prefix, and bypass while Redis is dead."""

from __future__ import annotations

import asyncio
import time

import pytest

from pynomaly_detector.caching import redis_clients
from pynomaly_detector.caching.redis_cache import CircuitBreaker, RedisScoreCache
from pynomaly_detector.settings import Settings
from tests.support.redis_servers import RedisServer

pytestmark = pytest.mark.redis


def _cache(server: RedisServer, **options: float) -> RedisScoreCache:
    client = redis_clients.create(Settings(redis_mode="standalone", redis_url=server.url))
    assert client is not None
    return RedisScoreCache(client, prefix="t:", ttl_seconds=60, backoff_max=options.get("cap", 0.2))


async def test_scores_round_trip_bit_for_bit(redis_server: RedisServer) -> None:
    cache = _cache(redis_server)
    key = cache.key("m", 3, b"\x01" * 16)
    assert key == "t:score:m:3:" + "01" * 16
    value = 0.1 + 0.2  # not representable exactly in decimal: bytes must round-trip
    await cache.set_many([(key, value)])
    assert await cache.get_many([key, "t:score:m:3:missing"]) == [value, None]
    assert 0 < await cache.client.ttl(key) <= 60
    await cache.delete_model("m")
    assert await cache.get_many([key]) == [None]
    await cache.client.aclose()


async def test_dead_redis_is_bypassed_quickly_and_resumes(redis_server: RedisServer) -> None:
    cache = _cache(redis_server, cap=0.2)
    key = cache.key("m", 1, b"\x02" * 16)
    await cache.set_many([(key, 1.5)])
    redis_server.kill()
    started = time.monotonic()
    assert await cache.get_many([key]) == [None]  # the failing call
    assert cache.breaker.is_open
    for _ in range(100):  # while open, calls cost nothing
        assert await cache.get_many([key]) == [None]
        await cache.set_many([(key, 2.0)])
    assert time.monotonic() - started < 1.0
    redis_server.restart()  # same port, empty (no persistence)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        await cache.set_many([(key, 2.5)])
        if await cache.get_many([key]) == [2.5]:
            break
        await asyncio.sleep(0.05)
    assert await cache.get_many([key]) == [2.5]
    assert not cache.breaker.is_open
    await cache.client.aclose()


def test_breaker_backoff_grows_and_resets() -> None:
    breaker = CircuitBreaker(base=0.01, cap=0.04)
    pauses = []
    for _ in range(5):
        while not breaker.allows():  # a probe, once the pause is over, fails again
            time.sleep(0.002)
        breaker.failed()
        pauses.append(breaker.open_until - time.monotonic())
    assert pauses[0] <= 0.01
    assert 0.01 < pauses[1] <= 0.02
    assert 0.02 < pauses[2] <= 0.04
    assert max(pauses) <= 0.04  # capped
    breaker.succeeded()
    assert breaker.allows()


def test_breaker_counts_one_outage_once_however_many_calls_were_in_flight() -> None:
    """64 calls failing together (a loaded worker's batches at the first blip) open the
    breaker for the first pause, not the longest: the pause grows per failed probe."""
    breaker = CircuitBreaker(base=0.5, cap=10.0)
    for _ in range(64):
        breaker.failed()
    assert breaker.failures == 1
    assert breaker.open_until - time.monotonic() <= 0.5


def test_parse_nodes() -> None:
    assert redis_clients.parse_nodes("a:1, redis://b:2/0,:pw@c:3") == [
        ("a", 1),
        ("b", 2),
        ("c", 3),
    ]


def test_no_redis_configured() -> None:
    assert redis_clients.create(Settings()) is None


def test_redis_connections_are_bounded_per_worker() -> None:
    """The performance guide's bounded pool: 50 connections, callers wait for a free one."""
    client = redis_clients.create(
        Settings(redis_mode="standalone", redis_url="redis://127.0.0.1:1/0")
    )
    assert client is not None
    assert client.connection_pool.max_connections == 50

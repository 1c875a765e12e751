"""The Redis client factory against real sentinel and cluster topologies (the stores
engineer's fixtures, started from the operator's rendered configuration)."""

from __future__ import annotations

import pytest

from pynomaly_detector.caching import redis_clients
from pynomaly_detector.caching.redis_cache import RedisScoreCache
from pynomaly_detector.settings import Settings
from tests.support.redis_topologies import PASSWORD, ClusterTopology, SentinelTopology

pytestmark = [pytest.mark.redis, pytest.mark.slow]


async def _round_trip(settings: Settings) -> None:
    client = redis_clients.create(settings)
    assert client is not None
    cache = RedisScoreCache(client, prefix="topo:", ttl_seconds=60)
    keys = [cache.key("m", 1, bytes([index]) * 16) for index in range(20)]  # many hash slots
    items = [(key, float(index) / 3) for index, key in enumerate(keys)]
    await cache.set_many(items)
    assert await cache.get_many(keys) == [value for _, value in items]
    assert await cache.ping()
    assert cache.breaker.failures == 0
    await client.aclose()


async def test_sentinel_mode_discovers_the_master(
    redis_sentinel_topology: SentinelTopology,
) -> None:
    topology = redis_sentinel_topology
    await _round_trip(
        Settings(
            redis_mode="sentinel",
            redis_sentinels=",".join(f"127.0.0.1:{port}" for port in topology.sentinel_ports),
            redis_master_name=topology.master_name,
            redis_password=PASSWORD,
        )
    )


async def test_cluster_mode_spreads_keys_over_slots(
    redis_cluster_topology: ClusterTopology,
) -> None:
    formed = redis_cluster_topology.bootstrap()
    assert formed.returncode == 0, formed.stderr
    await _round_trip(
        Settings(
            redis_mode="cluster",
            redis_url=",".join(f"127.0.0.1:{port}" for port in redis_cluster_topology.ports[:2]),
            redis_password=PASSWORD,
        )
    )

"""Six-node Redis cluster formed by the operator's bootstrap script (the Job's command).

Nodes start from the rendered cluster redis.conf via the operator's start script; the
bootstrap script forms the cluster, and a second run must do nothing. The service's
cluster client caches through it, a master is SIGKILLed, a replica takes over its slots
(cluster-node-timeout is 1 s here) and the client recovers without raising.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from pynomaly_detector.caching import redis_clients
from pynomaly_detector.caching.redis_cache import RedisScoreCache
from pynomaly_detector.settings import Settings
from tests.support.redis_topologies import HOST, PASSWORD, ClusterTopology, cli, wait_until

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def _masters(topology: ClusterTopology, port: int) -> list[int]:
    out = cli(port, "cluster", "nodes")
    masters = []
    for line in out.splitlines():
        fields = line.split()
        if "master" in fields[2] and "fail" not in fields[2] and len(fields) > 8:
            masters.append(int(fields[1].split("@")[0].rsplit(":", 1)[1]))
    return sorted(masters)


async def test_bootstrap_forms_once_and_client_survives_failover(
    redis_cluster_topology: ClusterTopology,
) -> None:
    topology = redis_cluster_topology
    first = topology.bootstrap()
    assert first.returncode == 0, first.stdout + first.stderr
    assert "cluster formed" in first.stdout
    info = topology.info(topology.ports[0])
    assert info["cluster_state"] == "ok"
    assert info["cluster_known_nodes"] == "6"
    assert len(_masters(topology, topology.ports[0])) == 3
    epoch_before = info["cluster_current_epoch"]
    topology.wait_replicas_synced()

    again = topology.bootstrap()
    assert again.returncode == 0, again.stdout + again.stderr
    assert "nothing to do" in again.stdout
    assert topology.info(topology.ports[0])["cluster_current_epoch"] == epoch_before

    settings = Settings(
        redis_mode="cluster",
        redis_url=",".join(f"{HOST}:{p}" for p in topology.ports[:3]),
        redis_password=PASSWORD,
        redis_backoff_max_seconds=1.0,
    )
    client = redis_clients.create(settings)
    assert client is not None
    cache = RedisScoreCache(client, prefix="pynomaly:", ttl_seconds=60, backoff_max=1.0)
    try:
        keys = [cache.key("fraud", 1, i.to_bytes(16, "big")) for i in range(50)]
        await cache.set_many([(k, float(i)) for i, k in enumerate(keys)])
        assert await cache.get_many(keys) == [float(i) for i in range(50)]

        victim = _masters(topology, topology.ports[0])[0]
        next(n for n in topology.nodes if n.port == victim).kill()
        survivor = next(p for p in topology.ports if p != victim)
        killed_at = time.monotonic()
        wait_until(
            lambda: (
                topology.info(survivor)["cluster_state"] == "ok"
                and len(_masters(topology, survivor)) == 3
                and victim not in _masters(topology, survivor)
            ),
            timeout=30,
            what="a replica to take over the killed master's slots",
        )
        errors = 0
        recovered = False
        while time.monotonic() - killed_at < 30:
            try:
                probe = [cache.key("fraud", 2, i.to_bytes(16, "big")) for i in range(50)]
                await cache.set_many([(k, float(i)) for i, k in enumerate(probe)])
                if await cache.get_many(probe) == [float(i) for i in range(50)]:
                    recovered = True
                    break
            except Exception:  # counting what would be a 5xx
                errors += 1
            await asyncio.sleep(0.2)
        assert errors == 0
        assert recovered, "cluster client did not recover within 30 s"
    finally:
        await client.aclose()

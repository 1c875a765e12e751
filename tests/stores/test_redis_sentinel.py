"""Sentinel topology from the rendered configs: the service's L2 cache survives a failover.

Three redis-server and three sentinels are started from ``builders.redis.conf`` output by the
operator's own start scripts (tests/support/redis_topologies.py). The detector service's
Redis client factory and L2 cache are used as in a pod; the master is SIGKILLed and the
cache must keep answering (no exception ever reaches a caller) and writes must land on the
promoted master within 30 s. A restarted old master must come back as a replica because
its start script asks the sentinels first. The second test runs the real service process
(``pynomaly-detector serve``) against the topology and counts 5xx through the failover.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from pynomaly_detector.caching import redis_clients
from pynomaly_detector.caching.redis_cache import RedisScoreCache
from pynomaly_detector.settings import Settings
from tests.support.redis_topologies import PASSWORD, SentinelTopology, cli, wait_until

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def _settings(topology: SentinelTopology) -> Settings:
    return Settings(
        redis_mode="sentinel",
        redis_sentinels=topology.sentinels_env.replace(" ", ","),
        redis_master_name=topology.master_name,
        redis_password=PASSWORD,
        redis_backoff_max_seconds=1.0,
    )


async def test_cache_follows_sentinel_failover(redis_sentinel_topology: SentinelTopology) -> None:
    topology = redis_sentinel_topology
    first_master = topology.master_port()
    assert first_master == topology.data_ports[0]
    client = redis_clients.create(_settings(topology))
    assert client is not None
    cache = RedisScoreCache(client, prefix="pynomaly:", ttl_seconds=60, backoff_max=1.0)
    try:
        key = cache.key("fraud", 1, b"\x01" * 16)
        await cache.set_many([(key, 0.25)])
        assert await cache.get_many([key]) == [0.25]

        topology.node_by_port(first_master).kill()
        killed_at = time.monotonic()
        errors = 0
        resumed_after: float | None = None
        i = 0
        # Keep "serving" through the failover: every call must return, never raise.
        while time.monotonic() - killed_at < 30:
            i += 1
            probe = cache.key("fraud", 1, i.to_bytes(16, "big"))
            try:
                await cache.set_many([(probe, float(i))])
                values = await cache.get_many([probe])
            except Exception:  # counting what would be a 5xx
                errors += 1
                values = [None]
            if values == [float(i)]:
                new_master = topology.master_port()
                if new_master != first_master:
                    resumed_after = time.monotonic() - killed_at
                    break
            await asyncio.sleep(0.1)
        assert errors == 0
        assert resumed_after is not None, "L2 writes did not resume within 30 s"
        new_master = topology.master_port()
        assert new_master != first_master
        assert "role:master" in cli(new_master, "info", "replication")

        # The old master restarts through the same start script: it must ask the
        # sentinels and come back as a replica of the promoted node.
        old = topology.node_by_port(first_master)
        old.start()
        wait_until(
            lambda: f"master_port:{new_master}" in cli(first_master, "info", "replication"),
            timeout=20,
            what="old master to rejoin as a replica",
        )
        assert "role:slave" in cli(first_master, "info", "replication")
    finally:
        await client.aclose()


async def test_cache_reaches_the_new_master_soon_after_a_hung_master_is_replaced(
    redis_sentinel_topology: SentinelTopology,
) -> None:
    """A master that stops answering (SIGSTOP: a hung process, or a deleted pod whose address
    then goes nowhere) is replaced by the sentinels. With the production breaker (pauses up
    to 10 s) and eight calls in flight at a time, writes must reach the new master within the
    pause the breaker had reached by the election (~2 s here). Before, each of the eight
    failures doubled the pause, so the first blip opened it for the full 10 s and writes came
    back ~7.8 s after the election.
    """
    topology = redis_sentinel_topology
    first_master = topology.master_port()
    settings = _settings(topology).model_copy(update={"redis_backoff_max_seconds": 10.0})
    client = redis_clients.create(settings)
    assert client is not None
    cache = RedisScoreCache(client, prefix="pynomaly:", ttl_seconds=60, backoff_max=10.0)
    old = topology.node_by_port(first_master)
    assert old.proc is not None

    async def round_trip(i: int) -> bool:
        key = cache.key("fraud", 1, i.to_bytes(16, "big"))
        await cache.set_many([(key, float(i))])
        return await cache.get_many([key]) == [float(i)]

    try:
        # Concurrent calls open many pooled connections, as a loaded worker's batches do.
        assert all(await asyncio.gather(*(round_trip(i) for i in range(32))))
        os.killpg(old.proc.pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        elected_at: float | None = None
        resumed_at: float | None = None
        i = 1000
        while time.monotonic() - stopped_at < 45:
            i += 8
            results = await asyncio.gather(*(round_trip(i + k) for k in range(8)))
            if elected_at is None:
                with contextlib.suppress(Exception):
                    if topology.master_port() != first_master:
                        elected_at = time.monotonic()
            if elected_at is not None and any(results):
                resumed_at = time.monotonic()
                break
            await asyncio.sleep(0.1)
        assert elected_at is not None, "no new master within 45 s"
        assert resumed_at is not None, "L2 never reached the new master within 45 s"
        after = resumed_at - elected_at
        assert after < 5, f"writes reached the new master {after:.1f} s after its election"
    finally:
        os.killpg(old.proc.pid, signal.SIGCONT)
        await client.aclose()


def test_a_master_restarted_while_it_is_failed_over_never_becomes_a_second_master(
    redis_sentinel_topology: SentinelTopology,
) -> None:
    """Node 0 (the master) crashes and restarts the moment the sentinels see it down, before
    they have promoted a replica: they still name it as the master. It must wait for their
    verdict and join the promoted node as a replica; starting as master would make two
    masters, and its replicas would resync from its empty dataset. (Seen on the real node:
    the StatefulSet's new pod 0 was a second master for ~6 s.)"""
    topology = redis_sentinel_topology
    first = topology.master_port()
    node = topology.node_by_port(first)
    node.kill()
    wait_until(
        lambda: any("s_down" in flags for flags in topology.master_flags()),
        timeout=10, interval=0.02, what="a sentinel to see the master down",
    )  # fmt: skip
    assert topology.master_port() == first  # not failed over yet: they still name node 0
    node.start(wait=False)
    roles: list[str] = []
    deadline = time.monotonic() + 25
    while time.monotonic() < deadline:
        role = cli(first, "role", check=False, timeout=2).split()
        if role:
            roles.append(role[0])
            if role[0] == "slave" and topology.master_port() != first:
                break
        time.sleep(0.05)
    assert roles, f"node 0 never answered ({node.workdir}/server.log)"
    assert "master" not in roles, roles
    assert roles[-1] == "slave"
    promoted = topology.master_port()
    assert promoted != first
    assert f"master_port:{promoted}" in cli(first, "info", "replication")
    log = (node.workdir / "server.log").read_text()
    assert "waiting" in log  # it did wait for the sentinels, not merely start late


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _score_keys(port: int) -> int:
    return int(cli(port, "eval", "return #redis.call('keys', 'pynomaly:score:*')", "0"))


def test_service_keeps_serving_through_failover(
    redis_sentinel_topology: SentinelTopology, tmp_path: Path
) -> None:
    """The real detector service (``pynomaly-detector serve``) with the sentinel env."""
    topology = redis_sentinel_topology
    port = _free_port()
    env = {
        **os.environ,
        "PYNOMALY_PORT": str(port),
        "PYNOMALY_WORKERS": "1",
        "PYNOMALY_METRICS_PORT": "0",
        "PYNOMALY_MODEL_DIR": str(tmp_path / "models"),
        "PYNOMALY_CACHE_WARMUP": "false",
        "PYNOMALY_REDIS_MODE": "sentinel",
        "PYNOMALY_REDIS_SENTINELS": topology.sentinels_env.replace(" ", ","),
        "PYNOMALY_REDIS_MASTER_NAME": topology.master_name,
        "PYNOMALY_REDIS_PASSWORD": PASSWORD,
        "PYNOMALY_REDIS_BACKOFF_MAX_SECONDS": "1",
        "PYNOMALY_ARTIFACT_SIGNING_KEY": "stores-test-signing-key-0123456789",
    }
    log = (tmp_path / "service.log").open("wb")
    service = subprocess.Popen(
        [str(Path(sys.executable).with_name("pynomaly-detector")), "serve"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=10) as http:
            wait_until(
                lambda: http.get("/livez").status_code == 200,
                timeout=60,
                what=f"the service ({tmp_path}/service.log)",
            )
            rows = np.random.default_rng(0).normal(size=(200, 3)).tolist()
            fitted = http.put("/v1/models/fraud", json={"algorithm": "ECOD", "instances": rows})
            assert fitted.status_code == 201, fitted.text

            def detect(i: int) -> int:
                row = [float(i), float(i) / 7.0, 1.0]
                return http.post("/v1/models/fraud/detect", json={"instances": [row]}).status_code

            first_master = topology.master_port()
            for i in range(20):
                assert detect(i) == 200
            assert _score_keys(first_master) >= 20

            topology.node_by_port(first_master).kill()
            killed_at = time.monotonic()
            statuses: list[int] = []
            resumed = False
            i = 1000
            while time.monotonic() - killed_at < 30:
                i += 1
                statuses.append(detect(i))
                with contextlib.suppress(Exception):
                    master = topology.master_port()
                    if master != first_master:
                        before = _score_keys(master)
                        statuses.append(detect(i + 100_000))
                        if _score_keys(master) > before:
                            resumed = True
                            break
                time.sleep(0.05)
            assert [s for s in statuses if s >= 500] == []
            assert resumed, "L2 writes did not resume on the promoted master within 30 s"
    finally:
        service.terminate()
        try:
            service.wait(timeout=20)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait(timeout=5)
        log.close()

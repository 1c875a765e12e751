"""Redis client factory by mode: standalone, sentinel (master discovery) or cluster.

Cache calls must fail fast rather than stall requests: short socket timeouts and a single
quick retry (redis-py 8 retries ten times by default, which would turn a dead Redis into
seconds of latency per request). Sentinel clients rediscover the master on failure.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff

from pynomaly_detector.settings import Settings

RedisClient = Redis | RedisCluster
"""What the cache and the rate limiter talk to."""


def parse_nodes(text: str) -> list[tuple[str, int]]:
    """``"host:port,host:port"`` -> ``[(host, port), ...]`` (a ``redis://`` prefix is allowed)."""
    nodes = []
    for item in text.split(","):
        item = item.strip().removeprefix("redis://").split("/", 1)[0]
        if not item:
            continue
        if "@" in item:
            item = item.rsplit("@", 1)[1]
        host, _, port = item.rpartition(":")
        nodes.append((host or "127.0.0.1", int(port or 6379)))
    return nodes


def create(settings: Settings) -> RedisClient | None:
    """A client for ``settings.redis_mode``, or ``None`` when Redis is not configured."""
    mode = settings.redis_mode
    if mode == "none":
        return None
    password = settings.redis_password.get_secret_value() or None
    timeout = settings.redis_socket_timeout_seconds
    common: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(ExponentialBackoff(cap=0.05, base=0.01), retries=1),
        "health_check_interval": 30,
    }
    limit = settings.redis_max_connections
    if mode == "standalone":
        # Blocking pool: beyond the bound a caller waits (up to the socket timeout) instead
        # of opening connection after connection.
        pool = BlockingConnectionPool.from_url(
            settings.redis_url, password=password, max_connections=limit, timeout=timeout, **common
        )
        client: Redis = Redis(connection_pool=pool)
        return client
    if mode == "sentinel":
        sentinel = Sentinel(  # type: ignore[no-untyped-call]  # redis-py leaves __init__ unannotated
            parse_nodes(settings.redis_sentinels),
            sentinel_kwargs={"password": password, "socket_timeout": timeout},
            password=password,
            **common,
        )
        master: Redis = sentinel.master_for(
            settings.redis_master_name, max_connections=limit, **common
        )
        return master
    nodes = [ClusterNode(host, port) for host, port in parse_nodes(settings.redis_url)]
    return RedisCluster(
        startup_nodes=nodes,
        password=password,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), retries=1),
        max_connections=limit,
    )

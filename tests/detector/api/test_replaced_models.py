"""A replaced model stops serving in every worker and replica, whatever the Redis mode.

Two apps over one store are two workers (same model directory) or two replicas (same
database and Redis). The scenario is the one users hit: fit ``m`` (IForest, 2 features),
score it from both, delete it, fit ``m`` again (ECOD, 3 features): the other process must
serve the new model (its scores, its threshold, its version) and never the deleted one,
and concurrent PUTs of one name must leave every process on the newest version.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pynomaly_detector.api.app import create_app
from pynomaly_detector.settings import Settings
from tests.detector.conftest import ready, serving, settings_for, training_rows, wait_until
from tests.support.postgres_servers import PostgresStack
from tests.support.redis_servers import RedisServer
from tests.support.redis_topologies import PASSWORD, ClusterTopology, SentinelTopology

FAST = {"cache_revalidate_seconds": 0.05, "cache_warmup": False}


@contextlib.asynccontextmanager
async def two_processes(
    settings: Settings,
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Two ready apps with the same settings (= two workers or replicas)."""
    async with serving(create_app(settings)) as one, serving(create_app(settings)) as two:
        await wait_until(lambda: ready(one))
        await wait_until(lambda: ready(two))
        yield one, two


async def _fit(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.put("/v1/models/m", json=body)
    assert response.status_code == 201, response.text
    fitted: dict[str, Any] = response.json()
    return fitted


async def _detect(client: httpx.AsyncClient, rows: list[list[float]]) -> httpx.Response:
    return await client.post("/v1/models/m/detect", json={"instances": rows})


async def replace_and_check(one: httpx.AsyncClient, two: httpx.AsyncClient) -> None:
    """Fit, score from both, delete, refit differently: both serve the new model."""
    first = await _fit(
        one,
        {
            "algorithm": "IForest",
            "parameters": {"n_estimators": 20},
            "instances": training_rows(d=2),
        },
    )
    for client in (one, two):
        scored = await _detect(client, [[0.1, 0.2], [5.0, 5.0]])
        assert scored.status_code == 200, scored.text
        assert scored.json()["version"] == first["version"]
    assert (await one.delete("/v1/models/m")).status_code == 200
    second = await _fit(one, {"algorithm": "ECOD", "instances": training_rows(d=3, seed=7)})
    assert second["version"] > first["version"], "a version number was reused"
    row = [[0.1, 0.2, 0.3], [6.0, -6.0, 6.0]]
    expected = (await _detect(one, row)).json()
    assert expected["version"] == second["version"]
    assert expected["threshold"] == second["threshold"]

    async def serves_the_new_model() -> bool:
        answer = await _detect(two, row)
        return answer.status_code == 200 and answer.json() == expected

    await wait_until(serves_the_new_model, within=10.0)
    # ... and the replaced model's 2-feature rows are refused by its width, not scored.
    assert (await _detect(two, [[0.1, 0.2]])).status_code == 422


async def test_refit_after_delete_serves_everywhere_without_redis(tmp_path: Path) -> None:
    async with two_processes(settings_for(tmp_path, **FAST)) as (one, two):
        await replace_and_check(one, two)


async def test_concurrent_puts_leave_every_worker_on_the_newest_version(tmp_path: Path) -> None:
    async with two_processes(settings_for(tmp_path, **FAST)) as (one, two):
        bodies = [
            {"algorithm": "ECOD", "instances": training_rows(n=60, d=2, seed=seed)}
            for seed in range(6)
        ]
        fits = await asyncio.gather(
            *[_fit(one if index % 2 else two, body) for index, body in enumerate(bodies)]
        )
        newest = max(fit["version"] for fit in fits)

        async def both_on_newest() -> bool:
            versions = [
                (await client.get("/v1/models/m")).json()["version"] for client in (one, two)
            ]
            scored = [
                (await _detect(client, [[0.0, 0.0]])).json()["version"] for client in (one, two)
            ]
            return versions == scored == [newest, newest]

        await wait_until(both_on_newest, within=10.0)


async def test_a_reset_store_is_followed_even_to_lower_versions(tmp_path: Path) -> None:
    """The store was wiped (a new volume): versions start again at 1. Processes that knew a
    higher version must follow the store, not keep serving a model that no longer exists."""
    async with two_processes(settings_for(tmp_path, **FAST)) as (one, two):
        for seed in (1, 2):
            await _fit(one, {"algorithm": "ECOD", "instances": training_rows(d=2, seed=seed)})
        assert (await _detect(two, [[0.0, 0.0]])).json()["version"] == 2
        shutil.rmtree(tmp_path / "models")
        (tmp_path / "models" / ".locks").mkdir(parents=True)
        again = await _fit(one, {"algorithm": "ECOD", "instances": training_rows(d=3, seed=3)})
        assert again["version"] == 1
        row = [[0.1, 0.2, 0.3]]

        async def both_follow() -> bool:
            answers = [await _detect(client, row) for client in (one, two)]
            return all(a.status_code == 200 and a.json()["version"] == 1 for a in answers)

        await wait_until(both_follow, within=10.0)


def _redis_settings(tmp_path: Path, postgres: PostgresStack, **redis: Any) -> Settings:
    return settings_for(
        tmp_path,
        database_url=postgres.dsn(postgres.create_database()),
        database_password=postgres.password,
        **redis,
        **FAST,
    )


@pytest.mark.redis
@pytest.mark.postgres
async def test_refit_after_delete_serves_every_replica_redis_standalone(
    tmp_path: Path, postgres_stack: PostgresStack, redis_server: RedisServer
) -> None:
    settings = _redis_settings(
        tmp_path, postgres_stack, redis_mode="standalone", redis_url=redis_server.url
    )
    async with two_processes(settings) as (one, two):
        await replace_and_check(one, two)


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.slow
async def test_refit_after_delete_serves_every_replica_redis_sentinel(
    tmp_path: Path, postgres_stack: PostgresStack, redis_sentinel_topology: SentinelTopology
) -> None:
    topology = redis_sentinel_topology
    settings = _redis_settings(
        tmp_path,
        postgres_stack,
        redis_mode="sentinel",
        redis_sentinels=",".join(f"127.0.0.1:{port}" for port in topology.sentinel_ports),
        redis_master_name=topology.master_name,
        redis_password=PASSWORD,
    )
    async with two_processes(settings) as (one, two):
        await replace_and_check(one, two)


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.slow
async def test_refit_after_delete_serves_every_replica_redis_cluster(
    tmp_path: Path, postgres_stack: PostgresStack, redis_cluster_topology: ClusterTopology
) -> None:
    formed = redis_cluster_topology.bootstrap()
    assert formed.returncode == 0, formed.stderr
    settings = _redis_settings(
        tmp_path,
        postgres_stack,
        redis_mode="cluster",
        redis_url=",".join(f"127.0.0.1:{port}" for port in redis_cluster_topology.ports[:2]),
        redis_password=PASSWORD,
    )
    async with two_processes(settings) as (one, two):
        await replace_and_check(one, two)


@pytest.mark.postgres
async def test_store_outages_under_load_fail_no_scoring_and_heal_without_restart(
    tmp_path: Path, postgres_stack: PostgresStack
) -> None:
    """PgBouncer stopped, then Postgres restarted, while two processes score (and poll the
    store's change counter every 50 ms): every scoring request of the loaded model is a 200,
    and afterwards a new version reaches the other process without a restart."""
    settings = _redis_settings(
        tmp_path, postgres_stack, redis_mode="none", database_connect_timeout_seconds=1.0
    )
    async with two_processes(settings) as (one, two):
        first = await _fit(one, {"algorithm": "ECOD", "instances": training_rows(d=2)})
        for client in (one, two):
            assert (await _detect(client, [[0.0, 0.0]])).status_code == 200
        statuses: list[int] = []
        stop = asyncio.Event()

        async def load(client: httpx.AsyncClient, seed: int) -> None:
            while not stop.is_set():
                rows = training_rows(2, d=2, seed=seed + len(statuses))
                statuses.append((await _detect(client, rows)).status_code)
                await asyncio.sleep(0.01)

        workers = [asyncio.create_task(load(c, n)) for n, c in enumerate((one, two) * 4)]
        try:
            await asyncio.sleep(0.3)
            postgres_stack.pgbouncer.stop()
            await asyncio.sleep(1.5)
            postgres_stack.pgbouncer.start()
            postgres_stack.postgres.stop()
            await asyncio.sleep(1.0)
            postgres_stack.postgres.start()
            await asyncio.sleep(0.3)
        finally:
            stop.set()
            await asyncio.gather(*workers)
        assert len(statuses) > 50
        assert set(statuses) == {200}, f"non-200 during the outages: {sorted(set(statuses))}"

        async def refit() -> bool:
            return (
                await one.put(
                    "/v1/models/m",
                    json={"algorithm": "ECOD", "instances": training_rows(d=2, seed=9)},
                )
            ).status_code == 201

        await wait_until(refit, within=30.0)

        async def two_follows() -> bool:
            version = (await _detect(two, [[0.0, 0.0]])).json().get("version", 0)
            return bool(version > first["version"])

        await wait_until(two_follows, within=15.0)

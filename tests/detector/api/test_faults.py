"""Fault cases over HTTP: Redis killed and restarted, PgBouncer stopped and restarted,
tampered artifacts. No 5xx except the documented 503s."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from pynomaly_detector import metrics
from tests.detector.conftest import service, training_rows, wait_until
from tests.support.postgres_servers import PostgresStack
from tests.support.redis_servers import RedisServer


def _l2_hits() -> float:
    return float(metrics.CACHE_HITS.labels("l2")._value.get())


@pytest.mark.redis
async def test_redis_killed_scoring_continues_and_l2_resumes(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    options = {
        "redis_mode": "standalone",
        "redis_url": redis_server.url,
        "redis_backoff_max_seconds": 0.3,
    }
    rows = training_rows(40, seed=9)
    async with service(tmp_path, **options) as client:
        await client.put("/v1/models/m", json={"algorithm": "KNN", "instances": training_rows()})
        first = await client.post("/v1/models/m/detect", json={"instances": rows})
        assert first.status_code == 200
        await asyncio.sleep(0.2)  # L2 writes happen in the background
        assert await _redis_keys(redis_server) >= 40

        # Kill Redis while 40 concurrent requests (half of them new rows) are in flight.
        in_flight = [
            client.post("/v1/models/m/detect", json={"instances": [[i * 0.1, -1.0, 2.0]]})
            for i in range(40)
        ]
        gathered = asyncio.gather(*in_flight)
        await asyncio.sleep(0)
        redis_server.kill()
        assert {response.status_code for response in await gathered} == {200}
        statuses = []
        started = time.monotonic()
        for index in range(30):
            fresh = [[index * 0.01, 1.0, -1.0]]
            statuses.append(
                (await client.post("/v1/models/m/detect", json={"instances": rows[:5]})).status_code
            )
            statuses.append(
                (await client.post("/v1/models/m/detect", json={"instances": fresh})).status_code
            )
        assert set(statuses) == {200}
        assert time.monotonic() - started < 5
        assert (await client.get("/readyz")).json()["redis"] == "down"

        redis_server.restart()
        deadline = time.monotonic() + 10
        seed = 11
        while time.monotonic() < deadline and await _redis_keys(redis_server) == 0:
            seed += 1  # fresh rows: known ones are answered from L1 and never reach L2
            await client.post(
                "/v1/models/m/detect", json={"instances": training_rows(5, seed=seed)}
            )
            await asyncio.sleep(0.1)
        assert await _redis_keys(redis_server) > 0
        assert (await client.get("/readyz")).json()["redis"] == "up"


async def _redis_keys(server: RedisServer) -> int:
    from redis.asyncio import Redis

    client = Redis.from_url(server.url)
    try:
        return len([key async for key in client.scan_iter(match="pynomaly:score:*")])
    finally:
        await client.aclose()


@pytest.mark.redis
async def test_scores_from_l2_equal_computed_scores(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    options = {"redis_mode": "standalone", "redis_url": redis_server.url}
    rows = training_rows(20, seed=4)
    async with service(tmp_path, **options) as client:
        await client.put("/v1/models/m", json={"algorithm": "ECOD", "instances": training_rows()})
        computed = (await client.post("/v1/models/m/detect", json={"instances": rows})).json()
        await asyncio.sleep(0.2)
    hits = _l2_hits()
    async with service(tmp_path, **options) as restarted:  # same store, empty L1
        cached = (await restarted.post("/v1/models/m/detect", json={"instances": rows})).json()
    assert _l2_hits() - hits == 20
    assert cached["scores"] == computed["scores"]


@pytest.mark.postgres
async def test_database_outage_keeps_scoring_and_reports_clearly(
    tmp_path: Path, postgres_stack: PostgresStack
) -> None:
    options = {
        "database_url": postgres_stack.dsn(postgres_stack.create_database()),
        "database_password": postgres_stack.password,
        "database_connect_timeout_seconds": 2.0,
    }
    async with service(tmp_path, **options) as client:
        fitted = await client.put(
            "/v1/models/m", json={"algorithm": "ECOD", "instances": training_rows()}
        )
        assert fitted.status_code == 201
        assert (await client.get("/readyz")).json()["database"] == "up"
        postgres_stack.pgbouncer.stop()
        try:
            for seed in range(5):
                rows = training_rows(3, seed=100 + seed)
                scored = await client.post("/v1/models/m/detect", json={"instances": rows})
                assert scored.status_code == 200
            refit = await client.put(
                "/v1/models/m", json={"algorithm": "ECOD", "instances": training_rows()}
            )
            assert refit.status_code == 503
            assert refit.json()["error"] == "store_unavailable"
            assert "database unavailable" in refit.json()["detail"]
            readiness = await client.get("/readyz")
            assert readiness.status_code == 200  # loaded models keep serving (documented)
            assert readiness.json()["database"] == "down"
            assert (await client.get("/v1/models")).status_code == 503
        finally:
            postgres_stack.pgbouncer.start()
        refit = await client.put(
            "/v1/models/m", json={"algorithm": "ECOD", "instances": training_rows()}
        )
        assert refit.status_code == 201
        assert refit.json()["version"] == 2
        assert (await client.get("/readyz")).json()["database"] == "up"


async def test_tampered_artifacts_are_refused(tmp_path: Path) -> None:
    async with service(tmp_path) as client:
        await client.put("/v1/models/m", json={"algorithm": "ECOD", "instances": training_rows()})
    artifact = tmp_path / "models" / "m" / "v1.pkl"
    artifact.write_bytes(artifact.read_bytes() + b"tampered")
    async with service(tmp_path, cache_warmup=False) as client:
        response = await client.post("/v1/models/m/detect", json={"instances": [[0, 0, 0]]})
        assert response.status_code == 503
        assert response.json()["error"] == "artifact_rejected"
    async with service(
        tmp_path, cache_warmup=False, artifact_signing_key="a-different-key-123456"
    ) as client:
        artifact.write_bytes(artifact.read_bytes()[: -len(b"tampered")])
        response = await client.post("/v1/models/m/detect", json={"instances": [[0, 0, 0]]})
        assert response.json()["error"] == "artifact_rejected"


@pytest.mark.redis
async def test_new_versions_reach_other_workers_through_redis(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    # Two "workers" share the model directory and Redis; the L3 TTL (30 min) alone would
    # keep the second one on version 1.
    options = {"redis_mode": "standalone", "redis_url": redis_server.url}
    body = {"algorithm": "ECOD", "instances": training_rows()}
    row = {"instances": [[0, 0, 0]]}
    async with service(tmp_path, **options) as first, service(tmp_path, **options) as second:
        await first.put("/v1/models/m", json=body)
        assert (await second.post("/v1/models/m/detect", json=row)).json()["version"] == 1
        await first.put("/v1/models/m", json=body)

        async def second_sees(version: int) -> bool:
            response = await second.post("/v1/models/m/detect", json=row)
            return response.status_code == 200 and response.json()["version"] == version

        await wait_until(lambda: second_sees(2), within=10)
        await first.delete("/v1/models/m")

        async def second_forgot() -> bool:
            response = await second.post("/v1/models/m/detect", json=row)
            return response.status_code == 404

        await wait_until(second_forgot, within=10)

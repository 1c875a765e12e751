"""Challengers: shadow scoring that leaves responses alone, agreement, promotion, rollback.

Two in-process workers (two apps) share PostgreSQL behind PgBouncer and Redis, as the
workers and replicas of a deployment do: a promotion in one is served by the other at once.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import redis

from pynomaly_detector import dataplane, datasets
from pynomaly_detector.api.app import create_app
from pynomaly_detector.registry.local import LocalStore
from tests.detector.conftest import service, serving, settings_for, training_rows, wait_until
from tests.support.postgres_servers import PostgresStack
from tests.support.redis_servers import RedisServer

pytestmark = pytest.mark.drift


def _rows(n: int, seed: int) -> list[list[float]]:
    return np.random.default_rng(seed).normal(size=(n, 3)).tolist()  # type: ignore[no-any-return]


async def _agreement(client: httpx.AsyncClient, rows: int) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def compared() -> bool:
        body = (await client.get("/v1/models/m")).json()
        found.update(body["challenger"]["agreement"] or {})
        return bool(found) and found["rows"] >= rows

    try:
        await wait_until(compared, within=30, interval=0.1)
    except TimeoutError:
        raise AssertionError(f"fewer than {rows} rows compared: {found}") from None
    return found


async def test_shadow_scoring_leaves_responses_unchanged_and_reports_agreement(
    tmp_path: Path,
) -> None:
    async with service(tmp_path, drift_publish_seconds=0.2) as client:
        assert (
            await client.put("/v1/models/m", json={"instances": training_rows(1000)})
        ).status_code == 201
        requests = [_rows(20, seed) for seed in range(40)]
        before = [
            (await client.post("/v1/models/m/detect", json={"instances": rows})).json()
            for rows in requests
        ]
        challenger = await client.put(
            "/v1/models/m/challenger",
            json={"algorithm": "ECOD", "instances": training_rows(1000, seed=3)},
        )
        assert challenger.status_code == 201, challenger.text
        assert challenger.json()["algorithm"] == "ECOD"
        await client.post("/v1/models/m/detect", json={"instances": requests[0]})
        await wait_until(lambda: _has_challenger(client), within=10, interval=0.1)
        after = []
        for rows in requests:
            after.append(
                (await client.post("/v1/models/m/detect", json={"instances": rows})).json()
            )
            await asyncio.sleep(0.01)
        assert after == before  # same scores, flags, p-values, version: the champion answers
        agreement = await _agreement(client, 400)
        assert agreement["scope"] == "worker"
        assert 0.5 < agreement["spearman"] <= 1.0  # two sound detectors rank alike
        assert 0.0 <= agreement["flagged_overlap"] <= 1.0
        flagged = sum(sum(body["is_anomaly"]) for body in before) / (20 * 40)
        assert agreement["champion_alert_rate"] == pytest.approx(flagged, abs=0.05)
        assert agreement["challenger_alert_rate"] is not None
        metrics_text = (await client.get("/metrics")).text
        assert 'pynomaly_challenger_agreement{model="m"}' in metrics_text


async def _has_challenger(client: httpx.AsyncClient) -> bool:
    body = (await client.get("/v1/models/m")).json()
    return body["challenger"] is not None and body["challenger"]["agreement"] is not None


async def test_a_challenger_fitted_with_an_alert_rate_keeps_it(tmp_path: Path) -> None:
    async with service(tmp_path) as client:
        await client.put("/v1/models/m", json={"instances": training_rows(1000)})
        fitted = await client.put(
            "/v1/models/m/challenger",
            json={"algorithm": "ECOD", "alert_rate": 0.02, "instances": training_rows(1000)},
        )
        assert fitted.status_code == 201, fitted.text
        assert fitted.json()["alert_rate"] == 0.02
        challenger = (await client.get("/v1/models/m")).json()["challenger"]
        assert challenger["alert_rate"] == 0.02
        assert challenger["calibration_size"] > 0


async def test_bad_requests_are_refused_with_a_message(tmp_path: Path) -> None:
    async with service(tmp_path) as client:
        missing = await client.put("/v1/models/m/challenger", json={"instances": training_rows()})
        assert missing.status_code == 404
        assert "not found" in missing.json()["detail"]
        await client.put("/v1/models/m", json={"instances": training_rows()})
        no_challenger = await client.post("/v1/models/m/promote")
        assert no_challenger.status_code == 409
        assert "no challenger" in no_challenger.json()["detail"]
        wide = await client.put(
            "/v1/models/m/challenger", json={"instances": np.ones((10, 4)).tolist()}
        )
        assert wide.status_code == 422
        assert "3 features" in wide.json()["detail"]
        for body in ({"version": "2"}, {"version": 0}, {"other": 1}):
            refused = await client.post("/v1/models/m/promote", json=body)
            assert refused.status_code == 422, body
            assert "invalid promote request" in refused.json()["detail"]
        assert (await client.post("/v1/models/m/promote", content=b"[1]")).status_code == 400
        unknown = await client.post("/v1/models/m/promote", json={"version": 7})
        assert unknown.status_code == 409
        assert "no stored version 7" in unknown.json()["detail"]
        gone = await client.delete("/v1/models/m/challenger")
        assert gone.status_code == 404
        assert (await client.post("/v1/models/nope/promote")).status_code == 404


async def test_promotion_needs_a_token_when_tokens_are_configured(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("s3cret-token\n")
    async with service(tmp_path, api_token_file=str(tokens)) as client:
        auth = {"Authorization": "Bearer s3cret-token"}
        await client.put("/v1/models/m", json={"instances": training_rows()}, headers=auth)
        put = await client.put("/v1/models/m/challenger", json={"instances": training_rows()})
        assert put.status_code == 401
        assert (await client.post("/v1/models/m/promote")).status_code == 401
        assert (await client.delete("/v1/models/m/challenger")).status_code == 401
        fitted = await client.put(
            "/v1/models/m/challenger", json={"instances": training_rows()}, headers=auth
        )
        assert fitted.status_code == 201
        assert (await client.post("/v1/models/m/promote", headers=auth)).status_code == 200


@pytest.mark.postgres
@pytest.mark.redis
async def test_promotion_and_rollback_switch_every_worker_at_once(
    tmp_path: Path, postgres_stack: PostgresStack, redis_server: RedisServer
) -> None:
    settings = settings_for(
        tmp_path,
        database_url=postgres_stack.dsn(postgres_stack.create_database()),
        database_password=postgres_stack.password,
        redis_mode="standalone",
        redis_url=redis_server.url,
        cache_revalidate_seconds=30.0,  # Redis invalidation alone must carry the switch
        drift_publish_seconds=0.2,
        request_timeout_seconds=120.0,  # two workers fitting in one process on a busy machine
    )
    async with (
        serving(create_app(settings)) as first,
        serving(create_app(settings)) as second,
    ):
        await wait_until(lambda: _ready(first))
        await wait_until(lambda: _ready(second))
        assert (
            await first.put("/v1/models/m", json={"instances": training_rows(800)})
        ).status_code == 201
        put = await first.put(
            "/v1/models/m/challenger",
            json={"algorithm": "HBOS", "contamination": 0.05, "instances": training_rows(800)},
        )
        assert put.status_code == 201
        rows = _rows(50, 9)

        async def both_compared() -> bool:
            for client in (first, second):
                await client.post("/v1/models/m/detect", json={"instances": rows})
            shared = redis.Redis.from_url(redis_server.url)
            try:
                keys = shared.keys("pynomaly:challenger:m:*")
                return len(keys) == 1 and shared.hlen(keys[0]) == 2
            finally:
                shared.close()

        # Each worker shares its pairs through Redis...
        await wait_until(both_compared, within=60, interval=0.1)
        await asyncio.sleep(0.5)  # both publish what they hold (every 0.2 s)
        # ...and whichever answers reports the pooled figures of both.
        pooled = [
            (await client.get("/v1/models/m")).json()["challenger"]["agreement"]
            for client in (first, second)
        ]
        assert pooled[0] == pooled[1]
        assert pooled[0]["scope"] == "cluster"
        assert pooled[0]["rows"] >= 100

        promoted = await second.post("/v1/models/m/promote")
        assert promoted.status_code == 200, promoted.text
        body = promoted.json()
        assert (body["version"], body["algorithm"]) == (2, "HBOS")
        assert body["extra"]["previous_version"] == 1
        assert body["extra"]["promoted"] == "challenger"

        async def serves(version: int, algorithm: str) -> bool:
            answer = (await first.post("/v1/models/m/detect", json={"instances": rows})).json()
            described = (await first.get("/v1/models/m")).json()
            return answer["version"] == version and described["algorithm"] == algorithm

        await wait_until(lambda: serves(2, "HBOS"), within=5)
        assert (await first.get("/v1/models/m")).json()["challenger"] is None
        assert (await first.post("/v1/models/m/promote")).status_code == 409  # used up

        rolled = await first.post("/v1/models/m/promote", json={"version": 1})
        assert rolled.status_code == 200
        assert (rolled.json()["version"], rolled.json()["algorithm"]) == (3, "IForest")
        assert rolled.json()["extra"]["promoted"] == "rollback"

        async def second_serves_v3() -> bool:
            answer = (await second.post("/v1/models/m/detect", json={"instances": rows})).json()
            return bool(answer["version"] == 3)

        await wait_until(second_serves_v3, within=5)


async def _ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).status_code == 200


async def test_promotion_by_agreement_and_a_promoted_declared_challenger_stays(
    tmp_path: Path,
) -> None:
    training = tmp_path / "training.csv"
    training.write_text(
        "a,b,c\n" + "\n".join(",".join(f"{v:.5f}" for v in row) for row in training_rows(800))
    )
    declared = {
        "model_name": "m",
        "model_training_path": str(training),
        "model_challenger_algorithm": "ECOD",
        "model_promotion_min_rows": 300,
        "model_promotion_min_agreement": 0.5,
        "drift_publish_seconds": 0.2,
    }
    async with service(tmp_path, **declared) as client:
        first = (await client.get("/v1/models/m")).json()
        assert first["version"] == 1
        assert first["algorithm"] == "IForest"
        assert first["challenger"]["algorithm"] == "ECOD"

        async def promoted() -> bool:
            await client.post("/v1/models/m/detect", json={"instances": _rows(40, 5)})
            return bool((await client.get("/v1/models/m")).json()["version"] == 2)

        await wait_until(promoted, within=30, interval=0.05)
        body = (await client.get("/v1/models/m")).json()
        assert body["algorithm"] == "ECOD"
        assert body["extra"]["promoted"] == "challenger"
        assert body["challenger"] is None
    # A restart with the same declaration neither refits the champion nor the challenger.
    async with service(tmp_path, **declared) as client:
        body = (await client.get("/v1/models/m")).json()
        assert (body["version"], body["algorithm"], body["challenger"]) == (2, "ECOD", None)


async def test_the_challenger_keeps_to_its_cpu_budget(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, shadow_cpu_share=0.1, shadow_buffer_rows=512)
    plane = dataplane.build(settings, store=LocalStore(tmp_path / "models"))
    await plane.start()
    assert plane.shadow is not None
    try:
        rows = np.asarray(training_rows(3000))
        data = datasets.TrainingData(rows, ["a", "b", "c"], len(rows), sampled=False)
        await plane.fit("m", dataplane.FitSpec("IForest", contamination=0.1), data)
        # KNN scores new rows slowly (neighbour search): the budget has something to hold.
        await plane.fit_challenger("m", dataplane.FitSpec("KNN", contamination=0.1), data)
        task = asyncio.create_task(plane.shadow.run())
        started = time.monotonic()
        offered = 0
        while time.monotonic() - started < 4.0:
            await plane.detect("m", _rows(64, offered))
            offered += 64
            await asyncio.sleep(0)
        elapsed = time.monotonic() - started
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        state = plane.shadow._states["m"]
        print(
            f"offered {offered} rows, challenger scored {state.pairs.rows}, "
            f"busy {plane.shadow.busy_seconds:.2f}s of {elapsed:.2f}s"
        )
        assert state.pairs.rows > 0
        assert state.pairs.rows < offered  # the rest was skipped, not queued
        # At most the share, plus the one call in flight when the loop last rested.
        assert plane.shadow.busy_seconds <= 0.1 * elapsed + 0.3
    finally:
        await plane.close()

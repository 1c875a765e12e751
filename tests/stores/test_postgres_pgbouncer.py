"""Managed Postgres behind PgBouncer, both started from the rendered files.

Also: the postStart password-sync script repairs a role password that differs from the Secret.

The detector's own Postgres model store (asyncpg, statement cache off) is used the way a
worker uses it, always through PgBouncer with SCRAM: 64 concurrent clients fit and load
models; 64 clients racing ``ensure`` produce exactly one version; a PgBouncer crash and
restart is survived by an open store without a restart, and no stored version is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
from collections.abc import Iterator

import numpy as np
import pytest

from pynomaly_detector.detectors import fitted
from pynomaly_detector.registry import signing
from pynomaly_detector.registry.postgres import PostgresStore
from pynomaly_detector.registry.store import Draft, StoreUnavailableError
from pynomaly_detector.registry.versions import ModelVersion
from pynomaly_operator.specs.postgres import PostgresSpec
from tests.stores.pg_stack import APP_PASSWORD, PostgresStack

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

KEY = b"stores-test-signing-key-0123456789"
CLIENTS = 64


@pytest.fixture(scope="module")
def pg_stack() -> Iterator[PostgresStack]:
    stack = PostgresStack(PostgresSpec())  # the guide's defaults, unchanged
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


def _store(stack: PostgresStack, *, max_size: int = 2) -> PostgresStore:
    return PostgresStore(stack.dsn, password=APP_PASSWORD, min_size=1, max_size=max_size)


def _draft(name: str, seed: int) -> Draft:
    rows = np.random.default_rng(seed).normal(size=(200, 3))
    detector = fitted.fit("ECOD", rows, contamination=0.05)
    artifact, signature, digest = signing.dump(KEY, detector)
    meta = ModelVersion(
        name=name,
        version=0,
        algorithm=detector.algorithm,
        parameters={},
        contamination=detector.contamination,
        features=[f"f{i}" for i in range(3)],
        n_samples=detector.n_samples,
        threshold=detector.threshold,
        fitted_at=dt.datetime.now(dt.UTC).isoformat(),
        content_hash=digest,
        signature=signature,
    )
    return meta, artifact


async def _client(stack: PostgresStack, i: int) -> ModelVersion:
    store = _store(stack)
    try:
        await store.open()
        saved = await store.save(await asyncio.to_thread(_draft, f"m{i % 8}", i))
        latest = await store.latest(saved.name)
        assert latest is not None
        assert latest.version >= saved.version
        artifact = await store.artifact(saved.name, saved.version)
        assert artifact is not None
        detector = signing.load(KEY, artifact, saved.signature, name=saved.name)
        assert detector.score(np.zeros((1, 3))).shape == (1,)
        return saved
    finally:
        await store.close()


async def _latest_once_answered(
    store: PostgresStore, name: str, *, within: float
) -> ModelVersion | None:
    """``store.latest(name)`` retried every 0.2 s while the store is unavailable (bounded)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            return await store.latest(name)
        except StoreUnavailableError:
            assert asyncio.get_running_loop().time() < deadline, f"no recovery in {within:g} s"
            await asyncio.sleep(0.2)


async def test_64_clients_fit_and_load_through_pgbouncer(pg_stack: PostgresStack) -> None:
    saved = await asyncio.gather(*(_client(pg_stack, i) for i in range(CLIENTS)))
    by_model: dict[str, list[int]] = {}
    for version in saved:
        by_model.setdefault(version.name, []).append(version.version)
    # Every model got consecutive, unique versions: no write lost, none duplicated.
    for versions in by_model.values():
        assert sorted(versions) == list(range(1, len(versions) + 1))

    async def ensure(i: int) -> int:
        store = _store(pg_stack)
        try:
            fits = 0

            async def fit() -> Draft:
                nonlocal fits
                fits += 1
                return await asyncio.to_thread(_draft, "shared", i)

            version = await store.ensure("shared", fit)
            return version.version * 1000 + fits
        finally:
            await store.close()

    results = await asyncio.gather(*(ensure(i) for i in range(CLIENTS)))
    assert {r // 1000 for r in results} == {1}
    assert sum(r % 1000 for r in results) == 1  # exactly one fit across 64 clients


async def test_store_recovers_after_pgbouncer_restart(pg_stack: PostgresStack) -> None:
    store = _store(pg_stack, max_size=4)
    await store.open()
    try:
        before = [await store.save(_draft("restart", i)) for i in range(3)]
        pg_stack.kill_bouncer()
        with pytest.raises(StoreUnavailableError):
            await store.latest("restart")
        pg_stack.start_bouncer()
        # The same store object (same pool) works again, no process restart needed.
        latest = await _latest_once_answered(store, "restart", within=20)
        assert latest is not None
        assert latest.version == before[-1].version
        after = await store.save(_draft("restart", 99))
        assert after.version == before[-1].version + 1
        count = pg_stack.psql("select count(*) from pynomaly_models where name = 'restart'")
        assert int(count) == 4
        for version in before:
            assert dataclasses.asdict(version)["content_hash"]
            assert await store.artifact("restart", version.version) is not None
    finally:
        await store.close()


async def test_queries_resume_within_seconds_of_postgres_coming_back(
    pg_stack: PostgresStack,
) -> None:
    """A Postgres restart (pod deleted, new pod Ready) costs fits seconds, not PgBouncer's 15.

    The first query after the server went away makes PgBouncer fail a login; it then waits
    ``server_login_retry`` before trying again, holding or refusing every query meanwhile.
    The rendered ini sets 2 s (spec.postgres.pgbouncer.serverLoginRetry): with PgBouncer's
    default of 15 s this took 14.2 s after the server was back.
    """
    store = _store(pg_stack, max_size=2)
    await store.open()
    try:
        saved = await store.save(_draft("pg-restart", 1))
        pg_stack.stop_postgres()
        waiting = asyncio.create_task(store.latest("pg-restart"))  # PgBouncer fails a login
        await asyncio.sleep(1.0)
        await asyncio.to_thread(pg_stack.start_postgres)
        back = asyncio.get_running_loop().time()
        latest = await _latest_once_answered(store, "pg-restart", within=30)
        resumed = asyncio.get_running_loop().time() - back
        assert latest is not None
        assert latest.version == saved.version
        assert resumed < 6, f"queries resumed {resumed:.1f} s after Postgres accepted again"
        # The first query was held past the client's deadline or refused during the pause:
        # both are fine, as long as it ends.
        with contextlib.suppress(StoreUnavailableError):
            await asyncio.wait_for(waiting, timeout=35)
    finally:
        await store.close()


async def test_passwords_follow_the_secret_on_restart(pg_stack: PostgresStack) -> None:
    """A retained volume whose role password differs from the (re-created) Secret."""
    pg_stack.psql("alter role pynomaly password 'password-of-a-previous-life'")
    pg_stack.kill_bouncer()
    pg_stack.start_bouncer()  # fresh server connections must authenticate again
    stale = _store(pg_stack)
    with pytest.raises(StoreUnavailableError):
        await stale._ready()
    await stale.close()
    pg_stack.sync_passwords()
    store = _store(pg_stack)
    try:
        # PgBouncer waits server_login_retry (15 s) after a failed server login.
        deadline = asyncio.get_running_loop().time() + 25
        while not await store.ping():
            assert asyncio.get_running_loop().time() < deadline, "login still failing"
            await asyncio.sleep(0.5)
        assert await store.latest("restart") is not None
    finally:
        await store.close()

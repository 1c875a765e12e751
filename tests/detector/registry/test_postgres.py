"""The Postgres store through a real PgBouncer in transaction mode."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from pynomaly_detector.registry.postgres import PostgresStore
from pynomaly_detector.registry.store import StoreUnavailableError
from tests.detector.registry import store_contract
from tests.detector.registry.conftest import draft
from tests.support.ports import free_port
from tests.support.postgres_servers import PostgresStack

pytestmark = pytest.mark.postgres


def _store(stack: PostgresStack, database: str) -> PostgresStore:
    return PostgresStore(
        stack.dsn(database), password=stack.password, min_size=1, max_size=3, timeout=3.0
    )


@pytest.fixture
async def store(postgres_stack: PostgresStack) -> AsyncIterator[PostgresStore]:
    opened = _store(postgres_stack, postgres_stack.create_database())
    await opened.open()
    yield opened
    await opened.close()


async def test_versions_list_delete(store: PostgresStore) -> None:
    await store_contract.versions_list_delete(store)


async def test_versions_are_never_reused(store: PostgresStore) -> None:
    await store_contract.versions_are_never_reused_and_changes_are_counted(store)


async def test_ensure_refits_a_changed_declaration_once(postgres_stack: PostgresStack) -> None:
    database = postgres_stack.create_database()
    stores = [_store(postgres_stack, database) for _ in range(3)]  # three "replicas"
    for store in stores:
        await store.open()
    try:
        await store_contract.ensure_refits_what_accept_refuses(list(stores))
    finally:
        for store in stores:
            await store.close()


async def test_prune_keeps_the_newest(store: PostgresStore) -> None:
    await store_contract.prune_keeps_the_newest(store)


async def test_concurrent_saves(store: PostgresStore) -> None:
    await store_contract.concurrent_saves_get_distinct_versions(store)


async def test_anomaly_log(store: PostgresStore) -> None:
    await store_contract.anomaly_log(store)


async def test_ensure_fits_once_across_replicas(postgres_stack: PostgresStack) -> None:
    database = postgres_stack.create_database()
    stores = [_store(postgres_stack, database) for _ in range(3)]  # three "replicas"
    for store in stores:
        await store.open()
    try:
        await store_contract.ensure_fits_exactly_once(list(stores))
    finally:
        for store in stores:
            await store.close()


async def test_pgbouncer_outage_is_reported_and_recovered(postgres_stack: PostgresStack) -> None:
    store = _store(postgres_stack, postgres_stack.create_database())
    await store.open()
    await store.save(draft("m"))
    postgres_stack.pgbouncer.stop()
    try:
        assert not await store.ping()
        with pytest.raises(StoreUnavailableError, match="unavailable"):
            await store.latest("m")
    finally:
        postgres_stack.pgbouncer.start()
    latest = await store.latest("m")  # no restart of the store needed
    assert latest is not None
    assert latest.version == 1
    assert await store.ping()
    await store.close()


async def test_store_opens_while_database_is_down(postgres_stack: PostgresStack) -> None:
    database = postgres_stack.create_database()
    postgres_stack.pgbouncer.stop()
    store = _store(postgres_stack, database)
    try:
        await store.open()  # tolerated: the service must start and serve what it can
        with pytest.raises(StoreUnavailableError):
            await store.list_models()
    finally:
        postgres_stack.pgbouncer.start()
    assert await store.list_models() == []
    await store.close()


async def test_store_errors_never_echo_the_driver() -> None:
    """503 bodies and /readyz show our message; the driver's (host, port, user) stays in logs."""
    port = free_port()
    store = PostgresStore(
        f"postgresql://leaky_user@127.0.0.1:{port}/db", password="pw", timeout=1.0
    )
    with pytest.raises(StoreUnavailableError) as raised:
        await store.save(draft("m"))
    message = str(raised.value)
    assert "leaky_user" not in message
    assert str(port) not in message
    assert "127.0.0.1" not in message
    await store.close()

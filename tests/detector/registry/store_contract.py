"""Behaviour every ModelStore must have; run against the local and the Postgres store."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Awaitable, Callable

from pynomaly_detector.registry.store import Draft, ModelStore
from tests.detector.registry.conftest import draft, record


async def versions_list_delete(store: ModelStore) -> None:
    assert await store.latest("m") is None
    first = await store.save(draft("m", payload=b"one"))
    second = await store.save(draft("m", payload=b"two"))
    await store.save(draft("other"))
    assert (first.version, second.version) == (1, 2)
    latest = await store.latest("m")
    assert latest is not None
    assert latest.version == 2
    assert latest.extra == {"rows_seen": 10}
    assert await store.artifact("m", 1) == b"one"
    assert await store.artifact("m", 9) is None
    assert {(meta.name, meta.version) for meta in await store.list_models()} == {
        ("m", 2),
        ("other", 1),
    }
    assert await store.delete("m")
    assert not await store.delete("m")
    assert await store.latest("m") is None


async def versions_are_never_reused_and_changes_are_counted(store: ModelStore) -> None:
    """A deleted name fitted again gets a new number: (name, version) names one model forever;
    every save and delete moves the generation other processes poll."""
    start = await store.generation()
    first = await store.save(draft("r", payload=b"iforest"))
    after_save = await store.generation()
    assert after_save != start
    assert await store.delete("r")
    after_delete = await store.generation()
    assert after_delete != after_save
    assert not await store.delete("r")
    assert await store.generation() == after_delete  # nothing deleted, nothing changed
    second = await store.save(draft("r", payload=b"ecod"))
    assert (first.version, second.version) == (1, 2)
    assert await store.artifact("r", 1) is None
    assert await store.artifact("r", 2) == b"ecod"


async def ensure_refits_what_accept_refuses(stores: list[ModelStore]) -> None:
    """A changed declaration: exactly one caller fits a new version, the others take it."""
    first = await stores[0].ensure("d", _fit_as("old"))
    fits = 0

    def fit_new() -> Callable[[], Awaitable[Draft]]:
        async def fit() -> Draft:
            nonlocal fits
            fits += 1
            await asyncio.sleep(0.3)  # the others must wait, not fit too
            return _with_declaration(draft("d"), "new")

        return fit

    results = await asyncio.gather(
        *[
            store.ensure("d", fit_new(), accept=lambda meta: meta.extra.get("declaration") == "new")
            for store in stores
        ]
    )
    assert fits == 1
    assert {meta.version for meta in results} == {first.version + 1}


def _with_declaration(pair: Draft, declaration: str) -> Draft:
    meta, artifact = pair
    return dataclasses.replace(meta, extra={**meta.extra, "declaration": declaration}), artifact


def _fit_as(declaration: str) -> Callable[[], Awaitable[Draft]]:
    async def fit() -> Draft:
        return _with_declaration(draft("d"), declaration)

    return fit


async def prune_keeps_the_newest(store: ModelStore) -> None:
    for index in range(5):
        await store.save(draft("p", payload=f"v{index + 1}".encode()))
    assert await store.prune("p", keep=2) == 3
    latest = await store.latest("p")
    assert latest is not None
    assert latest.version == 5
    assert await store.artifact("p", 3) is None
    assert await store.artifact("p", 4) == b"v4"
    assert await store.prune("p", keep=0) == 1  # never the newest, whatever ``keep`` says
    assert await store.artifact("p", 5) == b"v5"


async def concurrent_saves_get_distinct_versions(store: ModelStore) -> None:
    saved = await asyncio.gather(*[store.save(draft("c")) for _ in range(6)])
    assert sorted(meta.version for meta in saved) == [1, 2, 3, 4, 5, 6]


async def ensure_fits_exactly_once(stores: list[ModelStore]) -> None:
    fits = 0

    async def fit() -> Draft:
        nonlocal fits
        fits += 1
        await asyncio.sleep(0.3)  # the others must wait, not fit too
        return draft("declared")

    results = await asyncio.gather(*[store.ensure("declared", fit) for store in stores])
    assert fits == 1
    assert {meta.version for meta in results} == {1}


async def anomaly_log(store: ModelStore) -> None:
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    await store.save(draft("a"))
    await store.write_anomalies([record("a", 5.0), record("a", 6.0)])
    found = await store.anomalies("a", since=before, limit=10)
    assert [item.score for item in found] == [5.0, 6.0]
    assert found[0].row == [1.0, 2.0]
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
    assert await store.anomalies("a", since=later, limit=10) == []
    assert len(await store.anomalies("a", since=None, limit=1)) == 1

"""The embedded directory store."""

from __future__ import annotations

from pathlib import Path

from pynomaly_detector.registry.local import LocalStore
from tests.detector.registry import store_contract


async def _store(path: Path) -> LocalStore:
    store = LocalStore(path)
    await store.open()
    return store


async def test_versions_list_delete(tmp_path: Path) -> None:
    await store_contract.versions_list_delete(await _store(tmp_path))


async def test_versions_are_never_reused(tmp_path: Path) -> None:
    await store_contract.versions_are_never_reused_and_changes_are_counted(await _store(tmp_path))


async def test_ensure_refits_a_changed_declaration_once(tmp_path: Path) -> None:
    await store_contract.ensure_refits_what_accept_refuses(
        [await _store(tmp_path) for _ in range(3)]
    )


async def test_prune_keeps_the_newest(tmp_path: Path) -> None:
    await store_contract.prune_keeps_the_newest(await _store(tmp_path))


async def test_concurrent_saves(tmp_path: Path) -> None:
    await store_contract.concurrent_saves_get_distinct_versions(await _store(tmp_path))


async def test_ensure_fits_once_across_store_instances(tmp_path: Path) -> None:
    # Separate instances stand for separate worker processes sharing the directory.
    await store_contract.ensure_fits_exactly_once([await _store(tmp_path) for _ in range(3)])


async def test_anomaly_log(tmp_path: Path) -> None:
    await store_contract.anomaly_log(await _store(tmp_path))

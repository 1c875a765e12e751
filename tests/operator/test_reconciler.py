"""Decisions of the one reconcile that need no API server to show.

The applier here records requests instead of sending them. It is a fake, used only for what
the real control plane cannot provoke on demand: a resync landing in the middle of a
reconcile (the interleaving of two coroutines). Everything else about the reconcile is tested
against the real API server in ``test_operator_cluster.py``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import httpx2
import pytest

from pynomaly_operator import naming
from pynomaly_operator.reconciling import applying, reconciler

KEY = ("payments", "fraud")
BODY: dict[str, Any] = {
    "apiVersion": naming.API_VERSION,
    "kind": naming.KIND,
    "metadata": {
        "name": "fraud",
        "namespace": "payments",
        "uid": "uid-fraud",
        "generation": 1,
        "resourceVersion": "1",
    },
    "spec": {"redis": {"mode": "standalone"}, "postgres": {"mode": "managed"}},
}


class RecordingApplier:
    """Records writes; every Secret exists; ``during_apply`` runs inside the first apply."""

    def __init__(self, during_apply: Any = None) -> None:
        self.applied: list[dict[str, Any]] = []
        self.during_apply = during_apply
        self.writes = None

    def may_write(self) -> bool:
        return True  # one replica: always the leader

    async def uid(self, api_version: str, kind: str, name: str, namespace: str) -> str:
        return f"uid-{name}"

    async def identity(self, *args: str) -> tuple[str, frozenset[str]]:
        name = args[2]
        owners = frozenset() if name.endswith("signing-key") else frozenset({"uid-fraud"})
        return f"uid-{name}", owners

    async def get(self, *args: Any) -> None:
        return None

    async def find(self, *args: Any) -> tuple[None, bool]:
        return None, False  # no Prometheus Operator kinds served

    async def apply(self, obj: Mapping[str, Any]) -> applying.Applied:
        self.applied.append(dict(obj))
        if self.during_apply is not None:
            hook, self.during_apply = self.during_apply, None
            hook()
            await asyncio.sleep(0)
        return applying.Applied(str(len(self.applied) + 1), 1)

    async def scale(self, *args: Any) -> None:
        return None

    async def hand_over_replicas(self, *args: Any) -> None:
        return None

    async def create_if_absent(self, obj: Mapping[str, Any]) -> str:
        raise AssertionError(f"every Secret exists; created {obj['metadata']['name']}")

    async def delete(self, *args: Any) -> None:
        raise AssertionError(f"nothing to delete: {args}")

    async def write_status(self, *args: Any) -> str:
        return "100"

    async def event(self, *args: Any, **kwargs: Any) -> None:
        return None


def _stamps(applied: list[dict[str, Any]]) -> dict[tuple[str, str], str | None]:
    out = {}
    for obj in applied:
        if obj["kind"] in ("Deployment", "StatefulSet"):
            annotations = obj["spec"]["template"]["metadata"].get("annotations") or {}
            out[(obj["kind"], obj["metadata"]["name"])] = annotations.get(
                naming.SECRETS_HASH_ANNOTATION
            )
    return out


def test_a_resync_during_a_reconcile_keeps_every_secrets_hash() -> None:
    """The resync empties the remembered Secret UIDs while a run is applying; the run must
    still stamp every workload (a missing hash rolls the pods, and the next run rolls them
    back: the stores restarted twice)."""
    holder: dict[str, reconciler.Reconciler] = {}
    applier = RecordingApplier(during_apply=lambda: holder["r"].forget_secrets(KEY))
    runner = reconciler.Reconciler(
        applier,  # type: ignore[arg-type]  # the recording fake stands in for the Applier
        body_of=lambda key: BODY,
        children_of=lambda key: [],
    )
    holder["r"] = runner
    asyncio.run(runner.trigger(KEY))
    stamps = _stamps(applier.applied)
    assert {("Deployment", "fraud"), ("StatefulSet", "fraud-redis")} <= set(stamps)
    assert all(stamps.values()), stamps


def test_only_controlled_children_are_prunable() -> None:
    def child(owners: list[dict[str, Any]]) -> dict[str, Any]:
        return {"metadata": {"name": "fraud-extra", "ownerReferences": owners}}

    assert reconciler.controlled_by(child([{"uid": "u1", "controller": True}]), "u1")
    assert not reconciler.controlled_by(child([]), "u1")  # labels alone: not ours
    assert not reconciler.controlled_by(child([{"uid": "u2", "controller": True}]), "u1")
    assert not reconciler.controlled_by(child([{"uid": "u1"}]), "u1")


class OwnedKeyApplier(RecordingApplier):
    """An existing signing key still owned by the resource (created by an older operator)."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []

    async def identity(self, *args: str) -> tuple[str, frozenset[str]]:
        return f"uid-{args[2]}", frozenset({"uid-fraud"})

    async def event(self, *args: Any, **kwargs: Any) -> None:
        self.events.append(kwargs)


def test_a_retained_signing_key_still_owned_is_reported_once_never_patched() -> None:
    """Key and retained data share one lifetime. An owned key (older operator) is not
    patched (no write access to Secrets beyond create): one Warning names the fix."""
    applier = OwnedKeyApplier()
    runner = reconciler.Reconciler(
        applier,  # type: ignore[arg-type]  # the recording fake stands in for the Applier
        body_of=lambda key: BODY,
        children_of=lambda key: [],
    )
    asyncio.run(runner.trigger(KEY))
    asyncio.run(runner.trigger(KEY))
    warnings = [e for e in applier.events if e.get("reason") == "SecretOwnership"]
    assert len(warnings) == 1
    assert "fraud-signing-key" in warnings[0]["message"]
    assert "ownerReferences" in warnings[0]["message"]


class TimingOutApplier(RecordingApplier):
    """The API server too slow to answer: lightkube's HTTP client raises a timeout, which
    carries no message of its own."""

    async def apply(self, obj: Mapping[str, Any]) -> applying.Applied:
        raise httpx2.PoolTimeout("")


def test_a_timed_out_reconcile_says_which_timeout(caplog: pytest.LogCaptureFixture) -> None:
    """A reconcile cut short by a timeout is retried by the next trigger; its warning names
    the timeout (at 1,000 resources on a starved machine the log held 1,326 warnings that
    ended in an empty message)."""
    runner = reconciler.Reconciler(
        TimingOutApplier(),  # type: ignore[arg-type]  # the fake stands in for the Applier
        body_of=lambda key: BODY,
        children_of=lambda key: [],
    )
    with caplog.at_level(logging.WARNING, logger=reconciler.__name__):
        asyncio.run(runner.trigger(KEY))
    assert [r.getMessage() for r in caplog.records] == ["reconcile payments/fraud: PoolTimeout"]


class SlowApplier(RecordingApplier):
    """Each apply takes a moment (the API server's round trip); counts applies in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = 0
        self.most_in_flight = 0
        self.applied_by: dict[str, int] = {}

    async def apply(self, obj: Mapping[str, Any]) -> applying.Applied:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        owner = obj["metadata"]["ownerReferences"][0]["name"]
        self.applied_by[owner] = self.applied_by.get(owner, 0) + 1
        await asyncio.sleep(0.001)
        self.in_flight -= 1
        return applying.Applied("1", 1)


def _body(name: str) -> dict[str, Any]:
    body = {**BODY, "metadata": {**BODY["metadata"], "name": name, "uid": f"uid-{name}"}}
    body["spec"] = {"redis": {"mode": "none"}}
    return body


def test_reconciles_beyond_the_limit_wait_their_turn_and_all_complete() -> None:
    """Many resources created at once: at most ``concurrency`` reconciles run together
    (each sends one request at a time), the rest wait instead of crowding the connection
    pool, and every one of them is reconciled."""
    applier = SlowApplier()
    names = [f"d{i}" for i in range(12)]
    runner = reconciler.Reconciler(
        applier,  # type: ignore[arg-type]  # the recording fake stands in for the Applier
        body_of=lambda key: _body(key[1]),
        children_of=lambda key: [],
        concurrency=3,
    )

    async def burst() -> None:
        await asyncio.gather(*(runner.trigger(("payments", n)) for n in names))

    asyncio.run(burst())
    assert applier.most_in_flight == 3
    assert set(applier.applied_by) == set(names)
    assert len(set(applier.applied_by.values())) == 1  # each reconciled once, fully

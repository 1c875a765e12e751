"""kopf registration: indexes, triggers and settings. Importing this module registers them.

Triggers, all calling the same ``Reconciler.trigger``:
- every watch event of an ``AnomalyDetector`` (initial listing = resume, ADDED, MODIFIED);
  ``on.event`` is used rather than on.create/update/resume because it keeps no state in
  the resource (no annotations, no finalizers: deletion is left to garbage collection);
- every watch event of a labelled child (edited or deleted by hand -> restored at once);
- a resync loop every ``OperatorSettings.resync_seconds`` over all known resources (a missed
  event is corrected within that interval; kopf timers would add a finalizer, so they are not used).
  The resync also re-checks, by name, that the generated Secrets exist (they are not watched:
  see ``observing.CHILD_KINDS``) and re-creates deleted ones.

Observation reads kopf's in-memory indexes, so a reconcile at steady state writes nothing;
its only requests are reads: one GET per generated Secret per resync, and one GET of a
configured training ConfigMap.

With ``OperatorSettings.leader_election`` (the install's two replicas), an ``leading.Elector``
holds a Lease: every replica watches and indexes, only the leader reconciles; on taking over,
the new leader reconciles every known resource at once (``_take_over``).

Process state (the settings, the reconciler, the resync task) lives in kopf's ``memo``,
created by the startup handler: nothing is read from the environment at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Iterable, Mapping
from typing import Any

import kopf
import lightkube

from pynomaly_operator import naming
from pynomaly_operator import settings as _settings
from pynomaly_operator.reconciling import applying, leading, observing, reconciler, serving

logger = logging.getLogger(__name__)

CHILD_LABELS = {naming.LABEL_MANAGED_BY: naming.MANAGED_BY}
_CHILD_INDEX_PREFIX = "children_"


async def _served_model(endpoint: str, name: str, token: str | None) -> dict[str, Any] | None:
    return await serving.served_model(endpoint, name, token=token)


def _reconciler(memo: Any) -> reconciler.Reconciler | None:
    """The process's reconciler (None until the startup handler has run)."""
    found: reconciler.Reconciler | None = getattr(memo, "reconciler", None)
    return found


def configure(settings: kopf.OperatorSettings) -> None:
    """Watch timeouts so a silent stream is replaced; logs are not turned into Events."""
    settings.watching.server_timeout = 60  # the API server closes each watch after 60 s
    settings.watching.client_timeout = 75  # ... and we give up on a stream silent for 75 s
    settings.watching.connect_timeout = 10
    settings.watching.reconnect_backoff = 1.0
    settings.networking.request_timeout = 30
    settings.posting.enabled = False  # Events are posted deliberately by the reconcile
    settings.persistence.finalizer = (
        f"{naming.GROUP}/unused-finalizer"  # never added: no delete handlers
    )
    settings.peering.standalone = True  # no kopf peering: a Lease elects the leader (leading.py)
    settings.batching.error_delays = (1, 2, 5, 10)
    # kopf logs every handler/indexer success per event at INFO; with hundreds of resources
    # that is most of the operator's CPU. Keep warnings and errors (and our own INFO lines).
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)


def _values(index: Any, key: observing.Key) -> list[str]:
    if index is None or key not in index:
        return []
    return list(index[key])


class _Lookups:
    def __init__(self, indices: Mapping[str, Any]) -> None:
        self.indices = indices

    def body_of(self, key: observing.Key) -> Mapping[str, Any] | None:
        found = _values(self.indices.get("detectors"), key)
        return observing.unpack(found[0]) if found else None

    def children_of(self, key: observing.Key) -> Iterable[Mapping[str, Any]]:
        for name, index in self.indices.items():
            if name.startswith(_CHILD_INDEX_PREFIX):
                yield from (observing.unpack(text) for text in _values(index, key))

    def detector_keys(self) -> list[observing.Key]:
        return list(self.indices.get("detectors") or {})


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    configure(settings)
    memo.settings = operator_settings = _settings.OperatorSettings()
    lookups = _Lookups(_indices(kwargs))
    client = lightkube.AsyncClient(field_manager=naming.FIELD_MANAGER)
    in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    elector = _elector(client, operator_settings, memo, lookups)
    memo.reconciler = reconciler.Reconciler(
        applying.Applier(client, may_write=elector.may_write if elector else None),
        body_of=lookups.body_of,
        children_of=lookups.children_of,
        served_model=(
            _served_model if operator_settings.report_served_model and in_cluster else None
        ),
        concurrency=operator_settings.max_concurrent_reconciles,
        pod_hint_after=operator_settings.pod_hint_after_seconds,
    )
    memo.resync = asyncio.create_task(
        _resync(lookups, memo.reconciler, operator_settings.resync_seconds),
        name="pynomaly-resync",
    )
    if elector is not None:
        memo.elector = elector
        memo.electing = asyncio.create_task(elector.run(), name="pynomaly-leader-election")


def _elector(
    client: lightkube.AsyncClient,
    operator_settings: _settings.OperatorSettings,
    memo: kopf.Memo,
    lookups: _Lookups,
) -> leading.Elector | None:
    if not operator_settings.leader_election:
        return None

    async def started() -> None:
        # Not awaited here: reconciling every resource must not delay the next renew.
        memo.take_over = asyncio.create_task(_take_over(lookups, memo), name="pynomaly-take-over")

    async def stopped() -> None:
        found = _reconciler(memo)
        if found is not None:
            found.reset()

    return leading.Elector(
        client,
        name=operator_settings.lease_name,
        namespace=operator_settings.lease_namespace
        or os.environ.get("POD_NAMESPACE", "")
        or "default",
        identity=operator_settings.identity
        or os.environ.get("POD_NAME", "")
        or f"{socket.gethostname()}-{os.getpid()}",
        lease_seconds=operator_settings.lease_seconds,
        renew_deadline_seconds=operator_settings.renew_deadline_seconds,
        retry_seconds=operator_settings.retry_seconds,
        on_started=started,
        on_stopped=stopped,
    )


async def _take_over(lookups: _Lookups, memo: kopf.Memo) -> None:
    """The new leader reconciles every known resource (what it missed while standing by)."""
    runner = _reconciler(memo)
    if runner is None:
        return
    runner.reset()
    for key in lookups.detector_keys():
        try:
            await runner.trigger(key)
        except Exception:  # one broken resource must not stop the others
            logger.exception("take-over reconcile of %s/%s failed", *key)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    for task_name in ("electing", "take_over", "resync"):
        task: asyncio.Task[None] | None = getattr(memo, task_name, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    elector: leading.Elector | None = getattr(memo, "elector", None)
    if elector is not None:
        await elector.release()  # a rolling update hands over at once
    found = _reconciler(memo)
    if found is not None:
        logger.info("API requests made by reconciles: %s", found.applier.writes)


def _indices(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: value
        for name, value in kwargs.items()
        if name == "detectors" or name.startswith(_CHILD_INDEX_PREFIX)
    }


async def _resync(lookups: _Lookups, runner: reconciler.Reconciler, seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds)
        for key in lookups.detector_keys():
            try:
                # Secrets are not watched: each resync re-checks that the generated ones exist.
                runner.forget_secrets(key)
                await runner.trigger(key)
            except Exception:  # one broken resource must not stop the others' resync
                logger.exception("resync of %s/%s failed", *key)
        logger.debug("resync done; API requests so far: %s", runner.applier.writes)


@kopf.index(naming.GROUP, naming.VERSION, naming.PLURAL, id="detectors")
def detectors(
    body: kopf.Body, namespace: str | None, name: str | None, **_: Any
) -> dict[observing.Key, str]:
    return {(namespace or "", name or ""): observing.pack(body)}


@kopf.on.event(naming.GROUP, naming.VERSION, naming.PLURAL, id="detector-event")
async def detector_event(
    type: str | None, namespace: str | None, name: str | None, memo: kopf.Memo, **_: Any
) -> None:
    runner = _reconciler(memo)
    if type == "DELETED" or runner is None:
        return
    await runner.trigger((namespace or "", name or ""))


def _register_child(kind: str, group: str, version: str, plural: str) -> None:
    def index(body: kopf.Body, **_: Any) -> dict[observing.Key, str] | None:
        key = observing.child_key(body)
        return None if key is None else {key: observing.pack(body)}

    async def event(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
        key = observing.child_key(body)
        runner = _reconciler(memo)
        if key is None or runner is None:
            return
        if type == "DELETED":
            runner.forget_child(key, kind, str(body.get("metadata", {}).get("name")))
        await runner.trigger(key)

    kopf.index(
        group=group,
        version=version,
        plural=plural,
        labels=CHILD_LABELS,
        id=f"{_CHILD_INDEX_PREFIX}{plural}",
    )(index)
    kopf.on.event(
        group=group, version=version, plural=plural, labels=CHILD_LABELS, id=f"child-{plural}"
    )(event)


for _kind, (_group, _version, _plural) in observing.CHILD_KINDS.items():
    _register_child(_kind, _group, _version, _plural)

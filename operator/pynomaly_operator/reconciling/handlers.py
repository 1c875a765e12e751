"""kopf registration: indexes, triggers and settings. Importing this module registers them.

Triggers, all calling the same ``Reconciler.trigger``:
- every watch event of an ``AnomalyDetector`` (initial listing = resume, ADDED, MODIFIED);
  ``on.event`` is used rather than on.create/update/resume because it keeps no state in
  the resource (no annotations, no finalizers: deletion is left to garbage collection);
- every watch event of a labelled child (edited or deleted by hand -> restored at once);
- a resync loop every ``RESYNC_SECONDS`` over all known resources (a missed event is
  corrected within that interval; kopf timers would add a finalizer, so they are not used).
  The resync also re-checks, by name, that the generated Secrets exist (they are not watched:
  see ``observing.CHILD_KINDS``) and re-creates deleted ones.

Observation reads kopf's in-memory indexes, so a reconcile at steady state writes nothing;
its only requests are reads: one GET per generated Secret per resync, and one GET of a
configured training ConfigMap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

import kopf
import lightkube

from pynomaly_operator import naming
from pynomaly_operator.reconciling import applying, observing, reconciler

logger = logging.getLogger(__name__)

RESYNC_SECONDS = float(os.environ.get("PYNOMALY_OPERATOR_RESYNC_SECONDS", "15"))
CHILD_LABELS = {naming.LABEL_MANAGED_BY: naming.MANAGED_BY}
_CHILD_INDEX_PREFIX = "children_"


class _Runtime:
    """Process-wide state, created at startup (kopf handlers are module functions)."""

    reconciler: reconciler.Reconciler | None = None
    resync: asyncio.Task[None] | None = None


_runtime = _Runtime()


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
    settings.peering.standalone = True  # one replica, Deployment strategy Recreate (see README)
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
async def startup(settings: kopf.OperatorSettings, **kwargs: Any) -> None:
    configure(settings)
    lookups = _Lookups(_indices(kwargs))
    client = lightkube.AsyncClient(field_manager=naming.FIELD_MANAGER)
    _runtime.reconciler = reconciler.Reconciler(
        applying.Applier(client), body_of=lookups.body_of, children_of=lookups.children_of
    )
    _runtime.resync = asyncio.create_task(_resync(lookups), name="pynomaly-resync")


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    if _runtime.resync is not None:
        _runtime.resync.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await _runtime.resync
    if _runtime.reconciler is not None:
        writes = _runtime.reconciler.applier.writes
        logger.info("API requests made by reconciles: %s", writes)


def _indices(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: value
        for name, value in kwargs.items()
        if name == "detectors" or name.startswith(_CHILD_INDEX_PREFIX)
    }


async def _resync(lookups: _Lookups) -> None:
    while True:
        await asyncio.sleep(RESYNC_SECONDS)
        if _runtime.reconciler is None:
            continue
        for key in lookups.detector_keys():
            try:
                # Secrets are not watched: each resync re-checks that the generated ones exist.
                _runtime.reconciler.forget_secrets(key)
                await _runtime.reconciler.trigger(key)
            except Exception:  # one broken resource must not stop the others' resync
                logger.exception("resync of %s/%s failed", *key)
        writes = _runtime.reconciler.applier.writes
        logger.debug("resync done; API requests so far: %s", writes)


@kopf.index(naming.GROUP, naming.VERSION, naming.PLURAL, id="detectors")
def detectors(
    body: kopf.Body, namespace: str | None, name: str | None, **_: Any
) -> dict[observing.Key, str]:
    return {(namespace or "", name or ""): observing.pack(body)}


@kopf.on.event(naming.GROUP, naming.VERSION, naming.PLURAL, id="detector-event")
async def detector_event(
    type: str | None, namespace: str | None, name: str | None, **_: Any
) -> None:
    if type == "DELETED" or _runtime.reconciler is None:
        return
    await _runtime.reconciler.trigger((namespace or "", name or ""))


def _register_child(kind: str, group: str, version: str, plural: str) -> None:
    def index(body: kopf.Body, **_: Any) -> dict[observing.Key, str] | None:
        key = observing.child_key(body)
        return None if key is None else {key: observing.pack(body)}

    async def event(body: kopf.Body, type: str | None, **_: Any) -> None:
        key = observing.child_key(body)
        if key is None or _runtime.reconciler is None:
            return
        if type == "DELETED":
            _runtime.reconciler.forget_child(key, kind, str(body.get("metadata", {}).get("name")))
        await _runtime.reconciler.trigger(key)

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

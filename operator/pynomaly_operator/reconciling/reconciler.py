"""The one reconcile, reading like a table of contents: observe -> status -> apply -> write.

1. observe: the children from kopf's indexes, the generated Secrets' UIDs (remembered, or one
   GET each after a resync) and the training ConfigMap, into one ``observing.Observed``;
2. status: ``status.compute`` once, from that observation, before this run's writes;
3. apply: create the generated Secrets that are missing, then server-side apply every
   object of ``builders.desired`` whose spec hash or live fields differ, then delete the
   children the spec no longer wants;
4. write status: only when it differs from the stored one.

Create, update, resume, the periodic resync and events on children all end up in
``Reconciler.reconcile``; runs for one resource are coalesced (a trigger arriving while a
run is in progress causes exactly one more run, with the newest body). With leader
election, a replica that does not hold the Lease ignores triggers (``Applier.may_write``);
the one that takes it over reconciles every known resource (``reset`` + ``trigger``).

A spec that passes the schema but cannot work (``status.problems``) sets Degraded, posts one
Event and leaves the existing workload untouched: nothing is applied until it is fixed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import datetime
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import httpx2  # lightkube's HTTP client: its transport errors are not OSErrors
import pydantic
from lightkube.core.exceptions import ApiError

from pynomaly_operator import naming, status
from pynomaly_operator.builders import desired as desired_state
from pynomaly_operator.builders.detector import api_token, monitoring
from pynomaly_operator.reconciling import applying, comparing, leading, observing
from pynomaly_operator.specs import detector as specs
from pynomaly_operator.status import conditions, events, pods, problems
from pynomaly_operator.values import as_int

logger = logging.getLogger(__name__)

BodyLookup = Callable[[observing.Key], Mapping[str, Any] | None]
ChildrenLookup = Callable[[observing.Key], Iterable[Mapping[str, Any]]]
ServedLookup = Callable[[str, str, str | None], Awaitable[dict[str, Any] | None]]


UNSERVED_MEMORY_SECONDS = 60.0
"""How long an unserved Prometheus Operator kind is not looked up again for pruning."""


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass
class _Memory:
    """What this process last wrote for one resource (indexes lag behind our own writes)."""

    uid: str = ""  # a deleted and re-created resource of the same name starts afresh
    status: dict[str, Any] | None = None
    status_rv: int = 0
    # Generated Secrets seen to exist since the last resync (which empties this): name -> UID,
    # and name -> whether this resource owns it.
    secrets: dict[str, str] = dataclasses.field(default_factory=dict)
    secrets_owned: dict[str, bool] = dataclasses.field(default_factory=dict)
    warned: set[str] = dataclasses.field(default_factory=set)  # ownership warnings posted
    # (kind, name) -> (spec hash, resourceVersion, generation) of this process's last apply
    applied: dict[tuple[str, str], tuple[str, int, int]] = dataclasses.field(default_factory=dict)
    degraded_reason: str | None = None
    # The served model as the service last reported it, and whether it was asked since the
    # last resync (it is asked at most once per resync, and only while the detector is ready).
    served: dict[str, Any] | None = None
    served_asked: bool = False
    # Prometheus Operator kinds the API server answered 404 for (Event posted once).
    # Emptied at each resync, so a CRD installed later is picked up.
    unserved: set[str] = dataclasses.field(default_factory=set)
    unserved_announced: set[str] = dataclasses.field(default_factory=set)
    # Prometheus Operator kinds wanted when the unwanted ones were last checked for pruning.
    monitoring_checked: frozenset[str] | None = None
    # Why a stuck component's pods are not ready (condition type -> hint), and when the pods
    # were last read (time.monotonic()).
    pod_hints: dict[str, str] = dataclasses.field(default_factory=dict)
    pods_checked: float = float("-inf")


class Reconciler:
    """Reconciles AnomalyDetectors from indexed observations (one per operator process)."""

    def __init__(
        self,
        applier: applying.Applier,
        *,
        body_of: BodyLookup,
        children_of: ChildrenLookup,
        served_model: ServedLookup | None = None,
        concurrency: int = 0,
        pod_hint_after: float = 60.0,
    ) -> None:
        self.applier = applier
        # A component condition False this long gets its pods' reason (OperatorSettings).
        self.pod_hint_after = pod_hint_after
        # At most this many reconciles run at once (0: no limit); the others wait their turn
        # in arrival order (OperatorSettings.max_concurrent_reconciles).
        self._slots = asyncio.Semaphore(concurrency) if concurrency > 0 else None
        # How to ask a detector what it serves (None: not asked, e.g. outside a cluster).
        self.served_model = served_model
        self.body_of = body_of
        self.children_of = children_of
        self._running: set[observing.Key] = set()
        self._dirty: set[observing.Key] = set()
        self._memory: dict[observing.Key, _Memory] = {}
        # Prometheus Operator kinds the API server answered "not served" for, until when
        # (process-wide: the answer is the same for every resource).
        self._unserved_until: dict[str, float] = {}

    # --- triggering -------------------------------------------------------------------
    async def trigger(self, key: observing.Key) -> None:
        """Reconcile ``key`` now, or once more after the run in progress (leader only)."""
        if not self.applier.may_write():
            return  # a standby replica: the leader reconciles
        if key in self._running:
            self._dirty.add(key)
            return
        self._running.add(key)
        try:
            while True:
                async with self._slot():
                    # Read after waiting for a slot: triggers that arrived meanwhile are
                    # part of this run, and the body is the newest the index has.
                    self._dirty.discard(key)
                    body = self.body_of(key)
                    if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
                        self._memory.pop(key, None)  # deleted: children go by GC
                        return
                    await self._guarded(key, body)
                if key not in self._dirty:
                    return
        finally:
            self._running.discard(key)

    def _slot(self) -> contextlib.AbstractAsyncContextManager[object]:
        return self._slots if self._slots is not None else contextlib.nullcontext()

    async def _guarded(self, key: observing.Key, body: Mapping[str, Any]) -> None:
        try:
            await self.reconcile(key, body)
        except leading.NotLeadingError:
            logger.info("reconcile %s/%s stopped: leadership lost", *key)
        except ApiError as exc:
            logger.warning("reconcile %s/%s: API error %s", *key, exc)
        except (TimeoutError, OSError, httpx2.HTTPError) as exc:
            # The API server is away or slow: the next trigger or the resync retries. The
            # type is logged too: timeouts (httpx's PoolTimeout, ReadTimeout) have no message.
            text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            logger.warning("reconcile %s/%s: %s", *key, text)

    # --- the reconcile ------------------------------------------------------------------
    async def reconcile(self, key: observing.Key, body: Mapping[str, Any]) -> None:
        uid = str((body.get("metadata") or {}).get("uid") or "")
        memory = self._memory.get(key)
        if memory is None or memory.uid != uid:
            memory = self._memory[key] = _Memory(uid=uid)
        try:
            detector = specs.AnomalyDetector.from_body(body)
        except (pydantic.ValidationError, KeyError, ValueError) as exc:
            message = f"spec does not parse: {exc}".replace("\n", " ")[:900]
            new = status.invalid(body, message, previous=body.get("status"), now=now())
            await self._write_status(body, memory, new)
            await self._announce(body, memory, status.REASON_INVALID_SPEC, message)
            return
        names = naming.Names(instance=detector.name, namespace=detector.namespace)

        observed = await self._observe(key, detector, names, memory)
        found = problems.problems(detector, training=observed.training)
        pending: set[tuple[str, str]] = set()
        if not found and not detector.spec.paused:
            try:
                pending = await self._apply(body, detector, names, observed, memory)
            except ApiError as exc:
                message = f"{exc.status.reason or ''}: {exc.status.message or exc}"
                found = [{"reason": status.REASON_APPLY_FAILED, "message": message[:900]}]
        # A workload this run has just changed has not observed its new spec, whatever the
        # observation says: status must not claim this generation Ready until it has.
        children = conditions.awaiting(observed.children, pending)
        stamp = now()

        def compute(hints: Mapping[str, str] | None = None) -> dict[str, Any]:
            return status.compute(
                detector,
                deployment=children.get(("Deployment", names.detector)),
                hpa=observed.get("HorizontalPodAutoscaler", names.detector),
                store_conditions=conditions.stores(detector, names, children),
                problems=found,
                previous=body.get("status"),
                now=stamp,
                served=observed.served or self._carried_served(body),
                pod_hints=hints,
            )

        new = compute()
        stored = memory.status if memory.status is not None else body.get("status")
        hints = await self._pod_hints(detector, names, new, stored, memory)
        if hints:
            new = compute(hints)
        previous = memory.status if memory.status is not None else body.get("status")
        await self._write_status(body, memory, new)
        for event in events.transitions(previous, new):
            await self.applier.event(
                body, type_=event.type, reason=event.reason, message=event.message
            )
        if found:
            await self._announce(body, memory, found[0]["reason"], found[0]["message"])
        else:
            memory.degraded_reason = None

    async def _observe(
        self,
        key: observing.Key,
        detector: specs.AnomalyDetector,
        names: naming.Names,
        memory: _Memory,
    ) -> observing.Observed:
        """Children from the indexes; generated Secrets by name (not watched: see
        ``observing.CHILD_KINDS``), one GET each the first time and after every resync
        (``forget_secrets``), trusting the remembered UIDs in between; the training
        ConfigMap by one GET when one is configured."""
        children = observing.children(self.children_of(key), owner_uid=detector.uid)
        for secret in desired_state.secrets(detector, names):
            name = secret["metadata"]["name"]
            if name not in memory.secrets:
                found = await self.applier.identity("v1", "Secret", name, detector.namespace)
                if found is not None and found[0]:
                    memory.secrets[name] = found[0]
                    memory.secrets_owned[name] = detector.uid in found[1]
        training = None
        ref = detector.spec.model.training.config_map_ref
        if ref is not None:
            training = await self.applier.get("v1", "ConfigMap", ref.name, detector.namespace)
        await self._ask_served(detector, names, children, memory)
        return observing.Observed(
            children=children,
            secret_uids=dict(memory.secrets),
            secrets_owned=dict(memory.secrets_owned),
            training=training,
            served=memory.served,
        )

    async def _pod_hints(
        self,
        detector: specs.AnomalyDetector,
        names: naming.Names,
        new: Mapping[str, Any],
        stored: Mapping[str, Any] | None,
        memory: _Memory,
    ) -> dict[str, str]:
        """Why the pods of each component condition False for ``pod_hint_after`` seconds are
        not ready (``status.pods``): one LIST per such component, at most once per that
        interval, the hints remembered in between. Nothing is read while every component is
        ready or has just changed."""
        false = {
            str(c.get("type"))
            for c in new.get("conditions") or []
            if c.get("type") in pods.COMPONENTS and c.get("status") == "False"
        }
        memory.pod_hints = {t: h for t, h in memory.pod_hints.items() if t in false}
        stuck = sorted(t for t in false if _false_for(stored, t) >= self.pod_hint_after)
        if not stuck or time.monotonic() - memory.pods_checked < self.pod_hint_after:
            return dict(memory.pod_hints)
        memory.pods_checked = time.monotonic()
        for type_ in stuck:
            found: list[dict[str, Any]] = []
            try:
                for component in pods.COMPONENTS[type_]:
                    found += await self.applier.pods(detector.namespace, names.selector(component))
            except (ApiError, httpx2.HTTPError) as exc:  # a hint is not worth a failed run
                logger.debug("pods of %s/%s: %s", detector.namespace, detector.name, exc)
                continue
            hint = pods.why_not_ready(found)
            if hint:
                memory.pod_hints[type_] = hint
            else:
                memory.pod_hints.pop(type_, None)
        return dict(memory.pod_hints)

    def _carried_served(self, body: Mapping[str, Any]) -> dict[str, Any] | None:
        """After a restart, the last reported version until the service is asked again
        (within one resync): no status flapping. Never when nobody will ask (the value
        could not be corrected)."""
        return None if self.served_model is None else _previous_served(body)

    async def _ask_served(
        self,
        detector: specs.AnomalyDetector,
        names: naming.Names,
        children: observing.Children,
        memory: _Memory,
    ) -> None:
        if self.served_model is None or memory.served_asked:
            return
        deployment = children.get(("Deployment", names.detector))
        if conditions.detector_ready(detector, deployment)["status"] != "True":
            return  # a rollout in progress: ask once it is done
        memory.served_asked = True
        token = None
        if detector.spec.server.scoring_auth == "token":
            found = await self.applier.get(
                "v1", "Secret", names.api_token_secret, detector.namespace
            )
            token = _first_token((found or {}).get("data") or {})
        answer = await self.served_model(names.endpoint, detector.model_name, token)
        if answer is not None:
            memory.served = answer

    async def _apply(
        self,
        body: Mapping[str, Any],
        detector: specs.AnomalyDetector,
        names: naming.Names,
        observed: observing.Observed,
        memory: _Memory,
    ) -> set[tuple[str, str]]:
        """Apply what differs; returns the children whose spec this run (or an earlier apply
        the index has not caught up with) changed: their observed status is out of date.
        """
        # Generated Secrets: created when absent, never regenerated or updated (a new password
        # would lock running pods out of their data). The pod templates that read a Secret
        # carry its UID (``secret_versions``): one re-created by hand has a new UID and value,
        # and rolls exactly its readers.
        # The UIDs come from this run's observation, not from the memory a resync may clear
        # meanwhile, so the stamps never lose a Secret halfway through a run.
        uids = dict(observed.secret_uids)
        plan = desired_state.desired(detector, names, uids)
        for secret in plan.secrets:
            name = secret["metadata"]["name"]
            if name in uids:
                # Exists: never written (RBAC grants no patch on Secrets). If who owns it
                # disagrees with the lifetime policy (a key created by an older operator),
                # say so once, with the command that fixes it.
                want = applying.owned(secret)
                if observed.secrets_owned.get(name, want) != want and name not in memory.warned:
                    memory.warned.add(name)
                    await self.applier.event(
                        body,
                        type_="Warning",
                        reason=status.REASON_SECRET_OWNERSHIP,
                        message=_ownership_message(name, detector.namespace, want=want),
                    )
                continue
            uid = await self.applier.create_if_absent(applying.prepare(secret, body))
            if uid is None:  # created by someone else since our GET
                uid = await self.applier.uid("v1", "Secret", name, detector.namespace)
            if uid:
                memory.secrets[name] = uids[name] = uid
                memory.secrets_owned[name] = applying.owned(secret)
        if uids != observed.secret_uids:
            plan = desired_state.desired(detector, names, uids)

        wanted: set[tuple[str, str]] = set()
        pending: set[tuple[str, str]] = set()
        for obj in plan.objects:
            prepared = applying.prepare(obj, body)
            ident = (str(prepared["kind"]), str(prepared["metadata"]["name"]))
            wanted.add(ident)
            live = observed.get(*ident)
            digest = prepared["metadata"]["annotations"][naming.SPEC_HASH_ANNOTATION]
            if comparing.up_to_date(live, prepared):
                continue
            if _lagging(live, memory.applied.get(ident), digest):
                # Our own apply has not reached the index: the live body is older than it.
                if _moved(live, memory.applied[ident][2]):
                    pending.add(ident)
                continue
            if _stops_applying_replicas(live, prepared):
                # Autoscaling was switched on: keep today's count while the HPA takes over.
                replicas = as_int(((live or {}).get("spec") or {}).get("replicas"))
                await self.applier.hand_over_replicas(prepared, replicas)
            if ident[0] in monitoring.KINDS:
                result = await self._apply_optional(body, prepared, memory)
                if result is None:
                    continue
            else:
                result = await self.applier.apply(prepared)
            memory.applied[ident] = (digest, as_int(result.resource_version), result.generation)
            if _moved(live, result.generation):
                pending.add(ident)
            scaling = detector.spec.autoscaling
            if (
                live is None
                and ident == ("Deployment", names.detector)
                and scaling.enabled
                and scaling.min_replicas != 1
            ):
                # A new Deployment starts at 1 replica; start it at the HPA's floor instead
                # of waiting for the HPA's first sync (a floor of 1 needs no write).
                await self.applier.scale(prepared, scaling.min_replicas)

        # Children no longer wanted (e.g. autoscaling disabled, Redis mode changed).
        # Secrets are kept: losing generated passwords or the signing key is never wanted.
        # Only objects this resource controls (its owner reference) are deleted: labels alone
        # are anyone's to set, and an object someone labelled by hand is not ours to remove.
        for (kind, name), live in observed.children.items():
            if kind == "Secret" or (kind, name) in wanted or not controlled_by(live, detector.uid):
                continue
            await self.applier.delete((str(live.get("apiVersion")), kind), name, detector.namespace)
            memory.applied.pop((kind, name), None)
        await self._prune_monitoring(detector, names, wanted, memory)
        return pending

    async def _prune_monitoring(
        self,
        detector: specs.AnomalyDetector,
        names: naming.Names,
        wanted: set[tuple[str, str]],
        memory: _Memory,
    ) -> None:
        """Delete the Prometheus Operator objects ``spec.monitoring`` no longer asks for.

        They are not watched (their CRDs may be absent, and watching would need list/watch
        on them), so the pruning above never sees them. Instead each one not wanted is
        looked up by name when the wanted set changes, and once per resource per process
        (it may have been created before a restart), and deleted only when this resource
        controls it: a hand-made object of the same name stays. At steady state: no request.
        """
        kinds = frozenset(kind for kind, _ in wanted if kind in monitoring.KINDS)
        if memory.monitoring_checked == kinds:
            return
        now = time.monotonic()
        for kind in sorted(monitoring.KINDS - kinds):
            ours = (kind, names.detector) in memory.applied
            if not ours and self._unserved_until.get(kind, 0.0) > now:
                continue  # the API server did not serve the kind a moment ago: none exists
            try:
                live, served = await self.applier.find(
                    monitoring.API_VERSION, kind, names.detector, detector.namespace
                )
                if not served:  # spare every other resource the same GET for a while
                    self._unserved_until[kind] = now + UNSERVED_MEMORY_SECONDS
                if live is not None and controlled_by(live, detector.uid):
                    await self.applier.delete(
                        (monitoring.API_VERSION, kind), names.detector, detector.namespace
                    )
                    memory.applied.pop((kind, names.detector), None)
            except ApiError as exc:  # e.g. no RBAC for the kind: nothing of ours can exist
                logger.warning("%s/%s %s: %s", detector.namespace, names.detector, kind, exc)
        memory.monitoring_checked = kinds

    async def _apply_optional(
        self, body: Mapping[str, Any], prepared: Mapping[str, Any], memory: _Memory
    ) -> applying.Applied | None:
        """Apply a Prometheus Operator object; ``None`` when the API server does not serve
        its kind (CRDs not installed): one Warning Event, nothing else fails. How the operator
        knows: the apply answers 404 for an unserved kind (no discovery, no extra RBAC)."""
        kind = str(prepared["kind"])
        if kind in memory.unserved:
            return None  # until the next resync
        try:
            return await self.applier.apply(prepared)
        except (ApiError, httpx2.HTTPStatusError) as exc:
            # An unknown API group answers a plain-text 404 (not an ApiError).
            code = exc.status.code if isinstance(exc, ApiError) else exc.response.status_code
            if code != 404:
                raise
            memory.unserved.add(kind)
            if kind not in memory.unserved_announced:
                memory.unserved_announced.add(kind)
                await self.applier.event(
                    body,
                    type_="Warning",
                    reason=events.MONITORING_UNAVAILABLE,
                    message=f"{kind} (monitoring.coreos.com/v1) is not served by the API server: "
                    "install the Prometheus Operator CRDs; retried at the next resync",
                )
            return None

    def reset(self) -> None:
        """Forget what this process wrote (leadership changed hands: another replica may
        have written since, so nothing remembered can be trusted)."""
        self._memory.clear()

    def forget_secrets(self, key: observing.Key) -> None:
        """The resync is due: the next reconcile checks the generated Secrets still exist."""
        memory = self._memory.get(key)
        if memory is not None:
            memory.secrets.clear()
            memory.secrets_owned.clear()
            memory.served_asked = False
            memory.unserved.clear()

    def forget_child(self, key: observing.Key, kind: str, name: str) -> None:
        """A child was deleted: the next reconcile must not trust its applied memory."""
        memory = self._memory.get(key)
        if memory is not None:
            memory.applied.pop((kind, name), None)

    async def _write_status(
        self, body: Mapping[str, Any], memory: _Memory, new: dict[str, Any]
    ) -> None:
        current = body.get("status") or {}
        if _same_status(current, new):
            return
        version = as_int((body.get("metadata") or {}).get("resourceVersion"))
        if (
            memory.status is not None
            and _same_status(memory.status, new)
            and version < memory.status_rv
        ):
            return  # written by this process; the watch has not delivered it yet
        memory.status_rv = as_int(await self.applier.write_status(body, new))
        memory.status = new

    async def _announce(
        self, body: Mapping[str, Any], memory: _Memory, reason: str, message: str
    ) -> None:
        """One Warning Event per new Degraded reason (not one per reconcile)."""
        if memory.degraded_reason == reason:
            return
        memory.degraded_reason = reason
        for cond in (body.get("status") or {}).get("conditions") or []:
            if (cond.get("type"), cond.get("status"), cond.get("reason")) == (
                status.DEGRADED,
                "True",
                reason,
            ):
                return  # announced before this process started
        await self.applier.event(body, type_="Warning", reason=reason, message=message)


def _first_token(data: Mapping[str, Any]) -> str | None:
    """The first token line of the API token Secret's ``token`` key (base64 in ``data``)."""
    raw = data.get(api_token.KEY)
    if not isinstance(raw, str):
        return None
    try:
        text = base64.b64decode(raw).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    lines = [line.strip() for line in text.splitlines()]
    return next((line for line in lines if line and not line.startswith("#")), None)


def _previous_served(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """The served-model fields already in the status (kept across operator restarts)."""
    model = (body.get("status") or {}).get("model") or {}
    keys = ("version", "servedAlgorithm", "threshold", "fittedAt")
    kept = {k: model[k] for k in keys if k in model}
    return kept or None


def _ownership_message(name: str, namespace: str, *, want: bool) -> str:
    if want:
        return (
            f"Secret {name} is not owned by this resource but its data is deleted with it "
            "(persistence.whenDeleted: Delete): it will outlive the data. Delete it with the "
            "resource, or set whenDeleted: Retain."
        )
    return (
        f"Secret {name} is owned by this resource but its data is retained: deleting the "
        "resource would delete the key and strand the stored models. Release it with: "
        f"kubectl -n {namespace} patch secret {name} --type=merge "
        '-p \'{"metadata":{"ownerReferences":null}}\''
    )


def controlled_by(live: Mapping[str, Any], owner_uid: str) -> bool:
    """Whether ``live`` carries a controller owner reference to the resource ``owner_uid``."""
    owners = (live.get("metadata") or {}).get("ownerReferences") or []
    return bool(owner_uid) and any(
        o.get("uid") == owner_uid and o.get("controller") is True for o in owners
    )


def _moved(live: Mapping[str, Any] | None, generation: int) -> bool:
    """Whether an apply that left the object at ``generation`` changed the spec ``live`` had
    (its controller has something to catch up with). A new object has no status to trust."""
    if live is None:
        return True
    return generation > as_int((live.get("metadata") or {}).get("generation"))


def _lagging(
    live: Mapping[str, Any] | None, applied: tuple[str, int, int] | None, digest: str
) -> bool:
    """Whether the index has not caught up with this process's own last apply of ``digest``.

    A hand deletion arrives as a DELETED event, which clears ``applied`` (``forget_child``);
    a hand edit has a newer resourceVersion than the apply. Either way it is not lagging.
    """
    if applied is None or applied[0] != digest:
        return False
    if live is None:
        return True
    return as_int((live.get("metadata") or {}).get("resourceVersion")) < applied[1]


def _stops_applying_replicas(live: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> bool:
    """A workload whose ``spec.replicas`` the operator applied and now leaves out."""
    return (
        desired.get("kind") in ("Deployment", "StatefulSet")
        and "replicas" not in (desired.get("spec") or {})
        and comparing.applies(live, naming.FIELD_MANAGER, ("spec", "replicas"))
        and as_int(((live or {}).get("spec") or {}).get("replicas")) > 0
    )


def _same_status(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return comparing.contains(old, new) and comparing.contains(new, old)


def _false_for(stored: Mapping[str, Any] | None, type_: str) -> float:
    """Seconds the stored condition ``type_`` has been False (0 if it is not, or unknown)."""
    for cond in (stored or {}).get("conditions") or []:
        if cond.get("type") != type_ or cond.get("status") != "False":
            continue
        try:
            since = datetime.datetime.strptime(
                str(cond.get("lastTransitionTime")), "%Y-%m-%dT%H:%M:%SZ"
            ).replace(tzinfo=datetime.UTC)
        except ValueError:
            return 0.0
        return (datetime.datetime.now(datetime.UTC) - since).total_seconds()
    return 0.0

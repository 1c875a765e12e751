"""The one reconcile: observe -> compute status -> apply what differs.

Create, update, resume, the periodic resync and events on children all end up in
``Reconciler.reconcile``; runs for one resource are coalesced (a trigger arriving while a
run is in progress causes exactly one more run, with the newest body).

A spec that passes the schema but cannot work (unknown algorithm parameter, missing
training ConfigMap, impossible connection budget) sets Degraded, posts one Event and
leaves the existing workload untouched: nothing is applied until it is fixed.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import secrets as random_secrets
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import httpx2  # lightkube's HTTP client: its transport errors are not OSErrors
import pydantic
from lightkube.core.exceptions import ApiError

from pynomaly_operator import algorithms, naming, status
from pynomaly_operator.builders import children, secret_versions, signing_key
from pynomaly_operator.reconciling import applying, comparing, observing, storing
from pynomaly_operator.specs import detector as specs

logger = logging.getLogger(__name__)

BodyLookup = Callable[[observing.Key], Mapping[str, Any] | None]
ChildrenLookup = Callable[[observing.Key], Iterable[Mapping[str, Any]]]


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass
class _Memory:
    """What this process last wrote for one resource (indexes lag behind our own writes)."""

    uid: str = ""  # a deleted and re-created resource of the same name starts afresh
    status: dict[str, Any] | None = None
    status_rv: int = 0
    # Generated Secrets seen to exist since the last resync (which empties this): name -> UID.
    secrets: dict[str, str] = dataclasses.field(default_factory=dict)
    # (kind, name) -> (spec hash, resourceVersion) of this process's last apply
    applied: dict[tuple[str, str], tuple[str, int]] = dataclasses.field(default_factory=dict)
    degraded_reason: str | None = None


class Reconciler:
    """Reconciles AnomalyDetectors from indexed observations (one per operator process)."""

    def __init__(
        self, applier: applying.Applier, *, body_of: BodyLookup, children_of: ChildrenLookup
    ) -> None:
        self.applier = applier
        self.body_of = body_of
        self.children_of = children_of
        self._running: set[observing.Key] = set()
        self._dirty: set[observing.Key] = set()
        self._memory: dict[observing.Key, _Memory] = {}

    # --- triggering -------------------------------------------------------------------
    async def trigger(self, key: observing.Key) -> None:
        """Reconcile ``key`` now, or once more after the run in progress."""
        if key in self._running:
            self._dirty.add(key)
            return
        self._running.add(key)
        try:
            while True:
                self._dirty.discard(key)
                body = self.body_of(key)
                if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
                    self._memory.pop(key, None)  # deleted: children go by garbage collection
                    return
                await self._guarded(key, body)
                if key not in self._dirty:
                    return
        finally:
            self._running.discard(key)

    async def _guarded(self, key: observing.Key, body: Mapping[str, Any]) -> None:
        try:
            await self.reconcile(key, body)
        except ApiError as exc:
            logger.warning("reconcile %s/%s: API error %s", *key, exc)
        except (TimeoutError, OSError, httpx2.HTTPError) as exc:
            # The API server is away: the next trigger or the resync retries.
            logger.warning("reconcile %s/%s: %s", *key, exc)

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

        # observe
        observed = observing.Observed.from_bodies(self.children_of(key), owner_uid=detector.uid)
        problems = await self._problems(detector)

        # compute status (from what was observed, before this run's writes)
        new = status.compute(
            detector,
            deployment=observed.get("Deployment", names.detector),
            hpa=observed.get("HorizontalPodAutoscaler", names.detector),
            store_conditions=storing.conditions(detector, names, observed.as_lookup()),
            problems=problems,
            previous=body.get("status"),
            now=now(),
        )

        # apply what differs (nothing while the spec cannot work, or while paused)
        if not problems and not detector.spec.paused:
            try:
                await self._apply_children(body, detector, names, observed, memory)
            except ApiError as exc:
                message = f"{exc.status.reason or ''}: {exc.status.message or exc}"
                problems = [{"reason": status.REASON_APPLY_FAILED, "message": message[:900]}]
                new = status.compute(
                    detector,
                    deployment=observed.get("Deployment", names.detector),
                    hpa=observed.get("HorizontalPodAutoscaler", names.detector),
                    store_conditions=storing.conditions(detector, names, observed.as_lookup()),
                    problems=problems,
                    previous=body.get("status"),
                    now=now(),
                )
        await self._write_status(body, memory, new)
        if problems:
            await self._announce(body, memory, problems[0]["reason"], problems[0]["message"])
        else:
            memory.degraded_reason = None

    async def _problems(self, detector: specs.AnomalyDetector) -> list[status.Problem]:
        problems: list[status.Problem] = []
        model = detector.spec.model
        unknown = algorithms.unknown_parameters(model.algorithm, model.parameters)
        if unknown:
            known = ", ".join(sorted(algorithms.PARAMETERS[model.algorithm]))
            problems.append(
                {
                    "reason": status.REASON_INVALID_PARAMETERS,
                    "message": f"spec.model.parameters: {model.algorithm} does not accept "
                    f"{', '.join(unknown)} (accepted: {known})",
                }
            )
        ref = model.training.config_map_ref
        if ref is not None:
            found = await self.applier.get("v1", "ConfigMap", ref.name, detector.namespace)
            if found is None:
                problems.append(
                    {
                        "reason": status.REASON_TRAINING_MISSING,
                        "message": f"spec.model.training.configMapRef: ConfigMap {ref.name} "
                        "not found",
                    }
                )
            elif ref.key not in (found.get("data") or {}) and ref.key not in (
                found.get("binaryData") or {}
            ):
                problems.append(
                    {
                        "reason": status.REASON_TRAINING_MISSING,
                        "message": f"spec.model.training.configMapRef: ConfigMap {ref.name} "
                        f"has no key {ref.key}",
                    }
                )
        problems.extend(
            {"reason": status.REASON_BUDGET, "message": text}
            for text in storing.budget_problems(detector)
        )
        return problems

    async def _apply_children(
        self,
        body: Mapping[str, Any],
        detector: specs.AnomalyDetector,
        names: naming.Names,
        observed: observing.Observed,
        memory: _Memory,
    ) -> None:
        # Generated Secrets: created when absent, never regenerated or updated (a new password
        # would lock running pods out of their data). Secrets are not watched (see
        # observing.CHILD_KINDS), so a deletion by hand is only noticed by looking: one GET per
        # Secret the first time and after every resync (``forget_secrets``), never a write
        # while it exists. Event-driven reconciles in between trust the remembered UIDs.
        # The pod templates that read a Secret carry its UID (``secret_versions``): one
        # re-created by hand has a new UID and value, and rolls exactly its readers.
        generated = [
            signing_key.secret(names, key=random_secrets.token_urlsafe(48)),
            *storing.secrets(detector, names),
        ]
        for secret in generated:
            name = secret["metadata"]["name"]
            if name in memory.secrets:
                continue
            uid = await self.applier.uid("v1", "Secret", name, detector.namespace)
            if uid is None:
                uid = await self.applier.create_if_absent(applying.prepare(secret, body))
            if uid is None:  # created by someone else since our GET
                uid = await self.applier.uid("v1", "Secret", name, detector.namespace)
            if uid:
                memory.secrets[name] = uid

        desired = [
            *children.before_stores(detector, names),
            *storing.objects(detector, names),
            *children.after_stores(detector, names, store_env=storing.service_env(detector, names)),
        ]
        wanted: set[tuple[str, str]] = set()
        for obj in desired:
            prepared = applying.prepare(secret_versions.stamp(obj, memory.secrets), body)
            ident = (str(prepared["kind"]), str(prepared["metadata"]["name"]))
            wanted.add(ident)
            live = observed.get(*ident)
            digest = prepared["metadata"]["annotations"][naming.SPEC_HASH_ANNOTATION]
            if comparing.up_to_date(live, prepared):
                continue
            if _lagging(live, memory.applied.get(ident), digest):
                continue
            if _stops_applying_replicas(live, prepared):
                # Autoscaling was switched on: keep today's count while the HPA takes over.
                replicas = _int(((live or {}).get("spec") or {}).get("replicas"))
                await self.applier.hand_over_replicas(prepared, replicas)
            version = await self.applier.apply(prepared)
            memory.applied[ident] = (digest, _int(version))
            scaling = detector.spec.autoscaling
            if live is None and ident == ("Deployment", names.detector) and scaling.enabled:
                # A new Deployment starts at 1 replica; start it at the HPA's floor instead
                # of waiting for the HPA's first sync.
                await self.applier.scale(prepared, scaling.min_replicas)

        # Children no longer wanted (e.g. autoscaling disabled, Redis mode changed).
        # Secrets are kept: losing generated passwords or the signing key is never wanted.
        for (kind, name), live in observed.children.items():
            if kind == "Secret" or (kind, name) in wanted:
                continue
            await self.applier.delete((str(live.get("apiVersion")), kind), name, detector.namespace)
            memory.applied.pop((kind, name), None)

    def forget_secrets(self, key: observing.Key) -> None:
        """The resync is due: the next reconcile checks the generated Secrets still exist."""
        memory = self._memory.get(key)
        if memory is not None:
            memory.secrets.clear()

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
        version = _int((body.get("metadata") or {}).get("resourceVersion"))
        if (
            memory.status is not None
            and _same_status(memory.status, new)
            and version < memory.status_rv
        ):
            return  # written by this process; the watch has not delivered it yet
        memory.status_rv = _int(await self.applier.write_status(body, new))
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


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _lagging(live: Mapping[str, Any] | None, applied: tuple[str, int] | None, digest: str) -> bool:
    """Whether the index has not caught up with this process's own last apply of ``digest``.

    A hand deletion arrives as a DELETED event, which clears ``applied`` (``forget_child``);
    a hand edit has a newer resourceVersion than the apply. Either way it is not lagging.
    """
    if applied is None or applied[0] != digest:
        return False
    if live is None:
        return True
    return _int((live.get("metadata") or {}).get("resourceVersion")) < applied[1]


def _stops_applying_replicas(live: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> bool:
    """A workload whose ``spec.replicas`` the operator applied and now leaves out."""
    return (
        desired.get("kind") in ("Deployment", "StatefulSet")
        and "replicas" not in (desired.get("spec") or {})
        and comparing.applies(live, naming.FIELD_MANAGER, ("spec", "replicas"))
        and _int(((live or {}).get("spec") or {}).get("replicas")) > 0
    )


def _same_status(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return comparing.contains(old, new) and comparing.contains(new, old)

"""Writes to the API server: server-side apply of children and status, creates, deletes, Events.

Everything the operator changes goes through here, with field manager
``pynomaly-operator`` and ``force=True`` (the operator is the only rightful owner of the
fields it sets). Owner references, the namespace and the spec-hash annotation are added in
``prepare()``, not by builders. ``Writes`` counts requests so tests and the benchmark can
check that a steady state costs zero writes. With leader election, every write first asks
``may_write`` (``leading.Elector.may_write``): a replica that is not the leader raises
``leading.NotLeadingError`` instead of writing, so two replicas never write at once.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import logging
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import httpx2  # lightkube's HTTP client
import lightkube
from lightkube import codecs
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Pod
from lightkube.types import PatchType

from pynomaly_operator import naming
from pynomaly_operator.reconciling import comparing, leading

logger = logging.getLogger(__name__)

AnomalyDetectorResource = create_namespaced_resource(
    naming.GROUP, naming.VERSION, naming.KIND, naming.PLURAL
)
# Prometheus Operator kinds (spec.monitoring), known to lightkube so they can be applied;
# whether the API server serves them is found out by applying (a 404 when it does not).
for _kind, _plural in (
    ("ServiceMonitor", "servicemonitors"),
    ("PodMonitor", "podmonitors"),
    ("PrometheusRule", "prometheusrules"),
):
    create_namespaced_resource("monitoring.coreos.com", "v1", _kind, _plural)


class Applied(NamedTuple):
    """What the API server answered to an apply: the object's new resourceVersion and
    generation (a generation that moved means its controller has a spec to catch up with)."""

    resource_version: str
    generation: int


@dataclasses.dataclass
class Writes:
    """Counters of API requests made by the reconcile (reads are served from indexes)."""

    applies: int = 0
    creates: int = 0
    deletes: int = 0
    status: int = 0
    events: int = 0
    reads: int = 0


def owner_reference(owner: Mapping[str, Any]) -> dict[str, Any]:
    metadata = owner["metadata"]
    return {
        "apiVersion": naming.API_VERSION,
        "kind": naming.KIND,
        "name": metadata["name"],
        "uid": metadata["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def owned(desired: Mapping[str, Any]) -> bool:
    """Whether the object is owned by the resource (garbage-collected with it): all but those
    marked to outlive it (``naming.RETAIN_ANNOTATION``)."""
    annotations = (desired.get("metadata") or {}).get("annotations") or {}
    return annotations.get(naming.RETAIN_ANNOTATION) != "true"


def prepare(desired: Mapping[str, Any], owner: Mapping[str, Any]) -> dict[str, Any]:
    """``desired`` with namespace, owner reference and spec-hash annotation (a new dict)."""
    out = copy.deepcopy(dict(desired))
    metadata = out.setdefault("metadata", {})
    metadata["namespace"] = owner["metadata"]["namespace"]
    if owned(desired):
        metadata["ownerReferences"] = [owner_reference(owner)]
    else:
        metadata.pop("ownerReferences", None)
    annotations = dict(metadata.get("annotations") or {})
    annotations.pop(naming.SPEC_HASH_ANNOTATION, None)
    metadata["annotations"] = annotations
    annotations[naming.SPEC_HASH_ANNOTATION] = comparing.spec_hash(out)
    return out


def _resource(obj: Mapping[str, Any]) -> Any:
    return codecs.resource_registry.load(obj["apiVersion"], obj["kind"])


def _rv(obj: Any) -> str:
    metadata = getattr(obj, "metadata", None)
    return str(getattr(metadata, "resourceVersion", "") or "")


class Applier:
    """The operator's API writes (one per operator process)."""

    def __init__(
        self, client: lightkube.AsyncClient, *, may_write: Callable[[], bool] | None = None
    ) -> None:
        # Any: lightkube's overloads want concrete resource classes; ours are looked up
        # at run time from apiVersion/kind.
        self.client: Any = client
        self.writes = Writes()
        # Whether this replica may write now (the Lease's holder); None: always (one replica).
        self.may_write: Callable[[], bool] = may_write or (lambda: True)

    def _guard(self) -> None:
        if not self.may_write():
            raise leading.NotLeadingError("this replica does not hold the leader Lease")

    async def apply(self, obj: Mapping[str, Any]) -> Applied:
        """Server-side apply; returns the new resourceVersion and generation."""
        metadata = obj["metadata"]
        self._guard()
        self.writes.applies += 1
        result = await self.client.patch(
            _resource(obj),
            metadata["name"],
            dict(obj),
            namespace=metadata["namespace"],
            patch_type=PatchType.APPLY,
            field_manager=naming.FIELD_MANAGER,
            force=True,
        )
        logger.info("applied %s/%s", obj["kind"], metadata["name"])
        generation = getattr(getattr(result, "metadata", None), "generation", 0)
        return Applied(_rv(result), int(generation or 0))

    async def scale(self, obj: Mapping[str, Any], replicas: int) -> None:
        """Set a new Deployment's replicas through its scale subresource.

        An Update (not an Apply) of ``spec.replicas``: the field never joins the operator's
        applied configuration, so later applies that omit it (the HPA owns it) do not reset it.
        """
        metadata = obj["metadata"]
        self._guard()
        self.writes.applies += 1
        await self.client.patch(
            Deployment.Scale,
            metadata["name"],
            {"spec": {"replicas": replicas}},
            namespace=metadata["namespace"],
            patch_type=PatchType.MERGE,
            field_manager=naming.FIELD_MANAGER,
        )

    async def hand_over_replicas(self, obj: Mapping[str, Any], replicas: int) -> None:
        """Apply only ``spec.replicas: replicas`` (the live value) as ``HANDOVER_FIELD_MANAGER``.

        Kubernetes' documented way to pass a field to a controller: while a second manager
        also owns the field with the same value, the operator's next apply without it only
        drops the operator's ownership, and the value stays until the HPA changes it (which
        takes the field over). Without it, server-side apply would remove the field and the
        Deployment would fall back to 1 replica until the HPA's next sync. Not forced: a
        conflict means another manager (the HPA) already set a different value, so there is
        nothing left to hand over.
        """
        metadata = obj["metadata"]
        self._guard()
        self.writes.applies += 1
        try:
            await self.client.patch(
                _resource(obj),
                metadata["name"],
                {
                    "apiVersion": obj["apiVersion"],
                    "kind": obj["kind"],
                    "metadata": {"name": metadata["name"], "namespace": metadata["namespace"]},
                    "spec": {"replicas": replicas},
                },
                namespace=metadata["namespace"],
                patch_type=PatchType.APPLY,
                field_manager=naming.HANDOVER_FIELD_MANAGER,
                force=False,
            )
        except ApiError as exc:
            if exc.status.code != 409:
                raise
            logger.info("%s/%s: replicas already taken over", obj["kind"], metadata["name"])
            return
        logger.info("handed over %s/%s replicas=%d", obj["kind"], metadata["name"], replicas)

    async def create_if_absent(self, obj: Mapping[str, Any]) -> str | None:
        """Create ``obj`` unless it exists (never overwrites): the new object's UID, or
        ``None`` when it already existed."""
        self._guard()
        self.writes.creates += 1
        try:
            created = await self.client.create(
                codecs.from_dict(dict(obj)), namespace=obj["metadata"]["namespace"]
            )
        except ApiError as exc:
            if exc.status.code == 409:
                return None
            raise
        logger.info("created %s/%s", obj["kind"], obj["metadata"]["name"])
        return str(getattr(getattr(created, "metadata", None), "uid", "") or "")

    async def delete(self, kind_api: tuple[str, str], name: str, namespace: str) -> None:
        api_version, kind = kind_api
        self._guard()
        self.writes.deletes += 1
        try:
            await self.client.delete(
                codecs.resource_registry.load(api_version, kind), name, namespace=namespace
            )
        except ApiError as exc:
            if exc.status.code != 404:
                raise
        logger.info("deleted %s/%s", kind, name)

    async def _fetch(self, api_version: str, kind: str, name: str, namespace: str) -> Any:
        """One GET: the lightkube object, or ``None`` when it does not exist."""
        self.writes.reads += 1
        try:
            return await self.client.get(
                codecs.resource_registry.load(api_version, kind), name, namespace=namespace
            )
        except ApiError as exc:
            if exc.status.code == 404:
                return None
            raise

    async def find(
        self, api_version: str, kind: str, name: str, namespace: str
    ) -> tuple[dict[str, Any] | None, bool]:
        """(the object or ``None``, whether the API server serves its kind at all). A 404
        for a missing object names it in its details; one for an unserved kind does not."""
        self.writes.reads += 1
        try:
            found = await self.client.get(
                codecs.resource_registry.load(api_version, kind), name, namespace=namespace
            )
        except ApiError as exc:
            if exc.status.code != 404:
                raise
            details = exc.status.details
            return None, bool(details is not None and getattr(details, "name", None))
        except httpx2.HTTPStatusError as exc:
            # An API group the server does not know answers a plain-text "404 page not
            # found", which lightkube cannot parse into an ApiError.
            if exc.response.status_code != 404:
                raise
            return None, False
        result: dict[str, Any] = found.to_dict()
        return result, True

    async def identity(
        self, api_version: str, kind: str, name: str, namespace: str
    ) -> tuple[str, frozenset[str]] | None:
        """(UID, UIDs of its owners), ``None`` when it does not exist (the rest of the body,
        e.g. a Secret's values, is dropped)."""
        found = await self._fetch(api_version, kind, name, namespace)
        if found is None:
            return None
        metadata = getattr(found, "metadata", None)
        owners = getattr(metadata, "ownerReferences", None) or []
        return (
            str(getattr(metadata, "uid", "") or ""),
            frozenset(str(getattr(o, "uid", "")) for o in owners),
        )

    async def uid(self, api_version: str, kind: str, name: str, namespace: str) -> str | None:
        """The object's UID, ``None`` when it does not exist (the rest of the body, e.g. a
        Secret's values, is dropped)."""
        found = await self._fetch(api_version, kind, name, namespace)
        if found is None:
            return None
        return str(getattr(getattr(found, "metadata", None), "uid", "") or "")

    async def get(
        self, api_version: str, kind: str, name: str, namespace: str
    ) -> dict[str, Any] | None:
        found = await self._fetch(api_version, kind, name, namespace)
        if found is None:
            return None
        result: dict[str, Any] = found.to_dict()
        return result

    async def pods(self, namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        """The pods with ``labels`` in ``namespace`` (one LIST; read-only, for status hints)."""
        self.writes.reads += 1
        found: list[dict[str, Any]] = []
        async for pod in self.client.list(Pod, namespace=namespace, labels=dict(labels)):
            found.append(pod.to_dict())
        return found

    async def write_status(self, owner: Mapping[str, Any], status: Mapping[str, Any]) -> str:
        """Server-side apply of the whole status (fields no longer present are removed).

        Returns the resource's new resourceVersion.
        """
        metadata = owner["metadata"]
        self._guard()
        self.writes.status += 1
        result = await self.client.patch(
            AnomalyDetectorResource.Status,
            metadata["name"],
            {
                "apiVersion": naming.API_VERSION,
                "kind": naming.KIND,
                "metadata": {"name": metadata["name"], "namespace": metadata["namespace"]},
                "status": dict(status),
            },
            namespace=metadata["namespace"],
            patch_type=PatchType.APPLY,
            field_manager=naming.FIELD_MANAGER,
            force=True,
        )
        return _rv(result)

    async def event(
        self, owner: Mapping[str, Any], *, type_: str, reason: str, message: str
    ) -> None:
        """Post a core/v1 Event about the resource (best effort: never fails the reconcile)."""
        metadata = owner["metadata"]
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "generateName": f"{metadata['name']}.",
                "namespace": metadata["namespace"],
            },
            "involvedObject": {
                "apiVersion": naming.API_VERSION,
                "kind": naming.KIND,
                "name": metadata["name"],
                "namespace": metadata["namespace"],
                "uid": metadata.get("uid", ""),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1000],
            "source": {"component": naming.MANAGED_BY},
            "reportingComponent": naming.MANAGED_BY,
            "reportingInstance": naming.MANAGED_BY,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        self._guard()
        self.writes.events += 1
        try:
            await self.client.create(codecs.from_dict(event))
        except ApiError as exc:  # an Event is advice; losing one must not break reconciling
            logger.warning("could not post event %s: %s", reason, exc)

"""What the operator knows about a resource's children, read from kopf's in-memory indexes.

Children are watched by label (``app.kubernetes.io/managed-by=pynomaly-operator``) and
indexed by ``(namespace, instance)``; observation therefore costs no API request. Bodies are
trimmed (no Secret values; of managedFields only the owners of ``spec.replicas``, which the
hand-over to the HPA needs) and kept as compact JSON text, decoded only when a reconcile
reads them: a JSON string is several times smaller than the same tree of Python dicts, and
with hundreds of resources the index is most of the operator's memory.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Iterable, Mapping
from typing import Any

from pynomaly_operator import naming

# kind -> (group, version, plural) of every child kind the operator watches. Not Secrets:
# RBAC cannot scope list/watch by label, so watching them would mean reading every Secret
# in the cluster; the reconcile checks generated Secrets by name (GET) at each resync instead.
CHILD_KINDS: dict[str, tuple[str, str, str]] = {
    "Deployment": ("apps", "v1", "deployments"),
    "StatefulSet": ("apps", "v1", "statefulsets"),
    "Service": ("", "v1", "services"),
    "ConfigMap": ("", "v1", "configmaps"),
    "ServiceAccount": ("", "v1", "serviceaccounts"),
    "PodDisruptionBudget": ("policy", "v1", "poddisruptionbudgets"),
    "HorizontalPodAutoscaler": ("autoscaling", "v2", "horizontalpodautoscalers"),
    "NetworkPolicy": ("networking.k8s.io", "v1", "networkpolicies"),
    "Job": ("batch", "v1", "jobs"),
}

Key = tuple[str, str]  # (namespace, instance)
Children = Mapping[tuple[str, str], Mapping[str, Any]]  # (kind, name) -> trimmed live body


def trim(body: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``body`` without what the operator never reads."""
    out = copy.deepcopy(dict(body))
    metadata = out.get("metadata") or {}
    owners = _replicas_owners(metadata.pop("managedFields", None) or [])
    if owners:
        metadata["managedFields"] = owners
    if out.get("kind") == "Secret":
        out["data"] = dict.fromkeys(out.get("data") or {}, "")
        out.pop("stringData", None)
    return out


def _replicas_owners(entries: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The managedFields entries that own ``spec.replicas``, reduced to just that field."""
    return [
        {
            "manager": entry.get("manager"),
            "operation": entry.get("operation"),
            "fieldsV1": {"f:spec": {"f:replicas": {}}},
        }
        for entry in entries
        if "f:replicas" in (((entry.get("fieldsV1") or {}).get("f:spec")) or {})
    ]


def pack(body: Mapping[str, Any]) -> str:
    """The trimmed body as compact JSON text (what the indexes hold)."""
    return json.dumps(trim(body), separators=(",", ":"))


def unpack(text: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(text)
    return body


def child_key(body: Mapping[str, Any]) -> Key | None:
    """``(namespace, instance)`` of a child, or None if it is not one of ours."""
    metadata = body.get("metadata") or {}
    labels = metadata.get("labels") or {}
    instance = labels.get(naming.LABEL_INSTANCE)
    if labels.get(naming.LABEL_MANAGED_BY) != naming.MANAGED_BY or not instance:
        return None
    return (str(metadata.get("namespace") or ""), str(instance))


def children(bodies: Iterable[Mapping[str, Any]], *, owner_uid: str) -> Children:
    """Live children of one resource by ``(kind, name)``: only those this very resource owns
    (a same-named predecessor's leftovers awaiting garbage collection are not ours), and not
    those being deleted."""
    found: dict[tuple[str, str], Mapping[str, Any]] = {}
    for body in bodies:
        metadata = body.get("metadata") or {}
        owners = metadata.get("ownerReferences") or []
        if owner_uid and owners and not any(o.get("uid") == owner_uid for o in owners):
            continue
        if metadata.get("deletionTimestamp"):
            continue
        found[(str(body.get("kind")), str(metadata.get("name")))] = body
    return found


@dataclasses.dataclass(frozen=True)
class Observed:
    """Everything one reconcile knows about the cluster, gathered before it decides anything.

    ``children``: live children by ``(kind, name)`` (from the indexes);
    ``secret_uids``: generated Secret name -> UID, for those that exist;
    ``secrets_owned``: generated Secret name -> whether this resource owns it;
    ``training``: the training ConfigMap (None when absent or not configured);
    ``served``: the model version the service last reported serving (``serving``).
    """

    children: Children
    secret_uids: Mapping[str, str] = dataclasses.field(default_factory=dict)
    secrets_owned: Mapping[str, bool] = dataclasses.field(default_factory=dict)
    training: Mapping[str, Any] | None = None
    served: Mapping[str, Any] | None = None

    def get(self, kind: str, name: str) -> Mapping[str, Any] | None:
        return self.children.get((kind, name))

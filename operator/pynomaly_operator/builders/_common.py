"""Small manifest fragments shared by the store builders (env, probes, volumes, hashes,
resources, restricted pod specs, NetworkPolicies).

Kept private to the builders package: each store builder module stays a readable list
of Kind-named functions, and these helpers keep them from repeating raw JSON shapes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from pynomaly_operator.builders import security
from pynomaly_operator.specs.redis import ComputeResources, Persistence


def env(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([a-zA-Z]*)$")
_SUFFIX = {
    "m": Decimal("0.001"),
    "": Decimal(1),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}


def quantity(text: str) -> Decimal | None:
    """A Kubernetes quantity as a number (None if not in the usual suffix notation)."""
    match = _QUANTITY.match(text.strip())
    if match is None or match.group(2) not in _SUFFIX:
        return None
    return Decimal(match.group(1)) * _SUFFIX[match.group(2)]


def resources(spec: ComputeResources, defaults: ComputeResources) -> dict[str, Any]:
    """Requests and limits: the spec's values, missing keys from the component's defaults.

    Every container thus always has CPU and memory requests and limits. A default that
    would contradict what the user set is adjusted to it: a default limit below the user's
    request is raised to the request, a default request above the user's limit is lowered
    to the limit (so raising only ``requests.memory`` never yields an invalid pod).
    """
    requests = {**defaults.requests, **spec.requests}
    limits = {**defaults.limits, **spec.limits}
    for key in requests.keys() & limits.keys():
        request, limit = quantity(requests[key]), quantity(limits[key])
        if request is None or limit is None or request <= limit:
            continue
        if key in spec.limits and key not in spec.requests:
            requests[key] = limits[key]
        elif key in spec.requests and key not in spec.limits:
            limits[key] = requests[key]
        # both set by the user: left as written (the API server names the problem)
    return {"requests": requests, "limits": limits}


def exec_probe(command: str, *, period: int = 10, failures: int = 3) -> dict[str, Any]:
    return {
        "exec": {"command": ["sh", "-c", command]},
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


def data_hash(data: dict[str, str]) -> str:
    """Hash of ConfigMap data: a pod-template annotation, so config changes roll pods."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def volume_claim_templates(
    persistence: Persistence, labels: dict[str, str]
) -> list[dict[str, Any]]:
    if not persistence.enabled:
        return []
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": persistence.size}},
    }
    if persistence.storage_class_name is not None:
        spec["storageClassName"] = persistence.storage_class_name
    return [{"metadata": {"name": "data", "labels": labels}, "spec": spec}]


def retention_policy(persistence: Persistence) -> dict[str, str]:
    return {"whenDeleted": persistence.when_deleted, "whenScaled": persistence.when_scaled}


def data_volumes(persistence: Persistence) -> list[dict[str, Any]]:
    """The ``data`` volume when it is not a claim template (persistence disabled)."""
    return [] if persistence.enabled else [{"name": "data", "emptyDir": {}}]


def headless_service(
    *, name: str, labels: dict[str, str], selector: dict[str, str], ports: list[dict[str, Any]]
) -> dict[str, Any]:
    """Headless Service giving StatefulSet pods stable DNS names, ready or not (peers need
    to find each other before readiness)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": selector,
            "ports": ports,
        },
    }


def pdb(
    *, name: str, labels: dict[str, str], selector: dict[str, str], budget: dict[str, int]
) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "labels": labels},
        "spec": {**budget, "selector": {"matchLabels": selector}},
    }


# --- restricted pods -------------------------------------------------------------------


def scratch_volumes(**paths: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, mounts): a small emptyDir per writable path of a read-only root filesystem,
    ``volume_name=path``."""
    volumes = [{"name": name, "emptyDir": {"sizeLimit": "64Mi"}} for name in paths]
    mounts = [{"name": name, "mountPath": path} for name, path in paths.items()]
    return volumes, mounts


def restricted_container(container: dict[str, Any]) -> dict[str, Any]:
    """``container`` with the restricted profile's securityContext."""
    return {**container, "securityContext": security.container_security_context()}


def restricted_pod_spec(
    *, containers: Sequence[dict[str, Any]], claims: bool = False, **extra: Any
) -> dict[str, Any]:
    """Pod spec admitted by ``pod-security.kubernetes.io/enforce=restricted``.

    No service account token (store pods never call the API), no service-link env (it would
    collide with the images' own variables), uid/gid/fsGroup ``security.UID``; ``claims``:
    the pod mounts a PersistentVolumeClaim. ``extra`` keys are added as they are.
    """
    return {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": security.pod_security_context(claims=claims),
        **extra,
        "containers": [restricted_container(c) for c in containers],
    }


# --- NetworkPolicies ----------------------------------------------------------------------


def tcp(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": port} for port in ports]


def pods(*selectors: dict[str, str]) -> list[dict[str, Any]]:
    """NetworkPolicy peers: pods of this namespace matching any of ``selectors``."""
    return [{"podSelector": {"matchLabels": dict(s)}} for s in selectors]


def network_policy(
    *,
    name: str,
    labels: dict[str, str],
    selector: dict[str, str],
    ingress: list[dict[str, Any]],
    egress: list[dict[str, Any]],
) -> dict[str, Any]:
    """networking.k8s.io/v1 NetworkPolicy: both directions denied except the given rules
    (DNS egress is always added first)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "podSelector": {"matchLabels": selector},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": [
                {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
                *egress,
            ],
        },
    }

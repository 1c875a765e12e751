"""What every pod the operator builds shares: uid and security contexts, ports, probes, env
entries, volumes, resources, and the NetworkPolicy and Service shapes.

One place for each, so the detector, Redis, Postgres and PgBouncer builders cannot drift
apart. Every pod must be admitted by a namespace labelled
``pod-security.kubernetes.io/enforce=restricted`` and pass checkov: non-root with an
explicit uid >= 10000 (CKV_K8S_40), seccomp RuntimeDefault, no capabilities, no privilege
escalation, a read-only root filesystem (writable paths are emptyDirs the builders mount).
Every function returns fresh dicts, so callers may extend them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pynomaly_operator.specs import base
from pynomaly_operator.specs.redis import ComputeResources, Persistence

# One uid/gid/fsGroup for every pod: no image user is assumed (the official redis and
# postgres images run as any uid when their data directory is owned by the fsGroup).
UID = 10001

# Ports (the detector's are the service's contract: HTTP 8000, metrics 9090).
HTTP_PORT = 8000
METRICS_PORT = 9090
REDIS_PORT = 6379
SENTINEL_PORT = 26379
POSTGRES_PORT = 5432
PGBOUNCER_PORT = 6432
DNS_PORT = 53

# Every pod may resolve names (the first egress rule of every NetworkPolicy).
DNS_EGRESS: dict[str, Any] = {
    "ports": [{"protocol": "UDP", "port": DNS_PORT}, {"protocol": "TCP", "port": DNS_PORT}]
}


# --- security contexts (the restricted profile) -------------------------------------------


def pod_security_context(*, uid: int = UID, claims: bool = False) -> dict[str, Any]:
    """Pod-level context; ``claims``: the pod mounts a PersistentVolumeClaim, so have the
    kubelet change ownership only when the volume root does not match (fast restarts, and
    no recursive chmod over a Postgres data directory)."""
    out: dict[str, Any] = {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if claims:
        out["fsGroupChangePolicy"] = "OnRootMismatch"
    return out


def container_security_context() -> dict[str, Any]:
    """Container-level context (the same for every container)."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


# --- probes -------------------------------------------------------------------------------


def http_probe(
    path: str, *, port: str, period: int, failures: int, timeout: int = 3
) -> dict[str, Any]:
    """An HTTP GET probe on a named container port."""
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def exec_probe(command: str, *, period: int = 10, failures: int = 3) -> dict[str, Any]:
    return {
        "exec": {"command": ["sh", "-c", command]},
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


# --- env ----------------------------------------------------------------------------------


def env(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


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
        request, limit = base.quantity(requests[key]), base.quantity(limits[key])
        if request is None or limit is None or request <= limit:
            continue
        if key in spec.limits and key not in spec.requests:
            requests[key] = limits[key]
        elif key in spec.requests and key not in spec.limits:
            limits[key] = requests[key]
        # both set by the user: left as written (the API server names the problem)
    return {"requests": requests, "limits": limits}


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


def service(
    *, name: str, labels: dict[str, str], selector: dict[str, str], ports: list[dict[str, Any]]
) -> dict[str, Any]:
    """ClusterIP Service: one stable address in front of ready pods."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels},
        "spec": {"selector": selector, "ports": ports},
    }


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
    return {**container, "securityContext": container_security_context()}


def restricted_pod_spec(
    *, containers: Sequence[dict[str, Any]], claims: bool = False, **extra: Any
) -> dict[str, Any]:
    """Pod spec admitted by ``pod-security.kubernetes.io/enforce=restricted``.

    No service account token (store pods never call the API), no service-link env (it would
    collide with the images' own variables), uid/gid/fsGroup ``UID``; ``claims``:
    the pod mounts a PersistentVolumeClaim. ``extra`` keys are added as they are.
    """
    return {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(claims=claims),
        **extra,
        "containers": [restricted_container(c) for c in containers],
    }


# --- NetworkPolicies ----------------------------------------------------------------------


def tcp(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": port} for port in ports]


def peers(*selectors: dict[str, str]) -> list[dict[str, Any]]:
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
            "egress": [DNS_EGRESS, *egress],
        },
    }

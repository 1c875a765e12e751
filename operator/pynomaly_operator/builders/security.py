"""Security contexts of the Pod Security Standards' ``restricted`` profile, in one place.

Every pod the operator creates (detector, Redis, sentinels, Postgres, PgBouncer, the cluster
bootstrap Job) must be admitted by a namespace labelled
``pod-security.kubernetes.io/enforce=restricted`` and pass checkov: non-root with an
explicit uid >= 10000 (CKV_K8S_40), seccomp RuntimeDefault, no capabilities, no privilege
escalation, a read-only root filesystem (writable paths are emptyDirs the builders mount).
These two functions return fresh dicts, so callers may extend them.
"""

from __future__ import annotations

from typing import Any

# One uid/gid/fsGroup for every pod: no image user is assumed (the official redis and
# postgres images run as any uid when their data directory is owned by the fsGroup).
UID = 10001


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

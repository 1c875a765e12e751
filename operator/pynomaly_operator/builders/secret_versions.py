"""Pod templates stamped with the identity of the generated Secrets they read.

Pods read passwords and the signing key at start (``secretKeyRef`` env, secret volumes), so
a generated Secret that is deleted by hand and re-created with a new value would leave the
running pods on the old one. ``stamp`` puts a hash of the UIDs of the generated Secrets a
pod template references into a template annotation: a re-created Secret has a new UID, so
the template changes and exactly the workloads that read it roll (Postgres then adopts the
new passwords at start, see ``builders.postgres``). UIDs, not values: the operator never
needs to read a Secret's data, and a UID that does not change changes nothing (no writes at
steady state).

Only Deployments and StatefulSets are stamped: a Job's pod template is immutable.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

from pynomaly_operator import naming, values

STAMPED_KINDS = frozenset({"Deployment", "StatefulSet"})


def referenced(pod_spec: Mapping[str, Any]) -> set[str]:
    """Names of every Secret a pod spec reads (env, envFrom, secret and projected volumes)."""
    names: set[str] = set()
    for container in _containers(pod_spec):
        for env in container.get("env") or ():
            ref = (env.get("valueFrom") or {}).get("secretKeyRef") or {}
            if ref.get("name"):
                names.add(str(ref["name"]))
        for source in container.get("envFrom") or ():
            ref = source.get("secretRef") or {}
            if ref.get("name"):
                names.add(str(ref["name"]))
    for volume in pod_spec.get("volumes") or ():
        secret = volume.get("secret") or {}
        if secret.get("secretName"):
            names.add(str(secret["secretName"]))
        for source in (volume.get("projected") or {}).get("sources") or ():
            ref = source.get("secret") or {}
            if ref.get("name"):
                names.add(str(ref["name"]))
    return names


def stamp(obj: Mapping[str, Any], uids: Mapping[str, str]) -> Mapping[str, Any]:
    """``obj`` with its pod template annotated by the UIDs of the Secrets in ``uids``
    (name -> UID) that it reads: a new dict when stamped, ``obj`` itself (never modified)
    when it reads none or is not a stamped kind."""
    if obj.get("kind") not in STAMPED_KINDS:
        return obj
    template = (obj.get("spec") or {}).get("template")
    if not isinstance(template, Mapping):
        return obj
    used = sorted(name for name in referenced(template.get("spec") or {}) if name in uids)
    if not used:
        return obj
    text = "".join(f"{name}={uids[name]}\n" for name in used)
    out = copy.deepcopy(dict(obj))
    metadata = out["spec"]["template"].setdefault("metadata", {})
    annotations = metadata.setdefault("annotations", {})
    annotations[naming.SECRETS_HASH_ANNOTATION] = values.short_hash(text)
    return out


def _containers(pod_spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield from pod_spec.get("initContainers") or ()
    yield from pod_spec.get("containers") or ()

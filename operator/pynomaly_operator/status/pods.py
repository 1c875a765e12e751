"""Why a component's pods are not ready, in one line for its condition's message (pure).

A workload's counters say *that* pods are missing ("0/1 ready"); the pods say *why*: an image
that cannot be pulled, a container in a crash loop, no node that fits, pods the kubelet
rejected (``Evicted``: the node is under disk or memory pressure). The reconcile lists a
component's pods only when its condition has been False for a while
(``OperatorSettings.pod_hint_after_seconds``), so a healthy cluster costs no read, and
appends the hint to that condition's message.

The hint names reasons and the kubelet's or scheduler's message, never a pod name or a count:
pods come and go (a ReplicaSet re-creates rejected pods every few seconds) and the status
must not be rewritten for each one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pynomaly_operator import naming
from pynomaly_operator.status import reasons

MAX_HINT = 300

# The component labels (app.kubernetes.io/component) behind each component condition.
COMPONENTS: dict[str, tuple[str, ...]] = {
    reasons.DETECTOR_READY: (naming.COMPONENT_DETECTOR,),
    reasons.REDIS_READY: (naming.COMPONENT_REDIS, naming.COMPONENT_SENTINEL),
    reasons.DATABASE_READY: (naming.COMPONENT_POSTGRES,),
    reasons.POOLER_READY: (naming.COMPONENT_PGBOUNCER,),
}

# Container waiting reasons that mean "will not start by itself", most telling first.
_WAITING = (
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
    "CrashLoopBackOff",
)


def why_not_ready(pods: Iterable[Mapping[str, Any]]) -> str | None:
    """The most telling reason ``pods`` (one component's) are not ready, or None if none
    is visible (pods starting, or probes not passed yet without a restart)."""
    items = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    for found in (_waiting(items), _rejected(items), _unschedulable(items), _restarting(items)):
        if found:
            return _clip(found)
    return None


def _waiting(pods: list[Mapping[str, Any]]) -> str | None:
    best: tuple[int, str] | None = None
    for pod in pods:
        for container in _containers(pod):
            waiting = (container.get("state") or {}).get("waiting") or {}
            reason = str(waiting.get("reason") or "")
            if reason not in _WAITING:
                continue
            rank = _WAITING.index(reason)
            text = f"container {container.get('name')} {reason}"
            message = _first_line(waiting.get("message"))
            last = ((container.get("lastState") or {}).get("terminated")) or {}
            if reason == "CrashLoopBackOff" and last:
                message = f"last exit {last.get('exitCode')} ({last.get('reason') or 'Error'})"
            if message:
                text = f"{text}: {message}"
            if best is None or rank < best[0]:
                best = (rank, text)
    return None if best is None else best[1]


def _rejected(pods: list[Mapping[str, Any]]) -> str | None:
    for pod in pods:
        status = pod.get("status") or {}
        if status.get("phase") == "Failed":
            return _pods(status.get("reason") or "Failed", status.get("message"))
    return None


def _unschedulable(pods: list[Mapping[str, Any]]) -> str | None:
    for pod in pods:
        for cond in (pod.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                return _pods(cond.get("reason") or "Unschedulable", cond.get("message"))
    return None


def _restarting(pods: list[Mapping[str, Any]]) -> str | None:
    for pod in pods:
        for container in _containers(pod):
            if container.get("ready"):
                continue
            last = ((container.get("lastState") or {}).get("terminated")) or {}
            if last:
                why = last.get("reason") or "Error"
                return (
                    f"container {container.get('name')} not ready, restarted "
                    f"(last exit {last.get('exitCode')}, {why})"
                )
    return None


def _containers(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    status = pod.get("status") or {}
    return [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]


def _pods(reason: str, message: object) -> str:
    """``pods REASON: first line of MESSAGE`` (no colon without a message)."""
    line = _first_line(message)
    return f"pods {reason}: {line}" if line else f"pods {reason}"


def _first_line(text: object) -> str:
    lines = str(text or "").strip().splitlines()
    return lines[0].strip() if lines else ""


def _clip(text: str) -> str:
    return text if len(text) <= MAX_HINT else text[: MAX_HINT - 3] + "..."

"""Every component condition, each a pure function of the spec and the observed children.

DetectorReady (the Deployment), RedisReady / DatabaseReady / PoolerReady (the store
workloads) and ScalingActive (the HPA). ``reporting`` combines them into Ready, Progressing,
Degraded and the phase. Builders build objects only; what "ready" means lives here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

from pynomaly_operator import naming
from pynomaly_operator.builders import redis
from pynomaly_operator.specs import detector as specs
from pynomaly_operator.status import reasons
from pynomaly_operator.values import as_int

Children = Mapping[tuple[str, str], Mapping[str, Any]]  # (kind, name) -> live body


class Condition(TypedDict, total=False):
    type: str
    status: str
    reason: str
    message: str
    observedGeneration: int
    lastTransitionTime: str


def condition(type_: str, ok: bool | None, reason: str, message: str = "") -> Condition:
    """A condition without its stamps (``reporting`` adds generation and transition time)."""
    status = "Unknown" if ok is None else ("True" if ok else "False")
    return {"type": type_, "status": status, "reason": reason, "message": message}


# --- the detector -------------------------------------------------------------------------


def detector_ready(
    detector: specs.AnomalyDetector, deployment: Mapping[str, Any] | None
) -> Condition:
    """DetectorReady from the observed Deployment."""
    type_ = reasons.DETECTOR_READY
    if deployment is None:
        return condition(type_, False, reasons.REASON_NOT_FOUND, "Deployment not created yet")
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == reasons.REASON_DEADLINE:
            return condition(type_, False, reasons.REASON_DEADLINE, str(cond.get("message", "")))
    desired = as_int(spec.get("replicas", 1))
    if detector.spec.autoscaling.enabled:
        # Until the HPA has raised a fresh Deployment to its floor, it is still scaling up.
        desired = max(desired, detector.spec.autoscaling.min_replicas)
    generation = as_int((deployment.get("metadata") or {}).get("generation"))
    ready = as_int(status.get("readyReplicas"))
    updated = as_int(status.get("updatedReplicas"))
    available = as_int(status.get("availableReplicas"))
    total = as_int(status.get("replicas"))
    if as_int(status.get("observedGeneration")) < generation:
        return condition(
            type_, False, reasons.REASON_ROLLING_OUT, "Deployment spec change not observed yet"
        )
    message = f"{ready}/{desired} ready, {updated} updated, {available} available"
    if updated < desired or total > updated or available < desired or ready < desired:
        return condition(type_, False, reasons.REASON_ROLLING_OUT, message)
    return condition(type_, True, reasons.REASON_READY, message)


def scaling_active(detector: specs.AnomalyDetector, hpa: Mapping[str, Any] | None) -> Condition:
    """ScalingActive: mirrors the HPA's own ScalingActive condition."""
    type_ = reasons.SCALING_ACTIVE
    if not detector.spec.autoscaling.enabled:
        fixed = detector.spec.autoscaling.min_replicas
        return condition(
            type_, True, reasons.REASON_DISABLED, f"autoscaling disabled: {fixed} replicas"
        )
    if hpa is None:
        return condition(
            type_, False, reasons.REASON_NOT_FOUND, "HorizontalPodAutoscaler not created yet"
        )
    for cond in (hpa.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            ok = {"True": True, "False": False}.get(str(cond.get("status")))
            return condition(type_, ok, str(cond.get("reason", "")), str(cond.get("message", "")))
    return condition(type_, None, reasons.REASON_PENDING, "HPA has not evaluated metrics yet")


# --- the stores ---------------------------------------------------------------------------


def _replicas_ready(
    children: Children, kind: str, name: str, *, want: int, what: str
) -> tuple[bool, str, str]:
    """(ready, reason, message) of one workload from its status counters."""
    live = children.get((kind, name))
    if live is None:
        return False, reasons.REASON_NOT_FOUND, f"{kind} {name} not observed yet"
    ready = as_int((live.get("status") or {}).get("readyReplicas"))
    if ready >= want:
        return True, reasons.REASON_READY, f"{what}: {ready}/{want} ready"
    return False, reasons.REASON_PROGRESSING, f"{what}: {ready}/{want} ready"


def redis_ready(
    detector: specs.AnomalyDetector, names: naming.Names, children: Children
) -> Condition:
    """RedisReady: data pods (and sentinels, or the formed cluster) ready."""
    type_ = reasons.REDIS_READY
    spec = detector.spec.redis
    if spec.mode == "none":
        return condition(type_, True, reasons.REASON_DISABLED, "no Redis: in-process cache only")
    if spec.mode == "external":
        return condition(type_, True, reasons.REASON_EXTERNAL, "external Redis: not checked")
    ok, reason, message = _replicas_ready(
        children, "StatefulSet", names.redis, want=redis.data_replicas(detector), what="redis"
    )
    if ok and spec.mode == "sentinel":
        ok, reason, sentinel_message = _replicas_ready(
            children,
            "StatefulSet",
            names.redis_sentinel,
            want=spec.sentinel.sentinels,
            what="sentinels",
        )
        message = f"{message}; {sentinel_message}"
    if ok and spec.mode == "cluster":
        job = children.get(("Job", redis.bootstrap_job_name(names)))
        if as_int(((job or {}).get("status") or {}).get("succeeded")) < 1:
            ok, reason = False, reasons.REASON_BOOTSTRAPPING
            message = f"{message}; cluster bootstrap Job has not succeeded yet"
        else:
            message = f"{message}; cluster formed"
    return condition(type_, ok, reason, message)


def database_ready(
    detector: specs.AnomalyDetector, names: naming.Names, children: Children
) -> list[Condition]:
    """DatabaseReady and PoolerReady."""
    pg = detector.spec.postgres
    database, pooler = reasons.DATABASE_READY, reasons.POOLER_READY
    if pg.mode == "external":
        return [
            condition(database, True, reasons.REASON_EXTERNAL, "external database: not checked"),
            condition(
                pooler, True, reasons.REASON_DISABLED, "no PgBouncer for an external database"
            ),
        ]
    ok, reason, message = _replicas_ready(
        children, "StatefulSet", names.postgres, want=1, what="postgres"
    )
    out = [condition(database, ok, reason, message)]
    if not pg.pgbouncer.enabled:
        out.append(condition(pooler, True, reasons.REASON_DISABLED, "PgBouncer disabled"))
        return out
    ok, reason, message = _replicas_ready(
        children, "Deployment", names.pgbouncer, want=pg.pgbouncer.replicas, what="pgbouncer"
    )
    out.append(condition(pooler, ok, reason, message))
    return out


def stores(
    detector: specs.AnomalyDetector, names: naming.Names, children: Children
) -> list[Condition]:
    """RedisReady, DatabaseReady, PoolerReady (type, status, reason, message)."""
    return [redis_ready(detector, names, children), *database_ready(detector, names, children)]

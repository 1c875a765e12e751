"""The ``AnomalyDetector`` status as a pure function of what was observed.

``compute()`` takes the parsed resource, the observed children, the spec problems found and
the store conditions, plus the previous status and the current time (so transition times
are kept while a condition's status does not change), and returns the whole status dict.
Calling it twice with the same inputs gives the same result; the reconcile writes the
status only when the result differs from what is stored, so a steady state costs no writes.

Gating: Ready = DetectorReady and every store condition True and no spec problem.
ScalingActive is reported but does not gate Ready: an HPA without metrics (no
metrics-server yet) still enforces min/max replicas, and the service is up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

from pynomaly_operator import naming
from pynomaly_operator.specs import detector as specs

READY = "Ready"
PROGRESSING = "Progressing"
DEGRADED = "Degraded"
DETECTOR_READY = "DetectorReady"
SCALING_ACTIVE = "ScalingActive"
STORE_TYPES = ("RedisReady", "DatabaseReady", "PoolerReady")
CONDITION_ORDER = (READY, PROGRESSING, DEGRADED, DETECTOR_READY, *STORE_TYPES, SCALING_ACTIVE)

# Reasons (documented in operator/README.md "Conditions and reasons").
REASON_READY = "Ready"
REASON_AS_EXPECTED = "AsExpected"
REASON_NOT_FOUND = "NotFound"
REASON_ROLLING_OUT = "RollingOut"
REASON_PENDING = "Pending"
REASON_DEADLINE = "ProgressDeadlineExceeded"
REASON_INVALID_SPEC = "InvalidSpec"
REASON_INVALID_PARAMETERS = "InvalidParameters"
REASON_TRAINING_MISSING = "TrainingDataMissing"
REASON_BUDGET = "ConnectionBudgetExceeded"
REASON_APPLY_FAILED = "ApplyFailed"
REASON_PAUSED = "Paused"
REASON_DISABLED = "Disabled"
REASON_COMPONENTS_NOT_READY = "ComponentsNotReady"
REASON_STABLE = "Stable"

ObservedKey = tuple[str, str]  # (kind, name)


class Problem(TypedDict):
    """A reason the spec cannot be applied as is (sets Degraded, blocks applies)."""

    reason: str
    message: str


class Condition(TypedDict, total=False):
    type: str
    status: str
    reason: str
    message: str
    observedGeneration: int
    lastTransitionTime: str


def _cond(type_: str, ok: bool | None, reason: str, message: str = "") -> Condition:
    status = "Unknown" if ok is None else ("True" if ok else "False")
    return {"type": type_, "status": status, "reason": reason, "message": message}


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) else 0


def detector_condition(
    detector: specs.AnomalyDetector, deployment: Mapping[str, Any] | None
) -> Condition:
    """DetectorReady from the observed Deployment."""
    if deployment is None:
        return _cond(DETECTOR_READY, False, REASON_NOT_FOUND, "Deployment not created yet")
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == REASON_DEADLINE:
            return _cond(DETECTOR_READY, False, REASON_DEADLINE, str(cond.get("message", "")))
    desired = _int(spec.get("replicas", 1))
    if detector.spec.autoscaling.enabled:
        # Until the HPA has raised a fresh Deployment to its floor, it is still scaling up.
        desired = max(desired, detector.spec.autoscaling.min_replicas)
    generation = _int((deployment.get("metadata") or {}).get("generation"))
    ready = _int(status.get("readyReplicas"))
    updated = _int(status.get("updatedReplicas"))
    available = _int(status.get("availableReplicas"))
    total = _int(status.get("replicas"))
    if _int(status.get("observedGeneration")) < generation:
        return _cond(
            DETECTOR_READY, False, REASON_ROLLING_OUT, "Deployment spec change not observed yet"
        )
    message = f"{ready}/{desired} ready, {updated} updated, {available} available"
    if updated < desired or total > updated or available < desired or ready < desired:
        return _cond(DETECTOR_READY, False, REASON_ROLLING_OUT, message)
    return _cond(DETECTOR_READY, True, REASON_READY, message)


def scaling_condition(detector: specs.AnomalyDetector, hpa: Mapping[str, Any] | None) -> Condition:
    """ScalingActive: mirrors the HPA's own ScalingActive condition."""
    if not detector.spec.autoscaling.enabled:
        fixed = detector.spec.autoscaling.min_replicas
        return _cond(
            SCALING_ACTIVE, True, REASON_DISABLED, f"autoscaling disabled: {fixed} replicas"
        )
    if hpa is None:
        return _cond(
            SCALING_ACTIVE, False, REASON_NOT_FOUND, "HorizontalPodAutoscaler not created yet"
        )
    for cond in (hpa.get("status") or {}).get("conditions") or []:
        if cond.get("type") == SCALING_ACTIVE:
            ok = {"True": True, "False": False}.get(str(cond.get("status")))
            return _cond(
                SCALING_ACTIVE, ok, str(cond.get("reason", "")), str(cond.get("message", ""))
            )
    return _cond(SCALING_ACTIVE, None, REASON_PENDING, "HPA has not evaluated metrics yet")


def replicas(
    detector: specs.AnomalyDetector,
    deployment: Mapping[str, Any] | None,
    hpa: Mapping[str, Any] | None,
) -> dict[str, int]:
    hpa_status = (hpa or {}).get("status") or {}
    if _int(hpa_status.get("desiredReplicas")) > 0:  # 0 until the HPA's first evaluation
        desired = _int(hpa_status["desiredReplicas"])
    elif deployment is not None:
        desired = _int((deployment.get("spec") or {}).get("replicas", 1))
    else:
        desired = detector.spec.autoscaling.min_replicas
    ready = _int(((deployment or {}).get("status") or {}).get("readyReplicas"))
    return {"desired": desired, "ready": ready}


def _stamp(
    conditions: Sequence[Condition],
    previous: Sequence[Mapping[str, Any]],
    *,
    generation: int,
    now: str,
) -> list[Condition]:
    before = {str(c.get("type")): c for c in previous}
    out: list[Condition] = []
    for cond in conditions:
        old = before.get(cond["type"])
        same = old is not None and old.get("status") == cond["status"]
        stamped: Condition = {
            **cond,
            "observedGeneration": generation,
            "lastTransitionTime": str(old.get("lastTransitionTime")) if same and old else now,
        }
        out.append(stamped)
    return out


def compute(
    detector: specs.AnomalyDetector,
    *,
    deployment: Mapping[str, Any] | None,
    hpa: Mapping[str, Any] | None,
    store_conditions: Sequence[Mapping[str, Any]],
    problems: Sequence[Problem],
    previous: Mapping[str, Any] | None,
    now: str,
) -> dict[str, Any]:
    """The whole status of ``detector`` (pure: same inputs, same output)."""
    names = naming.Names(instance=detector.name, namespace=detector.namespace)
    detector_ready = detector_condition(detector, deployment)
    scaling = scaling_condition(detector, hpa)
    stores: list[Condition] = []
    for store_type in STORE_TYPES:
        found = next((c for c in store_conditions if c.get("type") == store_type), None)
        if found is None:
            stores.append(_cond(store_type, True, REASON_DISABLED, "not configured"))
        else:
            ok = {"True": True, "False": False}.get(str(found.get("status")))
            stores.append(
                _cond(store_type, ok, str(found.get("reason", "")), str(found.get("message", "")))
            )
    components = [detector_ready, *stores]
    not_ready = [c for c in components if c["status"] != "True"]
    failed = detector_ready["reason"] == REASON_DEADLINE
    if problems:
        degraded = _cond(
            DEGRADED, True, problems[0]["reason"], "; ".join(p["message"] for p in problems)
        )
    elif failed:
        degraded = _cond(DEGRADED, True, REASON_DEADLINE, detector_ready["message"])
    else:
        degraded = _cond(DEGRADED, False, REASON_AS_EXPECTED)
    summary = ", ".join(f"{c['type']}: {c['message'] or c['reason']}" for c in not_ready)
    if not_ready:
        ready = _cond(READY, False, REASON_COMPONENTS_NOT_READY, summary)
    else:
        ready = _cond(READY, True, REASON_READY, f"serving at {names.endpoint}")
    rolling = [c for c in not_ready if c["reason"] not in (REASON_DEADLINE,)]
    if detector.spec.paused:
        progressing = _cond(
            PROGRESSING, False, REASON_PAUSED, "spec.paused: children not reconciled"
        )
    elif rolling and not problems:
        progressing = _cond(PROGRESSING, True, REASON_ROLLING_OUT, summary)
    else:
        progressing = _cond(PROGRESSING, False, REASON_STABLE)

    if failed:
        phase = "Failed"
    elif problems:
        phase = "Degraded"
    elif not_ready and deployment is None:
        phase = "Pending"
    elif not_ready:
        phase = "Progressing"
    else:
        phase = "Ready"
    generation = detector.generation
    conditions = _stamp(
        [ready, progressing, degraded, detector_ready, *stores, scaling],
        (previous or {}).get("conditions") or [],
        generation=generation,
        now=now,
    )
    # The declared model only: the fitted version and threshold live in the service's
    # registry, which the operator does not call (see specs.detector.ModelStatus).
    model = {"name": detector.model_name, "algorithm": detector.spec.model.algorithm}
    return {
        "observedGeneration": generation,
        "phase": phase,
        "conditions": conditions,
        "endpoint": names.endpoint,
        "replicas": replicas(detector, deployment, hpa),
        "model": model,
    }


def invalid(
    body: Mapping[str, Any], message: str, *, previous: Mapping[str, Any] | None, now: str
) -> dict[str, Any]:
    """Status of a resource whose spec cannot even be parsed (CRD out of date)."""
    generation = _int((body.get("metadata") or {}).get("generation"))
    conds = [
        _cond(READY, False, REASON_INVALID_SPEC, message),
        _cond(DEGRADED, True, REASON_INVALID_SPEC, message),
    ]
    return {
        **{k: v for k, v in (previous or {}).items() if k in ("endpoint", "replicas", "model")},
        "observedGeneration": generation,
        "phase": "Failed",
        "conditions": _stamp(
            conds, (previous or {}).get("conditions") or [], generation=generation, now=now
        ),
    }

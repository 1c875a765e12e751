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
from typing import Any

from pynomaly_operator import naming
from pynomaly_operator.specs import detector as specs
from pynomaly_operator.status import conditions, reasons
from pynomaly_operator.status.problems import Problem
from pynomaly_operator.status.reasons import (
    DEGRADED,
    PROGRESSING,
    READY,
    REASON_AS_EXPECTED,
    REASON_COMPONENTS_NOT_READY,
    REASON_DEADLINE,
    REASON_DISABLED,
    REASON_INVALID_SPEC,
    REASON_PAUSED,
    REASON_READY,
    REASON_ROLLING_OUT,
    REASON_STABLE,
    STORE_TYPES,
)
from pynomaly_operator.values import as_int

Condition = conditions.Condition
_cond = conditions.condition


def replicas(
    detector: specs.AnomalyDetector,
    deployment: Mapping[str, Any] | None,
    hpa: Mapping[str, Any] | None,
) -> dict[str, int]:
    hpa_status = (hpa or {}).get("status") or {}
    if as_int(hpa_status.get("desiredReplicas")) > 0:  # 0 until the HPA's first evaluation
        desired = as_int(hpa_status["desiredReplicas"])
    elif deployment is not None:
        desired = as_int((deployment.get("spec") or {}).get("replicas", 1))
    else:
        desired = detector.spec.autoscaling.min_replicas
    ready = as_int(((deployment or {}).get("status") or {}).get("readyReplicas"))
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


def _hinted(cond: Condition, hints: Mapping[str, str] | None) -> Condition:
    """``cond`` with its pods' hint appended while it is not True."""
    hint = (hints or {}).get(cond["type"])
    if not hint or cond["status"] == "True":
        return cond
    return {**cond, "message": f"{cond['message']}; {hint}" if cond["message"] else hint}


def compute(
    detector: specs.AnomalyDetector,
    *,
    deployment: Mapping[str, Any] | None,
    hpa: Mapping[str, Any] | None,
    store_conditions: Sequence[Mapping[str, Any]],
    problems: Sequence[Problem],
    previous: Mapping[str, Any] | None,
    now: str,
    served: Mapping[str, Any] | None = None,
    pod_hints: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The whole status of ``detector`` (pure: same inputs, same output).

    ``pod_hints``: component condition type -> why its pods are not ready (``status.pods``),
    appended to that condition's message while it is not True.
    """
    names = naming.Names(instance=detector.name, namespace=detector.namespace)
    detector_ready = _hinted(conditions.detector_ready(detector, deployment), pod_hints)
    scaling = conditions.scaling_active(detector, hpa)
    stores: list[Condition] = []
    for store_type in STORE_TYPES:
        found = next((c for c in store_conditions if c.get("type") == store_type), None)
        if found is None:
            stores.append(_cond(store_type, True, REASON_DISABLED, "not configured"))
        else:
            ok = {"True": True, "False": False}.get(str(found.get("status")))
            stores.append(
                _hinted(
                    _cond(
                        store_type, ok, str(found.get("reason", "")), str(found.get("message", ""))
                    ),
                    pod_hints,
                )
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
    served_fields = {k: v for k, v in (served or {}).items() if k != "drift"}
    previous_drift = next(
        (
            c
            for c in (previous or {}).get("conditions") or []
            if c.get("type") == reasons.MODEL_DRIFT
        ),
        None,
    )
    drift = conditions.model_drift(
        detector,
        (served or {}).get("drift"),
        reported=served is not None and "drift" in served,
        previous=previous_drift,
    )
    stamped = _stamp(
        [
            ready,
            progressing,
            degraded,
            detector_ready,
            *stores,
            scaling,
            *([drift] if drift is not None else []),
        ],
        (previous or {}).get("conditions") or [],
        generation=generation,
        now=now,
    )
    # The declared model, and the served version as the service reported it (``served``;
    # the last answer is kept while the service is not asked, e.g. during a rollout).
    model = {
        "name": detector.model_name,
        "algorithm": detector.spec.model.algorithm,
        **served_fields,  # what the service reports it serves (reconciling.serving)
    }
    return {
        "observedGeneration": generation,
        "phase": phase,
        "conditions": stamped,
        "endpoint": names.endpoint,
        "replicas": replicas(detector, deployment, hpa),
        "model": model,
    }


def invalid(
    body: Mapping[str, Any], message: str, *, previous: Mapping[str, Any] | None, now: str
) -> dict[str, Any]:
    """Status of a resource whose spec cannot even be parsed (CRD out of date)."""
    generation = as_int((body.get("metadata") or {}).get("generation"))
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

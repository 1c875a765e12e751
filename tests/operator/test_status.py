"""Status is a pure function of observed state; conditions keep their transition times."""

from __future__ import annotations

from typing import Any

from pynomaly_operator import status
from pynomaly_operator.specs import detector as specs

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"


def parse(spec: dict[str, Any] | None = None, generation: int = 4) -> specs.AnomalyDetector:
    return specs.AnomalyDetector.from_body(
        {
            "metadata": {"name": "fraud", "namespace": "p", "generation": generation},
            "spec": spec or {},
        }
    )


def deployment(
    *, replicas: int = 3, ready: int = 3, generation: int = 2, observed: int = 2
) -> dict[str, Any]:
    return {
        "metadata": {"generation": generation},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "replicas": replicas,
            "readyReplicas": ready,
            "updatedReplicas": replicas,
            "availableReplicas": ready,
        },
    }


HPA = {
    "status": {
        "desiredReplicas": 3,
        "conditions": [
            {
                "type": "ScalingActive",
                "status": "True",
                "reason": "ValidMetricFound",
                "message": "ok",
            }
        ],
    }
}


def conds(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in result["conditions"]}


def compute(detector: specs.AnomalyDetector, **kwargs: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "deployment": deployment(),
        "hpa": HPA,
        "store_conditions": [],
        "problems": [],
        "previous": None,
        "now": T0,
    }
    args.update(kwargs)
    return status.compute(detector, **args)


def test_ready_when_everything_is_ready() -> None:
    result = compute(parse())
    assert result["phase"] == "Ready"
    assert result["observedGeneration"] == 4
    assert result["endpoint"] == "http://fraud.p.svc:8000"
    assert result["replicas"] == {"desired": 3, "ready": 3}
    c = conds(result)
    assert [x["type"] for x in result["conditions"]] == list(status.CONDITION_ORDER)
    assert c["Ready"]["status"] == "True"
    assert c["Degraded"]["status"] == "False"
    assert all(x["observedGeneration"] == 4 and x["lastTransitionTime"] == T0 for x in c.values())


def test_pure_and_transition_times_kept() -> None:
    first = compute(parse())
    again = compute(parse(), previous=first, now=T1)
    assert again == first  # nothing changed -> identical status -> no write
    rolling = compute(parse(), deployment=deployment(ready=1), previous=first, now=T1)
    c = conds(rolling)
    assert rolling["phase"] == "Progressing"
    assert c["Ready"]["status"] == "False"
    assert c["Ready"]["lastTransitionTime"] == T1
    assert c["Degraded"]["lastTransitionTime"] == T0  # unchanged status keeps its time
    assert c["DetectorReady"]["reason"] == status.REASON_ROLLING_OUT


def test_pending_before_the_deployment_exists() -> None:
    result = compute(parse(), deployment=None, hpa=None)
    assert result["phase"] == "Pending"
    assert conds(result)["DetectorReady"]["reason"] == status.REASON_NOT_FOUND


def test_spec_problem_degrades_with_reason_and_message() -> None:
    problem: status.Problem = {
        "reason": status.REASON_INVALID_PARAMETERS,
        "message": "spec.model.parameters: bad",
    }
    result = compute(parse(), problems=[problem])
    c = conds(result)
    assert result["phase"] == "Degraded"
    assert (c["Degraded"]["status"], c["Degraded"]["reason"]) == ("True", "InvalidParameters")
    assert c["Degraded"]["message"] == "spec.model.parameters: bad"
    assert c["Ready"]["status"] == "True"  # the old workload keeps serving


def test_store_conditions_gate_ready_and_scaling_does_not() -> None:
    store = [{"type": "RedisReady", "status": "False", "reason": "Progressing", "message": "1/3"}]
    no_metrics = {
        "status": {
            "conditions": [
                {"type": "ScalingActive", "status": "False", "reason": "FailedGetResourceMetric"}
            ]
        }
    }
    result = compute(parse(), store_conditions=store, hpa=no_metrics)
    c = conds(result)
    assert c["Ready"]["status"] == "False"
    assert "RedisReady" in c["Ready"]["message"]
    assert c["ScalingActive"]["status"] == "False"
    ok = compute(parse(), hpa=no_metrics)
    assert ok["phase"] == "Ready"


def test_deadline_exceeded_fails() -> None:
    dep = deployment(ready=0)
    dep["status"]["conditions"] = [
        {
            "type": "Progressing",
            "status": "False",
            "reason": "ProgressDeadlineExceeded",
            "message": "stuck",
        }
    ]
    result = compute(parse(), deployment=dep)
    assert result["phase"] == "Failed"
    assert conds(result)["Degraded"]["reason"] == "ProgressDeadlineExceeded"


def test_unobserved_deployment_generation_is_rolling_out() -> None:
    result = compute(parse(), deployment=deployment(generation=3, observed=2))
    assert conds(result)["DetectorReady"]["reason"] == status.REASON_ROLLING_OUT


def test_autoscaling_disabled() -> None:
    result = compute(
        parse({"autoscaling": {"enabled": False, "minReplicas": 2}}),
        hpa=None,
        deployment=deployment(replicas=2, ready=2),
    )
    assert conds(result)["ScalingActive"]["reason"] == status.REASON_DISABLED
    assert result["replicas"] == {"desired": 2, "ready": 2}


def test_status_model_validates_against_its_own_schema() -> None:
    result = compute(parse())
    parsed = specs.AnomalyDetectorStatus.model_validate(result)
    assert parsed.phase == "Ready"


def test_model_is_the_declared_one_and_nothing_reported_is_carried_over() -> None:
    """Only what the service itself reported (``served``) is claimed about the fitted
    version; compute never copies it from an old status."""
    previous = {"model": {"name": "fraud", "algorithm": "ECOD", "version": 7, "threshold": 0.1}}
    result = compute(parse({"model": {"name": "payments", "algorithm": "HBOS"}}), previous=previous)
    assert result["model"] == {"name": "payments", "algorithm": "HBOS"}
    served = {"version": 3, "servedAlgorithm": "HBOS", "threshold": 0.2}
    reported = compute(parse({"model": {"algorithm": "HBOS"}}), previous=previous, served=served)
    assert reported["model"] == {"name": "fraud", "algorithm": "HBOS", **served}


def test_paused_is_reported() -> None:
    result = compute(parse({"paused": True}))
    assert conds(result)["Progressing"]["reason"] == status.REASON_PAUSED
    assert result["phase"] == "Ready"


def test_unevaluated_hpa_does_not_report_zero_desired() -> None:
    fresh = {"status": {"currentReplicas": 0, "desiredReplicas": 0}}
    assert compute(parse(), hpa=fresh)["replicas"] == {"desired": 3, "ready": 3}

"""The detector HorizontalPodAutoscaler (autoscaling/v2), behavior included.

Every field of ``spec.autoscaling`` lands here, including the scale-up/scale-down
stabilization windows and policies (KServe drops ``behavior``; this builder must not).
"""

from __future__ import annotations

from typing import Any

from pynomaly_operator import naming
from pynomaly_operator.specs import detector as specs


def _rules(policy: specs.ScalingPolicy) -> dict[str, Any]:
    return {
        "stabilizationWindowSeconds": policy.stabilization_window_seconds,
        "selectPolicy": "Max",
        "policies": [
            {"type": "Percent", "value": policy.percent, "periodSeconds": policy.period_seconds}
        ],
    }


def _utilization(resource: str, target: int) -> dict[str, Any]:
    return {
        "type": "Resource",
        "resource": {
            "name": resource,
            "target": {"type": "Utilization", "averageUtilization": target},
        },
    }


def horizontal_pod_autoscaler(
    detector: specs.AnomalyDetector, names: naming.Names
) -> dict[str, Any] | None:
    """The HPA, or None when ``autoscaling.enabled`` is false."""
    scaling = detector.spec.autoscaling
    if not scaling.enabled:
        return None
    metrics = [_utilization("cpu", scaling.target_cpu_utilization)]
    if scaling.target_memory_utilization is not None:
        metrics.append(_utilization("memory", scaling.target_memory_utilization))
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": names.detector, "labels": names.labels(naming.COMPONENT_DETECTOR)},
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": names.detector,
            },
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": metrics,
            "behavior": {
                "scaleUp": _rules(scaling.behavior.scale_up),
                "scaleDown": _rules(scaling.behavior.scale_down),
            },
        },
    }

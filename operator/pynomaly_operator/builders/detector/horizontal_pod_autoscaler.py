"""The detector HorizontalPodAutoscaler (autoscaling/v2), behavior included.

Every field of ``spec.autoscaling`` lands here, including the scale-up/scale-down
stabilization windows and policies (KServe drops ``behavior``; this builder must not) and the
load metrics (requests per second, in-flight requests per pod) as ``Pods`` metrics beside
CPU and memory. Why HPA ``Pods`` metrics rather than a KEDA ScaledObject: KEDA would create
its own HPA for the Deployment, which would fight this one; one HPA keeps the guide's
CPU/memory targets and behavior policies, works with any custom-metrics adapter, and needs
no CRD.
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


LOAD_METRICS = {
    "RequestsPerSecond": "pynomaly_requests_per_second",
    "InFlightRequests": "pynomaly_in_flight_requests",
}
"""Adapter metric names per ``autoscaling.metrics[].type`` (manifests/monitoring/
prometheus-adapter-rules.yaml serves them from pynomaly_requests_total and
pynomaly_active_connections)."""


def _pods(metric: specs.LoadMetricSpec) -> dict[str, Any]:
    return {
        "type": "Pods",
        "pods": {
            "metric": {"name": metric.metric_name or LOAD_METRICS[metric.type]},
            "target": {"type": "AverageValue", "averageValue": metric.target_average_value},
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
    metrics.extend(_pods(metric) for metric in scaling.metrics)
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

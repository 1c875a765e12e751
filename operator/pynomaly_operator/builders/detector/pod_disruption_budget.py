"""The detector PodDisruptionBudget, consistent with ``autoscaling.minReplicas``.

With ``minReplicas`` >= 2 it keeps ``minReplicas - 1`` pods available: a voluntary
disruption never takes the service below one less than its floor, and a node drain at the
floor still proceeds one pod at a time. With a single replica it allows that one pod to be
evicted (``maxUnavailable: 1``) rather than blocking drains forever.
"""

from __future__ import annotations

from typing import Any

from pynomaly_operator import naming
from pynomaly_operator.specs import detector as specs


def pod_disruption_budget(detector: specs.AnomalyDetector, names: naming.Names) -> dict[str, Any]:
    """policy/v1 PodDisruptionBudget of the detector pods."""
    floor = detector.spec.autoscaling.min_replicas
    budget: dict[str, Any] = {"minAvailable": floor - 1} if floor >= 2 else {"maxUnavailable": 1}
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": names.detector, "labels": names.labels(naming.COMPONENT_DETECTOR)},
        "spec": {
            **budget,
            "selector": {"matchLabels": names.selector(naming.COMPONENT_DETECTOR)},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }

"""The detector service's objects: one module per Kind, assembled here in apply order.

``objects()`` is what the detector component contributes to ``builders.desired``: the
ServiceAccount and settings ConfigMap (before the stores, so they exist before the pods that
use them), then Service, Deployment, PodDisruptionBudget, HorizontalPodAutoscaler (when
autoscaling is enabled), NetworkPolicy, and the ServiceMonitor/PodMonitor/PrometheusRule
``spec.monitoring`` asks for. ``store_env`` tells the Deployment how to reach
the stores (passed in by ``builders.desired``); ``signing_key`` is this component's one
generated Secret.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pynomaly_operator import naming, values
from pynomaly_operator.builders.detector import (
    config_map,
    deployment,
    horizontal_pod_autoscaler,
    monitoring,
    network_policy,
    pod_disruption_budget,
    service,
    service_account,
)
from pynomaly_operator.specs import detector as specs


def before_stores(detector: specs.AnomalyDetector, names: naming.Names) -> list[dict[str, Any]]:
    """ServiceAccount and settings ConfigMap."""
    return [
        service_account.service_account(detector, names),
        config_map.config_map(detector, names),
    ]


def after_stores(
    detector: specs.AnomalyDetector,
    names: naming.Names,
    *,
    store_env: Sequence[dict[str, Any]] = (),
) -> list[dict[str, Any]]:
    """Service, Deployment, PDB, HPA (when enabled) and NetworkPolicy; ``store_env`` is the
    Deployment's store env (``store_env.env``).

    The Deployment carries ``replicas`` only when autoscaling is disabled: otherwise the
    HPA owns the replica count and the operator never sets it.
    """
    scaling = detector.spec.autoscaling
    objects = [
        service.service(detector, names),
        deployment.deployment(
            detector,
            names,
            config_hash=values.short_hash(config_map.settings(detector)),
            store_env=store_env,
            replicas=None if scaling.enabled else scaling.min_replicas,
        ),
        pod_disruption_budget.pod_disruption_budget(detector, names),
    ]
    hpa = horizontal_pod_autoscaler.horizontal_pod_autoscaler(detector, names)
    if hpa is not None:
        objects.append(hpa)
    objects.append(network_policy.network_policy(detector, names))
    objects.extend(monitoring.objects(detector, names))
    return objects

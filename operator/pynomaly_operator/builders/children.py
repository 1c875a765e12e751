"""Every object of the detector service, in apply order (the stores come from ``stores``).

Order matters only for the first creation: the ServiceAccount and ConfigMap exist before
the pods that use them, the Deployment before its HPA.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pynomaly_operator import naming
from pynomaly_operator.builders import (
    configmap,
    deployment,
    horizontalpodautoscaler,
    networkpolicy,
    poddisruptionbudget,
    service,
    serviceaccount,
)
from pynomaly_operator.specs import detector as specs


def before_stores(detector: specs.AnomalyDetector, names: naming.Names) -> list[dict[str, Any]]:
    """ServiceAccount and settings ConfigMap."""
    return [
        serviceaccount.service_account(detector, names),
        configmap.config_map(detector, names),
    ]


def after_stores(
    detector: specs.AnomalyDetector,
    names: naming.Names,
    *,
    store_env: Sequence[dict[str, Any]] = (),
) -> list[dict[str, Any]]:
    """Service, Deployment, PDB, HPA (when enabled) and NetworkPolicy.

    The Deployment carries ``replicas`` only when autoscaling is disabled: otherwise the
    HPA owns the replica count and the operator never sets it.
    """
    scaling = detector.spec.autoscaling
    settings = configmap.settings(detector)
    objects = [
        service.service(detector, names),
        deployment.deployment(
            detector,
            names,
            config_hash=configmap.config_hash(settings),
            store_env=store_env,
            replicas=None if scaling.enabled else scaling.min_replicas,
        ),
        poddisruptionbudget.pod_disruption_budget(detector, names),
    ]
    hpa = horizontalpodautoscaler.horizontal_pod_autoscaler(detector, names)
    if hpa is not None:
        objects.append(hpa)
    objects.append(networkpolicy.network_policy(detector, names))
    return objects

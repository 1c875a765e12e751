"""The detector NetworkPolicy: ingress to HTTP and metrics; egress to its stores and DNS only.

Managed stores are matched by their pod labels (same instance), external ones by port
(their addresses are not known to the operator). A training URL opens HTTP(S) egress.
"""

from __future__ import annotations

from typing import Any

from pynomaly_operator import naming
from pynomaly_operator.builders import configmap
from pynomaly_operator.specs import detector as specs

REDIS_PORT = 6379
SENTINEL_PORT = 26379
PGBOUNCER_PORT = 6432
POSTGRES_PORT = 5432
MANAGED_REDIS = frozenset({"standalone", "sentinel", "cluster"})


def _tcp(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": port} for port in ports]


def _to_pods(names: naming.Names, component: str, *ports: int) -> dict[str, Any]:
    return {
        "to": [{"podSelector": {"matchLabels": names.selector(component)}}],
        "ports": _tcp(*ports),
    }


def egress_rules(detector: specs.AnomalyDetector, names: naming.Names) -> list[dict[str, Any]]:
    """DNS, then the stores this spec uses."""
    rules: list[dict[str, Any]] = [
        {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}
    ]
    redis_mode = str(detector.spec.redis.mode)
    if redis_mode in MANAGED_REDIS:
        rules.append(_to_pods(names, naming.COMPONENT_REDIS, REDIS_PORT))
        if redis_mode == "sentinel":
            rules.append(_to_pods(names, naming.COMPONENT_SENTINEL, SENTINEL_PORT))
    elif redis_mode == "external":
        rules.append({"ports": _tcp(REDIS_PORT, SENTINEL_PORT)})
    postgres_mode = str(detector.spec.postgres.mode)
    if postgres_mode == "managed":
        rules.append(_to_pods(names, naming.COMPONENT_PGBOUNCER, PGBOUNCER_PORT))
    elif postgres_mode == "external":
        rules.append({"ports": _tcp(POSTGRES_PORT, PGBOUNCER_PORT)})
    if detector.spec.model.training.url is not None:
        rules.append({"ports": _tcp(443, 80)})
    return rules


def network_policy(detector: specs.AnomalyDetector, names: naming.Names) -> dict[str, Any]:
    """networking.k8s.io/v1 NetworkPolicy of the detector pods."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": names.detector, "labels": names.labels(naming.COMPONENT_DETECTOR)},
        "spec": {
            "podSelector": {"matchLabels": names.selector(naming.COMPONENT_DETECTOR)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"ports": _tcp(configmap.HTTP_PORT, configmap.METRICS_PORT)}],
            "egress": egress_rules(detector, names),
        },
    }

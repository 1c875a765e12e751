"""The detector NetworkPolicy: ingress to HTTP and metrics; egress to its stores and DNS only.

Managed stores are matched by their pod labels (same instance), external ones by port
(their addresses are not known to the operator). A training URL opens HTTP(S) egress.
"""

from __future__ import annotations

from typing import Any

from pynomaly_operator import naming
from pynomaly_operator.builders import pods
from pynomaly_operator.specs import detector as specs


def _to_pods(names: naming.Names, component: str, *ports: int) -> dict[str, Any]:
    return {"to": pods.peers(names.selector(component)), "ports": pods.tcp(*ports)}


def egress_rules(detector: specs.AnomalyDetector, names: naming.Names) -> list[dict[str, Any]]:
    """DNS, then the stores this spec uses."""
    return [pods.DNS_EGRESS, *_store_rules(detector, names)]


def _store_rules(detector: specs.AnomalyDetector, names: naming.Names) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    redis = detector.spec.redis
    if redis.managed:
        rules.append(_to_pods(names, naming.COMPONENT_REDIS, pods.REDIS_PORT))
        if redis.mode == "sentinel":
            rules.append(_to_pods(names, naming.COMPONENT_SENTINEL, pods.SENTINEL_PORT))
    elif redis.mode == "external":
        rules.append({"ports": pods.tcp(pods.REDIS_PORT, pods.SENTINEL_PORT)})
    postgres_mode = detector.spec.postgres.mode
    if postgres_mode == "managed":
        rules.append(_to_pods(names, naming.COMPONENT_PGBOUNCER, pods.PGBOUNCER_PORT))
    elif postgres_mode == "external":
        rules.append({"ports": pods.tcp(pods.POSTGRES_PORT, pods.PGBOUNCER_PORT)})
    if detector.spec.model.training.url is not None:
        rules.append({"ports": pods.tcp(443, 80)})
    return rules


def network_policy(detector: specs.AnomalyDetector, names: naming.Names) -> dict[str, Any]:
    """networking.k8s.io/v1 NetworkPolicy of the detector pods."""
    return pods.network_policy(
        name=names.detector,
        labels=names.labels(naming.COMPONENT_DETECTOR),
        selector=names.selector(naming.COMPONENT_DETECTOR),
        ingress=[{"ports": pods.tcp(pods.HTTP_PORT, pods.METRICS_PORT)}],
        egress=_store_rules(detector, names),
    )

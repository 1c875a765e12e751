"""The detector NetworkPolicy: who may call it, who may scrape it, and where it may connect.

Ingress: the scoring port(s) from ``spec.network.allowedClients`` only (default: pods of this
namespace; an empty list admits nobody: a rule without peers would admit everyone), the
metrics port from the ``spec.network.metricsNamespaces`` only (default ``monitoring``).
Egress: DNS and its stores. Managed stores are matched by their pod labels (same instance),
external ones by port (their addresses are not known to the operator). A training URL opens
HTTP(S) egress.
"""

from __future__ import annotations

from typing import Any

from pynomaly_operator import naming
from pynomaly_operator.builders import pods
from pynomaly_operator.specs import detector as specs

# Set by the API server on every namespace (Kubernetes 1.22+): selects a namespace by name.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
OPERATOR_NAME = "pynomaly-operator"  # app.kubernetes.io/name of the operator pods (manifests/)


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


def _peer(client: specs.ClientPeer) -> dict[str, Any]:
    peer: dict[str, Any] = {}
    if client.namespace_selector is not None:
        peer["namespaceSelector"] = {"matchLabels": dict(client.namespace_selector.match_labels)}
    if client.pod_selector is not None:
        peer["podSelector"] = {"matchLabels": dict(client.pod_selector.match_labels)}
    return peer


def scoring_ports(detector: specs.AnomalyDetector) -> list[int]:
    """HTTP, and gRPC when enabled."""
    grpc = detector.spec.server.grpc_port
    return [pods.HTTP_PORT] if grpc is None else [pods.HTTP_PORT, grpc]


def ingress_rules(detector: specs.AnomalyDetector) -> list[dict[str, Any]]:
    """Scoring from the allowed clients, metrics from the monitoring namespaces."""
    network = detector.spec.network
    rules: list[dict[str, Any]] = []
    if network.allowed_clients:
        rules.append(
            {
                "from": [_peer(client) for client in network.allowed_clients],
                "ports": pods.tcp(*scoring_ports(detector)),
            }
        )
    # The operator reads the served model version (GET /v1/models/<name>) from the HTTP port.
    rules.append(
        {
            "from": [
                {
                    "namespaceSelector": {
                        "matchLabels": {NAMESPACE_NAME_LABEL: network.operator_namespace}
                    },
                    "podSelector": {"matchLabels": {naming.LABEL_NAME: OPERATOR_NAME}},
                }
            ],
            "ports": pods.tcp(pods.HTTP_PORT),
        }
    )
    if network.metrics_namespaces:
        rules.append(
            {
                "from": [
                    {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: namespace}}}
                    for namespace in network.metrics_namespaces
                ],
                "ports": pods.tcp(pods.METRICS_PORT),
            }
        )
    return rules


def network_policy(detector: specs.AnomalyDetector, names: naming.Names) -> dict[str, Any]:
    """networking.k8s.io/v1 NetworkPolicy of the detector pods."""
    return pods.network_policy(
        name=names.detector,
        labels=names.labels(naming.COMPONENT_DETECTOR),
        selector=names.selector(naming.COMPONENT_DETECTOR),
        ingress=ingress_rules(detector),
        egress=_store_rules(detector, names),
    )

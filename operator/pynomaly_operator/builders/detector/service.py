"""The detector Service: the scoring endpoint (HTTP 8000) and the metrics port (9090)."""

from __future__ import annotations

from typing import Any

from pynomaly_operator import naming
from pynomaly_operator.builders import pods
from pynomaly_operator.specs import detector as specs


def service(detector: specs.AnomalyDetector, names: naming.Names) -> dict[str, Any]:
    """ClusterIP Service selecting the detector pods."""
    ports: list[dict[str, Any]] = [
        {"name": "http", "port": pods.HTTP_PORT, "targetPort": "http", "protocol": "TCP"},
        {"name": "metrics", "port": pods.METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"},
    ]
    grpc = detector.spec.server.grpc_port
    if grpc is not None:
        ports.append(
            {
                "name": "grpc",
                "port": grpc,
                "targetPort": "grpc",
                "protocol": "TCP",
                "appProtocol": "kubernetes.io/h2c",
            }
        )
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": names.detector, "labels": names.labels(naming.COMPONENT_DETECTOR)},
        "spec": {
            "type": "ClusterIP",
            "selector": names.selector(naming.COMPONENT_DETECTOR),
            "ports": ports,
        },
    }

"""Prometheus Operator objects for a detector: ServiceMonitor, PodMonitor, PrometheusRule
(monitoring.coreos.com/v1), plus the cluster-wide copies in ``manifests/monitoring/``.

Every scrape object relabels the pods' ``app.kubernetes.io/instance`` label into
``detector``: the rules and the dashboard group by ``(namespace, detector)``. The rule
content lives in ``monitoring.rules``; this module only wraps it in Kubernetes objects.
"""

from __future__ import annotations

from typing import Any

from pynomaly_operator import naming
from pynomaly_operator.monitoring import rules

API_VERSION = "monitoring.coreos.com/v1"
METRICS_PORT_NAME = "metrics"
SCRAPE_INTERVAL = "30s"

DETECTOR_RELABELING = {
    "sourceLabels": ["__meta_kubernetes_pod_label_app_kubernetes_io_instance"],
    "targetLabel": "detector",
    "action": "replace",
}
"""Adds ``detector="<AnomalyDetector name>"`` to every scraped series."""

SCRAPE_ANNOTATIONS = {
    "prometheus.io/scrape": "true",
    "prometheus.io/port": "9090",
    "prometheus.io/path": "/metrics",
}
"""Pod annotations for annotation-based scrapers (the common ``kubernetes-pods`` job)."""


def _endpoint() -> dict[str, Any]:
    return {
        "port": METRICS_PORT_NAME,
        "path": "/metrics",
        "interval": SCRAPE_INTERVAL,
        "relabelings": [DETECTOR_RELABELING],
    }


def service_monitor(names: naming.Names) -> dict[str, Any]:
    """Scrapes the detector Service's ``metrics`` port (every ready endpoint)."""
    return {
        "apiVersion": API_VERSION,
        "kind": "ServiceMonitor",
        "metadata": {"name": names.detector, "labels": names.labels(naming.COMPONENT_DETECTOR)},
        "spec": {
            "selector": {"matchLabels": names.selector(naming.COMPONENT_DETECTOR)},
            "endpoints": [_endpoint()],
        },
    }


def pod_monitor(names: naming.Names) -> dict[str, Any]:
    """Scrapes the detector pods directly (also the ones not ready, e.g. model not loaded)."""
    return {
        "apiVersion": API_VERSION,
        "kind": "PodMonitor",
        "metadata": {"name": names.detector, "labels": names.labels(naming.COMPONENT_DETECTOR)},
        "spec": {
            "selector": {"matchLabels": names.selector(naming.COMPONENT_DETECTOR)},
            "podMetricsEndpoints": [_endpoint()],
        },
    }


def prometheus_rule(names: naming.Names) -> dict[str, Any]:
    """The alert and recording rules narrowed to this detector."""
    selector = f'namespace="{names.namespace}",detector="{names.detector}"'
    deployments = f'namespace="{names.namespace}",deployment="{names.detector}"'
    return {
        "apiVersion": API_VERSION,
        "kind": "PrometheusRule",
        "metadata": {"name": names.detector, "labels": names.labels(naming.COMPONENT_DETECTOR)},
        "spec": {"groups": rules.rule_groups(selector, deployments)},
    }


# ---- cluster-wide copies (manifests/monitoring/, written by scripts/monitoring-manifests.py)

CLUSTER_LABELS = {naming.LABEL_PART_OF: naming.PART_OF}
CLUSTER_NAMESPACE = "pynomaly-system"


def cluster_pod_monitor() -> dict[str, Any]:
    """One PodMonitor for the detector pods of every namespace."""
    return {
        "apiVersion": API_VERSION,
        "kind": "PodMonitor",
        "metadata": {
            "name": "pynomaly-detectors",
            "namespace": CLUSTER_NAMESPACE,
            "labels": CLUSTER_LABELS,
        },
        "spec": {
            "namespaceSelector": {"any": True},
            "selector": {
                "matchLabels": {
                    naming.LABEL_NAME: naming.PART_OF,
                    naming.LABEL_COMPONENT: naming.COMPONENT_DETECTOR,
                }
            },
            "podMetricsEndpoints": [_endpoint()],
        },
    }


def cluster_prometheus_rule() -> dict[str, Any]:
    """The rules for every detector (series carrying a ``detector`` label)."""
    return {
        "apiVersion": API_VERSION,
        "kind": "PrometheusRule",
        "metadata": {
            "name": "pynomaly-detectors",
            "namespace": CLUSTER_NAMESPACE,
            "labels": CLUSTER_LABELS,
        },
        "spec": {"groups": rules.rule_groups('detector!=""')},
    }

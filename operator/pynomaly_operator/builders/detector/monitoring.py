"""Prometheus Operator objects for a detector: ServiceMonitor, PodMonitor, PrometheusRule
(monitoring.coreos.com/v1), plus the cluster-wide copies in ``manifests/monitoring/``.

``objects()`` renders what ``spec.monitoring`` asks for. Whether the API server serves these
kinds is not known here (builders are pure): the reconciler applies them and treats the API
server's 404 for an unserved kind as "Prometheus Operator CRDs not installed" (an Event,
nothing else fails). Every scrape object relabels the pods' ``app.kubernetes.io/instance``
label into ``detector``: the rules and the dashboard group by ``(namespace, detector)``. The
rule content lives in ``monitoring.rules``; this module only wraps it in Kubernetes objects.
The pods' ``prometheus.io/*`` scrape annotations are set by the Deployment builder.
"""

from __future__ import annotations

from typing import Any

from pynomaly_operator import naming
from pynomaly_operator.monitoring import rules
from pynomaly_operator.specs import detector as specs

API_VERSION = "monitoring.coreos.com/v1"
METRICS_PORT_NAME = "metrics"
SCRAPE_INTERVAL = "30s"

DETECTOR_RELABELING = {
    "sourceLabels": ["__meta_kubernetes_pod_label_app_kubernetes_io_instance"],
    "targetLabel": "detector",
    "action": "replace",
}
"""Adds ``detector="<AnomalyDetector name>"`` to every scraped series."""

KINDS = frozenset({"ServiceMonitor", "PodMonitor", "PrometheusRule"})
"""Kinds of this module: applied only where the API server serves them."""


def _endpoint() -> dict[str, Any]:
    return {
        "port": METRICS_PORT_NAME,
        "path": "/metrics",
        "interval": SCRAPE_INTERVAL,
        "relabelings": [DETECTOR_RELABELING],
    }


def service_monitor(names: naming.Names) -> dict[str, Any]:
    """Scrapes the detector Service's ``metrics`` port (every ready endpoint)."""
    return _monitor(names, "ServiceMonitor", "endpoints")


def pod_monitor(names: naming.Names) -> dict[str, Any]:
    """Scrapes the detector pods directly (also the ones not ready, e.g. model not loaded)."""
    return _monitor(names, "PodMonitor", "podMetricsEndpoints")


def _monitor(names: naming.Names, kind: str, endpoints: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {"name": names.detector, "labels": names.labels(naming.COMPONENT_DETECTOR)},
        "spec": {
            "selector": {"matchLabels": names.selector(naming.COMPONENT_DETECTOR)},
            endpoints: [_endpoint()],
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


def objects(detector: specs.AnomalyDetector, names: naming.Names) -> list[dict[str, Any]]:
    """The scrape object (``monitoring.enabled``) and the PrometheusRule (``monitoring.rules``)."""
    monitoring = detector.spec.monitoring
    out = []
    if monitoring.enabled:
        scrape = pod_monitor if monitoring.kind == "PodMonitor" else service_monitor
        out.append(scrape(names))
    if monitoring.rules:
        out.append(prometheus_rule(names))
    return out


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

"""The Grafana dashboard (JSON model, schema 39) for detectors.

Panels: request rate, latency percentiles, error rate, cache hit rate per level, batch sizes,
anomaly rate vs contamination, model versions and thresholds, replicas vs HPA desired, DB
pool usage, in-flight requests and memory. Template variables pick the Prometheus data
source, the namespace and the detector (the ``detector`` label the operator's scrape
objects add). Replica panels read kube-state-metrics (``KUBE_STATE_METRICS``).

Grafana itself is not a dependency: this module only builds the JSON users import.
"""

from __future__ import annotations

from typing import Any

UID = "pynomaly-detector"
SEL = 'namespace="$namespace",detector="$detector"'
KUBE_STATE_METRICS = (
    "kube_deployment_spec_replicas",
    "kube_deployment_status_replicas_ready",
    "kube_horizontalpodautoscaler_status_current_replicas",
    "kube_horizontalpodautoscaler_status_desired_replicas",
    "kube_horizontalpodautoscaler_spec_max_replicas",
    "kube_horizontalpodautoscaler_spec_min_replicas",
)
"""Series the dashboard reads from kube-state-metrics (v2 names), not from the service."""

_DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
_RATE = "$__rate_interval"


def _target(expr: str, legend: str, ref: str) -> dict[str, Any]:
    return {"datasource": _DATASOURCE, "expr": expr, "legendFormat": legend, "refId": ref}


def _panel(
    title: str,
    targets: list[tuple[str, str]],
    *,
    unit: str,
    grid: tuple[int, int, int, int],
    kind: str = "timeseries",
    description: str = "",
) -> dict[str, Any]:
    x, y, w, h = grid
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": _DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}}
        if kind == "timeseries"
        else {},
        "targets": [
            _target(expr, legend, chr(ord("A") + index))
            for index, (expr, legend) in enumerate(targets)
        ],
    }


def panels() -> list[dict[str, Any]]:
    """Every panel, laid out on Grafana's 24-column grid."""
    requests = f"rate(pynomaly_requests_total{{{SEL}}}[{_RATE}])"
    buckets = f"rate(pynomaly_request_duration_seconds_bucket{{{SEL}}}[{_RATE}])"
    quantile = "histogram_quantile({q}, sum by (le) ({b}))"
    hits = f"sum by (level) (rate(pynomaly_cache_hits_total{{{SEL}}}[{_RATE}]))"
    misses = f"sum by (level) (rate(pynomaly_cache_misses_total{{{SEL}}}[{_RATE}]))"
    batch = f"rate(pynomaly_batch_size_bucket{{{SEL}}}[{_RATE}])"
    hpa = 'namespace="$namespace",horizontalpodautoscaler="$detector"'
    deployment = 'namespace="$namespace",deployment="$detector"'
    found = [
        _panel(
            "Request rate by endpoint and status",
            [(f"sum by (endpoint, status) ({requests})", "{{endpoint}} {{status}}")],
            unit="reqps",
            grid=(0, 0, 12, 8),
        ),
        _panel(
            "Latency percentiles",
            [(quantile.format(q=q, b=buckets), f"p{int(q * 100)}") for q in (0.5, 0.95, 0.99)],
            unit="s",
            grid=(12, 0, 12, 8),
            description="Targets: p95 < 500 ms, p99 < 1 s.",
        ),
        _panel(
            "Error rate (5xx share)",
            [
                (
                    f'sum(rate(pynomaly_requests_total{{{SEL},status=~"5.."}}[{_RATE}]))'
                    f" / sum({requests})",
                    "5xx",
                ),
                (
                    f'sum(rate(pynomaly_requests_total{{{SEL},status=~"4.."}}[{_RATE}]))'
                    f" / sum({requests})",
                    "4xx",
                ),
            ],
            unit="percentunit",
            grid=(0, 8, 8, 8),
            description="Target: 5xx < 0.1 %.",
        ),
        _panel(
            "Cache hit rate per level",
            [(f"{hits} / ({hits} + {misses})", "{{level}}")],
            unit="percentunit",
            grid=(8, 8, 8, 8),
            description="Target: > 90 % where rows repeat. "
            "l1 rows, l1_models loaded models, l2 Redis, l3 registry lookups.",
        ),
        _panel(
            "Batch sizes (rows per model call)",
            [
                (f"histogram_quantile(0.5, sum by (le) ({batch}))", "p50"),
                (f"histogram_quantile(0.99, sum by (le) ({batch}))", "p99"),
                (
                    f"sum(rate(pynomaly_batch_requests_sum{{{SEL}}}[{_RATE}]))"
                    f" / sum(rate(pynomaly_batch_requests_count{{{SEL}}}[{_RATE}]))",
                    "requests per call (mean)",
                ),
            ],
            unit="short",
            grid=(16, 8, 8, 8),
        ),
        _panel(
            "Anomaly rate vs contamination",
            [
                (
                    f"sum by (model) (rate(pynomaly_anomalies_total{{{SEL}}}[{_RATE}]))"
                    f" / sum by (model) (rate(pynomaly_rows_scored_total{{{SEL}}}[{_RATE}]))",
                    "{{model}} anomaly rate",
                ),
                (
                    f"max by (model) (pynomaly_model_contamination{{{SEL}}})",
                    "{{model}} contamination",
                ),
            ],
            unit="percentunit",
            grid=(0, 16, 12, 8),
            description="Alerts fire when the rate leaves [contamination / 3, contamination x 3].",
        ),
        _panel(
            "Model versions and thresholds",
            [
                (f"max by (model) (pynomaly_model_version{{{SEL}}})", "{{model}} version"),
                (
                    f"max by (model, version) (pynomaly_model_threshold{{{SEL}}})",
                    "{{model}} v{{version}} threshold",
                ),
            ],
            unit="short",
            grid=(12, 16, 12, 8),
            kind="stat",
        ),
        _panel(
            "Replicas vs HPA desired",
            [
                (f"kube_deployment_status_replicas_ready{{{deployment}}}", "ready"),
                (f"kube_deployment_spec_replicas{{{deployment}}}", "deployment spec"),
                (f"kube_horizontalpodautoscaler_status_desired_replicas{{{hpa}}}", "HPA desired"),
                (f"kube_horizontalpodautoscaler_status_current_replicas{{{hpa}}}", "HPA current"),
                (f"kube_horizontalpodautoscaler_spec_max_replicas{{{hpa}}}", "HPA max"),
                (f"kube_horizontalpodautoscaler_spec_min_replicas{{{hpa}}}", "HPA min"),
            ],
            unit="short",
            grid=(0, 24, 12, 8),
        ),
        _panel(
            "Database pool usage",
            [
                (f'sum(pynomaly_db_pool_connections{{{SEL},state="in_use"}})', "in use"),
                (f'sum(pynomaly_db_pool_connections{{{SEL},state="idle"}})', "idle"),
                (f"sum(pynomaly_db_pool_max_connections{{{SEL}}})", "max"),
            ],
            unit="short",
            grid=(12, 24, 12, 8),
            description="Target: in use < 80 % of max.",
        ),
        _panel(
            "In-flight requests per pod",
            [
                (f"sum by (pod) (pynomaly_active_connections{{{SEL}}})", "{{pod}} in flight"),
            ],
            unit="short",
            grid=(0, 32, 12, 8),
        ),
        _panel(
            "Redis (L2) circuit and cache errors",
            [
                (f"max(pynomaly_l2_circuit_open{{{SEL}}})", "L2 circuit open"),
                (
                    f"sum by (level) (rate(pynomaly_cache_errors_total{{{SEL}}}[{_RATE}]))",
                    "{{level}} errors/s",
                ),
            ],
            unit="short",
            grid=(12, 32, 12, 8),
        ),
    ]
    return [{**panel, "id": index + 1} for index, panel in enumerate(found)]


def _variable(name: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": name,
        "type": "query",
        "datasource": _DATASOURCE,
        "query": {"query": query, "refId": name},
        "definition": query,
        "refresh": 2,
        "sort": 1,
        "current": {},
    }


def dashboard() -> dict[str, Any]:
    """The JSON model to import (Dashboards > New > Import)."""
    return {
        "uid": UID,
        "title": "Pynomaly detector",
        "tags": ["pynomaly"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "timezone": "",
        "annotations": {"list": []},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                },
                _variable(
                    "namespace", 'label_values(pynomaly_requests_total{detector!=""}, namespace)'
                ),
                _variable(
                    "detector",
                    'label_values(pynomaly_requests_total{namespace="$namespace"}, detector)',
                ),
            ]
        },
        "panels": panels(),
    }

"""Prometheus recording and alerting rules for detectors: the performance guide's targets
(error rate < 0.1 %, p95 < 500 ms, p99 < 1 s, cache hit rate > 90 %, database connections
< 80 % of the pool) and the model-specific ones no serving operator ships (anomaly rate far
from the fitted contamination, anomaly-log losses, L2 circuit open, declared model not
loaded, pods not ready).

Series are grouped ``by (namespace, detector)``: the ``detector`` label is added at scrape
time by the operator's ServiceMonitor/PodMonitor (from the pods'
``app.kubernetes.io/instance`` label). ``selector`` narrows the rules to one detector
(``namespace="payments",detector="payments"``) or keeps them cluster-wide
(``detector!=""``). Pods-not-ready reads kube-state-metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

BY = "namespace, detector"

ERROR_RATIO_MAX = 0.001
"""The guide: error rate < 0.1 % (5xx over all requests)."""
LATENCY_P95_MAX_SECONDS = 0.5
LATENCY_P99_MAX_SECONDS = 1.0
CACHE_HIT_RATIO_MIN = 0.9
DB_POOL_USAGE_MAX = 0.8
ANOMALY_RATE_FACTOR = 3.0
"""Anomaly rate alerts fire above contamination x 3 or below contamination / 3."""
ANOMALY_MIN_ROWS_PER_SECOND = 0.1
"""Below this scoring rate the anomaly share is noise: the anomaly-rate alerts stay quiet."""


@dataclass(frozen=True)
class Alert:
    """One alerting rule as the README's alert table and the PrometheusRule show it."""

    name: str
    expr: str
    duration: str
    severity: str
    summary: str
    description: str


def _sel(selector: str, *extra: str) -> str:
    parts = [part for part in (selector, *extra) if part]
    return "{" + ",".join(parts) + "}" if parts else ""


_5XX = 'status=~"5.."'
_L1 = 'level="l1"'
_L1_L2 = 'level=~"l1|l2"'
_IN_USE = 'state="in_use"'
_LOST = 'outcome=~"dropped|failed"'


def recording_rules(selector: str) -> list[dict[str, str]]:
    """Recording rules (group ``pynomaly.rules``): the series the alerts and dashboard read."""
    s = selector
    requests = f"rate(pynomaly_requests_total{_sel(s)}[5m])"
    errors = f"rate(pynomaly_requests_total{_sel(s, _5XX)}[5m])"
    buckets = f"rate(pynomaly_request_duration_seconds_bucket{_sel(s)}[5m])"
    hits = f"rate(pynomaly_cache_hits_total{_sel(s)}[5m])"
    misses = f"rate(pynomaly_cache_misses_total{_sel(s)}[5m])"
    l1_l2_hits = f"rate(pynomaly_cache_hits_total{_sel(s, _L1_L2)}[5m])"
    l1_lookups = (
        f"rate(pynomaly_cache_hits_total{_sel(s, _L1)}[5m])"
        f" + ignoring(level) rate(pynomaly_cache_misses_total{_sel(s, _L1)}[5m])"
    )
    rules = [
        ("pynomaly:requests:rate5m", f"sum by ({BY}) ({requests})"),
        (
            "pynomaly:requests:rate5m_by_endpoint",
            f"sum by ({BY}, endpoint, status) ({requests})",
        ),
        (
            "pynomaly:errors:ratio_rate5m",
            f"sum by ({BY}) ({errors}) / sum by ({BY}) ({requests})",
        ),
        *(
            (
                f"pynomaly:request_duration_seconds:p{q}_5m",
                f"histogram_quantile(0.{q}, sum by ({BY}, le) ({buckets}))",
            )
            for q in ("50", "95", "99")
        ),
        (
            "pynomaly:cache_hit:ratio_rate5m_by_level",
            f"sum by ({BY}, level) ({hits}) / (sum by ({BY}, level) ({hits})"
            f" + sum by ({BY}, level) ({misses}))",
        ),
        (
            # A row's score comes from L1 or L2 or is computed: hits of either level over
            # the rows looked up in L1 (every scored row is).
            "pynomaly:score_cache_hit:ratio_rate5m",
            f"sum by ({BY}) ({l1_l2_hits}) / sum by ({BY}) ({l1_lookups})",
        ),
        (
            "pynomaly:rows_scored:rate5m",
            f"sum by ({BY}, model) (rate(pynomaly_rows_scored_total{_sel(s)}[5m]))",
        ),
        (
            "pynomaly:anomalies:ratio_rate30m",
            f"sum by ({BY}, model) (rate(pynomaly_anomalies_total{_sel(s)}[30m]))"
            f" / sum by ({BY}, model) (rate(pynomaly_rows_scored_total{_sel(s)}[30m]))",
        ),
        (
            "pynomaly:model_contamination:max",
            f"max by ({BY}, model) (pynomaly_model_contamination{_sel(s)})",
        ),
        (
            "pynomaly:db_pool:usage_ratio",
            # "> 0": detectors on the embedded store have no pool (max 0), hence no ratio.
            f"sum by ({BY}) (pynomaly_db_pool_connections{_sel(s, _IN_USE)})"
            f" / (sum by ({BY}) (pynomaly_db_pool_max_connections{_sel(s)}) > 0)",
        ),
    ]
    return [{"record": record, "expr": expr} for record, expr in rules]


def alerts(selector: str, deployment_selector: str) -> list[Alert]:
    """The alerting rules; ``deployment_selector`` narrows kube-state-metrics series."""
    s = selector
    detectors = (
        f"label_replace(max by ({BY}) (last_over_time(pynomaly_memory_usage_bytes{_sel(s)}[1h])),"
        ' "deployment", "$1", "detector", "(.+)")'
    )
    volume = f"pynomaly:rows_scored:rate5m > {ANOMALY_MIN_ROWS_PER_SECOND}"
    return [
        Alert(
            "PynomalyHighErrorRate",
            f"pynomaly:errors:ratio_rate5m{_sel(s)} > {ERROR_RATIO_MAX}",
            "5m",
            "critical",
            "Detector {{ $labels.namespace }}/{{ $labels.detector }} answers 5xx to "
            "{{ $value | humanizePercentage }} of requests",
            "More than 0.1 % of requests failed with a server error for 5 minutes. "
            "Look at the service logs and /readyz (store, database, redis).",
        ),
        Alert(
            "PynomalyHighLatencyP95",
            f"pynomaly:request_duration_seconds:p95_5m{_sel(s)} > {LATENCY_P95_MAX_SECONDS}",
            "10m",
            "warning",
            "Detector {{ $labels.namespace }}/{{ $labels.detector }} p95 latency is "
            "{{ $value | humanizeDuration }}",
            "p95 request latency above 500 ms for 10 minutes: replicas at their limit "
            "(check HPA desired vs max) or a slow model.",
        ),
        Alert(
            "PynomalyHighLatencyP99",
            f"pynomaly:request_duration_seconds:p99_5m{_sel(s)} > {LATENCY_P99_MAX_SECONDS}",
            "10m",
            "critical",
            "Detector {{ $labels.namespace }}/{{ $labels.detector }} p99 latency is "
            "{{ $value | humanizeDuration }}",
            "p99 request latency above 1 s for 10 minutes.",
        ),
        Alert(
            "PynomalyCacheHitRateLow",
            f"pynomaly:score_cache_hit:ratio_rate5m{_sel(s)} < {CACHE_HIT_RATIO_MIN}",
            "30m",
            "info",
            "Detector {{ $labels.namespace }}/{{ $labels.detector }} score cache hit rate "
            "is {{ $value | humanizePercentage }}",
            "Fewer than 90 % of scored rows came from L1/L2 for 30 minutes. Expected for "
            "traffic whose rows never repeat; otherwise check Redis and the cache TTLs.",
        ),
        Alert(
            "PynomalyDatabasePoolSaturated",
            f"pynomaly:db_pool:usage_ratio{_sel(s)} > {DB_POOL_USAGE_MAX}",
            "5m",
            "warning",
            "Detector {{ $labels.namespace }}/{{ $labels.detector }} uses "
            "{{ $value | humanizePercentage }} of its database connections",
            "More than 80 % of the pods' database pool connections are in use for 5 minutes: "
            "raise spec.postgres.pool.maxSize within the connection budget or find slow queries.",
        ),
        Alert(
            "PynomalyAnomalyRateHigh",
            f"pynomaly:anomalies:ratio_rate30m{_sel(s)}"
            f" > on ({BY}, model) (pynomaly:model_contamination:max * {ANOMALY_RATE_FACTOR})"
            f" and on ({BY}, model) ({volume})",
            "30m",
            "warning",
            "Model {{ $labels.model }} of {{ $labels.namespace }}/{{ $labels.detector }} "
            "flags {{ $value | humanizePercentage }} of rows",
            "The anomaly share is more than 3x the contamination the model was fitted with: "
            "a broken upstream (units, missing fields) or real drift. Refit on recent data if "
            "the inputs are right.",
        ),
        Alert(
            "PynomalyAnomalyRateLow",
            f"pynomaly:anomalies:ratio_rate30m{_sel(s)}"
            f" < on ({BY}, model) (pynomaly:model_contamination:max / {ANOMALY_RATE_FACTOR})"
            f" and on ({BY}, model) ({volume})",
            "30m",
            "warning",
            "Model {{ $labels.model }} of {{ $labels.namespace }}/{{ $labels.detector }} "
            "flags only {{ $value | humanizePercentage }} of rows",
            "The anomaly share is below a third of the fitted contamination: the model may "
            "have drifted, or inputs are constant/defaulted.",
        ),
        Alert(
            "PynomalyAnomalyLogLosing",
            f"sum by ({BY}, outcome) (rate(pynomaly_anomaly_log_records_total"
            f"{_sel(s, _LOST)}[5m])) > 0",
            "5m",
            "warning",
            "Detector {{ $labels.namespace }}/{{ $labels.detector }} anomaly log records "
            "{{ $labels.outcome }}",
            "Anomaly log records are being dropped (queue full: a slow database) or failed "
            "(database unavailable); they are lost.",
        ),
        Alert(
            "PynomalyL2CircuitOpen",
            f"max by ({BY}) (pynomaly_l2_circuit_open{_sel(s)}) > 0",
            "5m",
            "warning",
            "Detector {{ $labels.namespace }}/{{ $labels.detector }} bypasses Redis (L2)",
            "A worker's L2 circuit breaker has been open for 5 minutes: Redis is unreachable; "
            "scoring continues uncached.",
        ),
        Alert(
            "PynomalyDeclaredModelNotLoaded",
            f"min by ({BY}) (pynomaly_declared_model_loaded{_sel(s)}) < 1",
            "10m",
            "critical",
            "Detector {{ $labels.namespace }}/{{ $labels.detector }} has not loaded its "
            "declared model",
            "A pod has not loaded spec.model for 10 minutes (readiness fails): training data "
            "missing or the store unavailable; /readyz has the reason in `detail`.",
        ),
        Alert(
            "PynomalyPodsNotReady",
            f"(kube_deployment_spec_replicas{_sel(deployment_selector)}"
            f" - kube_deployment_status_replicas_ready{_sel(deployment_selector)}) > 0"
            f" and on (namespace, deployment) {detectors}",
            "10m",
            "warning",
            "Detector {{ $labels.namespace }}/{{ $labels.deployment }} has {{ $value }} "
            "pods not ready",
            "Fewer ready pods than desired for 10 minutes: kubectl describe pod -l "
            "app.kubernetes.io/instance={{ $labels.deployment }}.",
        ),
    ]


def rule_groups(selector: str, deployment_selector: str = "") -> list[dict[str, Any]]:
    """The ``spec.groups`` of a PrometheusRule (also a plain Prometheus rule file)."""
    return [
        {"name": "pynomaly.rules", "interval": "30s", "rules": recording_rules(selector)},
        {
            "name": "pynomaly.alerts",
            "rules": [
                {
                    "alert": alert.name,
                    "expr": alert.expr,
                    "for": alert.duration,
                    "labels": {"severity": alert.severity},
                    "annotations": {
                        "summary": alert.summary,
                        "description": alert.description,
                    },
                }
                for alert in alerts(selector, deployment_selector)
            ],
        },
    ]

"""The alert and recording rules: promtool parses them and runs unit tests on series whose
names and labels come from a real ``/metrics`` scrape of the service (``live_scrape``).

Each scenario starts from the same healthy traffic (every rule quiet, checked too) and
changes the series one alert watches, in the shape the real service produced it (the 503
series, the open circuit and the failed anomaly-log writes are all from the faulty scrape).
Values are per-minute increments chosen to sit clearly on one side of each threshold.
kube-state-metrics series are the one input not scraped: their names are listed here.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from pynomaly_operator import naming
from pynomaly_operator.builders.detector import monitoring
from pynomaly_operator.monitoring import rules
from tests.ops.conftest import CONTAMINATION, MODEL, ROOT, LiveScrape, Sample
from tests.ops.promql import metric_names

RULES_FILE = ROOT / "manifests" / "monitoring" / "rules.yaml"
TARGET = {
    # What the operator's ServiceMonitor/PodMonitor and Prometheus add to every series.
    "namespace": "payments",
    "detector": "payments",
    "pod": "payments-7d9f8-abcde",
    "job": "payments",
    "instance": "10.0.0.7:9090",
}
KSM = {"kube_deployment_spec_replicas", "kube_deployment_status_replicas_ready"}
PER_MINUTE = 600  # requests (and rows) per minute: 10/s
MINUTES = 90
EVAL_AT = "80m"


def test_committed_monitoring_manifests_are_current() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "monitoring-manifests.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def _expressions() -> list[str]:
    return [rule["expr"] for group in rules.rule_groups('detector!=""') for rule in group["rules"]]


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
def test_every_rule_reads_metrics_the_service_exposes(live_scrape: LiveScrape) -> None:
    recorded = {rule["record"] for rule in rules.recording_rules("")}
    scraped = live_scrape.names()
    missing = {
        (name, expr)
        for expr in _expressions()
        for name in metric_names(expr) - recorded - KSM
        if name not in scraped
    }
    assert not missing, f"rules read series no live /metrics scrape has: {sorted(missing)}"


def _check(promtool: Path, *args: str) -> str:
    done = subprocess.run(
        [str(promtool), *args], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.promtool
def test_promtool_checks_the_cluster_and_per_detector_rules(promtool: Path, tmp_path: Path) -> None:
    _check(promtool, "check", "rules", str(RULES_FILE))
    rule = monitoring.prometheus_rule(naming.Names("payments", "payments"))
    per_detector = tmp_path / "per-detector.yaml"
    per_detector.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    _check(promtool, "check", "rules", str(per_detector))


# ---- unit tests ----------------------------------------------------------------------------

Values = Callable[[Sample], str | None]


def _number(value: float) -> str:
    # promtool's series notation: no exponents (1e+08+0x90 would not parse as meant).
    return f"{value:.9f}".rstrip("0").rstrip(".") or "0"


def _increase(per_minute: float) -> str:
    return f"0+{_number(per_minute)}x{MINUTES}"


def _constant(value: float) -> str:
    return f"{_number(value)}+0x{MINUTES}"


def _healthy(sample: Sample, *, observe_at: float = 0.01) -> str:
    """Steady traffic inside every target; ``observe_at`` is where requests' latencies fall."""
    name, labels = sample.name, sample.labels
    if name == "pynomaly_requests_total":
        return _increase(0 if labels["status"].startswith("5") else PER_MINUTE)
    if name == "pynomaly_request_duration_seconds_bucket":
        return _increase(PER_MINUTE if float(labels["le"]) >= observe_at else 0)
    if name == "pynomaly_request_duration_seconds_count":
        return _increase(PER_MINUTE)
    if name == "pynomaly_request_duration_seconds_sum":
        return _increase(PER_MINUTE * observe_at)
    if name == "pynomaly_cache_hits_total":
        return _increase(
            {"l1": 0.95 * PER_MINUTE, "l2": 0.05 * PER_MINUTE}.get(labels["level"], 60)
        )
    if name == "pynomaly_cache_misses_total":
        return _increase(0.05 * PER_MINUTE if labels["level"] == "l1" else 0)
    if name == "pynomaly_rows_scored_total":
        return _increase(PER_MINUTE)
    if name == "pynomaly_anomalies_total":
        return _increase(PER_MINUTE * float(CONTAMINATION))
    if name == "pynomaly_anomaly_log_records_total":
        return _increase(PER_MINUTE * float(CONTAMINATION) if labels["outcome"] == "written" else 0)
    if name in ("pynomaly_cache_errors_total", "pynomaly_rate_limited_total"):
        return _increase(0)
    if name == "pynomaly_store_errors_total":
        return _increase(0)
    if name == "pynomaly_l2_circuit_open":
        return _constant(0)
    if name == "pynomaly_declared_model_loaded":
        return _constant(1)
    if name == "pynomaly_db_pool_connections":
        return _constant(2 if labels["state"] == "in_use" else 3)
    if name == "pynomaly_db_pool_max_connections":
        return _constant(10)
    if name.endswith(("_total", "_bucket", "_count", "_sum")):
        return _increase(60)
    if name.endswith("_created"):
        return None  # creation timestamps: not series Prometheus keeps by default
    return _constant(sample.value)  # gauges as scraped (contamination, versions, memory)


def _scenario(**overrides: Callable[[Sample], str | None]) -> Values:
    def values(sample: Sample) -> str | None:
        override = overrides.get(sample.name)
        if override is not None:
            found = override(sample)
            if found is not None:
                return found
        return _healthy(sample)

    return values


def _series(labels: dict[str, str], name: str) -> str:
    body = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    return f"{name}{{{body}}}"


def _input_series(scrape: LiveScrape, values: Values, *, ready: int = 3) -> list[dict[str, str]]:
    series = []
    for sample in scrape.samples():
        found = values(sample)
        if found is not None:
            series.append(
                {"series": _series({**sample.labels, **TARGET}, sample.name), "values": found}
            )
    deployment = {"namespace": TARGET["namespace"], "deployment": TARGET["detector"]}
    series.append(
        {"series": _series(deployment, "kube_deployment_spec_replicas"), "values": _constant(3)}
    )
    series.append(
        {
            "series": _series(deployment, "kube_deployment_status_replicas_ready"),
            "values": _constant(ready),
        }
    )
    return series


ALERTS = [alert.name for alert in rules.alerts("", "")]
DETECTOR = {"namespace": TARGET["namespace"], "detector": TARGET["detector"]}


def _labels(name: str) -> dict[str, str]:
    return {"severity": next(a.severity for a in rules.alerts("", "") if a.name == name)}


def _test_group(
    scrape: LiveScrape, values: Values, firing: dict[str, list[dict[str, str]]], *, ready: int = 3
) -> dict[str, Any]:
    return {
        "interval": "1m",
        "input_series": _input_series(scrape, values, ready=ready),
        "alert_rule_test": [
            {
                "eval_time": EVAL_AT,
                "alertname": name,
                "exp_alerts": [
                    {"exp_labels": {**_labels(name), **labels}} for labels in firing.get(name, [])
                ],
            }
            for name in ALERTS
        ],
    }


def _only_5xx(per_minute: float) -> Callable[[Sample], str | None]:
    return lambda s: _increase(per_minute) if s.labels["status"].startswith("5") else None


def _scenarios(scrape: LiveScrape) -> dict[str, dict[str, Any]]:
    model = {**DETECTOR, "model": MODEL}
    return {
        "healthy": _test_group(scrape, _healthy, {}),
        "errors": _test_group(
            scrape,
            _scenario(pynomaly_requests_total=_only_5xx(PER_MINUTE / 2)),
            {"PynomalyHighErrorRate": [DETECTOR]},
        ),
        "p95": _test_group(
            scrape,
            lambda s: _healthy(s, observe_at=1.0),
            {"PynomalyHighLatencyP95": [DETECTOR]},
        ),
        "p99": _test_group(
            scrape,
            lambda s: _healthy(s, observe_at=2.5),
            {"PynomalyHighLatencyP95": [DETECTOR], "PynomalyHighLatencyP99": [DETECTOR]},
        ),
        "cache": _test_group(
            scrape,
            _scenario(
                pynomaly_cache_hits_total=lambda s: (
                    _increase(PER_MINUTE / 2) if s.labels["level"] == "l1" else _increase(0)
                ),
                pynomaly_cache_misses_total=lambda s: (
                    _increase(PER_MINUTE / 2) if s.labels["level"] == "l1" else None
                ),
            ),
            {"PynomalyCacheHitRateLow": [DETECTOR]},
        ),
        "db-pool": _test_group(
            scrape,
            _scenario(
                pynomaly_db_pool_connections=lambda s: _constant(
                    9 if s.labels["state"] == "in_use" else 1
                )
            ),
            {"PynomalyDatabasePoolSaturated": [DETECTOR]},
        ),
        "anomalies-high": _test_group(
            scrape,
            _scenario(
                pynomaly_anomalies_total=lambda s: _increase(PER_MINUTE * float(CONTAMINATION) * 5)
            ),
            {"PynomalyAnomalyRateHigh": [model]},
        ),
        "anomalies-low": _test_group(
            scrape,
            _scenario(pynomaly_anomalies_total=lambda s: _increase(0)),
            {"PynomalyAnomalyRateLow": [model]},
        ),
        "anomaly-log": _test_group(
            scrape,
            _scenario(
                pynomaly_anomaly_log_records_total=lambda s: (
                    None if s.labels["outcome"] == "written" else _increase(5)
                )
            ),
            {
                "PynomalyAnomalyLogLosing": [
                    {**DETECTOR, "outcome": "dropped"},
                    {**DETECTOR, "outcome": "failed"},
                ]
            },
        ),
        "l2-circuit": _test_group(
            scrape,
            _scenario(pynomaly_l2_circuit_open=lambda s: _constant(1)),
            {"PynomalyL2CircuitOpen": [DETECTOR]},
        ),
        "declared-model": _test_group(
            scrape,
            _scenario(pynomaly_declared_model_loaded=lambda s: _constant(0)),
            {"PynomalyDeclaredModelNotLoaded": [DETECTOR]},
        ),
        "pods-not-ready": _test_group(
            scrape,
            _healthy,
            {
                "PynomalyPodsNotReady": [
                    {"namespace": TARGET["namespace"], "deployment": TARGET["detector"]}
                ]
            },
            ready=1,
        ),
    }


def _without_annotations(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # promtool compares annotations exactly; ours render $value, so the unit tests use the
    # committed rules minus annotations (`promtool check rules` validates the templates).
    return [
        {
            **group,
            "rules": [{k: v for k, v in r.items() if k != "annotations"} for r in group["rules"]],
        }
        for group in groups
    ]


@pytest.mark.promtool
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
def test_promtool_unit_tests_on_live_series(
    promtool: Path, live_scrape: LiveScrape, tmp_path: Path
) -> None:
    committed = yaml.safe_load(RULES_FILE.read_text())
    assert committed["groups"] == rules.rule_groups('detector!=""')
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": _without_annotations(committed["groups"])}))
    scenarios = _scenarios(live_scrape)
    # Every scenario's special series came from the scrapes, not from this file.
    shapes = {(s.name, s.labels.get("status", "")[:1]) for s in live_scrape.samples()}
    assert ("pynomaly_requests_total", "5") in shapes, "the faulty scrape has no 5xx series"
    tests = tmp_path / "rules_test.yaml"
    tests.write_text(
        yaml.safe_dump(
            {
                "rule_files": [rules_file.name],
                "evaluation_interval": "1m",
                "tests": [{"name": name, **group} for name, group in scenarios.items()],
            },
            sort_keys=False,
        )
    )
    out = _check(promtool, "test", "rules", str(tests))
    assert "SUCCESS" in out

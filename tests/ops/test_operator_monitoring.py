"""Operator side of operations: spec.monitoring objects, autoscaling load metrics, Events.

The rendered objects are also golden files (tests/operator/golden/operations/); these tests
state the behaviour users rely on.
"""

from __future__ import annotations

from typing import Any

import pytest

from pynomaly_operator import naming
from pynomaly_operator.builders import desired
from pynomaly_operator.builders.detector import horizontal_pod_autoscaler, monitoring
from pynomaly_operator.specs import detector as specs
from pynomaly_operator.status import events


def parse(spec: dict[str, Any]) -> specs.AnomalyDetector:
    return specs.AnomalyDetector.from_body(
        {"metadata": {"name": "fraud", "namespace": "payments", "generation": 1}, "spec": spec}
    )


NAMES = naming.Names(instance="fraud", namespace="payments")


def kinds(spec: dict[str, Any]) -> list[str]:
    return [obj["kind"] for obj in desired.objects(parse(spec), NAMES)]


def test_monitoring_objects_only_when_asked() -> None:
    assert not set(kinds({})) & monitoring.KINDS
    assert "ServiceMonitor" in kinds({"monitoring": {"enabled": True}})
    assert set(kinds({"monitoring": {"enabled": True, "kind": "PodMonitor", "rules": True}})) & (
        monitoring.KINDS
    ) == {"PodMonitor", "PrometheusRule"}
    assert "PrometheusRule" in kinds({"monitoring": {"rules": True}})


def test_scrape_object_targets_the_metrics_port_and_adds_the_detector_label() -> None:
    scrape = monitoring.service_monitor(NAMES)
    endpoint = scrape["spec"]["endpoints"][0]
    assert endpoint["port"] == "metrics"
    assert endpoint["relabelings"][0]["targetLabel"] == "detector"
    assert scrape["spec"]["selector"]["matchLabels"] == NAMES.selector(naming.COMPONENT_DETECTOR)


def test_per_detector_rules_select_only_that_detector() -> None:
    rule = monitoring.prometheus_rule(NAMES)
    exprs = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
    assert all('namespace="payments",detector="fraud"' in e or "deployment" in e for e in exprs)
    assert any('deployment="fraud"' in e for e in exprs)


def test_load_metrics_keep_cpu_memory_and_behavior() -> None:
    detector = parse(
        {"autoscaling": {"metrics": [{"type": "InFlightRequests", "targetAverageValue": "32"}]}}
    )
    hpa = horizontal_pod_autoscaler.horizontal_pod_autoscaler(detector, NAMES)
    assert hpa is not None
    metrics = hpa["spec"]["metrics"]
    assert [m["type"] for m in metrics] == ["Resource", "Resource", "Pods"]
    assert metrics[2]["pods"] == {
        "metric": {"name": "pynomaly_in_flight_requests"},
        "target": {"type": "AverageValue", "averageValue": "32"},
    }
    assert hpa["spec"]["behavior"]["scaleDown"]["policies"][0]["value"] == 10


def test_load_metric_type_is_validated() -> None:
    with pytest.raises(ValueError, match="RequestsPerSecond"):
        parse({"autoscaling": {"metrics": [{"type": "Queue", "targetAverageValue": "1"}]}})


def _status(phase: str, **stores: str) -> dict[str, Any]:
    conditions = [{"type": "Ready", "status": "True", "message": "serving"}]
    conditions += [
        {
            "type": name,
            "status": value,
            "reason": "Ready" if value == "True" else "Progressing",
            "message": "1/1 ready" if value == "True" else "0/1 ready",
        }
        for name, value in stores.items()
    ]
    conditions.append(
        {"type": "Degraded", "status": "True", "reason": "ApplyFailed", "message": "no"}
    )
    return {"phase": phase, "conditions": conditions}


def test_events_for_phase_changes_and_store_failovers() -> None:
    first = events.transitions(None, _status("Pending"))
    assert [(e.type, e.reason) for e in first] == [("Normal", "PhaseChanged")]
    assert first[0].message.startswith("None -> Pending")

    ready = _status("Ready", RedisReady="True", DatabaseReady="True")
    failover = events.transitions(ready, _status("Ready", RedisReady="False", DatabaseReady="True"))
    assert [(e.type, e.reason) for e in failover] == [("Warning", "StoreFailover")]
    assert failover[0].message.startswith("RedisReady True -> False (Progressing)")

    back = events.transitions(
        _status("Ready", RedisReady="False"), _status("Ready", RedisReady="True")
    )
    assert [(e.type, e.reason) for e in back] == [("Normal", "StoreRecovered")]

    degraded = events.transitions(
        ready, _status("Degraded", RedisReady="True", DatabaseReady="True")
    )
    assert [(e.type, e.reason) for e in degraded] == [("Warning", "PhaseDegraded")]
    assert "ApplyFailed" in degraded[0].message

    assert events.transitions(ready, ready) == []

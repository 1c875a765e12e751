"""``spec.monitoring`` turned off removes what the operator created, and only that (marker
``cluster``).

The Prometheus Operator is not installed here; its three kinds are served by minimal CRDs
(the operator only needs the API server to store them). A PodMonitor of the same name made
by hand (no owner reference) must survive: the operator deletes only objects its resource
controls.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.operator.test_operator_cluster import BASE_SPEC, Kube, Operator, ready, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

PLURALS = {"ServiceMonitor": "servicemonitors", "PodMonitor": "podmonitors"}
PLURALS["PrometheusRule"] = "prometheusrules"


def _crd(kind: str, plural: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


@pytest.fixture
def monitoring_crds(kube_cluster: Any) -> Iterator[None]:
    for kind, plural in PLURALS.items():
        kube_cluster.kubectl("apply", "-f", "-", input=_yaml(_crd(kind, plural)))
    kube_cluster.wait_established(*(f"{p}.monitoring.coreos.com" for p in PLURALS.values()))
    try:
        yield
    finally:  # other tests expect the kinds to be unserved (MonitoringUnavailable)
        for plural in PLURALS.values():
            kube_cluster.kubectl(
                "delete", "crd", f"{plural}.monitoring.coreos.com", "--wait=false", check=False
            )


def _yaml(body: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(body)


def test_monitoring_off_deletes_the_owned_monitoring_objects_only(
    kube: Kube, monitoring_crds: None, operator: Operator
) -> None:
    monitored = {
        **BASE_SPEC,
        "monitoring": {"enabled": True, "kind": "ServiceMonitor", "rules": True},
    }
    kube.apply(kube.detector("fraud", monitored))
    ready(kube, "fraud", timeout=90)
    wait_for("ServiceMonitor", lambda: kube.get("servicemonitor", "fraud"), timeout=30)
    wait_for("PrometheusRule", lambda: kube.get("prometheusrule", "fraud"), timeout=30)
    # Someone's own PodMonitor with the detector's name: not the operator's to delete.
    kube.apply(
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PodMonitor",
            "metadata": {"name": "fraud", "namespace": kube.namespace},
            "spec": {"podMetricsEndpoints": [{"port": "metrics"}]},
        }
    )

    kube.apply(kube.detector("fraud", {**BASE_SPEC, "monitoring": {"enabled": False}}))
    wait_for(
        "ServiceMonitor and PrometheusRule deleted",
        lambda: (
            kube.get("servicemonitor", "fraud") is None
            and kube.get("prometheusrule", "fraud") is None
        ),
        timeout=30,
    )
    assert kube.get("podmonitor", "fraud") is not None
    body = ready(kube, "fraud", timeout=60)
    assert body["status"]["observedGeneration"] == 2

    # Switching the scrape kind removes the other one as well (rules stay off).
    kube.run("delete", "podmonitor", "fraud")
    kube.apply(
        kube.detector("fraud", {**BASE_SPEC, "monitoring": {"enabled": True, "kind": "PodMonitor"}})
    )
    wait_for("PodMonitor created", lambda: kube.get("podmonitor", "fraud"), timeout=30)
    kube.apply(kube.detector("fraud", monitored))
    wait_for("ServiceMonitor back", lambda: kube.get("servicemonitor", "fraud"), timeout=30)
    wait_for("PodMonitor deleted", lambda: kube.get("podmonitor", "fraud") is None, timeout=30)


def test_without_the_prometheus_operator_pruning_costs_one_lookup_per_kind(
    kube: Kube, operator: Operator
) -> None:
    """The kinds are not served: the first lookup's 404 says so (no object named in it), and
    the other resources are spared the same GETs. One asking for monitoring is Ready too,
    with a Warning Event saying what is missing."""
    kube.apply(kube.detector("one", {**BASE_SPEC, "monitoring": {"enabled": True}}))
    for name in ("two", "three"):
        kube.apply(kube.detector(name))
    for name in ("one", "two", "three"):
        ready(kube, name, timeout=90)
    events = kube.run("get", "events", "--field-selector", "involvedObject.name=one", "-o", "json")
    reasons = {e["reason"] for e in json.loads(events.stdout)["items"]}
    assert "MonitoringUnavailable" in reasons, reasons
    lookups = [
        line
        for line in operator.log.read_text(errors="replace").splitlines()
        if "HTTP Request: GET" in line and "/apis/monitoring.coreos.com/" in line
    ]
    assert 0 < len(lookups) <= 3, lookups

"""Golden-file tests of the detector builders (``UPDATE_GOLDEN=1`` rewrites the files).

Each builder is rendered for two specs (all defaults; everything overridden) and compared
with ``tests/operator/golden/<case>/<Kind>.yaml``. Builders must also leave their input
untouched and never emit a secret value in plain env.
"""

from __future__ import annotations

import pathlib
from typing import Any

import pytest
import yaml

from pynomaly_operator import naming, values
from pynomaly_operator.builders import detector as detector_builders
from pynomaly_operator.builders.detector import (
    config_map,
    deployment,
    horizontal_pod_autoscaler,
    network_policy,
    pod_disruption_budget,
    signing_key,
)
from pynomaly_operator.specs import detector as specs
from tests.support import golden

GOLDEN = pathlib.Path(__file__).parent / "golden"
UPDATE = golden.UPDATE

CASES: dict[str, dict[str, Any]] = {
    "defaults": {"redis": {"mode": "none"}, "postgres": {"mode": "managed"}},
    "custom": {
        "image": "registry.example/pynomaly/detector:9.9",
        "model": {
            "name": "fraud-model",
            "algorithm": "LOF",
            "parameters": {"n_neighbors": 35},
            "contamination": 0.02,
            "training": {"configMapRef": {"name": "fraud-training", "key": "data.csv"}},
        },
        "resources": {
            "requests": {"cpu": "1", "memory": "3Gi"},
            "limits": {"cpu": "4", "memory": "8Gi"},
        },
        "placement": {"mode": "preferred", "instanceTypes": ["c5.4xlarge"], "zoneSpread": False},
        "autoscaling": {
            "enabled": False,
            "minReplicas": 1,
            "maxReplicas": 4,
            "behavior": {"scaleUp": {"stabilizationWindowSeconds": 0}},
        },
        "server": {"workers": 2, "maxRequests": 0, "maxRequestsJitter": 0},
        "cache": {"memory": {"maxSize": 10}, "warmup": False},
        "rateLimit": {"requestsPerSecond": 100, "burst": 20},
        "logLevel": "debug",
        "corsOrigins": ["https://a.example"],
        "redis": {"mode": "none"},
        "postgres": {
            "mode": "external",
            "external": {"dsnSecretRef": {"name": "pg", "key": "dsn"}},
        },
    },
}


def parse(spec: dict[str, Any], name: str = "fraud") -> specs.AnomalyDetector:
    return specs.AnomalyDetector.from_body(
        {"metadata": {"name": name, "namespace": "payments", "generation": 2}, "spec": spec}
    )


def rendered(case: str) -> list[dict[str, Any]]:
    detector = parse(CASES[case])
    names = naming.Names(instance=detector.name, namespace=detector.namespace)
    return [
        signing_key.secret(names, key="not-a-real-key"),
        *detector_builders.before_stores(detector, names),
        *detector_builders.after_stores(
            detector, names, store_env=[{"name": "PYNOMALY_REDIS_MODE", "value": "none"}]
        ),
    ]


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    mismatched = []
    for obj in rendered(case):
        path = GOLDEN / case / f"{obj['kind']}.yaml"
        text = yaml.safe_dump(obj, sort_keys=False, width=100)
        if UPDATE:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        elif not path.exists() or path.read_text() != text:
            mismatched.append(str(path.relative_to(GOLDEN)))
    assert not mismatched, f"golden files differ (UPDATE_GOLDEN=1 to accept): {mismatched}"


def test_builders_do_not_mutate_their_input() -> None:
    detector = parse(CASES["custom"])
    before = detector.model_dump()
    rendered("custom")
    assert detector.model_dump() == before


def test_no_secret_value_in_plain_env() -> None:
    for case in CASES:
        for obj in rendered(case):
            if obj["kind"] != "Deployment":
                continue
            container = obj["spec"]["template"]["spec"]["containers"][0]
            for entry in container["env"]:
                if any(word in entry["name"] for word in ("PASSWORD", "KEY", "SECRET")):
                    assert "secretKeyRef" in entry.get("valueFrom", {}), entry


def test_defaults_follow_the_performance_guide() -> None:
    detector = parse({})
    names = naming.Names(instance="fraud", namespace="payments")
    dep = deployment.deployment(detector, names, config_hash="h")
    pod = dep["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"] == {
        "requests": {"cpu": "750m", "memory": "2Gi"},
        "limits": {"cpu": "2", "memory": "6Gi"},
    }
    term = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["nodeSelectorTerms"][0]["matchExpressions"][0] == {
        "key": "node.kubernetes.io/instance-type",
        "operator": "In",
        "values": ["c5.2xlarge", "c5.4xlarge"],
    }
    assert "replicas" not in dep["spec"]  # the HPA owns it
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    hpa = horizontal_pod_autoscaler.horizontal_pod_autoscaler(detector, names)
    assert hpa is not None
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 20)
    targets = [m["resource"]["target"]["averageUtilization"] for m in hpa["spec"]["metrics"]]
    assert targets == [70, 80]
    behavior = hpa["spec"]["behavior"]
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 60
    assert behavior["scaleUp"]["policies"] == [
        {"type": "Percent", "value": 50, "periodSeconds": 15}
    ]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert behavior["scaleDown"]["policies"] == [
        {"type": "Percent", "value": 10, "periodSeconds": 60}
    ]
    pdb = pod_disruption_budget.pod_disruption_budget(detector, names)
    assert pdb["spec"]["minAvailable"] == 2


def test_config_change_changes_the_pod_template_hash() -> None:
    a = values.short_hash(config_map.settings(parse({})))
    b = values.short_hash(config_map.settings(parse({"server": {"workers": 8}})))
    assert a != b


def test_network_policy_egress_follows_the_stores() -> None:
    names = naming.Names(instance="fraud", namespace="payments")
    none = network_policy.egress_rules(parse({"redis": {"mode": "none"}}), names)
    assert len(none) == 2  # DNS + PgBouncer (managed postgres by default)
    sentinel = network_policy.egress_rules(parse({"redis": {"mode": "sentinel"}}), names)
    ports = [rule["ports"][0]["port"] for rule in sentinel]
    assert ports == [53, 6379, 26379, 6432]


def test_single_replica_pdb_never_blocks_drains() -> None:
    names = naming.Names(instance="fraud", namespace="payments")
    detector = parse({"autoscaling": {"minReplicas": 1}})
    assert (
        pod_disruption_budget.pod_disruption_budget(detector, names)["spec"]["maxUnavailable"] == 1
    )

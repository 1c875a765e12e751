"""Golden-file tests of the detector builders (``UPDATE_GOLDEN=1`` rewrites the files).

Each builder is rendered for two specs (all defaults; everything overridden) and compared
with ``tests/operator/golden/<case>/<Kind>.yaml``. Builders must also leave their input
untouched and never emit a secret value in plain env.
"""

from __future__ import annotations

import pathlib
from typing import Any

import pydantic
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
    "operations": {
        "redis": {"mode": "none"},
        "autoscaling": {
            "metrics": [
                {"type": "RequestsPerSecond", "targetAverageValue": "200"},
                {"type": "InFlightRequests", "targetAverageValue": "32"},
            ]
        },
        "monitoring": {"enabled": True, "kind": "PodMonitor", "rules": True},
    },
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
        "server": {"workers": 2, "maxRequests": 0, "maxRequestsJitter": 0, "grpcPort": 9000},
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
        signing_key.secret(names, key="not-a-real-key", retained=signing_key.retained(detector)),
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


@pytest.mark.parametrize(
    ("postgres", "kept"),
    [
        ({"mode": "managed"}, True),  # whenDeleted: Retain by default
        ({"mode": "managed", "persistence": {"whenDeleted": "Delete"}}, False),
        ({"mode": "managed", "persistence": {"enabled": False}}, False),
        ({"mode": "external", "external": {"dsnSecretRef": {"name": "pg", "key": "dsn"}}}, True),
    ],
)
def test_signing_key_lives_as_long_as_the_model_data(postgres: dict[str, Any], kept: bool) -> None:
    detector = parse({"postgres": postgres})
    assert signing_key.retained(detector) is kept


def _ingress(spec: dict[str, Any]) -> list[dict[str, Any]]:
    names = naming.Names(instance="fraud", namespace="payments")
    return list(network_policy.network_policy(parse(spec), names)["spec"]["ingress"])


def test_by_default_only_this_namespace_scores_and_only_monitoring_scrapes() -> None:
    scoring, operator, metrics = _ingress({})
    assert scoring == {
        "from": [{"podSelector": {"matchLabels": {}}}],  # no namespaceSelector: this namespace
        "ports": [{"protocol": "TCP", "port": 8000}],
    }
    assert operator["ports"] == [{"protocol": "TCP", "port": 8000}]  # reads the served version
    assert operator["from"] == [
        {
            "namespaceSelector": {
                "matchLabels": {"kubernetes.io/metadata.name": "pynomaly-system"}
            },
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "pynomaly-operator"}},
        }
    ]
    assert metrics == {
        "from": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
        ],
        "ports": [{"protocol": "TCP", "port": 9090}],
    }


def test_allowed_clients_are_rendered_and_an_empty_list_admits_nobody() -> None:
    team = {"namespaceSelector": {"matchLabels": {"team": "fraud"}}}
    app = {"podSelector": {"matchLabels": {"app": "checkout"}}}
    scoring, _, _ = _ingress({"network": {"allowedClients": [team, app]}})
    assert scoring["from"] == [team, app]
    # A rule without peers would admit every source: an empty list renders no scoring rule.
    rules = _ingress({"network": {"allowedClients": [], "metricsNamespaces": []}})
    assert [rule["from"][0].get("podSelector") for rule in rules] == [
        {"matchLabels": {"app.kubernetes.io/name": "pynomaly-operator"}}  # the operator only
    ]


def test_api_token_is_a_generated_secret_mounted_as_the_token_file() -> None:
    from pynomaly_operator.builders import desired as desired_state

    detector = parse({})
    names = naming.Names(instance="fraud", namespace="payments")
    plan = desired_state.desired(detector, names, {}, token=lambda: "t0ken")
    (token_secret,) = [s for s in plan.secrets if s["metadata"]["name"] == "fraud-api-token"]
    assert token_secret["data"] == {"token": "dDBrZW4K"}  # base64 of "t0ken\n"
    (dep,) = [
        o for o in plan.objects if (o["kind"], o["metadata"]["name"]) == ("Deployment", "fraud")
    ]
    pod = dep["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PYNOMALY_API_TOKEN_FILE"] == "/etc/pynomaly/api-token/token"
    assert "t0ken" not in str(container["env"])  # never a plain env value
    mount = next(m for m in container["volumeMounts"] if m["name"] == "api-token")
    volume = next(v for v in pod["volumes"] if v["name"] == "api-token")
    assert mount["mountPath"] + "/token" == env["PYNOMALY_API_TOKEN_FILE"]
    assert volume["secret"]["secretName"] == "fraud-api-token"


@pytest.mark.parametrize(("drain", "timeout"), [(0, 1), (10, 30), (120, 600)])
def test_grace_period_covers_drain_longest_request_and_shutdown(drain: int, timeout: int) -> None:
    """Killed only after: the drain window, the slowest request, then pool close + log flush."""
    names = naming.Names(instance="fraud", namespace="payments")
    detector = parse({"server": {"drainSeconds": drain, "timeoutSeconds": timeout}})
    dep = deployment.deployment(detector, names, config_hash="h")
    pod = dep["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == drain + timeout + 10
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["PYNOMALY_DRAIN_SECONDS"] == str(drain)
    assert "lifecycle" not in pod["containers"][0]  # the service drains on SIGTERM itself


def test_grpc_port_is_refused_where_http_or_metrics_listen() -> None:
    for port in (8000, 9090):
        with pytest.raises(pydantic.ValidationError, match="grpcPort must differ"):
            parse({"server": {"grpcPort": port}})

"""Store pods are restricted-profile and fenced by NetworkPolicies (pure: builders in, dicts out).

The API server's own Pod Security admission of the same pod templates is exercised in
test_stores_cluster.py; checkov runs over the rendered samples in tests/install.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pynomaly_operator import naming
from pynomaly_operator.builders import desired as desired_state
from pynomaly_operator.builders import pods
from pynomaly_operator.builders.detector import network_policy
from pynomaly_operator.specs import base
from pynomaly_operator.specs.detector import AnomalyDetector
from pynomaly_operator.specs.redis import ComputeResources

NAMES = naming.Names(instance="fraud", namespace="payments")
MODES = ["sentinel", "cluster", "standalone"]
WORKLOADS = {"StatefulSet", "Deployment", "Job"}


def detector(spec: dict[str, Any] | None = None) -> AnomalyDetector:
    return AnomalyDetector.from_body(
        {"metadata": {"name": "fraud", "namespace": "payments"}, "spec": spec or {}}
    )


def pod_templates(d: AnomalyDetector) -> Iterator[tuple[str, dict[str, Any]]]:
    for obj in desired_state.store_objects(d, NAMES):
        if obj["kind"] in WORKLOADS:
            yield obj["metadata"]["name"], obj["spec"]["template"]


@pytest.mark.parametrize("mode", MODES)
def test_every_store_pod_is_restricted(mode: str) -> None:
    d = detector({"redis": {"mode": mode}})
    templates = dict(pod_templates(d))
    assert len(templates) >= 3  # redis, postgres, pgbouncer (+ sentinels or the Job)
    for name, template in templates.items():
        pod = template["spec"]
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True, name
        assert context["runAsUser"] >= 10000, name
        assert context["runAsGroup"] >= 10000, name
        assert context["fsGroup"] == context["runAsGroup"], name
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        volumes = {v["name"] for v in pod["volumes"]}
        claims = {
            c["metadata"]["name"]
            for o in desired_state.store_objects(d, NAMES)
            if o["metadata"]["name"] == name and o["kind"] == "StatefulSet"
            for c in o["spec"].get("volumeClaimTemplates", [])
        }
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["capabilities"] == {"drop": ["ALL"]}, name
            for section in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][section]), name
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert "/tmp" in mounts, name
            assert set(mounts.values()) <= volumes | claims, name


def test_postgres_writable_paths_are_volumes() -> None:
    pg = dict(pod_templates(detector()))[NAMES.postgres]["spec"]["containers"][0]
    paths = {m["mountPath"] for m in pg["volumeMounts"]}
    assert {"/var/run/postgresql", "/tmp", "/dev/shm", "/var/lib/postgresql/data"} <= paths


def test_data_pods_skip_recursive_chown() -> None:
    templates = dict(pod_templates(detector()))
    for name in (NAMES.redis, NAMES.postgres):
        context = templates[name]["spec"]["securityContext"]
        assert context["fsGroupChangePolicy"] == "OnRootMismatch"


def test_resources_fill_missing_keys_from_defaults() -> None:
    defaults = ComputeResources(
        requests={"cpu": "250m", "memory": "2560Mi"}, limits={"cpu": "2", "memory": "3Gi"}
    )
    assert pods.resources(ComputeResources(), defaults) == {
        "requests": {"cpu": "250m", "memory": "2560Mi"},
        "limits": {"cpu": "2", "memory": "3Gi"},
    }
    # A request above the default limit raises that limit (never an invalid pod) ...
    raised = pods.resources(ComputeResources(requests={"memory": "8Gi"}), defaults)
    assert raised["limits"]["memory"] == "8Gi"
    # ... and a limit below the default request lowers that request.
    lowered = pods.resources(ComputeResources(limits={"cpu": "100m"}), defaults)
    assert lowered["requests"]["cpu"] == "100m"
    both = pods.resources(
        ComputeResources(requests={"cpu": "1"}, limits={"cpu": "4", "memory": "4Gi"}), defaults
    )
    assert both == {
        "requests": {"cpu": "1", "memory": "2560Mi"},
        "limits": {"cpu": "4", "memory": "4Gi"},
    }


def test_spec_resources_reach_the_containers() -> None:
    d = detector(
        {"redis": {"sentinel": {"resources": {"limits": {"cpu": "500m"}}}}},
    )
    sentinel = dict(pod_templates(d))[NAMES.redis_sentinel]["spec"]["containers"][0]
    assert sentinel["resources"]["limits"] == {"cpu": "500m", "memory": "128Mi"}


def test_quantities() -> None:
    assert base.quantity("250m") == base.quantity("0.25")
    assert base.quantity("1Gi") == base.quantity("1073741824")
    assert base.quantity("1e3") is None  # exponent notation: left alone


# --- NetworkPolicies: evaluated like a CNI would -----------------------------------------


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _rule_allows(rule: dict[str, Any], peer_key: str, peer: dict[str, str], port: int) -> bool:
    peers = rule.get(peer_key)
    if peers is not None and not any(
        _selects(p["podSelector"]["matchLabels"], peer) for p in peers
    ):
        return False
    ports = rule.get("ports")
    return ports is None or any(p["port"] == port for p in ports)


def allowed(
    policies: list[dict[str, Any]], src: dict[str, str], dst: dict[str, str], port: int
) -> bool:
    """TCP ``src -> dst:port`` under Kubernetes NetworkPolicy semantics (same namespace)."""
    for pod, direction, peer_key, peer in (
        (src, "Egress", "to", dst),
        (dst, "Ingress", "from", src),
    ):
        selecting = [p for p in policies if _selects(p["spec"]["podSelector"]["matchLabels"], pod)]
        if not selecting:
            continue  # not isolated in this direction
        rules = [r for p in selecting for r in p["spec"].get(direction.lower(), [])]
        if not any(_rule_allows(r, peer_key, peer, port) for r in rules):
            return False
    return True


def policies_and_pods(
    mode: str,
) -> tuple[list[dict[str, Any]], dict[str, dict[str, str]]]:
    d = detector({"redis": {"mode": mode}})
    policies = [o for o in desired_state.store_objects(d, NAMES) if o["kind"] == "NetworkPolicy"]
    policies.append(network_policy.network_policy(d, NAMES))
    pods = {
        component: NAMES.labels(component)
        for component in (
            naming.COMPONENT_DETECTOR,
            naming.COMPONENT_REDIS,
            naming.COMPONENT_SENTINEL,
            naming.COMPONENT_POSTGRES,
            naming.COMPONENT_PGBOUNCER,
            "redis-bootstrap",
        )
    }
    pods["stranger"] = {"app": "something-else"}
    return policies, pods


@pytest.mark.parametrize("mode", MODES)
def test_every_store_pod_is_selected_by_a_policy(mode: str) -> None:
    d = detector({"redis": {"mode": mode}})
    policies = [o for o in desired_state.store_objects(d, NAMES) if o["kind"] == "NetworkPolicy"]
    for name, template in pod_templates(d):
        labels = template["metadata"]["labels"]
        selecting = [
            p for p in policies if _selects(p["spec"]["podSelector"]["matchLabels"], labels)
        ]
        assert len(selecting) == 1, name
        assert selecting[0]["spec"]["policyTypes"] == ["Ingress", "Egress"]


FLOWS = [
    # (mode, src, dst, port, allowed)
    ("sentinel", "detector", "redis", 6379, True),
    ("sentinel", "detector", "redis-sentinel", 26379, True),
    ("sentinel", "redis", "redis", 6379, True),
    ("sentinel", "redis", "redis-sentinel", 26379, True),
    ("sentinel", "redis-sentinel", "redis", 6379, True),
    ("sentinel", "redis-sentinel", "redis-sentinel", 26379, True),
    ("sentinel", "stranger", "redis", 6379, False),
    ("sentinel", "stranger", "redis-sentinel", 26379, False),
    ("sentinel", "pgbouncer", "redis", 6379, False),
    ("sentinel", "detector", "pgbouncer", 6432, True),
    ("sentinel", "stranger", "pgbouncer", 6432, False),
    ("sentinel", "pgbouncer", "postgres", 5432, True),
    ("sentinel", "detector", "postgres", 5432, False),
    ("sentinel", "stranger", "postgres", 5432, False),
    ("sentinel", "postgres", "redis", 6379, False),
    ("sentinel", "redis", "postgres", 5432, False),
    ("cluster", "detector", "redis", 6379, True),
    ("cluster", "redis-bootstrap", "redis", 6379, True),
    ("cluster", "redis", "redis", 16379, True),
    ("cluster", "detector", "redis", 16379, False),
    ("cluster", "stranger", "redis-bootstrap", 6379, False),
    ("cluster", "redis-bootstrap", "postgres", 5432, False),
    ("standalone", "detector", "redis", 6379, True),
    ("standalone", "stranger", "redis", 6379, False),
]


@pytest.mark.parametrize(("mode", "src", "dst", "port", "ok"), FLOWS)
def test_network_flows(mode: str, src: str, dst: str, port: int, ok: bool) -> None:
    policies, pods = policies_and_pods(mode)
    assert allowed(policies, pods[src], pods[dst], port) is ok


@pytest.mark.parametrize("mode", MODES)
def test_store_pods_may_resolve_dns(mode: str) -> None:
    policies, pods = policies_and_pods(mode)
    for component in ("redis", "postgres", "pgbouncer"):
        rules = [
            r
            for p in policies
            if _selects(p["spec"]["podSelector"]["matchLabels"], pods[component])
            for r in p["spec"]["egress"]
        ]
        assert any("to" not in r and {"protocol": "UDP", "port": 53} in r["ports"] for r in rules)


def test_api_server_defaults_still_get_resources() -> None:
    # The CRD defaults object fields to {} (crdgen): such a stored spec must not lose limits.
    empty: dict[str, Any] = {"resources": {}}
    d = detector(
        {
            "redis": {"mode": "sentinel", **empty, "sentinel": empty},
            "postgres": {**empty, "pgbouncer": empty},
        }
    )
    for name, template in pod_templates(d):
        for container in template["spec"]["containers"]:
            assert set(container["resources"]["limits"]) == {"cpu", "memory"}, name

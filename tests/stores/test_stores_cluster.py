"""Store children against the real control plane (marker ``cluster``).

The operator runs as a subprocess (fixtures shared with tests/operator/test_operator_cluster.py),
KWOK marks scheduled pods Ready (and completes the pods of Jobs) and the fake provisioner binds
the PVCs, so StatefulSet, Deployment and Job status flow back into ``RedisReady`` /
``DatabaseReady`` / ``PoolerReady``.
Each mode must produce its expected objects, all owned by the custom resource, with the
generated Secrets created once and never rewritten by a later reconcile. Every store pod
template must be admitted by a namespace enforcing the ``restricted`` Pod Security profile.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest
import yaml

from pynomaly_operator import naming
from pynomaly_operator.builders import desired as desired_state
from pynomaly_operator.specs.detector import AnomalyDetector
from tests.operator.test_operator_cluster import (  # fixtures are used by name below
    Kube,
    Operator,
    crd,
    kube,
    operator,
    wait_for,
)

__all__ = ["crd", "kube", "operator"]

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

MODEL = {"algorithm": "IForest", "parameters": {"n_estimators": 50}}
EXTERNAL_PG = {"mode": "external", "external": {"dsnSecretRef": {"name": "pg", "key": "dsn"}}}

CASES: list[tuple[str, dict[str, Any], list[tuple[str, str]], dict[str, str]]] = [
    (
        "sentinel",
        {"model": MODEL},
        [
            ("statefulset", "{n}-redis"),
            ("statefulset", "{n}-redis-sentinel"),
            ("service", "{n}-redis-headless"),
            ("service", "{n}-redis-sentinel"),
            ("pdb", "{n}-redis"),
            ("pdb", "{n}-redis-sentinel"),
            ("configmap", "{n}-redis-config"),
            ("secret", "{n}-redis-auth"),
            ("statefulset", "{n}-postgres"),
            ("service", "{n}-postgres"),
            ("configmap", "{n}-postgres-config"),
            ("secret", "{n}-postgres-auth"),
            ("deployment", "{n}-pgbouncer"),
            ("service", "{n}-pgbouncer"),
            ("pdb", "{n}-pgbouncer"),
            ("networkpolicy", "{n}-redis"),
            ("networkpolicy", "{n}-redis-sentinel"),
            ("networkpolicy", "{n}-postgres"),
            ("networkpolicy", "{n}-pgbouncer"),
        ],
        {"RedisReady": "True", "DatabaseReady": "True", "PoolerReady": "True"},
    ),
    (
        "cluster",
        {"model": MODEL, "redis": {"mode": "cluster"}, "postgres": EXTERNAL_PG},
        [
            ("statefulset", "{n}-redis"),
            ("service", "{n}-redis-headless"),
            ("job", "{n}-redis-bootstrap"),
            ("configmap", "{n}-redis-config"),
            ("secret", "{n}-redis-auth"),
            ("networkpolicy", "{n}-redis"),
            ("networkpolicy", "{n}-redis-bootstrap"),
        ],
        # KWOK completes Job pods (e2e/kwok/stages.yaml, pod-complete): the bootstrap Job
        # succeeds, so the operator reports the cluster formed. (The script itself runs against
        # real redis-server processes in tests/stores/test_redis_cluster.py.)
        {"RedisReady": "True", "DatabaseReady": "True"},
    ),
    (
        "standalone",
        {"model": MODEL, "redis": {"mode": "standalone"}, "postgres": EXTERNAL_PG},
        [
            ("statefulset", "{n}-redis"),
            ("service", "{n}-redis"),
            ("service", "{n}-redis-headless"),
            ("secret", "{n}-redis-auth"),
            ("networkpolicy", "{n}-redis"),
        ],
        {"RedisReady": "True", "DatabaseReady": "True", "PoolerReady": "True"},
    ),
]


def _conditions(kube: Kube, name: str) -> dict[str, dict[str, Any]]:
    body = kube.get("anomalydetector", name) or {}
    return {c["type"]: c for c in (body.get("status") or {}).get("conditions") or []}


@pytest.mark.parametrize(
    ("mode", "spec", "expected", "conditions"), CASES, ids=[c[0] for c in CASES]
)
def test_mode_creates_children_and_reports_readiness(
    kube: Kube,
    operator: Operator,
    mode: str,
    spec: dict[str, Any],
    expected: list[tuple[str, str]],
    conditions: dict[str, str],
) -> None:
    name = f"st-{mode}"
    body = kube.apply(kube.detector(name, spec))
    assert body.returncode == 0
    uid = wait_for(
        "the resource",
        lambda: (kube.get("anomalydetector", name) or {}).get("metadata", {}).get("uid"),
    )
    for kind, pattern in expected:
        child_name = pattern.format(n=name)
        child = wait_for(f"{kind}/{child_name}", functools.partial(kube.get, kind, child_name))
        owners = child["metadata"].get("ownerReferences") or []
        assert any(o["uid"] == uid for o in owners), (kind, child_name)

    def settled() -> dict[str, dict[str, Any]] | None:
        found = _conditions(kube, name)
        if all(found.get(t, {}).get("status") == s for t, s in conditions.items()):
            return found
        return None

    found = wait_for(f"{name} store conditions {conditions}", settled, timeout=120)
    assert {"RedisReady", "DatabaseReady", "PoolerReady"} <= set(found)
    if mode == "sentinel":
        sts = kube.get("statefulset", f"{name}-postgres")
        assert sts is not None
        assert sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"
        assert sts["status"].get("readyReplicas") == 1
    if mode == "cluster":
        assert found["RedisReady"]["reason"] == "Ready"
        assert "cluster formed" in found["RedisReady"]["message"]
        job = kube.get("job", f"{name}-redis-bootstrap")
        assert job is not None
        assert job["status"].get("succeeded") == 1

    # Secrets are created once: a later reconcile (spec change) never rewrites them.
    secret = kube.get("secret", f"{name}-redis-auth")
    assert secret is not None
    before = secret["data"]
    kube.run("annotate", "anomalydetector", name, "test/poke=1", "--overwrite")
    kube.run(
        "patch", "anomalydetector", name, "--type=merge", "-p", '{"spec":{"logLevel":"debug"}}'
    )
    wait_for(
        "reconcile of the new generation",
        lambda: (
            (kube.get("anomalydetector", name) or {}).get("status", {}).get("observedGeneration")
            == (kube.get("anomalydetector", name) or {}).get("metadata", {}).get("generation")
        ),
        timeout=60,
    )
    after = kube.get("secret", f"{name}-redis-auth")
    assert after is not None
    assert after["data"] == before


def test_impossible_budget_is_degraded_with_numbers(kube: Kube, operator: Operator) -> None:
    spec = {
        "model": MODEL,
        "redis": {"mode": "none"},
        "postgres": {
            "config": {"max_connections": 200},
            "pgbouncer": {"replicas": 4, "defaultPoolSize": 100, "reservePoolSize": 10},
        },
    }
    kube.apply(kube.detector("st-budget", spec))

    def degraded() -> dict[str, Any] | None:
        cond = _conditions(kube, "st-budget").get("Degraded")
        return cond if cond and cond["status"] == "True" else None

    cond = wait_for("Degraded with the budget numbers", degraded, timeout=60)
    assert "= 440 > max_connections 200 - superuser_reserved 3 = 197" in cond["message"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"redis": {"sentinel": {"quorum": 3, "sentinels": 2}}}, "must not exceed"),
        ({"redis": {"mode": "cluster", "cluster": {"nodes": 5}}}, "multiple of replicasPerMaster"),
        ({"redis": {"mode": "external"}}, "urlSecretRef is required"),
        ({"postgres": {"mode": "external"}}, "dsnSecretRef is required"),
    ],
)
def test_api_server_rejects_impossible_store_specs(
    kube: Kube, spec: dict[str, Any], message: str
) -> None:
    result = kube.apply(kube.detector("st-invalid", {"model": MODEL, **spec}), check=False)
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.parametrize("mode", ["sentinel", "cluster", "standalone"])
def test_store_pods_pass_restricted_pod_security(kube: Kube, mode: str) -> None:
    labels = {f"pod-security.kubernetes.io/{level}": "restricted" for level in ("enforce", "warn")}
    kube.run("label", "namespace", kube.namespace, *(f"{k}={v}" for k, v in labels.items()))
    # Pod admission needs the namespace's default ServiceAccount (the controller adds it).
    wait_for("the default ServiceAccount", lambda: kube.get("serviceaccount", "default"))
    d = AnomalyDetector.from_body(
        {
            "metadata": {"name": "psa", "namespace": kube.namespace},
            "spec": {"redis": {"mode": mode}},
        }
    )
    names = naming.Names(instance="psa", namespace=kube.namespace)
    objects = desired_state.store_objects(d, names)
    applied = kube.run(
        "apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(objects), check=False
    )
    assert applied.returncode == 0, applied.stderr
    assert "violate" not in applied.stderr, applied.stderr
    # Control: the namespace really enforces the profile (a plain pod is refused).
    plain = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "plain"},
        "spec": {"containers": [{"name": "c", "image": "redis:7.0.15-bookworm"}]},
    }
    refused = kube.run(
        "create", "--dry-run=server", "-f", "-", input=json.dumps(plain), check=False
    )
    assert refused.returncode != 0
    assert "violates PodSecurity" in refused.stderr, refused.stderr
    workloads = [o for o in objects if o["kind"] in ("StatefulSet", "Deployment", "Job")]
    assert len(workloads) >= 3
    for obj in workloads:
        template = obj["spec"]["template"]
        pod_name = f"{obj['metadata']['name']}-0"
        # As the StatefulSet controller does: each claim template becomes a PVC volume.
        claims = [
            {"name": c["metadata"]["name"], "persistentVolumeClaim": {"claimName": pod_name}}
            for c in obj["spec"].get("volumeClaimTemplates", [])
        ]
        spec = {**template["spec"], "volumes": [*template["spec"]["volumes"], *claims]}
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": pod_name, **template["metadata"]},
            "spec": spec,
        }
        created = kube.run(
            "create",
            "--dry-run=server",
            "-o",
            "json",
            "-f",
            "-",
            input=json.dumps(pod),
            check=False,
        )
        assert created.returncode == 0, (obj["metadata"]["name"], created.stderr)
        assert "violate" not in created.stderr, created.stderr

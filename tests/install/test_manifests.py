"""The install kustomization and the samples, checked offline (no API server needed).

What a cluster admin reviews before ``kubectl apply -k manifests/``: least-privilege RBAC, a
restricted operator pod probed on kopf's liveness endpoint, and samples that mean what they say
(every field they set is one the operator knows, so nothing is silently ignored).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.install.conftest import MANIFESTS, ROOT, SAMPLE_FILES, documents, kustomize

NAMESPACE = "pynomaly-system"


def _by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == kind]


@pytest.fixture(scope="module")
def base() -> list[dict[str, Any]]:
    return kustomize(MANIFESTS / "base")


def test_full_install_builds_with_the_one_generated_crd() -> None:
    docs = kustomize(MANIFESTS)
    crds = _by_kind(docs, "CustomResourceDefinition")
    assert [c["metadata"]["name"] for c in crds] == ["anomalydetectors.pynomaly.io"]
    kinds = {d["kind"] for d in docs}
    assert {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"} <= kinds
    assert "Deployment" in kinds
    # The CRD is not copied into manifests/: the install points at crds/ itself.
    assert not list(MANIFESTS.rglob("*customresourcedefinition*"))


def test_rbac_has_no_wildcards_and_never_lists_secrets(base: list[dict[str, Any]]) -> None:
    roles = _by_kind(base, "ClusterRole") + _by_kind(base, "Role")
    assert roles
    for role in roles:
        for rule in role["rules"]:
            for key in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule.get(key, []), (role["metadata"]["name"], rule)
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"]), rule
            assert "nonResourceURLs" not in rule, rule
            if "secrets" in rule["resources"] and "" in rule["apiGroups"]:
                assert set(rule["verbs"]) <= {"get", "create"}, rule
            if "pods" in rule["resources"]:
                assert set(rule["verbs"]) <= {"get", "list", "watch"}, rule


def test_rbac_grants_what_kopf_needs(base: list[dict[str, Any]]) -> None:
    (role,) = _by_kind(base, "ClusterRole")
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    needed = {
        ("pynomaly.io", "anomalydetectors", "list"),
        ("pynomaly.io", "anomalydetectors", "watch"),
        ("pynomaly.io", "anomalydetectors", "patch"),
        ("pynomaly.io", "anomalydetectors/status", "patch"),
        ("", "events", "create"),
        ("events.k8s.io", "events", "create"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
    }
    assert needed <= granted, needed - granted
    (binding,) = _by_kind(base, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "pynomaly-operator", "namespace": NAMESPACE}
    ]


def test_operator_deployment_is_restricted_single_and_probed(base: list[dict[str, Any]]) -> None:
    (dep,) = _by_kind(base, "Deployment")
    spec = dep["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == "pynomaly-operator"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]
    assert not container["image"].endswith(":latest")
    # Probes hit the endpoint the operator is told to serve with kopf's --liveness flag.
    (liveness,) = [a for a in container["args"] if a.startswith("--liveness=")]
    url = liveness.removeprefix("--liveness=")
    port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
    path = "/" + url.rsplit(":", 1)[1].split("/", 1)[1]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == path
        assert ports[get["port"]] == port
    assert "--standalone" in container["args"]  # one replica, no kopf peering objects needed


def test_operator_namespace_enforces_restricted_pod_security(base: list[dict[str, Any]]) -> None:
    (ns,) = _by_kind(base, "Namespace")
    assert ns["metadata"]["name"] == NAMESPACE
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for doc in base:
        if doc["kind"] not in {
            "Namespace",
            "ClusterRole",
            "ClusterRoleBinding",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
        }:
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["metadata"]


def test_samples_cover_the_documented_cases() -> None:
    names = {p.stem for p in SAMPLE_FILES}
    assert {
        "minimal",
        "sentinel",
        "cluster",
        "external-database",
        "placement-preferred",
        "custom-hpa-behavior",
    } <= names


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: p.stem)
def test_sample_fields_are_all_known_to_the_operator(path: Path) -> None:
    from pynomaly_operator.specs.detector import AnomalyDetectorSpec

    detectors = [d for d in documents(path) if d["kind"] == "AnomalyDetector"]
    assert len(detectors) == 1
    (doc,) = detectors
    assert doc["apiVersion"] == "pynomaly.io/v1alpha1"
    assert "namespace" not in doc["metadata"], "samples are applied with -n"
    parsed = AnomalyDetectorSpec.model_validate(doc["spec"])
    # The models ignore unknown keys, so a misspelt field would vanish silently: what the
    # operator understood must be exactly what the sample says.
    understood = parsed.model_dump(mode="json", by_alias=True, exclude_unset=True)
    assert understood == doc["spec"]


def test_sample_data_is_reproducible(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "sample-data.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    for name in ("training.csv", "score.csv"):
        committed = MANIFESTS / "samples" / "data" / name
        assert (tmp_path / name).read_bytes() == committed.read_bytes()

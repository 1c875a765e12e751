"""What the operator's identity may do, asked of the real API server (RBAC + admission).

RBAC cannot scope writes by label; the ValidatingAdmissionPolicy in manifests/base closes
that gap. These tests impersonate the operator's ServiceAccount (``kubectl --as``), so the
API server evaluates exactly what it would for the running operator.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.install.conftest import MANIFESTS, documents, kustomize
from tests.support.controlplane import ControlPlane, wait_until

pytestmark = [pytest.mark.cluster]

OPERATOR = "system:serviceaccount:pynomaly-system:pynomaly-operator"
LABELS = {"app.kubernetes.io/managed-by": "pynomaly-operator"}


@pytest.fixture(scope="module")
def policed(kube_cluster: ControlPlane) -> ControlPlane:
    """The base install's identity, RBAC and admission policy (no operator pod needed)."""
    for name in ("namespace", "serviceaccount", "rbac", "leader-election", "admission-policy"):
        kube_cluster.kubectl("apply", "-f", str(MANIFESTS / "base" / f"{name}.yaml"))
    return kube_cluster


def _config_map(namespace: str, name: str, labels: dict[str, str] | None) -> str:
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"k": "v"},
    }
    if labels:
        body["metadata"]["labels"] = labels
    return yaml.safe_dump(body)


def _as_operator(cluster: ControlPlane, *args: str, input: str | None = None) -> Any:
    return cluster.kubectl(f"--as={OPERATOR}", *args, check=False, input=input)


def test_operator_cannot_write_objects_without_its_label(
    policed: ControlPlane, kube_namespace: str
) -> None:
    ns = kube_namespace
    policed.kubectl("apply", "-f", "-", input=_config_map(ns, "someone-elses", None))

    def refused(result: Any) -> None:
        assert result.returncode != 0
        assert "pynomaly operator may" in result.stderr, result.stderr

    # The policy must be in force before the checks mean anything (it is applied async).
    def enforced() -> bool:
        result = _as_operator(policed, "create", "-f", "-", input=_config_map(ns, "probe", None))
        return result.returncode != 0 and "pynomaly operator may" in result.stderr

    wait_until(enforced, timeout=30, what="admission policy in force")
    patch = json.dumps({"data": {"k": "changed"}})
    refused(_as_operator(policed, "-n", ns, "patch", "configmap", "someone-elses", "-p", patch))
    refused(_as_operator(policed, "-n", ns, "delete", "configmap", "someone-elses"))
    take_over = json.dumps({"metadata": {"labels": LABELS}})
    refused(_as_operator(policed, "-n", ns, "patch", "configmap", "someone-elses", "-p", take_over))
    refused(_as_operator(policed, "-n", "kube-system", "create", "configmap", "x"))
    # Its own, labelled objects: allowed (RBAC and the policy agree).
    ok = _as_operator(policed, "apply", "-f", "-", input=_config_map(ns, "ours", LABELS))
    assert ok.returncode == 0, ok.stderr
    assert _as_operator(policed, "-n", ns, "delete", "configmap", "ours").returncode == 0


def test_operator_reads_secrets_by_name_only_and_never_writes_them(
    policed: ControlPlane, kube_namespace: str
) -> None:
    def can(*args: str) -> bool:
        result = policed.kubectl("auth", "can-i", f"--as={OPERATOR}", *args, check=False)
        return result.stdout.strip() == "yes"

    ns = kube_namespace
    assert can("get", "secrets", "-n", ns)
    assert can("create", "secrets", "-n", ns)
    for verb in ("list", "watch", "patch", "update", "delete"):
        assert not can(verb, "secrets", "-n", ns), verb


def test_namespaced_install_reaches_nothing_outside_its_namespace(
    kube_cluster: ControlPlane, kube_namespace: str
) -> None:
    """manifests/namespaced: a Role in the watched namespace; no Secret or ConfigMap
    anywhere else is readable or writable."""
    rendered = kustomize(MANIFESTS / "namespaced")
    kinds = {d["kind"] for d in rendered}
    assert "Role" in kinds
    cluster_roles = [d for d in rendered if d["kind"] == "ClusterRole"]
    assert [r["metadata"]["name"] for r in cluster_roles] == ["pynomaly-operator-discovery"]
    user = "system:serviceaccount:pynomaly-system:pynomaly-operator-ns-test"
    watched = kube_namespace
    for doc in documents(MANIFESTS / "namespaced" / "rbac.yaml"):
        doc = json.loads(json.dumps(doc).replace('"payments"', json.dumps(watched)))
        doc["metadata"]["name"] = f"{doc['metadata']['name']}-ns-test"
        if "subjects" in doc:
            doc["subjects"][0]["name"] = "pynomaly-operator-ns-test"
            doc["roleRef"]["name"] = f"{doc['roleRef']['name']}-ns-test"
        kube_cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(doc))

    def can(*args: str) -> bool:
        result = kube_cluster.kubectl("auth", "can-i", f"--as={user}", *args, check=False)
        return result.stdout.strip() == "yes"

    wait_until(lambda: can("get", "secrets", "-n", watched), timeout=30, what="role in force")
    assert can("patch", "configmaps", "-n", watched)
    for namespace in ("kube-system", "default"):
        assert not can("get", "secrets", "-n", namespace)
        assert not can("patch", "configmaps", "-n", namespace)
        assert not can("list", "anomalydetectors.pynomaly.io", "-n", namespace)
    assert can("watch", "customresourcedefinitions")


def test_operator_may_renew_its_one_lease_and_no_other(policed: ControlPlane) -> None:
    def can(*args: str) -> bool:
        result = policed.kubectl("auth", "can-i", f"--as={OPERATOR}", *args, check=False)
        return result.stdout.strip() == "yes"

    ours = ("leases.coordination.k8s.io/pynomaly-operator", "-n", "pynomaly-system")
    wait_until(lambda: can("update", *ours), timeout=30, what="leader-election role in force")
    assert can("get", *ours)
    assert can("create", "leases.coordination.k8s.io", "-n", "pynomaly-system")
    assert not can("delete", *ours)
    assert not can("patch", *ours)
    other = ("leases.coordination.k8s.io/kube-controller-manager", "-n", "pynomaly-system")
    assert not can("update", *other)
    assert not can("get", *other)
    for verb in ("list", "watch"):
        assert not can(verb, "leases.coordination.k8s.io", "-n", "pynomaly-system")
    for namespace in ("kube-system", "default"):
        assert not can("create", "leases.coordination.k8s.io", "-n", namespace)
        assert not can("update", "leases.coordination.k8s.io/pynomaly-operator", "-n", namespace)


def test_operator_lists_pods_for_status_hints_and_nothing_more(
    policed: ControlPlane, kube_namespace: str
) -> None:
    """Pods are listed (one LIST by label, for a stuck component's reason) and nothing else:
    no get, watch, exec, logs or writes; PVCs not at all."""

    def can(*args: str) -> bool:
        result = policed.kubectl("auth", "can-i", f"--as={OPERATOR}", *args, check=False)
        return result.stdout.strip() == "yes"

    ns = kube_namespace
    assert can("list", "pods", "-n", ns)
    for verb in ("get", "watch", "create", "patch", "delete"):
        assert not can(verb, "pods", "-n", ns), verb
    assert not can("create", "pods/exec", "-n", ns)
    assert not can("get", "pods/log", "-n", ns)
    for verb in ("get", "list", "watch"):
        assert not can(verb, "persistentvolumeclaims", "-n", ns), verb

"""The install and the samples against the real API server (marker ``cluster``).

``kubectl apply --dry-run=server`` is the schema validator here: it is the API server's own
validation (OpenAPI schemas, CRD structural schema and CEL rules, admission), which
kubeconform would approximate with schemas it cannot download on this network.

Then the operator runs as a subprocess with the *ServiceAccount's token* (not the admin
certificate), so the RBAC in manifests/base/rbac.yaml is what it gets: every sample is created
in a namespace enforcing Pod Security "restricted", and must become Ready (KWOK fakes the pods
running) without the operator ever writing the spec, with app.kubernetes.io labels on every
child.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.install.conftest import MANIFESTS, SAMPLE_FILES, documents, kustomize
from tests.support.controlplane import ControlPlane, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

SYSTEM = "pynomaly-system"
SA = f"system:serviceaccount:{SYSTEM}:pynomaly-operator"
OPERATOR = Path(sys.executable).with_name("pynomaly-operator")
CHILD_KINDS = (
    "deployments,statefulsets,services,configmaps,serviceaccounts,poddisruptionbudgets,"
    "horizontalpodautoscalers,networkpolicies,jobs,secrets"
)
STANDARD_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
)
# Samples that fit the fake cluster's capacity together (required placement on c5 nodes).
BATCHES = [
    ["minimal", "sentinel", "external-database", "placement-preferred"],
    ["cluster", "custom-hpa-behavior"],
]


def _install_yaml() -> str:
    return yaml.safe_dump_all(kustomize(MANIFESTS))


@pytest.fixture(scope="module")
def installed(kube_cluster: ControlPlane) -> Iterator[ControlPlane]:
    """CRD, namespace, RBAC and the operator Deployment really applied (server-side)."""
    kube_cluster.kubectl(
        "apply", "--server-side", "--force-conflicts", "-f", "-", input=_install_yaml()
    )
    kube_cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd/anomalydetectors.pynomaly.io"
    )
    yield kube_cluster
    # The fake operator pod is not needed by anyone else; CRD and RBAC stay (shared cluster).
    kube_cluster.kubectl(
        "delete", "deployment", "pynomaly-operator", "-n", SYSTEM, "--wait=false", check=False
    )


def test_install_passes_server_side_dry_run(kube_cluster: ControlPlane) -> None:
    # A dry run cannot create the namespace its namespaced objects go into: create that first.
    ns = next(d for d in kustomize(MANIFESTS) if d["kind"] == "Namespace")
    kube_cluster.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(ns))
    done = kube_cluster.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "--dry-run=server",
        "-f",
        "-",
        input=_install_yaml(),
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_operator_pod_is_admitted_under_restricted(installed: ControlPlane) -> None:
    def available() -> bool:
        dep = installed.get_json("deployment", "pynomaly-operator", "-n", SYSTEM)
        return (dep.get("status") or {}).get("availableReplicas") == 2

    wait_until(available, timeout=60, what="the operator Deployment's (fake) pods", interval=1)


def test_service_account_has_least_privilege(installed: ControlPlane) -> None:
    def can(*args: str) -> bool:
        done = installed.kubectl("auth", "can-i", *args, f"--as={SA}", check=False)
        return done.stdout.strip() == "yes"

    assert can("watch", "anomalydetectors.pynomaly.io", "--all-namespaces")
    assert can("patch", "anomalydetectors.pynomaly.io", "--subresource=status", "-n", "x")
    assert can("create", "secrets", "-n", "x")
    assert can("get", "secrets", "-n", "x")  # the resync's existence check of generated Secrets
    assert not can("patch", "secrets", "-n", "x")  # generated Secrets are never rewritten
    assert can("create", "events.events.k8s.io", "-n", "x")
    assert not can("list", "secrets", "--all-namespaces")
    assert not can("list", "secrets", "-n", "x")
    assert not can("update", "anomalydetectors.pynomaly.io", "-n", "x")
    assert not can("create", "pods", "-n", "x")
    assert not can("create", "rolebindings", "-n", "x")


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: p.stem)
def test_sample_passes_server_side_dry_run(
    installed: ControlPlane, kube_namespace: str, path: Path
) -> None:
    done = installed.kubectl(
        "apply", "--dry-run=server", "-n", kube_namespace, "-f", str(path), check=False
    )
    assert done.returncode == 0, done.stderr


# ---- the operator with the ServiceAccount's permissions -------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _service_account_kubeconfig(cluster: ControlPlane, path: Path) -> Path:
    """A kubeconfig that authenticates as the operator's ServiceAccount (bound token)."""
    token = cluster.kubectl(
        "create", "token", "pynomaly-operator", "-n", SYSTEM, "--duration=1h"
    ).stdout.strip()
    admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": "pynomaly-operator", "user": {"token": token}}],
        "contexts": [
            {
                "name": "operator",
                "context": {"cluster": admin["clusters"][0]["name"], "user": "pynomaly-operator"},
            }
        ],
        "current-context": "operator",
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def restricted_namespace(installed: ControlPlane, kube_namespace: str) -> str:
    installed.kubectl(
        "label",
        "namespace",
        kube_namespace,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    )
    return kube_namespace


@dataclasses.dataclass
class RunningOperator:
    process: subprocess.Popen[bytes]
    log: Path


@pytest.fixture
def operator_as_service_account(
    installed: ControlPlane, restricted_namespace: str, tmp_path: Path
) -> Iterator[RunningOperator]:
    """``pynomaly-operator run`` with the SA's token, watching the test's namespace, electing
    itself leader on the install's Lease as the Deployment's replicas do (so the Lease RBAC
    is exercised by the real process)."""
    kubeconfig = _service_account_kubeconfig(installed, tmp_path / "operator.kubeconfig")
    log = tmp_path / "operator.log"
    port = _free_port()
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "PYNOMALY_OPERATOR_LEADER_ELECTION": "true",
        "PYNOMALY_OPERATOR_LEASE_NAMESPACE": SYSTEM,
        "PYNOMALY_OPERATOR_IDENTITY": f"test-{restricted_namespace}",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(OPERATOR),
                "run",
                "--namespace",
                restricted_namespace,
                "--standalone",
                f"--liveness=http://127.0.0.1:{port}/healthz",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def live() -> bool:
        assert process.poll() is None, f"operator exited:\n{log.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    try:
        wait_until(live, timeout=60, what="the operator's liveness endpoint", interval=0.5)
        yield RunningOperator(process=process, log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _detector(path: Path) -> dict[str, Any]:
    return next(d for d in documents(path) if d["kind"] == "AnomalyDetector")


def _ready(cluster: ControlPlane, namespace: str, name: str) -> dict[str, Any] | None:
    body = cluster.get_json("anomalydetector", name, "-n", namespace)
    status = body.get("status") or {}
    if (
        status.get("phase") == "Ready"
        and status.get("observedGeneration") == (body["metadata"]["generation"])
    ):
        return body
    return None


def _ready_or_hopeless(
    cluster: ControlPlane, namespace: str, name: str, operator: RunningOperator
) -> dict[str, Any] | None:
    """Ready body, None to keep waiting, AssertionError when waiting cannot help."""
    if operator.process.poll() is not None:
        raise AssertionError(f"the operator exited ({operator.process.returncode})")
    rejected = cluster.get_json(
        "events", "-n", namespace, "--field-selector", "reason=FailedCreate"
    )["items"]
    if rejected:
        raise AssertionError(f"pods rejected: {rejected[0]['message']}")
    return _ready(cluster, namespace, name)


def _describe(cluster: ControlPlane, namespace: str, name: str) -> str:
    body = cluster.get_json("anomalydetector", name, "-n", namespace)
    events = cluster.kubectl(
        "get", "events", "-n", namespace, "--field-selector", "type=Warning", check=False
    ).stdout
    return json.dumps(body.get("status"), indent=1)[-2500:] + "\nwarnings:\n" + events[-2500:]


@pytest.mark.parametrize("batch", BATCHES, ids=lambda b: "+".join(b))
def test_samples_become_ready_in_a_restricted_namespace(
    installed: ControlPlane,
    restricted_namespace: str,
    operator_as_service_account: RunningOperator,
    batch: list[str],
) -> None:
    ns = restricted_namespace
    operator = operator_as_service_account
    by_stem = {p.stem: p for p in SAMPLE_FILES}
    created: dict[str, dict[str, Any]] = {}
    for stem in batch:
        for doc in documents(by_stem[stem]):
            out = installed.kubectl(
                "create", "-n", ns, "-f", "-", "-o", "json", input=json.dumps(doc)
            )
            item = json.loads(out.stdout)
            if item["kind"] == "AnomalyDetector":
                created[item["metadata"]["name"]] = item

    deadline = time.monotonic() + 150
    for name in created:
        remaining = max(1.0, deadline - time.monotonic())
        try:
            wait_until(
                lambda name=name: _ready_or_hopeless(installed, ns, name, operator),  # type: ignore[misc]
                timeout=remaining,
                what=f"AnomalyDetector {name} to become Ready",
                interval=1,
            )
        except AssertionError as err:
            log = operator.log.read_text()[-3000:]
            raise AssertionError(
                f"{err}\n{_describe(installed, ns, name)}\noperator log:\n{log}"
            ) from None

    for name, at_creation in created.items():
        live = installed.get_json("anomalydetector", name, "-n", ns)
        # The operator never writes the spec: same generation, same (API-server-defaulted) spec.
        assert live["metadata"]["generation"] == at_creation["metadata"]["generation"]
        assert live["spec"] == at_creation["spec"]
        for entry in live["metadata"].get("managedFields") or []:
            if entry.get("manager") != "kubectl-create":
                assert "f:spec" not in (entry.get("fieldsV1") or {}), entry["manager"]

        children = installed.get_json(
            CHILD_KINDS, "-n", ns, "-l", f"app.kubernetes.io/instance={name}"
        )["items"]
        kinds = {c["kind"] for c in children}
        assert {"Deployment", "Service", "ConfigMap"} <= kinds, kinds
        for child in children:
            labels = child["metadata"].get("labels") or {}
            missing = [k for k in STANDARD_LABELS if k not in labels]
            assert not missing, (child["kind"], child["metadata"]["name"], missing)
            assert labels["app.kubernetes.io/part-of"] == "pynomaly"
            assert labels["app.kubernetes.io/managed-by"] == "pynomaly-operator"

    # Pod Security admission rejected nothing: no FailedCreate anywhere in the namespace.
    warnings = installed.get_json("events", "-n", ns, "--field-selector", "reason=FailedCreate")
    assert not warnings["items"], [e["message"] for e in warnings["items"]][:5]
    forbidden = [line for line in operator.log.read_text().splitlines() if "Forbidden" in line]
    assert not forbidden, forbidden[:5]

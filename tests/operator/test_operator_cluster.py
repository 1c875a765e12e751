"""The operator against the real control plane (marker ``cluster``).

The operator runs as a subprocess (``pynomaly-operator run --namespace NS``), exactly as a
user runs it. The control plane has KWOK fake nodes labelled c5.2xlarge, c5.4xlarge and
m5.large, so node affinity is decided by the real scheduler, and KWOK marks scheduled pods
Ready so Deployment readiness flows back into the resource's status. Specs use
``redis.mode: none`` and an external database so only the operator core is under test.
Every wait polls with a deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
import yaml

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

ROOT = pathlib.Path(__file__).resolve().parents[2]
OPERATOR = pathlib.Path(sys.executable).with_name("pynomaly-operator")
T = TypeVar("T")

BASE_SPEC: dict[str, Any] = {
    "model": {"algorithm": "IForest", "parameters": {"n_estimators": 50}},
    "redis": {"mode": "none"},
    "postgres": {"mode": "external", "external": {"dsnSecretRef": {"name": "pg", "key": "dsn"}}},
}


def wait_for(what: str, probe: Callable[[], T | None], *, timeout: float = 30.0) -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except (
            subprocess.CalledProcessError,
            subprocess.TimeoutExpired,
            KeyError,
            ValueError,
        ) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Kube:
    """kubectl in one namespace, returning parsed JSON."""

    def __init__(self, cluster: Any, namespace: str) -> None:
        self.cluster = cluster
        self.namespace = namespace

    def run(self, *args: str, check: bool = True, input: str | None = None) -> Any:
        return self.cluster.kubectl("-n", self.namespace, *args, check=check, input=input)

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        result = self.run("get", kind, name, "-o", "json", check=False)
        if result.returncode != 0:
            return None
        found: dict[str, Any] = json.loads(result.stdout)
        return found

    def apply(self, body: dict[str, Any], *, check: bool = True) -> Any:
        return self.run("apply", "-f", "-", input=yaml.safe_dump(body), check=check)

    def detector(self, name: str, spec: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "apiVersion": "pynomaly.io/v1alpha1",
            "kind": "AnomalyDetector",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": spec if spec is not None else BASE_SPEC,
        }

    def condition(self, name: str, type_: str) -> dict[str, Any] | None:
        body = self.get("anomalydetector", name) or {}
        for cond in (body.get("status") or {}).get("conditions") or []:
            if cond["type"] == type_:
                found: dict[str, Any] = cond
                return found
        return None

    def phase(self, name: str) -> str | None:
        body = self.get("anomalydetector", name) or {}
        return (body.get("status") or {}).get("phase")


class Operator:
    """``pynomaly-operator run --namespace NS`` as a subprocess, its log in a file."""

    def __init__(
        self,
        kubeconfig: str,
        namespace: str,
        log: pathlib.Path,
        *,
        env: dict[str, str] | None = None,
    ) -> None:
        self.kubeconfig, self.namespace, self.log = kubeconfig, namespace, log
        self.env = dict(env or {})
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "KUBECONFIG": self.kubeconfig, **self.env}
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    str(OPERATOR),
                    "run",
                    "--namespace",
                    self.namespace,
                    "--standalone",
                    f"--liveness=http://127.0.0.1:{self.port}/healthz",
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_for("operator liveness", self.alive, timeout=30)

    def alive(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"operator exited {self.process.returncode}:\n{self.tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def writes(self) -> list[str]:
        """Write requests the operator made so far (from its request log)."""
        return [
            line
            for line in self.log.read_text(errors="replace").splitlines()
            if "HTTP Request:" in line
            and any(f" {m} " in line for m in ("POST", "PATCH", "PUT", "DELETE"))
        ]


@pytest.fixture(scope="module")
def crd(kube_cluster: Any) -> None:
    kube_cluster.kubectl("apply", "-f", str(ROOT / "crds" / "anomalydetectors.pynomaly.io.yaml"))

    def established() -> bool:
        # Polled, not `kubectl wait`: right after creation the CRD has no status.conditions
        # yet, and kubectl wait fails on that instead of waiting.
        result = kube_cluster.kubectl(
            "get",
            "crd/anomalydetectors.pynomaly.io",
            "-o",
            'jsonpath={.status.conditions[?(@.type=="Established")].status}',
            check=False,
        )
        return result.stdout.strip() == "True"

    wait_for("CRD established", established, timeout=30)


@pytest.fixture
def kube(kube_cluster: Any, kube_namespace: str, crd: None) -> Kube:
    return Kube(kube_cluster, kube_namespace)


@contextlib.contextmanager
def running_operator(
    kube_cluster: Any, namespace: str, log: pathlib.Path, env: dict[str, str] | None = None
) -> Iterator[Operator]:
    """An operator for ``namespace``, stopped afterwards with its log tail on stderr."""
    op = Operator(str(kube_cluster.kubeconfig), namespace, log, env=env)
    op.start()
    try:
        yield op
    finally:
        op.stop()
        sys.stderr.write(f"--- operator log tail ---\n{op.tail()}\n")


@pytest.fixture
def operator(
    kube_cluster: Any, kube_namespace: str, crd: None, tmp_path: pathlib.Path
) -> Iterator[Operator]:
    with running_operator(kube_cluster, kube_namespace, tmp_path / "operator.log") as op:
        yield op


def ready(kube: Kube, name: str, *, timeout: float = 60) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        body = kube.get("anomalydetector", name)
        status = (body or {}).get("status") or {}
        if (
            status.get("phase") == "Ready"
            and status.get("observedGeneration") == body["metadata"]["generation"]
        ):  # type: ignore[index]
            return body
        return None

    return wait_for(f"{name} Ready", check, timeout=timeout)


# --------------------------------------------------------------------------------------------


def test_sample_creates_children_schedules_on_c5_and_reports_ready(
    kube: Kube, operator: Operator
) -> None:
    started = time.monotonic()
    kube.apply(kube.detector("fraud"))
    body = ready(kube, "fraud", timeout=90)
    elapsed = time.monotonic() - started
    uid = body["metadata"]["uid"]
    assert "finalizers" not in body["metadata"]

    dep = kube.get("deployment", "fraud")
    assert dep is not None
    assert dep["metadata"]["ownerReferences"][0]["uid"] == uid
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["containers"][0]["resources"]["requests"] == {"cpu": "750m", "memory": "2Gi"}
    assert "pynomaly.io/config-hash" in dep["spec"]["template"]["metadata"]["annotations"]

    hpa = kube.get("hpa", "fraud")
    assert hpa is not None
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 20)
    assert hpa["spec"]["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == 60
    assert hpa["spec"]["behavior"]["scaleDown"]["policies"][0] == {
        "type": "Percent",
        "value": 10,
        "periodSeconds": 60,
    }

    sa = kube.get("serviceaccount", "fraud")
    assert sa is not None
    assert sa["automountServiceAccountToken"] is False
    svc = kube.get("service", "fraud")
    assert svc is not None
    assert sorted(p["port"] for p in svc["spec"]["ports"]) == [8000, 9090]
    for kind, name in [
        ("pdb", "fraud"),
        ("networkpolicy", "fraud"),
        ("configmap", "fraud-config"),
        ("secret", "fraud-api-token"),
    ]:
        child = kube.get(kind, name)
        assert child is not None, (kind, name)
        assert child["metadata"]["ownerReferences"][0]["uid"] == uid
    # The signing key lives as long as the model data (external database here): not owned.
    key = kube.get("secret", "fraud-signing-key")
    assert key is not None
    assert not key["metadata"].get("ownerReferences")

    pods = json.loads(
        kube.run("get", "pods", "-l", "app.kubernetes.io/instance=fraud", "-o", "json").stdout
    )["items"]
    assert len(pods) == 3
    nodes = {p["spec"]["nodeName"] for p in pods}
    for node in nodes:
        labels = json.loads(kube.cluster.kubectl("get", "node", node, "-o", "json").stdout)[
            "metadata"
        ]["labels"]
        assert labels["node.kubernetes.io/instance-type"] in ("c5.2xlarge", "c5.4xlarge")

    status = body["status"]
    assert status["endpoint"] == f"http://fraud.{kube.namespace}.svc:8000"
    assert status["replicas"] == {"desired": 3, "ready": 3}
    assert {c["type"] for c in status["conditions"]} >= {
        "Ready",
        "Progressing",
        "Degraded",
        "DetectorReady",
        "RedisReady",
        "DatabaseReady",
        "PoolerReady",
        "ScalingActive",
    }
    printed = kube.run("get", "ad", "fraud").stdout
    assert "Ready" in printed
    assert "IForest" in printed
    sys.stderr.write(f"apply -> Ready in {elapsed:.1f}s\n")

    # Steady state: no writes at all while nothing changes (two resync periods). First let
    # the HPA evaluate once (its ScalingActive condition is mirrored into the status).
    wait_for(
        "HPA evaluated",
        lambda: (
            (kube.condition("fraud", "ScalingActive") or {}).get("reason")
            not in (None, "Pending", "NotFound")
        ),
        timeout=45,
    )
    time.sleep(3)
    before = len(operator.writes())
    time.sleep(32)
    assert operator.writes()[before:] == []


def test_spec_edit_rolls_out_and_hand_edits_are_restored(kube: Kube, operator: Operator) -> None:
    kube.apply(kube.detector("fraud"))
    ready(kube, "fraud", timeout=90)
    dep = kube.get("deployment", "fraud")
    assert dep is not None
    old_hash = dep["spec"]["template"]["metadata"]["annotations"]["pynomaly.io/config-hash"]

    kube.apply(kube.detector("fraud", {**BASE_SPEC, "server": {"workers": 2}}))

    def rolled() -> bool:
        d = kube.get("deployment", "fraud") or {}
        return bool(
            d["spec"]["template"]["metadata"]["annotations"]["pynomaly.io/config-hash"] != old_hash
        )

    wait_for("new config hash", rolled, timeout=30)
    cm = kube.get("configmap", "fraud-config")
    assert cm is not None
    assert cm["data"]["PYNOMALY_WORKERS"] == "2"
    body = ready(kube, "fraud", timeout=90)
    assert body["status"]["observedGeneration"] == 2

    # Hand edits and deletions are put back (watch on children, not only the resync).
    kube.run(
        "patch",
        "configmap",
        "fraud-config",
        "--type=merge",
        "-p",
        '{"data": {"PYNOMALY_WORKERS": "64"}}',
    )
    kube.run("delete", "service", "fraud", "--wait=false")
    kube.run("patch", "hpa", "fraud", "--type=merge", "-p", '{"spec": {"maxReplicas": 99}}')
    started = time.monotonic()
    wait_for(
        "configmap restored",
        lambda: (
            (kube.get("configmap", "fraud-config") or {}).get("data", {}).get("PYNOMALY_WORKERS")
            == "2"
        ),
        timeout=30,
    )
    wait_for("service restored", lambda: kube.get("service", "fraud"), timeout=30)
    wait_for(
        "hpa restored",
        lambda: (kube.get("hpa", "fraud") or {}).get("spec", {}).get("maxReplicas") == 20,
        timeout=30,
    )
    sys.stderr.write(f"drift restored in {time.monotonic() - started:.1f}s\n")

    # A hand-written status is recomputed from what is observed.
    kube.run(
        "patch",
        "anomalydetector",
        "fraud",
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status": {"phase": "Failed", "model": {"version": 7, "threshold": 0.113}}}',
    )
    wait_for("status recomputed", lambda: kube.phase("fraud") == "Ready", timeout=30)
    # status.model is the declared model only: the operator cannot know the fitted version or
    # threshold without calling the service, so the schema has no such fields (the API server
    # prunes them) and nothing hand-written survives a reconcile.
    model = (kube.get("anomalydetector", "fraud") or {})["status"]["model"]
    assert model == {"name": "fraud", "algorithm": "IForest"}


def test_invalid_specs_are_refused_naming_the_field(kube: Kube, crd: None) -> None:
    cases = {
        "spec.model.contamination": {**BASE_SPEC, "model": {"contamination": 0.9}},
        "spec.model.alertRate": {**BASE_SPEC, "model": {"alertRate": 0.5}},
        "contamination (share of anomalies in the training data) or alertRate": {
            **BASE_SPEC,
            "model": {"contamination": 0.05, "alertRate": 0.001},
        },
        "spec.autoscaling": {**BASE_SPEC, "autoscaling": {"minReplicas": 5, "maxReplicas": 2}},
        "spec.model.algorithm": {**BASE_SPEC, "model": {"algorithm": "NotAnAlgorithm"}},
        "spec.placement.mode": {**BASE_SPEC, "placement": {"mode": "sometimes"}},
    }
    for field, spec in cases.items():
        result = kube.apply(kube.detector("bad", spec), check=False)
        assert result.returncode != 0, field
        assert field in result.stderr, (field, result.stderr)
    long_name = kube.detector("x" * 45)
    result = kube.apply(long_name, check=False)
    assert result.returncode != 0
    assert "metadata.name" in result.stderr


def test_unworkable_spec_degrades_without_touching_the_workload(
    kube: Kube, operator: Operator
) -> None:
    kube.apply(kube.detector("fraud"))
    ready(kube, "fraud", timeout=90)
    dep = kube.get("deployment", "fraud")
    assert dep is not None
    version = dep["metadata"]["resourceVersion"]

    bad = {
        **BASE_SPEC,
        "model": {"algorithm": "IForest", "parameters": {"n_trees": 5}},
        "server": {"workers": 3},
    }
    kube.apply(kube.detector("fraud", bad))
    cond = wait_for(
        "Degraded",
        lambda: (c := kube.condition("fraud", "Degraded")) and c["status"] == "True" and c,
        timeout=30,
    )
    assert cond["reason"] == "InvalidParameters"
    assert "n_trees" in cond["message"]
    assert kube.phase("fraud") == "Degraded"
    events = kube.run(
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=fraud,reason=InvalidParameters",
        "-o",
        "json",
    )
    assert json.loads(events.stdout)["items"], "no Warning event"
    time.sleep(3)
    dep = kube.get("deployment", "fraud")
    assert dep is not None
    assert dep["metadata"]["resourceVersion"] == version  # untouched
    cm = kube.get("configmap", "fraud-config")
    assert cm is not None
    assert cm["data"]["PYNOMALY_WORKERS"] == "4"  # the settings change was held back too

    missing = {
        **BASE_SPEC,
        "model": {"training": {"configMapRef": {"name": "nope", "key": "data.csv"}}},
    }
    kube.apply(kube.detector("fraud", missing))
    wait_for(
        "TrainingDataMissing",
        lambda: (kube.condition("fraud", "Degraded") or {}).get("reason") == "TrainingDataMissing",
        timeout=30,
    )
    kube.run("create", "configmap", "nope", "--from-literal=data.csv=a,b\n1,2\n")
    body = ready(kube, "fraud", timeout=60)  # fixed -> applied -> Ready again
    assert (kube.condition("fraud", "Degraded") or {}).get("status") == "False"
    dep = kube.get("deployment", "fraud")
    assert dep is not None
    assert any(
        v.get("configMap", {}).get("name") == "nope"
        for v in dep["spec"]["template"]["spec"]["volumes"]
    )
    assert body["status"]["phase"] == "Ready"


def test_delete_resource_garbage_collects_children(kube: Kube, operator: Operator) -> None:
    kube.apply(kube.detector("fraud"))
    ready(kube, "fraud", timeout=90)
    kube.run("delete", "anomalydetector", "fraud", "--timeout=30s")
    for kind, name in [
        ("deployment", "fraud"),
        ("service", "fraud"),
        ("hpa", "fraud"),
        ("configmap", "fraud-config"),
    ]:
        wait_for(
            f"{kind}/{name} gone",
            lambda kind=kind, name=name: kube.get(kind, name) is None,
            timeout=60,
        )


def test_operator_restart_converges(kube: Kube, operator: Operator) -> None:
    kube.apply(kube.detector("fraud"))
    ready(kube, "fraud", timeout=90)
    operator.stop()
    kube.apply(
        kube.detector("fraud", {**BASE_SPEC, "autoscaling": {"minReplicas": 2, "maxReplicas": 5}})
    )
    kube.run("delete", "networkpolicy", "fraud")
    operator.start()
    wait_for(
        "hpa updated",
        lambda: (kube.get("hpa", "fraud") or {}).get("spec", {}).get("maxReplicas") == 5,
        timeout=30,
    )
    wait_for("networkpolicy back", lambda: kube.get("networkpolicy", "fraud"), timeout=30)
    body = ready(kube, "fraud", timeout=90)
    assert body["status"]["observedGeneration"] == 2


def test_default_spec_with_managed_stores_converges_without_churn(
    kube: Kube, operator: Operator
) -> None:
    """The default spec (Redis sentinel, managed PostgreSQL + PgBouncer): the stores' children
    come from ``builders.desired`` through the same reconcile; each is applied once."""
    kube.apply(kube.detector("full", {}))
    ready(kube, "full", timeout=120)
    for kind, name in [
        ("statefulset", "full-redis"),
        ("statefulset", "full-postgres"),
        ("deployment", "full-pgbouncer"),
        ("secret", "full-redis-auth"),
    ]:
        assert kube.get(kind, name) is not None, (kind, name)
    urls = [
        line.split("PATCH ", 1)[1].split("?", 1)[0]
        for line in operator.writes()
        if " PATCH " in line
    ]
    applied = [url for url in urls if not url.endswith("/status")]
    assert len(applied) >= 15
    assert len(applied) == len(set(applied)), "a child was applied more than once"


def test_a_child_the_api_server_refuses_is_reported_and_retried(
    kube: Kube, operator: Operator
) -> None:
    """A child the API server will not create (here a namespace quota of zero Services, as
    an exhausted Service range once refused the 254th detector's Service) is a status
    condition with the server's message, not a silent stall; once the cause is gone the
    resource converges without an operator restart."""
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "no-services", "namespace": kube.namespace},
        "spec": {"hard": {"services": "0"}},
    }
    kube.apply(quota)
    kube.apply(kube.detector("fraud"))
    cond = wait_for(
        "Degraded ApplyFailed",
        lambda: (c := kube.condition("fraud", "Degraded")) and c["reason"] == "ApplyFailed" and c,
        timeout=60,
    )
    assert cond["status"] == "True"
    assert "quota" in cond["message"], cond["message"]
    assert kube.phase("fraud") != "Ready"
    kube.run("delete", "resourcequota", "no-services")
    ready(kube, "fraud", timeout=90)
    assert kube.get("service", "fraud") is not None


def test_new_deployment_starts_at_the_hpa_floor_with_no_write_for_a_floor_of_one(
    kube: Kube, operator: Operator
) -> None:
    """A new Deployment is scaled to ``minReplicas`` at once (not at the HPA's first sync),
    and a floor of 1, every new Deployment's own count, costs no write: at 1,000 detectors
    that was 1,000 scale requests for nothing."""
    kube.apply(kube.detector("one", {**BASE_SPEC, "autoscaling": {"minReplicas": 1}}))
    kube.apply(kube.detector("three", {**BASE_SPEC, "autoscaling": {"minReplicas": 3}}))
    for name, floor in (("one", 1), ("three", 3)):
        wait_for(
            f"deployment {name} at {floor}",
            lambda name=name, floor=floor: (
                (kube.get("deployment", name) or {}).get("spec", {}).get("replicas") == floor
            ),
            timeout=30,
        )
    scaled = [line for line in operator.writes() if "/scale" in line]
    assert any("/deployments/three/scale" in line for line in scaled), scaled
    assert not any("/deployments/one/scale" in line for line in scaled), scaled


def test_disabling_autoscaling_prunes_the_hpa_and_sets_replicas(
    kube: Kube, operator: Operator
) -> None:
    kube.apply(kube.detector("fraud"))
    ready(kube, "fraud", timeout=90)
    fixed = {**BASE_SPEC, "autoscaling": {"enabled": False, "minReplicas": 2}}
    kube.apply(kube.detector("fraud", fixed))
    wait_for("HPA pruned", lambda: kube.get("hpa", "fraud") is None, timeout=30)
    wait_for(
        "Deployment replicas from the spec",
        lambda: (kube.get("deployment", "fraud") or {}).get("spec", {}).get("replicas") == 2,
        timeout=30,
    )
    body = ready(kube, "fraud", timeout=90)
    assert body["status"]["replicas"] == {"desired": 2, "ready": 2}
    assert (kube.condition("fraud", "ScalingActive") or {}).get("reason") == "Disabled"


def test_enabling_autoscaling_never_drops_replicas(kube: Kube, operator: Operator) -> None:
    """false -> true hands spec.replicas over before the operator stops applying it.

    Without the hand-over, server-side apply removes the field the operator stops owning and
    the Deployment's default (1) applies until the HPA's next sync raises it again.
    """
    fixed = {**BASE_SPEC, "autoscaling": {"enabled": False, "minReplicas": 3}}
    kube.apply(kube.detector("fraud", fixed))
    ready(kube, "fraud", timeout=90)
    assert (kube.get("deployment", "fraud") or {})["spec"]["replicas"] == 3

    kube.apply(kube.detector("fraud", {**BASE_SPEC, "autoscaling": {"minReplicas": 3}}))
    seen: list[int] = []
    hpa_at: float | None = None
    deadline = time.monotonic() + 60
    # Poll through the switch and one HPA sync period (15 s) after the HPA appears: a dropped
    # field would show as 1 until that sync.
    while time.monotonic() < deadline and (hpa_at is None or time.monotonic() < hpa_at + 20):
        dep = kube.get("deployment", "fraud") or {}
        seen.append(int((dep.get("spec") or {}).get("replicas", 1)))
        if hpa_at is None and kube.get("hpa", "fraud") is not None:
            hpa_at = time.monotonic()
        time.sleep(0.2)
    assert hpa_at is not None, "the HPA was never created"
    assert min(seen) >= 3, f"replicas dipped during the switch: {seen}"

    shown = kube.run("get", "deployment", "fraud", "-o", "json", "--show-managed-fields")
    dep = json.loads(shown.stdout)
    owners = [
        entry["manager"]
        for entry in dep["metadata"]["managedFields"]
        if "f:replicas" in (entry.get("fieldsV1") or {}).get("f:spec", {})
    ]
    assert "pynomaly-operator" not in owners, owners  # the HPA may now change it freely
    body = ready(kube, "fraud", timeout=90)
    assert body["status"]["replicas"]["desired"] >= 3


def _secrets_stamp(kube: Kube, kind: str, name: str) -> str | None:
    obj = kube.get(kind, name) or {}
    template = obj.get("spec", {}).get("template", {})
    return (template.get("metadata", {}).get("annotations") or {}).get("pynomaly.io/secrets-hash")


def test_deleted_generated_secrets_come_back_at_resync(kube: Kube, operator: Operator) -> None:
    """Secrets are not watched (no list/watch RBAC): the resync checks they exist by name.

    Deleted ones are re-created as they were (owned, or retained with the model data);
    existing ones are never regenerated.
    The workloads reading a re-created Secret roll (their pods read it at start); the
    others are left alone.
    """
    spec = {**BASE_SPEC, "redis": {"mode": "standalone"}, "postgres": {"mode": "managed"}}
    kube.apply(kube.detector("fraud", spec))
    uid = wait_for(
        "the resource", lambda: (kube.get("anomalydetector", "fraud") or {})["metadata"]["uid"]
    )
    names = ("fraud-signing-key", "fraud-redis-auth", "fraud-postgres-auth")
    for name in names:
        wait_for(f"secret {name}", lambda name=name: kube.get("secret", name))
    kept = (kube.get("secret", "fraud-postgres-auth") or {})["data"]
    old = {name: (kube.get("secret", name) or {})["data"] for name in names[:2]}
    workloads = [
        ("deployment", "fraud"),  # reads all three
        ("statefulset", "fraud-redis"),  # reads fraud-redis-auth
        ("statefulset", "fraud-postgres"),  # reads fraud-postgres-auth only
        ("deployment", "fraud-pgbouncer"),  # reads fraud-postgres-auth only
    ]
    stamps = {
        workload: wait_for(
            f"{workload} stamped with its Secrets' UIDs",
            lambda workload=workload: _secrets_stamp(kube, *workload),
        )
        for workload in workloads
    }

    kube.run("delete", "secret", *names[:2])
    started = time.monotonic()
    for name in names[:2]:
        back = wait_for(
            f"secret {name} re-created", lambda name=name: kube.get("secret", name), timeout=45
        )
        if name == "fraud-signing-key":
            # It lives as long as the model data it signs (postgres.persistence.whenDeleted
            # defaults to Retain): re-created without an owner, like the original.
            assert not back["metadata"].get("ownerReferences"), back["metadata"]
        else:
            assert back["metadata"]["ownerReferences"][0]["uid"] == uid
        assert back["data"] != old[name]  # a new value: the old one is gone for good
    sys.stderr.write(f"secrets re-created in {time.monotonic() - started:.1f}s\n")
    assert (kube.get("secret", "fraud-postgres-auth") or {})["data"] == kept
    for workload in workloads[:2]:
        wait_for(
            f"{workload} rolled for its re-created Secret",
            lambda workload=workload: _secrets_stamp(kube, *workload) != stamps[workload],
            timeout=30,
        )
    for workload in workloads[2:]:
        assert _secrets_stamp(kube, *workload) == stamps[workload], workload

    # A later resync leaves every Secret and workload alone (existence checks are reads).
    def versions() -> dict[tuple[str, str], str]:
        secrets = {
            ("secret", name): (kube.get("secret", name) or {})["metadata"]["resourceVersion"]
            for name in names
        }
        specs = {
            workload: str((kube.get(*workload) or {})["metadata"]["generation"])
            for workload in workloads
        }
        return secrets | specs

    before = versions()
    time.sleep(20)
    assert versions() == before


def test_api_server_restart_converges(kube: Kube, operator: Operator, kube_cluster: Any) -> None:
    """Last in the module: the API server goes away and comes back with the same state."""
    if not getattr(kube_cluster, "owned", True):
        pytest.skip("reusing a shared cluster (make cluster): not restarting it under others")
    kube.apply(kube.detector("fraud"))
    ready(kube, "fraud", timeout=90)
    kube_cluster.stop()
    time.sleep(5)
    kube_cluster.start()
    wait_for(
        "API server back",
        lambda: kube.run("get", "ad", "fraud", check=False).returncode == 0,
        timeout=120,
    )
    edited_at = time.monotonic()
    kube.apply(kube.detector("fraud", {**BASE_SPEC, "server": {"workers": 6}}))
    wait_for(
        "edit converged after API server restart",
        lambda: (
            (kube.get("configmap", "fraud-config") or {}).get("data", {}).get("PYNOMALY_WORKERS")
            == "6"
        ),
        timeout=90,
    )
    ready(kube, "fraud", timeout=90 - (time.monotonic() - edited_at) + 30)
    assert operator.process is not None
    assert operator.process.poll() is None


@pytest.fixture
def hinting_operator(
    kube_cluster: Any, kube_namespace: str, crd: None, tmp_path: pathlib.Path
) -> Iterator[Operator]:
    """The operator with pod hints after 2 s instead of 60 (the behaviour, not the wait)."""
    env = {"PYNOMALY_OPERATOR_POD_HINT_AFTER_SECONDS": "2"}
    with running_operator(kube_cluster, kube_namespace, tmp_path / "operator.log", env) as op:
        yield op


def test_a_stuck_component_says_why_from_its_pods(kube: Kube, hinting_operator: Operator) -> None:
    """Detector pods no node can take: DetectorReady (and Ready) name the scheduler's reason
    instead of only "0/1 ready"; once placement is fixed the resource is Ready and the hint
    is gone."""
    spec = {**BASE_SPEC, "placement": {"mode": "required", "instanceTypes": ["x9.nowhere"]}}
    kube.apply(kube.detector("stuck", spec))

    def hinted() -> dict[str, Any] | None:
        cond = kube.condition("stuck", "DetectorReady")
        return cond if cond and "Unschedulable" in cond["message"] else None

    cond = wait_for("DetectorReady names Unschedulable", hinted, timeout=60)
    assert cond["status"] == "False"
    assert cond["reason"] == "RollingOut"
    assert cond["message"].startswith("0/3 ready"), cond["message"]
    assert "pods Unschedulable: 0/" in cond["message"], cond["message"]
    assert "affinity" in cond["message"], cond["message"]
    ready_cond = kube.condition("stuck", "Ready")
    assert ready_cond is not None
    assert "Unschedulable" in ready_cond["message"]
    wide = kube.run("get", "anomalydetector", "stuck", "-o", "wide").stdout
    assert "MESSAGE" in wide.splitlines()[0], wide
    assert "pods Unschedulable" in wide, wide  # the reason where users look first
    kube.apply(kube.detector("stuck", {**BASE_SPEC, "placement": {"mode": "none"}}))
    body = ready(kube, "stuck", timeout=90)
    messages = [c["message"] for c in body["status"]["conditions"]]
    assert not any("Unschedulable" in m for m in messages), messages

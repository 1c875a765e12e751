"""``kubectl anomalydetector`` against the local control plane, a real operator and a
detector service process.

The operator runs as tests/operator/test_operator_cluster.py runs it. The detector pods are
KWOK fakes, so, as ``make demo`` does, a real ``pynomaly-detector serve`` runs on 127.0.0.1
with the settings the operator rendered into the ConfigMap (local stores overridden), and
the plugin reaches it with ``--endpoint``. The plugin runs as a ServiceAccount bound to
``manifests/kubectl-plugin/clusterrole.yaml`` plus ``get`` on the one token Secret: never
cluster-admin.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.operator.test_operator_cluster import BASE_SPEC, Kube, Operator, ready
from tests.ops.conftest import DATA, ROOT
from tests.support.ports import free_port

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

PLUGIN = Path(sys.executable).with_name("kubectl-anomalydetector")
NAME = "payments"
TOKEN = "plugin-test-token-0123456789"


@pytest.fixture(scope="module")
def crd(kube_cluster: Any) -> None:
    kube_cluster.kubectl("apply", "-f", str(ROOT / "crds" / "anomalydetectors.pynomaly.io.yaml"))
    kube_cluster.wait_established("anomalydetectors.pynomaly.io")


@pytest.fixture
def detector(kube_cluster: Any, kube_namespace: str, crd: None, tmp_path: Path) -> Iterator[Kube]:
    kube = Kube(kube_cluster, kube_namespace)
    operator = Operator(str(kube_cluster.kubeconfig), kube_namespace, tmp_path / "operator.log")
    operator.start()
    try:
        kube.run("create", "secret", "generic", "pg", "--from-literal=dsn=postgresql://x@db/x")
        kube.apply(
            kube.detector(
                NAME, {**BASE_SPEC, "model": {"algorithm": "IForest", "contamination": 0.02}}
            )
        )
        ready(kube, NAME, timeout=90)
        yield kube
    finally:
        operator.stop()
        sys.stderr.write(f"--- operator log tail ---\n{operator.tail()}\n")


@pytest.fixture
def user_kubeconfig(kube_cluster: Any, detector: Kube, tmp_path: Path) -> Path:
    """A kubeconfig for a ServiceAccount holding only the plugin's documented RBAC."""
    namespace = detector.namespace
    kube_cluster.kubectl(
        "apply", "-f", str(ROOT / "manifests" / "kubectl-plugin" / "clusterrole.yaml")
    )
    detector.run("create", "serviceaccount", "analyst")
    detector.run(
        "create",
        "rolebinding",
        "analyst-plugin",
        "--clusterrole=pynomaly-kubectl-plugin",
        f"--serviceaccount={namespace}:analyst",
    )
    detector.run(
        "create",
        "role",
        "analyst-token",
        "--verb=get",
        "--resource=secrets",
        f"--resource-name={NAME}-api-token",
    )
    detector.run(
        "create",
        "rolebinding",
        "analyst-token",
        "--role=analyst-token",
        f"--serviceaccount={namespace}:analyst",
    )
    token = detector.run("create", "token", "analyst", "--duration=1h").stdout.strip()
    admin = yaml.safe_load(Path(kube_cluster.kubeconfig).read_text())
    path = tmp_path / "analyst.kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": admin["clusters"],
                "users": [{"name": "analyst", "user": {"token": token}}],
                "contexts": [
                    {
                        "name": "analyst",
                        "context": {
                            "cluster": admin["clusters"][0]["name"],
                            "user": "analyst",
                            "namespace": namespace,
                        },
                    }
                ],
                "current-context": "analyst",
            }
        )
    )
    return path


@pytest.fixture
def service(detector: Kube, tmp_path: Path) -> Iterator[str]:
    """The detector service on 127.0.0.1 with the operator's rendered settings (like the demo)."""
    config = detector.get("configmap", f"{NAME}-config")
    assert config is not None
    port = free_port()
    token_file = tmp_path / "api-token"
    token_file.write_text(f"# generated\n{TOKEN}\n")
    env = {
        **os.environ,
        **{k: v for k, v in config["data"].items() if k.startswith("PYNOMALY_")},
        "PYNOMALY_HOST": "127.0.0.1",
        "PYNOMALY_PORT": str(port),
        "PYNOMALY_METRICS_PORT": "0",
        "PYNOMALY_WORKERS": "1",
        "PYNOMALY_MODEL_DIR": str(tmp_path / "models"),
        "PYNOMALY_MODEL_TRAINING_PATH": "",
        "PYNOMALY_MODEL_TRAINING_URL": "",
        "PYNOMALY_REDIS_MODE": "none",
        "PYNOMALY_DATABASE_URL": "",
        "PYNOMALY_ARTIFACT_SIGNING_KEY": "plugin-test-signing-key-0123456789abcdef",
        "PYNOMALY_API_TOKEN_FILE": str(token_file),
        "PYNOMALY_SCORING_AUTH": "token",
        "PYNOMALY_LOG_LEVEL": "WARNING",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = (tmp_path / "service.log").open("wb")
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("pynomaly-detector")), "serve"],
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            assert process.poll() is None, (tmp_path / "service.log").read_text()[-3000:]
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/livez", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "detector service did not start"
            time.sleep(0.2)
        # The operator generated Secret <name>-api-token; it is given this test's token, the
        # one the service above reads (the demo copies the Secret instead).
        secret_deadline = time.monotonic() + 60
        while detector.get("secret", f"{NAME}-api-token") is None:
            assert time.monotonic() < secret_deadline, "the operator did not create the token"
            time.sleep(0.5)
        detector.run(
            "patch",
            "secret",
            f"{NAME}-api-token",
            "--type=merge",
            "-p",
            f'{{"stringData": {{"token": "{TOKEN}"}}}}',
        )
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        log.close()


def _plugin(kubeconfig: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    kubectl = ROOT / ".cluster" / "bin" / "kubectl"
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "KUBECTL": str(kubectl)}
    env.pop("PYNOMALY_ENDPOINT", None)
    done = subprocess.run(
        [str(PLUGIN), *args], capture_output=True, text=True, env=env, check=False, timeout=120
    )
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_plugin_status_fit_score_token_as_a_namespace_user(
    user_kubeconfig: Path, service: str, detector: Kube
) -> None:
    # Not an admin: the analyst may not list Secrets or touch other namespaces.
    denied = detector.cluster.kubectl(
        "--kubeconfig", str(user_kubeconfig), "get", "secrets", check=False
    )
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr.lower()

    before = _plugin(user_kubeconfig, "status", NAME, "--endpoint", service).stdout
    assert f"AnomalyDetector {detector.namespace}/{NAME}  phase: Ready" in before
    assert f"endpoint:  http://{NAME}.{detector.namespace}.svc:8000" in before
    assert "3 ready / 3 desired" in before
    assert "range 3-20" in before
    assert f"model:     {NAME} not served (404" in before
    assert "Ready" in before
    assert "REASON" in before

    fitted = _plugin(
        user_kubeconfig, "fit", NAME, "--csv", str(DATA / "training.csv"), "--endpoint", service
    ).stdout
    assert f"fitted {NAME} v1 (IForest, 400 rows" in fitted
    assert "contamination 0.02" in fitted  # from spec.model, not the service default

    scored = _plugin(
        user_kubeconfig, "score", NAME, "--csv", str(DATA / "score.csv"), "--endpoint", service
    ).stdout
    lines = scored.splitlines()
    # `expected` is not a feature of the model: shown, not sent.
    assert lines[0].split() == ["amount", "hour", "items", "expected", "score", "verdict"]
    rows = [line.split() for line in lines[1:-1]]
    assert len(rows) == 12
    assert [row[-1] == "ANOMALY" for row in rows] == [row[3] == "1" for row in rows]
    assert lines[-1].startswith(f"3 anomalies in 12 rows ({NAME} v1")

    after = _plugin(user_kubeconfig, "status", NAME, "--endpoint", service).stdout
    assert f"model:     {NAME} v1  IForest  threshold" in after
    assert "contamination 0.02" in after
    assert "features amount,hour,items" in after
    assert "stores:    database " in after

    token = _plugin(user_kubeconfig, "token", NAME).stdout
    assert f"{detector.namespace}/{NAME}-api-token, key 'token' (exists)" in token
    assert f"kubectl get secret {NAME}-api-token -n {detector.namespace}" in token
    assert TOKEN not in token
    # The command it prints works for this user.
    secret = detector.cluster.kubectl(
        "--kubeconfig",
        str(user_kubeconfig),
        "get",
        "secret",
        f"{NAME}-api-token",
        "-o",
        "jsonpath={.data.token}",
    ).stdout
    assert base64.b64decode(secret).decode() == TOKEN


def test_plugin_without_endpoint_port_forwards_and_says_so_when_it_cannot(
    user_kubeconfig: Path, detector: Kube
) -> None:
    # KWOK pods have no kubelet: the port-forward the plugin opens is refused, and status
    # still shows the Kubernetes side with the reason the service part is missing.
    out = _plugin(user_kubeconfig, "status", NAME).stdout
    assert "phase: Ready" in out
    assert "service unreachable: kubectl port-forward service/payments failed" in out
    missing = _plugin(
        user_kubeconfig, "score", "nope", "--csv", str(DATA / "score.csv"), check=False
    )
    assert missing.returncode == 1
    assert f"AnomalyDetector {detector.namespace}/nope not found" in missing.stderr

"""The operator image, run as manifests/base/operator.yaml runs it, reconciles on the real
local control plane (markers ``images`` and ``cluster``).

The container comes from the kustomized install (uid, read-only root, /tmp emptyDir, args,
env, probes) with the image ``make images`` built. As in a cluster, it gets the
ServiceAccount's token and the API server's CA at /var/run/secrets/kubernetes.io/
serviceaccount and KUBERNETES_SERVICE_HOST/PORT, so the RBAC in manifests/base/rbac.yaml is
what it can do; the API server is reached through a loopback relay into the pod.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.images import pods
from tests.install.conftest import MANIFESTS, SAMPLES, documents, kustomize
from tests.support.controlplane import ControlPlane, wait_until

pytestmark = [pytest.mark.images, pytest.mark.cluster, pytest.mark.slow]

SYSTEM = "pynomaly-system"


def service_account_dir(cluster: ControlPlane, target: Path) -> Path:
    """What the kubelet mounts for an automounted token: token, ca.crt, namespace."""
    target.mkdir()
    token = cluster.kubectl(
        "create", "token", "pynomaly-operator", "-n", SYSTEM, "--duration=1h"
    ).stdout.strip()
    admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    ca = base64.b64decode(admin["clusters"][0]["cluster"]["certificate-authority-data"])
    (target / "token").write_text(token)
    (target / "ca.crt").write_bytes(ca)
    (target / "namespace").write_text(SYSTEM)
    for path in target.iterdir():
        path.chmod(0o644)
    target.chmod(0o755)
    return target


def test_operator_image_reconciles_a_sample(
    images: dict[str, str],
    kube_cluster: ControlPlane,
    kube_namespace: str,
    pod_workdir: Path,
    pod_name: str,
) -> None:
    install = kustomize(MANIFESTS)
    kube_cluster.kubectl(
        "apply", "--server-side", "--force-conflicts", "-f", "-", input=yaml.safe_dump_all(install)
    )
    kube_cluster.wait_established("anomalydetectors.pynomaly.io")
    manifests = pods.Manifests(install)
    deployment = manifests.get("Deployment", "pynomaly-operator")
    server = yaml.safe_load(Path(kube_cluster.kubeconfig).read_text())["clusters"][0]["cluster"][
        "server"
    ]
    address = urllib.parse.urlsplit(server)
    assert address.hostname == "127.0.0.1", server
    api_port = int(address.port or 443)

    # In-cluster clients use KUBERNETES_SERVICE_HOST/PORT (lightkube) or
    # https://kubernetes.default.svc (kopf): both lead to the API server through the relays.
    in_cluster = ["kubernetes", "kubernetes.default", "kubernetes.default.svc"]
    with pods.podman_pod(pod_name, pod_workdir, namespace=SYSTEM, hostnames=in_cluster) as pod:
        relays = [pods.forward_into(pod, api_port), pods.forward_into(pod, 443, target=api_port)]
        try:
            operator = pod.run(
                manifests,
                deployment,
                pod_name="pynomaly-operator-0",
                image=images["OPERATOR_IMAGE"],
                service_account=service_account_dir(kube_cluster, pod_workdir / "sa"),
                extra_env={
                    "KUBERNETES_SERVICE_HOST": "127.0.0.1",
                    "KUBERNETES_SERVICE_PORT": str(api_port),
                },
            )
            operator.wait("startupProbe", timeout=120)
            operator.wait("readinessProbe", timeout=60)

            sample = next(
                d for d in documents(SAMPLES / "minimal.yaml") if d["kind"] == "AnomalyDetector"
            )
            name = sample["metadata"]["name"]
            kube_cluster.kubectl(
                "create", "-n", kube_namespace, "-f", "-", input=json.dumps(sample)
            )

            def reconciled() -> dict[str, Any] | None:
                assert operator.running(), operator.logs()
                body = kube_cluster.get_json("anomalydetector", name, "-n", kube_namespace)
                status = body.get("status") or {}
                if status.get("observedGeneration") == body["metadata"][
                    "generation"
                ] and status.get("conditions"):
                    return body
                return None

            body = wait_until(reconciled, timeout=180, what="the operator image's first reconcile")
            deployed = kube_cluster.get_json("deployment", name, "-n", kube_namespace)
            assert (
                deployed["metadata"]["labels"]["app.kubernetes.io/managed-by"]
                == "pynomaly-operator"
            )
            assert body["status"]["conditions"], body["status"]
            assert operator.probe(operator.spec["livenessProbe"])
        finally:
            for relay in relays:
                relay.close()

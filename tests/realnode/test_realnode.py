"""Pods on the real node: Pod Security, Services, DNS, logs/exec, resource metrics, the HPA.

Every pod here is built from ``pynomaly.local/testbox:1`` (``e2e/node/testbox``, imported into
the node's containerd; nothing is pulled) and pinned to the real node by its label, since the
KWOK nodes would otherwise "run" it. All traffic goes to Service and pod addresses of the
node's own bridge network (10.201.0.0/16, Service range 10.0.0.0/16) from this host.
"""

from __future__ import annotations

import concurrent.futures
import json
import threading
import time
import urllib.request
from typing import Any

import pytest
import yaml

from tests.support.controlplane import ControlPlane, wait_until

from .conftest import NODE, NODE_SELECTOR, TESTBOX, RealCluster

pytestmark = [pytest.mark.realnode, pytest.mark.slow]

RESTRICTED = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def container(name: str, args: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": TESTBOX,
        "imagePullPolicy": "Never",
        "command": ["/testbox"],
        "args": args,
        "securityContext": RESTRICTED,
        **extra,
    }


def pod_spec(*containers: dict[str, Any]) -> dict[str, Any]:
    return {
        "nodeSelector": NODE_SELECTOR,
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 2,
        "containers": list(containers),
    }


WEB = container(
    "web",
    ["serve", "--listen", ":8080"],
    ports=[{"containerPort": 8080, "name": "http"}],
    readinessProbe={"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
    resources={
        "requests": {"cpu": "50m", "memory": "16Mi"},
        "limits": {"cpu": "200m", "memory": "32Mi"},
    },
)


def apply(cp: ControlPlane, ns: str, *objects: dict[str, Any]) -> None:
    cp.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump_all(objects))


def wait_ready(
    cp: ControlPlane, ns: str, selector: str, count: int = 1, timeout: float = 120
) -> list[dict[str, Any]]:
    def ready() -> list[dict[str, Any]] | None:
        pods = cp.get_json("pods", "-n", ns, "-l", selector)["items"]
        ok = [
            p
            for p in pods
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p["status"].get("conditions", [])
            )
        ]
        return ok if len(ok) >= count else None

    return wait_until(
        ready, timeout=timeout, what=f"{count} Ready pod(s) {selector} in {ns}", interval=0.5
    )


def web_objects() -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": pod_spec(WEB),
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]},
        },
    ]


def http_get(url: str, timeout: float = 5) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - our Service IP
        return str(resp.read().decode())


def test_restricted_pod_runs_as_declared(
    real_cluster: RealCluster, restricted_namespace: str
) -> None:
    """Under Pod Security ``restricted`` a uid-10001, read-only, seccomp pod runs for real."""
    cp, ns = real_cluster.cp, restricted_namespace
    apply(cp, ns, *web_objects())
    (pod,) = wait_ready(cp, ns, "app=web")
    assert pod["spec"]["nodeName"] == NODE
    assert pod["status"]["podIP"].startswith("10.201.")
    state = pod["status"]["containerStatuses"][0]
    assert state["ready"]
    assert "running" in state["state"]
    assert state["imageID"], "a real runtime reports the image it ran"
    # What the process sees inside: the uid, and that / cannot be written.
    out = cp.kubectl("exec", "-n", ns, "web", "--", "/testbox", "self").stdout
    assert out.strip() == "uid=10001 gid=10001 root-writable=false"
    # The namespace really enforces: a pod without the restricted fields is refused.
    bare = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bare"},
        "spec": {"nodeSelector": NODE_SELECTOR, "containers": [{"name": "c", "image": TESTBOX}]},
    }
    refused = cp.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(bare), check=False)
    assert refused.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in refused.stderr


def test_service_routes_from_host_and_dns_resolves_in_pods(
    real_cluster: RealCluster, restricted_namespace: str
) -> None:
    """kube-proxy routes a ClusterIP from the host; CoreDNS answers another pod's lookups."""
    cp, ns = real_cluster.cp, restricted_namespace
    client = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "client", "labels": {"app": "client"}},
        "spec": pod_spec(container("client", ["sleep"])),
    }
    apply(cp, ns, *web_objects(), client)
    wait_ready(cp, ns, "app in (web,client)", count=2)
    cluster_ip = cp.get_json("service", "web", "-n", ns)["spec"]["clusterIP"]
    body = wait_until(
        lambda: _try_get(f"http://{cluster_ip}/"),
        timeout=30,
        what=f"the ClusterIP {cluster_ip} from the host",
    )
    assert body.startswith("hello from web")

    fqdn = f"web.{ns}.svc.cluster.local"
    resolved = cp.kubectl(
        "exec", "-n", ns, "client", "--", "/testbox", "resolve", fqdn
    ).stdout.split()
    assert resolved == [cluster_ip]
    # The short name through the pod's search path, and pod -> ClusterIP -> pod on one bridge.
    out = cp.kubectl("exec", "-n", ns, "client", "--", "/testbox", "get", "http://web/").stdout
    assert out.startswith("hello from web")
    # A name that does not exist is NXDOMAIN, not a hang.
    missing = cp.kubectl(
        "exec",
        "-n",
        ns,
        "client",
        "--",
        "/testbox",
        "resolve",
        f"nope.{ns}.svc.cluster.local",
        check=False,
    )
    assert missing.returncode != 0
    assert "no such host" in missing.stderr


def _try_get(url: str) -> str | None:
    try:
        return http_get(url, timeout=2)
    except OSError:
        return None


def test_logs_and_exec_reach_the_kubelet(
    real_cluster: RealCluster, restricted_namespace: str
) -> None:
    """``kubectl logs`` and ``exec`` go API server -> kubelet -> containerd and back."""
    cp, ns = real_cluster.cp, restricted_namespace
    apply(cp, ns, *web_objects())
    wait_ready(cp, ns, "app=web")
    logs = cp.kubectl("logs", "-n", ns, "web").stdout
    assert "testbox serving on :8080" in logs
    out = cp.kubectl("exec", "-n", ns, "web", "--", "/testbox", "echo", "exec", "works").stdout
    assert out == "exec works\n"
    failed = cp.kubectl("exec", "-n", ns, "web", "--", "/testbox", "no-such-command", check=False)
    assert failed.returncode == 1
    assert "unknown command" in failed.stderr


def test_metrics_server_reports_pod_cpu(
    real_cluster: RealCluster, restricted_namespace: str
) -> None:
    """metrics.k8s.io serves the real node's and a pod's usage; ``kubectl top`` works."""
    cp, ns = real_cluster.cp, restricted_namespace
    apply(cp, ns, *web_objects())
    wait_ready(cp, ns, "app=web")
    metrics = wait_until(
        lambda: _pod_metrics(cp, ns, "web"),
        timeout=90,
        what="metrics.k8s.io for pod web",
        interval=2,
    )
    usage = metrics["containers"][0]["usage"]
    assert set(usage) >= {"cpu", "memory"}

    def top_pod() -> str | None:
        done = cp.kubectl("top", "pod", "web", "-n", ns, "--no-headers", check=False)
        return done.stdout if done.returncode == 0 and done.stdout else None

    top = wait_until(top_pod, timeout=30, what="kubectl top pod")
    assert top.split()[0] == "web"
    assert top.split()[1].endswith("m")
    node_top = cp.kubectl("top", "node", NODE, "--no-headers").stdout.split()
    assert node_top[0] == NODE


def _pod_metrics(cp: ControlPlane, ns: str, name: str) -> dict[str, Any] | None:
    done = cp.kubectl(
        "get", "--raw", f"/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods/{name}", check=False
    )
    if done.returncode != 0:
        return None
    loaded: dict[str, Any] = json.loads(done.stdout)
    return loaded if loaded.get("containers") else None


def test_hpa_scales_a_busy_deployment_up_and_back(
    real_cluster: RealCluster, restricted_namespace: str
) -> None:
    """Load through the Service raises CPU, the HPA scales up; without load it scales back.

    The HPA's windows are shortened in this test object only (15 s down-stabilisation); the
    load is bounded: 4 threads, each request burns 40 ms of a 200m-limited container.
    """
    cp, ns = real_cluster.cp, restricted_namespace
    busy = dict(
        WEB,
        resources={
            "requests": {"cpu": "50m", "memory": "16Mi"},
            "limits": {"cpu": "200m", "memory": "32Mi"},
        },
    )
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "busy"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "busy"}},
            "template": {"metadata": {"labels": {"app": "busy"}}, "spec": pod_spec(busy)},
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "busy"},
        "spec": {"selector": {"app": "busy"}, "ports": [{"port": 80, "targetPort": "http"}]},
    }
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "busy"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "busy"},
            "minReplicas": 1,
            "maxReplicas": 3,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 60},
                    },
                }
            ],
            "behavior": {
                "scaleUp": {
                    "stabilizationWindowSeconds": 0,
                    "policies": [{"type": "Pods", "value": 2, "periodSeconds": 15}],
                },
                "scaleDown": {
                    "stabilizationWindowSeconds": 15,
                    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
                },
            },
        },
    }
    apply(cp, ns, deployment, service, hpa)
    wait_ready(cp, ns, "app=busy")
    cluster_ip = cp.get_json("service", "busy", "-n", ns)["spec"]["clusterIP"]
    wait_until(lambda: _try_get(f"http://{cluster_ip}/"), timeout=30, what="the busy Service")

    timeline: list[str] = []
    t0 = time.monotonic()

    def replicas() -> int:
        status = cp.get_json("hpa", "busy", "-n", ns).get("status", {})
        current = int(status.get("currentReplicas", 0))
        desired = status.get("desiredReplicas")
        line = (
            f"{time.monotonic() - t0:6.1f}s replicas={current} desired={desired} cpu={_cpu(status)}"
        )
        if not timeline or timeline[-1].split(" ", 1)[1] != line.split(" ", 1)[1]:
            timeline.append(line)
        return current

    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            _try_get(f"http://{cluster_ip}/burn?ms=40")

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(4):
            pool.submit(load)
        try:
            wait_until(lambda: replicas() >= 2, timeout=180, what="the HPA to scale up", interval=2)
        finally:
            stop.set()
    up_at = time.monotonic() - t0
    wait_until(lambda: replicas() == 1, timeout=240, what="the HPA to scale back to 1", interval=2)
    down_at = time.monotonic() - t0
    print("\nHPA replica timeline (load on until scale-up):\n  " + "\n  ".join(timeline))
    print(
        f"scaled up after {up_at:.0f}s of load, "
        f"back to 1 replica {down_at - up_at:.0f}s after the load stopped"
    )
    events = cp.kubectl(
        "get", "events", "-n", ns, "--field-selector", "involvedObject.name=busy"
    ).stdout
    assert "SuccessfulRescale" in events


def _cpu(status: dict[str, Any]) -> str:
    for metric in status.get("currentMetrics") or []:
        current = metric.get("resource", {}).get("current", {})
        if "averageUtilization" in current:
            return f"{current['averageUtilization']}%"
    return "?"

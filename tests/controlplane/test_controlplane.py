"""Acceptance tests for the local control plane (issue #3).

They prove the harness behaves like the real thing the operator will meet: pods are scheduled
onto typed, zoned fake Nodes and become Ready, controllers reconcile, admission rejects what a
real API server rejects, and the process can be restarted on the same address and state, or
stopped without leaving anything behind. Every wait is a bounded poll.
"""

from __future__ import annotations

import functools
import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import controlplane

pytestmark = pytest.mark.cluster

Cluster = controlplane.ControlPlane
JSON = dict[str, Any]

EXPECTED_NODES = {"c5.2xlarge": 3, "c5.4xlarge": 1, "m5.large": 2}
INSTANCE_TYPE = "node.kubernetes.io/instance-type"
ZONE = "topology.kubernetes.io/zone"


def apply(cluster: Cluster, namespace: str, *manifests: JSON) -> None:
    """``kubectl apply`` the manifests into ``namespace``."""
    docs = yaml.safe_dump_all(manifests)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=docs)


def deployment(name: str, replicas: int, **pod_spec: Any) -> JSON:
    """A minimal Deployment whose pods run one (fake) container."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": "busybox"}], **pod_spec},
            },
        },
    }


def ready_replicas(cluster: Cluster, namespace: str, kind: str, name: str) -> int:
    status = cluster.get_json("-n", namespace, kind, name).get("status", {})
    assert isinstance(status, dict)
    return int(status.get("readyReplicas", 0))


def pods(cluster: Cluster, namespace: str, selector: str) -> list[JSON]:
    items = cluster.get_json("-n", namespace, "pods", "-l", selector)["items"]
    assert isinstance(items, list)
    return items


def nodes_by_type(cluster: Cluster) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    items = cluster.get_json("nodes")["items"]
    assert isinstance(items, list)
    for node in items:
        labels = node["metadata"]["labels"]
        out.setdefault(labels[INSTANCE_TYPE], set()).add(node["metadata"]["name"])
    return out


def test_fake_nodes_are_listed_with_their_labels(kube_cluster: Cluster) -> None:
    items = kube_cluster.get_json("nodes")["items"]
    assert isinstance(items, list)
    counts: dict[str, int] = {}
    zones: set[str] = set()
    for node in items:
        labels = node["metadata"]["labels"]
        name = node["metadata"]["name"]
        assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
        assert labels["kubernetes.io/hostname"] == name
        assert labels["kubernetes.io/os"] == "linux"
        assert labels["kubernetes.io/arch"] == "amd64"
        counts[labels[INSTANCE_TYPE]] = counts.get(labels[INSTANCE_TYPE], 0) + 1
        zones.add(labels[ZONE])
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready, name
        assert ready[0]["status"] == "True", name
        alloc = node["status"]["allocatable"]
        shape = {
            "c5.2xlarge": ("8", "16Gi"),
            "c5.4xlarge": ("16", "32Gi"),
            "m5.large": ("2", "8Gi"),
        }
        assert (alloc["cpu"], alloc["memory"]) == shape[labels[INSTANCE_TYPE]]
        assert alloc["pods"] == "110"
    assert counts == EXPECTED_NODES
    assert len(zones) == 2
    # And the plain table a human reads shows the labels too.
    table = kube_cluster.kubectl("get", "nodes", "-L", INSTANCE_TYPE, "-L", ZONE).stdout
    assert "c5.2xlarge" in table
    assert "us-east-1b" in table


def test_three_replica_deployment_becomes_ready(kube_cluster: Cluster, kube_namespace: str) -> None:
    apply(kube_cluster, kube_namespace, deployment("web", 3))
    controlplane.wait_until(
        lambda: ready_replicas(kube_cluster, kube_namespace, "deployment", "web") == 3,
        timeout=60,
        what="deployment web 3/3 ready",
    )
    for pod in pods(kube_cluster, kube_namespace, "app=web"):
        assert pod["status"]["phase"] == "Running"
        assert pod["status"]["podIP"]
        assert pod["spec"]["nodeName"].startswith("kwok-")


def test_required_node_affinity_lands_only_on_matching_types(
    kube_cluster: Cluster, kube_namespace: str
) -> None:
    wanted = ["c5.2xlarge", "c5.4xlarge"]
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": INSTANCE_TYPE, "operator": "In", "values": wanted}
                        ]
                    }
                ]
            }
        }
    }
    apply(kube_cluster, kube_namespace, deployment("compute", 6, affinity=affinity))
    controlplane.wait_until(
        lambda: ready_replicas(kube_cluster, kube_namespace, "deployment", "compute") == 6,
        timeout=60,
        what="deployment compute 6/6 ready",
    )
    by_type = nodes_by_type(kube_cluster)
    allowed = by_type["c5.2xlarge"] | by_type["c5.4xlarge"]
    placed = {pod["spec"]["nodeName"] for pod in pods(kube_cluster, kube_namespace, "app=compute")}
    assert placed <= allowed


def test_absent_instance_type_stays_pending_with_failed_scheduling(
    kube_cluster: Cluster, kube_namespace: str
) -> None:
    apply(
        kube_cluster,
        kube_namespace,
        deployment("gpu", 1, nodeSelector={INSTANCE_TYPE: "p4d.24xlarge"}),
    )

    def failed_scheduling() -> list[JSON]:
        events = kube_cluster.get_json(
            "-n", kube_namespace, "events", "--field-selector", "reason=FailedScheduling"
        )["items"]
        assert isinstance(events, list)
        return events

    events = controlplane.wait_until(failed_scheduling, timeout=60, what="FailedScheduling event")
    assert "didn't match Pod's node affinity/selector" in events[0]["message"]
    (pod,) = pods(kube_cluster, kube_namespace, "app=gpu")
    assert pod["status"]["phase"] == "Pending"
    assert not pod["spec"].get("nodeName")


def test_deleting_an_owner_deletes_its_dependents(
    kube_cluster: Cluster, kube_namespace: str
) -> None:
    apply(
        kube_cluster,
        kube_namespace,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}},
    )
    owner = kube_cluster.get_json("-n", kube_namespace, "configmap", "owner")
    ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": owner["metadata"]["uid"],
    }
    dependent = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "dependent", "ownerReferences": [ref]},
    }
    apply(kube_cluster, kube_namespace, dependent, deployment("owned", 2))
    controlplane.wait_until(
        lambda: ready_replicas(kube_cluster, kube_namespace, "deployment", "owned") == 2,
        timeout=60,
        what="deployment owned 2/2 ready",
    )
    kube_cluster.kubectl("delete", "-n", kube_namespace, "configmap", "owner", "--wait=false")
    kube_cluster.kubectl(
        "delete",
        "-n",
        kube_namespace,
        "deployment",
        "owned",
        "--cascade=background",
        "--wait=false",
    )

    def gone() -> bool:
        cm = kube_cluster.kubectl(
            "get", "-n", kube_namespace, "configmap", "dependent", check=False
        )
        rs = kube_cluster.get_json("-n", kube_namespace, "replicasets")["items"]
        return (
            "NotFound" in cm.stderr
            and rs == []
            and not pods(kube_cluster, kube_namespace, "app=owned")
        )

    controlplane.wait_until(gone, timeout=60, what="garbage collection of dependents")


def test_hpa_is_reconciled_by_the_controller(kube_cluster: Cluster, kube_namespace: str) -> None:
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1,
            "maxReplicas": 4,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 50},
                    },
                }
            ],
        },
    }
    apply(kube_cluster, kube_namespace, deployment("web", 1), hpa)

    def conditions() -> list[JSON]:
        status = kube_cluster.get_json("-n", kube_namespace, "hpa", "web").get("status", {})
        assert isinstance(status, dict)
        found = status.get("conditions", [])
        assert isinstance(found, list)
        return found

    # No metrics server here, so ScalingActive is False; what matters is the controller wrote it.
    found = controlplane.wait_until(conditions, timeout=60, what="HPA status conditions")
    assert {c["type"] for c in found} >= {"AbleToScale"}


@pytest.fixture
def cel_crd(kube_cluster: Cluster, kube_namespace: str) -> Iterator[str]:
    """A namespaced CRD with a structural schema and a CEL rule; yields its plural.group."""
    group = f"{kube_namespace}.pynomaly.test"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {
                                        "min": {"type": "integer"},
                                        "max": {"type": "integer"},
                                    },
                                    "x-kubernetes-validations": [
                                        {
                                            "rule": "self.min <= self.max",
                                            "message": "min must not exceed max",
                                        }
                                    ],
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
    kube_cluster.kubectl("apply", "-f", "-", input=json.dumps(crd))
    kube_cluster.kubectl(
        "wait", "--for=condition=Established", f"crd/widgets.{group}", "--timeout=30s"
    )
    try:
        yield f"widgets.{group}"
    finally:
        kube_cluster.kubectl("delete", "crd", f"widgets.{group}", "--wait=false", check=False)


def test_crd_cel_rule_rejects_a_bad_object(
    kube_cluster: Cluster, kube_namespace: str, cel_crd: str
) -> None:
    group = cel_crd.split(".", 1)[1]

    def widget(name: str, low: int, high: int) -> str:
        obj = {
            "apiVersion": f"{group}/v1",
            "kind": "Widget",
            "metadata": {"name": name, "namespace": kube_namespace},
            "spec": {"min": low, "max": high},
        }
        return json.dumps(obj)

    # Discovery of a just-established CRD can lag a moment behind the condition.
    controlplane.wait_until(
        lambda: (
            kube_cluster.kubectl(
                "apply", "-f", "-", input=widget("good", 1, 2), check=False
            ).returncode
            == 0
        ),
        timeout=30,
        what="a valid Widget to be accepted",
    )
    bad = kube_cluster.kubectl("apply", "-f", "-", input=widget("bad", 3, 2), check=False)
    assert bad.returncode != 0
    assert "min must not exceed max" in bad.stderr


def test_restricted_namespace_rejects_a_privileged_pod(
    kube_cluster: Cluster, kube_namespace: str
) -> None:
    kube_cluster.kubectl(
        "label", "namespace", kube_namespace, "pod-security.kubernetes.io/enforce=restricted"
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "root"},
        "spec": {
            "containers": [
                {"name": "main", "image": "busybox", "securityContext": {"privileged": True}}
            ]
        },
    }
    done = kube_cluster.kubectl(
        "apply", "-n", kube_namespace, "-f", "-", input=json.dumps(pod), check=False
    )
    assert done.returncode != 0
    assert 'violates PodSecurity "restricted' in done.stderr


def test_statefulset_with_volume_claim_template_runs(
    kube_cluster: Cluster, kube_namespace: str
) -> None:
    sts = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {
            "serviceName": "db",
            "replicas": 2,
            "selector": {"matchLabels": {"app": "db"}},
            "template": {
                "metadata": {"labels": {"app": "db"}},
                "spec": {
                    "containers": [
                        {
                            "name": "db",
                            "image": "postgres",
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                        }
                    ]
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "2Gi"}},
                    },
                }
            ],
        },
    }
    apply(kube_cluster, kube_namespace, sts)
    controlplane.wait_until(
        lambda: ready_replicas(kube_cluster, kube_namespace, "statefulset", "db") == 2,
        timeout=90,
        what="statefulset db 2/2 ready",
    )
    claims = kube_cluster.get_json("-n", kube_namespace, "pvc")["items"]
    assert isinstance(claims, list)
    assert sorted(c["metadata"]["name"] for c in claims) == ["data-db-0", "data-db-1"]
    assert {c["status"]["phase"] for c in claims} == {"Bound"}


# KWOK's pod-complete stage (e2e/kwok/stages.yaml) finishes a Running Job pod after this long,
# unless the pod carries this annotation (a Go duration) to finish later.
POD_COMPLETE_DELAY_ANNOTATION = "pod-complete.stage.kwok.x-k8s.io/delay"


def job(
    name: str, *, restart_policy: str = "Never", annotations: dict[str, str] | None = None
) -> JSON:
    """A one-pod Job whose (fake) container "exits 0" when KWOK's pod-complete stage says so."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": annotations or {}},
                "spec": {
                    "restartPolicy": restart_policy,
                    "containers": [{"name": "main", "image": "busybox"}],
                },
            },
        },
    }


def conditions_of(obj: JSON) -> dict[str, JSON]:
    return {c["type"]: c for c in obj.get("status", {}).get("conditions", [])}


def test_job_pods_complete_and_other_pods_keep_running(
    kube_cluster: Cluster, kube_namespace: str
) -> None:
    bare = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bare", "labels": {"app": "bare"}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox"}]},
    }
    apply(
        kube_cluster,
        kube_namespace,
        job("never"),
        job("onfailure", restart_policy="OnFailure"),
        bare,
    )

    def complete(name: str) -> JSON | None:
        body = kube_cluster.get_json("-n", kube_namespace, "job", name)
        done = conditions_of(body).get("Complete", {}).get("status") == "True"
        return body if done else None

    for name in ("never", "onfailure"):
        body = controlplane.wait_until(
            functools.partial(complete, name), timeout=30, what=f"job {name} Complete"
        )
        assert body["status"]["succeeded"] == 1
        assert not body["status"].get("failed")
        (pod,) = pods(kube_cluster, kube_namespace, f"app={name}")
        status = pod["status"]
        assert status["phase"] == "Succeeded"
        (container,) = status["containerStatuses"]
        terminated = container["state"]["terminated"]
        assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")
        assert container["ready"] is False
        ready = conditions_of(pod)["Ready"]
        assert (ready["status"], ready.get("reason")) == ("False", "PodCompleted")
        # Running first, then Succeeded a second later (the stage's delay).
        assert terminated["startedAt"] < terminated["finishedAt"]

    # A pod that no Job owns is not "completed": it stays Running and Ready.
    (pod,) = pods(kube_cluster, kube_namespace, "app=bare")
    assert pod["status"]["phase"] == "Running"
    assert conditions_of(pod)["Ready"]["status"] == "True"
    assert "running" in pod["status"]["containerStatuses"][0]["state"]


def test_deleting_a_running_job_pod_removes_it(kube_cluster: Cluster, kube_namespace: str) -> None:
    apply(
        kube_cluster,
        kube_namespace,
        job("slow", annotations={POD_COMPLETE_DELAY_ANNOTATION: "1h"}),
    )

    def running() -> JSON | None:
        found = pods(kube_cluster, kube_namespace, "app=slow")
        return found[0] if found and found[0]["status"].get("phase") == "Running" else None

    pod = controlplane.wait_until(running, timeout=30, what="the slow Job's pod Running")
    name = pod["metadata"]["name"]
    kube_cluster.kubectl("delete", "-n", kube_namespace, "pod", name, "--wait=false")

    def gone() -> bool:
        names = {p["metadata"]["name"] for p in pods(kube_cluster, kube_namespace, "app=slow")}
        return name not in names

    controlplane.wait_until(gone, timeout=30, what=f"deleted Job pod {name} removed")
    assert not kube_cluster.get_json("-n", kube_namespace, "job", "slow")["status"].get("succeeded")


def test_kubectl_version_reports_the_real_version(kube_cluster: Cluster) -> None:
    go_mod = (controlplane.REPO / "e2e" / "controlplane" / "go.mod").read_text()
    pinned = re.search(r"k8s\.io/kubernetes (v1\.\d+\.\d+)", go_mod)
    assert pinned
    out = kube_cluster.kubectl("version", "-o", "json").stdout
    server = json.loads(out)["serverVersion"]
    assert server["gitVersion"] == pinned.group(1)
    assert re.fullmatch(r"v1\.3[45]\.\d+", server["gitVersion"])
    assert (server["major"], server["minor"]) == ("1", pinned.group(1).split(".")[1])


def _refused(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _pids(state_dir: Path) -> list[int]:
    lines = (state_dir / "pids").read_text().splitlines()
    return [int(value) for key, value in (line.split() for line in lines) if key != "pgid"]


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is gone but for its parent


@pytest.fixture
def private_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A second control plane in a temp dir, for tests that stop or restart it."""
    problem = None
    try:
        controlplane.build()
    except controlplane.ControlPlaneError as err:
        problem = str(err)
    if problem is not None:
        controlplane.fail_or_skip(problem)
    cluster = Cluster(state_dir=tmp_path / "cp")
    cluster.state_dir.mkdir()
    try:
        yield cluster
    finally:
        cluster.stop()


def test_restart_keeps_address_certificates_and_state(private_cluster: Cluster) -> None:
    first = private_cluster.start()
    print(f"control plane start to READY: {first:.1f}s")
    # The issue's goal is < 20 s; the assertion is loose because CI machines are noisy.
    assert first < 60
    ports = private_cluster.ports()
    private_cluster.kubectl("create", "configmap", "survivor", "--from-literal=k=v")

    restart = private_cluster.restart_apiserver()
    print(f"control plane restart to READY: {restart:.1f}s")
    assert private_cluster.ports() == ports
    # Same kubeconfig file, untouched, still authenticates and sees the old object.
    cm = private_cluster.get_json("configmap", "survivor")
    assert cm["data"] == {"k": "v"}
    assert len(nodes_by_type(private_cluster)["c5.2xlarge"]) == 3


def test_stop_leaves_no_process_and_no_listening_port(private_cluster: Cluster) -> None:
    private_cluster.start()
    ports = private_cluster.ports()
    pids = _pids(private_cluster.state_dir)
    assert len(pids) == 3  # controlplane, scheduler, kwok
    assert not any(_refused(port) for key, port in ports.items() if key != "etcdPeer")

    private_cluster.stop()

    assert not [pid for pid in pids if _alive(pid)]
    assert all(_refused(port) for port in ports.values())

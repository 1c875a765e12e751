"""A live Argo CD syncs the install and a detector from Git, judges it with our health check,
and prunes it (marker ``argocd``; ``make test-argocd``).

One story, in order, on one local Git repository (``git_repo``): the two committed
Applications sync the CRD, the install and the minimal sample; a commit changes
``contamination``; a commit with a spec the API server refuses; a commit with a spec the
operator marks Degraded; a commit removing the detector. Each scenario leaves the detector
Synced and Healthy (or, the last, gone) for the next. The operator runs on the host as in
``make demo``; the install's Deployment gets a KWOK pod.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.gitops.conftest import DETECTOR_NAMESPACE, INSTALL_NAMESPACE
from tests.support.argocd import ArgoCD
from tests.support.controlplane import ControlPlane, wait_until
from tests.support.git_repos import GitRepo
from tests.support.operator_process import OperatorProcess

pytestmark = [pytest.mark.argocd, pytest.mark.slow]

OPERATOR_APP = "pynomaly-operator"
DETECTOR_APP = "pynomaly-detector-minimal"
SAMPLE = "manifests/samples/minimal.yaml"
DETECTOR = "payments"
SYNC_TIMEOUT = 180.0  # the detector's first sync may wait for the CRD through retry backoff


def _detector_yaml(body: str) -> str:
    """The minimal sample with ``spec.model`` replaced by ``body`` (YAML, 4-space indented)."""
    return (
        "apiVersion: pynomaly.io/v1alpha1\n"
        "kind: AnomalyDetector\n"
        "metadata:\n"
        "  name: payments\n"
        "spec:\n"
        "  model:\n"
        f"{body}"
    )


def _status(app: dict[str, Any]) -> dict[str, Any]:
    status: dict[str, Any] = app.get("status") or {}
    return status


def _state(argocd: ArgoCD, name: str) -> tuple[str, str, str]:
    """(sync status, health status, synced revision) of an Application."""
    status = _status(argocd.application(name))
    sync = status.get("sync") or {}
    return (
        sync.get("status", ""),
        (status.get("health") or {}).get("status", ""),
        sync.get("revision", ""),
    )


def _resource(app: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    """The Application's entry for one managed resource (sync status and our health)."""
    for entry in _status(app).get("resources") or []:
        if entry.get("kind") == kind and entry.get("name") == name:
            found: dict[str, Any] = entry
            return found
    return {}


def _detector_health(argocd: ArgoCD) -> dict[str, Any]:
    """What Argo CD's health check (our Lua) said about the AnomalyDetector."""
    health: dict[str, Any] = (
        _resource(argocd.application(DETECTOR_APP), "AnomalyDetector", DETECTOR).get("health") or {}
    )
    return health


def _live(cluster: ControlPlane) -> dict[str, Any]:
    return cluster.get_json("-n", DETECTOR_NAMESPACE, "anomalydetector", DETECTOR)


def _synced_healthy(argocd: ArgoCD, name: str, revision: str | None = None) -> bool:
    argocd.check_running()
    sync, health, synced = _state(argocd, name)
    return sync == "Synced" and health == "Healthy" and revision in (None, synced)


def _wait_synced_healthy(argocd: ArgoCD, name: str, revision: str | None = None) -> None:
    wait_until(
        lambda: _synced_healthy(argocd, name, revision),
        timeout=SYNC_TIMEOUT,
        interval=1,
        what=f"Application {name} Synced and Healthy at {revision or 'any revision'} "
        f"(state: {_state(argocd, name)})",
    )


def test_applications_sync_the_install_then_the_detector_healthy_by_our_health_check(
    argocd: ArgoCD,
    kube_cluster: ControlPlane,
    git_repo: GitRepo,
    operator: OperatorProcess,
    applications: dict[str, dict[str, Any]],
) -> None:
    head = git_repo.head()
    _wait_synced_healthy(argocd, OPERATOR_APP, head)
    install = argocd.application(OPERATOR_APP)
    crd = _resource(install, "CustomResourceDefinition", "anomalydetectors.pynomaly.io")
    assert crd.get("status") == "Synced", crd
    deployment = _resource(install, "Deployment", "pynomaly-operator")
    assert deployment.get("namespace") == INSTALL_NAMESPACE
    assert deployment.get("health", {}).get("status") == "Healthy", deployment

    # The install's Deployment has a KWOK pod; the operator itself runs here, as in the demo.
    operator.start()
    _wait_synced_healthy(argocd, DETECTOR_APP, head)

    live = _live(kube_cluster)
    ready = next(c for c in live["status"]["conditions"] if c["type"] == "Ready")
    assert live["status"]["phase"] == "Ready"
    # Argo CD has no built-in health for our kind: this status and message are health.lua's.
    assert _detector_health(argocd) == {
        "status": "Healthy",
        "message": f"{ready['reason']}: {ready['message']}",
    }


def test_contamination_commit_is_progressing_until_observed_then_healthy_without_drift(
    argocd: ArgoCD, kube_cluster: ControlPlane, git_repo: GitRepo, operator: OperatorProcess
) -> None:
    # Hold the operator so the new generation stays unobserved long enough to see it.
    operator.stop()
    git_repo.write(SAMPLE, _detector_yaml("    algorithm: IForest\n    contamination: 0.02\n"))
    head = git_repo.commit("payments: contamination 0.02")

    def synced_unobserved() -> dict[str, Any] | None:
        argocd.check_running()
        sync, _, revision = _state(argocd, DETECTOR_APP)
        health = _detector_health(argocd)
        if sync == "Synced" and revision == head and health.get("status") == "Progressing":
            return health
        return None

    health = wait_until(synced_unobserved, timeout=60, interval=1, what="sync, then Progressing")
    live = _live(kube_cluster)
    assert live["spec"]["model"]["contamination"] == 0.02
    generation = live["metadata"]["generation"]
    assert live["status"]["observedGeneration"] < generation
    assert health["message"] == f"Waiting for the operator to observe generation {generation}"
    assert _state(argocd, DETECTOR_APP)[1] == "Progressing"

    operator.start()
    _wait_synced_healthy(argocd, DETECTOR_APP, head)
    live = _live(kube_cluster)
    assert live["status"]["observedGeneration"] == generation

    # No drift loop: the API server's CRD defaults (the live spec has far more than Git's two
    # fields) and what the operator writes (status, finalizers, annotations) never make
    # either Application OutOfSync, so no further sync runs, across several comparisons.
    assert set(live["spec"]) > {"model"}, live["spec"]
    before = {name: argocd.application(name) for name in (DETECTOR_APP, OPERATOR_APP)}
    compared: dict[str, set[str]] = {name: set() for name in before}

    def compared_three_times() -> bool:
        for name in before:
            app = argocd.application(name)
            sync, _, _ = _state(argocd, name)
            # Health may pass through Progressing while the detector's pods roll out; the
            # sync status must not move.
            assert sync == "Synced", (name, _status(app))
            compared[name].add(_status(app).get("reconciledAt", ""))
        return all(len(seen) >= 3 for seen in compared.values())

    wait_until(compared_three_times, timeout=60, interval=1, what="three comparisons each")
    for name, app in before.items():
        after = argocd.application(name)
        assert _status(after).get("operationState", {}).get("startedAt") == _status(app).get(
            "operationState", {}
        ).get("startedAt"), f"{name} ran another sync"
        assert len(_status(after).get("history") or []) == len(_status(app).get("history") or [])
    assert _live(kube_cluster)["metadata"]["generation"] == generation
    _wait_synced_healthy(argocd, DETECTOR_APP, head)


def test_spec_refused_by_the_api_server_fails_the_sync_with_its_message(
    argocd: ArgoCD, kube_cluster: ControlPlane, git_repo: GitRepo
) -> None:
    git_repo.write(SAMPLE, _detector_yaml("    algorithm: IForest\n    contamination: 0.9\n"))
    git_repo.commit("payments: contamination 0.9 (above the CRD's maximum)")
    refusal = "spec.model.contamination in body should be less than or equal to 0.5"

    def refused() -> dict[str, Any] | None:
        argocd.check_running()
        operation = _status(argocd.application(DETECTOR_APP)).get("operationState") or {}
        return operation if refusal in json.dumps(operation) else None

    operation = wait_until(refused, timeout=90, interval=1, what="the API server's refusal")
    failed = [
        r
        for r in (operation.get("syncResult") or {}).get("resources") or []
        if r.get("kind") == "AnomalyDetector"
    ]
    assert failed, operation
    assert failed[0]["status"] == "SyncFailed", operation
    assert refusal in failed[0]["message"]
    assert _state(argocd, DETECTOR_APP)[0] == "OutOfSync"
    # The running detector is untouched and still judged Healthy.
    assert _live(kube_cluster)["spec"]["model"]["contamination"] == 0.02
    assert _detector_health(argocd)["status"] == "Healthy"

    # A fixing commit is picked up by the next retry (retry.refresh) and syncs.
    git_repo.write(SAMPLE, _detector_yaml("    algorithm: IForest\n    contamination: 0.03\n"))
    head = git_repo.commit("payments: contamination 0.03")
    _wait_synced_healthy(argocd, DETECTOR_APP, head)
    assert _live(kube_cluster)["spec"]["model"]["contamination"] == 0.03


def test_spec_the_operator_marks_degraded_is_degraded_in_argocd_with_our_message(
    argocd: ArgoCD, kube_cluster: ControlPlane, git_repo: GitRepo
) -> None:
    body = "    algorithm: IForest\n    contamination: 0.03\n    parameters:\n      n_trees: 5\n"
    git_repo.write(SAMPLE, _detector_yaml(body))
    head = git_repo.commit("payments: an IForest parameter that does not exist")

    def degraded() -> dict[str, Any] | None:
        argocd.check_running()
        sync, app_health, revision = _state(argocd, DETECTOR_APP)
        health = _detector_health(argocd)
        ok = (sync, app_health, revision, health.get("status")) == (
            "Synced",
            "Degraded",
            head,
            "Degraded",
        )
        return health if ok else None

    health = wait_until(degraded, timeout=90, interval=1, what="Synced and Degraded")
    live = _live(kube_cluster)
    condition = next(c for c in live["status"]["conditions"] if c["type"] == "Degraded")
    assert (condition["status"], condition["reason"]) == ("True", "InvalidParameters")
    assert "n_trees" in condition["message"]
    assert health["message"] == f"InvalidParameters: {condition['message']}"

    git_repo.write(SAMPLE, _detector_yaml("    algorithm: IForest\n    contamination: 0.03\n"))
    _wait_synced_healthy(argocd, DETECTOR_APP, git_repo.commit("payments: parameters removed"))


def _owned_by(cluster: ControlPlane, namespace: str, root_uid: str) -> dict[str, str]:
    """Every object in ``namespace`` whose owner chain leads to ``root_uid``: uid -> name."""
    kinds = cluster.kubectl(
        "api-resources", "--namespaced", "--verbs=list", "-o", "name"
    ).stdout.split()
    kinds = [k for k in kinds if k.split(".")[0] not in {"events", "bindings"}]
    listed = cluster.get_json("-n", namespace, ",".join(kinds))["items"]
    owners = {
        item["metadata"]["uid"]: [o["uid"] for o in item["metadata"].get("ownerReferences", [])]
        for item in listed
    }
    names = {
        item["metadata"]["uid"]: f"{item['kind']}/{item['metadata']['name']}" for item in listed
    }

    def leads_to_root(uid: str, seen: frozenset[str] = frozenset()) -> bool:
        return any(
            o == root_uid or (o not in seen and leads_to_root(o, seen | {uid}))
            for o in owners.get(uid, [])
        )

    return {uid: names[uid] for uid in owners if leads_to_root(uid)}


def test_removing_the_detector_from_git_prunes_it_and_every_child(
    argocd: ArgoCD, kube_cluster: ControlPlane, git_repo: GitRepo
) -> None:
    uid = _live(kube_cluster)["metadata"]["uid"]
    children = _owned_by(kube_cluster, DETECTOR_NAMESPACE, uid)
    kinds = {name.split("/")[0] for name in children.values()}
    assert {"Deployment", "Service", "ConfigMap", "Secret", "StatefulSet"} <= kinds, children

    git_repo.remove(SAMPLE)
    head = git_repo.commit("payments: removed")

    def gone() -> bool:
        argocd.check_running()
        found = kube_cluster.kubectl(
            "-n", DETECTOR_NAMESPACE, "get", "anomalydetector", DETECTOR, check=False
        )
        return found.returncode != 0 and "NotFound" in found.stderr

    wait_until(gone, timeout=120, interval=1, what="the detector pruned")
    wait_until(
        lambda: not _owned_by(kube_cluster, DETECTOR_NAMESPACE, uid),
        timeout=60,
        interval=1,
        what=f"every child of the detector deleted (there were {sorted(children.values())})",
    )
    # Only the stores' data volumes stay: persistence.whenDeleted defaults to Retain (the data
    # survives an accidental delete); the StatefulSet controller never owns them then.
    claims = kube_cluster.get_json("-n", DETECTOR_NAMESPACE, "persistentvolumeclaims")["items"]
    assert all(c["metadata"]["name"].startswith("data-payments-") for c in claims), [
        c["metadata"]["name"] for c in claims
    ]
    _wait_synced_healthy(argocd, DETECTOR_APP, head)
    assert not _status(argocd.application(DETECTOR_APP)).get("resources")

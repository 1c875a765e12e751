"""Why a component's pods are not ready: the one-line hint its condition's message gains.

The pod bodies are shaped as the API server returns them (status fields of Kubernetes 1.35
for an image that cannot be pulled, a crash loop, a kubelet rejection under DiskPressure, a
pod no node fits); the reconcile lists them only for a condition False for a while.
"""

from __future__ import annotations

from typing import Any

from pynomaly_operator import status
from pynomaly_operator.status import pods
from tests.operator.test_status import compute, conds, deployment, parse


def pod(
    *,
    phase: str = "Pending",
    reason: str | None = None,
    message: str | None = None,
    containers: list[dict[str, Any]] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    deleting: bool = False,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"name": "fraud-abc"},
        "status": {"phase": phase, "conditions": conditions or []},
    }
    if deleting:
        body["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    if reason:
        body["status"]["reason"] = reason
    if message:
        body["status"]["message"] = message
    if containers is not None:
        body["status"]["containerStatuses"] = containers
    return body


def waiting(reason: str, message: str = "", **extra: Any) -> dict[str, Any]:
    return {
        "name": "detector",
        "ready": False,
        "restartCount": extra.pop("restarts", 0),
        "state": {"waiting": {"reason": reason, "message": message}},
        **extra,
    }


UNSCHEDULABLE = pod(
    conditions=[
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/4 nodes are available: 4 node(s) didn't match Pod's node "
            "affinity/selector. preemption: 0/4 nodes are available: 4 Preemption is not "
            "helpful for scheduling.",
        }
    ]
)
EVICTED = pod(
    phase="Failed",
    reason="Evicted",
    message="Pod was rejected: The node had condition: [DiskPressure]. ",
)


def test_an_image_that_cannot_be_pulled_is_named_with_the_kubelets_message() -> None:
    pulling = pod(
        containers=[waiting("ImagePullBackOff", 'Back-off pulling image "pynomaly/detector:9.9"')]
    )
    assert pods.why_not_ready([pulling]) == (
        'container detector ImagePullBackOff: Back-off pulling image "pynomaly/detector:9.9"'
    )


def test_a_crash_loop_names_the_last_exit() -> None:
    crashing = pod(
        phase="Running",
        containers=[
            waiting(
                "CrashLoopBackOff",
                "back-off 40s restarting failed container=detector pod=fraud-abc",
                restarts=3,
                lastState={"terminated": {"exitCode": 137, "reason": "OOMKilled"}},
            )
        ],
    )
    assert pods.why_not_ready([crashing]) == (
        "container detector CrashLoopBackOff: last exit 137 (OOMKilled)"
    )


def test_rejected_and_unschedulable_pods_are_named_without_pod_names_or_counts() -> None:
    assert pods.why_not_ready([EVICTED, EVICTED]) == (
        "pods Evicted: Pod was rejected: The node had condition: [DiskPressure]."
    )
    hint = pods.why_not_ready([UNSCHEDULABLE])
    assert hint is not None
    assert hint.startswith("pods Unschedulable: 0/4 nodes are available: 4 node(s) didn't")
    assert "fraud-abc" not in hint


def test_the_most_telling_reason_wins() -> None:
    pulling = pod(containers=[waiting("ErrImagePull", "not found")])
    # A container that cannot start says more than a rejected or an unplaced sibling.
    assert pods.why_not_ready([EVICTED, UNSCHEDULABLE, pulling]) == (
        "container detector ErrImagePull: not found"
    )
    assert pods.why_not_ready([UNSCHEDULABLE, EVICTED]) == pods.why_not_ready([EVICTED])


def test_pods_that_are_only_starting_or_going_give_no_hint() -> None:
    starting = pod(containers=[waiting("ContainerCreating")])
    running = pod(
        phase="Running",
        containers=[{"name": "detector", "ready": False, "state": {"running": {}}}],
    )
    assert pods.why_not_ready([starting, running]) is None
    assert pods.why_not_ready([{**EVICTED, **pod(deleting=True, phase="Failed")}]) is None
    assert pods.why_not_ready([]) is None


def test_a_container_restarting_without_becoming_ready_is_named() -> None:
    flapping = pod(
        phase="Running",
        containers=[
            {
                "name": "redis",
                "ready": False,
                "state": {"running": {}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}},
            }
        ],
    )
    assert pods.why_not_ready([flapping]) == (
        "container redis not ready, restarted (last exit 1, Error)"
    )


def test_a_long_message_is_clipped() -> None:
    long = pod(phase="Failed", reason="Evicted", message="x" * 1000)
    hint = pods.why_not_ready([long])
    assert hint is not None
    assert len(hint) == pods.MAX_HINT
    assert hint.endswith("...")


def test_the_hint_joins_a_false_condition_and_ready_and_leaves_true_ones_alone() -> None:
    hints = {
        status.DETECTOR_READY: "pods Unschedulable: 0/4 nodes are available",
        "RedisReady": "container redis ImagePullBackOff",
    }
    result = compute(parse(), deployment=deployment(ready=0), pod_hints=hints)
    c = conds(result)
    assert c["DetectorReady"]["message"] == (
        "0/3 ready, 3 updated, 0 available; pods Unschedulable: 0/4 nodes are available"
    )
    assert "pods Unschedulable" in c["Ready"]["message"]
    # RedisReady is True here (no store conditions given: not configured), so no hint.
    assert "ImagePullBackOff" not in c["RedisReady"]["message"]
    healthy = compute(parse(), pod_hints=hints)
    assert "Unschedulable" not in conds(healthy)["DetectorReady"]["message"]

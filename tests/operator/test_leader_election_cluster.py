"""Two operator replicas on the real control plane: one Lease, one writer, a fast hand-over.

Both processes run ``pynomaly-operator run`` with ``PYNOMALY_OPERATOR_LEADER_ELECTION=true``
and the default timings (Lease 10 s, renew deadline 7 s, retry 2 s), as the install manifest
runs them. Writes are counted from each process's own request log (every API request it
makes is logged), so "nothing written twice" is measured, not assumed. The leader is killed
with SIGKILL, so it cannot release the Lease: the hand-over is the slow path.
"""

from __future__ import annotations

import pathlib
import time
from typing import Any

import pytest

from tests.operator.test_operator_cluster import (
    BASE_SPEC,
    Kube,
    Operator,
    ready,
    wait_for,
)

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

LEASE = "pynomaly-operator"


def _non_lease_writes(op: Operator) -> list[str]:
    return [line for line in op.writes() if "/leases" not in line]


def _holder(kube: Kube) -> str | None:
    lease = kube.get("lease", LEASE) or {}
    holder: str | None = (lease.get("spec") or {}).get("holderIdentity")
    return holder


@pytest.fixture
def replicas(kube_cluster: Any, kube_namespace: str, crd: None, tmp_path: pathlib.Path) -> Any:
    ops = {
        identity: Operator(
            str(kube_cluster.kubeconfig),
            kube_namespace,
            tmp_path / f"{identity}.log",
            env={
                "PYNOMALY_OPERATOR_LEADER_ELECTION": "true",
                "PYNOMALY_OPERATOR_LEASE_NAMESPACE": kube_namespace,
                "PYNOMALY_OPERATOR_IDENTITY": identity,
            },
        )
        for identity in ("replica-a", "replica-b")
    }
    try:
        for op in ops.values():
            op.start()
        yield ops
    finally:
        for op in ops.values():
            op.stop()


def test_only_the_leader_writes_and_a_killed_leader_is_replaced_within_15s(
    kube: Kube, replicas: dict[str, Operator]
) -> None:
    leader_id = wait_for("a Lease holder", lambda: _holder(kube), timeout=30)
    assert leader_id in replicas
    leader = replicas[leader_id]
    (standby,) = [op for identity, op in replicas.items() if identity != leader_id]

    kube.apply(kube.detector("fraud"))
    ready(kube, "fraud", timeout=90)
    assert _non_lease_writes(leader), "the leader created the children"
    assert _non_lease_writes(standby) == [], "the standby wrote while the leader ran"
    # The standby only reads the Lease (GET) and never renews it while the leader lives.
    assert [line for line in standby.writes() if "/leases" in line] == []

    # Drift while both run: corrected once, by the leader only (no flapping between them).
    before = len(_non_lease_writes(leader))
    kube.run("patch", "hpa", "fraud", "--type=merge", "-p", '{"spec": {"maxReplicas": 99}}')
    wait_for(
        "hpa restored",
        lambda: (kube.get("hpa", "fraud") or {}).get("spec", {}).get("maxReplicas") == 20,
        timeout=30,
    )
    time.sleep(3)  # room for a second (wrong) correction to show up in either log
    hpa_writes = [
        line
        for line in _non_lease_writes(leader)[before:]
        if "horizontalpodautoscalers/fraud" in line
    ]
    assert len(hpa_writes) == 1, hpa_writes
    assert _non_lease_writes(standby) == []

    # Kill the leader (no release), change the spec at once: the standby takes over and
    # rolls the change out within 15 s of the kill.
    dep = kube.get("deployment", "fraud")
    assert dep is not None
    old_hash = dep["spec"]["template"]["metadata"]["annotations"]["pynomaly.io/config-hash"]
    assert leader.process is not None
    leader.process.kill()
    leader.process.wait(timeout=10)
    killed = time.monotonic()
    kube.apply(kube.detector("fraud", {**BASE_SPEC, "server": {"workers": 2}}))

    def rolled() -> bool:
        d = kube.get("deployment", "fraud") or {}
        annotations = d["spec"]["template"]["metadata"]["annotations"]
        return bool(annotations["pynomaly.io/config-hash"] != old_hash)

    wait_for("the new leader rolls the spec change", rolled, timeout=15)
    took = time.monotonic() - killed
    assert took < 15, took
    cm = kube.get("configmap", "fraud-config") or {}
    assert cm["data"]["PYNOMALY_WORKERS"] == "2"
    assert _holder(kube) != leader_id
    body = ready(kube, "fraud", timeout=60)
    assert body["status"]["observedGeneration"] == 2
    print(f"hand-over: spec change rolled out {took:.1f}s after SIGKILL of the leader")


def test_a_leader_stopped_gracefully_releases_the_lease_at_once(
    kube: Kube, replicas: dict[str, Operator]
) -> None:
    leader_id = wait_for("a Lease holder", lambda: _holder(kube), timeout=30)
    (standby_id,) = [identity for identity in replicas if identity != leader_id]
    replicas[leader_id].stop()  # SIGTERM: kopf's cleanup releases the Lease
    stopped = time.monotonic()
    wait_for("the standby holds the Lease", lambda: _holder(kube) == standby_id, timeout=8)
    # Well under the 10 s a killed leader's Lease takes to expire.
    assert time.monotonic() - stopped < 5

"""Status tells the truth about a spec change (marker ``cluster``): what Argo CD reads.

After a spec edit the operator applies a new pod template. Until the Deployment's controller
has observed it and rolled every replica, the resource must not report Ready for the new
generation: Argo CD's health check trusts ``observedGeneration`` + Ready and would otherwise
show Healthy -> Progressing -> Healthy for one edit. Every status version is recorded from a
watch, so a short-lived wrong status cannot slip between two polls.
"""

from __future__ import annotations

import subprocess
import threading
from typing import Any

import pytest

from tests.operator.test_operator_cluster import BASE_SPEC, Kube, Operator, ready, wait_for
from tests.support.controlplane import KUBECTL

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

TEMPLATE = (
    "{.metadata.generation} {.status.observedGeneration} {.status.phase} "
    '{.status.conditions[?(@.type=="Ready")].status}{"\\n"}'
)


class StatusWatch:
    """``kubectl get -w`` of one AnomalyDetector: every status version, in order."""

    def __init__(self, kube: Kube, name: str) -> None:
        self.lines: list[list[str]] = []
        self.process = subprocess.Popen(
            [
                str(KUBECTL),
                f"--kubeconfig={kube.cluster.kubeconfig}",
                "-n",
                kube.namespace,
                "get",
                "anomalydetector",
                name,
                "--watch",
                "-o",
                f"jsonpath={TEMPLATE}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.split())

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def test_a_spec_change_is_not_ready_until_the_deployment_has_rolled_it_out(
    kube: Kube, operator: Operator
) -> None:
    kube.apply(kube.detector("fraud"))
    ready(kube, "fraud", timeout=90)
    watch = StatusWatch(kube, "fraud")
    try:
        wait_for("the watch's first line", lambda: watch.lines, timeout=15)
        kube.apply(kube.detector("fraud", {**BASE_SPEC, "server": {"workers": 2}}))
        body = ready(kube, "fraud", timeout=90)
        assert body["metadata"]["generation"] == 2
        wait_for(
            "the Ready status in the watch",
            lambda: any(line[1:4] == ["2", "Ready", "True"] for line in watch.lines),
            timeout=15,
        )
    finally:
        watch.stop()
    claims = [line for line in watch.lines if len(line) >= 4 and line[1] == "2"]
    assert claims, watch.lines
    # The first status written for generation 2 says the rollout is under way...
    first = claims[0]
    assert first[2:4] == ["Progressing", "False"], watch.lines
    # ...and Ready comes only after the Deployment observed and rolled out the new template.
    dep: dict[str, Any] = kube.get("deployment", "fraud") or {}
    assert dep["status"]["observedGeneration"] == dep["metadata"]["generation"]
    assert dep["status"]["updatedReplicas"] == dep["spec"]["replicas"]
    # Never Ready for generation 2, then not Ready again (no Healthy -> Progressing -> Healthy).
    states = [line[3] for line in claims]
    first_ready = states.index("True")
    assert all(state == "True" for state in states[first_ready:]), watch.lines

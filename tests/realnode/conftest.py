"""Fixtures for the real-node tests: a local cluster whose ``c5.2xlarge`` node runs real pods.

``make cluster REAL_NODE=1`` (``e2e/cluster.sh``, ``e2e/node/README.md``) starts the control
plane and beside its KWOK nodes a real one: containerd + runc, a kubelet and kube-proxy of the
control plane's Kubernetes version, CoreDNS and metrics-server. These tests need root and the
Debian packages of ``scripts/node-deps.sh``, take minutes, and so run only under their marker
and target: ``make test-realnode`` (``PYNOMALY_REAL_NODE=1 pytest -m realnode tests/realnode``).
Without ``PYNOMALY_REAL_NODE=1`` they are deselected, never skipped, so ``make check`` does not
slow down and reports them as deselected. The HPA test with the guide's default windows
(marker ``hpa_defaults``, ~15 min) is deselected too unless ``PYNOMALY_HPA_DEFAULTS=1``
(``make test-hpa-defaults``); the summary line says so.

``real_cluster`` (session) reuses a running ``make cluster REAL_NODE=1`` when its node is Ready;
otherwise it starts a private cluster with a real node in a temporary directory and stops it at
the end (the last test, ``test_zz_teardown.py``, does that stop itself and checks that nothing
is left on the host).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.controlplane import CLUSTER_SH, SHARED_DIR, ControlPlane, readyz

from .hoststate import HostState, snapshot

ROOT = Path(__file__).resolve().parents[2]
ENV = "PYNOMALY_REAL_NODE"
HPA_DEFAULTS_ENV = "PYNOMALY_HPA_DEFAULTS"
NODE = "real-c5-2xlarge-0"
NODE_SELECTOR = {"pynomaly.dev/real-node": "true"}
TESTBOX = "pynomaly.local/testbox:1"

_summary = pytest.StashKey[str]()
_deselected_hpa = pytest.StashKey[int]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect ``realnode`` tests unless ``PYNOMALY_REAL_NODE=1`` (make test-realnode), and
    ``hpa_defaults`` ones unless also ``PYNOMALY_HPA_DEFAULTS=1`` (make test-hpa-defaults)."""
    if os.environ.get(ENV) != "1":
        _deselect(config, items, lambda i: i.get_closest_marker("realnode") is not None)
    elif os.environ.get(HPA_DEFAULTS_ENV) != "1":
        dropped = _deselect(
            config, items, lambda i: i.get_closest_marker("hpa_defaults") is not None
        )
        if dropped:
            config.stash[_deselected_hpa] = dropped


def _deselect(
    config: pytest.Config, items: list[pytest.Item], drop: Callable[[pytest.Item], bool]
) -> int:
    dropped = [i for i in items if drop(i)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [i for i in items if not drop(i)]
    return len(dropped)


@dataclasses.dataclass
class RealCluster:
    """The control plane plus its real node; ``owned`` when this session started it."""

    cp: ControlPlane
    owned: bool
    before: HostState | None
    """The host before this session started the cluster (owned clusters only)."""
    start_seconds: float | None = None
    stopped: bool = False

    def env(self) -> dict[str, str]:
        return {**os.environ, "CLUSTER_DIR": str(self.cp.state_dir), "REAL_NODE": "1"}

    def stop(self) -> float:
        """``e2e/cluster.sh stop`` (node teardown, then the control plane); the seconds."""
        t = time.monotonic()
        done = subprocess.run(
            ["bash", str(CLUSTER_SH), "stop"],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        self.stopped = True
        if done.returncode != 0:
            raise AssertionError(f"cluster.sh stop failed:\n{done.stderr[-3000:]}")
        return time.monotonic() - t


def node_ready(cp: ControlPlane) -> bool:
    done = cp.kubectl(
        "get",
        "node",
        NODE,
        "-o",
        "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
        check=False,
    )
    return done.returncode == 0 and done.stdout.strip() == "True"


@pytest.fixture(scope="session")
def real_cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RealCluster]:
    """The session's cluster with a Ready real node (reused or started here)."""
    shared = ControlPlane(state_dir=SHARED_DIR, owned=False)
    if readyz(SHARED_DIR / "kubeconfig") and node_ready(shared):
        request.config.stash[_summary] = f"reusing the running cluster {SHARED_DIR}"
        real_node_only(shared)
        yield RealCluster(cp=shared, owned=False, before=None)
        return
    state = tmp_path_factory.mktemp("realnode")
    cluster = RealCluster(cp=ControlPlane(state_dir=state, owned=True), owned=True, before=None)
    cluster.before = snapshot(state)
    t = time.monotonic()
    done = subprocess.run(
        ["bash", str(CLUSTER_SH), "start"],
        env=cluster.env(),
        capture_output=True,
        text=True,
        timeout=3600,  # a cold build of the node's binaries is part of the first start
        check=False,
    )
    cluster.start_seconds = time.monotonic() - t
    if done.returncode != 0:
        subprocess.run(["bash", str(CLUSTER_SH), "stop"], env=cluster.env(), check=False)
        pytest.fail(f"cannot start a cluster with a real node:\n{done.stderr[-4000:]}")
    real_node_only(cluster.cp)
    request.config.stash[_summary] = (
        f"cluster with a real node started in {cluster.start_seconds:.1f}s "
        f"(build if needed + control plane + node READY), state {state}; {disk_free(state)}"
    )
    try:
        yield cluster
    finally:
        if not cluster.stopped:
            cluster.stop()


def disk_free(path: Path) -> str:
    """Free space on the filesystem the node's containerd and kubelet write to."""
    usage = shutil.disk_usage(path)
    return (
        f"{usage.free / 2**30:.1f} GiB free of {usage.total / 2**30:.0f} GiB on the "
        f"filesystem of {path} (the kubelet evicts below 256 MiB, e2e/node/layout.go)"
    )


def real_node_only(cp: ControlPlane) -> None:
    """Taint the KWOK nodes ``NoSchedule``: every pod of these tests runs for real.

    The operator's store pods (Redis, Postgres, PgBouncer) have no node affinity, and the
    detector's default one also admits ``c5.4xlarge``: on a KWOK node they would only look
    Running. Idempotent (``--overwrite``), so a reused cluster gets the same taint.
    """
    cp.kubectl("taint", "nodes", "-l", "type=kwok", f"{KWOK_TAINT}:NoSchedule", "--overwrite")


KWOK_TAINT = "pynomaly.dev/kwok=fake"
IMAGES_ENV = Path(os.environ.get("IMAGES_ENV", ROOT / ".images" / "images.env"))
IMAGES_SH = ROOT / "scripts" / "realnode-images.sh"


@dataclasses.dataclass(frozen=True)
class ProjectImages:
    """The project's image references, as ``make images`` tagged them (``.images/images.env``)."""

    detector: str
    redis: str
    postgres: str
    pgbouncer: str


@pytest.fixture(scope="session")
def project_images(real_cluster: RealCluster) -> ProjectImages:
    """The images of ``make images``, imported into the node's containerd (nothing is pulled)."""
    if not IMAGES_ENV.is_file():
        pytest.fail(f"{IMAGES_ENV} is missing: run `make images` before `make test-realnode`")
    values: dict[str, str] = {}
    for line in IMAGES_ENV.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#"):
            values[key.strip()] = value.strip()
    done = subprocess.run(
        ["bash", str(IMAGES_SH), "import"],
        env={**real_cluster.env(), "IMAGES_ENV": str(IMAGES_ENV)},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"cannot import the project's images into the node:\n{done.stderr[-3000:]}")
    return ProjectImages(
        detector=values["DETECTOR_IMAGE"],
        redis=values["REDIS_IMAGE"],
        postgres=values["POSTGRES_IMAGE"],
        pgbouncer=values["PGBOUNCER_IMAGE"],
    )


@pytest.fixture
def restricted_namespace(
    real_cluster: RealCluster, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A fresh namespace enforcing Pod Security ``restricted``; deleted afterwards."""
    stem = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{stem}-{uuid.uuid4().hex[:6]}"
    cp = real_cluster.cp
    cp.kubectl("create", "namespace", name)
    cp.kubectl(
        "label",
        "namespace",
        name,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    )
    try:
        yield name
    finally:
        cp.kubectl("delete", "namespace", name, "--wait=false", check=False)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    message = terminalreporter.config.stash.get(_summary, None)
    if message is not None:
        terminalreporter.write_line(f"real node: {message}")
    hpa_defaults = terminalreporter.config.stash.get(_deselected_hpa, 0)
    if hpa_defaults:
        terminalreporter.write_line(
            f"real node: {hpa_defaults} hpa_defaults test(s) deselected: the HPA with the "
            "guide's default windows takes ~15 min (300 s scale-down stabilisation, then one "
            f"pod per 60 s); run it with `make test-hpa-defaults` ({HPA_DEFAULTS_ENV}=1)"
        )


__all__ = ["NODE", "NODE_SELECTOR", "TESTBOX", "Path", "ProjectImages", "RealCluster"]

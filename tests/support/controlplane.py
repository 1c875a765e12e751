"""The real local Kubernetes control plane, as pytest fixtures.

The control plane is ``.cluster/bin/controlplane`` (built from ``e2e/controlplane`` by
``make controlplane``): etcd, kube-apiserver and kube-controller-manager in one process, the
scheduler and KWOK as its children in the same process group, fake Nodes that KWOK keeps Ready.
See ``e2e/README.md``.

Fixtures:

* ``kube_cluster`` (session): a :class:`ControlPlane`. It reuses the cluster that ``make
  cluster`` started when ``.cluster/kubeconfig`` answers ``/readyz``; otherwise it builds
  (no-op when up to date) and starts one in a temporary directory, and stops that one, by its
  process group, at the end of the session.
* ``kube_namespace`` (function): a fresh namespace, deleted afterwards without waiting.

If the control plane cannot be built or started the fixture fails: a test marked ``cluster``
that silently skipped would hide a broken harness. ``PYNOMALY_SKIP_CLUSTER=1`` turns that into
a skip (with the reason), for machines that knowingly lack Go.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import re
import signal
import ssl
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN_DIR = REPO / ".cluster" / "bin"
BINARY = BIN_DIR / "controlplane"
KUBECTL = BIN_DIR / "kubectl"  # built with the control plane: same Kubernetes version
SHARED_DIR = REPO / ".cluster"
CLUSTER_SH = REPO / "e2e" / "cluster.sh"
SKIP_ENV = "PYNOMALY_SKIP_CLUSTER"

T = TypeVar("T")

_start_seconds = pytest.StashKey[str]()


class ControlPlaneError(RuntimeError):
    """The control plane could not be built, started or stopped."""


class KubectlError(subprocess.CalledProcessError):
    """A kubectl call failed; the message carries kubectl's stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstderr: {self.stderr}\nstdout: {self.output}"


def wait_until(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.2,
) -> T:
    """Poll ``probe`` until it returns something truthy, at most ``timeout`` seconds.

    Returns the truthy value. On timeout raises ``AssertionError`` naming ``what`` and the last
    value seen, so a failed test says what it was waiting for.
    """
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})"
            )
        time.sleep(interval)


@dataclasses.dataclass
class ControlPlane:
    """One control plane: its state directory, kubeconfig and (if we started it) process.

    ``stop()`` / ``start()`` keep the state directory, so a started-again control plane listens
    on the same ports with the same certificates and etcd data: the kubeconfig stays valid.
    That is how tests simulate "the API server goes away and comes back"
    (``restart_apiserver()``).
    """

    state_dir: Path
    owned: bool = True
    """Whether this session started the process (and so stops it at the end)."""
    ready_seconds: float | None = None
    """Wall time of the last start, from spawn to the READY line."""
    _process: subprocess.Popen[bytes] | None = dataclasses.field(default=None, repr=False)

    @property
    def kubeconfig(self) -> str:
        """Path of the admin kubeconfig (client certificate, group system:masters)."""
        return str(self.state_dir / "kubeconfig")

    @property
    def pid(self) -> int | None:
        """PID of the control plane process (also its process group id), if known."""
        if self._process is not None:
            return self._process.pid
        try:
            return int((self.state_dir / "controlplane.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def ports(self) -> dict[str, int]:
        """The loopback ports this control plane uses (fixed per state directory)."""
        loaded: dict[str, int] = json.loads((self.state_dir / "ports.json").read_text())
        return loaded

    def kubectl(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster; raise :class:`KubectlError` if ``check`` fails."""
        cmd = [str(KUBECTL), f"--kubeconfig={self.kubeconfig}", *args]
        done = subprocess.run(
            cmd, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            raise KubectlError(done.returncode, cmd, done.stdout, done.stderr)
        return done

    def wait_established(self, *crds: str, timeout: float = 60) -> None:
        """Wait until each CRD (``anomalydetectors.pynomaly.io``) is Established.

        Polled, not ``kubectl wait --for=condition=Established``: right after a CRD is created
        it has no ``status.conditions`` yet, and kubectl wait fails on that instead of waiting.
        """
        for crd in crds:

            def established(crd: str = crd) -> bool:
                done = self.kubectl(
                    "get",
                    f"crd/{crd}",
                    "-o",
                    'jsonpath={.status.conditions[?(@.type=="Established")].status}',
                    check=False,
                )
                return done.stdout.strip() == "True"

            wait_until(established, timeout=timeout, what=f"CRD {crd} Established")

    def get_json(self, *args: str) -> dict[str, Any]:
        """``kubectl get ARGS -o json``, parsed (raw Kubernetes JSON, hence ``Any``)."""
        loaded: dict[str, Any] = json.loads(self.kubectl("get", *args, "-o", "json").stdout)
        return loaded

    def readyz(self) -> bool:
        """Whether the API server answers ``/readyz`` (anonymous, CA-verified)."""
        return readyz(Path(self.kubeconfig))

    def start(self, *, timeout: float = 120) -> float:
        """Start the binary on this state directory and wait for READY; return the seconds.

        Raises :class:`ControlPlaneError` with the log tail when it exits or times out.
        """
        if not BINARY.exists():
            raise ControlPlaneError(f"{BINARY} is missing: run `make controlplane`")
        logs = self.state_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        out_path = logs / "controlplane.out"
        began = time.monotonic()
        with out_path.open("wb") as out, (logs / "controlplane.log").open("ab") as err:
            # New session: the control plane leads a process group that its children share,
            # so stop() can signal everything at once.
            self._process = subprocess.Popen(
                [str(BINARY), "run", f"--dir={self.state_dir}", f"--ready-timeout={timeout}s"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        (self.state_dir / "controlplane.pid").write_text(f"{self._process.pid}\n")
        deadline = began + timeout + 5
        while True:
            if out_path.read_text().startswith("READY "):
                break
            code = self._process.poll()
            if code is not None:
                raise ControlPlaneError(
                    f"control plane exited with {code} before READY; log tail:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise ControlPlaneError(f"control plane not READY after {timeout:.0f}s")
            time.sleep(0.05)
        self.ready_seconds = time.monotonic() - began
        return self.ready_seconds

    def stop(self, *, timeout: float = 20) -> None:
        """SIGTERM the process group, SIGKILL it after ``timeout``; keep the state directory."""
        pid = self.pid
        if pid is None:
            return
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        else:
            deadline = time.monotonic() + timeout
            while _alive(pid, self._process) and time.monotonic() < deadline:
                time.sleep(0.05)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        if self._process is not None:
            self._process.wait(timeout=5)
            self._process = None
        (self.state_dir / "controlplane.pid").unlink(missing_ok=True)

    def restart_apiserver(self, *, down_seconds: float = 0) -> float:
        """Stop the whole control plane, stay down ``down_seconds``, start it again.

        Same ports, certificates and etcd data: clients holding the kubeconfig see the API
        server disappear and come back with every object intact. Returns the start seconds.
        A restarted shared cluster (``make cluster``) stays running after the session, as before.
        """
        self.stop()
        if down_seconds:
            time.sleep(down_seconds)
        return self.start()

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the control plane's log, for error messages."""
        try:
            text = (self.state_dir / "logs" / "controlplane.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def _alive(pid: int, process: subprocess.Popen[bytes] | None) -> bool:
    if process is not None:
        return process.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def readyz(kubeconfig: Path) -> bool:
    """Whether the cluster in ``kubeconfig`` answers ``/readyz`` within two seconds."""
    try:
        config = yaml.safe_load(kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
        context = ssl.create_default_context(cadata=ca)
        with urllib.request.urlopen(  # noqa: S310 - the URL is our own kubeconfig's https server
            f"{cluster['server']}/readyz", timeout=2, context=context
        ) as resp:
            return bool(resp.status == 200)
    except (OSError, ValueError, KeyError, IndexError, TypeError, yaml.YAMLError):
        return False


def build() -> None:
    """Build the binaries if their sources changed (``e2e/cluster.sh build``)."""
    done = subprocess.run(
        ["bash", str(CLUSTER_SH), "build"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0 or not BINARY.exists():
        raise ControlPlaneError(
            f"`e2e/cluster.sh build` failed ({done.returncode}); needs Go >= 1.26 on PATH or "
            f"at /usr/local/go/bin and the Go module proxy:\n{done.stderr[-3000:]}"
        )


def fail_or_skip(message: str) -> NoReturn:
    """Fail the test with ``message``; skip instead when ``PYNOMALY_SKIP_CLUSTER=1``."""
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"{SKIP_ENV}=1 and {message}")
    pytest.fail(f"{message}\n(set {SKIP_ENV}=1 to skip cluster tests instead)", pytrace=False)


@pytest.fixture(scope="session")
def kube_cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    """The session's control plane: reused from ``make cluster`` or started here."""
    shared = SHARED_DIR / "kubeconfig"
    if readyz(shared):
        request.config.stash[_start_seconds] = f"reusing the running cluster {shared}"
        yield ControlPlane(state_dir=SHARED_DIR, owned=False)
        return
    cluster = ControlPlane(state_dir=tmp_path_factory.mktemp("controlplane"))
    problem = None
    try:
        build()
        seconds = cluster.start()
    except (ControlPlaneError, OSError) as err:
        problem = f"cannot start the control plane: {err}"
    if problem is not None:  # outside the except: no chained traceback in the report
        fail_or_skip(problem)
    request.config.stash[_start_seconds] = (
        f"started in {seconds:.1f}s (spawn to READY), kubeconfig {cluster.kubeconfig}"
    )
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def kube_namespace(kube_cluster: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    """A new namespace named after the test; deleted (not awaited) afterwards."""
    stem = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{stem}-{uuid.uuid4().hex[:6]}"
    kube_cluster.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        kube_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Report how long the control plane took to become ready, when a test used it."""
    message = terminalreporter.config.stash.get(_start_seconds, None)
    if message is not None:
        terminalreporter.write_line(f"control plane: {message}")


__all__ = [
    "ControlPlane",
    "ControlPlaneError",
    "KubectlError",
    "build",
    "fail_or_skip",
    "kube_cluster",
    "kube_namespace",
    "readyz",
    "wait_until",
]

"""A live Argo CD (application controller + repo server) against the local control plane.

``make argocd`` (``e2e/argocd.sh build``) builds Argo CD from its Go module into
``.cluster/bin/argocd`` (linked as ``argocd-application-controller`` and
``argocd-repo-server``), kustomize into ``.cluster/bin/kustomize``, and copies Argo CD's own
CRDs from that module to ``.cluster/bin/argocd-crds/``. :class:`ArgoCD` installs what Argo CD's
manifests would put in namespace ``argocd`` (the CRDs, ``argocd-cm`` carrying our
``resource.customizations.health.pynomaly.io_AnomalyDetector`` from
``manifests/argocd/argocd-cm-health.yaml``, ``argocd-secret``, the ``default`` AppProject that
Argo CD's API server would create), then runs the two processes outside the cluster the way
Argo CD's own local development does: ``ARGOCD_FAKE_IN_CLUSTER=true`` makes the in-cluster
destination ``https://kubernetes.default.svc`` mean ``$KUBECONFIG``. Redis is Debian's
redis-server on 127.0.0.1. The API server and UI are not run: tests read Application status.

Fixture ``argocd`` (session, marker ``argocd``): builds if needed (no-op when up to date),
installs, starts, and at the end stops the processes and removes what it created in the
cluster. ``ARGOCD_RECONCILIATION_TIMEOUT`` is 5 s, so a commit is seen within seconds (a
real install would get the same from a Git webhook).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.controlplane import BIN_DIR, REPO, ControlPlane, fail_or_skip
from tests.support.ports import free_port, wait_for_port
from tests.support.processes import terminate
from tests.support.redis_servers import RedisServer

ARGOCD_SH = REPO / "e2e" / "argocd.sh"
CONTROLLER = BIN_DIR / "argocd-application-controller"
REPO_SERVER = BIN_DIR / "argocd-repo-server"
CRD_DIR = BIN_DIR / "argocd-crds"
VERSION_FILE = BIN_DIR / "argocd-version"
HEALTH_CM = REPO / "manifests" / "argocd" / "argocd-cm-health.yaml"
NAMESPACE = "argocd"
RESYNC = "5s"

_version_line = pytest.StashKey[str]()


class ArgoCDError(RuntimeError):
    """Argo CD could not be built, installed or started."""


def build() -> str:
    """``e2e/argocd.sh build`` (no-op when up to date); return the Argo CD version built."""
    done = subprocess.run(
        ["bash", str(ARGOCD_SH), "build"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0 or not CONTROLLER.exists():
        raise ArgoCDError(
            f"`e2e/argocd.sh build` failed ({done.returncode}); needs Go and the Go module "
            f"proxy:\n{done.stderr[-3000:]}"
        )
    return VERSION_FILE.read_text().strip()


def health_configmap() -> dict[str, Any]:
    """``argocd-cm`` as an install would have it, with our health customization merged in."""
    cm: dict[str, Any] = yaml.safe_load(HEALTH_CM.read_text())
    cm["metadata"]["namespace"] = NAMESPACE
    return cm


class ArgoCD:
    """The Argo CD processes of one test session and the objects they need in the cluster."""

    def __init__(self, cluster: ControlPlane, state_dir: Path) -> None:
        self.cluster = cluster
        self.state_dir = state_dir
        (state_dir / "redis").mkdir(parents=True, exist_ok=True)
        self.redis = RedisServer(workdir=state_dir / "redis")
        self.repo_port = free_port()
        self.repo_metrics_port = free_port()
        self.controller_metrics_port = free_port()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    # -- cluster objects -------------------------------------------------------------------------

    def install(self) -> None:
        """Argo CD's CRDs, namespace, ``argocd-cm`` (with our health check), secret, project."""
        for crd in sorted(CRD_DIR.glob("*.yaml")):
            self.cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd))
        self.cluster.wait_established("applications.argoproj.io", "appprojects.argoproj.io")
        self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        self.apply(health_configmap())
        labels = {"app.kubernetes.io/name": "argocd-secret", "app.kubernetes.io/part-of": "argocd"}
        self.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "argocd-secret", "namespace": NAMESPACE, "labels": labels},
                "stringData": {"server.secretkey": os.urandom(24).hex()},
            }
        )
        # Argo CD's API server creates this project at start; we do not run the API server.
        self.apply(
            {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "AppProject",
                "metadata": {"name": "default", "namespace": NAMESPACE},
                "spec": {
                    "sourceRepos": ["*"],
                    "destinations": [{"server": "*", "namespace": "*"}],
                    "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
                },
            }
        )

    def apply(self, body: dict[str, Any]) -> None:
        """``kubectl apply`` one object (server-side, as its only manager)."""
        self.cluster.kubectl(
            "apply", "--server-side", "--field-manager=pynomaly-tests", "-f", "-",
            input=json.dumps(body),
        )  # fmt: skip

    def application(self, name: str) -> dict[str, Any]:
        """The Application object (raw JSON) in namespace ``argocd``."""
        return self.cluster.get_json("-n", NAMESPACE, "application", name)

    # -- processes -------------------------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        """Environment both processes run with (state under ``state_dir``, no GnuPG)."""
        home = self.state_dir / "home"
        tmp = self.state_dir / "tmp"
        for directory in (home, tmp, home / "ssh", home / "tls"):
            directory.mkdir(parents=True, exist_ok=True)
        return {
            "PATH": f"{BIN_DIR}:{os.environ.get('PATH', '/usr/bin:/bin')}",  # kustomize, git
            "HOME": str(home),
            "TMPDIR": str(tmp),
            "KUBECONFIG": self.cluster.kubeconfig,
            "ARGOCD_FAKE_IN_CLUSTER": "true",
            "ARGOCD_GPG_ENABLED": "false",
            "ARGOCD_SSH_DATA_PATH": str(home / "ssh"),
            "ARGOCD_TLS_DATA_PATH": str(home / "tls"),
            "ARGOCD_RECONCILIATION_TIMEOUT": RESYNC,
            "ARGOCD_RECONCILIATION_JITTER": "0s",
        }

    def start(self) -> None:
        """Redis, the repo server, the application controller; wait until each is healthy."""
        self.redis.start()
        redis = f"127.0.0.1:{self.redis.port}"
        env = self.environment()
        self._spawn(
            "repo-server",
            [
                str(REPO_SERVER),
                "--address=127.0.0.1", f"--port={self.repo_port}",
                "--metrics-address=127.0.0.1", f"--metrics-port={self.repo_metrics_port}",
                f"--redis={redis}", "--disable-tls", "--logformat=text", "--parallelismlimit=2",
            ],
            env,
        )  # fmt: skip
        wait_for_port(self.repo_port, timeout=60)
        self._spawn(
            "application-controller",
            [
                str(CONTROLLER),
                f"--kubeconfig={self.cluster.kubeconfig}", f"--namespace={NAMESPACE}",
                f"--repo-server=127.0.0.1:{self.repo_port}", "--repo-server-plaintext",
                f"--redis={redis}", f"--metrics-port={self.controller_metrics_port}",
                "--logformat=text", "--status-processors=4", "--operation-processors=2",
                # Since v3.0 each resource's health (status and message) lives only in Redis for
                # the API server; persisted, the tests read our health check's verdict from
                # the Application object itself.
                "--persist-resource-health",
            ],
            env,
        )  # fmt: skip
        self._wait_healthy("application-controller", self.controller_metrics_port)
        self._wait_healthy("repo-server", self.repo_metrics_port)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        with (self.state_dir / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )

    def _wait_healthy(self, name: str, port: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            process = self.processes[name]
            if process.poll() is not None:
                raise ArgoCDError(f"{name} exited {process.returncode}:\n{self.log_tail(name)}")
            with contextlib.suppress(OSError):
                url = f"http://127.0.0.1:{port}/healthz"
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        return
            if time.monotonic() > deadline:
                raise ArgoCDError(
                    f"{name} not healthy after {timeout:.0f}s:\n{self.log_tail(name)}"
                )
            time.sleep(0.2)

    def check_running(self) -> None:
        """Raise with the log tail if a process died (a test's wait would only time out)."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise ArgoCDError(f"{name} exited {process.returncode}:\n{self.log_tail(name)}")

    def stop(self) -> None:
        """Stop both processes and Redis."""
        for process in reversed(list(self.processes.values())):
            terminate(process, timeout=15)
        self.processes.clear()
        self.redis.stop()

    def log_tail(self, name: str, lines: int = 40) -> str:
        """The last lines of one process's log (``repo-server`` or ``application-controller``)."""
        try:
            text = (self.state_dir / f"{name}.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def uninstall(self) -> None:
        """Delete the Applications without cascading (Argo CD stops managing what they
        deployed, which stays) and the ``argocd`` namespace."""
        found = self.cluster.kubectl(
            "-n", NAMESPACE, "get", "applications", "-o", "name", check=False
        ).stdout.split()
        for app in found:
            self.cluster.kubectl(
                "-n", NAMESPACE, "patch", app, "--type=merge",
                "-p", '{"metadata":{"finalizers":null}}', check=False,
            )  # fmt: skip
        self.cluster.kubectl(
            "-n", NAMESPACE, "delete", "applications", "--all", "--timeout=30s", check=False
        )
        self.cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


@pytest.fixture(scope="session")
def argocd(kube_cluster: ControlPlane, request: pytest.FixtureRequest) -> Iterator[ArgoCD]:
    """Argo CD running against the session's control plane (see the module docstring)."""
    state = Path(tempfile.mkdtemp(prefix="pynomaly-argocd-"))
    began = time.monotonic()
    problem = None
    instance = ArgoCD(kube_cluster, state)
    try:
        version = build()
        instance.install()
        instance.start()
    except (ArgoCDError, OSError, subprocess.CalledProcessError, TimeoutError) as err:
        problem = f"cannot run Argo CD: {err}"
        instance.stop()
    if problem is not None:
        fail_or_skip(problem)
    request.config.stash[_version_line] = (
        f"Argo CD {version} up in {time.monotonic() - began:.1f}s; logs in {state}"
    )
    try:
        yield instance
    finally:
        instance.uninstall()
        instance.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say which Argo CD the session ran against, when a test used it."""
    message = terminalreporter.config.stash.get(_version_line, None)
    if message is not None:
        terminalreporter.write_line(message)


__all__ = ["ArgoCD", "ArgoCDError", "argocd", "build", "health_configmap"]

"""The operator as users run it outside a cluster: ``pynomaly-operator run``, a subprocess.

``make demo`` and the GitOps tests run the operator on the host against the local control
plane (the install's Deployment gets a KWOK pod that never runs a container). This class
starts and stops that process, waits on kopf's liveness endpoint, and keeps its log in a
file for failure messages. Plain class, no pytest: tests choose when it runs (a test may
stop it to hold a spec change unobserved).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.support.ports import free_port
from tests.support.processes import terminate

OPERATOR = Path(sys.executable).with_name("pynomaly-operator")


class OperatorProcess:
    """``pynomaly-operator run --namespace NS --standalone`` with its liveness on 127.0.0.1."""

    def __init__(self, kubeconfig: str, namespace: str, log: Path) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self, *, timeout: float = 60) -> None:
        """Start and wait until kopf answers ``/healthz``."""
        self.port = free_port()
        env = {**os.environ, "KUBECONFIG": self.kubeconfig}
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    str(OPERATOR), "run", "--namespace", self.namespace, "--standalone",
                    f"--liveness=http://127.0.0.1:{self.port}/healthz",
                ],
                env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not self.alive():
            if time.monotonic() > deadline:
                raise TimeoutError(f"operator not live after {timeout:.0f}s:\n{self.tail()}")
            time.sleep(0.2)

    def alive(self) -> bool:
        """Whether kopf's liveness endpoint answers 200; raises if the process exited."""
        if self.process is None:
            return False
        if self.process.poll() is not None:
            raise RuntimeError(f"operator exited {self.process.returncode}:\n{self.tail()}")
        try:
            url = f"http://127.0.0.1:{self.port}/healthz"
            with urllib.request.urlopen(url, timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM (kopf finishes its handlers), SIGKILL after 20 s."""
        terminate(self.process, timeout=20)
        self.process = None

    def tail(self, lines: int = 40) -> str:
        """The last lines of the operator's log."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


__all__ = ["OPERATOR", "OperatorProcess"]

"""The operator's whole stack on the real node: the minimal sample, sized for two cores.

``manifests/samples/minimal.yaml`` goes through a test overlay (never by changing the
defaults): the project's images from ``make images`` (``imagePullPolicy: Never`` for the
detector; the store images' version tags are never pulled either), requests that fit
beside each other on a 2-core node, 1-3 detector replicas, small Redis/Postgres memory.
Everything else is what a user gets: sentinel trio, Postgres + PgBouncer, real probes,
Pod Security ``restricted`` enforced on the namespace.

The load generator used by the HPA and fault scenarios is bounded in time and in
requests, and sends only to the detector Service's ClusterIP (kube-proxy on this host
routes it to pods on the node's bridge).
"""

from __future__ import annotations

import base64
import collections
import concurrent.futures
import contextlib
import dataclasses
import importlib.util
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.support.controlplane import ControlPlane, wait_until
from tests.support.operator_process import OperatorProcess

from .conftest import NODE, ROOT, ProjectImages, disk_free

SAMPLE = ROOT / "manifests" / "samples" / "minimal.yaml"
CRD = ROOT / "crds" / "anomalydetectors.pynomaly.io.yaml"
DATA = ROOT / "manifests" / "samples" / "data"
OVERLAY_SCRIPT = ROOT / "scripts" / "realnode_overlay.py"


def _load_overlay_script() -> Any:
    spec = importlib.util.spec_from_file_location("realnode_overlay", OVERLAY_SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def overlay(images: ProjectImages, autoscaling: dict[str, Any] | None = None) -> dict[str, Any]:
    """The minimal sample with the real-node overlay (``scripts/realnode_overlay.py``, which
    ``make demo`` applies too): the project's images and requests for 2 cores; a test's own
    ``spec.autoscaling`` fields merged over the overlay's."""
    body: dict[str, Any] = yaml.safe_load(SAMPLE.read_text())
    env = {
        "DETECTOR_IMAGE": images.detector,
        "REDIS_IMAGE": images.redis,
        "POSTGRES_IMAGE": images.postgres,
        "PGBOUNCER_IMAGE": images.pgbouncer,
    }
    result: dict[str, Any] = _load_overlay_script().overlay(body, env)
    if autoscaling:
        spec = result["spec"]
        spec["autoscaling"] = {**spec.get("autoscaling", {}), **autoscaling}
    return result


def _csv_rows(path: Path) -> list[list[float]]:
    """The feature columns of a sample CSV (``expected`` is the answer, not a feature)."""
    header, *lines = [line for line in path.read_text().splitlines() if line.strip()]
    keep = [i for i, name in enumerate(header.split(",")) if name != "expected"]
    return [[float(line.split(",")[i]) for i in keep] for line in lines]


TRAINING = _csv_rows(DATA / "training.csv")
SCORING = _csv_rows(DATA / "score.csv")


@dataclasses.dataclass
class Stack:
    """One AnomalyDetector's children running on the real node."""

    cp: ControlPlane
    ns: str
    name: str

    def kubectl(self, *args: str, check: bool = True, timeout: float = 60) -> str:
        return self.cp.kubectl("-n", self.ns, *args, check=check, timeout=timeout).stdout

    def get(self, *args: str) -> dict[str, Any]:
        return self.cp.get_json("-n", self.ns, *args)

    def pods(self, component: str | None = None) -> list[dict[str, Any]]:
        selector = f"app.kubernetes.io/instance={self.name}"
        if component:
            selector += f",app.kubernetes.io/component={component}"
        items: list[dict[str, Any]] = self.get("pods", "-l", selector)["items"]
        return items

    def exec(self, pod: str, container: str, script: str, timeout: float = 30) -> str:
        return self.kubectl("exec", pod, "-c", container, "--", "sh", "-c", script, timeout=timeout)

    @property
    def url(self) -> str:
        svc = self.get("service", self.name)["spec"]
        port = next(p["port"] for p in svc["ports"] if p["name"] == "http")
        return f"http://{svc['clusterIP']}:{port}"

    def token(self) -> str:
        data = self.get("secret", f"{self.name}-api-token")["data"]["token"]
        return base64.b64decode(data).decode().splitlines()[0].strip()

    def detector_status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.get("anomalydetector", self.name).get("status", {})
        return status


NAME = "payments"
# Image unpack + detector start on a loaded 2-core machine; below pytest's 600 s timeout so a
# failure prints its diagnosis instead of pytest-timeout's bare traceback.
READY_TIMEOUT = 480
# A node condition that rejects or evicts pods (DiskPressure: the kubelet refuses every pod)
# fails the wait after this long instead of at READY_TIMEOUT: it does not clear by itself.
BLOCKED_SECONDS = 60


@contextlib.contextmanager
def running_stack(
    cp: ControlPlane,
    images: ProjectImages,
    workdir: Path,
    *,
    autoscaling: dict[str, Any] | None = None,
) -> Iterator[Stack]:
    """The minimal sample (overlay) Ready in a fresh ``restricted`` namespace, with the
    operator running on the host; the CR, the operator and the namespace go afterwards."""
    ns = f"realnode-stack-{uuid.uuid4().hex[:6]}"
    cp.kubectl("create", "namespace", ns)
    cp.kubectl(
        "label", "namespace", ns,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
        "pod-security.kubernetes.io/warn=restricted",
    )  # fmt: skip
    cp.kubectl("apply", "--server-side", "-f", str(CRD))
    cp.wait_established("anomalydetectors.pynomaly.io")
    operator = OperatorProcess(cp.kubeconfig, ns, workdir / "operator.log")
    operator.start()
    st = Stack(cp=cp, ns=ns, name=NAME)
    try:
        cp.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(overlay(images, autoscaling)))
        t = time.monotonic()
        try:
            wait_until(
                _ready_or_blocked(st),
                timeout=READY_TIMEOUT,
                what=f"AnomalyDetector {NAME} Ready",
                interval=2,
            )
        except AssertionError as exc:
            # The diagnosis goes into the error itself: pytest repeats a module fixture's error
            # for every test of the module, and only the end of a long log may be read.
            try:
                diagnosis = _diagnose(st, operator)
            except Exception as failed:  # the wait's error is the one to report
                diagnosis = f"(no diagnosis: {failed!r})"
            raise AssertionError(f"{exc}\n{diagnosis}") from None
        print(f"\nminimal sample Ready on the real node in {time.monotonic() - t:.0f}s")
        yield st
    finally:
        if st.kubectl("get", "anomalydetector", NAME, "--ignore-not-found", check=False).strip():
            st.kubectl(
                "delete", "anomalydetector", NAME, "--wait=true", "--timeout=90s", check=False
            )
        operator.stop()
        cp.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def _ready_or_blocked(st: Stack) -> Callable[[], bool]:
    """A probe: True once the detector is Ready; raises once the node has refused pods for
    ``BLOCKED_SECONDS`` (a pressure condition), naming the condition and the free disk."""
    since: list[float] = []

    def probe() -> bool:
        if st.detector_status().get("phase") == "Ready":
            return True
        blocker = node_blocker(st.cp)
        if blocker is None:
            since.clear()
            return False
        if not since:
            since.append(time.monotonic())
        if time.monotonic() - since[0] > BLOCKED_SECONDS:
            raise AssertionError(f"the real node refuses pods: {blocker}")
        return False

    return probe


def node_blocker(cp: ControlPlane) -> str | None:
    """Why the real node rejects or evicts pods right now (a pressure condition), or None."""
    node = cp.get_json("node", NODE)
    pressures = [
        f"{c['type']} ({c.get('message', '')})"
        for c in node.get("status", {}).get("conditions", [])
        if c["type"].endswith("Pressure") and c["status"] == "True"
    ]
    if not pressures:
        return None
    return f"{', '.join(pressures)}; {disk_free(cp.state_dir)}"


def _diagnose(st: Stack, operator: OperatorProcess) -> str:
    pods = st.get("pods")["items"]
    phases = collections.Counter(
        f"{p['status'].get('phase')}/{p['status'].get('reason', '-')}" for p in pods
    )
    failed = [p for p in pods if p["status"].get("phase") == "Failed"][:3]
    events = st.kubectl("get", "events", "--sort-by=.lastTimestamp", check=False)
    live = st.kubectl(
        "get", "pods", "-o", "wide", "--field-selector=status.phase!=Failed", check=False
    )
    status = yaml.safe_dump(st.detector_status())
    return (
        f"--- node: {node_blocker(st.cp) or 'no pressure; ' + disk_free(st.cp.state_dir)}\n"
        f"--- pods by phase/reason: {dict(phases)}\n"
        + "".join(f"  {p['metadata']['name']}: {p['status'].get('message')}\n" for p in failed)
        + live
        + "--- events (last 25)\n"
        + "\n".join(events.splitlines()[-25:])
        + f"\n--- status\n{status}--- operator\n{operator.tail(20)}"
    )


def request(
    method: str, url: str, body: Any = None, token: str | None = None, timeout: float = 30
) -> tuple[int, Any]:
    """One HTTP call to the detector Service; (status, parsed JSON or text)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - our ClusterIP
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            raw = resp.read().decode()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def fit(stack: Stack, model: str, timeout: float = 120) -> dict[str, Any]:
    body = {"algorithm": "IForest", "contamination": 0.01, "instances": TRAINING}
    status, out = request(
        "PUT", f"{stack.url}/v1/models/{model}", body, token=stack.token(), timeout=timeout
    )
    assert status in (200, 201), f"fit {model}: {status} {out}"
    assert isinstance(out, dict)
    return out


def ensure_fitted(stack: Stack, model: str) -> None:
    """Fit ``model`` unless the service already serves it: each scenario can run alone
    (``-k``) and still loads a model, instead of counting 404s."""
    status, _ = request("POST", f"{stack.url}/v1/models/{model}/detect", {"instances": SCORING})
    if status == 404:
        fit(stack, model)


def detect(stack: Stack, model: str, rows: list[list[float]]) -> dict[str, Any]:
    status, out = request("POST", f"{stack.url}/v1/models/{model}/detect", {"instances": rows})
    assert status == 200, f"detect {model}: {status} {out}"
    assert isinstance(out, dict)
    return out


@dataclasses.dataclass
class LoadResult:
    """What a bounded load run saw: every request's outcome, failures with their reason."""

    ok: int = 0
    failed: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        rate = self.ok / self.seconds if self.seconds else 0.0
        return f"{self.ok} ok, {len(self.failed)} failed in {self.seconds:.0f}s ({rate:.1f}/s)"


class Load:
    """Scoring requests against the Service from ``threads`` threads until stopped.

    Bounded: at most ``max_seconds`` and ``max_requests`` in total, whichever comes first.
    Rows vary per request (``fresh=True``) so every request misses the caches and costs CPU,
    or repeat (cache hits) otherwise.
    """

    def __init__(
        self,
        stack: Stack,
        model: str,
        *,
        threads: int = 4,
        max_seconds: float = 300,
        max_requests: int = 200_000,
        fresh: bool = True,
        rows: int = 64,
    ) -> None:
        self.url = f"{stack.url}/v1/models/{model}/detect"
        self.threads = threads
        self.max_seconds = max_seconds
        self.max_requests = max_requests
        self.fresh = fresh
        self.rows = rows
        self.result = LoadResult()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._started = 0.0
        self._sent = 0

    def _body(self, n: int) -> dict[str, Any]:
        base = SCORING if not self.fresh else TRAINING
        rows = [list(base[(n + i) % len(base)]) for i in range(self.rows)]
        if self.fresh:
            for i, row in enumerate(rows):
                row[0] += (n * self.rows + i) * 1e-6  # a new row each time: no cache hit
        return {"instances": rows}

    def _worker(self) -> None:
        deadline = self._started + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            with self._lock:
                if self._sent >= self.max_requests:
                    return
                self._sent += 1
                n = self._sent
            try:
                status, out = request("POST", self.url, self._body(n), timeout=30)
            except OSError as exc:  # refused, reset, timed out: a failed request, counted
                status, out = 0, repr(exc)
            with self._lock:
                if status == 200:
                    self.result.ok += 1
                else:
                    self.result.failed.append(
                        f"{time.monotonic() - self._started:.1f}s {status} {str(out)[:200]}"
                    )

    def start(self) -> Load:
        self._started = time.monotonic()
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=self.threads)
        for _ in range(self.threads):
            self._pool.submit(self._worker)
        return self

    def stop(self) -> LoadResult:
        self._stop.set()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self.result.seconds = time.monotonic() - self._started
        return self.result


def request_ok(url: str) -> bool:
    try:
        status, _ = request("GET", url, timeout=5)
    except OSError:
        return False
    return status == 200


RETAINED = "pynomaly.io/retain-on-delete"


def wait_gone(stack: Stack, what: str, selector: str, timeout: float) -> float:
    """Seconds until no object of ``what`` matches ``selector``, but those the operator keeps
    on purpose (annotation ``pynomaly.io/retain-on-delete``: the artifact signing key)."""

    def left() -> list[str]:
        return [
            o["metadata"]["name"]
            for o in stack.get(what, "-l", selector)["items"]
            if (o["metadata"].get("annotations") or {}).get(RETAINED) != "true"
        ]

    t = time.monotonic()
    wait_until(
        lambda: not left(),
        timeout=timeout,
        what=f"every {what} with {selector} gone",
        interval=0.5,
    )
    return time.monotonic() - t


__all__ = [
    "CRD",
    "NAME",
    "Load",
    "LoadResult",
    "Stack",
    "detect",
    "fit",
    "overlay",
    "request",
    "request_ok",
    "running_stack",
]

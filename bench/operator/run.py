"""Operator benchmark on the local control plane: latency, steady-state requests, RSS.

Issue #4's benchmark, one run. For each scenario (1 and N ``AnomalyDetector``s with the
stores off, optionally M with the default stores), in a fresh namespace with a fresh
operator process (``pynomaly-operator run --namespace NS``):

1. one ``kubectl apply -f -`` of a multi-document YAML creates every resource at once;
   API watches (started before the apply) timestamp, per resource, its creation, the moment
   all of its children exist (the set the operator's own builders produce for that spec),
   the first status write (``status.observedGeneration``) and phase ``Ready``;
2. once nothing has changed for a while, a steady-state window: the operator's own requests
   (its request log: every call lightkube makes, with verb and path), the API server's
   ``apiserver_request_total`` deltas by verb and resource, and every watch event on the
   resources and their children (so any churn is named: kind, object, what changed);
3. the same window again with the operator stopped: the other clients' share of the API
   server's counters (controller-manager, scheduler, KWOK), subtracted to attribute requests
   to the operator;
4. the operator's RSS (settled, and the peak ``VmHWM``) and CPU seconds.

By default a private control plane is started in a temporary directory (so other engineers'
tests do not pollute the API server counters) and stopped at the end; ``--kubeconfig``
reuses a running one (``make cluster``) and leaves it running.

    .venv/bin/python bench/operator/run.py                     # 1, 200 (stores off), 10 (defaults)
    .venv/bin/python bench/operator/run.py --count 50 --defaults-count 0 --window 30
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import json
import math
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

import lightkube
import yaml
from lightkube import codecs
from lightkube.config.kubeconfig import KubeConfig
from lightkube.generic_resource import create_namespaced_resource

from pynomaly_operator import naming, settings
from pynomaly_operator.builders import desired
from pynomaly_operator.reconciling import observing
from pynomaly_operator.specs import detector as specs

ROOT = pathlib.Path(__file__).resolve().parents[2]
HERE = pathlib.Path(__file__).resolve().parent
CONTROLPLANE = ROOT / ".cluster" / "bin" / "controlplane"
KUBECTL = ROOT / ".cluster" / "bin" / "kubectl"  # same Kubernetes version as the control plane
OPERATOR = pathlib.Path(sys.executable).with_name("pynomaly-operator")
CRD = ROOT / "crds" / "anomalydetectors.pynomaly.io.yaml"
# Room for 200 one-replica detectors and 10 default ones (3 replicas, Redis sentinel,
# PostgreSQL + PgBouncer: about 3.7 CPU / 17 GiB of requests each).
NODES = "c5.4xlarge=12"
WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE", "APPLY", "DELETECOLLECTION"})
READ_VERBS = frozenset({"GET", "LIST", "WATCH"})
RESYNC_SECONDS = settings.OperatorSettings().resync_seconds

# The stores off (Redis none, external database), one replica and small requests, so N pods
# fit on the fake nodes; placement stays the default (required c5 instance types: the
# scheduler really places every pod).
MINIMAL_SPEC: dict[str, Any] = {
    "model": {"algorithm": "IForest", "contamination": 0.01},
    "resources": {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    },
    "autoscaling": {"minReplicas": 1, "maxReplicas": 3},
    "redis": {"mode": "none"},
    # PostgresSpec has no "none" mode; an external database creates no store children (the
    # Secret is only referenced from the pods' env, so it need not exist for Ready under KWOK).
    "postgres": {"mode": "external", "external": {"dsnSecretRef": {"name": "pg", "key": "dsn"}}},
}
# manifests/samples/minimal.yaml: every default (3 replicas, Redis sentinel, managed
# PostgreSQL behind PgBouncer).
DEFAULTS_SPEC: dict[str, Any] = {"model": {"algorithm": "IForest", "contamination": 0.01}}


# --- small helpers ----------------------------------------------------------------------------
def kubectl(kubeconfig: str, *args: str, input: str | None = None, timeout: float = 120) -> str:
    done = subprocess.run(
        [str(KUBECTL), f"--kubeconfig={kubeconfig}", *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (p99 of 200 values is the 198th smallest)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return round(ordered[rank - 1], 3)


def summary(values: list[float], expected: int) -> dict[str, Any]:
    return {
        "p50": percentile(values, 0.50),
        "p99": percentile(values, 0.99),
        "max": round(max(values), 3) if values else None,
        "n": len(values),
        "of": expected,
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True, timeout=10, check=False
        ).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    memory_kb = 0
    for line in pathlib.Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory_kb = int(line.split()[1])
    return {
        "cpu_model": model,
        "nproc": os.cpu_count(),
        "memory_gib": round(memory_kb / 2**20, 1),
        "python": sys.version.split()[0],
        "kernel": os.uname().release,
        "load_average_at_start": load_average(),
    }


# --- control plane ----------------------------------------------------------------------------
@contextlib.contextmanager
def control_plane(
    kubeconfig: str | None, *, nodes: str, extra: list[str]
) -> Iterator[tuple[str, bool]]:
    """Yield (kubeconfig, started_here): reuse ``kubeconfig`` or start a private one."""
    if kubeconfig:
        yield kubeconfig, False
        return
    if not CONTROLPLANE.exists():
        raise SystemExit(f"{CONTROLPLANE} is missing: run `make controlplane`")
    state = pathlib.Path(tempfile.mkdtemp(prefix="pynomaly-bench-operator-cp-"))
    out = state / "controlplane.out"
    with out.open("wb") as stdout, (state / "controlplane.log").open("wb") as stderr:
        proc = subprocess.Popen(
            [str(CONTROLPLANE), "run", f"--dir={state}", f"--nodes={nodes}", *extra],
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,  # its own process group: scheduler and KWOK stop with it
        )
    try:
        deadline = time.monotonic() + 180
        while not out.read_text(errors="replace").startswith("READY"):
            if proc.poll() is not None:
                raise RuntimeError(f"control plane exited {proc.returncode}; see {state}")
            if time.monotonic() > deadline:
                raise RuntimeError("control plane not READY within 180 s")
            time.sleep(0.2)
        yield str(state / "kubeconfig"), True
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        shutil.rmtree(state, ignore_errors=True)


def cluster_cpu_seconds(kubeconfig: str) -> float:
    """CPU seconds (user + system) of the local control plane's processes so far: every
    process whose command line names the kubeconfig's directory (``controlplane run
    --dir=...``, its scheduler and KWOK). It says how the cores were shared between the
    control plane and the operator while the resources converged."""
    state = str(pathlib.Path(kubeconfig).resolve().parent)
    ticks = 0
    for proc in pathlib.Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if state not in (proc / "cmdline").read_bytes().decode(errors="replace"):
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        ticks += int(fields[11]) + int(fields[12])
    return round(ticks / os.sysconf("SC_CLK_TCK"), 2)


def install_crd(kubeconfig: str) -> None:
    kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    kubectl(
        kubeconfig,
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        f"crd/{naming.PLURAL}.{naming.GROUP}",
    )


# --- the operator under test ------------------------------------------------------------------
class Operator:
    """``pynomaly-operator run --namespace NS`` as a subprocess, its log in a file."""

    def __init__(self, kubeconfig: str, namespace: str, log: pathlib.Path) -> None:
        self.log = log
        self.port = free_port()
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    str(OPERATOR),
                    "run",
                    "--namespace",
                    namespace,
                    "--standalone",
                    f"--liveness=http://127.0.0.1:{self.port}/healthz",
                ],
                env={**os.environ, "KUBECONFIG": kubeconfig},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"operator exited {self.proc.returncode}:\n{self.tail()}")
            with contextlib.suppress(OSError):
                url = f"http://127.0.0.1:{self.port}/healthz"
                with urllib.request.urlopen(url, timeout=2) as answer:
                    if answer.status == 200:
                        return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"operator not live within 60 s:\n{self.tail()}")
            time.sleep(0.3)

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def log_size(self) -> int:
        return self.log.stat().st_size

    def requests_since(self, offset: int, until: int | None = None) -> list[tuple[str, str]]:
        """(verb, path template) of every request in the log between two byte offsets."""
        with self.log.open("rb") as handle:
            handle.seek(offset)
            text = handle.read(None if until is None else until - offset).decode(errors="replace")
        found = []
        for match in re.finditer(r"HTTP Request: ([A-Z]+) (\S+)", text):
            found.append((match.group(1), template(match.group(2))))
        return found

    def memory_mb(self) -> dict[str, float]:
        """VmRSS (now) and VmHWM (peak RSS of the process lifetime), in MiB."""
        values: dict[str, float] = {}
        for line in pathlib.Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = round(int(rest.split()[0]) / 1024, 1)
        return {"rss_mb": values.get("VmRSS", 0.0), "peak_rss_mb": values.get("VmHWM", 0.0)}

    def cpu_seconds(self) -> float:
        fields = pathlib.Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])  # utime + stime
        return round(ticks / os.sysconf("SC_CLK_TCK"), 2)

    def stop(self) -> str:
        """Stop the operator; return its closing ``API requests made by reconciles`` line."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for line in reversed(self.log.read_text(errors="replace").splitlines()):
            if "API requests made by reconciles" in line:
                return line.split("API requests made by reconciles:", 1)[1].strip()
        return ""


def template(url: str) -> str:
    """A request URL as a template: no host, no query, namespace and names replaced by ``*``."""
    path = re.sub(r"^https?://[^/]+", "", url).split("?", 1)[0]
    path = re.sub(r"/namespaces/[^/]+", "/namespaces/*", path)
    parts = path.strip("/").split("/")
    # /api/v1/namespaces/*/KIND/NAME[/sub] and /apis/G/V/namespaces/*/KIND/NAME[/sub]
    base = 3 if parts and parts[0] == "api" else 4
    if len(parts) > base + 1 and parts[base - 1] == "*":
        parts[base + 1] = "*"
    return "/" + "/".join(parts)


# --- API server counters ----------------------------------------------------------------------
_METRIC = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def apiserver_requests(kubeconfig: str) -> Counter[tuple[str, str]]:
    """``apiserver_request_total`` summed by (verb, resource[/subresource]), every client."""
    counts: Counter[tuple[str, str]] = Counter()
    for line in kubectl(kubeconfig, "get", "--raw", "/metrics").splitlines():
        match = _METRIC.match(line)
        if not match:
            continue
        labels = dict(_LABEL.findall(match.group("labels")))
        resource = labels.get("resource", "")
        if labels.get("subresource"):
            resource += "/" + labels["subresource"]
        counts[(labels.get("verb", ""), resource)] += int(float(match.group("value")))
    return counts


def split_counts(delta: Mapping[tuple[str, str], int]) -> dict[str, Any]:
    writes = {f"{v} {r}": n for (v, r), n in sorted(delta.items()) if v in WRITE_VERBS and n}
    reads = {f"{v} {r}": n for (v, r), n in sorted(delta.items()) if v in READ_VERBS and n}
    return {
        "writes": sum(writes.values()),
        "reads": sum(reads.values()),
        "writes_by_verb_resource": writes,
        "reads_by_verb_resource": reads,
    }


def counter_delta(
    after: Counter[tuple[str, str]], before: Counter[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    return {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key)}


# --- expected children and the watches --------------------------------------------------------
def expected_children(spec: Mapping[str, Any], name: str, namespace: str) -> set[tuple[str, str]]:
    """(kind, name) of every child the operator creates for ``spec`` (its own builders)."""
    body = {
        "apiVersion": naming.API_VERSION,
        "kind": naming.KIND,
        "metadata": {"name": name, "namespace": namespace, "uid": "bench", "generation": 1},
        "spec": dict(spec),
    }
    detector = specs.AnomalyDetector.from_body(body)
    names = naming.Names(instance=name, namespace=namespace)
    plan = desired.desired(detector, names, {})
    objects = [*plan.secrets, *plan.objects]
    return {(str(obj["kind"]), str(obj["metadata"]["name"])) for obj in objects}


@dataclasses.dataclass
class Timeline:
    """What the watches saw, as monotonic timestamps."""

    expected: dict[str, set[tuple[str, str]]]
    created: dict[str, float] = dataclasses.field(default_factory=dict)
    seen: dict[str, set[tuple[str, str]]] = dataclasses.field(default_factory=dict)
    children_done: dict[str, float] = dataclasses.field(default_factory=dict)
    status_written: dict[str, float] = dataclasses.field(default_factory=dict)
    ready: dict[str, float] = dataclasses.field(default_factory=dict)
    phases: dict[str, str] = dataclasses.field(default_factory=dict)
    last_change: float = 0.0
    # during a recording window: (kind, name, what) of every MODIFIED/ADDED/DELETED event
    recording: list[tuple[str, str, str]] | None = None
    last_status: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def on_detector(self, kind: str, obj: dict[str, Any], now: float) -> None:
        name = obj["metadata"]["name"]
        status = obj.get("status") or {}
        self.created.setdefault(name, now)
        if status.get("observedGeneration") and name not in self.status_written:
            self.status_written[name] = now
        phase = str(status.get("phase") or "")
        self.phases[name] = phase
        if phase == "Ready" and name not in self.ready:
            self.ready[name] = now
        previous = self.last_status.get(name)
        if previous is not None and previous != status:
            self.last_change = now
            if self.recording is not None:
                self.recording.append((kind, name, "status: " + status_diff(previous, status)))
        elif previous is not None and self.recording is not None:
            self.recording.append((kind, name, "metadata/spec (status unchanged)"))
        self.last_status[name] = status

    def on_child(self, type_: str, kind: str, obj: dict[str, Any], now: float) -> None:
        metadata = obj.get("metadata") or {}
        instance = (metadata.get("labels") or {}).get(naming.LABEL_INSTANCE, "")
        found = self.seen.setdefault(instance, set())
        found.add((kind, str(metadata.get("name"))))
        wanted = self.expected.get(instance)
        if wanted and instance not in self.children_done and wanted <= found:
            self.children_done[instance] = now
        self.last_change = now
        if self.recording is not None:
            self.recording.append((kind, str(metadata.get("name")), type_))


def status_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if "conditions" in changed:
        before = {c.get("type"): c for c in old.get("conditions") or []}
        after = {c.get("type"): c for c in new.get("conditions") or []}
        moved = sorted(t for t in set(before) | set(after) if before.get(t) != after.get(t))
        changed[changed.index("conditions")] = f"conditions[{','.join(map(str, moved))}]"
    return ",".join(changed)


async def watch_all(
    kubeconfig: str, namespace: str, timeline: Timeline, kinds: list[tuple[str, str]]
) -> None:
    """Watch the resources and every labelled child kind until cancelled."""
    client = lightkube.AsyncClient(config=KubeConfig.from_file(kubeconfig))
    detectors = create_namespaced_resource(naming.GROUP, naming.VERSION, naming.KIND, naming.PLURAL)

    def as_dict(obj: Any) -> dict[str, Any]:
        # lightkube's models and generic resources both serialise with to_dict(), untyped.
        body: dict[str, Any] = obj.to_dict()
        return body

    async def detectors_watch() -> None:
        async for type_, obj in _watch_retrying(
            lambda: client.watch(detectors, namespace=namespace, server_timeout=300)
        ):
            if type_ != "DELETED":
                timeline.on_detector(naming.KIND, as_dict(obj), time.monotonic())

    async def child_watch(api_version: str, kind: str) -> None:
        # Any: the registry returns namespaced or global kinds; every child kind is namespaced.
        resource: Any = codecs.resource_registry.load(api_version, kind)
        assert resource is not None, kind
        async for type_, obj in _watch_retrying(
            lambda: client.watch(
                resource,
                namespace=namespace,
                labels={naming.LABEL_MANAGED_BY: naming.MANAGED_BY},
                server_timeout=300,
            )
        ):
            timeline.on_child(type_, kind, as_dict(obj), time.monotonic())

    try:
        await asyncio.gather(detectors_watch(), *(child_watch(v, k) for v, k in kinds))
    finally:
        await client.close()


def _status_code(exc: BaseException) -> int | None:
    """The HTTP status of a lightkube (ApiError) or httpx (HTTPStatusError) error."""
    response = getattr(exc, "response", None)
    code = getattr(response, "status_code", None)
    if code is None:
        code = getattr(getattr(exc, "status", None), "code", None)
    return code if isinstance(code, int) else None


async def _watch_retrying(
    start: Callable[[], AsyncIterator[tuple[str, Any]]], attempts: int = 30
) -> AsyncIterator[tuple[str, Any]]:
    """A watch that is re-opened when the API server answers 429. A new CRD's watch cache
    answers 429 ("storage is (re)initializing", with Retry-After) for its first seconds,
    which a benchmark that starts watching right after installing the CRD meets. Events
    replayed by a re-opened watch are harmless: the timeline keeps each first time."""
    for attempt in range(attempts):
        try:
            async for event in start():
                yield event
            return
        except Exception as exc:
            if _status_code(exc) != 429 or attempt == attempts - 1:
                raise
            await asyncio.sleep(1.0)


def child_kinds() -> list[tuple[str, str]]:
    """Every kind the operator watches, plus Secrets (created by the operator, not watched)."""
    out = [("v1", "Secret")]
    for kind, (group, version, _plural) in observing.CHILD_KINDS.items():
        if kind != "Secret":
            out.append((f"{group}/{version}" if group else version, kind))
    return out


def operator_resources() -> set[str]:
    """API server resource names the operator reads or writes (the attribution filter)."""
    plurals = {plural for _g, _v, plural in observing.CHILD_KINDS.values()}
    return {
        naming.PLURAL,
        f"{naming.PLURAL}/status",
        "secrets",
        "deployments/scale",
        *plurals,
    }


# --- creating the resources -------------------------------------------------------------------
async def create_with_api(
    kubeconfig: str,
    namespace: str,
    bodies: list[dict[str, Any]],
    concurrency: int,
    deadline_s: float,
) -> None:
    """POST every resource through one API client, ``concurrency`` requests in flight.

    One ``kubectl apply`` creates objects one at a time (a GET and a POST each: 14 s for 200
    on an idle machine, minutes for 1,000 on a busy one), which is slower than the operator it
    is meant to feed; a bounded pool of creates on kept-alive connections is not.
    """
    client = lightkube.AsyncClient(config=KubeConfig.from_file(kubeconfig))
    create_namespaced_resource(naming.GROUP, naming.VERSION, naming.KIND, naming.PLURAL)
    gate = asyncio.Semaphore(max(1, concurrency))

    async def create(body: dict[str, Any]) -> None:
        # Any: create()'s overloads want a concrete resource class; this one is generic.
        obj: Any = codecs.from_dict(body)
        async with gate:
            await client.create(obj, namespace=namespace)

    try:
        await asyncio.wait_for(asyncio.gather(*(create(b) for b in bodies)), deadline_s)
    finally:
        await client.close()


async def create_with_kubectl(
    kubeconfig: str, bodies: list[dict[str, Any]], workers: int, deadline_s: float
) -> None:
    """``workers`` ``kubectl apply -f -`` processes, each applying an interleaved share (the
    harness of the 2026-11-28/29 results, kept so a row can be compared like for like)."""
    workers = max(1, workers)

    async def apply(chunk: list[dict[str, Any]]) -> None:
        process = await asyncio.create_subprocess_exec(
            str(KUBECTL),
            f"--kubeconfig={kubeconfig}",
            "apply",
            "-f",
            "-",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(
            process.communicate(yaml.safe_dump_all(chunk).encode()), deadline_s
        )
        if process.returncode != 0:
            raise RuntimeError(f"kubectl apply failed: {stderr.decode()}")

    chunks = [bodies[i::workers] for i in range(workers)]
    await asyncio.gather(*(apply(chunk) for chunk in chunks if chunk))


# --- one scenario -----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Scenario:
    label: str
    count: int
    spec: dict[str, Any]
    creator: str = "api"  # "api" (one client, bounded concurrency) or "kubectl"


async def run_scenario(
    kubeconfig: str,
    scenario: Scenario,
    workdir: pathlib.Path,
    *,
    deadline_s: float,
    window_s: float,
    quiet_s: float,
    creator: str = "api",
    create_concurrency: int = 32,
    apply_workers: int = 1,
) -> dict[str, Any]:
    namespace = f"bench-{scenario.label}-{scenario.count}"
    print(f"== {namespace}: load average {load_average()}", flush=True)
    kubectl(kubeconfig, "create", "namespace", namespace)
    names = [f"ad-{i:03d}" for i in range(scenario.count)]
    timeline = Timeline(expected={n: expected_children(scenario.spec, n, namespace) for n in names})
    operator = Operator(kubeconfig, namespace, workdir / f"operator-{namespace}.log")
    watches = asyncio.create_task(watch_all(kubeconfig, namespace, timeline, child_kinds()))
    result: dict[str, Any] = {
        "scenario": scenario.label,
        "count": scenario.count,
        "namespace": namespace,
        "spec": scenario.spec,
        "children_per_resource": sorted(f"{k}/{n}" for k, n in timeline.expected[names[0]]),
        "load_average_at_start": load_average(),
    }
    try:
        await asyncio.sleep(2)  # the watches are established
        if watches.done():
            watches.result()
        bodies = [
            {
                "apiVersion": naming.API_VERSION,
                "kind": naming.KIND,
                "metadata": {"name": n, "namespace": namespace},
                "spec": scenario.spec,
            }
            for n in names
        ]
        cpu0 = operator.cpu_seconds()
        own_cpu0 = time.process_time()
        cluster_cpu0 = cluster_cpu_seconds(kubeconfig)
        t0 = time.monotonic()
        if creator == "kubectl":
            result["creator"] = f"kubectl apply x {max(1, apply_workers)}"
            await create_with_kubectl(kubeconfig, bodies, apply_workers, deadline_s)
        else:
            result["creator"] = f"API client, {create_concurrency} concurrent creates"
            await create_with_api(kubeconfig, namespace, bodies, create_concurrency, deadline_s)
        apply_s = time.monotonic() - t0

        # convergence: every resource Ready (bounded)
        end = t0 + deadline_s
        load_1m = [os.getloadavg()[0]]
        while len(timeline.ready) < scenario.count and time.monotonic() < end:
            if watches.done():
                watches.result()
            await asyncio.sleep(0.2)
            load_1m.append(os.getloadavg()[0])
        converged: float | None = None
        if len(timeline.ready) == scenario.count:
            converged = max(timeline.ready.values()) - t0
        burst_cpu = operator.cpu_seconds() - cpu0
        # The benchmark's own CPU (creating, and decoding every watch event) competes with
        # the operator and the control plane for the same cores.
        result["benchmark_cpu_s_burst"] = round(time.process_time() - own_cpu0, 2)
        result["cluster_cpu_s_burst"] = round(cluster_cpu_seconds(kubeconfig) - cluster_cpu0, 2)
        result["burst_wall_s"] = round(time.monotonic() - t0, 2)
        burst_memory = operator.memory_mb()

        def since_apply(stamps: Mapping[str, float]) -> list[float]:
            return [t - t0 for t in stamps.values()]

        def since_create(stamps: Mapping[str, float]) -> list[float]:
            return [t - timeline.created[n] for n, t in stamps.items() if n in timeline.created]

        result.update(
            {
                "create_s": round(apply_s, 3),
                "from_apply": {
                    "resource_created": summary(since_apply(timeline.created), scenario.count),
                    "children_created": summary(
                        since_apply(timeline.children_done), scenario.count
                    ),
                    "status_written": summary(since_apply(timeline.status_written), scenario.count),
                    "ready": summary(since_apply(timeline.ready), scenario.count),
                },
                "from_own_creation": {
                    "children_created": summary(
                        since_create(timeline.children_done), scenario.count
                    ),
                    "status_written": summary(
                        since_create(timeline.status_written), scenario.count
                    ),
                    "ready": summary(since_create(timeline.ready), scenario.count),
                },
                "all_ready_s": round(converged, 3) if converged is not None else None,
                "children_missing": {
                    n: sorted(f"{k}/{c}" for k, c in want - timeline.seen.get(n, set()))
                    for n, want in list(timeline.expected.items())[:5]
                    if n not in timeline.children_done
                },
                "not_ready": {
                    n: timeline.phases.get(n, "") for n in names if n not in timeline.ready
                }
                if len(timeline.ready) < scenario.count
                else {},
                "operator_cpu_s_burst": round(burst_cpu, 2),
                "load_1m_during_convergence": {
                    "min": round(min(load_1m), 2),
                    "max": round(max(load_1m), 2),
                },
                "operator_memory_after_burst": burst_memory,
            }
        )
        print(
            f"   created in {apply_s:.1f}s, all ready {result['all_ready_s']} s, "
            f"ready {len(timeline.ready)}/{scenario.count}",
            flush=True,
        )

        # settle: no resource status or child change for quiet_s (bounded)
        settle_end = time.monotonic() + 180
        while time.monotonic() < settle_end:
            if time.monotonic() - timeline.last_change >= quiet_s:
                break
            await asyncio.sleep(0.5)
        result["settled_quietly"] = time.monotonic() - timeline.last_change >= quiet_s

        # steady-state window, operator running
        timeline.recording = []
        offset = operator.log_size()
        before = apiserver_requests(kubeconfig)
        cpu1 = operator.cpu_seconds()
        await asyncio.sleep(window_s)
        after = apiserver_requests(kubeconfig)
        cpu2 = operator.cpu_seconds()
        own = operator.requests_since(offset)
        events = timeline.recording
        timeline.recording = None
        memory = operator.memory_mb()
        running = counter_delta(after, before)

        # the same window with the operator stopped: the other clients' share
        writes_total = operator.stop()
        before = apiserver_requests(kubeconfig)
        await asyncio.sleep(window_s)
        stopped = counter_delta(apiserver_requests(kubeconfig), before)
        mine = operator_resources()
        attributed = {
            key: running.get(key, 0) - stopped.get(key, 0)
            for key in set(running) | set(stopped)
            if key[1] in mine
        }
        resyncs = scenario.count * int(window_s // RESYNC_SECONDS)
        own_writes = [f"{v} {p}" for v, p in own if v in WRITE_VERBS]
        own_reads = [f"{v} {p}" for v, p in own if v not in WRITE_VERBS]
        result.update(
            {
                "steady_state": {
                    "window_s": window_s,
                    "resync_seconds": RESYNC_SECONDS,
                    "resync_reconciles_in_window": resyncs,
                    "operator_log": {
                        "writes": len(own_writes),
                        "reads": len(own_reads),
                        "writes_per_reconcile": round(len(own_writes) / max(1, resyncs), 4),
                        "reads_per_reconcile": round(len(own_reads) / max(1, resyncs), 4),
                        "writes_by_request": dict(Counter(own_writes).most_common()),
                        "reads_by_request": dict(Counter(own_reads).most_common()),
                    },
                    "apiserver_operator_running": split_counts(running),
                    "apiserver_operator_stopped": split_counts(stopped),
                    "apiserver_attributed_to_operator": split_counts(attributed),
                    "watch_events_in_window": len(events),
                    "watch_events_by_object": dict(
                        Counter(f"{k}/{n}: {what}" for k, n, what in events).most_common(40)
                    ),
                    "operator_cpu_s": round(cpu2 - cpu1, 2),
                },
                "operator_memory_settled": memory,
                "operator_reconcile_counters_at_exit": writes_total,
            }
        )
        print(
            f"   steady: {len(own_writes)} writes, {len(own_reads)} reads by the operator in "
            f"{window_s:.0f}s; RSS {memory['rss_mb']} MB (peak {memory['peak_rss_mb']})",
            flush=True,
        )
        return result
    finally:
        watches.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watches
        operator.stop()
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            kubectl(kubeconfig, "delete", "namespace", namespace, "--timeout=180s", timeout=200)
        result["load_average_at_end"] = load_average()


# --- report -----------------------------------------------------------------------------------
def targets(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for res in results:
        name = f"{res['scenario']}-{res['count']}"
        ready = res.get("all_ready_s")
        if res["count"] > 1:
            out.append(
                {
                    "target": f"{name}: all {res['count']} Ready within "
                    f"{ready_target_s(res['count'])} s of the start of creating them",
                    "value": f"{ready} s" if ready is not None else "not all Ready",
                    "pass": ready is not None and ready <= ready_target_s(res["count"]),
                }
            )
        steady = res.get("steady_state")
        if steady:
            log_writes = steady["operator_log"]["writes"]
            attributed = steady["apiserver_attributed_to_operator"]["writes"]
            out.append(
                {
                    "target": f"{name}: zero writes at steady state",
                    "value": f"{log_writes} in the operator's log; {attributed} attributed by "
                    f"the API server counters ({steady['window_s']:.0f} s)",
                    "pass": log_writes == 0 and attributed <= 0,
                }
            )
        if 200 <= res["count"] < 1000 and "operator_memory_settled" in res:
            memory = res["operator_memory_settled"]
            out.append(
                {
                    "target": f"{name}: operator RSS under 150 MB",
                    "value": f"{memory['rss_mb']} MB settled, {memory['peak_rss_mb']} MB peak",
                    "pass": memory["rss_mb"] < 150 and memory["peak_rss_mb"] < 150,
                }
            )
    return out


def ready_target_s(count: int) -> int:
    """Issue targets: up to 200 resources Ready within 60 s, 1,000 within 120 s."""
    return 60 if count <= 200 else 120


def fmt(value: Any) -> str:
    return "-" if value is None else f"{value}"


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"# Operator benchmark, {report['date']}",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Machine: {m['cpu_model']}, {m['nproc']} CPUs, {m['memory_gib']} GiB, Python "
        f"{m['python']}, kernel {m['kernel']}. Load average at start "
        f"{m['load_average_at_start']}, at end {report['load_average_at_end']} (the machine is "
        "shared; the control plane, KWOK and the operator run on the same cores).",
        f"Control plane: {report['control_plane']}.",
        "",
        "## Targets",
        "",
        "| target | measured | |",
        "|---|---|---|",
    ]
    for t in report["targets"]:
        lines.append(f"| {t['target']} | {t['value']} | {'PASS' if t['pass'] else 'FAIL'} |")
    lines += [
        "",
        "## Latency (seconds from the start of creating the resources; p50 / p99 / max)",
        "",
        "| scenario | creating took | created | all children exist | status written | Ready |"
        " all Ready | load (1 min) at start / during (min-max) | CPU: operator (benchmark)"
        " (control plane) / wall |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def cell(s: Mapping[str, Any]) -> str:
        extra = "" if s["n"] == s["of"] else f" (only {s['n']}/{s['of']})"
        return f"{fmt(s['p50'])} / {fmt(s['p99'])} / {fmt(s['max'])}{extra}"

    for res in report["scenarios"]:
        if "from_apply" not in res:
            lines.append(f"| {res['scenario']}-{res['count']} | error: {res.get('error')} |")
            continue
        fa = res["from_apply"]
        lines.append(
            f"| {res['scenario']}-{res['count']} | {res['create_s']} ({res['creator']}) | "
            f"{cell(fa['resource_created'])} | {cell(fa['children_created'])} | "
            f"{cell(fa['status_written'])} | {cell(fa['ready'])} | {fmt(res['all_ready_s'])} | "
            f"{res['load_average_at_start'][0]} / {res['load_1m_during_convergence']['min']}-"
            f"{res['load_1m_during_convergence']['max']} | {res['operator_cpu_s_burst']} s "
            f"({res['benchmark_cpu_s_burst']} s) ({res.get('cluster_cpu_s_burst', '-')} s) / "
            f"{res.get('burst_wall_s', '-')} s |"
        )
    lines += [
        "",
        "Same, from each resource's own creation (its ADDED watch event), p50 / p99 / max:",
        "",
        "| scenario | all children exist | status written | Ready |",
        "|---|---|---|---|",
    ]
    for res in report["scenarios"]:
        if "from_own_creation" in res:
            fc = res["from_own_creation"]
            lines.append(
                f"| {res['scenario']}-{res['count']} | {cell(fc['children_created'])} | "
                f"{cell(fc['status_written'])} | {cell(fc['ready'])} |"
            )
    lines += [
        "",
        "## Steady state (window with nothing changing)",
        "",
        "| scenario | window | resync reconciles | operator writes (log) | operator reads (log)"
        " | API server writes: running / stopped / attributed | API server reads: running /"
        " stopped / attributed | watch events | operator CPU | RSS settled / peak |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for res in report["scenarios"]:
        s = res.get("steady_state")
        if not s:
            continue
        run, stop, att = (
            s["apiserver_operator_running"],
            s["apiserver_operator_stopped"],
            s["apiserver_attributed_to_operator"],
        )
        mem = res["operator_memory_settled"]
        lines.append(
            f"| {res['scenario']}-{res['count']} | {s['window_s']:.0f} s | "
            f"{s['resync_reconciles_in_window']} | {s['operator_log']['writes']} "
            f"({s['operator_log']['writes_per_reconcile']}/reconcile) | "
            f"{s['operator_log']['reads']} ({s['operator_log']['reads_per_reconcile']}/reconcile)"
            f" | {run['writes']} / {stop['writes']} / {att['writes']} | {run['reads']} / "
            f"{stop['reads']} / {att['reads']} | {s['watch_events_in_window']} | "
            f"{s['operator_cpu_s']} s | {mem['rss_mb']} / {mem['peak_rss_mb']} MB |"
        )
    lines += ["", "Details per scenario (verb resource: count):", ""]
    for res in report["scenarios"]:
        s = res.get("steady_state")
        if not s:
            continue
        lines.append(f"* **{res['scenario']}-{res['count']}**")
        lines.append(f"  * operator writes: {s['operator_log']['writes_by_request'] or 'none'}")
        lines.append(f"  * operator reads: {s['operator_log']['reads_by_request'] or 'none'}")
        for key, title in (
            ("apiserver_operator_running", "API server, operator running"),
            ("apiserver_operator_stopped", "API server, operator stopped"),
        ):
            lines.append(
                f"  * {title}: writes {s[key]['writes_by_verb_resource'] or 'none'}; "
                f"reads {s[key]['reads_by_verb_resource'] or 'none'}"
            )
        lines.append(f"  * watch events: {s['watch_events_by_object'] or 'none'}")
        lines.append(
            f"  * reconcile counters at exit: `{res['operator_reconcile_counters_at_exit']}`"
        )
    lines += ["", "Notes:", ""] + [f"* {n}" for n in report["notes"]] + [""]
    return "\n".join(lines)


NOTES = [
    "Times come from API watches started before the apply (monotonic clock of the benchmark "
    "process): a resource's 'created' is its ADDED event, 'all children exist' the moment every "
    "child the operator's builders produce for that spec has been seen, 'status written' the "
    "first event carrying status.observedGeneration, 'Ready' the first event with phase Ready "
    "(the Deployment's pods scheduled on a c5 node and marked Ready by KWOK).",
    "p99 is nearest-rank (for 200 resources: the 198th smallest).",
    "Operator requests come from its own request log (lightkube logs every HTTP request); "
    "kopf's watch connections (aiohttp) are not in it: they show in the API server's counters.",
    "API server counters are apiserver_request_total deltas by verb and resource, all clients. "
    "'attributed' = operator running minus operator stopped, over windows of the same length "
    "(controller-manager, scheduler and KWOK requests cancel out), counted only for the "
    "resources the operator touches (AnomalyDetectors and their status, the child kinds, "
    "Secrets), so lease renewals and discovery jitter are not blamed on it. Events are left out: "
    "without a metrics server the HPA controller PATCHes a FailedGetResourceMetric Event per "
    "HPA every 15 s, far more than the operator's own (which its log shows). WATCH requests "
    "are counted by the API server when a watch ends (kopf re-opens each watch every 60 s).",
    "Resync reconciles = resources x whole resync periods (PYNOMALY_OPERATOR_RESYNC_SECONDS, "
    "default 15 s) in the window; child events would add more reconciles.",
    "RSS: VmRSS of the operator process at the end of the window ('settled') and VmHWM "
    "(the process's peak).",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--kubeconfig", help="use this running control plane (kept running)")
    parser.add_argument(
        "--count",
        type=int,
        action="append",
        help="resources in a large run (repeat for several; default 200)",
    )
    parser.add_argument(
        "--defaults-count",
        type=int,
        default=10,
        help="resources with the default spec (Redis sentinel, PostgreSQL, PgBouncer); 0 = skip",
    )
    parser.add_argument("--window", type=float, default=60.0, help="steady-state window, s")
    parser.add_argument(
        "--quiet", type=float, default=20.0, help="no change for this long = settled"
    )
    parser.add_argument("--deadline", type=float, default=240.0, help="convergence deadline, s")
    parser.add_argument(
        "--create-concurrency",
        type=int,
        default=32,
        help="creates in flight when the API client creates the resources (default 32)",
    )
    parser.add_argument(
        "--kubectl-count",
        type=int,
        action="append",
        default=[],
        help="also a run of this many resources created by `kubectl apply` (the harness of "
        "the 2026-11-28/29 results, for a like-for-like row; repeatable)",
    )
    parser.add_argument(
        "--apply-workers",
        type=int,
        default=1,
        help="kubectl apply processes of a --kubectl-count run (default 1)",
    )
    parser.add_argument(
        "--controller-qps",
        type=float,
        help="client QPS of the private control plane's controller-manager and scheduler "
        "(default: the control plane's, see e2e/controlplane/controllers.go)",
    )
    parser.add_argument(
        "--hpa-sync-period",
        default="15s",
        help="HPA controller sync period of the private control plane (default 15s, the "
        "upstream default; the control plane's own default is 5s for quick tests)",
    )
    parser.add_argument("--nodes", default=NODES, help="fake nodes of a private control plane")
    parser.add_argument("--out-dir", type=pathlib.Path, default=HERE / "results")
    parser.add_argument(
        "--suffix", default="", help="appended to the results' file stem (a second run a day)"
    )
    args = parser.parse_args()

    started = datetime.datetime.now(datetime.UTC)
    report: dict[str, Any] = {
        "date": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join([".venv/bin/python", "bench/operator/run.py", *sys.argv[1:]]),
        "machine": machine(),
        "notes": NOTES,
    }
    scenarios = [
        Scenario("minimal", 1, MINIMAL_SPEC),
        *(Scenario("minimal-kubectl", n, MINIMAL_SPEC, "kubectl") for n in args.kubectl_count),
        *(Scenario("minimal", count, MINIMAL_SPEC) for count in args.count or [200]),
    ]
    if args.defaults_count > 0:
        scenarios.append(Scenario("defaults", args.defaults_count, DEFAULTS_SPEC))
    cp_flags = [f"--hpa-sync-period={args.hpa_sync_period}"]
    if args.controller_qps is not None:
        cp_flags.append(f"--controller-qps={args.controller_qps:g}")
    results: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="pynomaly-bench-operator-") as tmp,
        control_plane(args.kubeconfig, nodes=args.nodes, extra=cp_flags) as (kubeconfig, private),
    ):
        report["control_plane"] = (
            f"private (started by the benchmark, nodes {args.nodes}, {' '.join(cp_flags)})"
            if private
            else f"reused ({args.kubeconfig})"
        )
        install_crd(kubeconfig)
        for scenario in scenarios:
            try:
                results.append(
                    asyncio.run(
                        run_scenario(
                            kubeconfig,
                            scenario,
                            pathlib.Path(tmp),
                            deadline_s=args.deadline,
                            window_s=args.window,
                            quiet_s=args.quiet,
                            creator=scenario.creator,
                            create_concurrency=args.create_concurrency,
                            apply_workers=args.apply_workers,
                        )
                    )
                )
            except Exception as exc:  # one failed scenario is reported, the others still run
                print(f"   {scenario.label}-{scenario.count} failed: {exc!r}", flush=True)
                results.append(
                    {"scenario": scenario.label, "count": scenario.count, "error": repr(exc)}
                )
            logs = sorted(pathlib.Path(tmp).glob("operator-*.log"))
            keep = args.out_dir / "logs"
            keep.mkdir(parents=True, exist_ok=True)
            for log in logs:  # operator logs are kept next to the results (not committed)
                shutil.copy(log, keep / log.name)
    report["scenarios"] = results
    report["targets"] = targets(results)
    report["load_average_at_end"] = load_average()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = args.out_dir / f"operator-{started.strftime('%Y-%m-%d')}{args.suffix}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    return 0 if all(t["pass"] for t in report["targets"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""HTTP-layer reliability figures of the detector service in the configuration the operator
deploys: 500 concurrent clients, slow clients (slowloris), oversized bodies.

The server is ``pynomaly-detector serve`` with every ``PYNOMALY_*`` key the operator renders
for ``manifests/samples/minimal.yaml`` (ConfigMap settings: 4 workers, limits, timeouts),
overriding only what a laptop needs (loopback address, free ports, a local model directory,
no training source: the model is fitted over HTTP first). Load comes from ``wrk`` with
``wrk_post.lua`` (single-row POST /v1/models/<name>/detect, rows rotating). Everything is on
127.0.0.1, bounded in time and count; every process started is stopped by process group.

    .venv/bin/python bench/http_reliability.py [--duration 20]

writes bench/results/http-<date>.md with the machine's load average beside every figure.

``--mlserver`` also runs the 64- and 500-client cells against MLServer 1.7 (mlserver-sklearn,
the virtualenv ``detector_bench`` keeps in bench/.work/mlserver-venv) serving the same kind of
model, a scikit-learn IsolationForest fitted on the same rows, through V2 ``infer`` with
single-row FP64 tensors: the same load beside a reference server. MLServer runs with as many
inference workers as ours has uvicorn workers (``parallel_workers``), unpinned like ours.

During each of our 500-client runs the established connections are counted per worker
process (``ss``), to show how the one listening socket spreads clients over the workers.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import detector_bench  # noqa: E402  (a sibling script: MLServer's venv and start helper)

ROOT = BENCH.parent
LUA = BENCH / "wrk_post.lua"
SAMPLE = ROOT / "manifests" / "samples" / "minimal.yaml"
FEATURES = 8
ML_PATH = f"/v2/models/{detector_bench.MODEL}/infer"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def operator_env() -> dict[str, str]:
    """The ConfigMap the operator renders for the minimal sample."""
    sys.path.insert(0, str(ROOT / "operator"))
    from pynomaly_operator.builders.detector import config_map
    from pynomaly_operator.specs import detector as specs

    body = yaml.safe_load(SAMPLE.read_text())
    body.setdefault("metadata", {})["namespace"] = "bench"
    return config_map.settings(specs.AnomalyDetector.from_body(body))


@contextlib.contextmanager
def server(work: Path, env: dict[str, str]) -> Iterator[tuple[str, str, subprocess.Popen[bytes]]]:
    port, probe_port = free_port(), free_port()
    values = {
        **os.environ,
        **env,
        "PYNOMALY_HOST": "127.0.0.1",
        "PYNOMALY_PORT": str(port),
        "PYNOMALY_METRICS_PORT": str(probe_port),
        "PYNOMALY_MODEL_DIR": str(work / "models"),
        "PYNOMALY_ARTIFACT_SIGNING_KEY": "bench-signing-key-0123456789abcdef",
        "PYNOMALY_LOG_LEVEL": "WARNING",
    }
    for key in ("PYNOMALY_MODEL_TRAINING_PATH", "PYNOMALY_MODEL_TRAINING_URL"):
        values.pop(key, None)
    values["PYNOMALY_MODEL_NAME"] = ""  # fitted over HTTP below
    log = (work / "server.log").open("wb")
    script = Path(sys.executable).with_name("pynomaly-detector")
    proc = subprocess.Popen(
        [str(script), "serve"], env=values, stdout=log, stderr=log, start_new_session=True
    )
    base, probes = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{probe_port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{probes}/readyz", timeout=2).status_code == 200:
                    break
            if proc.poll() is not None:
                raise RuntimeError((work / "server.log").read_text()[-3000:])
            time.sleep(0.3)
        else:
            raise RuntimeError("server not ready in 180 s")
        yield base, probes, proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        log.close()


def wrk(
    base: str,
    bodies: Path,
    *,
    connections: int,
    duration: int,
    path: str = "/v1/models/bench/detect",
) -> dict[str, Any]:
    argv = [
        "wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "--latency",
        "-s", str(LUA), base, "--", path, str(bodies),
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=True)
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("WRKJSON "))
    stats: dict[str, Any] = json.loads(line.removeprefix("WRKJSON "))
    stats["rps"] = stats["requests"] / (stats["duration_us"] / 1e6)
    kinds = ("connect", "read", "write", "status", "timeout")
    stats["errors"] = sum(stats[f"errors_{kind}"] for kind in kinds)
    stats["load"] = os.getloadavg()[0]
    return stats


def connections_per_process(port: int) -> dict[int, int]:
    """Established connections to ``port`` by the pid of the process holding them."""
    done = subprocess.run(
        ["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    counts: dict[int, int] = {}
    for line in done.stdout.splitlines():
        for field in line.split("pid=")[1:]:
            pid = int(field.split(",", 1)[0])
            counts[pid] = counts.get(pid, 0) + 1
    return counts


def wrk_with_spread(
    base: str, bodies: Path, *, connections: int, duration: int
) -> tuple[dict[str, Any], dict[int, int]]:
    """``wrk`` plus the per-process connection counts sampled halfway through the run."""
    port = int(base.rsplit(":", 1)[1])
    spread: dict[int, int] = {}

    def sample() -> None:
        time.sleep(duration / 2)
        spread.update(connections_per_process(port))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stats = wrk(base, bodies, connections=connections, duration=duration)
    sampler.join(timeout=30)
    return stats, spread


@contextlib.contextmanager
def mlserver(work: Path, rows: np.ndarray[Any, Any], workers: int) -> Iterator[str]:
    """MLServer 1.7 serving an IsolationForest fitted on ``rows`` (in its own virtualenv)."""
    python = detector_bench.ensure_mlserver_venv().with_name("python")
    np.save(work / "train.npy", rows)
    fit = (
        "import joblib, numpy as np\n"
        "from sklearn.ensemble import IsolationForest\n"
        f"rows = np.load({str(work / 'train.npy')!r})\n"
        "model = IsolationForest(n_estimators=100, random_state=7).fit(rows)\n"
        f"joblib.dump(model, {str(work / 'model.joblib')!r})\n"
    )
    subprocess.run([str(python), "-c", fit], check=True, timeout=300)
    # Unpinned like ours (the detector bench pins its one-worker servers to one CPU).
    pinned, detector_bench.SERVER_CPU = detector_bench.SERVER_CPU, f"0-{(os.cpu_count() or 1) - 1}"
    try:
        started = detector_bench.start_mlserver(work, batching=False, parallel_workers=workers)
    finally:
        detector_bench.SERVER_CPU = pinned
    try:
        yield started.base
    finally:
        started.stop()


class SlowClients:
    """``count`` connections sending a request's headers a byte a second, reconnecting when
    the server cuts them off (the read deadline), until stopped."""

    def __init__(self, port: int, count: int) -> None:
        self.port, self.count = port, count
        self.stop = threading.Event()
        self.cut_off = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SlowClients:
        self._thread.start()
        time.sleep(1.0)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._thread.join(timeout=30)

    def _open(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port))
        sock.sendall(b"GET /v1/models HTTP/1.1\r\n")
        return sock

    def _run(self) -> None:
        sockets = [self._open() for _ in range(self.count)]
        while not self.stop.wait(1.0):
            for index, sock in enumerate(sockets):
                try:
                    sock.send(b"x")
                except OSError:
                    self.cut_off += 1
                    sock.close()
                    sockets[index] = self._open()
        for sock in sockets:
            sock.close()


def oversized(base: str) -> float:
    """Seconds until a 200 MB declared body is refused (nothing of it sent)."""
    host, port = base.removeprefix("http://").split(":")
    started = time.perf_counter()
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            b"POST /v1/models/bench/detect HTTP/1.1\r\nhost: x\r\ncontent-type: application/json"
            b"\r\ncontent-length: 209715200\r\n\r\n"
        )
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    return time.perf_counter() - started


def slow_client_cells(base: str, probes: str, bodies: Path, *, duration: int) -> list[str]:
    """Slow clients beside normal load, then an oversized body: the result file's lines."""
    port = int(base.rsplit(":", 1)[1])
    lines: list[str] = []
    lines += [
        "",
        "## Slow clients (headers a byte a second) beside normal load (8 clients)",
        "",
        "| slow clients | req/s | p50 ms | p95 ms | p99 ms | errors | load | probes during |",
        "|---|---|---|---|---|---|---|---|",
    ]
    solo = wrk(base, bodies, connections=8, duration=duration)
    lines.append("| 0 " + fmt(solo) + " |")
    for count in (300, 1000):
        with SlowClients(port, count):
            stats = wrk(base, bodies, connections=8, duration=duration)
            probe = [
                httpx.get(f"{probes}{path}", timeout=2).status_code
                for path in ("/livez", "/readyz")
            ]
        lines.append(f"| {count} " + fmt(stats) + f" {probe} |")
        print(count, stats, probe, flush=True)
        if count == 300:
            ratio = stats["p99_us"] / solo["p99_us"]
            lines.append(f"|  | p99 with 300 slow / solo: **{ratio:.2f}x** | | | | | | |")
    seconds = oversized(base)
    lines += [
        "",
        f"A 200 MB declared body: 413 after {seconds * 1000:.1f} ms, none of it sent.",
    ]
    return lines


def fmt(stats: dict[str, Any]) -> str:
    return (
        f"| {stats['rps']:,.0f} | {stats['p50_us'] / 1000:.1f} | {stats['p95_us'] / 1000:.1f} | "
        f"{stats['p99_us'] / 1000:.1f} | {stats['errors']} | {stats['load']:.1f} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument(
        "--env", action="append", default=[], help="KEY=VALUE over the operator's ConfigMap"
    )
    parser.add_argument(
        "--mlserver",
        action="store_true",
        help="also run the 64/500-client cells against MLServer 1.7 (same model kind, V2 infer)",
    )
    parser.add_argument(
        "--skip-slow-clients", action="store_true", help="only the concurrent-client cells"
    )
    options = parser.parse_args()
    work = BENCH / ".work" / "http"
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    bodies = work / "rows.jsonl"
    rows = rng.normal(size=(5000, FEATURES)).tolist()
    bodies.write_text("".join(json.dumps({"instances": [row]}) + "\n" for row in rows))
    v2_bodies = work / "rows-v2.jsonl"
    v2_bodies.write_text("".join(detector_bench._v2_body(np.array([row])) + "\n" for row in rows))
    env = operator_env()
    overrides = dict(item.split("=", 1) for item in options.env)
    env.update(overrides)
    lines = [
        f"# HTTP-layer reliability, {dt.date.today()}",
        "",
        "`bench/http_reliability.py`: `pynomaly-detector serve` with the ConfigMap the operator "
        "renders for `manifests/samples/minimal.yaml` "
        f"(PYNOMALY_WORKERS={env['PYNOMALY_WORKERS']}, "
        f"LIMIT_CONCURRENCY={env['PYNOMALY_LIMIT_CONCURRENCY']}, "
        f"MAX_REQUESTS={env['PYNOMALY_MAX_REQUESTS']}), IForest of {FEATURES} features, "
        "single-row POST /v1/models/bench/detect with rotating rows (wrk, 2 threads), all on "
        f"127.0.0.1. Machine: {os.cpu_count()} CPUs shared with other work; `load` is the "
        "1-minute load average when the cell ended."
        + (f" Overrides: `{overrides}`." if overrides else ""),
        "",
    ]
    training = rng.normal(size=(2000, FEATURES))
    spreads: list[str] = []
    with server(work, env) as (base, probes, _proc):
        fitted = httpx.put(
            f"{base}/v1/models/bench",
            json={"algorithm": "IForest", "instances": training.tolist()},
            timeout=120,
        )
        fitted.raise_for_status()
        wrk(base, bodies, connections=8, duration=3)  # warm every worker
        lines += [
            "## 500 concurrent clients",
            "",
            "| server | clients | req/s | p50 ms | p95 ms | p99 ms | errors | load |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for connections in (64, 500):
            stats, spread = wrk_with_spread(
                base, bodies, connections=connections, duration=options.duration
            )
            lines.append(f"| ours (v1 detect) | {connections} " + fmt(stats))
            counts = sorted(spread.values(), reverse=True)
            spreads.append(
                f"- ours, {connections} clients: established connections per worker process "
                f"halfway through the run: {counts} (sum {sum(counts)})"
            )
            print(connections, stats, spread, flush=True)
        slow = [] if options.skip_slow_clients else slow_client_cells(
            base, probes, bodies, duration=options.duration
        )  # fmt: skip
    if options.mlserver:
        workers = int(env["PYNOMALY_WORKERS"])
        (work / "mlserver").mkdir(exist_ok=True)
        with mlserver(work / "mlserver", training, workers) as ml_base:
            wrk(ml_base, v2_bodies, connections=8, duration=3, path=ML_PATH)  # warm up
            for connections in (64, 500):
                stats = wrk(
                    ml_base, v2_bodies, connections=connections, duration=options.duration,
                    path=ML_PATH,
                )  # fmt: skip
                lines.append(f"| MLServer 1.7 (V2 infer) | {connections} " + fmt(stats))
                print("mlserver", connections, stats, flush=True)
        lines += [
            "",
            f"MLServer: mlserver-sklearn, `parallel_workers={workers}` (one inference process "
            "per uvicorn worker of ours) behind its one REST process, a scikit-learn "
            "IsolationForest (100 trees) fitted on the same 2,000 rows, single-row FP64 V2 "
            "tensors; default server settings otherwise.",
        ]
    lines += ["", "## Connections per worker", "", *spreads, *slow]
    suffix = ("-overrides" if overrides else "") + ("-mlserver" if options.mlserver else "")
    out = BENCH / "results" / f"http-{dt.date.today()}{suffix}.md"
    out.write_text("\n".join(lines) + "\n")
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

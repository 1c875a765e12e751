"""Cell-interleaved A/B of single-row scoring: ours, the code before, the constant app.

On this VM one server's req/s moves by +-30 % within a minute, so block runs (all cells of
one server, then the next) cannot show a 10 % difference. Here the three servers run at once
(each one worker pinned to CPU 0) and wrk (CPU 1) drives each in turn for 3 s, the order
reversed every round; each cell records req/s and the server's CPU per request (psutil).

Needs the bodies and models of a previous ``detector_bench.py`` run (``bench/.work/run``)
and the code before as a source tree::

    git archive <commit> detector_service | tar -x -C /tmp/before
    .venv/bin/python bench/detector_bench.py --quick --servers ours --cells single-64
    .venv/bin/python bench/interleaved_ab.py --before-src /tmp/before/detector_service \
        --rounds 17 --out bench/.work/interleaved.json

One JSON line per cell on stdout; the medians are for the report.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RUN = BENCH / ".work" / "run"
BODIES = RUN / "bodies"
KEY = "bench-signing-key-not-a-secret-0123456789abcdef"
PATHS = {"v1": "/v1/models/bench-iforest/detect", "v2": "/v2/models/bench-iforest/infer"}
BIN = Path(sys.executable).parent


def _ours_env(port: int, models: Path, pythonpath: str | None) -> dict[str, str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/root"),
        "PYNOMALY_HOST": "127.0.0.1",
        "PYNOMALY_PORT": str(port),
        "PYNOMALY_METRICS_PORT": "0",
        "PYNOMALY_WORKERS": "1",
        "PYNOMALY_MAX_BODY_BYTES": str(64 * 2**20),
        "PYNOMALY_REDIS_MODE": "none",
        "PYNOMALY_DATABASE_URL": "",
        "PYNOMALY_MODEL_DIR": str(models),
        "PYNOMALY_ARTIFACT_SIGNING_KEY": KEY,
        "PYNOMALY_RATE_LIMIT_REQUESTS_PER_SECOND": "0",
    }
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return env


class Servers:
    """The three servers, started together and stopped together."""

    def __init__(self, scratch: Path, before_src: str) -> None:
        self.scratch = scratch
        self.procs: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
        self.before_src = before_src

    def _start(self, name: str, port: int, argv: list[str], env: dict[str, str]) -> None:
        log = (self.scratch / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            ["taskset", "-c", "0", *argv],
            env=env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        self.procs[name] = (proc, port)

    def start(self, base_port: int) -> None:
        for i, (name, src) in enumerate((("ours-before", self.before_src), ("ours", None))):
            models = self.scratch / f"models-{name}"
            shutil.copytree(RUN / "ours-models", models)
            port = base_port + i
            argv = [str(BIN / "pynomaly-detector"), "serve"]
            self._start(name, port, argv, _ours_env(port, models, src))
        port = base_port + 2
        argv = [str(BIN / "uvicorn"), "constant_app:app", "--workers", "1", "--no-access-log"]
        argv += ["--app-dir", str(BENCH), "--host", "127.0.0.1", "--port", str(port)]
        self._start("constant", port, argv, {"PATH": "/usr/bin:/bin"})
        for name, (_, port) in self.procs.items():
            _wait_ready(name, port)

    def stop(self) -> None:
        for proc, _ in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc, _ in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def _wait_ready(name: str, port: int) -> None:
    body = (BODIES / "v1-single.jsonl").open().readline().encode()
    for _ in range(300):
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{PATHS['v1']}",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{name} on port {port} never answered")


def _cpu_seconds(pid: int) -> float:
    process = psutil.Process(pid)
    total = 0.0
    for each in [process, *process.children(recursive=True)]:
        times = each.cpu_times()
        total += times.user + times.system
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before-src", required=True, help="detector_service of the code before")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--base-port", type=int, default=18801)
    parser.add_argument("--out", type=Path, default=BENCH / ".work" / "interleaved.json")
    parser.add_argument(
        "--together",
        action="store_true",
        help="load the three servers at the same time (one wrk each) instead of in turn",
    )
    args = parser.parse_args()
    if not (RUN / "ours-models").is_dir():
        raise SystemExit(f"no {RUN}/ours-models: run detector_bench.py once first")

    scratch = Path(tempfile.mkdtemp(prefix="pynomaly-ab-"))
    servers = Servers(scratch, args.before_src)
    offsets: dict[tuple[str, str], int] = {}
    results: list[dict[str, object]] = []

    def launch(name: str, endpoint: str, seconds: int) -> tuple[subprocess.Popen[str], float]:
        proc, port = servers.procs[name]
        offset = offsets.get((name, endpoint), 0)
        wrk = ["taskset", "-c", "1", "wrk", "-t1", f"-c{args.connections}", f"-d{seconds}s"]
        target = ["-s", str(BENCH / "wrk_post.lua"), f"http://127.0.0.1:{port}"]
        script_args = ["--", PATHS[endpoint], str(BODIES / f"{endpoint}-single.jsonl"), str(offset)]
        before = _cpu_seconds(proc.pid)
        load = subprocess.Popen(
            [*wrk, "--timeout", "10s", *target, *script_args], stdout=subprocess.PIPE, text=True
        )
        return load, before

    def finish(
        name: str, endpoint: str, load: subprocess.Popen[str], before: float, seconds: int
    ) -> tuple[float, float, int]:
        out, _ = load.communicate(timeout=seconds + 60)
        if load.returncode:
            raise SystemExit(f"wrk against {name} failed ({load.returncode})")
        used = _cpu_seconds(servers.procs[name][0].pid) - before
        line = next(x for x in out.splitlines() if x.startswith("WRKJSON"))
        data = json.loads(line.removeprefix("WRKJSON "))
        offsets[(name, endpoint)] = offsets.get((name, endpoint), 0) + data["requests"]
        errors = sum(v for k, v in data.items() if k.startswith("errors"))
        rps = data["requests"] / (data["duration_us"] / 1e6)
        return rps, 1e6 * used / max(data["requests"], 1), errors

    def cell(name: str, endpoint: str, seconds: int) -> tuple[float, float, int]:
        load, before = launch(name, endpoint, seconds)
        return finish(name, endpoint, load, before, seconds)

    def record(endpoint: str, r: int, name: str, measured: tuple[float, float, int]) -> None:
        rps, cpu_us, errors = measured
        results.append(
            {
                "ep": endpoint,
                "round": r,
                "server": name,
                "mode": "together" if args.together else "interleaved",
                "rps": rps,
                "cpu_us": cpu_us,
                "errors": errors,
                "load": os.getloadavg()[0],
                "t": time.strftime("%H:%M:%S", time.gmtime()),
            }
        )
        print(json.dumps(results[-1]), flush=True)

    try:
        servers.start(args.base_port)
        for endpoint in PATHS:
            for name in servers.procs:
                cell(name, endpoint, 1)  # warm-up
            for r in range(args.rounds):
                if args.together:
                    # Every server under load at once, sharing CPU 0 slice by slice: the
                    # VM's speed changes hit all of them alike, so their ratios hold.
                    started = {name: launch(name, endpoint, args.seconds) for name in servers.procs}
                    for name, (load, before) in started.items():
                        measured = finish(name, endpoint, load, before, args.seconds)
                        record(endpoint, r, name, measured)
                    continue
                order = list(servers.procs)
                for name in order if r % 2 == 0 else reversed(order):
                    record(endpoint, r, name, cell(name, endpoint, args.seconds))
    finally:
        servers.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results))


if __name__ == "__main__":
    main()

"""Memory of the workers' fit fork servers: the service's process tree at start, once every
worker has scored a model (the level a pod returns to), once every worker has fitted (each
worker's fork server holds every algorithm's imports), and after
``PYNOMALY_FIT_SERVER_IDLE_SECONDS`` without a fit (the fork servers stopped).

The server is ``pynomaly-detector serve`` with the operator's default of 4 workers, an
embedded store in a temporary directory, on 127.0.0.1; fits are concurrent PUTs of small
IForest models on fresh connections, so the kernel spreads them over the workers. RSS is
summed over the tree (shared pages count once per process); PSS splits shared pages.

    .venv/bin/python bench/fit_server_memory.py [--workers 4] [--idle 60]

prints a markdown table row with the machine's load average.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import psutil

MiB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def memory(pid: int) -> tuple[float, float]:
    """(RSS, PSS) of the tree in MiB."""
    rss = pss = 0
    for process in tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            info = process.memory_full_info()
            rss += info.rss
            pss += info.pss
    return rss / MiB, pss / MiB


def fork_servers(pid: int) -> int:
    count = 0
    for process in tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            count += "forkserver" in " ".join(process.cmdline())
    return count


async def measure(base: str, pid: int, workers: int, idle: float) -> str:
    fresh = httpx.Limits(max_keepalive_connections=0)
    rows = np.random.default_rng(0).normal(size=(500, 8)).round(4).tolist()
    async with httpx.AsyncClient(base_url=base, timeout=300, limits=fresh) as client:
        for _ in range(4 * workers):
            (await client.get("/v1/models")).raise_for_status()
        await asyncio.sleep(2)
        fresh_start = memory(pid)
        # Every worker scores a model (its own imports of the algorithm and the model, kept
        # whatever happens to fits); the fork server of that first fit is let stop.
        (await client.put("/v1/models/warm", json={"instances": rows})).raise_for_status()
        for _ in range(8 * workers):
            scored = await client.post("/v1/models/warm/detect", json={"instances": [rows[0]]})
            scored.raise_for_status()
        started = time.monotonic()
        while fork_servers(pid):
            if time.monotonic() > started + idle + 120:
                raise RuntimeError("the idle fork server was not stopped")
            await asyncio.sleep(0.5)
        before = memory(pid)
        for round_ in range(10):
            answers = await asyncio.gather(
                *(
                    client.put(f"/v1/models/m{round_}-{i}", json={"instances": rows})
                    for i in range(2 * workers)
                )
            )
            for answer in answers:
                answer.raise_for_status()
            if fork_servers(pid) == workers:
                break
        servers = fork_servers(pid)
        peak = memory(pid)
        last_fit = time.monotonic()
        while fork_servers(pid):
            if time.monotonic() > last_fit + idle + 120:
                raise RuntimeError("the idle fork servers were not stopped")
            await asyncio.sleep(0.5)
        stopped_after = time.monotonic() - last_fit
        await asyncio.sleep(1)
        after = memory(pid)
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"| {workers} workers | {fresh_start[0]:.0f} / {fresh_start[1]:.0f} | "
        f"{before[0]:.0f} / {before[1]:.0f} | {peak[0]:.0f} / "
        f"{peak[1]:.0f} ({servers} fork servers) | {after[0]:.0f} / {after[1]:.0f} "
        f"({stopped_after:.0f} s after the last fit, idle setting {idle:g} s) | load {load} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--idle", type=float, default=60.0)
    options = parser.parse_args()
    script = Path(sys.executable).with_name("pynomaly-detector")
    with tempfile.TemporaryDirectory() as directory:
        port, probe_port = free_port(), free_port()
        env = {
            **os.environ,
            "PYNOMALY_PORT": str(port),
            "PYNOMALY_METRICS_PORT": str(probe_port),
            "PYNOMALY_WORKERS": str(options.workers),
            "PYNOMALY_MODEL_DIR": f"{directory}/models",
            "PYNOMALY_ARTIFACT_SIGNING_KEY": "bench-signing-key-0123456789abcdef",
            "PYNOMALY_LOG_LEVEL": "WARNING",
            "PYNOMALY_FIT_SERVER_IDLE_SECONDS": str(options.idle),
            "PYNOMALY_REQUEST_TIMEOUT_SECONDS": "300",
            "PYNOMALY_FIT_TIMEOUT_SECONDS": "250",
        }
        with open(f"{directory}/server.log", "wb") as log:
            server = subprocess.Popen(
                [str(script), "serve"], env=env, stdout=log, stderr=log, start_new_session=True
            )
        try:
            deadline = time.monotonic() + 180
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"http://127.0.0.1:{probe_port}/readyz").status_code == 200:
                        break
                if time.monotonic() > deadline or server.poll() is not None:
                    print(Path(f"{directory}/server.log").read_text()[-3000:], file=sys.stderr)
                    return 1
                time.sleep(0.2)
            print(
                "| configuration | tree RSS / PSS at start, MiB | every worker scored a model "
                "| with fork servers | idle |"
            )
            print("|---|---|---|---|---|")
            print(
                asyncio.run(
                    measure(f"http://127.0.0.1:{port}", server.pid, options.workers, options.idle)
                )
            )
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            server.wait(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Open Inference Protocol transports: JSON v2, binary v2 and gRPC, ours beside MLServer's.

`make bench-oip` (or `python bench/oip_bench.py`) measures 256-row and 4,096-row requests
against our service (one worker, gRPC on) through each transport, and MLServer 1.7 (default
settings, the same IsolationForest) through its gRPC and JSON REST, in one run. It reuses
`detector_bench.py`'s setup: MLServer's own virtualenv (bench/.work/mlserver-venv), the
model and data of `bench_data.py`, servers pinned to CPU 0 with `taskset`. The load
generator is this file's `loadgen` command, pinned to CPU 1: asyncio with pre-encoded request
bodies (aiohttp for REST, grpc.aio with pre-serialised messages for gRPC), so each transport
is driven by the same client code; it records every request's latency, and its own CPU use
so a client-bound cell shows as such. Rows rotate over distinct bodies (no L1 cache hits).
Writes bench/results/oip-<date>.{md,json} with the machine's load average beside each cell.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from bench_data import N_FEATURES, query_rows
from detector_bench import (
    LOADGEN_CPU,
    MODEL,
    WORK,
    Server,
    clean_env,
    ensure_mlserver_venv,
    free_port,
    machine_info,
    start_mlserver,
    start_ours,
)

BENCH = Path(__file__).resolve().parent
SIZES = (256, 4096)
BODIES = {256: 64, 4096: 8}  # distinct bodies per size: 16,384 and 32,768 rows
TRANSPORTS = ("json", "binary", "grpc")
GRPC_INFER = "/inference.GRPCInferenceService/ModelInfer"


# --------------------------------------------------------------------------- encoders


def _json(rows: np.ndarray[Any, Any]) -> tuple[bytes, dict[str, str]]:
    tensor = {"name": "input-0", "shape": list(rows.shape), "datatype": "FP64",
              "data": rows.ravel().tolist()}  # fmt: skip
    return orjson.dumps({"inputs": [tensor]}), {"Content-Type": "application/json"}


def _binary(rows: np.ndarray[Any, Any]) -> tuple[bytes, dict[str, str]]:
    raw = rows.astype("<f8").tobytes()
    header = orjson.dumps(
        {
            "inputs": [
                {"name": "input-0", "shape": list(rows.shape), "datatype": "FP64",
                 "parameters": {"binary_data_size": len(raw)}}
            ],
            "parameters": {"binary_data_output": True},
        }
    )  # fmt: skip
    return header + raw, {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(len(header)),
    }


def _grpc(rows: np.ndarray[Any, Any]) -> bytes:
    from pynomaly_detector.api.grpc import inference_pb2 as pb

    request = pb.ModelInferRequest(model_name=MODEL)
    request.inputs.add(name="input-0", datatype="FP64", shape=list(rows.shape))
    request.raw_input_contents.append(rows.astype("<f8").tobytes())
    data: bytes = request.SerializeToString()
    return data


def bodies(transport: str, size: int) -> list[Any]:
    """Distinct request bodies of ``size`` rows for ``transport`` (deterministic)."""
    rows = query_rows(size * BODIES[size], seed=700 + size).reshape(BODIES[size], size, N_FEATURES)
    if transport == "grpc":
        return [_grpc(group) for group in rows]
    encode = _json if transport == "json" else _binary
    return [encode(group) for group in rows]


# --------------------------------------------------------------------------- load generator


async def _drive(
    transport: str, target: str, size: int, concurrency: int, warmup: float, duration: float
) -> dict[str, Any]:
    payloads = bodies(transport, size)
    latencies: list[float] = []
    errors = 0
    measuring = False
    stop = False
    counter = 0

    def next_payload() -> Any:
        nonlocal counter
        counter += 1
        return payloads[counter % len(payloads)]

    if transport == "grpc":
        import grpc

        channels = [grpc.aio.insecure_channel(target) for _ in range(max(1, concurrency // 8))]
        calls = [channel.unary_unary(GRPC_INFER) for channel in channels]

        async def one(index: int) -> bool:
            try:
                await calls[index % len(calls)](next_payload(), timeout=30)
            except grpc.RpcError:
                return False
            return True

    else:
        import aiohttp

        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=concurrency),
            timeout=aiohttp.ClientTimeout(total=30),
        )
        url = f"http://{target}/v2/models/{MODEL}/infer"

        async def one(index: int) -> bool:
            body, headers = next_payload()
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                return response.status == 200

    async def worker(index: int) -> None:
        nonlocal errors
        while not stop:
            started = time.perf_counter()
            ok = await one(index)
            if measuring:
                if ok:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1

    tasks = [asyncio.create_task(worker(index)) for index in range(concurrency)]
    await asyncio.sleep(warmup)
    measuring = True
    usage_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    await asyncio.sleep(duration)
    measuring = False
    elapsed = time.perf_counter() - started
    usage_after = resource.getrusage(resource.RUSAGE_SELF)
    stop = True
    await asyncio.gather(*tasks, return_exceptions=True)
    if transport == "grpc":
        for channel in channels:
            await channel.close()
    else:
        await session.close()
    cpu = (usage_after.ru_utime - usage_before.ru_utime) + (
        usage_after.ru_stime - usage_before.ru_stime
    )
    ordered = np.sort(np.array(latencies)) if latencies else np.array([float("nan")])
    return {
        "requests": len(latencies),
        "errors": errors,
        "seconds": elapsed,
        "rows_per_s": len(latencies) * size / elapsed,
        "requests_per_s": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(ordered, 50) * 1000),
        "p99_ms": float(np.percentile(ordered, 99) * 1000),
        "loadgen_cpu": cpu / elapsed,
    }


def loadgen(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="oip_bench.py loadgen")
    parser.add_argument("--transport", choices=TRANSPORTS, required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--warmup", type=float, required=True)
    parser.add_argument("--duration", type=float, required=True)
    options = parser.parse_args(argv)
    result = asyncio.run(
        _drive(
            options.transport,
            options.target,
            options.size,
            options.concurrency,
            options.warmup,
            options.duration,
        )
    )
    print(json.dumps(result))


# --------------------------------------------------------------------------- runner


def measure(
    server: str, transport: str, target: str, size: int, args: argparse.Namespace
) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    argv = [
        "taskset", "-c", LOADGEN_CPU, sys.executable, str(Path(__file__).resolve()), "loadgen",
        "--transport", transport, "--target", target, "--size", str(size),
        "--concurrency", str(args.concurrency), "--warmup", str(args.warmup),
        "--duration", str(args.duration),
    ]  # fmt: skip
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=args.duration + args.warmup + 120,
        env=clean_env(), cwd=BENCH,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"loadgen failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    result |= {
        "server": server,
        "transport": transport,
        "rows": size,
        "concurrency": args.concurrency,
        "load1_before": load_before,
        "load1_after": os.getloadavg()[0],
    }
    print(
        f"{server:>9} {transport:>6} {size:>5} rows: {result['rows_per_s']:>10,.0f} rows/s "
        f"p50 {result['p50_ms']:7.1f} ms p99 {result['p99_ms']:7.1f} ms "
        f"errors {result['errors']} loadgen cpu {result['loadgen_cpu']:.2f} "
        f"load1 {load_before:.1f}",
        flush=True,
    )
    return result


def check_same_scores(target_http: str, target_grpc: str) -> dict[str, float]:
    """Max difference between the transports' scores of the same rows (ours)."""
    import grpc
    import httpx

    from pynomaly_detector.api.grpc import inference_pb2 as pb

    rows = query_rows(256, seed=99)
    body, headers = _json(rows)
    as_json = np.array(
        httpx.post(f"http://{target_http}/v2/models/{MODEL}/infer", content=body,
                   headers=headers, timeout=30).json()["outputs"][0]["data"]
    )  # fmt: skip
    body, headers = _binary(rows)
    response = httpx.post(
        f"http://{target_http}/v2/models/{MODEL}/infer", content=body, headers=headers, timeout=30
    )
    length = int(response.headers["inference-header-content-length"])
    as_binary = np.frombuffer(response.content[length : length + 256 * 8], "<f8")
    with grpc.insecure_channel(target_grpc) as channel:
        call = channel.unary_unary(
            GRPC_INFER, response_deserializer=pb.ModelInferResponse.FromString
        )
        reply = call(_grpc(rows), timeout=30)
    as_grpc = np.frombuffer(reply.raw_output_contents[0], "<f8")
    return {
        "binary_vs_json": float(np.max(np.abs(as_binary - as_json))),
        "grpc_vs_json": float(np.max(np.abs(as_grpc - as_json))),
    }


def report(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        "# Open Inference Protocol transports: JSON v2, binary v2, gRPC (ours) and MLServer",
        "",
        f"Run {meta['started']} ({meta['duration']:g} s cells after {meta['warmup']:g} s warmup, "
        f"concurrency {meta['concurrency']}); command: `{meta['command']}`.",
        f"Machine: {meta['machine'].get('cpu_model', '?')}, "
        f"{meta['machine'].get('logical_cpus', '?')} "
        "CPUs shared with other jobs; the server pinned to CPU 0, the load generator to CPU 1. "
        "load1 is the machine's 1-minute load average when the cell started: above 2 means "
        "other processes competed for the same two CPUs, so absolute figures are low and "
        "noisy; the ratios between cells of the same run are the result.",
        f"Scores: binary vs JSON max diff {meta['check']['binary_vs_json']:g}, gRPC vs JSON "
        f"{meta['check']['grpc_vs_json']:g}.",
        "",
        "| server | transport | rows/request | rows/s | req/s | p50 ms | p99 ms | errors "
        "| loadgen CPU | load1 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['server']} | {r['transport']} | {r['rows']:,} | {r['rows_per_s']:,.0f} | "
            f"{r['requests_per_s']:,.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
            f"{r['errors']} | {r['loadgen_cpu']:.2f} | {r['load1_before']:.1f} |"
        )
    lines += ["", "## Large-batch ceiling (ours, rows/s relative to JSON v2)", ""]
    for size in SIZES:
        ours = {r["transport"]: r for r in results if r["server"] == "ours" and r["rows"] == size}
        if "json" not in ours:
            continue
        base = ours["json"]["rows_per_s"]
        parts = [
            f"{transport} {ours[transport]['rows_per_s'] / base:.2f}x"
            for transport in ("binary", "grpc")
            if transport in ours
        ]
        lines.append(f"- {size:,} rows: " + ", ".join(parts))
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if argv and argv[0] == "loadgen":
        loadgen(argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--servers", default="ours,mlserver")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    work = WORK / "oip"
    work.mkdir(parents=True, exist_ok=True)
    ensure_mlserver_venv()
    if not (WORK / "run" / "model.joblib").exists():
        subprocess.run(
            [str(WORK / "mlserver-venv" / "bin" / "python"), str(BENCH / "bench_data.py"),
             "fit", "--work", str(WORK / "run")],
            check=True, env=clean_env(), timeout=600,
        )  # fmt: skip
    for name in ("model.joblib",):
        (work / name).write_bytes((WORK / "run" / name).read_bytes())
    results: list[dict[str, Any]] = []
    check: dict[str, float] = {"binary_vs_json": float("nan"), "grpc_vs_json": float("nan")}
    wanted = args.servers.split(",")
    if "ours" in wanted:
        grpc_port = free_port()
        server: Server = start_ours(work, overrides={"PYNOMALY_GRPC_PORT": str(grpc_port)})
        try:
            grpc_target = f"127.0.0.1:{grpc_port}"
            http_target = f"127.0.0.1:{server.port}"
            check = check_same_scores(http_target, grpc_target)
            for size in SIZES:
                for transport in TRANSPORTS:
                    target = grpc_target if transport == "grpc" else http_target
                    results.append(measure("ours", transport, target, size, args))
        finally:
            server.stop()
    if "mlserver" in wanted:
        server = start_mlserver(work, batching=False)
        try:
            settings = json.loads((work / "mlserver-default" / "settings.json").read_text())
            for size in SIZES:
                results.append(
                    measure("mlserver", "grpc", f"127.0.0.1:{settings['grpc_port']}", size, args)
                )
                results.append(measure("mlserver", "json", f"127.0.0.1:{server.port}", size, args))
        finally:
            server.stop()
    meta = {
        "started": started.isoformat(timespec="seconds"),
        "duration": args.duration,
        "warmup": args.warmup,
        "concurrency": args.concurrency,
        "command": "python bench/oip_bench.py " + " ".join(argv),
        "machine": machine_info(),
        "check": check,
    }
    out = args.out or BENCH / "results" / f"oip-{started.date().isoformat()}"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    out.with_suffix(".md").write_text(report(results, meta))
    print(out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

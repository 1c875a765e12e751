"""Server CPU per request through uvicorn's HTTP protocol, in one process, without sockets.

The HTTP benchmark (``detector_bench.py``) measures a server with wrk over loopback; on a
shared 2-core machine its req/s moves by tens of percent between runs of the same server.
This drives the same protocol class a worker runs (ours: ``protocol.GuardedHttpToolsProtocol``
with the app from ``api.app``; the constant app: uvicorn's ``HttpToolsProtocol``) on uvloop,
with the same uvicorn ``Config`` wrapping (proxy headers), through in-memory transports:
``concurrency`` connections each send the next raw request (the bytes wrk sends) as soon as
the previous response is complete, in a closed loop. What is timed is this process's CPU
time per request (``time.process_time``): request parsing, the ASGI app, response framing;
not the kernel's socket work or wrk's. That part is the same for every server, so the
difference between two servers here is the difference of their own code.

    .venv/bin/python bench/wire_cpu.py --server ours --endpoint v1 --concurrency 64
    PYTHONPATH=/tmp/before/detector_service .venv/bin/python bench/wire_cpu.py --server ours
    .venv/bin/python bench/wire_cpu.py --server constant --endpoint v2

It prints one JSON line: CPU microseconds per request of each of ``--repeat`` timed runs,
their minimum, and the sha256 of every response body in order (``--hash``; the same rows in
the same order give the same hash when the responses are byte for byte the same).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from bench_data import CONTAMINATION, N_FEATURES, model_parameters, query_rows, training_rows

MODEL = "bench-iforest"
SIGNING_KEY = "bench-signing-key-not-a-secret-0123456789abcdef"


def _v1(row: list[float]) -> bytes:
    return orjson.dumps({"instances": [row]})


def _v2(row: list[float]) -> bytes:
    tensor = {"name": "input-0", "shape": [1, N_FEATURES], "datatype": "FP64", "data": row}
    return orjson.dumps({"inputs": [tensor]})


def raw_request(path: str, body: bytes) -> bytes:
    """The bytes wrk sends for a POST with a JSON body (``wrk.format``)."""
    return (
        b"POST %s HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (path.encode(), len(body), body)
    )


class Transport(asyncio.Transport):
    """An in-memory transport: keeps what is written, never closes by itself."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 40000)}.get(
            name, default
        )

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _handshake(path: Path) -> None:
    """Touch ``path``; with ``WIRE_WAIT`` set, block until ``path`` + ``.go`` exists (a
    profiler outside, e.g. ``callgrind_control -i on``, has acted)."""
    path.touch()
    if os.environ.get("WIRE_WAIT"):
        go = path.with_name(path.name + ".go")
        while not go.exists():
            time.sleep(0.02)


def _body_of(response: bytes) -> bytes:
    return response.split(b"\r\n\r\n", 1)[1]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    import uvicorn
    from uvicorn.server import ServerState

    if args.server == "ours":
        os.environ.update(
            PYNOMALY_MODEL_DIR=tempfile.mkdtemp(prefix="wire-models-"),
            PYNOMALY_ARTIFACT_SIGNING_KEY=SIGNING_KEY,
            PYNOMALY_REDIS_MODE="none",
            PYNOMALY_DATABASE_URL="",
            PYNOMALY_WORKERS="1",
            PYNOMALY_MAX_BODY_BYTES=str(64 * 2**20),
            PYNOMALY_RATE_LIMIT_REQUESTS_PER_SECOND="0",
        )
        # As ``pynomaly-detector serve`` runs a worker: Prometheus multiprocess mode.
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="wire-metrics-"))
        import pynomaly_detector
        from pynomaly_detector.api.app import from_environment
        from pynomaly_detector.protocol import GuardedHttpToolsProtocol as Protocol

        where = str(Path(pynomaly_detector.__file__).parent)
        from pynomaly_detector.settings import Settings

        settings = Settings()
        # What ``cli.serve`` passes to uvicorn (the protocol class is instantiated here).
        config = uvicorn.Config(
            from_environment,
            factory=True,
            access_log=False,
            lifespan="on",
            timeout_keep_alive=settings.timeout_keep_alive,
            limit_concurrency=settings.limit_concurrency,
            server_header=False,
        )
    else:
        sys.path.insert(0, str(Path(__file__).parent))
        from constant_app import app
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Protocol

        where = "bench/constant_app.py"
        config = uvicorn.Config(app, access_log=False, lifespan="off")
    config.load()
    state = ServerState()
    app_state: dict[str, Any] = {}
    lifespan = None
    if args.server == "ours":
        from uvicorn.lifespan.on import LifespanOn

        lifespan = LifespanOn(config)
        await lifespan.startup()
        app_state = lifespan.state
    loop = asyncio.get_running_loop()

    path = f"/v1/models/{MODEL}/detect" if args.endpoint == "v1" else f"/v2/models/{MODEL}/infer"
    rows = query_rows(args.rows, seed=101 if args.endpoint == "v1" else 102).tolist()
    encode = _v1 if args.endpoint == "v1" else _v2
    requests = [raw_request(path, encode(row)) for row in rows]

    # One request at a time through a connection of its own: fit (PUT), then wait until ready.
    async def once(raw: bytes) -> bytes:
        transport = Transport()
        done = loop.create_future()
        proto = Protocol(config=config, server_state=state, app_state=app_state, _loop=loop)
        proto.connection_made(transport)
        original = proto.on_response_complete

        def complete() -> None:
            original()
            if not done.done():
                done.set_result(None)

        proto.on_response_complete = complete  # type: ignore[method-assign]  # a bench hook
        proto.data_received(raw)
        await asyncio.wait_for(done, 600)
        proto.connection_lost(None)
        return b"".join(transport.written)

    if args.server == "ours":
        fit = orjson.dumps(
            {
                "algorithm": "IsolationForest",
                "parameters": model_parameters(),
                "contamination": CONTAMINATION,
                "instances": training_rows()[: args.fit_rows].tolist(),
            }
        )
        answer = await once(
            b"PUT /v1/models/%s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (MODEL.encode(), len(fit), fit)
        )
        assert answer.startswith((b"HTTP/1.1 200", b"HTTP/1.1 201")), answer[:300]

    # The closed loop: each connection sends its next request when its response completed.
    hashes = args.hash
    bodies: dict[int, bytes] = {}

    async def closed_loop(batch: list[bytes], first: int) -> None:
        """Send ``batch`` over ``concurrency`` connections; ``first`` numbers its requests."""
        finished = loop.create_future()
        sent = answered = 0
        connections: list[Any] = []

        def connection() -> None:
            transport = Transport()
            proto = Protocol(config=config, server_state=state, app_state=app_state, _loop=loop)
            proto.connection_made(transport)
            connections.append(proto)
            original = proto.on_response_complete
            current = [0]

            def send_next() -> None:
                nonlocal sent
                if sent >= len(batch):
                    return
                current[0] = first + sent
                raw = batch[sent]
                sent += 1
                proto.data_received(raw)

            def complete() -> None:
                nonlocal answered
                original()
                if hashes:
                    bodies[current[0]] = b"".join(transport.written)
                transport.written.clear()
                answered += 1
                if answered >= len(batch) and not finished.done():
                    finished.set_result(None)
                arrive(send_next)

            proto.on_response_complete = complete  # type: ignore[method-assign]  # a bench hook
            arrive(send_next)

        ready: deque[Callable[[], None]] = deque()
        per_turn = args.per_turn

        def arrive(send: Callable[[], None]) -> None:
            if per_turn:
                ready.append(send)
            else:
                loop.call_soon(send)

        def pump() -> None:
            # At most ``per_turn`` requests arrive per turn of the loop (a socket server reads
            # the connections whose data arrived since the last poll).
            for _ in range(min(per_turn, len(ready))):
                ready.popleft()()
            if not finished.done():
                loop.call_soon(pump)

        for _ in range(min(args.concurrency, len(batch))):
            connection()
        if per_turn:
            loop.call_soon(pump)
        await finished
        for proto in connections:
            proto.connection_lost(None)

    per_run: list[float] = []
    statuses: set[bytes] = set()
    position = 0
    for run_index in range(args.repeat + 1):  # run 0 warms up
        count = args.requests if run_index else args.warmup
        if run_index == 1 and args.ready_file:  # a profiler may attach now
            _handshake(Path(args.ready_file))
        batch = [requests[(position + i) % len(requests)] for i in range(count)]
        profiler = None
        if args.cprofile and run_index:
            import cProfile

            profiler = cProfile.Profile(time.process_time)
            profiler.enable()
        started = time.process_time()
        await closed_loop(batch, position)
        cpu = time.process_time() - started
        if run_index == args.repeat and args.done_file:
            _handshake(Path(args.done_file))
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.cprofile)
        position += count
        if run_index:
            per_run.append(1e6 * cpu / count)
        await asyncio.sleep(0.05)  # let closing connections settle
    if hashes is not None:
        digest = hashlib.sha256()
        for index in sorted(bodies):
            response = bodies[index]
            statuses.add(response.split(b"\r\n", 1)[0])
            digest.update(_body_of(response))
        hash_hex = digest.hexdigest()
    else:
        hash_hex = None
    if lifespan is not None:
        await lifespan.shutdown()
    return {
        "server": args.server,
        "code": where,
        "endpoint": args.endpoint,
        "concurrency": args.concurrency,
        "requests_per_run": args.requests,
        "cpu_us_per_request": [round(value, 1) for value in per_run],
        "min_us": round(min(per_run), 1),
        "statuses": sorted(status.decode() for status in statuses),
        "sha256": hash_hex,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", choices=["ours", "constant"], default="ours")
    parser.add_argument("--endpoint", choices=["v1", "v2"], default="v1")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--requests", type=int, default=5000, help="per timed run")
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rows", type=int, default=20_000, help="distinct single rows rotated")
    parser.add_argument(
        "--per-turn",
        type=int,
        default=2,
        help="requests arriving per turn of the event loop (0: each as soon as it is sent)",
    )
    parser.add_argument("--ready-file", help="touched when the timed runs start")
    parser.add_argument("--done-file", help="touched when the last timed run ends")
    parser.add_argument(
        "--fit-rows", type=int, default=20_000, help="training rows of the fit (all by default)"
    )
    parser.add_argument("--cprofile", help="write a cProfile (CPU time) of the last timed run")
    parser.add_argument("--hash", action="store_true", help="hash every response body")
    args = parser.parse_args()
    import uvloop

    result = uvloop.run(run(args))
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""Hostile and slow clients against the real server process (loopback only, bounded).

Huge scoring bodies are refused while they arrive, before they are parsed; clients that send
a byte a second are cut off by the read deadline and never take the slots of real requests
or probes; probes live on their own listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.detector.conftest import training_rows
from tests.detector.server_process import DetectorProcess, detector_process

pytestmark = [pytest.mark.http, pytest.mark.slow]

ROW = b"[1.5,2.5],"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DetectorProcess]:
    """One worker (the issue's measurement), a model of 2 features."""
    tmp_path = tmp_path_factory.mktemp("hostile")
    with detector_process(tmp_path, workers=1) as running:
        fitted = httpx.put(
            f"{running.base}/v1/models/m",
            json={"algorithm": "IForest", "instances": training_rows(200, d=2)},
            timeout=60,
        )
        assert fitted.status_code == 201, fitted.text
        yield running


def _headers(path: str, length: int) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nhost: detector\r\ncontent-type: application/json\r\n"
        f"content-length: {length}\r\n\r\n"
    ).encode()


def _response(sock: socket.socket, *, within: float) -> bytes:
    """What the server sent before ``within`` seconds passed or it closed the connection."""
    sock.settimeout(within)
    received = b""
    with contextlib.suppress(TimeoutError, ConnectionResetError):
        while b"\r\n\r\n" not in received or not received.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    return received


def test_a_body_of_too_many_rows_is_refused_while_it_arrives(server: DetectorProcess) -> None:
    """10 MiB declared, 1 MiB sent, the rest withheld: the 413 comes without the rest (the
    old service waited for the whole body, parsed it, then counted the rows)."""
    body_start = b'{"instances":[' + ROW * (1024 * 1024 // len(ROW))
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(_headers("/v1/models/m/detect", 10 * 1024 * 1024) + body_start)
        answer = _response(sock, within=10)  # below the 15 s read deadline
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b"too_many_rows" in answer
    assert b"at most 10000 rows per request" in answer


def test_a_60_mb_body_of_short_rows_costs_no_memory_and_never_stalls_probes(
    server: DetectorProcess,
) -> None:
    """60 MB of ``[1.5,2.5],`` (under the 64 MiB body limit): the old service parsed it whole
    on the event loop (+1.8 GB, every request frozen for seconds)."""
    process = psutil.Process(server.process.pid)
    before = process.memory_info().rss
    rows = 60_000_000 // len(ROW)
    body = b'{"instances":[' + ROW * (rows - 1) + b"[1.5,2.5]]}"
    probe_times: list[float] = []
    stop = False

    def probe() -> None:
        with httpx.Client(base_url=server.base, timeout=10) as client:
            while not stop:
                started = time.perf_counter()
                assert client.get("/livez").status_code == 200
                probe_times.append(time.perf_counter() - started)
                time.sleep(0.02)

    async def run() -> httpx.Response:
        nonlocal stop
        prober = asyncio.create_task(asyncio.to_thread(probe))
        try:
            async with httpx.AsyncClient(base_url=server.base, timeout=30) as client:
                return await client.post(
                    "/v1/models/m/detect",
                    content=body,
                    headers={"content-type": "application/json"},
                )
        finally:
            stop = True
            await prober

    response = asyncio.run(run())
    assert response.status_code == 413, response.text
    assert response.json()["error"] == "too_many_rows"
    grown = process.memory_info().rss - before
    assert grown < 150_000_000, f"RSS grew by {grown / 1e6:.0f} MB"
    # The API port's own /livez (same event loop) kept answering while the body arrived.
    assert probe_times, "no probe completed"
    assert max(probe_times) < 1.0, f"slowest /livez {max(probe_times):.2f}s"


def test_a_flat_tensor_of_too_many_values_is_refused_before_parsing(
    server: DetectorProcess,
) -> None:
    """v2 ``data`` may be flat: its values are bounded by rows x the model's features."""
    values = b"1.5," * (10_000 * 2 + 1000)
    body = (
        b'{"inputs":[{"name":"x","datatype":"FP64","shape":[10000,2],"data":[' + values + b"1.5]}]}"
    )
    response = httpx.post(
        f"{server.base}/v2/models/m/infer",
        content=body,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 413, response.text
    assert "values (rows x features)" in response.json()["detail"]


def test_a_body_over_the_size_limit_is_refused_before_it_is_read(
    tmp_path: Path,
) -> None:
    with (
        detector_process(tmp_path, MAX_BODY_BYTES="1048576") as small,
        socket.create_connection(("127.0.0.1", small.port)) as sock,
    ):
        sock.sendall(_headers("/v1/models/m/detect", 200 * 1024 * 1024))  # no body at all
        answer = _response(sock, within=5)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b"body_too_large" in answer


def _half_sent_headers_get_408(port: int, deadline: float) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nhost: det")
        answer = _response(sock, within=deadline + 10)
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
    assert deadline - 0.5 < waited < deadline + 5, waited


def _slow_clients(port: int, count: int) -> list[socket.socket]:
    """``count`` connections that each sent the first bytes of a request and wait."""
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"GET /v1/models HTTP/1.1\r\n")
        sockets.append(sock)
    return sockets


async def _latencies(base: str, path: str, *, requests: int, concurrency: int) -> list[float]:
    times: list[float] = []
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        semaphore = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with semaphore:
                started = time.perf_counter()
                response = await client.post(path, json={"instances": [[0.5, 1.0]]})
                times.append(time.perf_counter() - started)
                assert response.status_code == 200, response.text

        await asyncio.gather(*[one() for _ in range(requests)])
    return times


def _p99(times: list[float]) -> float:
    return statistics.quantiles(times, n=100)[98]


def test_slow_clients_starve_neither_requests_nor_probes(tmp_path: Path) -> None:
    """1,000 clients sending headers a byte at a time (a slot each in uvicorn's count, with
    ``limit_concurrency`` 1000: every other request was a 503, probes included). 300 slow
    clients: normal p99 at most 2x its solo value."""
    with detector_process(
        tmp_path, LIMIT_CONCURRENCY="1000", REQUEST_READ_TIMEOUT_SECONDS="4"
    ) as running:
        _half_sent_headers_get_408(running.port, 4)
        fitted = httpx.put(
            f"{running.base}/v1/models/m",
            json={"algorithm": "IForest", "instances": training_rows(200, d=2)},
            timeout=60,
        )
        assert fitted.status_code == 201
        path = "/v1/models/m/detect"
        asyncio.run(_latencies(running.base, path, requests=200, concurrency=8))  # warm
        solo = _p99(asyncio.run(_latencies(running.base, path, requests=600, concurrency=8)))

        slow = _slow_clients(running.port, 300)
        try:
            loaded = _p99(asyncio.run(_latencies(running.base, path, requests=600, concurrency=8)))
        finally:
            for sock in slow:
                sock.close()
        assert loaded <= max(2 * solo, solo + 0.005), (solo, loaded)

        slow = _slow_clients(running.port, 1000)
        try:
            for sock in slow[:50]:
                sock.send(b"h")  # a byte more: still not a whole request
            assert httpx.get(f"{running.probes}/livez", timeout=2).status_code == 200
            assert httpx.get(f"{running.probes}/readyz", timeout=2).status_code == 200
            assert httpx.get(f"{running.base}/livez", timeout=2).status_code == 200
            times = asyncio.run(_latencies(running.base, path, requests=300, concurrency=8))
            assert len(times) == 300  # every one a 200 (asserted inside)
        finally:
            for sock in slow:
                sock.close()


def test_an_idle_keep_alive_connection_is_closed_after_timeout_keep_alive(
    tmp_path: Path,
) -> None:
    """uvicorn's keep-alive timeout, kept by the worker's one idle clock: open until then
    (a second request on it is served), closed after it."""
    with detector_process(tmp_path, workers=1, TIMEOUT_KEEP_ALIVE="2") as running:
        request = b"GET /v2/health/live HTTP/1.1\r\nhost: detector\r\n\r\n"
        with socket.create_connection(("127.0.0.1", running.port)) as sock:
            sock.sendall(request)
            assert _response(sock, within=5).startswith(b"HTTP/1.1 200")
            time.sleep(1.0)  # idle for half the timeout: still open, the clock restarts
            sock.sendall(request)
            assert _response(sock, within=5).startswith(b"HTTP/1.1 200")
            started = time.monotonic()
            sock.settimeout(10)
            assert sock.recv(1024) == b""  # closed by the server
            waited = time.monotonic() - started
        assert 1.5 < waited < 4.0, waited

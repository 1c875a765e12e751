"""The memory of the workers' fit fork servers goes back once they are idle: several workers
of a real ``pynomaly-detector serve`` fit models (each starts a fork server holding every
algorithm's imports), and ``PYNOMALY_FIT_SERVER_IDLE_SECONDS`` later the process tree is back
near its size before the fits. (They were kept for the worker's life, and held a pod's
memory-based autoscaler above its scale-down line.)"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.detector.conftest import training_rows
from tests.detector.server_process import DetectorProcess, detector_process

pytestmark = [pytest.mark.http, pytest.mark.slow]

WORKERS = 3
IDLE = 10.0
MiB = 1024 * 1024


def tree(pid: int) -> list[psutil.Process]:
    """The supervisor and every process under it."""
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def rss(pid: int) -> int:
    """Resident memory of the whole tree (bytes; a page shared by two processes counts twice,
    as it does for no cgroup, but the fork servers share nothing with the workers)."""
    total = 0
    for process in tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += process.memory_info().rss
    return total


def fork_servers(pid: int) -> list[psutil.Process]:
    """The workers' fit fork servers."""
    found = []
    for process in tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            if "forkserver" in " ".join(process.cmdline()):
                found.append(process)
    return found


async def _until_no_fork_server(pid: int) -> None:
    deadline = time.monotonic() + IDLE + 60
    while fork_servers(pid):
        assert time.monotonic() < deadline, "idle fork servers were not stopped"
        await asyncio.sleep(0.2)


async def _scenario(running: DetectorProcess) -> tuple[int, int, int, int]:
    pid = running.process.pid
    # A connection per request, so that the kernel hands them to different workers.
    fresh = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=running.base, timeout=120, limits=fresh) as client:
        rows = training_rows(200, 4)
        # The level before: every worker has scored a model (its own imports of the
        # algorithm's modules and the model, which it keeps whatever happens to fits), and
        # the fork server of that first fit has stopped.
        first = await client.put("/v1/models/warm", json={"instances": rows})
        assert first.status_code == 201, first.text
        for _ in range(8 * WORKERS):
            scored = await client.post("/v1/models/warm/detect", json={"instances": [[0.0] * 4]})
            assert scored.status_code == 200, scored.text
        await _until_no_fork_server(pid)
        before = rss(pid)

        servers, peak = 0, before
        for round_ in range(8):
            answers = await asyncio.gather(
                *(
                    client.put(f"/v1/models/m{round_}-{i}", json={"instances": rows})
                    for i in range(2 * WORKERS)
                )
            )
            assert {answer.status_code for answer in answers} == {201}, answers[0].text
            now = len(fork_servers(pid)), rss(pid)
            servers, peak = max((servers, peak), now)
            if servers == WORKERS:
                break
        assert servers >= 2, "the fits all went to one worker: nothing shows the sum"
        assert peak - before > servers * 100 * MiB, (before, peak, servers)

        await _until_no_fork_server(pid)
        after = rss(pid)
        # The fitted models still serve, from the workers' own memory.
        scored = await client.post("/v1/models/m0-0/detect", json={"instances": [[0.0] * 4]})
        assert scored.status_code == 200, scored.text
        # The next fit starts a fork server again.
        refit = await client.put("/v1/models/m0-0", json={"instances": rows})
        assert refit.status_code == 201, refit.text
    return before, peak, after, servers


def test_idle_fit_fork_servers_give_their_memory_back(tmp_path: Path) -> None:
    with detector_process(
        tmp_path,
        workers=WORKERS,
        FIT_SERVER_IDLE_SECONDS=str(IDLE),
        # A worker's first fit waits for its fork server's imports (tens of seconds on a
        # loaded machine); this test is about the memory afterwards.
        REQUEST_TIMEOUT_SECONDS="120",
        FIT_TIMEOUT_SECONDS="100",
    ) as running:
        before, peak, after, servers = asyncio.run(_scenario(running))
    print(
        f"tree RSS: {before / MiB:.0f} MiB before, {peak / MiB:.0f} MiB with {servers} fork "
        f"servers, {after / MiB:.0f} MiB {IDLE:g} s after the last fit"
    )
    # Near the level before the fits: the models and the fits' buffers stay, the fork
    # servers (100+ MiB each) are gone.
    assert after - before < 0.25 * (peak - before), (before, peak, after)

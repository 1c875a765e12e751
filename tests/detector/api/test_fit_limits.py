"""A fit past PYNOMALY_FIT_TIMEOUT_SECONDS in the real service: the PUT gets 422 ``fit_timeout``
at the limit, the fit's process is gone, the model still serves its previous version, and
scoring went on while the fit ran."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest

from tests.detector.conftest import training_rows
from tests.detector.server_process import DetectorProcess, detector_process

pytestmark = [pytest.mark.http, pytest.mark.slow]

LIMIT = 2.0


def fit_processes(server_pid: int) -> list[psutil.Process]:
    """Processes the workers' fork servers forked (running fits)."""
    tree = psutil.Process(server_pid).children(recursive=True)
    servers = [p for p in tree if "forkserver" in " ".join(p.cmdline())]
    return [fit for server in servers for fit in server.children()]


async def _scenario(running: DetectorProcess) -> None:
    slow = np.random.default_rng(1).normal(size=(20_000, 10)).round(4).tolist()
    async with httpx.AsyncClient(base_url=running.base, timeout=60) as client:
        fitted = await client.put("/v1/models/m", json={"instances": training_rows(200, 10)})
        assert fitted.status_code == 201, fitted.text

        scored: list[tuple[int, float]] = []
        seen_fit_process = False
        stop = asyncio.Event()

        async def score() -> None:
            nonlocal seen_fit_process
            while not stop.is_set():
                sent = time.monotonic()
                response = await client.post(
                    "/v1/models/m/detect", json={"instances": [[0.1] * 10]}
                )
                scored.append((response.status_code, time.monotonic() - sent))
                seen_fit_process = seen_fit_process or bool(fit_processes(running.process.pid))
                await asyncio.sleep(0.05)

        scoring = asyncio.create_task(score())
        started = time.monotonic()
        refused = await client.put("/v1/models/m", json={"algorithm": "OCSVM", "instances": slow})
        elapsed = time.monotonic() - started
        stop.set()
        await scoring

        assert refused.status_code == 422, refused.text
        body = refused.json()
        assert body["error"] == "fit_timeout"
        assert "limit of 2 s" in body["detail"]
        # At the limit, plus reading and parsing 20,000 rows of JSON.
        assert LIMIT <= elapsed < LIMIT + 4.0, elapsed
        assert seen_fit_process, "the fit did not run in a process of its own"
        assert fit_processes(running.process.pid) == []

        assert len(scored) >= 10
        assert {status for status, _ in scored} == {200}
        assert max(latency for _, latency in scored) < 1.5, scored

        model = (await client.get("/v1/models/m")).json()
        assert (model["version"], model["algorithm"]) == (1, "IForest")
        again = await client.put("/v1/models/m", json={"instances": training_rows(200, 10)})
        assert again.status_code == 201
        assert again.json()["version"] == 2


def test_a_fit_past_its_limit_is_stopped_and_scoring_goes_on(tmp_path: Path) -> None:
    with detector_process(tmp_path, FIT_TIMEOUT_SECONDS=str(LIMIT)) as running:
        asyncio.run(_scenario(running))

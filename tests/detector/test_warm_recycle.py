"""Warming by use in the production configuration (4 workers recycled by ``max_requests``): a
recycled worker loads the models its pod used before it accepts requests, so no request after
a recycle waits for a cold load (``pynomaly_model_loads_total{source="store"}`` counts loads
on a request's path, ``source="warmup"`` those done ahead)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.detector.conftest import metric_value, training_rows
from tests.detector.server_process import DetectorProcess, detector_process

pytestmark = [pytest.mark.http, pytest.mark.slow]

WORKERS = 4


def workers(running: DetectorProcess) -> set[int]:
    """PIDs of the supervisor's worker processes (not its resource tracker)."""
    found = set()
    for child in psutil.Process(running.process.pid).children():
        try:
            command = " ".join(child.cmdline())
        except psutil.NoSuchProcess:
            continue
        if "resource_tracker" not in command:
            found.add(child.pid)
    return found


async def _scenario(running: DetectorProcess) -> None:
    seen = workers(running)
    assert len(seen) == WORKERS
    statuses: list[int] = []
    resets: list[float] = []
    # A connection per request: a keep-alive connection that a recycling worker closes just
    # as a request is sent fails in any HTTP server (one reason recycling is off by default).
    fresh = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=running.base, timeout=60, limits=fresh) as client:
        fitted = await client.put(
            "/v1/models/m", json={"algorithm": "ECOD", "instances": training_rows()}
        )
        assert fitted.status_code == 201, fitted.text
        deadline = time.monotonic() + 240

        async def load() -> None:
            while len(seen) < 2 * WORKERS and time.monotonic() < deadline:
                try:
                    response = await client.post(
                        "/v1/models/m/detect", json={"instances": [[0.1, 0.2, 0.3]]}
                    )
                except httpx.TransportError:
                    # uvicorn closes connections a recycling worker accepted but had not read
                    # yet (documented; one reason recycling is off by default): counted.
                    resets.append(time.monotonic())
                    continue
                statuses.append(response.status_code)
                seen.update(workers(running))

        await asyncio.gather(*(load() for _ in range(4)))
        metrics = (await client.get(f"{running.probes}/metrics")).text
    assert len(seen) >= 2 * WORKERS, f"only {len(seen) - WORKERS} recycles in time"
    assert set(statuses) == {200}
    assert len(resets) <= len(seen) - WORKERS, (len(resets), len(seen))
    print(f"{len(statuses)} answered, {len(resets)} reset, {len(seen) - WORKERS} recycles")
    on_request_path = metric_value(metrics, "pynomaly_model_loads_total", {"source": "store"})
    ahead = metric_value(metrics, "pynomaly_model_loads_total", {"source": "warmup"})
    # Only the first workers, started before m existed, may load it on a request's path.
    assert on_request_path <= WORKERS - 1, (on_request_path, running.log_tail())
    # Some new PIDs may be workers uvicorn replaced before they served (its health check on a
    # loaded machine), so only "at least one load ahead" is certain.
    assert ahead >= 1, (ahead, len(seen))


def test_a_recycled_worker_serves_its_first_request_from_a_warm_model(tmp_path: Path) -> None:
    with detector_process(
        tmp_path,
        workers=WORKERS,
        MAX_REQUESTS="40",
        MAX_REQUESTS_JITTER="10",
        # The first fit of a worker starts its fork server (PyOD's imports: 30 s and more
        # measured on a machine at load 15); the fit itself is not what this test is about.
        REQUEST_TIMEOUT_SECONDS="120",
    ) as running:
        asyncio.run(_scenario(running))

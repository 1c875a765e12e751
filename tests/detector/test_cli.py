"""The real ``pynomaly-detector serve`` process: two uvicorn workers, multiprocess metrics,
and SIGTERM (readiness fails first while an in-flight request completes)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from pynomaly_detector import cli
from tests.detector.conftest import SIGNING_KEY, metric_value, training_rows, wait_until
from tests.support.ports import free_port

pytestmark = pytest.mark.slow

SCRIPT = Path(sys.executable).with_name("pynomaly-detector")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, str, Path]]:
    port, metrics_port = free_port(), free_port()
    multiproc = tmp_path / "prom"
    env = {
        **os.environ,
        "PYNOMALY_PORT": str(port),
        "PYNOMALY_METRICS_PORT": str(metrics_port),
        "PYNOMALY_WORKERS": "2",
        "PYNOMALY_MODEL_DIR": str(tmp_path / "models"),
        "PYNOMALY_ARTIFACT_SIGNING_KEY": SIGNING_KEY,
        "PYNOMALY_DRAIN_SECONDS": "1.5",
        "PYNOMALY_LOG_LEVEL": "WARNING",
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        "PYNOMALY_KEEP_METRICS_DIR": "1",
    }
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(
        [str(SCRIPT), "serve"], env=env, stdout=log, stderr=log, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    else:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail("server did not become ready")
    try:
        yield process, base, f"http://127.0.0.1:{metrics_port}", multiproc
    finally:
        # Kill the whole session: uvicorn's workers must not outlive a failed test.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        log.close()


async def test_two_workers_metrics_and_graceful_sigterm(
    server: tuple[subprocess.Popen[bytes], str, str, Path],
) -> None:
    process, base, metrics_base, multiproc = server
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        fitted = await client.put(
            "/v1/models/m", json={"algorithm": "ECOD", "instances": training_rows()}
        )
        assert fitted.status_code == 201
        # Spread requests over both workers (each connection lands on either).
        for _ in range(3):
            responses = await asyncio.gather(
                *[
                    client.post("/v1/models/m/detect", json={"instances": [[0, 1, 2]]})
                    for _ in range(20)
                ]
            )
            assert {response.status_code for response in responses} == {200}
        pids = {path.stem.rsplit("_", 1)[1] for path in multiproc.glob("counter_*.db")}
        pids.discard(str(process.pid))  # the supervisor (metrics port) has files too
        assert len(pids) == 2, pids  # both workers served requests and wrote samples

        labels = {"endpoint": "/v1/models/{name}/detect", "status": "200"}

        async def folded() -> bool:  # workers fold their counts within metrics.FLUSH_SECONDS
            return sum(_detect_count(path) for path in multiproc.glob("counter_*.db")) == 60

        await wait_until(folded, within=10.0)
        per_worker = [_detect_count(path) for path in multiproc.glob("counter_*.db")]
        assert sum(per_worker) == 60
        assert sum(1 for count in per_worker if count > 0) == 2, per_worker  # both served
        for source in (f"{base}/metrics", f"{metrics_base}/metrics"):
            text = (await client.get(source)).text
            assert (
                metric_value(text, "pynomaly_requests_total", labels) == 60
            )  # summed over workers
            assert metric_value(text, "pynomaly_memory_usage_bytes") > 50_000_000

        slow = asyncio.ensure_future(
            client.put(
                "/v1/models/slow",
                json={
                    "algorithm": "IForest",
                    "parameters": {"n_estimators": 600},
                    "instances": training_rows(3000),
                },
            )
        )
        await asyncio.sleep(0.3)  # the fit is in flight
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 1.2
        saw_unready = False
        while time.monotonic() < deadline and not saw_unready:
            try:
                async with httpx.AsyncClient(timeout=1) as fresh:  # new connection, any worker
                    saw_unready = (await fresh.get(f"{base}/readyz")).status_code == 503
            except httpx.HTTPError:
                saw_unready = True  # stopped listening also counts as not ready
            await asyncio.sleep(0.05)
        assert saw_unready
        completed = await slow
        assert completed.status_code == 201, completed.text
    assert process.wait(timeout=60) == 0


def _detect_count(path: Path) -> float:
    return sum(
        sample.value
        for metric in MultiProcessCollector.merge([str(path)], accumulate=True)
        for sample in metric.samples
        if sample.name == "pynomaly_requests_total"
        and sample.labels.get("endpoint") == "/v1/models/{name}/detect"
    )


def test_cli_usage() -> None:
    assert cli.main(["--help"]) == 0
    assert cli.main(["bogus"]) == 2


def test_unreadable_token_file_stops_serve_at_once_with_its_reason(tmp_path: Path) -> None:
    """A missing token file (a Secret not mounted) must end ``serve`` with a message, not leave
    uvicorn's supervisor restarting workers that die building the app (a silent busy pod)."""
    env = {
        **os.environ,
        "PYNOMALY_PORT": str(free_port()),
        "PYNOMALY_METRICS_PORT": str(free_port()),
        "PYNOMALY_WORKERS": "2",
        "PYNOMALY_MODEL_DIR": str(tmp_path / "models"),
        "PYNOMALY_ARTIFACT_SIGNING_KEY": SIGNING_KEY,
        "PYNOMALY_API_TOKEN_FILE": str(tmp_path / "absent" / "token"),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
    }
    done = subprocess.run(
        [str(SCRIPT), "serve"], env=env, capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 2, done.stderr.decode()[-2000:]
    assert "PYNOMALY_API_TOKEN_FILE" in done.stderr.decode()
    assert str(tmp_path / "absent" / "token") in done.stderr.decode()
    assert not (tmp_path / "prom").exists()  # nothing left behind

"""A real detector service to scrape, and the promtool binary.

``live_scrape`` runs ``pynomaly-detector serve`` (two workers, multiprocess metrics, the
separate metrics port) against real redis-server, PostgreSQL and PgBouncer, with a declared
model fitted from the sample training data and the anomaly log on. It drives ordinary
traffic, scrapes ``/metrics``, then provokes real faults (Redis stopped: the L2 circuit
opens; PgBouncer stopped: fits answer 503 and anomaly-log writes fail) and scrapes again.
The rule and dashboard tests take every series name and label set from these scrapes.
"""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.ports import free_port
from tests.support.postgres_servers import PostgresStack
from tests.support.redis_servers import RedisServer

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "manifests" / "samples" / "data"
SCRIPT = Path(sys.executable).with_name("pynomaly-detector")
PROMTOOL_BUILD = ROOT / "e2e" / "promtool" / "build.sh"
PROMTOOL = Path(os.environ.get("PROMTOOL", ROOT / ".cluster" / "bin" / "promtool"))
MODEL = "payments"
CONTAMINATION = "0.01"


@dataclass(frozen=True)
class Sample:
    """One sample of a scrape: full series name (``_total``, ``_bucket``...), labels, value."""

    name: str
    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class LiveScrape:
    """The two ``/metrics`` texts of the live run: ordinary traffic, then after faults."""

    healthy: str
    faulty: str

    def samples(self) -> list[Sample]:
        """Every distinct series of both scrapes (values from the later scrape)."""
        found: dict[tuple[str, tuple[tuple[str, str], ...]], Sample] = {}
        for text in (self.healthy, self.faulty):
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    key = (sample.name, tuple(sorted(sample.labels.items())))
                    found[key] = Sample(sample.name, dict(sample.labels), float(sample.value))
        return list(found.values())

    def names(self) -> set[str]:
        """Every series name in the scrapes."""
        return {sample.name for sample in self.samples()}


FEATURES = ("amount", "hour", "items")


def _rows(path: Path) -> list[list[float]]:
    """The feature columns of a sample CSV (score.csv also has an ``expected`` column)."""
    with path.open() as handle:
        return [[float(row[name]) for name in FEATURES] for row in csv.DictReader(handle)]


def _wait(predicate: object, what: str, *, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(0.2)
    pytest.fail(f"gave up after {timeout:.0f}s waiting for {what}")


def _sample_value(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


@pytest.fixture(scope="session")
def live_scrape(
    tmp_path_factory: pytest.TempPathFactory, postgres_stack: PostgresStack
) -> Iterator[LiveScrape]:
    """Scrapes of a real service under ordinary traffic and under real store faults."""
    tmp = tmp_path_factory.mktemp("live-service")
    (tmp / "redis").mkdir()
    redis = RedisServer(workdir=tmp / "redis").start()
    database = postgres_stack.create_database("ops")
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "PYNOMALY_PORT": str(port),
        "PYNOMALY_METRICS_PORT": str(metrics_port),
        "PYNOMALY_WORKERS": "2",
        "PYNOMALY_ARTIFACT_SIGNING_KEY": "ops-test-signing-key-0123456789abcdef",
        "PYNOMALY_LOG_LEVEL": "WARNING",
        "PYNOMALY_ACCESS_LOG": "false",
        "PYNOMALY_REDIS_MODE": "standalone",
        "PYNOMALY_REDIS_URL": redis.url,
        "PYNOMALY_DATABASE_URL": postgres_stack.dsn(database),
        "PYNOMALY_DATABASE_PASSWORD": postgres_stack.password,
        "PYNOMALY_DATABASE_CONNECT_TIMEOUT_SECONDS": "1",
        "PYNOMALY_MODEL_NAME": MODEL,
        "PYNOMALY_MODEL_ALGORITHM": "IForest",
        "PYNOMALY_MODEL_CONTAMINATION": CONTAMINATION,
        "PYNOMALY_MODEL_TRAINING_PATH": str(DATA / "training.csv"),
        "PYNOMALY_ANOMALY_LOG_ENABLED": "true",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp / "prom"),
    }
    log = (tmp / "server.log").open("wb")
    process = subprocess.Popen(
        [str(SCRIPT), "serve"], env=env, stdout=log, stderr=log, start_new_session=True
    )
    base, metrics_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics"
    pgbouncer_stopped = False
    try:
        with httpx.Client(base_url=base, timeout=30) as client:

            def ready() -> bool:
                assert process.poll() is None, (tmp / "server.log").read_text()[-3000:]
                with contextlib.suppress(httpx.HTTPError):
                    return client.get("/readyz").status_code == 200
                return False

            _wait(ready, "the service to load its declared model", timeout=120)
            rows = _rows(DATA / "score.csv")
            detect = f"/v1/models/{MODEL}/detect"
            for _ in range(3):  # the same rows again: L1/L2 hits
                assert client.post(detect, json={"instances": rows}).status_code == 200
            infer = client.post(
                f"/v2/models/{MODEL}/infer",
                json={
                    "inputs": [
                        {
                            "name": "input-0",
                            "shape": [len(rows), len(rows[0])],
                            "datatype": "FP64",
                            "data": [value for row in rows for value in row],
                        }
                    ]
                },
            )
            assert infer.status_code == 200, infer.text
            assert client.get("/v1/models").status_code == 200
            assert client.get("/v1/models/no-such-model").status_code == 404
            assert client.post(detect, json={"instances": [[1.0]]}).status_code == 422
            healthy = httpx.get(metrics_url, timeout=10).text

            # Redis down: L2 is bypassed and its circuit opens.
            redis.stop()
            fresh = [[row[0] + 0.5, row[1], row[2]] for row in rows]
            assert client.post(detect, json={"instances": fresh}).status_code == 200
            # PgBouncer down: a fit answers 503 and anomaly-log writes fail.
            postgres_stack.pgbouncer.stop()
            pgbouncer_stopped = True
            refit = client.put(
                f"/v1/models/{MODEL}-other",
                json={"algorithm": "ECOD", "instances": _rows(DATA / "training.csv")[:50]},
            )
            assert refit.status_code == 503, refit.text
            worse = [[row[0] * 3 + 1000, row[1], row[2] + 7] for row in rows]
            assert client.post(detect, json={"instances": worse}).status_code == 200

            def faults_seen() -> bool:
                text = httpx.get(metrics_url, timeout=10).text
                return (
                    _sample_value(text, "pynomaly_anomaly_log_records_total", outcome="failed") > 0
                    and _sample_value(text, "pynomaly_l2_circuit_open") > 0
                )

            _wait(faults_seen, "the anomaly log failure and the open L2 circuit in /metrics")
            faulty = httpx.get(metrics_url, timeout=10).text
        yield LiveScrape(healthy, faulty)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        log.close()
        if pgbouncer_stopped:
            postgres_stack.pgbouncer.start()
        redis.cleanup()


@pytest.fixture(scope="session")
def promtool() -> Path:
    """promtool built from the pinned Prometheus module (``make promtool``)."""
    done = subprocess.run(
        ["bash", str(PROMTOOL_BUILD)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0 or not PROMTOOL.exists():
        pytest.fail(
            f"cannot build promtool ({PROMTOOL_BUILD}, exit {done.returncode}); needs Go and "
            f"the Go module proxy:\n{done.stderr[-3000:]}",
            pytrace=False,
        )
    return PROMTOOL

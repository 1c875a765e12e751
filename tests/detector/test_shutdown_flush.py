"""SIGTERM while the database is away: the anomaly log keeps what it accepted and writes it
when the store comes back, for as long as the pod's grace period allows (drain + request
deadline + 10 s), not a fixed few seconds; the process still exits in time."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.detector.conftest import training_rows
from tests.detector.server_process import detector_process
from tests.support.postgres_servers import PostgresStack

pytestmark = [pytest.mark.http, pytest.mark.slow, pytest.mark.postgres]

DRAIN = 1
REQUEST_TIMEOUT = 30  # the first fit starts the fork server (imports: seconds under load)
GRACE = DRAIN + REQUEST_TIMEOUT + 10
"""The pod's terminationGracePeriodSeconds as the operator renders it."""
STORE_BACK_AFTER = 9.0
"""Seconds after SIGTERM the store returns: past the old fixed 5 s flush, inside the grace."""


def test_anomalies_accepted_before_sigterm_survive_a_store_outage(
    tmp_path: Path, postgres_stack: PostgresStack
) -> None:
    database = postgres_stack.create_database()
    with (
        detector_process(
            tmp_path,
            DATABASE_URL=postgres_stack.dsn(database),
            DATABASE_PASSWORD=postgres_stack.password,
            DATABASE_CONNECT_TIMEOUT_SECONDS="1",
            ANOMALY_LOG_ENABLED="true",
            DRAIN_SECONDS=str(DRAIN),
            REQUEST_TIMEOUT_SECONDS=str(REQUEST_TIMEOUT),
        ) as running,
        httpx.Client(base_url=running.base, timeout=60) as client,
    ):
        fitted = client.put(
            "/v1/models/m", json={"algorithm": "ECOD", "instances": training_rows()}
        )
        assert fitted.status_code == 201, fitted.text
        postgres_stack.pgbouncer.stop()
        try:
            flagged = 0
            for offset in range(20):
                rows = [[40.0 + offset, 40.0 + index, 45.0] for index in range(5)]
                scored = client.post("/v1/models/m/detect", json={"instances": rows})
                assert scored.status_code == 200, scored.text
                flagged += sum(scored.json()["is_anomaly"])
            assert flagged == 100
            terminated = time.monotonic()
            running.process.send_signal(signal.SIGTERM)
            time.sleep(max(0.0, terminated + STORE_BACK_AFTER - time.monotonic()))
            assert running.process.poll() is None, "exited before the store came back"
        finally:
            postgres_stack.pgbouncer.start()
        code = running.process.wait(timeout=GRACE + 5)
        stopped = time.monotonic() - terminated
    assert code == 0, running.log_tail()
    assert stopped < GRACE, stopped
    logged = postgres_stack.postgres.psql(
        "SELECT count(*) FROM pynomaly_anomalies WHERE model = 'm'", database=database
    )
    assert int(logged) == flagged, running.log_tail()

"""POST /v1/models/{name}/feedback: labels by anomaly-log id or with rows, the precision metric,
opt-in calibration feedback, the token, and bad bodies -- on the embedded store and on real
PostgreSQL behind PgBouncer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.detector.conftest import metric_value, service
from tests.support.postgres_servers import PostgresStack

TOKEN = "feedback-token-0123456789abcdef"
AUTH = {"authorization": f"Bearer {TOKEN}"}
LABELS_TOTAL = "pynomaly_feedback_labels_total"


def _token_file(tmp_path: Path) -> str:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    return str(path)


async def _fit_and_alert(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    rows = np.random.default_rng(0).normal(size=(2000, 3)).tolist()
    fit = await client.put(
        "/v1/models/fb",
        json={"algorithm": "ECOD", "alert_rate": 0.05, "instances": rows},
        headers=AUTH,
    )
    assert fit.status_code == 201, fit.text
    alerts = [[9.0, 0.0, 0.0], [0.0, 9.0, 0.0], [0.0, 0.0, -9.0]]
    detected = await client.post("/v1/models/fb/detect", json={"instances": alerts})
    assert detected.json()["is_anomaly"] == [True, True, True]
    logged = await client.get("/v1/models/fb/anomalies", headers=AUTH)
    assert logged.status_code == 200, logged.text
    records: list[dict[str, Any]] = logged.json()["anomalies"]
    assert len(records) == 3
    assert all(isinstance(record["id"], int) for record in records)
    return records


async def _labels_count_and_precision(client: httpx.AsyncClient) -> None:
    records = await _fit_and_alert(client)
    body = {
        "labels": [
            {"id": records[0]["id"], "label": "true_positive"},
            {"id": records[1]["id"], "label": "true_positive"},
            {"id": records[2]["id"], "label": "false_positive"},
        ],
        "rows": [
            {"row": [0.0, 0.0, 9.0], "label": "anomaly"},
            {"row": [0, 0, 0], "label": "normal"},
        ],
    }
    labels = {"model": "fb", "label": "true_positive"}
    counted = metric_value((await client.get("/metrics")).text, LABELS_TOTAL, labels)
    refused = await client.post("/v1/models/fb/feedback", json=body)
    assert refused.status_code == 401  # model management: the token is required
    answer = await client.post("/v1/models/fb/feedback", json=body, headers=AUTH)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["recorded"] == 5
    assert result["counts"] == {"true_positive": 3, "false_positive": 1, "true_negative": 1}
    assert result["precision"] == 0.75
    assert result["calibration"] is None  # not opted in
    exposition = (await client.get("/metrics")).text
    assert metric_value(exposition, "pynomaly_alert_precision", {"model": "fb"}) == 0.75
    assert metric_value(exposition, LABELS_TOTAL, labels) == counted + 3
    unknown = await client.post(
        "/v1/models/fb/feedback",
        json={"labels": [{"id": 999_999, "label": "true_positive"}]},
        headers=AUTH,
    )
    assert unknown.status_code == 422
    assert "unknown anomaly id(s)" in unknown.json()["detail"]
    for bad in (
        {},
        {"labels": [{"id": records[0]["id"], "label": "maybe"}]},
        {"rows": [{"row": [0, 0], "label": "normal"}]},
    ):
        response = await client.post("/v1/models/fb/feedback", json=bad, headers=AUTH)
        assert response.status_code == 422, (bad, response.text)
    missing = await client.post(
        "/v1/models/nope/feedback", json={"rows": [{"row": [0], "label": "normal"}]}, headers=AUTH
    )
    assert missing.status_code == 404


async def test_feedback_on_the_embedded_store(tmp_path: Path) -> None:
    async with service(
        tmp_path, anomaly_log_enabled=True, api_token_file=_token_file(tmp_path)
    ) as client:
        await _labels_count_and_precision(client)


@pytest.mark.postgres
async def test_feedback_on_postgres(tmp_path: Path, postgres_stack: PostgresStack) -> None:
    async with service(
        tmp_path,
        anomaly_log_enabled=True,
        api_token_file=_token_file(tmp_path),
        database_url=postgres_stack.dsn(postgres_stack.create_database()),
        database_password=postgres_stack.password,
    ) as client:
        await _labels_count_and_precision(client)


async def test_false_positives_feed_the_calibration_sample_when_opted_in(tmp_path: Path) -> None:
    async with service(
        tmp_path,
        anomaly_log_enabled=True,
        api_token_file=_token_file(tmp_path),
        feedback_calibration=True,
    ) as client:
        records = await _fit_and_alert(client)
        before = (
            await client.post("/v1/models/fb/detect", json={"instances": [[9.0, 0, 0]]})
        ).json()
        false_positive = {"id": records[0]["id"], "label": "false_positive"}
        answer = await client.post(
            "/v1/models/fb/feedback", json={"labels": [false_positive] * 200}, headers=AUTH
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["calibration"] == {"added": 200, "version": 2}
        after = (
            await client.post("/v1/models/fb/detect", json={"instances": [[9.0, 0, 0]]})
        ).json()
        assert after["version"] == 2
        # Rows like the labelled false positive are no longer extreme against the sample.
        assert after["p_values"][0] > before["p_values"][0]
        assert after["is_anomaly"] == [False]
        meta = (await client.get("/v1/models/fb")).json()
        assert meta["extra"]["calibration_feedback"] == 200
        assert meta["extra"]["recalibrated_from"] == 1
        assert meta["calibration_size"] == 2048

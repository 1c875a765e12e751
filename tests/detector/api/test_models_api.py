"""/v1 over HTTP: fits (JSON and CSV), registry, detect, anomaly log and every bad input."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from pynomaly_detector import metrics
from tests.detector.conftest import metric_value, service, training_rows


async def _fit(client: httpx.AsyncClient, name: str = "fraud", **body: Any) -> httpx.Response:
    payload = {
        "algorithm": "IForest",
        "parameters": {"n_estimators": 30},
        "instances": training_rows(),
    }
    payload.update(body)
    return await client.put(f"/v1/models/{name}", json=payload)


async def test_fit_detect_describe_list_delete(tmp_path: Path) -> None:
    async with service(tmp_path) as client:
        fitted = await _fit(client, contamination=0.05)
        assert fitted.status_code == 201, fitted.text
        meta = fitted.json()
        assert meta["version"] == 1
        assert meta["algorithm"] == "IForest"
        assert meta["n_features"] == 3
        assert meta["n_samples"] == 200
        assert "signature" not in meta
        assert len(meta["content_hash"]) == 64

        detected = await client.post(
            "/v1/models/fraud/detect", json={"instances": [[0, 0, 0], [9, 9, 9]]}
        )
        assert detected.status_code == 200
        body = detected.json()
        assert body["model"] == "fraud"
        assert body["version"] == 1
        assert body["is_anomaly"] == [False, True]
        assert body["scores"][1] > body["threshold"] > body["scores"][0]

        assert (await _fit(client)).json()["version"] == 2
        assert (await client.get("/v1/models/fraud")).json()["version"] == 2
        listed = (await client.get("/v1/models")).json()["models"]
        assert [(m["name"], m["version"]) for m in listed] == [("fraud", 2)]
        again = await client.post("/v1/models/fraud/detect", json={"instances": [[0, 0, 0]]})
        assert again.json()["version"] == 2

        assert (await client.delete("/v1/models/fraud")).status_code == 200
        gone = await client.post("/v1/models/fraud/detect", json={"instances": [[0, 0, 0]]})
        assert gone.status_code == 404
        assert gone.json()["error"] == "model_not_found"
        assert (await client.delete("/v1/models/fraud")).status_code == 404


async def test_fit_from_csv_upload(tmp_path: Path) -> None:
    csv = "amount,latency\n" + "".join(f"{i % 17},{(i * 7) % 13}\n" for i in range(300))
    async with service(tmp_path, model_max_training_rows=100) as client:
        response = await client.put(
            "/v1/models/csvmodel",
            files={"file": ("train.csv", csv.encode(), "text/csv")},
            data={"algorithm": "HBOS", "contamination": "0.05", "parameters": '{"n_bins": 5}'},
        )
        assert response.status_code == 201, response.text
        meta = response.json()
        assert meta["features"] == ["amount", "latency"]
        assert meta["n_samples"] == 100
        assert meta["extra"] == {"rows_seen": 300, "sampled": True, "dtype": "float32"}
        assert meta["parameters"] == {"n_bins": 5}
        bad = await client.put(
            "/v1/models/csvmodel", files={"file": ("x.csv", b"a,b\n1,zz\n", "text/csv")}
        )
        assert bad.status_code == 422
        assert "not numeric" in bad.json()["detail"]
        nofile = await client.put("/v1/models/csvmodel", files={"other": ("x", b"1")})
        assert nofile.status_code == 400


async def test_unbounded_work_is_refused_with_a_4xx(tmp_path: Path) -> None:
    line = ",".join(["1.5"] * 30_000)
    async with service(tmp_path) as client:
        wide = await client.put(
            "/v1/models/wide",
            files={"file": ("wide.csv", f"{line}\n{line}\n".encode(), "text/csv")},
        )
        assert wide.status_code == 422, wide.text
        assert "PYNOMALY_MODEL_MAX_FEATURES" in wide.json()["detail"]
        huge = await client.put(
            "/v1/models/huge",
            json={"parameters": {"n_estimators": 100_000_000}, "instances": [[1, 2], [3, 4]]},
        )
        assert huge.status_code == 422, huge.text
        every_core = await client.put(
            "/v1/models/cores", json={"parameters": {"n_jobs": -1}, "instances": [[1, 2], [3, 4]]}
        )
        assert every_core.status_code == 422, every_core.text


BAD_DETECT: list[tuple[bytes, int, str]] = [
    (b"not json", 400, "not valid JSON"),
    (b"", 400, "empty"),
    (b"[[1,2,3]]", 400, "JSON object"),
    (b'{"rows": [[1,2,3]]}', 422, "'instances' is required"),
    (b'{"instances": []}', 422, "empty"),
    (b'{"instances": [[1,2]]}', 422, "expects 3 features"),
    (b'{"instances": [[1,2,3],[1,2]]}', 422, "same length|equally long"),
    (b'{"instances": [["1",2,3]]}', 422, "only numbers"),
    (b'{"instances": [[true,2,3]]}', 422, "booleans"),
    (b'{"instances": [[null,2,3]]}', 422, "only numbers"),
    (b'{"instances": [1,2,3]}', 422, "2-D"),
    (b'{"instances": [[1,2,1e999]]}', 400, "not valid JSON"),
    (b'{"instances": [[1,2,NaN]]}', 400, "not valid JSON"),
    (b'{"instances": "abc"}', 422, "list of rows"),
]


@pytest.mark.parametrize(("body", "status", "message"), BAD_DETECT)
async def test_bad_detect_bodies_are_4xx_with_a_message(
    tmp_path: Path, body: bytes, status: int, message: str
) -> None:
    async with service(tmp_path) as client:
        await _fit(client)
        response = await client.post(
            "/v1/models/fraud/detect", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == status, response.text
        error = response.json()
        assert set(error) == {"error", "detail"}
        assert re.search(message, error["detail"])


async def test_bad_fits(tmp_path: Path) -> None:
    async with service(tmp_path) as client:
        unknown = await _fit(client, parameters={"trees": 3})
        assert unknown.status_code == 422
        assert "n_estimators" in unknown.json()["detail"]
        algorithm = await _fit(client, algorithm="Magic")
        assert algorithm.status_code == 422
        assert "ECOD" in algorithm.json()["detail"]
        contamination = await _fit(client, contamination=0.9)
        assert contamination.status_code == 422
        extra = await _fit(client, colour="blue")
        assert extra.status_code == 422
        name = await _fit(client, name="Bad_Name!")
        assert name.status_code == 422
        assert "invalid model name" in name.json()["detail"]
        missing = await client.put("/v1/models/x", json={"algorithm": "ECOD"})
        assert missing.status_code == 422
        value = await _fit(client, parameters={"n_estimators": "many"})
        assert value.status_code == 422


async def test_oversized_requests_are_413(tmp_path: Path) -> None:
    async with service(tmp_path, max_body_bytes=4096, max_instances_per_request=5) as client:
        await _fit(client, instances=training_rows(20))
        many = await client.post("/v1/models/fraud/detect", json={"instances": [[0, 0, 0]] * 6})
        assert many.status_code == 413
        assert many.json()["error"] == "too_many_rows"
        big = await client.post(
            "/v1/models/fraud/detect", json={"instances": [[0.123456789, 0, 0]] * 400}
        )
        assert big.status_code == 413
        assert big.json()["error"] == "body_too_large"

        async def chunks() -> Any:  # no content-length: the streamed size is enforced
            for _ in range(10):
                yield b" " * 1000

        streamed = await client.post("/v1/models/fraud/detect", content=chunks())
        assert streamed.status_code == 413


async def test_concurrent_single_rows_are_micro_batched(tmp_path: Path) -> None:
    metrics.flush()
    before_count = metrics.BATCH_SIZE._sum.get(), _count()
    async with service(tmp_path, batch_max_wait_ms=5.0, cache_memory_max_size=0) as client:
        await _fit(client)
        rows = training_rows(64, seed=5)
        responses = await asyncio.gather(
            *[client.post("/v1/models/fraud/detect", json={"instances": [row]}) for row in rows]
        )
        assert {response.status_code for response in responses} == {200}
        exposition = (await client.get("/metrics")).text
    metrics.flush()
    calls = _count() - before_count[1]
    rows_scored = metrics.BATCH_SIZE._sum.get() - before_count[0]
    assert rows_scored == 64
    assert calls < 16, f"{calls} model calls for 64 concurrent requests"
    assert metric_value(exposition, "pynomaly_batch_size_count") >= calls


def _count() -> float:
    return sum(
        sample.value
        for metric in metrics.BATCH_SIZE.collect()
        for sample in metric.samples
        if sample.name.endswith("_count")
    )


async def test_anomaly_log_round_trip(tmp_path: Path) -> None:
    async with service(tmp_path, anomaly_log_enabled=True) as client:
        await _fit(client)
        since = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)).isoformat()
        await client.post("/v1/models/fraud/detect", json={"instances": [[9, 9, 9], [0, 0, 0]]})
        logged = await client.get("/v1/models/fraud/anomalies", params={"since": since})
        assert logged.status_code == 200
        records = logged.json()["anomalies"]
        assert [record["row"] for record in records] == [[9.0, 9.0, 9.0]]
        bad = await client.get("/v1/models/fraud/anomalies", params={"since": "yesterday"})
        assert bad.status_code == 422
        assert bad.json()["error"] == "invalid_request"


async def test_unknown_routes_and_methods(tmp_path: Path) -> None:
    async with service(tmp_path) as client:
        assert (await client.get("/nope")).json()["error"] == "not_found"
        assert (await client.patch("/v1/models/x")).status_code == 405

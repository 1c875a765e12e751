"""Middleware: security headers, request ids, deadline, rate limit, CORS, gzip, metrics labels."""

from __future__ import annotations

from pathlib import Path

import pytest

from pynomaly_detector.api import middleware
from tests.detector.conftest import metric_value, service, settings_for, training_rows
from tests.support.redis_servers import RedisServer


async def test_security_headers_and_request_id(tmp_path: Path) -> None:
    async with service(tmp_path) as client:
        response = await client.get("/v1/models", headers={"x-request-id": "abc-123"})
        assert response.headers["x-request-id"] == "abc-123"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        generated = await client.get("/v1/models")
        assert len(generated.headers["x-request-id"]) == 16


async def test_deadline_is_504_with_a_message(tmp_path: Path) -> None:
    async with service(tmp_path, request_timeout_seconds=0.001) as client:
        response = await client.put(
            "/v1/models/slow",
            json={"algorithm": "IForest", "instances": training_rows(2000)},
        )
        assert response.status_code == 504
        assert "0.001 seconds" in response.json()["detail"]
        assert (await client.get("/livez")).status_code == 200  # probes have no deadline


async def test_in_process_rate_limit(tmp_path: Path) -> None:
    async with service(tmp_path, rate_limit_requests_per_second=1, rate_limit_burst=2) as client:
        statuses = [(await client.get("/v1/models")).status_code for _ in range(6)]
        assert statuses[:3] == [200, 200, 200]
        assert 429 in statuses
        limited = await client.get("/v1/models")
        assert limited.json()["error"] == "rate_limited"
        assert (await client.get("/readyz")).status_code == 200  # probes are exempt


@pytest.mark.redis
async def test_shared_rate_limit_through_redis(tmp_path: Path, redis_server: RedisServer) -> None:
    options = {
        "rate_limit_requests_per_second": 2,
        "rate_limit_burst": 0,
        "redis_mode": "standalone",
        "redis_url": redis_server.url,
    }
    async with (
        service(tmp_path / "a", **options) as first,
        service(tmp_path / "b", **options) as second,
    ):
        statuses = []
        for _ in range(3):
            statuses.append((await first.get("/v1/models")).status_code)
            statuses.append((await second.get("/v1/models")).status_code)
        # one budget for both "replicas" (unless the one-second window rolled over meanwhile)
        assert statuses.count(429) >= 1


async def test_cors_and_gzip(tmp_path: Path) -> None:
    async with service(tmp_path, cors_origins=["https://ui.example"]) as client:
        preflight = await client.options(
            "/v1/models",
            headers={"origin": "https://ui.example", "access-control-request-method": "GET"},
        )
        assert preflight.headers["access-control-allow-origin"] == "https://ui.example"
        await client.put("/v1/models/m", json={"algorithm": "ECOD", "instances": training_rows()})
        big = await client.post(
            "/v1/models/m/detect",
            json={"instances": training_rows(300)},
            headers={"accept-encoding": "gzip"},
        )
        assert big.headers["content-encoding"] == "gzip"
        assert len(big.json()["scores"]) == 300


async def test_metrics_use_route_templates_and_skip_probes(tmp_path: Path) -> None:
    async with service(tmp_path) as client:
        await client.put("/v1/models/m", json={"algorithm": "ECOD", "instances": training_rows()})
        for _ in range(3):
            await client.get("/v1/models/never-there-xyz")
            await client.get("/livez")
            await client.post("/v1/models/m/detect", json={"instances": [[0, 0, 0]]})
            await client.post("/v1/models/m/detect", json={"instances": [[0, 0]]})
            tensor = {"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [0, 0, 0]}
            await client.post("/v2/models/m/infer", json={"inputs": [tensor]})
        text = (await client.get("/metrics")).text
        for endpoint, status, count in [
            ("/v1/models/{name}/detect", "200", 3),
            ("/v1/models/{name}/detect", "422", 3),
            ("/v2/models/{name}/infer", "200", 3),
        ]:
            labels = {"endpoint": endpoint, "method": "POST", "status": status}
            assert metric_value(text, "pynomaly_requests_total", labels) >= count, endpoint
        labels = {"endpoint": "/v1/models/{name}", "method": "GET", "status": "404"}
        assert metric_value(text, "pynomaly_requests_total", labels) >= 3
        assert "never-there-xyz" not in text
        assert 'endpoint="/livez"' not in text
        assert metric_value(text, "pynomaly_memory_usage_bytes") > 10_000_000
        assert "pynomaly_active_connections" in text


def test_features_that_are_off_are_not_installed(tmp_path: Path) -> None:
    def layers(**overrides: object) -> list[tuple[str, str]]:
        built = middleware.stack(settings_for(tmp_path, **overrides))
        return [
            (getattr(layer.cls, "__name__", ""), str(layer.kwargs.get("part", "all")))
            for layer in built
        ]

    # One edge layer: security headers, gzip, metrics, request log, body limit, deadline.
    assert layers() == [("Edge", "all")]
    assert middleware.stack(settings_for(tmp_path))[0].kwargs["tokens"] is None  # no auth
    # CORS keeps its place between metrics (outer part) and the request log (inner part).
    assert layers(rate_limit_requests_per_second=5, cors_origins=["https://ui.example"]) == [
        ("Edge", "outer"),
        ("CORSMiddleware", "all"),
        ("Edge", "inner"),
    ]

"""detect and infer are served before FastAPI's stack, with the same edge and error shapes.

``DetectorApp`` hands ``POST .../detect`` and ``POST .../infer`` to ``api.fastpath`` behind
the edge layer; these tests pin what a client sees there: JSON errors (never a bare 500),
the edge's headers, metrics, rate limit and auth, and that FastAPI's stack is not involved.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pynomaly_detector.api.app import create_app
from pynomaly_detector.dataplane import DataPlane
from tests.detector.conftest import metric_value, service, settings_for, training_rows

TENSOR = {"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [0, 0, 0]}


@contextlib.asynccontextmanager
async def _lifespan_only(tmp_path: Path, **overrides: Any) -> AsyncIterator[Any]:
    """The app with its lifespan running and a client that shows 500s instead of raising."""
    app = create_app(settings_for(tmp_path, **overrides))
    async with app.router.lifespan_context(app) as state:

        async def with_state(scope: Any, receive: Any, send: Any) -> None:
            scope = dict(scope)
            scope["state"] = dict(state or {})
            await app(scope, receive, send)

        transport = httpx.ASGITransport(app=with_state, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://detector") as client:
            yield app, client


async def test_scoring_errors_are_json_with_the_edge_headers_without_fastapis_stack(
    tmp_path: Path,
) -> None:
    async with _lifespan_only(tmp_path) as (app, client):
        unknown = await client.post("/v1/models/nope/detect", json={"instances": [[0, 0, 0]]})
        infer = await client.post("/v2/models/nope/infer", json={"inputs": [TENSOR]})
        broken = await client.post(
            "/v1/models/nope/detect",
            content=b"{not json",
            headers={"content-type": "application/json", "x-request-id": "req-7"},
        )
        # FastAPI builds its middleware stack at its first request: none reached it.
        assert app.middleware_stack is None
    assert unknown.json()["error"] == "model_not_found"
    assert infer.json()["error"].startswith("model_not_found")  # the protocol's error shape
    for response in (unknown, infer):
        assert response.status_code == 404
        assert response.headers["x-content-type-options"] == "nosniff"
        assert len(response.headers["x-request-id"]) == 16
    assert broken.status_code == 404  # the model is looked up before the body is read
    assert set(broken.json()) == {"error", "detail"}
    assert broken.headers["x-request-id"] == "req-7"


async def test_an_unexpected_error_is_a_json_500_and_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: DataPlane, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    async with _lifespan_only(tmp_path) as (_, client):
        fit = await client.put(
            "/v1/models/m", json={"algorithm": "ECOD", "instances": training_rows()}
        )
        assert fit.status_code == 201
        # A fake fault: no input makes the real data plane raise an unexpected error.
        monkeypatch.setattr(DataPlane, "detect_rows", broken)
        response = await client.post("/v1/models/m/detect", json={"instances": [[0, 0, 0]]})
        text = (await client.get("/metrics")).text
    assert response.status_code == 500
    assert response.json() == {
        "error": "internal_error",
        "detail": "an unexpected error occurred; it was logged",
    }
    assert "a bug" not in response.text
    labels = {"endpoint": "/v1/models/{name}/detect", "method": "POST", "status": "500"}
    assert metric_value(text, "pynomaly_requests_total", labels) >= 1


async def test_an_unexpected_error_propagates_like_fastapis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: DataPlane, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    async with service(tmp_path) as client:
        await client.put("/v1/models/m", json={"algorithm": "ECOD", "instances": training_rows()})
        monkeypatch.setattr(DataPlane, "detect_rows", broken)  # a fake fault, as above
        with pytest.raises(RuntimeError, match="a bug"):  # the server logs it; tests see it
            await client.post("/v1/models/m/detect", json={"instances": [[0, 0, 0]]})


async def test_rate_limit_and_body_limit_apply_to_scoring(tmp_path: Path) -> None:
    options = {"rate_limit_requests_per_second": 1, "rate_limit_burst": 1, "max_body_bytes": 4096}
    async with service(tmp_path, **options) as client:
        big = await client.post("/v1/models/m/detect", content=b"[" * 5000)
        assert big.status_code == 413
        assert big.json()["error"] == "body_too_large"
        statuses = [
            (await client.post("/v2/models/m/infer", json={"inputs": [TENSOR]})).status_code
            for _ in range(5)
        ]
    assert 429 in statuses

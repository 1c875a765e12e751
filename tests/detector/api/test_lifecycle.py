"""Start-up and shut-down: declared model, warm-up, readiness, draining."""

from __future__ import annotations

import asyncio
import functools
import http.server
import os
import signal
import threading
from pathlib import Path

import numpy as np
import pytest

from pynomaly_detector import dataplane
from pynomaly_detector.api.app import create_app
from pynomaly_detector.registry.postgres import PostgresStore
from tests.detector.conftest import ready, service, serving, settings_for, training_rows, wait_until
from tests.support.postgres_servers import PostgresStack


def _training_csv(path: Path) -> Path:
    rows = np.asarray(training_rows(150, d=2))
    path.write_text("x,y\n" + "".join(f"{a},{b}\n" for a, b in rows))
    return path


async def test_declared_model_is_fitted_at_start_and_gates_readiness(tmp_path: Path) -> None:
    csv = _training_csv(tmp_path / "train.csv")
    options = {
        "model_name": "declared",
        "model_algorithm": "COPOD",
        "model_contamination": 0.05,
        "model_training_path": str(csv),
    }
    async with service(tmp_path, **options) as client:
        readiness = (await client.get("/readyz")).json()
        assert readiness["declared_model_loaded"]
        assert readiness["models"] == {"declared": 1}
        meta = (await client.get("/v1/models/declared")).json()
        assert meta["features"] == ["x", "y"]
        assert meta["algorithm"] == "COPOD"
    async with service(tmp_path, **options) as client:  # restart: loaded, not refitted
        assert (await client.get("/v1/models/declared")).json()["version"] == 1


async def test_declared_model_refitted_when_the_signing_key_changed(tmp_path: Path) -> None:
    """The signing-key Secret was deleted and re-created with a new key: the stored version
    cannot be verified, so it is never unpickled; the declared model is fitted again."""
    csv = _training_csv(tmp_path / "train.csv")
    options = {
        "model_name": "declared",
        "model_algorithm": "IForest",
        "model_parameters": {"n_estimators": 20, "random_state": 1},
        "model_training_path": str(csv),
    }
    async with service(tmp_path, **options) as client:
        first = (await client.get("/v1/models/declared")).json()
    assert first["version"] == 1

    rotated = {**options, "artifact_signing_key": "a-re-created-secret-key-0123456789"}
    async with service(tmp_path, **rotated) as client:
        readiness = (await client.get("/readyz")).json()
        assert readiness["ready"], readiness
        assert readiness["models"] == {"declared": 2}
        second = (await client.get("/v1/models/declared")).json()
        assert second["version"] == 2
        assert second["content_hash"] == first["content_hash"]  # same data, same fit
        scored = await client.post("/v1/models/declared/detect", json={"instances": [[0, 0]]})
        assert scored.status_code == 200, scored.text
    async with service(tmp_path, **rotated) as client:  # the new version verifies: loaded
        assert (await client.get("/readyz")).json()["models"] == {"declared": 2}


async def test_declared_model_without_training_data_is_ready_and_says_how_to_fit_it(
    tmp_path: Path,
) -> None:
    """The minimal sample: a declared model and no training source. The pod is Ready (so its
    Service has endpoints and the model can be fitted through the API at all)."""
    async with service(tmp_path, model_name="payments") as client:
        readiness = (await client.get("/readyz")).json()
        assert readiness["ready"] is True
        assert readiness["declared_model_state"] == "not_fitted"
        assert readiness["declared_model_version"] is None
        for response in (
            await client.post("/v1/models/payments/detect", json={"instances": [[0, 0]]}),
            await client.get("/v1/models/payments"),
        ):
            assert response.status_code == 404
            assert response.json()["error"] == "model_not_fitted"
            assert "declared, not fitted yet: PUT /v1/models/payments" in response.json()["detail"]
        fitted = await client.put(
            "/v1/models/payments", json={"algorithm": "ECOD", "instances": training_rows(d=2)}
        )
        assert fitted.status_code == 201, fitted.text
        scored = await client.post("/v1/models/payments/detect", json={"instances": [[0, 0]]})
        assert scored.status_code == 200, scored.text
        readiness = (await client.get("/readyz")).json()
        assert readiness["declared_model_state"] == "loaded"
        assert readiness["declared_model_version"] == 1
    async with service(tmp_path, model_name="payments") as client:  # restart: the PUT serves
        readiness = (await client.get("/readyz")).json()
        assert (readiness["declared_model_state"], readiness["declared_model_version"]) == (
            "loaded",
            1,
        )


async def test_a_changed_declared_model_is_fitted_as_a_new_version_once(tmp_path: Path) -> None:
    csv = _training_csv(tmp_path / "train.csv")
    options = {
        "model_name": "declared",
        "model_algorithm": "IForest",
        "model_parameters": {"n_estimators": 20},
        "model_training_path": str(csv),
    }
    async with service(tmp_path, **options) as client:
        assert (await client.get("/readyz")).json()["declared_model_version"] == 1

    changed = {**options, "model_algorithm": "ECOD", "model_parameters": {}}
    settings = settings_for(tmp_path, **changed)
    # Two workers start with the new declaration at once: one fits, both serve it.
    async with serving(create_app(settings)) as one, serving(create_app(settings)) as two:
        await wait_until(lambda: ready(one))
        await wait_until(lambda: ready(two))
        for client in (one, two):
            readiness = (await client.get("/readyz")).json()
            assert readiness["declared_model_version"] == 2, readiness
            meta = (await client.get("/v1/models/declared")).json()
            assert (meta["algorithm"], meta["version"]) == ("ECOD", 2)
    assert sorted(path.name for path in (tmp_path / "models" / "declared").glob("v*.json")) == [
        "v1.json",
        "v2.json",
    ]
    async with service(tmp_path, **changed) as client:  # same declaration: loaded, not refitted
        assert (await client.get("/readyz")).json()["declared_model_version"] == 2

    csv.write_text(csv.read_text() + "0.5,0.5\n")  # new training data (a new ConfigMap)
    async with service(tmp_path, **{**changed, "model_contamination": 0.2}) as client:
        meta = (await client.get("/v1/models/declared")).json()
        assert (meta["version"], meta["contamination"], meta["n_samples"]) == (3, 0.2, 151)


async def test_warmup_loads_stored_models(tmp_path: Path) -> None:
    async with service(tmp_path) as client:
        await client.put("/v1/models/a", json={"algorithm": "ECOD", "instances": training_rows()})
    async with service(tmp_path, cache_warmup=True) as client:
        assert (await client.get("/readyz")).json()["models"] == {"a": 1}


async def test_sigterm_fails_readiness_first_then_hands_over_to_uvicorn(tmp_path: Path) -> None:
    handed_over: list[int] = []

    def uvicorn_handler(signum: int, frame: object) -> None:  # stands in for uvicorn's
        handed_over.append(signum)

    previous = signal.signal(signal.SIGTERM, uvicorn_handler)
    try:
        app = create_app(settings_for(tmp_path, drain_seconds=0.3), handle_signals=True)
        async with serving(app) as client:
            await wait_until(lambda: ready(client))
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.sleep(0.05)
            drained = await client.get("/readyz")
            assert drained.status_code == 503
            assert drained.json()["draining"] is True
            assert (await client.get("/v2/health/ready")).status_code == 503
            assert (await client.get("/livez")).status_code == 200
            assert (await client.get("/v1/models")).status_code == 200  # still serving
            assert handed_over == []
            await wait_until(lambda: _true(bool(handed_over)), within=5)
            assert handed_over == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


async def _true(value: bool) -> bool:
    return value


@pytest.mark.postgres
async def test_declared_model_fitted_once_across_replicas(
    tmp_path: Path, postgres_stack: PostgresStack
) -> None:
    csv = _training_csv(tmp_path / "train.csv")
    settings = settings_for(
        tmp_path,
        database_url=postgres_stack.dsn(postgres_stack.create_database()),
        database_password=postgres_stack.password,
        model_name="shared",
        model_algorithm="IForest",
        model_parameters={"n_estimators": 20},
        model_training_path=str(csv),
    )
    planes = [
        dataplane.build(
            settings, store=PostgresStore(settings.database_url, password=postgres_stack.password)
        )
        for _ in range(3)
    ]
    for plane in planes:
        await plane.start()
    try:
        results = await asyncio.gather(*[plane.ensure_declared() for plane in planes])
        assert {meta.version for meta in results} == {1}
        assert {meta.content_hash for meta in results} == {results[0].content_hash}
        listed = await planes[0].store.list_models()
        assert [(meta.name, meta.version) for meta in listed] == [("shared", 1)]
    finally:
        for plane in planes:
            await plane.close()


async def test_declared_model_from_a_training_url(tmp_path: Path) -> None:
    csv = _training_csv(tmp_path / "train.csv")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{csv.name}"
        options = {"model_name": "fromurl", "model_algorithm": "HBOS", "model_training_url": url}
        async with service(tmp_path, **options) as client:
            meta = (await client.get("/v1/models/fromurl")).json()
            assert meta["n_samples"] == 150
            assert meta["algorithm"] == "HBOS"
    finally:
        server.shutdown()
        server.server_close()

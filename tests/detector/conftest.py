"""Shared helpers of the detector service tests: settings, data, and an in-process client.

``serving(app)`` runs the app's lifespan and hands out an ``httpx.AsyncClient`` over
``ASGITransport`` (which does not run lifespans itself), injecting the lifespan state the
way uvicorn does. Unhandled exceptions propagate into the test: a 500 fails it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from pynomaly_detector.api.app import create_app
from pynomaly_detector.settings import Settings

SIGNING_KEY = "test-signing-key-0123456789abcdef"


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for an embedded-store service in ``tmp_path``."""
    values: dict[str, Any] = {
        "model_dir": str(tmp_path / "models"),
        "artifact_signing_key": SIGNING_KEY,
        "batch_max_wait_ms": 2.0,
        "access_log": False,
    }
    values.update(overrides)
    return Settings(**values)


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, behind an in-process client."""
    async with app.router.lifespan_context(app) as state:

        async def with_state(scope: Any, receive: Any, send: Any) -> None:
            scope = dict(scope)
            scope["state"] = dict(state)
            await app(scope, receive, send)

        transport = httpx.ASGITransport(app=with_state)
        async with httpx.AsyncClient(transport=transport, base_url="http://detector") as client:
            yield client


@contextlib.asynccontextmanager
async def service(tmp_path: Path, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A ready embedded-store service."""
    app = create_app(settings_for(tmp_path, **overrides))
    async with serving(app) as client:
        # A declared model's fit at start may first start the process's fit fork server
        # (PyOD's imports: seconds, tens of seconds on a loaded machine).
        await wait_until(lambda: ready(client), within=90.0)
        yield client


async def ready(client: httpx.AsyncClient) -> bool:
    """Whether /readyz says ready."""
    return (await client.get("/readyz")).status_code == 200


async def wait_until(
    check: Callable[[], Awaitable[bool]], *, within: float = 20.0, interval: float = 0.05
) -> None:
    """Poll ``check`` until true (bounded)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(interval)
    raise TimeoutError("condition not reached in time")


def training_rows(n: int = 200, d: int = 3, *, seed: int = 0) -> list[list[float]]:
    """Gaussian rows with a few far outliers."""
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(n, d))
    rows[: max(1, n // 50)] += 8.0
    return rows.tolist()  # type: ignore[no-any-return]


def metric_value(text: str, name: str, labels: dict[str, str] | None = None) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` in an exposition."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, rest = head.partition("{")
        if metric != name:
            continue
        if labels and not all(f'{key}="{val}"' in rest for key, val in labels.items()):
            continue
        total += float(value)
    return total


@pytest.fixture
def rows() -> list[list[float]]:
    """Default training rows."""
    return training_rows()

"""Fits in their own process: the result equals an in-process fit, bad parameters keep their
error type, and a fit past its limit or abandoned by its caller is killed, not waited for."""

from __future__ import annotations

import asyncio
import pickle
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import psutil
import pytest

from pynomaly_detector.detectors import errors, fitted, fitting

SLOW_ROWS = np.random.default_rng(1).normal(size=(20_000, 10))
"""OCSVM on these rows takes tens of seconds on one core (5,000 rows: ~1.7 s, O(n^2))."""


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(1)
    yield executor
    executor.shutdown()


def fit_processes() -> list[psutil.Process]:
    """Processes forked by this process's fork server (running fits)."""
    servers = [
        child for child in psutil.Process().children() if "forkserver" in " ".join(child.cmdline())
    ]
    return [fit for server in servers for fit in server.children()]


async def test_a_fit_in_its_process_equals_one_in_process(pool: ThreadPoolExecutor) -> None:
    rows = np.random.default_rng(0).normal(size=(300, 3))
    result = await fitting.fit(
        "IForest",
        rows,
        parameters={"n_estimators": 50},
        contamination=0.05,
        limit=60,
        executor=pool,
    )
    here = fitted.fit("IForest", rows, parameters={"n_estimators": 50}, contamination=0.05)
    there = pickle.loads(result.artifact)  # noqa: S301 - our own child's artifact
    assert result.threshold == here.threshold
    assert result.n_samples == 300
    np.testing.assert_array_equal(there.score(rows), here.score(rows))


async def test_bad_parameters_keep_their_error_type(pool: ThreadPoolExecutor) -> None:
    rows = np.random.default_rng(0).normal(size=(50, 2))
    with pytest.raises(errors.InvalidParametersError, match="unknown parameter"):
        await fitting.fit(
            "IForest", rows, parameters={"bogus": 1}, contamination=0.1, limit=60, executor=pool
        )


async def test_a_fit_past_its_limit_is_killed_at_the_limit(pool: ThreadPoolExecutor) -> None:
    await fitting.fit(  # starts the fork server, which is not part of any fit's time
        "ECOD", SLOW_ROWS[:20], parameters={}, contamination=0.1, limit=60, executor=pool
    )
    started = time.monotonic()
    with pytest.raises(fitting.FitTimeoutError, match=r"longer than its limit of 1\.5 s"):
        await fitting.fit(
            "OCSVM", SLOW_ROWS, parameters={}, contamination=0.1, limit=1.5, executor=pool
        )
    elapsed = time.monotonic() - started
    assert 1.5 <= elapsed < 4.0, elapsed
    assert fit_processes() == []


async def test_an_abandoned_fit_is_killed(pool: ThreadPoolExecutor) -> None:
    """The request deadline cancels the waiting coroutine: the process goes with it."""
    task = asyncio.create_task(
        fitting.fit("OCSVM", SLOW_ROWS, parameters={}, contamination=0.1, limit=600, executor=pool)
    )
    deadline = time.monotonic() + 30
    while not fit_processes():
        assert time.monotonic() < deadline, "the fit process never started"
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    while fit_processes():
        assert time.monotonic() < deadline, "the abandoned fit kept running"
        await asyncio.sleep(0.05)
    # The fit thread is free again: the next fit runs at once.
    rows = np.random.default_rng(0).normal(size=(50, 2))
    result = await asyncio.wait_for(
        fitting.fit("ECOD", rows, parameters={}, contamination=0.1, limit=60, executor=pool), 30
    )
    assert result.n_samples == 50

"""Fits in their own process: the result equals an in-process fit, bad parameters keep their
error type, and a fit past its limit or abandoned by its caller is killed, not waited for.
The fork server the fits come from is stopped once no fit has run for the idle period (its
~250 MB go back), never while a fit runs, and the next fit starts a new one."""

from __future__ import annotations

import asyncio
import multiprocessing.forkserver
import pickle
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt
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


MiB = 1024 * 1024


def fork_servers() -> list[psutil.Process]:
    """This process's fit fork servers (at most one)."""
    found = []
    for child in psutil.Process().children():
        try:
            if "forkserver" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:  # exited while listed
            pass
    return found


def _multiprocessing(process: psutil.Process) -> bool:
    try:
        return "multiprocessing" in " ".join(process.cmdline())
    except psutil.NoSuchProcess:  # exited while listed
        return False


def fit_processes() -> list[psutil.Process]:
    """Processes forked by this process's fork server (running fits)."""
    return [fit for server in fork_servers() for fit in server.children()]


def small_rows(n: int = 60, *, seed: int = 0) -> npt.NDArray[np.float64]:
    return np.random.default_rng(seed).normal(size=(n, 3))


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


def test_the_private_fork_server_stop_still_exists() -> None:
    """``fitting._stop_fork_server`` calls CPython's private ``ForkServer._stop``: if an
    upgrade renamed it, idle fork servers would keep their memory again. Fail here first."""
    server = multiprocessing.forkserver._forkserver
    assert callable(getattr(server, "_stop", None)), (
        "multiprocessing.forkserver.ForkServer._stop is gone: rework fitting._stop_fork_server"
    )


async def test_an_idle_fork_server_is_stopped_and_the_next_fit_starts_one(
    pool: ThreadPoolExecutor,
) -> None:
    idle = 2.0
    await fitting.fit(
        "ECOD",
        small_rows(),
        parameters={},
        contamination=0.1,
        limit=60,
        executor=pool,
        idle_seconds=idle,
    )
    fitted_at = time.monotonic()
    [server] = fork_servers()
    assert server.memory_info().rss > 100 * MiB  # every algorithm imported: what is freed

    deadline = fitted_at + idle + 30
    while server.is_running() and server.status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the idle fork server was never stopped"
        await asyncio.sleep(0.05)
    assert time.monotonic() - fitted_at >= idle - 0.1, "stopped before the idle period ended"
    assert fork_servers() == []
    # What multiprocessing still runs for us (the resource tracker) is small. Other children
    # of this test process (a session's Postgres and PgBouncer) are not ours to count.
    left = [child for child in psutil.Process().children(recursive=True) if _multiprocessing(child)]
    assert sum(child.memory_info().rss for child in left) < 60 * MiB

    result = await fitting.fit(
        "IForest",
        small_rows(80),
        parameters={"n_estimators": 20},
        contamination=0.1,
        limit=60,
        executor=pool,
        idle_seconds=idle,
    )
    assert result.n_samples == 80
    [again] = fork_servers()
    assert again.pid != server.pid


async def test_a_fit_in_progress_keeps_its_fork_server() -> None:
    """Another fit ends while a long one runs, with ``idle_seconds=0`` (stop as soon as no
    fit runs): the server must stay for the long fit, which then completes."""
    with ThreadPoolExecutor(2) as two:
        slow = asyncio.create_task(
            fitting.fit(
                "OCSVM",
                SLOW_ROWS[:8000],
                parameters={},
                contamination=0.1,
                limit=300,
                executor=two,
                idle_seconds=0,
            )
        )
        deadline = time.monotonic() + 60
        while not fit_processes():
            assert time.monotonic() < deadline, "the long fit never started"
            await asyncio.sleep(0.05)
        [server] = fork_servers()
        quick = await fitting.fit(
            "ECOD",
            small_rows(),
            parameters={},
            contamination=0.1,
            limit=60,
            executor=two,
            idle_seconds=0,
        )
        assert quick.n_samples == 60
        assert not slow.done(), "the long fit ended first: nothing was tested (use more rows)"
        assert [p.pid for p in fork_servers()] == [server.pid]
        assert len(fit_processes()) == 1
        result = await slow
        assert result.n_samples == 8000
        assert fork_servers() == []  # the last fit ended: stopped at once


async def test_concurrent_fits_while_the_fork_server_comes_and_goes() -> None:
    """Fits of different lengths overlap, each stopping the server when it is the last one
    running (``idle_seconds=0``) while others start: every fit succeeds."""
    with ThreadPoolExecutor(4) as four:

        async def one(i: int) -> int:
            await asyncio.sleep(0.1 * (i % 3))
            result = await fitting.fit(
                "IForest",
                small_rows(50 + 50 * i, seed=i),
                parameters={"n_estimators": 10},
                contamination=0.1,
                limit=120,
                executor=four,
                idle_seconds=0,
            )
            return result.n_samples

        for _ in range(3):
            assert await asyncio.gather(*(one(i) for i in range(6))) == [
                50 + 50 * i for i in range(6)
            ]
            assert fork_servers() == []

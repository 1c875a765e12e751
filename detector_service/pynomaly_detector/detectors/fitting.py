"""Fits in a child process with a wall-clock limit: a fit past its limit is killed, not waited for.

A fit in a thread cannot be stopped: scikit-learn and PyOD do not look at a flag, so a fit that
outlived its request kept a core busy to the end. Here every fit runs in its own process, forked
from a ``forkserver`` (a clean interpreter that imports numpy, scikit-learn and every catalog
algorithm once, so a fit starts in milliseconds, and never inherits the worker's threads, event
loop or sockets). The parent waits up to ``limit`` seconds for the pickled detector, then kills
the process (SIGKILL) and raises ``FitTimeoutError``; cancelling the waiting coroutine (the
request deadline, a client gone) kills it too. Nothing is stored until the result arrives, so a
stopped fit leaves the model on its previous version.

Each worker process starts its own fork server on its first fit (it exits with the worker).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import pickle
import threading
import time
import traceback
from concurrent.futures import Executor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import numpy.typing as npt

from pynomaly_detector.detectors import catalog, errors, fitted, reference

log = logging.getLogger(__name__)

PRELOAD = [
    "pynomaly_detector.detectors.fitting",
    *sorted({algorithm.module for algorithm in catalog.ALGORITHMS.values()}),
]
"""Modules the fork server imports once, so that no fit pays for them: PyOD's import alone
takes seconds (the fork server holds ~250 MB RSS with every algorithm imported)."""

_CONTEXT_LOCK = threading.Lock()
_context: Any = None


@dataclass(frozen=True, slots=True)
class Fitted:
    """What a fit returns to the parent: the pickled detector and what its metadata needs."""

    artifact: bytes
    """``pickle`` of the ``FittedDetector`` (the registry signs it; the key never leaves)."""
    n_samples: int
    threshold: float
    contamination: float
    alert_rate: float | None
    calibration_size: int | None


class FitTimeoutError(errors.DetectorError):
    """The fit ran past its wall-clock limit and was killed."""


class FitFailedError(Exception):
    """The fit process died without an answer (killed by the kernel, out of memory)."""


def _forkserver() -> Any:
    global _context  # one fork server per process, set up on first use
    with _CONTEXT_LOCK:
        if _context is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(PRELOAD)
            _context = context
        return _context


def _child(
    connection: Connection,
    algorithm: str,
    rows: npt.NDArray[np.float64],
    parameters: dict[str, Any],
    contamination: float,
    alert_rate: float | None,
) -> None:
    """The fit process: fit, pickle, send ``("ok", Fitted)`` or ``("error", kind, message)``."""
    try:
        detector = fitted.fit(
            algorithm,
            rows,
            parameters=parameters,
            contamination=contamination,
            alert_rate=alert_rate,
        )
        reference.attach(detector, rows)  # bins for drift checks (no rows kept)
        artifact = pickle.dumps(detector, protocol=pickle.HIGHEST_PROTOCOL)
        calibration = detector.calibration_scores
        answer: tuple[Any, ...] = (
            "ok",
            Fitted(
                artifact,
                detector.n_samples,
                detector.threshold,
                detector.contamination,
                detector.alert_rate,
                None if calibration is None else len(calibration),
            ),
        )
    except errors.DetectorError as error:
        answer = ("rejected", type(error).__name__, str(error))
    except BaseException as error:  # reported to the parent, which logs and raises
        answer = ("error", f"{type(error).__name__}: {error}", traceback.format_exc())
    connection.send_bytes(pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL))
    connection.close()


class _Job:
    """One fit process and the read end of its answer pipe."""

    def __init__(self, *args: Any) -> None:
        context = _forkserver()
        self.reader, writer = context.Pipe(duplex=False)
        self.process = context.Process(
            target=_child, args=(writer, *args), name="pynomaly-fit", daemon=True
        )
        self.process.start()
        writer.close()
        self.started = time.monotonic()
        self._lock = threading.Lock()

    def wait(self, limit: float) -> Fitted:
        """The answer, or ``FitTimeoutError`` after ``limit`` seconds (the process killed)."""
        remaining = self.started + limit - time.monotonic()
        try:
            if not self.reader.poll(max(remaining, 0.0)):
                self.kill()
                self.process.join(5)
                raise FitTimeoutError(
                    f"the fit ran longer than its limit of {limit:g} s and was stopped "
                    "(PYNOMALY_FIT_TIMEOUT_SECONDS); fit fewer rows, fewer estimators or a "
                    "faster algorithm"
                )
            raw = self.reader.recv_bytes()
        except (EOFError, OSError):
            self.process.join(5)
            code = self.process.exitcode
            raise FitFailedError(
                f"the fit process ended without an answer (exit code {code}: "
                "killed, out of memory?)"
            ) from None
        finally:
            self.reader.close()
        self.process.join(5)
        # Our own child's answer over a private pipe, not stored data.
        answer = pickle.loads(raw)  # noqa: S301
        if answer[0] == "ok":
            result: Fitted = answer[1]
            return result
        if answer[0] == "rejected":
            kind = getattr(errors, answer[1], errors.DetectorError)
            raise kind(answer[2])
        log.error("fit failed in its process: %s", answer[2])
        raise FitFailedError(answer[1])

    def kill(self) -> None:
        """Send SIGKILL if the process still runs (idempotent, never blocks)."""
        with self._lock:
            if self.process.exitcode is None:
                self.process.kill()


async def fit(
    algorithm: str,
    rows: npt.NDArray[np.float64],
    *,
    parameters: dict[str, Any],
    contamination: float,
    alert_rate: float | None = None,
    limit: float,
    executor: Executor,
) -> Fitted:
    """Fit in a child process for at most ``limit`` seconds of wall-clock time.

    ``executor`` runs the blocking start and wait (one thread per concurrent fit). Raises
    ``FitTimeoutError`` past the limit, ``DetectorError`` subclasses for bad parameters or
    rows (as ``fitted.fit`` does), ``FitFailedError`` if the process dies.
    """
    jobs: list[_Job] = []
    abandoned = threading.Event()

    def run() -> Fitted:
        job = _Job(algorithm, rows, parameters, contamination, alert_rate)
        jobs.append(job)
        if abandoned.is_set():  # cancelled while the process was starting
            job.kill()
        return job.wait(limit)

    try:
        return await asyncio.get_running_loop().run_in_executor(executor, run)
    except BaseException:
        # Cancelled (request deadline, client gone) or failed: the process must not run on.
        abandoned.set()
        for job in jobs:
            job.kill()
        raise

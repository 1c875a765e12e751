"""Fits in a child process with a wall-clock limit: a fit past its limit is killed, not waited for.

A fit in a thread cannot be stopped: scikit-learn and PyOD do not look at a flag, so a fit that
outlived its request kept a core busy to the end. Here every fit runs in its own process, forked
from a ``forkserver`` (a clean interpreter that imports numpy, scikit-learn and every catalog
algorithm once, so a fit starts in milliseconds, and never inherits the worker's threads, event
loop or sockets). The parent waits up to ``limit`` seconds for the pickled detector, then kills
the process (SIGKILL) and raises ``FitTimeoutError``; cancelling the waiting coroutine (the
request deadline, a client gone) kills it too. Nothing is stored until the result arrives, so a
stopped fit leaves the model on its previous version.

Each worker process starts its own fork server on its first fit, and stops it once no fit has
run for ``idle_seconds`` (``PYNOMALY_FIT_SERVER_IDLE_SECONDS``, 60 s by default): with every
algorithm imported it holds ~250 MB RSS, and a pod of four workers that had fitted once kept
~1 GB for life, enough to hold a memory-based autoscaler above its scale-down line. The next
fit starts a new one transparently and pays the imports again (~2 s on an idle core).

How it is stopped: CPython's ``forkserver`` has no public way to stop its server, so
``_stop_fork_server`` calls the private ``ForkServer._stop`` (in the 3.11 we ship; CPython's own
multiprocessing tests stop the server with it). It closes the server's "alive" pipe and waits
for the server to exit; the next ``Process.start()`` finds no server and starts one with the
same preload list. A fork server of our own would re-implement fd passing and child reaping to
avoid one private call, so the call is confined to that one function, and a test fails loudly
if it disappears. ``_ForkServer`` counts the fits in flight under a lock: the server is stopped
only when none runs and none started since the idle timer was armed; a fit that starts waits
for a stop in progress (milliseconds), so a running fit never loses its server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.forkserver
import pickle
import threading
import time
import traceback
from collections.abc import Iterator
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

DEFAULT_IDLE_SECONDS = 60.0
"""Seconds without a fit after which the fork server is stopped (the settings' default)."""


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


def _stop_fork_server() -> None:
    """Stop this process's fork server if one runs (blocks until it has exited).

    Private API: ``multiprocessing`` offers no public way to stop the server, and the
    alternative is a fork server of our own. ``tests/detector/detectors/test_fitting.py``
    fails if ``ForkServer._stop`` is gone. No fit may be running (``_ForkServer`` sees to it):
    a running fit process holds the server's alive pipe, so the wait would last as long as it.
    """
    multiprocessing.forkserver._forkserver._stop()  # type: ignore[attr-defined]  # private, see above


class _ForkServer:
    """The fork server of this process: started by a fit, stopped after an idle period.

    ``lease`` wraps every fit from before its process starts until it has ended; when the
    last lease ends, a timer of ``idle_seconds`` is armed (0: stop at once), and a new lease
    disarms it. The stop runs under the lock, so a fit never starts while it is under way.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fits = 0
        self._timer: threading.Timer | None = None
        self._context: Any = None

    @contextlib.contextmanager
    def lease(self, idle_seconds: float) -> Iterator[Any]:
        """The ``forkserver`` context for one fit; the server stays up until the lease ends."""
        with self._lock:
            self._fits += 1
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._context is None:
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload(PRELOAD)
                self._context = context
            context = self._context
        try:
            yield context
        finally:
            with self._lock:
                self._fits -= 1
                if self._fits == 0:
                    if idle_seconds <= 0:
                        self._stop_locked()
                    else:
                        timer = threading.Timer(idle_seconds, self._expire)
                        timer.name = "pynomaly-fit-server-idle"
                        timer.daemon = True  # never delays the worker's exit
                        self._timer = timer
                        timer.start()

    def _expire(self) -> None:
        with self._lock:
            # A fit that started meanwhile replaced or cleared the timer: not idle any more.
            if self._fits == 0 and self._timer is threading.current_thread():
                self._timer = None
                self._stop_locked()

    def _stop_locked(self) -> None:
        try:
            _stop_fork_server()
        except OSError as error:  # the next fit finds out whether a server can start
            log.warning("could not stop the fit fork server: %s", error)
        else:
            log.info("fit fork server stopped: no fit running (the next fit starts it again)")


_SERVER = _ForkServer()


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

    def __init__(self, context: Any, *args: Any) -> None:
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

    def reap(self) -> None:
        """Return once the process has exited (killed if it lingers 5 s after its answer):
        until then it holds memory and the fork server's alive pipe."""
        self.process.join(5)
        if self.process.exitcode is None:
            self.kill()
            self.process.join()


async def fit(
    algorithm: str,
    rows: npt.NDArray[np.float64],
    *,
    parameters: dict[str, Any],
    contamination: float,
    alert_rate: float | None = None,
    limit: float,
    executor: Executor,
    idle_seconds: float = DEFAULT_IDLE_SECONDS,
) -> Fitted:
    """Fit in a child process for at most ``limit`` seconds of wall-clock time.

    ``executor`` runs the blocking start and wait (one thread per concurrent fit). Raises
    ``FitTimeoutError`` past the limit, ``DetectorError`` subclasses for bad parameters or
    rows (as ``fitted.fit`` does), ``FitFailedError`` if the process dies. The fork server
    is stopped once ``idle_seconds`` pass with no fit running (0: as soon as none runs).
    """
    jobs: list[_Job] = []
    abandoned = threading.Event()

    def run() -> Fitted:
        with _SERVER.lease(idle_seconds) as context:
            job = _Job(context, algorithm, rows, parameters, contamination, alert_rate)
            jobs.append(job)
            try:
                if abandoned.is_set():  # cancelled while the process was starting
                    job.kill()
                return job.wait(limit)
            finally:
                job.reap()

    try:
        return await asyncio.get_running_loop().run_in_executor(executor, run)
    except BaseException:
        # Cancelled (request deadline, client gone) or failed: the process must not run on.
        abandoned.set()
        for job in jobs:
            job.kill()
        raise

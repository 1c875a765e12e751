"""Health probes that never queue behind clients: worker status files and the probe listener.

The API port is shared by every client: slow or hostile ones can hold its connections, and
a probe that waits there turns a client problem into a kubelet restart of a healthy pod. So
the supervisor process (``cli``) serves ``/livez``, ``/readyz`` and ``/metrics`` on the
metrics port from its own threads, and answers from what each worker reports:

- each worker writes ``<status dir>/<pid>.json`` (``{"ready", "draining", "at"}``) from its
  event loop once a second and at once when its state changes (``WorkerStatus``);
- ``/readyz`` is 200 when at least one worker reports, every live worker is ready, none is
  draining, and every report is fresher than ``READY_STALE_SECONDS`` (a worker whose event
  loop stalls longer stops taking new traffic);
- ``/livez`` is 200 unless a live worker's report is older than ``LIVE_STALE_SECONDS`` (its
  event loop is wedged: only a restart helps). A worker still starting has no report yet and
  does not count.

The API port keeps its own ``/livez`` and ``/readyz`` (one worker's view) for development and
for the Open Inference Protocol's ``/v2/health/*``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

STATUS_DIR_ENV = "PYNOMALY_WORKER_STATUS_DIR"
"""Set by ``cli`` for its workers: where they write their status files."""

READY_STALE_SECONDS = 5.0
"""A worker report older than this makes the pod not ready."""
LIVE_STALE_SECONDS = 60.0
"""A worker report older than this makes the pod not live."""
HEARTBEAT_SECONDS = 1.0
"""How often a worker rewrites its report."""
PROBE_READ_TIMEOUT_SECONDS = 5.0
"""A probe/scrape connection that does not send its request within this is closed."""

log = logging.getLogger(__name__)


class WorkerStatus:
    """A worker's report to the probe listener (a no-op when ``cli`` did not set a dir)."""

    def __init__(self, directory: str | None = None) -> None:
        folder = directory if directory is not None else os.environ.get(STATUS_DIR_ENV, "")
        self.path = Path(folder) / f"{os.getpid()}.json" if folder else None
        self.ready = False
        self.draining = False

    def write(self) -> None:
        """Write the report now (atomically: the reader never sees half a file)."""
        if self.path is None:
            return
        payload = json.dumps({"ready": self.ready, "draining": self.draining, "at": time.time()})
        partial = self.path.with_suffix(".tmp")
        try:
            partial.write_text(payload)
            partial.replace(self.path)
        except OSError as error:  # the probe listener then reports this worker stale
            log.warning("cannot write worker status %s: %s", self.path, error)

    def remove(self) -> None:
        """Withdraw the report (the worker is exiting)."""
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the probe listener answers."""

    live: bool
    ready: bool
    body: dict[str, Any]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def judge(directory: Path, *, draining: bool = False, now: float | None = None) -> Verdict:
    """Liveness and readiness from the workers' reports in ``directory``."""
    now = time.time() if now is None else now
    workers: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.json")):
        try:
            pid = int(path.stem)
        except ValueError:
            continue
        if not _alive(pid):
            with contextlib.suppress(OSError):
                path.unlink()
            continue
        try:
            report = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # being replaced right now: the next probe sees it
        age = round(now - float(report.get("at", 0)), 3)
        workers.append(
            {
                "pid": pid,
                "ready": bool(report.get("ready")),
                "draining": bool(report.get("draining")),
                "age_seconds": age,
            }
        )
    draining = draining or any(worker["draining"] for worker in workers)
    live = all(worker["age_seconds"] < LIVE_STALE_SECONDS for worker in workers)
    ready = (
        bool(workers)
        and not draining
        and all(
            worker["ready"] and worker["age_seconds"] < READY_STALE_SECONDS for worker in workers
        )
    )
    return Verdict(
        live=live,
        ready=ready,
        body={"live": live, "ready": ready, "draining": draining, "workers": workers},
    )


class ProbeServer:
    """``/livez``, ``/readyz`` and ``/metrics`` on their own port, in the supervisor's threads."""

    def __init__(self, host: str, port: int, status_dir: Path) -> None:
        self.status_dir = status_dir
        self.draining = False
        """Set by the supervisor on SIGTERM (the workers also report it themselves)."""
        probes = self

        class Handler(BaseHTTPRequestHandler):
            timeout = PROBE_READ_TIMEOUT_SECONDS  # socket timeout: half-sent requests end
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    from pynomaly_detector import metrics

                    self._send(
                        200, metrics.exposition(), "text/plain; version=0.0.4; charset=utf-8"
                    )
                    return
                if path in ("/livez", "/readyz"):
                    verdict = judge(probes.status_dir, draining=probes.draining)
                    ok = verdict.live if path == "/livez" else verdict.ready
                    self._send(
                        200 if ok else 503, json.dumps(verdict.body).encode(), "application/json"
                    )
                    return
                self._send(
                    404,
                    b'{"error":"not_found","detail":"try /livez, /readyz or /metrics"}',
                    "application/json",
                )

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="probes", daemon=True
        )

    def start(self) -> ProbeServer:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def watch_sigterm(self) -> None:
        """Fail readiness the moment this process receives SIGTERM, whoever handles it.

        uvicorn's supervisor queues signals and forwards SIGTERM to the workers on its next
        health-check round (up to seconds later on a busy machine). Python writes the number
        of every signal it handles to the wake-up fd, so a thread reading that pipe sees
        SIGTERM at once. (A single-process server runs an event loop that takes the wake-up
        fd over; there the worker reports draining itself.) Call from the main thread.
        """
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)
        signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)

        def watch() -> None:
            while True:
                try:
                    received = os.read(read_end, 64)
                except OSError:
                    return
                if not received:
                    return
                if signal.SIGTERM in received:
                    self.draining = True

        threading.Thread(target=watch, name="sigterm-watch", daemon=True).start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.server.shutdown()
        self.server.server_close()

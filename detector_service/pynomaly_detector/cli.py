"""``pynomaly-detector serve``: uvicorn with the performance guide's server settings.

The parent process prepares Prometheus multiprocess mode (a fresh directory, set in the
environment *before* any worker imports ``prometheus_client``) and a directory for the
workers' status reports, serves ``/livez``, ``/readyz`` and ``/metrics`` on ``metrics_port``
itself (``probes``: a probe or scrape never queues behind clients), and runs uvicorn's
supervisor with the app factory ``pynomaly_detector.api.app:from_environment`` and the
guarded HTTP protocol (``protocol``: read deadline, concurrency counted in requests). Both
directories are removed on exit, SIGTERM included.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from pynomaly_detector import probes

if TYPE_CHECKING:
    from pynomaly_detector.settings import Settings

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _multiprocess_dir() -> Path:
    configured = os.environ.get(MULTIPROC_ENV)
    path = Path(configured) if configured else Path(tempfile.mkdtemp(prefix="pynomaly-metrics-"))
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):  # counters of a previous run must not leak into this one
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(path)
    return path


def _preflight(settings: Settings) -> str | None:
    """What would stop every worker from starting (an unreadable token file), or None."""
    from pynomaly_detector.tokens import TokenFile, TokenFileError

    if settings.api_token_file:
        try:
            TokenFile(settings.api_token_file)
        except TokenFileError as error:
            return str(error)
    return None


def serve(argv: list[str]) -> int:
    """Run the service; command-line options override ``PYNOMALY_*`` settings."""
    parser = argparse.ArgumentParser(prog="pynomaly-detector serve")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--metrics-port", type=int)
    options = parser.parse_args(argv)
    for name in ("host", "port", "workers", "metrics_port"):
        value = getattr(options, name)
        if value is not None:
            os.environ[f"PYNOMALY_{name.upper()}"] = str(value)

    directory = _multiprocess_dir()
    status_dir = Path(tempfile.mkdtemp(prefix="pynomaly-workers-"))
    os.environ[probes.STATUS_DIR_ENV] = str(status_dir)
    from pynomaly_detector import logs
    from pynomaly_detector.protocol import PROTOCOL
    from pynomaly_detector.settings import Settings

    settings = Settings()
    logs.configure(settings.log_level)
    problem = _preflight(settings)
    if problem:
        # Checked once here, before any worker starts: a worker that cannot build the app
        # exits and uvicorn's supervisor starts another, so the pod would spin silently.
        print(f"pynomaly-detector: {problem}", file=sys.stderr, flush=True)
        shutil.rmtree(status_dir, ignore_errors=True)
        if not os.environ.get("PYNOMALY_KEEP_METRICS_DIR"):
            shutil.rmtree(directory, ignore_errors=True)
        return 2
    probe_server = (
        probes.ProbeServer(settings.host, settings.metrics_port, status_dir).start()
        if settings.metrics_port
        else None
    )

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        # uvicorn handles SIGTERM while it serves and raises it again when it is done: this
        # handler then runs instead of the default one, so the clean-up below still happens.
        if probe_server is not None:
            probe_server.draining = True

    signal.signal(signal.SIGTERM, on_sigterm)
    if probe_server is not None:
        probe_server.watch_sigterm()
    import uvicorn

    log_config = dict(logs.LOG_CONFIG)
    log_config["root"] = {"handlers": ["stderr"], "level": settings.log_level}
    try:
        uvicorn.run(
            "pynomaly_detector.api.app:from_environment",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            http=PROTOCOL,
            timeout_keep_alive=settings.timeout_keep_alive,
            # A single process has no supervisor to restart it: recycle only with workers > 1.
            limit_max_requests=(settings.max_requests or None) if settings.workers > 1 else None,
            limit_max_requests_jitter=settings.max_requests_jitter,
            backlog=settings.backlog,
            limit_concurrency=settings.limit_concurrency,
            timeout_graceful_shutdown=settings.graceful_shutdown_seconds,
            log_config=log_config,
            access_log=False,
            server_header=False,
            lifespan="on",
        )
    finally:
        if probe_server is not None:
            probe_server.stop()
        shutil.rmtree(status_dir, ignore_errors=True)
        if not os.environ.get("PYNOMALY_KEEP_METRICS_DIR"):
            shutil.rmtree(directory, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pynomaly-detector`` console script."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(
            "usage: pynomaly-detector serve [--host H] [--port P] [--workers N] [--metrics-port P]"
        )
        return 0 if args else 2
    if args[0] != "serve":
        print(f"unknown command {args[0]!r}; try: pynomaly-detector serve", file=sys.stderr)
        return 2
    return serve(args[1:])


if __name__ == "__main__":
    raise SystemExit(main())

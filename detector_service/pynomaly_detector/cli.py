"""``pynomaly-detector serve``: uvicorn with the performance guide's server settings.

The parent process prepares Prometheus multiprocess mode (a fresh directory, set in the
environment *before* any worker imports ``prometheus_client``), optionally serves
``/metrics`` on ``metrics_port`` itself (so a scrape never queues behind scoring work), and
runs uvicorn's supervisor with the app factory ``pynomaly_detector.api.app:from_environment``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _multiprocess_dir() -> Path:
    configured = os.environ.get(MULTIPROC_ENV)
    path = Path(configured) if configured else Path(tempfile.mkdtemp(prefix="pynomaly-metrics-"))
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):  # counters of a previous run must not leak into this one
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(path)
    return path


def _serve_metrics(host: str, port: int) -> ThreadingHTTPServer:
    from pynomaly_detector import metrics

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/metrics":
                self.send_error(404)
                return
            body = metrics.exposition()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server


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
    from pynomaly_detector import logs
    from pynomaly_detector.settings import Settings

    settings = Settings()
    logs.configure(settings.log_level)
    metrics_server = (
        _serve_metrics(settings.host, settings.metrics_port) if settings.metrics_port else None
    )
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
        if metrics_server is not None:
            metrics_server.shutdown()
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

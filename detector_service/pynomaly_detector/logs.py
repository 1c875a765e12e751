"""Structured JSON logs: one object per line on stderr, shared by the CLI and the workers.

``AccessLog`` writes the per-request lines: the same JSON shape as ``JsonFormatter``, but
formatted with one orjson call and written through a buffer flushed within half a second,
because a logging call per request (record, formatter, locked write and flush) costs more
than serving a cached score.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import io
import logging
import sys
import time
from typing import Any, BinaryIO

import orjson

_STANDARD = frozenset(
    [*vars(logging.makeLogRecord({})), "message", "asctime", "taskName", "color_message"]
)


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", ...extra}``; ``extra=`` fields become keys."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD:
                body[key] = value
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(body, default=str).decode()


class AccessLog:
    """One JSON line per request on stderr (by default), written in batches."""

    def __init__(
        self,
        *,
        logger: str = "pynomaly.access",
        stream: BinaryIO | None = None,
        interval: float = 0.5,
    ) -> None:
        self.logger = logging.getLogger(logger)
        self.interval = interval
        # Not sys.stderr: it is line-buffered, i.e. one write(2) per line.
        self._stream = stream or io.BufferedWriter(io.FileIO(2, "wb", closefd=False), 1 << 16)
        self._pending = False
        self._second = -1
        self._prefix = ""
        atexit.register(self.flush)

    def enabled(self) -> bool:
        """Whether the access logger logs INFO (the service's log level allows it)."""
        return self.logger.isEnabledFor(logging.INFO)

    def write(self, fields: dict[str, Any]) -> None:
        """Buffer one line; a flush is scheduled on the running loop (or done now without)."""
        timestamp = self._timestamp()
        line = {"ts": timestamp, "level": "INFO", "logger": self.logger.name, "message": "request"}
        self._buffer({**line, **fields})

    def request(
        self,
        request_id: str,
        method: str,
        path: str,
        status: int,
        duration_ms: float,
        client: str | None,
    ) -> None:
        """``write`` of one request's fields, without building them as a dict first."""
        self._buffer(
            {
                "ts": self._timestamp(),
                "level": "INFO",
                "logger": self.logger.name,
                "message": "request",
                "request_id": request_id,
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": duration_ms,
                "client": client,
            }
        )

    def _timestamp(self) -> str:
        now = time.time()
        second = int(now)
        if second != self._second:  # strftime once per second, not per request
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((now - second) * 1000):03d}Z"

    def _buffer(self, line: dict[str, Any]) -> None:
        self._stream.write(orjson.dumps(line, default=str) + b"\n")
        if self._pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._pending = True
        loop.call_later(self.interval, self.flush)

    def flush(self) -> None:
        """Write buffered lines out."""
        self._pending = False
        with contextlib.suppress(OSError, ValueError):  # stderr closed at exit: nothing to do
            self._stream.flush()


def configure(level: str) -> None:
    """Route every logger (uvicorn's included) through one JSON handler on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # Our middleware logs requests. uvicorn formats its access line's arguments (client
    # address, quoted path) for every response whenever this logger *has handlers*, its own
    # or by propagation, even when disabled: without either, it skips that work.
    access = logging.getLogger("uvicorn.access")
    access.handlers[:] = []
    access.propagate = False
    access.disabled = True


LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "pynomaly_detector.logs.JsonFormatter"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stderr",
        }
    },
    "root": {"handlers": ["stderr"], "level": "INFO"},
    "loggers": {
        "uvicorn": {"handlers": [], "propagate": True},
        "uvicorn.error": {"handlers": [], "propagate": True},
        "uvicorn.access": {"handlers": [], "propagate": False},
    },
}
"""dictConfig for uvicorn (``log_config=``) so the supervisor and workers log JSON too."""

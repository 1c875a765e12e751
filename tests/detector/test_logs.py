"""The access log writes one JSON object per line, in the shape of the other log lines."""

from __future__ import annotations

import asyncio
import io

import orjson

from pynomaly_detector import logs


async def test_access_lines_are_buffered_then_flushed_as_json() -> None:
    stream = io.BytesIO()
    access = logs.AccessLog(stream=stream, interval=0.01)
    access.write({"path": "/v1/models/a/detect", "status": 200})
    access.write({"path": "/v1/models/b/detect", "status": 404})
    await asyncio.sleep(0.05)
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["status"] for line in lines] == [200, 404]
    assert {"ts", "level", "logger", "message"} <= set(lines[0])
    assert lines[0]["logger"] == "pynomaly.access"
    assert lines[0]["ts"].endswith("Z")


def test_uvicorn_formats_no_access_line_of_its_own() -> None:
    # uvicorn's protocol builds its access line's arguments for every response when
    # ``uvicorn.access`` has handlers (by propagation too), even if the logger is disabled.
    import logging

    names = ("", "uvicorn", "uvicorn.error", "uvicorn.access")
    saved = [
        (logging.getLogger(n), logging.getLogger(n).handlers[:], logging.getLogger(n).propagate)
        for n in names
    ]
    saved_levels = [(logger, logger.level, logger.disabled) for logger, _, _ in saved]
    try:
        logs.configure("INFO")
        access = logging.getLogger("uvicorn.access")
        assert not access.hasHandlers()
        assert not access.isEnabledFor(logging.INFO)
        error = logging.getLogger("uvicorn.error")
        assert error.hasHandlers()  # still logged, as JSON
        assert error.isEnabledFor(logging.INFO)
    finally:
        for logger, handlers, propagate in saved:
            logger.handlers[:] = handlers
            logger.propagate = propagate
        for logger, level, disabled in saved_levels:
            logger.setLevel(level)
            logger.disabled = disabled

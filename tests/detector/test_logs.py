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

"""Where a request's time goes: a py-spy raw profile split into the parts of the hot path.

``detector_bench.py --profile ours`` leaves ``bench/.work/profiles/<server>-<cell>.txt``
(py-spy ``--format raw``: one ``frame;frame;... count`` line per distinct stack). Each sample
is charged to the part of the request named by the frame *nearest the leaf* that matches one
of ``PARTS`` (first match in that order), so the metrics counters called from the cache are
charged to metrics, not to the cache. With ``--us-per-request`` (the server's CPU time per
request from an unprofiled run of the same cell: py-spy slows the server down) each share is
also given in microseconds.

    .venv/bin/python bench/profile_split.py bench/.work/profiles/ours-v1-single-c64.txt \\
        --us-per-request 451
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

PARTS: list[tuple[str, str]] = [
    ("usage counting (warming order)", r"ModelUsage\.touch"),
    ("access log", r"AccessLog\.|pynomaly_detector/logs\.py"),
    ("prometheus metrics", r"prometheus_client|Metrics\.__call__|pynomaly_detector/metrics\.py"),
    ("p-values", r"calibration\.py"),
    ("drift sketch", r"scoring/drift\.py|monitoring\.py"),
    ("shadow (challenger)", r"shadow\.py"),
    ("forest (model call)", r"sklearn|detectors/forest\.py|detectors/fitted\.py|pyod"),
    ("micro-batcher", r"batching\.py"),
    ("L1 cache lookup + row keys", r"scorer\.py|caching/memory\.py|row_bytes"),
    ("row validation (list -> matrix)", r"scoring/rows\.py"),
    ("body read (bounded) + JSON parse", r"read_bounded|loads_object|json_object|requests\.py"),
    ("V2 tensor parse + response", r"api/oip\.py|scoring/tensors\.py"),
    ("response build (orjson, headers)", r"json_response|responses\.py"),
    ("auth", r"api/auth\.py|tokens\.py"),
    ("route + model lookup", r"routes/scoring\.py|dataplane\.py|api/deps\.py|registry/"),
    ("scoring fast path dispatch", r"fastpath\.py"),
    ("our middleware (headers, gzip check, log, body limit, deadline)", r"api/middleware\.py"),
    ("starlette/fastapi stack", r"starlette|fastapi"),
    ("uvicorn (httptools parse, transport write)", r"uvicorn|httptools|protocol\.py"),
    ("event loop", r"asyncio|uvloop|Runner\.run|<module>|cli\.py"),
]


def split(path: Path) -> tuple[Counter[str], int]:
    """Samples per part, and the total."""
    patterns = [(part, re.compile(pattern)) for part, pattern in PARTS]
    parts: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")[1:]  # the first is the process
        part = "other"
        for frame in reversed(frames):
            found = next((name for name, pattern in patterns if pattern.search(frame)), None)
            if found is not None:
                part = found
                break
        parts[part if frames else "no Python frame"] += count
    return parts, total


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("profile", type=Path)
    parser.add_argument("--us-per-request", type=float, default=None)
    options = parser.parse_args()
    parts, total = split(options.profile)
    print(f"{options.profile.name}: {total} samples")
    for part, count in parts.most_common():
        share = count / total
        us = f" {share * options.us_per_request:6.0f} us" if options.us_per_request else ""
        print(f"{share * 100:5.1f}%{us}  {part}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

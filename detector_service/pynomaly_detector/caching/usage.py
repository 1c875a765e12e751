"""Which models this pod's workers used lately: the order in which a new worker warms its cache.

A worker recycled by ``max_requests`` (or restarted after a crash) starts with an empty model
cache; without this its first requests would each pay a cold load. Every worker counts the
requests per model name in memory (a dict increment on the hot path) and, once a heartbeat,
adds those counts to one file shared by the pod's workers (``<worker status dir>/model-usage``,
under ``flock``, replaced atomically). A starting worker reads the file and loads the most used
models before it accepts its first request.

Counts decay (halved each ``HALF_LIFE_SECONDS``), so yesterday's busy model does not outrank
today's; names unused for ``FORGET_SECONDS`` are dropped. Without a status directory (one
process, tests) nothing is shared and the ranking is this process's own.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

Entry = tuple[float, float, float]
"""(decayed count, time it was decayed to, time of the last use), times from ``time.time()``."""

FILE_NAME = "model-usage"
"""In the worker status directory; not ``*.json``, which the probe listener reads as workers."""

HALF_LIFE_SECONDS = 600.0
FORGET_SECONDS = 3600.0


class ModelUsage:
    """Per-name request counts of this process, merged into the pod's shared file."""

    def __init__(self, directory: str | None) -> None:
        self.path = Path(directory) / FILE_NAME if directory else None
        self._pending: dict[str, int] = {}

    def touch(self, name: str) -> None:
        """Count one use of ``name`` (the hot path: no I/O)."""
        self._pending[name] = self._pending.get(name, 0) + 1

    def save(self) -> None:
        """Add the counts since the last save to the shared file (no-op without a file)."""
        if self.path is None or not self._pending:
            return
        pending, self._pending = self._pending, {}
        now = time.time()
        try:
            with self._locked():
                entries = _merged(_decayed(self._read(), now), pending, now)
                partial = self.path.with_name(f".{FILE_NAME}.{os.getpid()}")
                partial.write_text(json.dumps({name: list(v) for name, v in entries.items()}))
                partial.replace(self.path)
        except OSError as error:  # a full or read-only disk costs warm starts, not requests
            log.warning("could not record model usage in %s: %s", self.path, error)

    def ranked(self) -> list[str]:
        """Names, most used first: the shared file plus this process's unsaved counts."""
        now = time.time()
        entries = _merged(_decayed(self._read(), now), self._pending, now)
        return sorted(entries, key=lambda name: (-entries[name][0], name))

    def forget(self, name: str) -> None:
        """``name`` was deleted: stop counting it here (the file drops it once unused)."""
        self._pending.pop(name, None)

    def _read(self) -> dict[str, Entry]:
        if self.path is None:
            return {}
        try:
            raw = json.loads(self.path.read_text())
            return {str(name): (float(v[0]), float(v[1]), float(v[2])) for name, v in raw.items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, TypeError, IndexError, AttributeError) as error:
            log.warning("ignoring unreadable model usage file %s: %s", self.path, error)
            return {}

    @contextlib.contextmanager
    def _locked(self) -> Iterator[IO[str]]:
        assert self.path is not None  # only called when there is a file
        with open(self.path.with_name(f".{FILE_NAME}.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield lock
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _decayed(entries: dict[str, Entry], now: float) -> dict[str, Entry]:
    """Scores decayed to ``now``; names unused for ``FORGET_SECONDS`` dropped."""
    kept: dict[str, Entry] = {}
    for name, (score, as_of, used) in entries.items():
        if now - used < FORGET_SECONDS:
            kept[name] = (score * 0.5 ** (max(0.0, now - as_of) / HALF_LIFE_SECONDS), now, used)
    return kept


def _merged(entries: dict[str, Entry], counts: dict[str, int], now: float) -> dict[str, Entry]:
    """``entries`` (decayed to ``now``) plus fresh ``counts`` used at ``now``."""
    merged = dict(entries)
    for name, count in counts.items():
        score = merged[name][0] if name in merged else 0.0
        merged[name] = (score + count, now, now)
    return merged

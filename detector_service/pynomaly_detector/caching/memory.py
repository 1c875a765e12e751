"""An in-process LRU cache with a time-to-live, used for L1 (rows, models) and L3 (lookups).

Single-threaded by design: it is only touched from the event loop, so it needs no lock.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

from pynomaly_detector import metrics

K = TypeVar("K")
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    """LRU eviction beyond ``max_size`` entries; entries older than ``ttl`` seconds miss.

    With ``sliding=True`` a hit renews the entry's lifetime (models: idle ones expire).
    ``ttl <= 0`` keeps entries until evicted; ``max_size == 0`` disables the cache.
    """

    def __init__(self, *, max_size: int, ttl: float, level: str, sliding: bool = False) -> None:
        self.max_size = max_size
        self.ttl = ttl
        self.sliding = sliding
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._hits = metrics.CACHE_HITS.labels(level)
        self._misses = metrics.CACHE_MISSES.labels(level)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        """The cached value, or ``None`` (counted as a miss)."""
        entry = self._entries.get(key)
        if entry is None:
            self._misses.inc()
            return None
        now = time.monotonic()
        if self.ttl > 0 and entry[0] <= now:
            del self._entries[key]
            self._misses.inc()
            return None
        self._entries.move_to_end(key)
        if self.sliding and self.ttl > 0:
            self._entries[key] = (now + self.ttl, entry[1])
        self._hits.inc()
        return entry[1]

    def put(self, key: K, value: V) -> None:
        """Store ``value``, evicting the least recently used entries beyond ``max_size``."""
        if self.max_size <= 0:
            return
        expires = time.monotonic() + self.ttl if self.ttl > 0 else float("inf")
        self._entries[key] = (expires, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_size:
            self._entries.popitem(last=False)

    def pop(self, key: K) -> None:
        """Forget ``key``."""
        self._entries.pop(key, None)

    def discard_where(self, predicate: Callable[[K], bool]) -> None:
        """Forget every key for which ``predicate(key)`` is true."""
        for key in [key for key in self._entries if predicate(key)]:
            del self._entries[key]

    def clear(self) -> None:
        """Forget everything."""
        self._entries.clear()

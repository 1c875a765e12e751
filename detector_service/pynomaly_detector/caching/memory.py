"""An in-process LRU cache with a time-to-live, used for L1 (rows, models) and L3 (lookups).

Single-threaded by design: it is only touched from the event loop, so it needs no lock.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Generic, TypeVar

from pynomaly_detector import metrics

K = TypeVar("K")
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    """LRU eviction beyond ``max_size`` entries; entries older than ``ttl`` seconds miss.

    With ``sliding=True`` a hit renews the entry's lifetime (models: idle ones expire).
    ``ttl <= 0`` keeps entries until evicted; ``max_size == 0`` disables the cache.
    """

    def __init__(
        self,
        *,
        max_size: int,
        ttl: float,
        level: str,
        sliding: bool = False,
        keep: Callable[[K], bool] | None = None,
    ) -> None:
        self.max_size = max_size
        self.keep = keep
        """Entries for which ``keep(key)`` is true never expire and are evicted last."""
        self.ttl = ttl
        self.sliding = sliding
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._hits = metrics.tally(metrics.CACHE_HITS.labels(level))
        self._misses = metrics.tally(metrics.CACHE_MISSES.labels(level))

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        """The cached value, or ``None`` (counted as a miss)."""
        entry = self._entries.get(key)
        if entry is None:
            self._misses.inc()
            return None
        now = time.monotonic()
        if self.ttl > 0 and entry[0] <= now and not (self.keep is not None and self.keep(key)):
            del self._entries[key]
            self._misses.inc()
            return None
        self._entries.move_to_end(key)
        if self.sliding and self.ttl > 0:
            self._entries[key] = (now + self.ttl, entry[1])
        self._hits.inc()
        return entry[1]

    def get_many(self, keys: Sequence[K]) -> list[V | None]:
        """``get`` of each key, with the hit and miss counters updated once per call."""
        entries = self._entries
        now = time.monotonic()
        renew = self.sliding and self.ttl > 0
        found: list[V | None] = []
        hits = 0
        for key in keys:
            entry = entries.get(key)
            if entry is not None and self.ttl > 0 and entry[0] <= now:
                del entries[key]
                entry = None
            if entry is None:
                found.append(None)
                continue
            entries.move_to_end(key)
            if renew:
                entries[key] = (now + self.ttl, entry[1])
            hits += 1
            found.append(entry[1])
        # Tallied (folded into the shared counters every 0.25 s); still one update per call.
        if hits:
            self._hits.inc(hits)
        if hits < len(found):
            self._misses.inc(len(found) - hits)
        return found

    def put_many(self, items: Iterable[tuple[K, V]]) -> None:
        """``put`` of each (key, value), evicting once at the end."""
        if self.max_size <= 0:
            return
        expires = time.monotonic() + self.ttl if self.ttl > 0 else float("inf")
        entries = self._entries
        for key, value in items:
            entries[key] = (expires, value)
            entries.move_to_end(key)
        self._evict()

    def put(self, key: K, value: V) -> None:
        """Store ``value``, evicting the least recently used entries beyond ``max_size``."""
        if self.max_size <= 0:
            return
        expires = time.monotonic() + self.ttl if self.ttl > 0 else float("inf")
        entries = self._entries
        entries[key] = (expires, value)
        entries.move_to_end(key)
        if len(entries) > self.max_size:
            self._evict()

    def _evict(self) -> None:
        entries = self._entries
        spared = 0
        while len(entries) > self.max_size and spared < len(entries):
            key, entry = entries.popitem(last=False)
            if self.keep is not None and self.keep(key):
                entries[key] = entry  # kept: back in as most recent, evict the next one
                spared += 1

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

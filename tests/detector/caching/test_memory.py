"""L1/L3: LRU eviction, TTL expiry, sliding renewal, hit/miss counting."""

from __future__ import annotations

import time

from pynomaly_detector import metrics
from pynomaly_detector.caching.memory import TTLCache


def test_lru_eviction() -> None:
    cache: TTLCache[str, int] = TTLCache(max_size=2, ttl=60, level="test")
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now the most recent
    cache.put("c", 3)
    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c")) == (1, 3)


def test_ttl_expiry_and_sliding() -> None:
    fixed: TTLCache[str, int] = TTLCache(max_size=10, ttl=0.05, level="test")
    sliding: TTLCache[str, int] = TTLCache(max_size=10, ttl=0.05, level="test", sliding=True)
    fixed.put("k", 1)
    sliding.put("k", 1)
    for _ in range(4):
        time.sleep(0.02)
        assert sliding.get("k") == 1
    assert fixed.get("k") is None


def test_disabled_cache_stores_nothing() -> None:
    cache: TTLCache[str, int] = TTLCache(max_size=0, ttl=60, level="test")
    cache.put("a", 1)
    assert cache.get("a") is None


def test_hits_and_misses_are_counted_by_level() -> None:
    hits = metrics.CACHE_HITS.labels("counted")
    misses = metrics.CACHE_MISSES.labels("counted")
    metrics.flush()  # counts are tallied and folded into the children (metrics.FLUSH_SECONDS)
    before = (hits._value.get(), misses._value.get())
    cache: TTLCache[str, int] = TTLCache(max_size=10, ttl=60, level="counted")
    cache.get("x")
    cache.put("x", 1)
    cache.get("x")
    metrics.flush()
    assert (hits._value.get() - before[0], misses._value.get() - before[1]) == (1, 1)


def test_discard_where() -> None:
    cache: TTLCache[tuple[str, int], int] = TTLCache(max_size=10, ttl=60, level="test")
    cache.put(("a", 1), 1)
    cache.put(("b", 1), 2)
    cache.discard_where(lambda key: key[0] == "a")
    assert cache.get(("a", 1)) is None
    assert cache.get(("b", 1)) == 2


def test_kept_entries_are_evicted_last_and_never_expire() -> None:
    """The declared model stays loaded however many other models pass through the cache."""
    cache: TTLCache[str, int] = TTLCache(
        max_size=2, ttl=0.05, level="l1_models", sliding=True, keep=lambda key: key == "declared"
    )
    cache.put("declared", 0)
    for index in range(5):
        cache.put(f"other-{index}", index)
    assert cache.get("declared") == 0
    assert len(cache) == 2
    time.sleep(0.1)
    assert cache.get("declared") == 0
    assert cache.get("other-4") is None  # expired

"""Prometheus metrics of the detector service, correct with several uvicorn workers.

``cli`` sets ``PROMETHEUS_MULTIPROC_DIR`` before any worker imports this module, so every
worker writes its samples to memory-mapped files and ``/metrics`` aggregates all workers
(gauges of dead workers are dropped at scrape time). In one process (tests, ``workers=1``
without the variable) the default registry is used.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

import psutil
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

REQUESTS = Counter(
    "pynomaly_requests_total",
    "HTTP requests by method, route template and status code.",
    ["method", "endpoint", "status"],
)
REQUEST_DURATION = Histogram(
    "pynomaly_request_duration_seconds",
    "HTTP request duration by method and route template.",
    ["method", "endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
ACTIVE_CONNECTIONS = Gauge(
    "pynomaly_active_connections",
    "HTTP requests being served right now, summed over workers.",
    multiprocess_mode="livesum",
)
MEMORY_USAGE = Gauge(
    "pynomaly_memory_usage_bytes",
    "Resident memory of the worker processes, summed over workers.",
    multiprocess_mode="livesum",
)
CACHE_HITS = Counter("pynomaly_cache_hits_total", "Cache hits by level (l1, l2, l3).", ["level"])
CACHE_MISSES = Counter(
    "pynomaly_cache_misses_total", "Cache misses by level (l1, l2, l3).", ["level"]
)
CACHE_ERRORS = Counter(
    "pynomaly_cache_errors_total",
    "Cache backend failures (the level was bypassed), by level.",
    ["level"],
)
BATCH_SIZE = Histogram(
    "pynomaly_batch_size",
    "Rows per model call made by the micro-batcher.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096),
)
BATCH_REQUESTS = Histogram(
    "pynomaly_batch_requests",
    "Requests merged into one model call by the micro-batcher.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
MODEL_LOADS = Counter(
    "pynomaly_model_loads_total",
    "Models loaded into a worker, by source (store, fit).",
    ["source"],
)
ROWS_SCORED = Counter("pynomaly_rows_scored_total", "Rows scored, by model.", ["model"])
ANOMALY_LOG = Counter(
    "pynomaly_anomaly_log_records_total",
    "Anomaly log records by outcome (written, dropped, failed).",
    ["outcome"],
)
RATE_LIMITED = Counter("pynomaly_rate_limited_total", "Requests refused with 429.")
STORE_ERRORS = Counter(
    "pynomaly_store_errors_total", "Model store failures by operation.", ["operation"]
)

_PID_FILE = re.compile(r"_(\d+)\.db$")


def registry() -> CollectorRegistry:
    """The registry to expose: all workers' files in multiprocess mode, else the default."""
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return REGISTRY
    _forget_dead_workers(Path(directory))
    collecting = CollectorRegistry()
    multiprocess.MultiProcessCollector(collecting)  # type: ignore[no-untyped-call]  # unannotated in prometheus_client
    return collecting


def exposition() -> bytes:
    """The text exposition of every metric (after refreshing this worker's memory gauge)."""
    sample_memory()
    return generate_latest(registry())


def sample_memory() -> None:
    """Record this process's resident memory."""
    MEMORY_USAGE.set(psutil.Process().memory_info().rss)


def _forget_dead_workers(directory: Path) -> None:
    # uvicorn recycles workers (max_requests); their live gauges must stop counting.
    for path in directory.glob("gauge_live*.db"):
        match = _PID_FILE.search(path.name)
        if match and not psutil.pid_exists(int(match.group(1))):
            with contextlib.suppress(OSError):
                # prometheus_client leaves mark_process_dead unannotated
                multiprocess.mark_process_dead(int(match.group(1)), str(directory))  # type: ignore[no-untyped-call]

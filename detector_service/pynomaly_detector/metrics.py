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
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

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

# Operations (alert rules, dashboard): what a model is expected to flag, what it flags, and
# the state of the parts the rules watch. Per-model gauges keep the highest value over live
# workers, so a worker that has not loaded the model yet does not hide it.
ANOMALIES = Counter(
    "pynomaly_anomalies_total", "Rows scored above the model's threshold, by model.", ["model"]
)
MODEL_CONTAMINATION = Gauge(
    "pynomaly_model_contamination",
    "Contamination the loaded model was fitted with: the expected share of anomalies.",
    ["model"],
    multiprocess_mode="livemax",
)
MODEL_VERSION = Gauge(
    "pynomaly_model_version",
    "Newest version of the model loaded in a live worker.",
    ["model"],
    multiprocess_mode="livemax",
)
MODEL_THRESHOLD = Gauge(
    "pynomaly_model_threshold",
    "Decision threshold of the model version loaded (rows scoring above it are anomalies).",
    ["model", "version"],
    multiprocess_mode="livemax",
)
DECLARED_MODEL_LOADED = Gauge(
    "pynomaly_declared_model_loaded",
    "0 while a live worker has not loaded the declared model (PYNOMALY_MODEL_NAME), else 1.",
    multiprocess_mode="livemin",
)
L2_CIRCUIT_OPEN = Gauge(
    "pynomaly_l2_circuit_open",
    "1 while a worker bypasses Redis (L2) after a failure, until a call succeeds again.",
    multiprocess_mode="livemax",
)
DB_POOL_CONNECTIONS = Gauge(
    "pynomaly_db_pool_connections",
    "Database pool connections by state (in_use, idle), summed over workers.",
    ["state"],
    multiprocess_mode="livesum",
)
DB_POOL_MAX_CONNECTIONS = Gauge(
    "pynomaly_db_pool_max_connections",
    "Most connections the database pools may open, summed over workers.",
    multiprocess_mode="livesum",
)

_samplers: list[weakref.WeakMethod[Callable[[], None]]] = []


def add_sampler(method: Callable[[], None]) -> None:
    """Call the bound ``method`` at every sample (every 10 s and at each scrape in-process).

    Held weakly: a sampler disappears with its object (tests create many stores).
    """
    _samplers.append(weakref.WeakMethod(method))


class _Version(Protocol):
    # registry.versions.ModelVersion (frozen), without importing the registry into this leaf.
    @property
    def name(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def contamination(self) -> float: ...
    @property
    def threshold(self) -> float: ...


def model_loaded(meta: _Version) -> None:
    """Record a model version a worker has just loaded (fitted or read from the store)."""
    ANOMALIES.labels(meta.name)  # exported as 0 from the start: "no anomalies" is a rate too
    MODEL_VERSION.labels(meta.name).set(meta.version)
    MODEL_CONTAMINATION.labels(meta.name).set(meta.contamination)
    MODEL_THRESHOLD.labels(meta.name, str(meta.version)).set(meta.threshold)


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
    """Record this process's resident memory and run the registered samplers."""
    MEMORY_USAGE.set(psutil.Process().memory_info().rss)
    for reference in list(_samplers):
        sampler = reference()
        if sampler is None:
            _samplers.remove(reference)
        else:
            sampler()


def _forget_dead_workers(directory: Path) -> None:
    # uvicorn recycles workers (max_requests); their live gauges must stop counting.
    for path in directory.glob("gauge_live*.db"):
        match = _PID_FILE.search(path.name)
        if match and not psutil.pid_exists(int(match.group(1))):
            with contextlib.suppress(OSError):
                # prometheus_client leaves mark_process_dead unannotated
                multiprocess.mark_process_dead(int(match.group(1)), str(directory))  # type: ignore[no-untyped-call]

"""Prometheus metrics of the detector service, correct with several uvicorn workers.

``cli`` sets ``PROMETHEUS_MULTIPROC_DIR`` before any worker imports this module, so every
worker writes its samples to memory-mapped files and ``/metrics`` aggregates all workers
(gauges of dead workers are dropped at scrape time). In one process (tests, ``workers=1``
without the variable) the default registry is used.

The per-request series (request count and duration, in-flight requests, L1 cache hits,
rows scored, batch sizes) are *tallied*: counted in plain per-worker numbers on the event
loop and folded into the prometheus_client values (locked writes into memory-mapped files
with several workers) at most ``FLUSH_SECONDS`` after the first write, when this worker
serves ``/metrics``, and at shutdown. ``flush()`` folds them now (tests call it before
reading a value directly). A scrape may therefore lag a worker's own counting by up to
``FLUSH_SECONDS``.
"""

from __future__ import annotations

import asyncio
import atexit
import bisect
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

FLUSH_SECONDS = 0.25
"""Most time a tallied count waits before prometheus_client sees it (``flush``)."""

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
    "Models loaded into a worker, by source (store: on a request's path; warmup: ahead of "
    "requests; fit).",
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
FEEDBACK_LABELS = Counter(
    "pynomaly_feedback_labels_total",
    "Feedback labels received by this process, by model and label (true_positive, "
    "false_positive: labelled alerts; false_negative, true_negative: unflagged rows).",
    ["model", "label"],
)
ALERT_PRECISION = Gauge(
    "pynomaly_alert_precision",
    "Share of labelled alerts labelled true_positive, over every label the store holds for "
    "the model (updated after each feedback request).",
    ["model"],
    multiprocess_mode="mostrecent",
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

# Drift of the served model (``scoring.monitoring``): with Redis every worker of every replica
# exports the same figure over all of them (take max() across pods); without Redis each
# worker's own, and the gauge keeps the highest over live workers.
DRIFT_SCORE = Gauge(
    "pynomaly_model_drift_score",
    "PSI of recent scores against the model's reference scores (calibration or training).",
    ["model"],
    multiprocess_mode="livemax",
)
FEATURE_DRIFT = Gauge(
    "pynomaly_model_feature_drift",
    "PSI of a tracked feature's recent values against its training distribution.",
    ["model", "feature"],
    multiprocess_mode="livemax",
)
LIVE_ALERT_RATE = Gauge(
    "pynomaly_model_live_alert_rate",
    "Share of recent rows flagged as anomalies (the window the drift figures cover).",
    ["model"],
    multiprocess_mode="livemax",
)
DRIFT_ROWS = Gauge(
    "pynomaly_model_drift_rows",
    "Recent rows the drift figures are computed from.",
    ["model"],
    multiprocess_mode="livemax",
)

# The challenger scored in shadow (``scoring.shadow``), pooled like the drift figures.
CHALLENGER_AGREEMENT = Gauge(
    "pynomaly_challenger_agreement",
    "Spearman rank correlation of challenger and champion scores on the same rows.",
    ["model"],
    multiprocess_mode="livemax",
)
CHALLENGER_FLAGGED_OVERLAP = Gauge(
    "pynomaly_challenger_flagged_overlap",
    "Rows both models flag / rows either flags, over the compared rows.",
    ["model"],
    multiprocess_mode="livemax",
)
CHALLENGER_ALERT_RATE = Gauge(
    "pynomaly_challenger_alert_rate",
    "Share of the compared rows each model flags, by role (champion, challenger).",
    ["model", "role"],
    multiprocess_mode="livemax",
)
CHALLENGER_ROWS = Gauge(
    "pynomaly_challenger_compared_rows",
    "Rows scored by both champion and challenger.",
    ["model"],
    multiprocess_mode="livemax",
)


class Tally:
    """A counter or gauge child counted in a plain number; ``flush`` adds it to the child.

    Event-loop thread only, like ``flush`` (no lock): ``inc`` is a float addition, not a
    locked shared-memory write.
    """

    __slots__ = ("child", "pending")

    def __init__(self, child: Counter | Gauge) -> None:
        self.child = child
        self.pending = 0.0

    def inc(self, amount: float = 1.0) -> None:
        """Count ``amount`` (negative only for gauges, as ``Gauge.dec``)."""
        self.pending += amount
        if not _flushing.scheduled:
            _flushing.schedule()

    def dec(self, amount: float = 1.0) -> None:
        """``inc(-amount)``: gauges only."""
        self.inc(-amount)

    def fold(self) -> None:
        """Hand the pending amount to prometheus_client."""
        amount, self.pending = self.pending, 0.0
        if amount:
            self.child.inc(amount)


class TallyHistogram:
    """A histogram child counted in plain per-bucket integers and a sum; ``flush`` folds them.

    Folding writes exactly what ``Histogram.observe`` of each value would have written (the
    sum, and one count in the first bucket whose bound is >= the value), through the
    child's ``_sum``/``_buckets`` values: prometheus_client has no public bulk update.
    """

    __slots__ = ("bounds", "child", "counts", "total")

    def __init__(self, child: Histogram) -> None:
        self.child = child
        self.bounds = list(child._upper_bounds)
        self.counts = [0] * len(self.bounds)
        self.total = 0.0

    def observe(self, amount: float) -> None:
        """Record one observation."""
        self.counts[bisect.bisect_left(self.bounds, amount)] += 1
        self.total += amount
        if not _flushing.scheduled:
            _flushing.schedule()

    def fold(self) -> None:
        """Hand the pending observations to prometheus_client."""
        counts = self.counts
        if not any(counts):
            return
        self.counts = [0] * len(counts)
        total, self.total = self.total, 0.0
        self.child._sum.inc(total)
        for index, count in enumerate(counts):
            if count:
                self.child._buckets[index].inc(count)


class _Flushing:
    """Whether a fold is scheduled on the running loop (one timer for every tally)."""

    def __init__(self) -> None:
        self.scheduled = False
        self.tallies: dict[int, Tally | TallyHistogram] = {}

    def schedule(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (a script, a sync test): count at once
            flush()
            return
        self.scheduled = True
        loop.call_later(FLUSH_SECONDS, flush)


_flushing = _Flushing()


def tally(child: Counter | Gauge) -> Tally:
    """The one ``Tally`` of a counter or gauge child (labelled, or a metric without labels)."""
    found = _flushing.tallies.get(id(child))
    if found is None:
        found = _flushing.tallies[id(child)] = Tally(child)
    assert isinstance(found, Tally)
    return found


def tally_histogram(child: Histogram) -> TallyHistogram:
    """The one ``TallyHistogram`` of a histogram child."""
    found = _flushing.tallies.get(id(child))
    if found is None:
        found = _flushing.tallies[id(child)] = TallyHistogram(child)
    assert isinstance(found, TallyHistogram)
    return found


def flush() -> None:
    """Fold every tally into prometheus_client now (scrape, shutdown, tests, the timer).

    Call it from the thread that counts (the event loop's): tallies have no lock.

    Also resets the timer flag, so a loop that closed with the timer pending (a test's loop)
    does not keep later counts from being scheduled.
    """
    _flushing.scheduled = False
    for counted in list(_flushing.tallies.values()):
        counted.fold()


def _flush_at_exit() -> None:
    with contextlib.suppress(Exception):  # the multiprocess directory may be gone by then
        flush()


atexit.register(_flush_at_exit)


ACTIVE = tally(ACTIVE_CONNECTIONS)
BATCHED_ROWS = tally_histogram(BATCH_SIZE)
BATCHED_REQUESTS = tally_histogram(BATCH_REQUESTS)

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
    """The text exposition of every metric (after refreshing this worker's memory gauge).

    Thread-safe, tallies excepted: a worker serving ``/metrics`` calls ``flush()`` on its
    event loop first (the tallies are not locked), then this in a thread.
    """
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

"""Tallied metrics: counted in plain numbers, folded into prometheus_client every 0.25 s.

What a user relies on: a scrape never lags a worker's counting by more than
``metrics.FLUSH_SECONDS``, the worker serving ``/metrics`` shows its own counts at once,
nothing counted is lost at shutdown, and folded histograms equal observing each value.
"""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from pynomaly_detector import metrics
from tests.detector.conftest import metric_value, service, training_rows, wait_until

_REGISTRY = CollectorRegistry()
_COUNTER = Counter("tally_test_total", "test", ["case"], registry=_REGISTRY)
_GAUGE = Gauge("tally_test_gauge", "test", ["case"], registry=_REGISTRY)
_HISTOGRAM = Histogram(
    "tally_test_seconds", "test", ["case"], buckets=(0.1, 1, 10), registry=_REGISTRY
)


async def test_counts_reach_prometheus_within_the_flush_interval() -> None:
    metrics.flush()
    child = _COUNTER.labels("interval")
    counted = metrics.tally(child)
    started = time.monotonic()
    counted.inc()
    counted.inc(2)
    assert child._value.get() == 0  # tallied, not yet written
    await wait_until(lambda: _equals(child._value.get(), 3), within=5.0, interval=0.01)
    elapsed = time.monotonic() - started
    # The timer is armed by the first write and fires FLUSH_SECONDS later, not before.
    assert elapsed >= metrics.FLUSH_SECONDS * 0.9, elapsed


async def _equals(value: float, expected: float) -> bool:
    return value == expected


def test_flush_folds_counters_and_gauges_at_once() -> None:
    counter, gauge = _COUNTER.labels("now"), _GAUGE.labels("now")
    metrics.flush()
    metrics.tally(counter).inc(5)
    active = metrics.tally(gauge)
    active.inc()
    active.inc()
    active.dec()
    metrics.flush()
    assert (counter._value.get(), gauge._value.get()) == (5, 1)
    assert metrics.tally(counter) is metrics.tally(counter)  # one tally per child


def test_folded_histogram_equals_observing_each_value() -> None:
    observed, tallied = _HISTOGRAM.labels("observed"), _HISTOGRAM.labels("tallied")
    values = [0.0, 0.05, 0.1, 0.100001, 1, 5, 10, 11, 1e9, 0.1]  # on, below, above each bound
    for value in values:
        observed.observe(value)
    counted = metrics.tally_histogram(tallied)
    for value in values:
        counted.observe(value)
    metrics.flush()

    def samples(case: str) -> list[tuple[str, str, float]]:
        return sorted(
            (sample.name, sample.labels.get("le", ""), sample.value)
            for metric in _REGISTRY.collect()
            if metric.name == "tally_test_seconds"
            for sample in metric.samples
            if sample.labels.get("case") == case and not sample.name.endswith("_created")
        )

    assert samples("tallied") == samples("observed")
    assert metric_value_of(samples("tallied"), "tally_test_seconds_count") == len(values)


def metric_value_of(samples: list[tuple[str, str, float]], name: str) -> float:
    return next(value for sample, _, value in samples if sample == name)


async def test_scrape_shows_this_workers_counts_at_once_and_shutdown_keeps_the_rest(
    tmp_path: Path,
) -> None:
    labels = {"endpoint": "/v1/models/{name}/detect", "method": "POST", "status": "200"}
    child = metrics.REQUESTS.labels("POST", labels["endpoint"], "200")
    async with service(tmp_path) as client:
        await client.put("/v1/models/m", json={"algorithm": "ECOD", "instances": training_rows()})
        before = metric_value(
            (await client.get("/metrics")).text, "pynomaly_requests_total", labels
        )
        for _ in range(3):
            response = await client.post("/v1/models/m/detect", json={"instances": [[0, 0, 0]]})
            assert response.status_code == 200
        # No wait: the worker that serves the scrape folds its tallies first.
        text = (await client.get("/metrics")).text
        assert metric_value(text, "pynomaly_requests_total", labels) == before + 3
        for _ in range(2):
            await client.post("/v1/models/m/detect", json={"instances": [[0, 0, 0]]})
    # The lifespan's shutdown folds what is left.
    assert child._value.get() == before + 5

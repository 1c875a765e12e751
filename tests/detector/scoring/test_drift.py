"""Drift figures of real fitted detectors: shifted traffic raises them, normal traffic does not.

The false-alarm rate is measured over repeated draws of normal traffic (fresh seeds, the
model fitted once per algorithm) and asserted bounded; the detection rate over as many
draws of shifted traffic. Threshold 0.1 is the usual "moderate shift" reading of a PSI.
"""

from __future__ import annotations

import numpy as np
import pytest

from pynomaly_detector.detectors import fitted, reference
from pynomaly_detector.scoring import drift

pytestmark = pytest.mark.drift

THRESHOLD = 0.1
RUNS = 40
ROWS = 2000
FEATURES = ["amount", "hour", "items"]


def _fitted(algorithm: str) -> fitted.FittedDetector:
    values = np.random.default_rng(0).normal(size=(3000, 3))
    detector = fitted.fit(algorithm, values, parameters={}, contamination=0.01)
    reference.attach(detector, values)
    return detector


def _figures(detector: fitted.FittedDetector, rows: np.ndarray) -> drift.Figures:
    scores, source = reference.score_sample(detector)
    made = drift.reference_of(scores, reference.feature_bins(detector), FEATURES, source=source)
    assert made is not None
    sketch = drift.Sketch(made, window=100_000)
    values = detector.score(rows)
    for start in range(0, len(rows), 37):  # request-sized pieces, as the hot path sees them
        piece = slice(start, start + 37)
        sketch.observe(values[piece], rows[piece], int((values[piece] > detector.threshold).sum()))
    sketch.fold()
    counts, total, flagged = drift.merge(made.width, [sketch.snapshot()])
    return drift.figures(made, counts, total, flagged, min_rows=500, scope="worker")


@pytest.mark.parametrize("algorithm", ["IForest", "ECOD", "HBOS"])
def test_normal_traffic_rarely_alarms_and_shifted_traffic_does(algorithm: str) -> None:
    detector = _fitted(algorithm)
    false_alarms = detected_score = detected_feature = 0
    for run in range(RUNS):
        rng = np.random.default_rng(1000 + run)
        normal = _figures(detector, rng.normal(size=(ROWS, 3)))
        assert normal.rows == ROWS
        assert normal.score is not None
        worst = max(normal.score, *normal.features.values())
        false_alarms += worst > THRESHOLD
        shifted_rows = rng.normal(size=(ROWS, 3))
        shifted_rows[:, 0] += 1.0  # one feature moves by one standard deviation
        shifted = _figures(detector, shifted_rows)
        detected_feature += shifted.features["amount"] > THRESHOLD
        assert max(shifted.features["hour"], shifted.features["items"]) < THRESHOLD
        everything = _figures(detector, rng.normal(size=(ROWS, 3)) * 1.5 + 0.5)
        detected_score += everything.score is not None and everything.score > THRESHOLD
    print(f"{algorithm}: false alarms {false_alarms}/{RUNS}, detected {detected_feature}/{RUNS}")
    assert false_alarms <= 1, f"{false_alarms}/{RUNS} normal runs over {THRESHOLD}"
    assert detected_feature == RUNS
    assert detected_score >= RUNS - 1


def test_alert_rate_is_the_flagged_share_and_small_windows_report_no_score() -> None:
    detector = _fitted("IForest")
    rows = np.random.default_rng(7).normal(size=(400, 3))
    figures = _figures(detector, rows)
    scores = detector.score(rows)
    assert figures.alert_rate == pytest.approx(float(np.mean(scores > detector.threshold)))
    assert figures.score is None
    assert figures.features == {}
    assert figures.rows == 400


def test_a_sketch_stays_bounded_and_follows_recent_traffic() -> None:
    detector = _fitted("ECOD")
    scores, source = reference.score_sample(detector)
    made = drift.reference_of(scores, reference.feature_bins(detector), FEATURES, source=source)
    assert made is not None
    sketch = drift.Sketch(made, window=4000, buffer_rows=256)
    size = sketch.counts.nbytes
    rng = np.random.default_rng(3)
    shifted = rng.normal(size=(20_000, 3)) + 3.0
    sketch.observe(detector.score(shifted), shifted, 0)
    normal = rng.normal(size=(20_000, 3))
    for start in range(0, 20_000, 100):
        piece = normal[start : start + 100]
        sketch.observe(detector.score(piece), piece, 0)
    sketch.fold()
    assert sketch.counts.nbytes == size
    assert sketch.rows <= 4000
    counts, total, flagged = drift.merge(made.width, [sketch.snapshot()])
    recent = drift.figures(made, counts, total, flagged, min_rows=500, scope="worker")
    assert recent.score is not None
    assert recent.score < THRESHOLD


def test_merged_snapshots_are_the_sum_of_workers() -> None:
    detector = _fitted("HBOS")
    scores, source = reference.score_sample(detector)
    made = drift.reference_of(scores, reference.feature_bins(detector), FEATURES, source=source)
    assert made is not None
    rng = np.random.default_rng(5)
    workers = [drift.Sketch(made, window=100_000) for _ in range(4)]
    one = drift.Sketch(made, window=100_000)
    for index in range(40):
        rows = rng.normal(size=(50, 3))
        values = detector.score(rows)
        workers[index % 4].observe(values, rows, 1)
        one.observe(values, rows, 1)
    for sketch in [*workers, one]:
        sketch.fold()
    summed = drift.merge(made.width, [sketch.snapshot() for sketch in workers])
    alone = drift.merge(made.width, [one.snapshot()])
    np.testing.assert_allclose(summed[0], alone[0])
    assert summed[1:] == alone[1:] == (2000.0, 40.0)

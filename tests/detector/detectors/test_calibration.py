"""Calibration samples, p-values and the alert budget (``alert_rate``)."""

from __future__ import annotations

import copyreg
import dataclasses
import pickle

import numpy as np
import pytest
from scipy.stats import binom

from pynomaly_detector.detectors import calibration, catalog, errors, fitted
from pynomaly_detector.registry import signing

RATE = 0.05
TEST_ROWS = 500


def normal_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    """Correlated, skewed 'normal traffic': what a model is fitted on and then sees."""
    rows = rng.normal(size=(n, 4))
    rows[:, 1] = 0.5 * rows[:, 0] + rows[:, 1]
    rows[:, 2] = rng.exponential(size=n)
    return rows


def test_p_values_count_calibration_scores_at_least_as_extreme_with_plus_one_smoothing() -> None:
    sample = np.array([1.0, 2.0, 2.0, 3.0])
    got = calibration.p_values(sample, np.array([0.0, 2.0, 2.5, 3.0, 9.0]))
    assert got.tolist() == [5 / 5, 4 / 5, 2 / 5, 2 / 5, 1 / 5]


def test_alert_threshold_flags_exactly_the_rows_with_p_at_most_the_rate() -> None:
    sample = np.sort(np.random.default_rng(3).normal(size=999))
    threshold = calibration.alert_threshold(sample, 0.01)
    probes = np.linspace(-4, 4, 20_001)
    flagged = probes > threshold
    assert (flagged == (calibration.p_values(sample, probes) <= 0.01)).all()
    assert flagged.any()


def test_too_small_a_sample_for_the_rate_is_a_parameter_error() -> None:
    rows = normal_rows(np.random.default_rng(0), 40)
    with pytest.raises(errors.InvalidParametersError, match="needs a calibration sample"):
        fitted.fit("IForest", rows, alert_rate=0.001)


@pytest.mark.parametrize("rate", [0.0, 0.5, -0.1])
def test_alert_rate_range(rate: float) -> None:
    with pytest.raises(errors.InvalidParametersError, match="alert_rate"):
        fitted.fit("IForest", normal_rows(np.random.default_rng(0), 50), alert_rate=rate)


def test_calibration_sample_is_sorted_bounded_float64_and_held_out_where_it_must_be() -> None:
    rows = normal_rows(np.random.default_rng(0), 12_000)
    for name in ("IForest", "KNN"):
        detector = fitted.fit(name, rows)
        sample = detector.calibration_scores
        assert sample is not None
        assert sample.dtype == np.float64
        assert len(sample) == calibration.MAX_SIZE
        assert (np.diff(sample) >= 0).all()
        expected = calibration.MAX_SIZE if name in calibration.HELD_OUT else 0
        assert detector.calibration_held_out == expected


@pytest.mark.parametrize("algorithm", catalog.NAMES)
def test_alert_rate_on_held_out_normal_rows_is_within_the_binomial_99_interval(
    algorithm: str,
) -> None:
    # 8,000 training rows: held-out algorithms keep 2,000 calibration scores, the others
    # 2,048 training scores. The target holds for the rate a model promises, so its
    # calibration noise (about as large as the test's own for 500 rows) counts against it.
    rng = np.random.default_rng(11)
    detector = fitted.fit(algorithm, normal_rows(rng, 8000), alert_rate=RATE)
    test = normal_rows(rng, TEST_ROWS)
    scores = detector.score(test)
    flagged = scores > detector.threshold
    p_values = detector.p_values(scores)
    assert p_values is not None
    assert (flagged == (p_values <= RATE)).all()
    low, high = binom.interval(0.99, TEST_ROWS, RATE)
    assert low <= int(flagged.sum()) <= high, (algorithm, int(flagged.sum()), (low, high))
    assert detector.alert_rate == RATE


def _old_artifact(detector: fitted.FittedDetector) -> bytes:
    """Pickle ``detector`` as versions before calibration did: only the original fields."""
    original = [
        f.name
        for f in dataclasses.fields(detector)
        if f.name
        not in {
            "calibration_scores",
            "alert_rate",
            "calibration_held_out",
            "feature_medians",
            "flat_forest",
        }
    ]
    state = [getattr(detector, name) for name in original]

    class Old:
        def __reduce__(self) -> tuple[object, ...]:
            # What pickle writes for a FittedDetector: a new instance, then __setstate__(state).
            return (copyreg._reconstructor, (fitted.FittedDetector, object, None), state)  # type: ignore[attr-defined]  # private in typeshed, public in pickle's protocol 0-1 output

    return pickle.dumps(Old(), protocol=pickle.HIGHEST_PROTOCOL)


def test_models_fitted_before_calibration_load_and_score_without_p_values() -> None:
    rows = normal_rows(np.random.default_rng(0), 300)
    detector = fitted.fit("IForest", rows)
    artifact = _old_artifact(detector)
    loaded = signing.load(b"key", artifact, signing.sign(b"key", artifact))
    assert isinstance(loaded, fitted.FittedDetector)
    assert loaded.calibration_scores is None
    assert loaded.alert_rate is None
    assert loaded.p_values(loaded.score(rows[:3])) is None
    assert np.allclose(loaded.score(rows[:3]), detector.score(rows[:3]))
    assert loaded.fast

"""Explanations: a feature shifted far from training is named first, in the right direction."""

from __future__ import annotations

import numpy as np
import pytest

from pynomaly_detector.detectors import catalog, explaining, fitted

D = 6
FEATURES = [f"f{index}" for index in range(D)]


def normal_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    """Correlated Gaussian features and one skewed (exponential) feature."""
    rows = rng.normal(size=(n, D))
    rows[:, 1] += 0.5 * rows[:, 0]
    rows[:, 2] = rng.exponential(size=n)
    return rows


@pytest.mark.parametrize("algorithm", explaining.SUPPORTED)
def test_a_feature_shifted_far_is_explained_first_in_95_percent_of_flagged_rows(
    algorithm: str,
) -> None:
    # Rows of normal traffic whose features all lie inside the training 1st-99th
    # percentiles, then one feature, chosen at random, moved 8 training standard deviations
    # above or below its training median.
    rng = np.random.default_rng(2)
    train = normal_rows(rng, 3000)
    detector = fitted.fit(algorithm, train)
    low, high = np.percentile(train, [1, 99], axis=0)
    pool = normal_rows(rng, 3000)
    rows = pool[((pool >= low) & (pool <= high)).all(axis=1)][:400].copy()
    shifted = rng.integers(0, D, size=len(rows))
    signs = rng.choice([-1.0, 1.0], size=len(rows))
    for index, (column, sign) in enumerate(zip(shifted, signs, strict=True)):
        rows[index, column] = np.median(train[:, column]) + sign * 8 * train[:, column].std()
    flagged = detector.score(rows) > detector.threshold
    assert flagged.sum() >= 150  # enough rows for the share to mean something
    explanations = explaining.explain(detector, rows, flagged.tolist(), FEATURES)
    right = 0
    for index in np.flatnonzero(flagged):
        first = explanations[index][0]  # type: ignore[index]  # flagged rows are explained
        direction = "above" if signs[index] > 0 else "below"
        right += first["feature"] == FEATURES[shifted[index]] and first["direction"] == direction
    share = right / int(flagged.sum())
    assert share >= 0.95, (algorithm, share)
    assert all(explanations[index] is None for index in np.flatnonzero(~flagged))


def test_explanations_are_ranked_shares_of_listed_features() -> None:
    rng = np.random.default_rng(0)
    train = normal_rows(rng, 1000)
    detector = fitted.fit("ECOD", train)
    row = np.median(train, axis=0).reshape(1, D)
    row[0, 3] = -9.0
    row[0, 0] = 2.5
    (explanation,) = explaining.explain(detector, row, [True], FEATURES)
    assert explanation is not None
    assert [item["feature"] for item in explanation[:2]] == ["f3", "f0"]
    assert explanation[0]["direction"] == "below"
    assert explanation[1]["direction"] == "above"
    shares = [item["contribution"] for item in explanation]
    assert shares == sorted(shares, reverse=True)
    assert 0 < sum(shares) <= 1 + 1e-6
    assert len(explanation) <= explaining.TOP_FEATURES


@pytest.mark.parametrize(
    "algorithm", [name for name in catalog.NAMES if name not in explaining.SUPPORTED]
)
def test_other_algorithms_say_explain_is_unsupported(algorithm: str) -> None:
    detector = fitted.fit(algorithm, normal_rows(np.random.default_rng(0), 200))
    with pytest.raises(explaining.ExplainUnsupportedError, match="explain is unsupported"):
        explaining.check(detector)

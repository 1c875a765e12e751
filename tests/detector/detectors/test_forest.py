"""The flattened forest scores exactly like the estimator it was built from."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.ensemble import IsolationForest

from pynomaly_detector.detectors import fitted, forest

FloatArray = npt.NDArray[np.float64]

RNG = np.random.default_rng(42)
TRAIN = RNG.normal(size=(600, 5))
TRAIN[:20] += 6.0


def query_rows(train: FloatArray) -> FloatArray:
    """Random rows, duplicates, training rows, and rows far outside the training range."""
    rng = np.random.default_rng(7)
    width = train.shape[1]
    random = rng.normal(scale=2.0, size=(300, width))
    duplicates = np.repeat(random[:1], 5, axis=0)
    outside = np.vstack([np.full(width, 1e9), np.full(width, -1e9), np.full(width, 3.4e38)])
    tiny = rng.normal(scale=1e-30, size=(3, width))
    return np.vstack([random, duplicates, train[:50], outside, tiny])


def assert_same(actual: FloatArray, expected: FloatArray) -> None:
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-9)


CONFIGURATIONS: list[dict[str, Any]] = [
    {},
    {"n_estimators": 1},
    {"max_features": 0.5},
    {"max_features": 2},
    {"bootstrap": True},
    {"bootstrap": True, "max_features": 0.6, "max_samples": 0.3},
    {"max_samples": 2},
    {"max_samples": 1},
    {"max_samples": 600, "n_estimators": 10},
    {"contamination": "auto"},
]


@pytest.mark.parametrize("parameters", CONFIGURATIONS, ids=str)
def test_sklearn_isolation_forest_scores_are_reproduced(parameters: dict[str, Any]) -> None:
    arguments = {"n_estimators": 30, "random_state": 3, **parameters}
    estimator = IsolationForest(**arguments).fit(TRAIN)
    flat = forest.build(estimator)
    assert flat is not None
    rows = query_rows(TRAIN)
    assert_same(flat.score_samples(rows), estimator.score_samples(rows))
    for row in rows[:5]:  # single rows, one call each
        assert_same(flat.score_samples(row[None, :]), estimator.score_samples(row[None, :]))


def test_constant_training_data_makes_single_leaf_trees() -> None:
    train = np.ones((50, 3))
    estimator = IsolationForest(n_estimators=10, random_state=0).fit(train)
    flat = forest.build(estimator)
    assert flat is not None
    rows = query_rows(train)
    assert_same(flat.score_samples(rows), estimator.score_samples(rows))


def test_more_rows_than_one_chunk() -> None:
    estimator = IsolationForest(n_estimators=20, random_state=1).fit(TRAIN)
    flat = forest.build(estimator)
    assert flat is not None
    rows = np.random.default_rng(3).normal(size=(forest.CHUNK_ROWS * 2 + 17, TRAIN.shape[1]))
    assert_same(flat.score_samples(rows), estimator.score_samples(rows))


@pytest.mark.parametrize("algorithm", ["IsolationForest", "IForest"])
@pytest.mark.parametrize(
    "parameters",
    [{"n_estimators": 40}, {"n_estimators": 40, "max_features": 0.5, "bootstrap": True}],
    ids=str,
)
def test_detector_scores_follow_the_service_convention(
    algorithm: str, parameters: dict[str, Any]
) -> None:
    detector = fitted.fit(algorithm, TRAIN, parameters=parameters, contamination=0.05)
    assert detector.flat_forest is not None
    rows = query_rows(TRAIN)
    if algorithm == "IsolationForest":
        expected = -detector.estimator.score_samples(rows)
    else:
        expected = detector.estimator.decision_function(rows)
    assert_same(detector.score(rows), expected)
    # Higher = more anomalous: the shifted training rows score above the threshold.
    assert np.mean(detector.score(TRAIN[:20]) > detector.threshold) > 0.5


def test_the_forest_is_rebuilt_on_load_not_pickled() -> None:
    detector = fitted.fit("IForest", TRAIN, parameters={"n_estimators": 10}, contamination=0.1)
    artifact = pickle.dumps(detector)
    assert b"FlatForest" not in artifact
    loaded = pickle.loads(artifact)  # noqa: S301 -- our own artifact
    assert loaded.flat_forest is not None
    rows = query_rows(TRAIN)
    assert_same(loaded.score(rows), detector.estimator.decision_function(rows))


def test_non_finite_rows_go_to_the_estimator() -> None:
    detector = fitted.fit("IsolationForest", TRAIN, parameters={"n_estimators": 10})
    rows = query_rows(TRAIN)[:3].copy()
    rows[1, 2] = np.nan
    assert_same(detector.score(rows), -detector.estimator.score_samples(rows))


def test_an_estimator_it_cannot_reproduce_is_left_to_sklearn() -> None:
    estimator = IsolationForest(n_estimators=5, random_state=0).fit(TRAIN)
    del estimator._decision_path_lengths
    assert forest.build(estimator) is None


@pytest.mark.parametrize("size", [2, 3, forest.SMALL_ROWS - 1, forest.SMALL_ROWS, 70])
def test_a_row_scores_the_same_in_any_batch_of_several(size: int) -> None:
    # A few rows, many rows and one row alone take different walks; a row's score must not
    # depend on the rows it was batched with (the micro-batcher merges requests), bit for bit.
    estimator = IsolationForest(n_estimators=25, random_state=5).fit(TRAIN)
    flat = forest.build(estimator)
    assert flat is not None
    rows = query_rows(TRAIN)[: size * 3]
    together = flat.score_samples(rows)
    batched = np.concatenate(
        [flat.score_samples(rows[start : start + size]) for start in range(0, len(rows), size)]
    )
    assert np.array_equal(batched, together)
    assert_same(together, estimator.score_samples(rows))
    alone = np.concatenate([flat.score_samples(row[None, :]) for row in rows])
    assert np.array_equal(alone, together)


def test_a_row_scored_alone_is_sklearns_score_bit_for_bit() -> None:
    """The trees' depths are summed in sklearn's order for one row too (a pairwise sum
    differed in the last bit for most rows, so a cached single-row score could differ from
    the same row's score in a batch)."""
    estimator = IsolationForest(n_estimators=100, random_state=11).fit(TRAIN)
    flat = forest.build(estimator)
    assert flat is not None
    rows = np.random.default_rng(3).normal(scale=1.5, size=(300, TRAIN.shape[1]))
    alone = np.concatenate([flat.score_samples(row[None, :]) for row in rows])
    assert np.array_equal(alone, estimator.score_samples(rows))


def test_small_batches_of_a_one_sample_forest_score_one_half() -> None:
    estimator = IsolationForest(n_estimators=3, max_samples=1, random_state=0).fit(TRAIN)
    flat = forest.build(estimator)
    assert flat is not None
    for size in (1, 4, forest.SMALL_ROWS + 1):
        rows = TRAIN[:size]
        assert_same(flat.score_samples(rows), estimator.score_samples(rows))
        assert np.all(flat.score_samples(rows) == -0.5)

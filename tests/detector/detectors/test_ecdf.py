"""ECOD/COPOD scored against the fitted training distribution only."""

from __future__ import annotations

import numpy as np
import pytest
from pyod.models.copod import COPOD
from pyod.models.ecod import ECOD

from pynomaly_detector.detectors.ecdf import EcdfScorer

TRAIN = np.random.default_rng(2).gamma(2.0, size=(200, 4))  # skewed: the sign matters


@pytest.mark.parametrize(("kind", "pyod_class"), [("ecod", ECOD), ("copod", COPOD)])
def test_equals_pyod_scoring_one_row_at_a_time(kind: str, pyod_class: type) -> None:
    scorer = EcdfScorer.fit(kind, TRAIN)  # type: ignore[arg-type]
    estimator = pyod_class().fit(TRAIN)
    # Rows inside the training range do not flip a column's skewness sign.
    for row in TRAIN[:20]:
        ours = scorer.score(row[None, :])[0]
        theirs = estimator.decision_function(row[None, :])[0]
        assert ours == pytest.approx(theirs, rel=1e-9)


@pytest.mark.parametrize("kind", ["ecod", "copod"])
def test_scores_do_not_depend_on_the_batch(kind: str) -> None:
    scorer = EcdfScorer.fit(kind, TRAIN)  # type: ignore[arg-type]
    batch = np.vstack([TRAIN[:10], np.full((5, 4), 50.0)])
    alone = np.array([scorer.score(row[None, :])[0] for row in batch])
    np.testing.assert_array_equal(scorer.score(batch), alone)


def test_pyod_batch_scoring_is_batch_dependent() -> None:
    """Why the service has its own scorer: PyOD's score of a row changes with its batch."""
    estimator = ECOD().fit(TRAIN)
    row = TRAIN[:1]
    alone = estimator.decision_function(row)[0]
    with_outliers = estimator.decision_function(np.vstack([row, np.full((100, 4), 50.0)]))[0]
    assert alone != with_outliers

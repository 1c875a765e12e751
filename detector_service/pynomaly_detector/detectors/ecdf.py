"""ECOD and COPOD scored against the fitted training distribution only.

PyOD's ``ECOD.decision_function(rows)`` and ``COPOD.decision_function(rows)`` concatenate the
training rows with the *whole batch* ``rows`` and recompute the empirical CDFs and the skewness
over that union, so a row's score depends on which other rows share its batch (and scoring
costs a sort of ``n_train + n_batch`` rows per call). A scoring service must not do that:
the same row would get different scores alone, in a batch, or from a cache.

``EcdfScorer`` stores the sorted training columns and the training skewness signs at fit
time. A row's left tail probability is ``(#train <= x + 1) / (n + 1)`` and its right tail
probability ``(#train >= x + 1) / (n + 1)`` -- exactly what PyOD computes when that single
row is scored alone -- and the skewness sign comes from the training data only. The score is
therefore identical to PyOD's one-row-at-a-time score whenever the row does not flip a
column's skewness sign, and it is batch-independent always. Scoring is two binary searches
per column: O(d log n) per row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.stats import skew

FloatArray = npt.NDArray[np.float64]


@dataclass(slots=True)
class EcdfScorer:
    """Tail-probability outlier scores of ECOD (``"ecod"``) or COPOD (``"copod"``)."""

    kind: Literal["ecod", "copod"]
    sorted_columns: FloatArray
    """Training rows sorted per column, shape (n, d), each column in Fortran order."""
    skew_sign: FloatArray
    """Sign of each training column's skewness, shape (d,)."""

    @classmethod
    def fit(cls, kind: Literal["ecod", "copod"], rows: FloatArray) -> EcdfScorer:
        """Store the training distribution of ``rows`` (n rows, d columns)."""
        rows = np.asarray(rows, dtype=np.float64)
        return cls(
            kind=kind,
            sorted_columns=np.asfortranarray(np.sort(rows, axis=0)),
            skew_sign=np.sign(skew(rows, axis=0)).astype(np.float64),
        )

    def score(self, rows: FloatArray) -> FloatArray:
        """Scores of the rows of ``rows`` (higher = more anomalous), independent of each other."""
        scores: FloatArray = self.outlyingness(rows).sum(axis=1)
        return scores

    def tail_bits(self, rows: FloatArray) -> FloatArray:
        """Per row and column: ``-log`` of the smaller empirical tail probability."""
        u_left, u_right = self._tails(np.asarray(rows, dtype=np.float64))
        bits: FloatArray = np.maximum(u_left, u_right)
        return bits

    def _tails(self, rows: FloatArray) -> tuple[FloatArray, FloatArray]:
        n = self.sorted_columns.shape[0]
        at_most = np.empty_like(rows)
        at_least = np.empty_like(rows)
        for column in range(rows.shape[1]):
            values = self.sorted_columns[:, column]
            at_most[:, column] = np.searchsorted(values, rows[:, column], side="right")
            at_least[:, column] = n - np.searchsorted(values, rows[:, column], side="left")
        u_left: FloatArray = -np.log((at_most + 1.0) / (n + 1.0))
        u_right: FloatArray = -np.log((at_least + 1.0) / (n + 1.0))
        return u_left, u_right

    def outlyingness(self, rows: FloatArray) -> FloatArray:
        """Per row and column: the column's term of the score (scores are the row sums)."""
        u_left, u_right = self._tails(np.asarray(rows, dtype=np.float64))
        sign = self.skew_sign
        u_skew = u_left * -1 * np.sign(sign - 1) + u_right * np.sign(sign + 1)
        if self.kind == "ecod":
            outlyingness = np.maximum(np.maximum(u_left, u_right), u_skew)
        else:
            outlyingness = np.maximum(u_skew, (u_left + u_right) / 2)
        terms: FloatArray = outlyingness
        return terms

"""Calibration samples: scores of normal rows kept with a model, and p-values against them.

A fitted detector keeps a *calibration sample*: at most ``MAX_SIZE`` anomaly scores of
training rows, float64, sorted ascending, pickled (and so signed) inside the model artifact.
A new row's p-value is the share of calibration scores at least as extreme as its score,
with +1 smoothing::

    p(s) = (#{c in calibration : c >= s} + 1) / (n + 1)

so p is never 0, a score above every calibration score gets ``1 / (n + 1)``, and, when the
calibration rows and the scored row are exchangeable (normal traffic like the training
data), ``P(p <= a) <= a`` for every ``a`` (the conformal guarantee). ``alert_threshold``
turns an alert rate into the score threshold that flags exactly the rows with
``p <= alert_rate``.

Which rows the sample scores matters. Algorithms that memorise their training rows score
them optimistically: a training row is its own nearest neighbour (LOF, KNN), pulls the
boundary towards itself (OCSVM, OneClassSVM) or the robust covariance (MCD,
EllipticEnvelope), so their training scores are lower than those of new normal rows and
p-values from them would be too small. For those (``HELD_OUT``) a random part of the
training rows (a quarter, at most ``MAX_SIZE``) is held out of fitting and scored as the
calibration sample. The others (IForest, IsolationForest, ECOD, COPOD, HBOS, PCA, LODA)
score a training row nearly as they score a new one: their sample is a random subset of the
training scores, and the model is fitted on every row. ``tests/detector/detectors/
test_calibration.py`` measures the alert rate on held-out normal rows for every algorithm.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

MAX_SIZE = 2048
"""Most calibration scores kept per model: 16 KiB, and p-values resolve down to ~5e-4."""

HELD_OUT = frozenset(
    {"LOF", "KNN", "OCSVM", "MCD", "LocalOutlierFactor", "OneClassSVM", "EllipticEnvelope"}
)
"""Algorithms whose calibration rows are held out of fitting (they overfit training scores)."""

HOLD_OUT_SHARE = 0.25
"""Share of the training rows held out for calibration by ``HELD_OUT`` algorithms."""

MIN_FIT_ROWS = 10
"""Below this many training rows nothing is held out (too few to fit on what would remain)."""

SEED = 0
"""Fixed seed of the split and the subsample: refitting the same rows gives the same model."""


def held_out_rows(algorithm: str, n_rows: int) -> int:
    """How many of ``n_rows`` training rows ``algorithm`` holds out for calibration."""
    if algorithm not in HELD_OUT or n_rows < MIN_FIT_ROWS:
        return 0
    return min(MAX_SIZE, int(n_rows * HOLD_OUT_SHARE))


def split(rows: FloatArray, held_out: int) -> tuple[FloatArray, FloatArray]:
    """``(fit rows, calibration rows)``: ``held_out`` random rows set aside, the rest to fit."""
    if held_out <= 0:
        return rows, rows[:0]
    order = np.random.default_rng(SEED).permutation(len(rows))
    return rows[np.sort(order[held_out:])], rows[np.sort(order[:held_out])]


def sample(scores: FloatArray) -> FloatArray:
    """A calibration sample from ``scores``: a random subset of ``MAX_SIZE``, sorted."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if len(scores) > MAX_SIZE:
        picked = np.random.default_rng(SEED).choice(len(scores), MAX_SIZE, replace=False)
        scores = scores[picked]
    return np.sort(scores)


def merged(calibration_scores: FloatArray, extra: FloatArray) -> FloatArray:
    """``calibration_scores`` with ``extra`` added, sorted, at most ``MAX_SIZE``: every extra
    score is kept (up to the bound) and old ones are dropped at random to make room."""
    extra = np.asarray(extra, dtype=np.float64).ravel()[:MAX_SIZE]
    room = MAX_SIZE - len(extra)
    old = np.asarray(calibration_scores, dtype=np.float64)
    if len(old) > room:
        old = old[np.random.default_rng(SEED).choice(len(old), room, replace=False)]
    return np.sort(np.concatenate([old, extra]))


def p_values(calibration_scores: FloatArray, scores: FloatArray) -> FloatArray:
    """Per score: ``(#calibration scores >= score + 1) / (n + 1)``.

    ``calibration_scores`` must be sorted ascending (as ``FittedDetector.calibration_scores``
    is). Pure; two binary searches' worth of work per score.
    """
    n = len(calibration_scores)
    if len(scores) == 1:
        # A single-row request: the same search and the same division (of the same two
        # doubles) on Python numbers; numpy's per-call cost on one-element arrays was most
        # of the time.
        below = int(calibration_scores.searchsorted(float(scores[0]), side="left"))
        return np.array([(n + 1 - below) / (n + 1.0)])
    # n + 1 - (#scores below) = #at least as high + 1; one ufunc after the search (hot path).
    values: FloatArray = (n + 1 - calibration_scores.searchsorted(scores, side="left")) / (n + 1.0)
    return values


def alert_threshold(calibration_scores: FloatArray, alert_rate: float) -> float:
    """The score threshold (``score > threshold`` flags) that flags ``p <= alert_rate``.

    Flagged rows are those with at most ``k = floor(alert_rate * (n + 1)) - 1`` calibration
    scores at or above their own, i.e. scores above the ``(k + 1)``-th largest calibration
    score. Raises ``ValueError`` when the sample is too small to resolve ``alert_rate``
    (``n + 1 < 1 / alert_rate``: even the most extreme row would have ``p > alert_rate``).
    """
    n = len(calibration_scores)
    k = math.floor(alert_rate * (n + 1) + 1e-9) - 1
    if k < 0:
        needed = math.ceil(1.0 / alert_rate) - 1
        raise ValueError(
            f"alert_rate {alert_rate:g} needs a calibration sample of at least {needed} scores"
            f" (this fit has {n}): send more training rows or a larger alert_rate"
        )
    return float(calibration_scores[n - 1 - k])

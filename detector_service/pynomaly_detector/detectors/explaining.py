"""Why a row was flagged: per-feature attributions of its score, most contributing first.

Each supported algorithm splits a row's anomaly evidence into per-feature parts computed
from the model itself (no sampling, no surrogate model, no third-party explainer):

- **ECOD, COPOD** -- per-feature tail probabilities against the stored training
  distribution: a feature's attribution is ``-log`` of its smaller (left or right) tail
  probability (``EcdfScorer.tail_bits``) minus that of the feature's training median, so a
  typical value attributes nothing. (Their scores sum per-feature terms built from the same
  tail probabilities; COPOD's skewness correction halves a one-sided tail, which would rank
  a feature far beyond the training range below a moderately unusual one.)
- **IForest, IsolationForest** -- path-based: walking the row down every tree, a split on
  feature ``f`` that sends it from a node holding ``n`` training samples into a child
  holding ``m`` is credited ``log2(n / m) - NEUTRAL_BITS`` bits (at least 0) to ``f``. A
  row's bits add up to about ``log2(samples at the root / samples at its leaf)`` per tree --
  how quickly it was isolated -- and a split on a feature the row is extreme in sends it
  into a tiny child, so that feature collects the bits, while splits on features where the
  row is typical halve the samples (about one bit, not credited).

HBOS is not supported: its histograms give every value beyond the training bins the same
density, so a feature shifted far out ranks no higher than a mildly sparse bin of another.
The other algorithms (distance, density, kernel and projection models) have no such
decomposition that is both exact and cheap; ``explain`` for them is refused with a message
(``ExplainUnsupportedError``, a 422), as it is for models fitted before explanations
existed (they lack the training medians).

An explanation lists at most ``TOP_FEATURES`` features with a positive attribution, each
``{"feature", "contribution", "direction"}``: ``contribution`` is the feature's share of the
row's total positive attribution (0..1; the listed shares sum to at most 1) and
``direction`` is ``"above"`` or ``"below"`` the feature's training median.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from pynomaly_detector.detectors import errors
from pynomaly_detector.detectors.fitted import FittedDetector

FloatArray = npt.NDArray[np.float64]

SUPPORTED = ("ECOD", "COPOD", "IForest", "IsolationForest")
"""Algorithms whose flagged rows can be explained."""

NEUTRAL_BITS = 1.5
"""Bits of a split not credited: a split on a value typical of its node halves the samples
(one bit), give or take; only the surplus is evidence that the feature isolated the row."""

TOP_FEATURES = 10
"""Most features listed per explained row."""

Explanation = list[dict[str, Any]]


class ExplainUnsupportedError(errors.DetectorError):
    """``explain`` asked of a model that cannot explain its scores (422)."""


def check(detector: FittedDetector) -> None:
    """``ExplainUnsupportedError`` unless ``detector`` can explain rows."""
    if detector.algorithm not in SUPPORTED:
        raise ExplainUnsupportedError(
            f"explain is unsupported for {detector.algorithm}; it is supported for "
            f"{', '.join(SUPPORTED)}"
        )
    if detector.feature_medians is None:
        raise ExplainUnsupportedError(
            "explain is unsupported for this model version: it was fitted before explanations "
            "existed; refit it"
        )
    if detector.algorithm in ("IForest", "IsolationForest") and detector.flat_forest is None:
        raise ExplainUnsupportedError(
            "explain is unsupported for this forest: it could not be flattened (see the log)"
        )


def attributions(detector: FittedDetector, rows: FloatArray) -> FloatArray:
    """Per row and feature: the non-negative evidence the feature adds to the row's score."""
    check(detector)
    medians = detector.feature_medians
    assert medians is not None  # checked above
    if detector.ecdf is not None:
        return _relative(detector.ecdf.tail_bits, rows, medians)
    flat = detector.flat_forest
    assert flat is not None  # checked above
    return _path_bits(flat, rows)


def explain(
    detector: FittedDetector, rows: FloatArray, flagged: Sequence[bool], features: Sequence[str]
) -> list[Explanation | None]:
    """Per row: ``None`` when not flagged, else its top features (see the module docstring)."""
    check(detector)
    picked = [index for index, flag in enumerate(flagged) if flag]
    out: list[Explanation | None] = [None] * len(flagged)
    if not picked:
        return out
    subset = rows[picked]
    parts = attributions(detector, subset)
    medians = detector.feature_medians
    assert medians is not None  # checked in attributions
    above = subset >= medians
    for at, index in enumerate(picked):
        row = parts[at]
        total = float(row.sum())
        order = np.argsort(-row, kind="stable")[:TOP_FEATURES]
        out[index] = [
            {
                "feature": features[column],
                "contribution": round(float(row[column]) / total, 6),
                "direction": "above" if above[at, column] else "below",
            }
            for column in order.tolist()
            if row[column] > 0 and total > 0
        ]
    return out


def _relative(terms: Any, rows: FloatArray, medians: FloatArray) -> FloatArray:
    """Per-feature score terms of ``rows`` minus those of the median row, floored at 0."""
    own = np.asarray(terms(rows), dtype=np.float64)
    typical = np.asarray(terms(medians.reshape(1, -1)), dtype=np.float64)
    parts: FloatArray = np.maximum(own - typical, 0.0)
    return parts


def _path_bits(flat: Any, rows: FloatArray) -> FloatArray:
    """Isolation-forest path attribution: bits of sample reduction credited per feature."""
    x = np.asarray(rows, dtype=np.float32)
    n, width = x.shape
    trees = len(flat.roots)
    node = np.repeat(flat.roots, n)
    row = np.tile(np.arange(n, dtype=np.intp), trees)
    values = np.ascontiguousarray(x).ravel()
    credit = np.zeros(n * width, dtype=np.float64)
    for _ in range(flat.levels):
        feature = flat.feature[node]
        right = values[row * width + feature] > flat.threshold[node]
        child = flat.children[2 * node + right]
        bits = np.maximum(flat.log_samples[node] - flat.log_samples[child] - NEUTRAL_BITS, 0.0)
        credit += np.bincount(row * width + feature, weights=bits, minlength=n * width)
        node = child
    parts: FloatArray = credit.reshape(n, width)
    return parts

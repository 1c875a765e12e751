"""What a fitted detector keeps of its training data for drift checks: bins, not rows.

At fit time ``attach`` stores in ``FittedDetector.extra`` (inside the signed artifact):

- ``drift_features``: decile edges of each of the first ``MAX_FEATURES`` training columns and
  the share of training rows in each bin (``Bins``);
- ``drift_scores``: a sorted sample of at most ``SCORE_SAMPLE`` training scores, the score
  reference of models without a calibration sample (in-sample scores: for neighbour-based
  detectors such as KNN and LOF they are lower than the scores of new rows, so a held-out
  calibration sample is the better reference when the model has one).

Bins are deciles of the reference sample, right-closed (a value equal to an edge falls in
the lower bin); with ties a bin may be empty, which is why the shares are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

BINS = 10
"""Bins per column (deciles of the reference sample)."""

MAX_FEATURES = 64
"""Columns tracked per model (the first ones of a row): bounds sketch memory and metrics."""

SCORE_SAMPLE = 4096
"""Most training scores kept as the score reference."""

REFERENCE_SAMPLE = 20_000
"""Most rows used to find the bin edges (quantiles need no more)."""


@dataclass(frozen=True, slots=True)
class Bins:
    """Edges and reference shares of several columns: ``(c, BINS - 1)`` and ``(c, BINS)``."""

    edges: FloatArray
    shares: FloatArray

    def to_json(self) -> dict[str, Any]:
        """Plain lists (kept inside the signed artifact)."""
        return {"edges": self.edges.tolist(), "shares": self.shares.tolist()}

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Bins:
        """Inverse of ``to_json``."""
        edges = np.asarray(body["edges"], dtype=np.float64).reshape(-1, BINS - 1)
        shares = np.asarray(body["shares"], dtype=np.float64).reshape(-1, BINS)
        return cls(edges, shares)


def _sample(values: FloatArray, limit: int, seed: int = 0) -> FloatArray:
    if len(values) <= limit:
        return values
    picked = np.random.default_rng(seed).choice(len(values), limit, replace=False)
    return values[np.sort(picked)]


def bins_of(sample: FloatArray) -> Bins:
    """Decile bins of each column of ``sample`` (``(n, c)``, n >= 1) and their shares."""
    sample = _sample(np.asarray(sample, dtype=np.float64), REFERENCE_SAMPLE)
    quantiles = np.linspace(0.0, 1.0, BINS + 1)[1:-1]
    edges = np.ascontiguousarray(np.quantile(sample, quantiles, axis=0).T)  # (c, BINS - 1)
    shares = bin_counts(edges, sample) / max(len(sample), 1)
    return Bins(edges, shares)


def bin_counts(edges: FloatArray, rows: FloatArray) -> FloatArray:
    """Counts ``(c, BINS)`` of the rows ``(n, c)`` in each column's bins."""
    n, c = rows.shape
    if n == 0:
        return np.zeros((c, BINS))
    # Bin index = how many of the column's edges lie strictly below the value.
    index = (rows[:, :, None] > edges[None, :, :]).sum(axis=2)
    index += np.arange(c) * BINS
    counts = np.bincount(index.ravel(), minlength=c * BINS)
    return counts.reshape(c, BINS).astype(np.float64)


def attach(detector: Any, values: FloatArray) -> None:
    """Store the drift references of ``detector`` (a ``FittedDetector``) fitted on ``values``."""
    values = np.asarray(values, dtype=np.float64)
    tracked = values[:, :MAX_FEATURES]
    detector.extra["drift_features"] = bins_of(tracked).to_json()
    scores = detector.score(_sample(values, SCORE_SAMPLE))
    detector.extra["drift_scores"] = np.sort(np.asarray(scores, dtype=np.float64)).tolist()


def feature_bins(detector: Any) -> Bins | None:
    """The feature bins stored by ``attach`` (None for models fitted before drift existed)."""
    body = detector.extra.get("drift_features")
    return Bins.from_json(body) if isinstance(body, dict) else None


def score_sample(detector: Any) -> tuple[FloatArray | None, str]:
    """The score reference of ``detector`` and its kind: the calibration sample when the model
    has one, else the training scores stored by ``attach`` (``(None, "none")`` without)."""
    calibration = getattr(detector, "calibration_scores", None)
    if calibration is not None and len(calibration):
        return np.asarray(calibration, dtype=np.float64), "calibration"
    stored = detector.extra.get("drift_scores")
    if isinstance(stored, list) and stored:
        return np.asarray(stored, dtype=np.float64), "training"
    return None, "none"

"""Drift of live traffic from a model's reference: bounded sketches and PSI figures.

Pure numpy, no I/O. A ``Reference`` holds, for the scores and for each tracked feature, the
decile bins of the reference sample and its share in each bin (``detectors.reference``).
The score reference is the model's calibration sample, else a sample of its training
scores; the feature reference is the training rows.

A ``Sketch`` is what one worker keeps per model version: bin counts (``(1 + k, BINS)``
floats), rows and flagged rows. No raw row is kept beyond a fixed buffer of ``buffer_rows``
rows that is folded into the counts when full (so the hot path only keeps references to a
request's score and row arrays; they are concatenated and binned once per buffer,
vectorised). Counts decay: when
the rows exceed ``window``, everything is halved, so the figures describe the last
``window / 2`` to ``window`` rows of this worker, and memory is fixed.

Sketches are additive (``merge``): the figures of several workers or replicas are those of
their summed counts. ``figures`` gives the population stability index (PSI,
``sum((a - e) * ln(a / e))`` over bins, shares floored at ``PSI_FLOOR``) of the scores and
of every tracked feature, and the alert rate (flagged / rows).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from pynomaly_detector.detectors.reference import BINS, Bins, bin_counts, bins_of

FloatArray = npt.NDArray[np.float64]

PSI_FLOOR = 1e-4
"""Smallest share used in the PSI (an empty bin would make it infinite)."""


def psi(shares: FloatArray, counts: FloatArray) -> FloatArray:
    """PSI per row of ``counts`` against the reference ``shares`` (both ``(c, BINS)``)."""
    totals = counts.sum(axis=1, keepdims=True)
    actual = np.maximum(counts / np.maximum(totals, 1.0), PSI_FLOOR)
    expected = np.maximum(shares, PSI_FLOOR)
    out: FloatArray = ((actual - expected) * np.log(actual / expected)).sum(axis=1)
    return out


@dataclass(frozen=True, slots=True)
class Reference:
    """What recent traffic of one model version is compared with."""

    scores: Bins
    """One column: the model's scores."""
    features: Bins | None
    """The tracked features (the first ``len(feature_names)`` columns of a row), or none."""
    feature_names: tuple[str, ...]
    source: str
    """``calibration`` (the model's calibration sample) or ``training`` (training scores)."""

    @property
    def width(self) -> int:
        """Columns tracked: the score plus the tracked features."""
        return 1 + len(self.feature_names)

    def edges(self) -> FloatArray:
        """All edges, score first: ``(width, BINS - 1)``."""
        if self.features is None:
            return self.scores.edges
        return np.vstack([self.scores.edges, self.features.edges])

    def shares(self) -> FloatArray:
        """All reference shares, score first: ``(width, BINS)``."""
        if self.features is None:
            return self.scores.shares
        return np.vstack([self.scores.shares, self.features.shares])


@dataclass(frozen=True, slots=True)
class Figures:
    """Drift of the recent rows of one model version."""

    score: float | None
    """PSI of recent vs reference scores (None below ``min_rows``)."""
    features: dict[str, float]
    """PSI per tracked feature (empty below ``min_rows``)."""
    alert_rate: float | None
    """Share of recent rows flagged (None before any row)."""
    rows: int
    """Recent rows the figures are computed from (decayed counts, summed over workers)."""
    source: str
    scope: str
    """``cluster`` (every worker and replica sharing Redis) or ``worker`` (this process)."""

    def public(self) -> dict[str, Any]:
        """The ``drift`` object of ``GET /v1/models/{name}``."""
        return {
            "score": None if self.score is None else round(self.score, 6),
            "features": {name: round(value, 6) for name, value in self.features.items()},
            "alert_rate": None if self.alert_rate is None else round(self.alert_rate, 6),
            "rows": self.rows,
            "reference": self.source,
            "scope": self.scope,
        }


class Sketch:
    """Bounded recent statistics of one model version in one worker (see the module doc)."""

    __slots__ = (
        "_buffer_flagged",
        "_capacity",
        "_features",
        "_fill",
        "_scores",
        "_values",
        "counts",
        "edges",
        "flagged",
        "reference",
        "rows",
        "updated",
        "window",
    )

    def __init__(self, reference: Reference, *, window: int, buffer_rows: int = 256) -> None:
        self.reference = reference
        self.edges = reference.edges()
        self.window = window
        self.counts = np.zeros((reference.width, BINS))
        self.rows = 0.0
        self.flagged = 0.0
        self.updated = 0.0
        """Wall-clock time of the last fold (0: nothing folded yet)."""
        self._capacity = buffer_rows
        self._features = reference.width - 1
        # The requests' own arrays, copied once per fold (numpy's per-call cost made two
        # slice copies per request cost more than the fold's one concatenation per buffer).
        self._scores: list[FloatArray] = []
        self._values: list[FloatArray] = []
        self._fill = 0
        self._buffer_flagged = 0

    def observe(self, scores: FloatArray, values: FloatArray, flagged: int) -> None:
        """Add a request's scores, rows and flagged count (cheap: two list appends; the rows
        are binned when ``buffer_rows`` have been kept). The arrays are not modified later."""
        n = len(scores)
        if self._fill + n > self._capacity:
            self.fold()
            if n > self._capacity:
                self._add(scores, values[:, : self._features], flagged)
                return
        self._scores.append(scores)
        self._values.append(values)
        self._fill += n
        self._buffer_flagged += flagged

    def fold(self) -> bool:
        """Bin the buffered rows into the counts; whether there were any."""
        if not self._fill:
            return False
        scores, values = np.concatenate(self._scores), np.concatenate(self._values)
        self._scores, self._values, self._fill = [], [], 0
        flagged, self._buffer_flagged = self._buffer_flagged, 0
        self._add(scores, values[:, : self._features], flagged)
        return True

    def _add(self, scores: FloatArray, values: FloatArray, flagged: int) -> None:
        columns = np.column_stack([scores, values]) if values.shape[1] else scores[:, None]
        self.counts += bin_counts(self.edges, columns)
        self.rows += len(scores)
        self.flagged += flagged
        while self.rows > self.window:
            self.counts *= 0.5
            self.rows *= 0.5
            self.flagged *= 0.5
        self.updated = time.time()

    def snapshot(self) -> FloatArray:
        """``[updated, rows, flagged, counts...]`` as one flat array (what workers share)."""
        return np.concatenate(([self.updated, self.rows, self.flagged], self.counts.ravel()))


def merge(width: int, snapshots: Iterable[FloatArray]) -> tuple[FloatArray, float, float]:
    """Summed ``(counts, rows, flagged)`` of snapshots of one model version (others skipped)."""
    counts = np.zeros((width, BINS))
    rows = flagged = 0.0
    for snapshot in snapshots:
        if len(snapshot) != 3 + width * BINS:
            continue  # written for another layout (an older service): not comparable
        rows += float(snapshot[1])
        flagged += float(snapshot[2])
        counts += snapshot[3:].reshape(width, BINS)
    return counts, rows, flagged


def figures(
    reference: Reference,
    counts: FloatArray,
    rows: float,
    flagged: float,
    *,
    min_rows: int,
    scope: str,
) -> Figures:
    """Drift figures of summed counts (PSI only from ``min_rows`` rows on: below that the
    sampling noise of a small window would read as drift)."""
    alert_rate = flagged / rows if rows > 0 else None
    if rows < min_rows:
        return Figures(None, {}, alert_rate, round(rows), reference.source, scope)
    values = psi(reference.shares(), counts)
    features = dict(zip(reference.feature_names, (float(v) for v in values[1:]), strict=True))
    return Figures(float(values[0]), features, alert_rate, round(rows), reference.source, scope)


def reference_of(
    score_sample: FloatArray | None,
    feature_bins: Bins | None,
    feature_names: Sequence[str],
    *,
    source: str,
) -> Reference | None:
    """A reference from a score sample and fitted feature bins (None without scores)."""
    if score_sample is None or len(score_sample) == 0:
        return None
    scores = bins_of(np.asarray(score_sample, dtype=np.float64).reshape(-1, 1))
    names = tuple(feature_names[: len(feature_bins.edges)]) if feature_bins is not None else ()
    return Reference(scores, feature_bins if names else None, names, source)

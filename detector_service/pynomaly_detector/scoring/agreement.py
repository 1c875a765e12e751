"""How far a challenger agrees with the champion on the same rows: bounded pairs, figures.

Pure numpy/scipy, no I/O. ``Pairs`` keeps the last ``capacity`` (champion score, challenger
score) pairs of one worker in ring buffers, plus how many rows were compared in all.
Snapshots are flat float64 arrays (``[time, rows, n, champion[n], challenger[n]]``), so the
workers' pairs can be shared through Redis and pooled. ``figures`` over pooled pairs:

- ``spearman``: Spearman rank correlation of the two scores (ties ranked by their average);
- ``flagged_overlap``: rows both flag / rows either flags (Jaccard; 1.0 when neither flags);
- ``champion_alert_rate`` / ``challenger_alert_rate``: share each flags with its threshold;
- ``rows``: rows compared in all (every worker; the figures use the last pairs of each).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

FloatArray = npt.NDArray[np.float64]


class Pairs:
    """The last ``capacity`` score pairs of one worker."""

    __slots__ = ("_fill", "_position", "challenger", "champion", "rows", "updated")

    def __init__(self, capacity: int = 4096) -> None:
        self.champion = np.empty(capacity)
        self.challenger = np.empty(capacity)
        self._position = 0
        self._fill = 0
        self.rows = 0
        self.updated = 0.0

    def add(self, champion: FloatArray, challenger: FloatArray) -> None:
        """Append pairs (the oldest are overwritten beyond the capacity)."""
        capacity = len(self.champion)
        n = len(champion)
        self.rows += n
        self.updated = time.time()
        if n >= capacity:
            self.champion[:] = champion[-capacity:]
            self.challenger[:] = challenger[-capacity:]
            self._position, self._fill = 0, capacity
            return
        end = self._position + n
        first = min(n, capacity - self._position)
        self.champion[self._position : self._position + first] = champion[:first]
        self.challenger[self._position : self._position + first] = challenger[:first]
        if first < n:
            self.champion[: n - first] = champion[first:]
            self.challenger[: n - first] = challenger[first:]
        self._position = end % capacity
        self._fill = min(capacity, self._fill + n)

    def snapshot(self) -> FloatArray:
        """``[updated, rows, n, champion[n], challenger[n]]``."""
        n = self._fill
        return np.concatenate(
            ([self.updated, float(self.rows), float(n)], self.champion[:n], self.challenger[:n])
        )


@dataclass(frozen=True, slots=True)
class Figures:
    """Agreement of a challenger with the champion."""

    spearman: float | None
    flagged_overlap: float | None
    champion_alert_rate: float | None
    challenger_alert_rate: float | None
    rows: int
    scope: str

    def public(self) -> dict[str, Any]:
        """The ``agreement`` object of ``GET /v1/models/{name}``."""

        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 6)

        return {
            "spearman": rounded(self.spearman),
            "flagged_overlap": rounded(self.flagged_overlap),
            "champion_alert_rate": rounded(self.champion_alert_rate),
            "challenger_alert_rate": rounded(self.challenger_alert_rate),
            "rows": self.rows,
            "scope": self.scope,
        }


def figures(
    snapshots: Iterable[FloatArray],
    *,
    champion_threshold: float,
    challenger_threshold: float,
    scope: str,
) -> Figures:
    """Agreement over the pooled pairs of ``snapshots``."""
    champions: list[FloatArray] = []
    challengers: list[FloatArray] = []
    rows = 0
    for snapshot in snapshots:
        if len(snapshot) < 3:
            continue
        n = int(snapshot[2])
        if len(snapshot) != 3 + 2 * n:
            continue
        rows += int(snapshot[1])
        champions.append(snapshot[3 : 3 + n])
        challengers.append(snapshot[3 + n :])
    if not champions or not sum(len(part) for part in champions):
        return Figures(None, None, None, None, rows, scope)
    champion = np.concatenate(champions)
    challenger = np.concatenate(challengers)
    spearman: float | None = None
    if len(champion) >= 3 and np.ptp(champion) > 0 and np.ptp(challenger) > 0:
        spearman = float(stats.spearmanr(champion, challenger).statistic)
    champion_flags = champion > champion_threshold
    challenger_flags = challenger > challenger_threshold
    either = int(np.count_nonzero(champion_flags | challenger_flags))
    both = int(np.count_nonzero(champion_flags & challenger_flags))
    return Figures(
        spearman,
        both / either if either else 1.0,
        float(champion_flags.mean()),
        float(challenger_flags.mean()),
        rows,
        scope,
    )

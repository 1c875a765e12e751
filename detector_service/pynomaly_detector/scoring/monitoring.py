"""Drift monitoring of served model versions: this worker's sketches, everyone's figures.

``DriftMonitor.observe`` is called on the hot path with each request's scores and rows: it
finds the version's ``drift.Sketch`` (one dict lookup) and copies the rows into the sketch's
preallocated buffer; the binning runs once per ``buffer_rows`` rows (vectorised, tens of
microseconds), so no request pays for more than a copy. Sketches are kept for at most
``max_models`` versions (oldest dropped first).

Aggregation across workers and replicas: every ``publish_seconds`` each worker folds its
buffers and writes each changed sketch to Redis (``caching.snapshots``: one hash per model
version, one field per worker). ``figures`` (``GET /v1/models/{name}``) sums the live
workers' snapshots, with this worker's current sketch in place of its published one, so
the answer covers every worker and replica that shares the Redis (``scope: cluster``).
Without Redis, or while Redis cannot be read, the figures are this worker's alone and say
so (``scope: worker``). The Prometheus gauges are refreshed at each publish from the same
merged figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import numpy as np
import numpy.typing as npt

from pynomaly_detector import metrics
from pynomaly_detector.caching.snapshots import SharedSnapshots
from pynomaly_detector.detectors import reference as references
from pynomaly_detector.registry.versions import ModelVersion
from pynomaly_detector.scoring import drift

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

_NONE: Any = object()


def snapshot_key(name: str, version: int) -> str:
    """The Redis hash (under the key prefix) of one model version's sketches."""
    return f"drift:{name}:{version}"


class DriftMonitor:
    """Sketches of the model versions this worker serves (see the module doc)."""

    def __init__(
        self,
        *,
        shared: SharedSnapshots | None,
        window: int,
        min_rows: int,
        publish_seconds: float,
        max_models: int = 100,
    ) -> None:
        self.shared = shared
        self.window = window
        self.min_rows = min_rows
        self.publish_seconds = publish_seconds
        self.max_models = max_models
        self._sketches: dict[tuple[str, int], drift.Sketch | None] = {}
        self._published: dict[tuple[str, int], float] = {}

    # the hot path ------------------------------------------------------------------------

    def observe(
        self,
        meta: ModelVersion,
        detector: Any,
        scores: FloatArray,
        values: FloatArray,
        flagged: int,
    ) -> None:
        """Record a scored request (a copy into the sketch's buffer)."""
        sketch = self._sketches.get((meta.name, meta.version), _NONE)
        if sketch is _NONE:
            sketch = self.sketch(meta, detector)
        if sketch is not None:
            sketch.observe(scores, values, flagged)

    # sketches ----------------------------------------------------------------------------

    def sketch(self, meta: ModelVersion, detector: Any) -> drift.Sketch | None:
        """The sketch of a version (created empty; None when the model has no reference)."""
        key = (meta.name, meta.version)
        found = self._sketches.get(key, _NONE)
        if found is not _NONE:
            return found  # type: ignore[no-any-return]  # the sentinel is excluded above
        made = _reference(detector, meta.features)
        sketch = None if made is None else drift.Sketch(made, window=self.window)
        while len(self._sketches) >= self.max_models:
            oldest = next(iter(self._sketches))
            self._sketches.pop(oldest)
            self._published.pop(oldest, None)
        self._sketches[key] = sketch
        return sketch

    async def figures(self, meta: ModelVersion, detector: Any) -> drift.Figures | None:
        """Drift of one model version over every worker sharing Redis (None: the model has
        no reference, e.g. fitted before drift monitoring existed)."""
        sketch = self.sketch(meta, detector)
        if sketch is None:
            return None
        sketch.fold()
        return await self._merged(meta.name, meta.version, sketch)

    async def _merged(self, name: str, version: int, sketch: drift.Sketch) -> drift.Figures:
        snapshots: list[FloatArray] = []
        scope = "worker"
        if self.shared is not None:
            gathered = await self.shared.gather(snapshot_key(name, version))
            if gathered is not None:
                scope = "cluster"
                gathered.pop(self.shared.member, None)
                snapshots.extend(gathered.values())
        if sketch.updated:
            snapshots.append(sketch.snapshot())
        reference = sketch.reference
        counts, rows, flagged = drift.merge(reference.width, snapshots)
        return drift.figures(reference, counts, rows, flagged, min_rows=self.min_rows, scope=scope)

    # publishing --------------------------------------------------------------------------

    async def publish(self) -> None:
        """Fold every sketch, share the changed ones, refresh the gauges."""
        for key, sketch in list(self._sketches.items()):
            if sketch is None:
                continue
            sketch.fold()
            if not sketch.updated:
                continue
            if (
                self.shared is not None
                and self._published.get(key) != sketch.updated
                and await self.shared.publish(snapshot_key(*key), sketch.snapshot())
            ):
                self._published[key] = sketch.updated
            _export(key[0], await self._merged(key[0], key[1], sketch))

    async def publish_forever(self) -> None:
        """``publish`` every ``publish_seconds`` until cancelled."""
        while True:
            await asyncio.sleep(self.publish_seconds)
            try:
                await self.publish()
            except Exception:  # a bug here must not stop monitoring; logged with its trace
                log.exception("drift publishing failed")

    async def close(self) -> None:
        """Share what is buffered (at shutdown, so the last rows are not lost)."""
        with contextlib.suppress(Exception):
            await self.publish()


def _reference(detector: Any, feature_names: list[str]) -> drift.Reference | None:
    scores, source = references.score_sample(detector)
    return drift.reference_of(
        scores, references.feature_bins(detector), feature_names, source=source
    )


def _export(model: str, figures: drift.Figures) -> None:
    if figures.score is not None:
        metrics.DRIFT_SCORE.labels(model).set(figures.score)
    for feature, value in figures.features.items():
        metrics.FEATURE_DRIFT.labels(model, feature).set(value)
    if figures.alert_rate is not None:
        metrics.LIVE_ALERT_RATE.labels(model).set(figures.alert_rate)
    metrics.DRIFT_ROWS.labels(model).set(figures.rows)

"""The data plane: everything the service does, minus HTTP — a thin facade.

Data flow of a scoring request: socket -> ``api.fastpath`` -> ``DataPlane.detect`` ->
``registry.models`` (newest version, loaded: L3 lookup, L1 model cache, store) ->
``scoring.scorer`` (L1 row cache -> micro-batcher -> L2 Redis -> the model, e.g. the
flattened forest) -> the anomaly log. Fits and deletes go to ``registry.models`` and are
announced to the other processes. ``build`` composes the collaborators; ``DataPlane`` takes
them all in its constructor, so tests and benchmarks can drive it without the HTTP layer.

Readiness lives here too (``ready``, ``readiness``, ``dependencies``): the routes only
render it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from pynomaly_detector import datasets, metrics
from pynomaly_detector.caching.memory import TTLCache
from pynomaly_detector.caching.redis_cache import RedisScoreCache
from pynomaly_detector.caching.snapshots import SharedSnapshots
from pynomaly_detector.caching.usage import ModelUsage
from pynomaly_detector.detectors import explaining
from pynomaly_detector.detectors.errors import InvalidInputError
from pynomaly_detector.detectors.fitting import FitTimeoutError
from pynomaly_detector.registry.anomaly_log import AnomalyLog
from pynomaly_detector.registry.challenger import Challengers, DeclaredChallenger
from pynomaly_detector.registry.models import (
    DeclaredModel,
    FitSpec,
    LoadedModel,
    ModelNotFoundError,
    Models,
    check_name,
    identity,
)
from pynomaly_detector.registry.signing import ArtifactRejectedError
from pynomaly_detector.registry.store import ModelStore, StoreUnavailableError
from pynomaly_detector.registry.versions import AnomalyRecord, Feedback, ModelVersion
from pynomaly_detector.scoring import rows as rowing
from pynomaly_detector.scoring.monitoring import DriftMonitor
from pynomaly_detector.scoring.scorer import RowKey, RowScorer
from pynomaly_detector.scoring.shadow import Shadow
from pynomaly_detector.settings import Settings

__all__ = [
    "DataPlane",
    "Detection",
    "FitSpec",
    "LoadedModel",
    "ModelNotFoundError",
    "build",
    "check_name",
    "training_from_instances",
]

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
Announce = Callable[[str], Awaitable[None]]
"""Tells the other processes that a model changed (Redis pub/sub)."""

SHUTDOWN_MARGIN_SECONDS = 10.0
"""What the operator's ``terminationGracePeriodSeconds`` adds to the drain and the request
deadline (``drainSeconds + timeoutSeconds + 10``) for closing pools and flushing the log."""

CLOSE_RESERVE_SECONDS = 2.0
"""Kept back from the anomaly log's final flush for what closing does after it."""


def termination_grace(settings: Settings) -> float:
    """Seconds from SIGTERM to SIGKILL, as the operator renders the pod's grace period."""
    return settings.drain_seconds + settings.request_timeout_seconds + SHUTDOWN_MARGIN_SECONDS


WARM_START_SECONDS = 10.0
"""Longest a starting worker spends loading its pod's most used models before it accepts
requests (the rest load in the background)."""

EXPLAIN_INLINE_ROWS = 8
"""Flagged rows explained on the event loop (well under a millisecond); more go to the pool."""

PING_TIMEOUT = 0.5
"""Seconds a dependency may take to answer /readyz: kubelet's probe timeout is 1 s by default."""


_ONE_FLAGGED = np.array([True])
_ONE_UNFLAGGED = np.array([False])
_ONE_FLAGGED.setflags(write=False)  # shared by every single-row detection: read only
_ONE_UNFLAGGED.setflags(write=False)


@dataclass(frozen=True, slots=True)
class Detection:
    """Scores of a request's rows under one model version."""

    model: LoadedModel
    scores: FloatArray
    values: FloatArray | None = None
    """The scored rows (what explanations are computed from)."""
    flags: npt.NDArray[np.bool_] | None = None
    """Per row: score above the model's threshold (computed once, by ``detect_matrix``)."""

    @property
    def flagged(self) -> npt.NDArray[np.bool_]:
        """Per row: score above the model's threshold, as an array."""
        if self.flags is not None:
            return self.flags
        flags: npt.NDArray[np.bool_] = self.scores > self.model.meta.threshold
        return flags

    @property
    def is_anomaly(self) -> list[bool]:
        """Per row: score above the model's threshold."""
        flags: list[bool] = self.flagged.tolist()
        return flags

    @property
    def p_values(self) -> FloatArray | None:
        """Per row: the p-value of its score (``None``: the version has no calibration sample)."""
        return self.model.detector.p_values(self.scores)


class DataPlane:
    """Fit, look up, score and delete models; report readiness. Built by ``build``."""

    def __init__(
        self,
        settings: Settings,
        *,
        models: Models,
        scorer: RowScorer,
        l2: RedisScoreCache | None = None,
        anomaly_log: AnomalyLog | None = None,
        announce: Announce | None = None,
        pools: Sequence[ThreadPoolExecutor] = (),
        monitor: DriftMonitor | None = None,
        shared: SharedSnapshots | None = None,
        usage: ModelUsage | None = None,
    ) -> None:
        self.settings = settings
        self.usage = usage or ModelUsage(None)
        """Requests per model name, shared by the pod's workers: the warm-up order."""
        self.monitor = monitor
        self.challengers = Challengers(models)
        self.shadow = (
            Shadow(
                self.challengers,
                shared=shared,
                buffer_rows=settings.shadow_buffer_rows,
                cpu_share=settings.shadow_cpu_share,
                publish_seconds=settings.drift_publish_seconds,
                min_agreement=settings.model_promotion_min_agreement,
                min_rows=settings.model_promotion_min_rows,
                on_promoted=self._promoted,
            )
            if settings.shadow_enabled
            else None
        )
        self.models = models
        self.scorer = scorer
        self.l2 = l2
        self.anomaly_log = anomaly_log
        self._announce = announce
        self._pools = pools
        self._rows_scored: dict[str, Any] = {}
        self.declared_ready = not settings.model_name
        """False until the declared model (if any) is loaded."""
        metrics.DECLARED_MODEL_LOADED.set(0 if settings.model_name else 1)
        self.warm = not settings.cache_warmup
        """False until warm-up has loaded stored models."""
        self.draining = False
        """Set on SIGTERM: readiness fails first, in-flight requests still finish."""
        self.stop_deadline: float | None = None
        """``time.monotonic()`` by which the process must be gone (set by ``drain``)."""
        self.preparing_error: str | None = None
        """Why warm-up / the declared model is not loaded yet (retried in the background)."""

    @property
    def store(self) -> ModelStore:
        """The model store under the registry."""
        return self.models.store

    # lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store, start the anomaly log, load the pod's most used models."""
        await self.store.open()
        if self.anomaly_log is not None:
            self.anomaly_log.start()
        if self.settings.cache_warmup:
            await self.warm_used(WARM_START_SECONDS)

    async def warm_used(self, budget: float) -> list[str]:
        """Load the models this pod's workers used most (most used first, at most
        ``cache_model_max_models``) for up to ``budget`` seconds; the names loaded.

        Called before the worker accepts requests, so a worker recycled by ``max_requests``
        serves its first request from a warm model."""
        loaded: list[str] = []
        deadline = time.monotonic() + budget
        for name in self.usage.ranked()[: self.settings.cache_model_max_models]:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                await asyncio.wait_for(self.models.load(name, source="warmup"), remaining)
            except (ModelNotFoundError, ArtifactRejectedError, InvalidInputError):
                continue  # deleted since, or refused: requests get their 404/503
            except (TimeoutError, StoreUnavailableError) as error:
                log.warning("warm start stopped after %d models: %r", len(loaded), error)
                break
            loaded.append(name)
        if loaded:
            log.info("warm start: loaded %s", ", ".join(loaded))
        return loaded

    async def prepare(self) -> None:
        """Warm-up and declared model, once; failures propagate."""
        if self.settings.model_name and not self.declared_ready:
            await self.ensure_declared()
            await self.ensure_declared_challenger()
            self.declared_ready = True
            metrics.DECLARED_MODEL_LOADED.set(1)
        if not self.warm:
            await self.models.warmup(
                self.settings.cache_model_max_models, first=self.usage.ranked()
            )
            self.warm = True

    async def revalidate_forever(self) -> None:
        """Every ``cache_revalidate_seconds``: notice models changed by other processes.

        This is what keeps every worker and replica on the newest version in every Redis
        mode (none and cluster have no pub/sub; pub/sub loses messages while Redis is down).
        """
        interval = self.settings.cache_revalidate_seconds
        if interval <= 0:
            return
        while True:
            # While the store is down, keep serving what this process knows.
            with contextlib.suppress(StoreUnavailableError):
                await self.models.revalidate()
            await asyncio.sleep(interval)

    async def prepare_until_done(self) -> None:
        """``prepare`` retried with backoff (the store may come up later) until it succeeds."""
        delay = 0.5
        while True:
            try:
                await self.prepare()
            except Exception as error:  # retried: the store may come up later
                self.preparing_error = _public_reason(error)
                log.warning("model preparation failed, retrying in %.1fs: %s", delay, error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
            else:
                self.preparing_error = None
                return

    def drain(self) -> None:
        """Fail readiness from now on (SIGTERM); requests are still served. The first call
        starts the clock of the pod's grace period (``termination_grace``)."""
        self.draining = True
        if self.stop_deadline is None:
            self.stop_deadline = time.monotonic() + termination_grace(self.settings)

    def flush_budget(self) -> float:
        """Seconds the anomaly log may spend flushing at close: what is left of the grace
        period after the drain and in-flight requests, less ``CLOSE_RESERVE_SECONDS``."""
        self.drain()
        deadline = self.stop_deadline or time.monotonic()
        return max(1.0, deadline - CLOSE_RESERVE_SECONDS - time.monotonic())

    async def close(self) -> None:
        """Finish work in flight, flush the anomaly log, release pools."""
        self.drain()
        self.usage.save()
        await self.scorer.close()
        if self.monitor is not None:
            await self.monitor.close()
        if self.shadow is not None:
            await self.shadow.close()
        if self.anomaly_log is not None:
            await self.anomaly_log.close(grace=self.flush_budget())
        await self.store.close()
        for pool in self._pools:
            pool.shutdown(wait=False, cancel_futures=True)

    async def ensure_declared(self) -> ModelVersion | None:
        """Fit the declared model if the store lacks it or it was declared differently (one
        replica fits, others wait); ``None`` when it has no training data and is not stored."""
        return await self.models.declared(declared_model(self.settings))

    async def ensure_declared_challenger(self) -> ModelVersion | None:
        """Fit the declared challenger (``PYNOMALY_MODEL_CHALLENGER_*``) unless it is stored or
        was promoted; None without one, or without declared training data to fit it on."""
        settings = self.settings
        champion = declared_model(settings)
        if not settings.model_challenger_algorithm or not champion.has_training_source:
            return None
        return await self.challengers.declared(
            champion,
            DeclaredChallenger(
                FitSpec(
                    algorithm=settings.model_challenger_algorithm,
                    parameters=dict(settings.model_challenger_parameters),
                    contamination=settings.model_challenger_contamination,
                    alert_rate=settings.model_challenger_alert_rate,
                )
            ),
        )

    # readiness -----------------------------------------------------------------------

    def ready(self) -> bool:
        """Ready = not draining, declared model loaded (or known to wait for a PUT: it has no
        training data), warm-up done."""
        return not self.draining and self.declared_ready and self.warm

    async def dependencies(self) -> dict[str, str]:
        """State of the store and Redis: ``up``, ``down`` or (Redis) ``disabled``."""
        database_up, redis_up = await asyncio.gather(
            _bounded(self.store.ping()),
            _bounded(self.l2.ping()) if self.l2 is not None else _none(),
        )
        return {
            "store": self.store.kind,
            "database": "up" if database_up else "down",
            "redis": "disabled" if redis_up is None else ("up" if redis_up else "down"),
        }

    async def readiness(self) -> dict[str, Any]:
        """What /readyz shows: the verdict, its reasons and every dependency."""
        dependencies = await self.dependencies()
        body: dict[str, Any] = {
            "ready": self.ready(),
            "draining": self.draining,
            "declared_model": self.settings.model_name or None,
            "declared_model_loaded": self.declared_ready,
            "declared_model_state": self._declared_state(),
            "declared_model_version": self.models.known.get(self.settings.model_name),
            "warm": self.warm,
            "models": self.loaded,
            **dependencies,
        }
        if self.preparing_error:
            body["detail"] = self.preparing_error
        return body

    def _declared_state(self) -> str | None:
        name = self.settings.model_name
        if not name:
            return None
        if name in self.models.known:
            return "loaded"
        return "not_fitted" if self.declared_ready else "loading"

    # models ------------------------------------------------------------------------

    async def fit(self, name: str, spec: FitSpec, data: datasets.TrainingData) -> ModelVersion:
        """Fit and store a new version of ``name``; it serves at once in this process."""
        model = await self.models.fit(name, spec, data)
        self.scorer.forget(name, keep=identity(model.meta))
        if self._announce is not None:
            await self._announce(name)
        return model.meta

    def changed_elsewhere(self, name: str) -> None:
        """Another process fitted or deleted ``name``: look its latest version up again."""
        self.models.forget_lookup(name)

    async def describe(self, name: str) -> ModelVersion:
        """Metadata of the newest version of ``name`` (L3-cached)."""
        return await self.models.describe(name)

    async def report(self, name: str) -> dict[str, Any]:
        """What ``GET /v1/models/{name}`` shows: the newest version's metadata and ``drift``
        (over every worker sharing Redis; see ``scoring.monitoring``)."""
        meta = await self.models.describe(name)
        body = meta.public()
        if self.monitor is not None:
            try:
                model = await self.models.load(name)
            except (StoreUnavailableError, ArtifactRejectedError, ModelNotFoundError):
                body["drift"] = None  # metadata only: the artifact cannot be read now
                return body
            figures = await self.monitor.figures(model.meta, model.detector)
            body = model.meta.public()
            body["drift"] = None if figures is None else figures.public()
        body["challenger"] = await self._challenger_report(name, meta)
        return body

    async def _challenger_report(self, name: str, champion: ModelVersion) -> dict[str, Any] | None:
        try:
            challenger = await self.challengers.describe(name)
        except StoreUnavailableError:
            return None
        if challenger is None:
            return None
        body = challenger.public()
        body.pop("version")
        body.pop("name")
        figures = None
        if self.shadow is not None:
            with contextlib.suppress(StoreUnavailableError, ArtifactRejectedError):
                figures = await self.shadow.figures(name, champion)
        body["agreement"] = None if figures is None else figures.public()
        return body

    # challengers -------------------------------------------------------------------

    async def fit_challenger(
        self, name: str, spec: FitSpec, data: datasets.TrainingData
    ) -> ModelVersion:
        """Fit and store the challenger of ``name``; every worker starts shadowing it."""
        meta = await self.challengers.fit(name, spec, data)
        if self._announce is not None:
            await self._announce(name)
        return meta

    async def promote(self, name: str, *, version: int | None = None) -> ModelVersion:
        """Make the challenger (or a copy of stored ``version``: a rollback) the champion."""
        meta = await self.challengers.promote(name, version=version)
        await self._promoted(meta)
        return meta

    async def _promoted(self, meta: ModelVersion) -> None:
        # ``Challengers.promote`` told this process's registry; now the others.
        if self._announce is not None:
            await self._announce(meta.name)

    async def delete_challenger(self, name: str) -> None:
        """Remove the challenger of ``name``."""
        check_name(name)
        await self.challengers.delete(name)
        if self._announce is not None:
            await self._announce(name)

    async def model(self, name: str) -> LoadedModel:
        """The newest version of ``name``, loaded (a use, for the warm-up order)."""
        self.usage.touch(name)
        return await self.models.load(name)

    async def list_models(self) -> list[ModelVersion]:
        """Newest version of every stored model."""
        return await self.models.list_models()

    async def delete(self, name: str) -> None:
        """Delete every version of ``name`` and its cached scores."""
        existed = await self.models.delete(name)
        self.usage.forget(name)
        self.scorer.forget(name)
        if self.l2 is not None:
            await self.l2.delete_model(name)
        if self._announce is not None:
            await self._announce(name)
        if not existed:
            raise ModelNotFoundError(f"model {name!r} not found")

    @property
    def loaded(self) -> dict[str, int]:
        """Name -> version of the models this process knows."""
        return self.models.known

    # scoring -----------------------------------------------------------------------

    async def detect(self, name: str, instances: Any) -> Detection:
        """Score request rows (a list of lists of numbers) with the newest version of ``name``."""
        return await self.detect_rows(await self.models.load(name), instances)

    async def detect_rows(self, model: LoadedModel, instances: Any) -> Detection:
        """Score request rows with ``model``, already looked up by the caller (the route
        looks it up once, to bound the body before parsing it: a second lookup per request
        cost two cache probes and two shared-memory counter writes)."""
        values = rowing.matrix(
            instances,
            n_features=model.meta.n_features,
            max_rows=self.settings.max_instances_per_request,
        )
        return await self.detect_matrix(model, values)

    async def detect_matrix(self, model: LoadedModel, values: FloatArray) -> Detection:
        """Score a validated (n, d) float64 matrix."""
        meta = model.meta
        scores = await self.scorer.score(meta.name, identity(meta), model.detector, values)
        counter = self._rows_scored.get(meta.name)
        if counter is None:
            counter = self._rows_scored[meta.name] = metrics.tally(
                metrics.ROWS_SCORED.labels(meta.name)
            )
        counter.inc(len(values))
        # Once: the count, the anomaly log and the response use them.
        if len(scores) == 1:  # one row: a Python comparison of the same doubles, shared arrays
            flagged_count = int(float(scores[0]) > meta.threshold)
            flags = _ONE_FLAGGED if flagged_count else _ONE_UNFLAGGED
        else:
            flags = scores > meta.threshold
            flagged_count = int(np.count_nonzero(flags))
        if flagged_count:
            metrics.tally(metrics.ANOMALIES.labels(meta.name)).inc(flagged_count)
            if self.anomaly_log is not None:
                _log_anomalies(self.anomaly_log, meta, scores, values, flags)
        if self.monitor is not None:
            self.monitor.observe(meta, model.detector, scores, values, flagged_count)
        if self.shadow is not None:
            self.shadow.offer(meta, values, scores)
        return Detection(model, scores, values, flags)

    def check_explainable(self, model: LoadedModel) -> None:
        """``ExplainUnsupportedError`` (422) unless ``model`` can explain its flagged rows."""
        explaining.check(model.detector)

    async def explain(self, detection: Detection) -> list[explaining.Explanation | None]:
        """Per row of ``detection``: ``None`` if not flagged, else its top features."""
        assert detection.values is not None  # every Detection built here carries its rows
        model = detection.model
        work = functools.partial(
            explaining.explain,
            model.detector,
            detection.values,
            detection.is_anomaly,
            model.meta.features,
        )
        if sum(detection.is_anomaly) <= EXPLAIN_INLINE_ROWS:
            return work()
        return await asyncio.get_running_loop().run_in_executor(self.scorer.executor, work)

    async def feedback(
        self,
        name: str,
        *,
        labels: Sequence[tuple[int, str]],
        rows: Any,
        row_labels: Sequence[str],
    ) -> dict[str, Any]:
        """Record labels of logged alerts (``(anomaly id, label)``) and of labelled rows.

        Rows are scored with the newest version: flagged rows labelled ``anomaly`` count as
        true positives, ``normal`` as false positives; unflagged ones as false negatives or
        true negatives. Unknown anomaly ids refuse the whole request (422), nothing stored.
        With ``feedback_calibration`` the false positives' rows, scored by the newest version,
        join its calibration sample as a new version. Answers the counts and the precision.
        """
        model = await self.models.load(name)
        meta = model.meta
        at = dt.datetime.now(dt.UTC)
        entries: list[Feedback] = []
        false_rows: list[list[float]] = []
        if labels:
            if self.anomaly_log is not None:
                await self.anomaly_log.flush()
            ids = [anomaly_id for anomaly_id, _ in labels]
            found = {record.id: record for record in await self.store.anomalies_by_id(name, ids)}
            unknown = sorted({anomaly_id for anomaly_id in ids if anomaly_id not in found})
            if unknown:
                shown = ", ".join(str(anomaly_id) for anomaly_id in unknown[:20])
                raise InvalidInputError(f"unknown anomaly id(s) of model {name!r}: {shown}")
            for anomaly_id, label in labels:
                record = found[anomaly_id]
                entries.append(Feedback(name, record.version, label, record.score, anomaly_id, at))
                if label == "false_positive":
                    false_rows.append(record.row)
        if row_labels:
            values = rowing.matrix(
                rows, n_features=meta.n_features, max_rows=self.settings.max_instances_per_request
            )
            scores = await self.scorer.score(meta.name, identity(meta), model.detector, values)
            for index, (label, score) in enumerate(zip(row_labels, scores.tolist(), strict=True)):
                flagged = score > meta.threshold
                if label == "anomaly":
                    kind = "true_positive" if flagged else "false_negative"
                else:
                    kind = "false_positive" if flagged else "true_negative"
                entries.append(Feedback(name, meta.version, kind, score, None, at))
                if kind == "false_positive":
                    false_rows.append(values[index].tolist())
        await self.store.write_feedback(entries)
        for entry in entries:
            metrics.FEEDBACK_LABELS.labels(name, entry.label).inc()
        counts = await self.store.feedback_counts(name)
        alerts = counts.get("true_positive", 0) + counts.get("false_positive", 0)
        precision = counts.get("true_positive", 0) / alerts if alerts else None
        if precision is not None:
            metrics.ALERT_PRECISION.labels(name).set(precision)
        calibrated: dict[str, Any] | None = None
        if self.settings.feedback_calibration and false_rows:
            matrix = np.asarray(false_rows, dtype=np.float64)
            fp_scores = model.detector.score(matrix)
            updated = await self.models.recalibrate(model, fp_scores)
            self.scorer.forget(name, keep=identity(updated.meta))
            if self._announce is not None:
                await self._announce(name)
            calibrated = {"added": len(fp_scores), "version": updated.meta.version}
        return {
            "model": name,
            "recorded": len(entries),
            "counts": counts,
            "precision": precision,
            "calibration": calibrated,
        }

    async def anomalies(
        self, name: str, *, since: dt.datetime | None, limit: int = 1000
    ) -> list[AnomalyRecord]:
        """Logged anomalies of ``name`` after ``since``."""
        check_name(name)
        if self.anomaly_log is not None:
            await self.anomaly_log.flush()
        return await self.store.anomalies(name, since=since, limit=limit)


def declared_model(settings: Settings) -> DeclaredModel:
    """The declared model of ``settings`` (``PYNOMALY_MODEL_*``)."""
    return DeclaredModel(
        name=settings.model_name,
        spec=FitSpec(
            algorithm=settings.model_algorithm,
            parameters=dict(settings.model_parameters),
            contamination=settings.model_contamination,
            alert_rate=settings.model_alert_rate,
        ),
        training_path=settings.model_training_path,
        training_url=settings.model_training_url,
        max_training_rows=settings.model_max_training_rows,
        max_features=settings.model_max_features,
    )


def build(
    settings: Settings,
    *,
    store: ModelStore,
    l2: RedisScoreCache | None = None,
    announce: Announce | None = None,
    shared: SharedSnapshots | None = None,
    usage: ModelUsage | None = None,
) -> DataPlane:
    """Compose a data plane: thread pools, caches, registry, row scorer, anomaly log, drift
    monitor (sharing its sketches through ``shared`` when Redis is configured)."""
    scoring_pool = ThreadPoolExecutor(settings.scoring_threads, thread_name_prefix="pynomaly-score")
    fit_pool = ThreadPoolExecutor(1, thread_name_prefix="pynomaly-fit")
    scorer = RowScorer(
        executor=scoring_pool,
        l1=TTLCache[RowKey, float](
            max_size=settings.cache_memory_max_size,
            ttl=settings.cache_memory_ttl_seconds,
            level="l1",
        ),
        l2=l2,
        max_size=settings.batch_max_size,
        max_wait=settings.batch_max_wait_ms / 1000.0,
        max_concurrency=settings.batch_max_concurrency,
        inline_rows=settings.scoring_inline_max_rows,
    )
    models = Models(
        store,
        signing_key=settings.artifact_signing_key.get_secret_value().encode(),
        fit_pool=fit_pool,
        lookups=TTLCache(max_size=4096, ttl=settings.cache_query_ttl_seconds, level="l3"),
        loaded=TTLCache(
            max_size=settings.cache_model_max_models,
            ttl=settings.cache_memory_ttl_seconds,
            level="l1_models",
            sliding=True,
            # The declared model is what the deployment is for: never evicted, never idle.
            keep=lambda key: key[0] == settings.model_name,
        ),
        on_replaced=scorer.forget,
        keep_versions=settings.model_keep_versions,
        fit_timeout=settings.fit_timeout_seconds,
        fit_server_idle=settings.fit_server_idle_seconds,
    )
    anomaly_log = (
        AnomalyLog(store, max_queue=settings.anomaly_log_queue_size)
        if settings.anomaly_log_enabled
        else None
    )
    return DataPlane(
        settings,
        models=models,
        scorer=scorer,
        l2=l2,
        anomaly_log=anomaly_log,
        announce=announce,
        pools=(scoring_pool, fit_pool),
        shared=shared,
        monitor=DriftMonitor(
            shared=shared,
            window=settings.drift_window_rows,
            min_rows=settings.drift_min_rows,
            publish_seconds=settings.drift_publish_seconds,
            max_models=settings.cache_model_max_models,
        )
        if settings.drift_enabled
        else None,
        usage=usage,
    )


def training_from_instances(
    instances: Any, *, max_rows: int, max_features: int = datasets.MAX_FEATURES
) -> datasets.TrainingData:
    """JSON ``instances`` as training data (validated like scoring rows)."""
    values = rowing.matrix(instances, n_features=None, max_rows=max_rows, max_features=max_features)
    if len(values) < 2:
        raise InvalidInputError("fitting needs at least 2 rows")
    features = [f"f{index}" for index in range(values.shape[1])]
    return datasets.TrainingData(values, features, len(values), sampled=False)


def _public_reason(error: Exception) -> str:
    """What /readyz may show about a failure: our own messages, never a driver's text."""
    if isinstance(
        error,
        InvalidInputError | FitTimeoutError | StoreUnavailableError | ArtifactRejectedError,
    ):
        return f"{type(error).__name__}: {error}"
    return f"{type(error).__name__} (details in the service log)"


def _log_anomalies(
    anomaly_log: AnomalyLog,
    meta: ModelVersion,
    scores: FloatArray,
    values: FloatArray,
    flags: npt.NDArray[np.bool_],
) -> None:
    flagged = np.flatnonzero(flags)
    at = dt.datetime.now(dt.UTC)
    for index in flagged.tolist():
        anomaly_log.record(
            AnomalyRecord(
                meta.name,
                meta.version,
                float(scores[index]),
                meta.threshold,
                values[index].tolist(),
                at,
            )
        )


async def _none() -> None:
    return None


async def _bounded(ping: Coroutine[Any, Any, bool]) -> bool:
    try:
        return await asyncio.wait_for(ping, PING_TIMEOUT)
    except TimeoutError:
        return False

"""The data plane: fit, look up, score and delete models, with no HTTP in it.

It composes the registry (store + L3 lookup cache + L1 model cache), the row scorer (L1/L2
row caches + micro-batcher) and the anomaly log. The API layer translates HTTP to calls here;
tests and benchmarks can drive it directly.

Lookups: the latest version of a name is cached for ``cache_query_ttl_seconds`` (L3); a
version's fitted detector stays loaded while used (sliding TTL, LRU bounded). A fit or delete
through *this* process takes effect at once; other processes see it when their L3 entry
expires. While the store is unreachable, models this process already knows keep scoring.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from pynomaly_detector import datasets, heap, metrics
from pynomaly_detector.caching.memory import TTLCache
from pynomaly_detector.caching.redis_cache import RedisScoreCache
from pynomaly_detector.detectors import catalog, fitted
from pynomaly_detector.detectors.errors import InvalidInputError
from pynomaly_detector.registry import signing
from pynomaly_detector.registry.anomaly_log import AnomalyLog
from pynomaly_detector.registry.store import Draft, ModelStore, StoreUnavailableError
from pynomaly_detector.registry.versions import AnomalyRecord, ModelVersion, now, valid_name
from pynomaly_detector.scoring import rows as rowing
from pynomaly_detector.scoring.scorer import RowKey, RowScorer
from pynomaly_detector.settings import Settings

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]


class ModelNotFoundError(LookupError):
    """No stored model has this name (404)."""


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A model version ready to score."""

    meta: ModelVersion
    detector: fitted.FittedDetector


@dataclass(frozen=True, slots=True)
class Detection:
    """Scores of a request's rows under one model version."""

    model: LoadedModel
    scores: FloatArray

    @property
    def is_anomaly(self) -> list[bool]:
        """Per row: score above the model's threshold."""
        return (self.scores > self.model.meta.threshold).tolist()  # type: ignore[no-any-return]


class DataPlane:
    """Everything the service does, minus HTTP."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: ModelStore,
        l2: RedisScoreCache | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.l2 = l2
        self.announce: Callable[[str], Awaitable[None]] | None = None
        """Tells other processes that a model changed (Redis pub/sub), when configured."""
        self._key = settings.artifact_signing_key.get_secret_value().encode()
        self._scoring_pool = ThreadPoolExecutor(
            settings.scoring_threads, thread_name_prefix="pynomaly-score"
        )
        self._fit_pool = ThreadPoolExecutor(1, thread_name_prefix="pynomaly-fit")
        self.lookups: TTLCache[str, ModelVersion] = TTLCache(
            max_size=4096, ttl=settings.cache_query_ttl_seconds, level="l3"
        )
        self.models: TTLCache[tuple[str, int], fitted.FittedDetector] = TTLCache(
            max_size=settings.cache_model_max_models,
            ttl=settings.cache_memory_ttl_seconds,
            level="l1_models",
            sliding=True,
        )
        self._known: dict[str, ModelVersion] = {}
        """Last version seen per name: keeps scoring while the store is unreachable."""
        self._rows_scored: dict[str, Any] = {}
        self._loading: dict[tuple[str, int], asyncio.Future[fitted.FittedDetector]] = {}
        self.scorer = RowScorer(
            executor=self._scoring_pool,
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
        self.anomaly_log = (
            AnomalyLog(store, max_queue=settings.anomaly_log_queue_size)
            if settings.anomaly_log_enabled
            else None
        )
        self.declared_ready = not settings.model_name
        """False until the declared model (if any) is loaded."""
        metrics.DECLARED_MODEL_LOADED.set(0 if settings.model_name else 1)
        self.warm = not settings.cache_warmup
        """False until warm-up has loaded stored models."""

    # lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store, start the anomaly log; then warm up and ensure the declared model."""
        await self.store.open()
        if self.anomaly_log is not None:
            self.anomaly_log.start()

    async def prepare(self) -> None:
        """Warm-up and declared model; failures are logged and retried by the caller."""
        if self.settings.model_name and not self.declared_ready:
            await self.ensure_declared()
            self.declared_ready = True
            metrics.DECLARED_MODEL_LOADED.set(1)
        if not self.warm:
            await self.warmup()
            self.warm = True

    async def close(self) -> None:
        """Finish work in flight, flush the anomaly log, release pools."""
        await self.scorer.close()
        if self.anomaly_log is not None:
            await self.anomaly_log.close()
        await self.store.close()
        self._scoring_pool.shutdown(wait=False, cancel_futures=True)
        self._fit_pool.shutdown(wait=False, cancel_futures=True)

    async def warmup(self) -> None:
        """Load the newest version of every stored model (up to the model cache's size)."""
        for meta in (await self.store.list_models())[: self.settings.cache_model_max_models]:
            self._remember(meta)
            try:
                await self._detector(meta)
            except (signing.ArtifactRejectedError, ModelNotFoundError) as error:
                # One bad artifact must not keep the replica unready; requests get a 503.
                log.warning("warm-up skipped %s v%d: %s", meta.name, meta.version, error)

    async def ensure_declared(self) -> ModelVersion:
        """Fit the declared model if the store lacks it (one replica fits, others wait).

        When its newest stored version fails signature verification (signed under another
        key: the signing-key Secret was re-created; or altered), the declared model is fitted
        again from its declared training data and stored as a new version under this key.
        Nothing unverified is unpickled. If another worker or replica stored a newer version
        while this one was fitting, that version is used instead of storing a second one.
        """
        settings = self.settings
        fitted_here = False

        async def fit() -> Draft:
            nonlocal fitted_here
            fitted_here = True
            loop = asyncio.get_running_loop()
            data = await loop.run_in_executor(self._fit_pool, self._declared_training_data)
            return await self._draft(
                settings.model_name,
                settings.model_algorithm,
                dict(settings.model_parameters),
                settings.model_contamination,
                data,
            )

        meta = await self.store.ensure(settings.model_name, fit)
        self._remember(meta)
        try:
            await self._detector(meta)
        except signing.ArtifactRejectedError as error:
            log.warning(
                "declared model %s v%d cannot be loaded (%s): fitting it again from its "
                "declared training data",
                meta.name,
                meta.version,
                error,
            )
            draft = await fit()
            newest = await self.store.latest(settings.model_name)
            if newest is not None and newest.version > meta.version:
                meta = newest  # another worker or replica refitted meanwhile
                fitted_here = False
            else:
                meta = await self.store.save(draft)
            self._remember(meta)
            await self._detector(meta)
        log.info(
            "declared model %s v%d %s (%s, %d training rows, threshold %.6g)",
            meta.name,
            meta.version,
            "fitted by this replica" if fitted_here else "loaded from the registry",
            meta.algorithm,
            meta.n_samples,
            meta.threshold,
        )
        return meta

    def _declared_training_data(self) -> datasets.TrainingData:
        settings = self.settings
        if settings.model_training_path:
            return datasets.read_csv(
                settings.model_training_path, max_rows=settings.model_max_training_rows
            )
        if settings.model_training_url:
            import tempfile
            import urllib.request

            if not settings.model_training_url.startswith(("http://", "https://")):
                raise InvalidInputError("PYNOMALY_MODEL_TRAINING_URL must be http(s)")
            with tempfile.TemporaryFile() as spool:
                # Scheme checked above: only http(s) URLs are opened.
                with urllib.request.urlopen(settings.model_training_url, timeout=60) as response:  # noqa: S310
                    while block := response.read(1 << 20):
                        spool.write(block)
                spool.seek(0)
                return datasets.read_csv(spool, max_rows=settings.model_max_training_rows)
        raise InvalidInputError(
            "the declared model needs PYNOMALY_MODEL_TRAINING_PATH or PYNOMALY_MODEL_TRAINING_URL"
        )

    # models ------------------------------------------------------------------------

    async def fit(
        self,
        name: str,
        *,
        algorithm: str,
        parameters: dict[str, Any],
        contamination: float,
        data: datasets.TrainingData,
    ) -> ModelVersion:
        """Fit and store a new version of ``name``; it serves at once in this process."""
        check_name(name)
        draft = await self._draft(name, algorithm, parameters, contamination, data)
        meta = await self.store.save(draft)
        detector = await asyncio.get_running_loop().run_in_executor(
            self._fit_pool,
            functools.partial(signing.load, self._key, draft[1], meta.signature, name=meta.name),
        )
        self.models.put((name, meta.version), detector)
        heap.settle()
        metrics.MODEL_LOADS.labels("fit").inc()
        metrics.model_loaded(meta)
        self._remember(meta)
        self.scorer.forget(name, keep_version=meta.version)
        if self.announce is not None:
            await self.announce(name)
        return meta

    async def _draft(
        self,
        name: str,
        algorithm: str,
        parameters: dict[str, Any],
        contamination: float,
        data: datasets.TrainingData,
    ) -> Draft:
        spec = catalog.lookup(algorithm)

        def work() -> Draft:
            detector = fitted.fit(
                spec.name,
                np.asarray(data.values, dtype=np.float64),
                parameters=parameters,
                contamination=contamination,
            )
            artifact, signature, digest = signing.dump(self._key, detector)
            meta = ModelVersion(
                name=name,
                version=0,
                algorithm=spec.name,
                parameters=parameters,
                contamination=contamination,
                features=list(data.features),
                n_samples=detector.n_samples,
                threshold=detector.threshold,
                fitted_at=now(),
                content_hash=digest,
                signature=signature,
                extra=data.provenance,
            )
            return meta, artifact

        return await asyncio.get_running_loop().run_in_executor(self._fit_pool, work)

    def changed_elsewhere(self, name: str) -> None:
        """Another process fitted or deleted ``name``: look its latest version up again."""
        self.lookups.pop(name)

    def _remember(self, meta: ModelVersion) -> None:
        self.lookups.put(meta.name, meta)
        self._known[meta.name] = meta

    async def describe(self, name: str) -> ModelVersion:
        """Metadata of the newest version of ``name`` (L3-cached)."""
        check_name(name)
        meta = self.lookups.get(name)
        if meta is not None:
            return meta
        try:
            meta = await self.store.latest(name)
        except StoreUnavailableError:
            known = self._known.get(name)
            if known is None:
                raise
            return known  # the store is down: keep serving what this process knows
        if meta is None:
            self._known.pop(name, None)
            raise ModelNotFoundError(f"model {name!r} not found")
        self._remember(meta)
        return meta

    async def model(self, name: str) -> LoadedModel:
        """The newest version of ``name``, loaded."""
        meta = self.lookups.get(name)
        if meta is None:
            meta = await self.describe(name)
        detector = self.models.get((name, meta.version))
        if detector is None:
            detector = await self._detector(meta)
        return LoadedModel(meta, detector)

    async def _detector(self, meta: ModelVersion) -> fitted.FittedDetector:
        key = (meta.name, meta.version)
        cached = self.models.get(key)
        if cached is not None:
            return cached
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[fitted.FittedDetector] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            artifact = await self.store.artifact(meta.name, meta.version)
            if artifact is None:
                raise ModelNotFoundError(f"model {meta.name!r} version {meta.version} not found")
            # The default pool, not the fit pool: a long fit must not delay loading a model.
            detector = await asyncio.get_running_loop().run_in_executor(
                None,
                functools.partial(
                    signing.load, self._key, artifact, meta.signature, name=meta.name
                ),
            )
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: waiters re-raise it, nobody logs it as lost
            raise
        finally:
            self._loading.pop(key, None)
        self.models.put(key, detector)
        heap.settle()
        metrics.MODEL_LOADS.labels("store").inc()
        metrics.model_loaded(meta)
        future.set_result(detector)
        return detector

    async def list_models(self) -> list[ModelVersion]:
        """Newest version of every stored model."""
        found = await self.store.list_models()
        for meta in found:
            self._remember(meta)
        return found

    async def delete(self, name: str) -> None:
        """Delete every version of ``name`` and its cached scores."""
        check_name(name)
        existed = await self.store.delete(name)
        self.lookups.pop(name)
        self._known.pop(name, None)
        self.models.discard_where(lambda key: key[0] == name)
        self.scorer.forget(name)
        if self.l2 is not None:
            await self.l2.delete_model(name)
        if self.announce is not None:
            await self.announce(name)
        if not existed:
            raise ModelNotFoundError(f"model {name!r} not found")

    # scoring -----------------------------------------------------------------------

    async def detect(self, name: str, instances: Any) -> Detection:
        """Score request rows (a list of lists of numbers) with the newest version of ``name``."""
        model = await self.model(name)
        values = rowing.matrix(
            instances,
            n_features=model.meta.n_features,
            max_rows=self.settings.max_instances_per_request,
        )
        return await self.detect_matrix(model, values)

    async def detect_matrix(self, model: LoadedModel, values: FloatArray) -> Detection:
        """Score a validated (n, d) float64 matrix."""
        meta = model.meta
        scores = await self.scorer.score(meta.name, meta.version, model.detector, values)
        counter = self._rows_scored.get(meta.name)
        if counter is None:
            counter = self._rows_scored[meta.name] = metrics.ROWS_SCORED.labels(meta.name)
        counter.inc(len(values))
        flagged_count = int(np.count_nonzero(scores > meta.threshold))
        if flagged_count:
            metrics.ANOMALIES.labels(meta.name).inc(flagged_count)
        detection = Detection(model, scores)
        if self.anomaly_log is not None:
            flagged = np.flatnonzero(scores > meta.threshold)
            if len(flagged):
                at = dt.datetime.now(dt.UTC)
                for index in flagged.tolist():
                    self.anomaly_log.record(
                        AnomalyRecord(
                            meta.name,
                            meta.version,
                            float(scores[index]),
                            meta.threshold,
                            values[index].tolist(),
                            at,
                        )
                    )
        return detection

    async def anomalies(
        self, name: str, *, since: dt.datetime | None, limit: int = 1000
    ) -> list[AnomalyRecord]:
        """Logged anomalies of ``name`` after ``since``."""
        check_name(name)
        if self.anomaly_log is not None:
            await self.anomaly_log.flush()
        return await self.store.anomalies(name, since=since, limit=limit)

    @property
    def loaded(self) -> dict[str, int]:
        """Name -> version of the models this process knows."""
        return {name: meta.version for name, meta in self._known.items()}


def check_name(name: str) -> None:
    """Refuse names that are not safe as file names and keys (422)."""
    if not valid_name(name):
        raise InvalidInputError(
            f"invalid model name {name!r}: use 1-63 lower-case letters, digits, '.', '_' or '-'"
        )


def training_from_instances(instances: Any, *, max_rows: int) -> datasets.TrainingData:
    """JSON ``instances`` as training data (validated like scoring rows)."""
    values = rowing.matrix(instances, n_features=None, max_rows=max_rows)
    if len(values) < 2:
        raise InvalidInputError("fitting needs at least 2 rows")
    features = [f"f{index}" for index in range(values.shape[1])]
    return datasets.TrainingData(values, features, len(values), sampled=False)

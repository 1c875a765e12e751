"""The model registry as one process sees it: describe, load, fit and the declared model.

``Models`` puts two in-process caches in front of a ``ModelStore``: L3, the newest version
of each name (``lookups``, reused for ``cache_query_ttl_seconds`` or until an invalidation),
and L1 models, the fitted detectors of loaded versions (``loaded``, LRU with a sliding TTL).

Freshness, in every Redis mode: a version number is never reused by the store, so
``(name, version)`` names one model forever, and the scorer keys rows and batchers on
``identity`` (version and content hash). ``revalidate`` reads the store's *generation* (a
counter of saves and deletes; one small read every ``cache_revalidate_seconds``) and, when
it moved, starts a new local *epoch*. Every L3 entry is stamped with the epoch its lookup
started in, and an entry from an earlier epoch is looked up again. Redis pub/sub
(standalone, sentinel) only makes that immediate. An entry never goes back to an older
version than one this process has seen as recently, so concurrent fits of one name cannot
pin a process to the older one.
It verifies every artifact before unpickling it, loads each version once however many
requests ask at the same moment, and keeps scoring what it knows while the store is down.
No HTTP here; the data plane puts scoring and the anomaly log beside it.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import functools
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pynomaly_detector import datasets, heap, metrics
from pynomaly_detector.caching.memory import TTLCache
from pynomaly_detector.detectors import calibration, catalog, fitted, fitting
from pynomaly_detector.detectors.errors import InvalidInputError
from pynomaly_detector.registry import signing
from pynomaly_detector.registry.store import Draft, ModelStore, StoreUnavailableError
from pynomaly_detector.registry.versions import ModelVersion, now, valid_name

log = logging.getLogger(__name__)


class ModelNotFoundError(LookupError):
    """No stored model has this name (404)."""


class DeclaredNotFittedError(ModelNotFoundError):
    """The deployment declares this model but has no training data for it yet (404)."""


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A model version ready to score."""

    meta: ModelVersion
    detector: fitted.FittedDetector


@dataclass(frozen=True, slots=True)
class FitSpec:
    """What a fit is asked for, whoever asks (a PUT, a declaration, a challenger): the
    algorithm, its parameters and the rule that sets the threshold."""

    algorithm: str
    parameters: dict[str, Any] = field(default_factory=dict)
    contamination: float = 0.1
    """Expected share of anomalies in the training rows (sets the threshold)."""
    alert_rate: float | None = None
    """Threshold from this alert rate (calibration quantile) instead of ``contamination``."""


@dataclass(frozen=True, slots=True)
class DeclaredModel:
    """The model a deployment declares (``PYNOMALY_MODEL_*``): fitted once if missing."""

    name: str
    spec: FitSpec
    training_path: str = ""
    training_url: str = ""
    max_training_rows: int = 1_000_000
    max_features: int = datasets.MAX_FEATURES

    @property
    def has_training_source(self) -> bool:
        """Whether the service can fit it by itself (else it waits for a PUT)."""
        return bool(self.training_path or self.training_url)

    def training_data(self) -> datasets.TrainingData:
        """Read the declared training rows (blocking: run it in a thread)."""
        return datasets.read_source(
            path=self.training_path,
            url=self.training_url,
            max_rows=self.max_training_rows,
            max_features=self.max_features,
        )

    def digest(self) -> str:
        """What a stored version must carry to be this declaration (blocking: reads the file).

        Covers the algorithm, its parameters, the contamination and the training source (the
        file's bytes, or the URL): change any of them and the declared model is fitted again.
        """
        source = hashlib.sha256()
        if self.training_path:
            with open(self.training_path, "rb") as handle:
                while block := handle.read(1 << 20):
                    source.update(block)
        else:
            source.update(self.training_url.encode())
        spec = self.spec
        body = {
            "algorithm": catalog.lookup(spec.algorithm).name,
            "parameters": spec.parameters,
            "contamination": spec.contamination,
            "source": source.hexdigest(),
        }
        if spec.alert_rate is not None:
            # Only when set: declarations from before alert rates keep their digest (no refit).
            body["alert_rate"] = spec.alert_rate
        return declaration_digest(body)


def declaration_digest(body: dict[str, Any]) -> str:
    """The digest a stored version carries to be the declaration ``body`` (32 hex digits)."""
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32]


def identity(meta: ModelVersion) -> str:
    """What names one fitted model forever: its version and the hash of its artifact."""
    return f"{meta.version}-{meta.content_hash[:16]}"


Replaced = Callable[[str, "str | None"], None]
"""Called with (name, identity now served or None when deleted) when a name changes."""


def check_name(name: str) -> None:
    """Refuse names that are not safe as file names and keys (422)."""
    if not valid_name(name):
        raise InvalidInputError(
            f"invalid model name {name!r}: use 1-63 lower-case letters, digits, '.', '_' or '-'"
        )


class Models:
    """Stored models through the L3 lookup cache and the L1 model cache of this process."""

    def __init__(
        self,
        store: ModelStore,
        *,
        signing_key: bytes,
        fit_pool: Executor,
        lookups: TTLCache[str, tuple[ModelVersion, int]],
        loaded: TTLCache[tuple[str, int], fitted.FittedDetector],
        on_replaced: Replaced | None = None,
        keep_versions: int = 0,
        fit_timeout: float = 300.0,
        fit_server_idle: float = fitting.DEFAULT_IDLE_SECONDS,
    ) -> None:
        self.store = store
        self._key = signing_key
        self.signing_key = signing_key
        """The key artifacts are signed with (challengers are verified with it too)."""
        self._fit_pool = fit_pool
        self.fit_timeout = fit_timeout
        """Wall-clock limit of one fit (its process is killed beyond it)."""
        self.fit_server_idle = fit_server_idle
        """Seconds without a fit before the fit fork server is stopped (0: at once)."""
        self.lookups = lookups
        """L3: name -> (newest version's metadata, epoch its lookup started in)."""
        self.generation: int | None = None
        """The store generation last read by ``revalidate``."""
        self.epoch = 0
        """Counts the changes ``revalidate`` noticed (local, so a reset store cannot lower it)."""
        self._known_epoch: dict[str, int] = {}
        self._on_replaced = on_replaced
        self.keep_versions = keep_versions
        """Versions kept per name after a fit (0: all)."""
        self.loaded = loaded
        """L1 models: (name, version) -> fitted detector."""
        self._known: dict[str, ModelVersion] = {}
        """Last version seen per name: keeps scoring while the store is unreachable."""
        self._loading: dict[tuple[str, int], asyncio.Future[fitted.FittedDetector]] = {}
        self._unfitted: set[str] = set()
        """Declared names without training data and without a stored version yet."""

    @property
    def known(self) -> dict[str, int]:
        """Name -> version of the models this process knows."""
        return {name: meta.version for name, meta in self._known.items()}

    def remember(self, meta: ModelVersion, stamp: int | None = None) -> None:
        """``meta`` is the newest version of its name, as read in epoch ``stamp``."""
        stamp = self.epoch if stamp is None else stamp
        known = self._known.get(meta.name)
        if (
            known is not None
            and known.version > meta.version
            and self._known_epoch.get(meta.name, 0) >= stamp
        ):
            # A newer version was seen at least as recently (concurrent fits): never go
            # back. A read from a later epoch wins even when older (a store that was reset).
            return
        self.lookups.put(meta.name, (meta, stamp))
        self._known[meta.name] = meta
        self._known_epoch[meta.name] = stamp
        if known is not None and known.version != meta.version:
            self.loaded.discard_where(lambda key: key[0] == meta.name and key[1] != meta.version)
            if self._on_replaced is not None:
                self._on_replaced(meta.name, identity(meta))

    def forget_lookup(self, name: str) -> None:
        """Look the newest version of ``name`` up in the store next time."""
        self.lookups.pop(name)

    def forget(self, name: str) -> None:
        """Drop everything this process holds about ``name`` (deleted)."""
        self.lookups.pop(name)
        self._known.pop(name, None)
        self._known_epoch.pop(name, None)
        self.loaded.discard_where(lambda key: key[0] == name)
        if self._on_replaced is not None:
            self._on_replaced(name, None)

    async def revalidate(self) -> bool:
        """Read the store's generation; whether any model changed since the last read."""
        generation = await self.store.generation()
        if generation == self.generation:
            return False
        self.generation = generation
        self.epoch += 1
        return True

    def _cached(self, name: str) -> ModelVersion | None:
        entry = self.lookups.get(name)
        if entry is None or entry[1] != self.epoch:
            return None
        return entry[0]

    # reading -------------------------------------------------------------------------

    async def describe(self, name: str) -> ModelVersion:
        """Metadata of the newest version of ``name`` (L3-cached)."""
        check_name(name)
        meta = self._cached(name)
        if meta is not None:
            return meta
        stamp = self.epoch
        try:
            meta = await self.store.latest(name)
        except StoreUnavailableError:
            known = self._known.get(name)
            if known is None:
                raise
            return known  # the store is down: keep serving what this process knows
        if meta is None:
            if name in self._known:
                self.forget(name)  # deleted by another process
            if name in self._unfitted:
                raise DeclaredNotFittedError(
                    f"model {name!r} is declared, not fitted yet: PUT /v1/models/{name} with"
                    " its training rows (JSON 'instances' or a CSV 'file')"
                )
            raise ModelNotFoundError(f"model {name!r} not found")
        self.remember(meta, stamp)
        return self._known[meta.name]

    async def load(self, name: str, *, source: str = "store") -> LoadedModel:
        """The newest version of ``name``, loaded (``source``: the metric label of a load:
        ``store`` on a request's path, ``warmup`` ahead of requests)."""
        meta = self._cached(name)
        if meta is None:
            meta = await self.describe(name)
        detector = self.loaded.get((name, meta.version))
        if detector is None:
            detector = await self.detector(meta, source=source)
        return LoadedModel(meta, detector)

    async def detector(self, meta: ModelVersion, *, source: str = "store") -> fitted.FittedDetector:
        """The fitted detector of ``meta`` (loaded once, however many callers wait)."""
        key = (meta.name, meta.version)
        cached = self.loaded.get(key)
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
                    signing.load, self._key, artifact, meta.signature, name=meta.name, meta=meta
                ),
            )
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: waiters re-raise it, nobody logs it as lost
            raise
        finally:
            self._loading.pop(key, None)
        self.loaded.put(key, detector)
        heap.settle()
        metrics.MODEL_LOADS.labels(source).inc()
        metrics.model_loaded(meta)
        future.set_result(detector)
        return detector

    async def list_models(self) -> list[ModelVersion]:
        """Newest version of every stored model."""
        stamp = self.epoch
        found = await self.store.list_models()
        for meta in found:
            self.remember(meta, stamp)
        return found

    async def warmup(self, limit: int, *, first: Sequence[str] = ()) -> None:
        """Load the newest version of stored models (at most ``limit``): the names in
        ``first`` in their order (the most used), then the others by name."""
        stamp = self.epoch
        rank = {name: index for index, name in enumerate(first)}
        stored = sorted(
            await self.store.list_models(),
            key=lambda meta: (rank.get(meta.name, len(rank)), meta.name),
        )
        for meta in stored[:limit]:
            self.remember(meta, stamp)
            try:
                await self.detector(meta, source="warmup")
            except (signing.ArtifactRejectedError, ModelNotFoundError) as error:
                # One bad artifact must not keep the replica unready; requests get a 503.
                log.warning("warm-up skipped %s v%d: %s", meta.name, meta.version, error)

    # writing -------------------------------------------------------------------------

    async def fit(self, name: str, spec: FitSpec, data: datasets.TrainingData) -> LoadedModel:
        """Fit and store a new version of ``name``; it serves at once in this process."""
        check_name(name)
        return await self._serve(await self.draft(name, spec, data), settle=True)

    async def recalibrate(self, model: LoadedModel, scores: np.ndarray) -> LoadedModel:
        """A new version of ``model`` whose calibration sample also holds ``scores``.

        The estimator is unchanged; with an ``alert_rate`` the threshold is recomputed from
        the new sample (else only p-values move). Stored, signed and served like a fit.
        """
        meta = model.meta

        def work() -> Draft:
            detector = copy.copy(model.detector)
            base = detector.calibration_scores
            if base is None:
                raise InvalidInputError(
                    "this model version has no calibration sample to feed back into; refit it"
                )
            detector.calibration_scores = calibration.merged(base, scores)
            if detector.alert_rate is not None:
                detector.threshold = calibration.alert_threshold(
                    detector.calibration_scores, detector.alert_rate
                )
            artifact, _, digest = signing.dump(self._key, detector)
            fed = int(meta.extra.get("calibration_feedback", 0)) + len(scores)
            draft = dataclasses.replace(
                meta,
                version=0,
                threshold=detector.threshold,
                content_hash=digest,
                signature="",
                calibration_size=len(detector.calibration_scores),
                extra={
                    **meta.extra,
                    "calibration_feedback": fed,
                    "recalibrated_from": meta.version,
                },
            )
            return dataclasses.replace(
                draft, signature=signing.seal(self._key, draft, artifact)
            ), artifact

        draft = await asyncio.get_running_loop().run_in_executor(self._fit_pool, work)
        return await self._serve(draft, settle=False)

    async def _serve(self, draft: Draft, *, settle: bool) -> LoadedModel:
        """Store ``draft`` as the next version, load it here (verified) and serve it."""
        stamp = self.epoch
        meta = await self.store.save(draft)
        detector = await asyncio.get_running_loop().run_in_executor(
            self._fit_pool,
            functools.partial(
                signing.load, self._key, draft[1], meta.signature, name=meta.name, meta=meta
            ),
        )
        self.loaded.put((meta.name, meta.version), detector)
        if settle:
            heap.settle()
        metrics.MODEL_LOADS.labels("fit").inc()
        metrics.model_loaded(meta)
        self.remember(meta, stamp)
        await self.prune(meta.name)
        return LoadedModel(meta, detector)

    async def prune(self, name: str) -> None:
        """Delete old versions beyond ``keep_versions`` (never the newest: it is served)."""
        if self.keep_versions > 0:
            try:
                await self.store.prune(name, keep=self.keep_versions)
            except StoreUnavailableError as error:  # the next fit prunes them
                log.warning("could not prune old versions of %s: %s", name, error)

    async def draft(self, name: str, spec: FitSpec, data: datasets.TrainingData) -> Draft:
        """Fit in a child process (killed past ``fit_timeout``) and sign: a version ready to
        store."""
        algorithm = catalog.lookup(spec.algorithm)
        parameters = spec.parameters
        result = await fitting.fit(
            algorithm.name,
            np.asarray(data.values, dtype=np.float64),
            parameters=parameters,
            contamination=spec.contamination,
            alert_rate=spec.alert_rate,
            limit=self.fit_timeout,
            executor=self._fit_pool,
            idle_seconds=self.fit_server_idle,
        )

        def work() -> Draft:
            artifact = result.artifact
            meta = ModelVersion(
                name=name,
                version=0,
                algorithm=algorithm.name,
                parameters=parameters,
                contamination=result.contamination,
                features=list(data.features),
                n_samples=result.n_samples,
                threshold=result.threshold,
                fitted_at=now(),
                content_hash=signing.content_hash(artifact),
                signature="",
                extra=data.provenance,
                alert_rate=result.alert_rate,
                calibration_size=result.calibration_size,
            )
            return dataclasses.replace(
                meta, signature=signing.seal(self._key, meta, artifact)
            ), artifact

        return await asyncio.get_running_loop().run_in_executor(self._fit_pool, work)

    async def delete(self, name: str) -> bool:
        """Delete every version of ``name``; whether it existed."""
        check_name(name)
        existed = await self.store.delete(name)
        self.forget(name)
        return existed

    async def declared(self, declared: DeclaredModel) -> ModelVersion | None:
        """Fit the declared model if the store lacks it (one replica fits, others wait).

        A stored version is the declared model only if it was fitted from this declaration
        (algorithm, parameters, contamination, training source: ``DeclaredModel.digest``):
        when the declaration changed, exactly one worker of one replica fits it again as a
        new version and everyone loads that. Without a training source nothing can be fitted:
        the newest stored version (a PUT) is served, or none (``None``: requests get a 404
        saying how to fit it) and readiness does not wait for it.

        When its newest stored version fails signature verification (signed under another
        key: the signing-key Secret was re-created; or altered), the declared model is fitted
        again from its declared training data and stored as a new version under this key.
        Nothing unverified is unpickled. If another worker or replica stored a newer version
        while this one was fitting, that version is used instead of storing a second one.
        """
        if not declared.has_training_source:
            stored = await self.store.latest(declared.name)
            if stored is None:
                self._unfitted.add(declared.name)
                log.warning(
                    "declared model %s has no training data (PYNOMALY_MODEL_TRAINING_PATH/_URL):"
                    " it answers 404 until fitted with PUT /v1/models/%s",
                    declared.name,
                    declared.name,
                )
                return None
            self.remember(stored)
            await self.detector(stored)
            return stored
        self._unfitted.discard(declared.name)
        fitted_here = False
        loop = asyncio.get_running_loop()
        digest = await loop.run_in_executor(self._fit_pool, declared.digest)

        async def fit() -> Draft:
            nonlocal fitted_here
            fitted_here = True
            data = await loop.run_in_executor(self._fit_pool, declared.training_data)
            spec = dataclasses.replace(declared.spec, parameters=dict(declared.spec.parameters))
            meta, artifact = await self.draft(declared.name, spec, data)
            return dataclasses.replace(meta, extra={**meta.extra, "declaration": digest}), artifact

        meta = await self.store.ensure(
            declared.name, fit, accept=lambda stored: stored.extra.get("declaration") == digest
        )
        self.remember(meta)
        try:
            await self.detector(meta)
        except signing.ArtifactRejectedError as error:
            log.warning(
                "declared model %s v%d cannot be loaded (%s): fitting it again from its "
                "declared training data",
                meta.name,
                meta.version,
                error,
            )
            rejected = meta.version
            fitted_here = False
            # Under the store's lock: one worker of one replica refits, the others find its
            # newer version (or one stored meanwhile) and load that.
            meta = await self.store.ensure(
                declared.name, fit, accept=lambda stored: stored.version > rejected
            )
            self.remember(meta)
            await self.detector(meta)
        if fitted_here:
            await self.prune(declared.name)
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

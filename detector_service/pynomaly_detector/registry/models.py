"""The model registry as one process sees it: describe, load, fit and the declared model.

``Models`` puts two in-process caches in front of a ``ModelStore``: L3, the newest version
of each name (``lookups``, reused for ``cache_query_ttl_seconds`` or until an invalidation),
and L1 models, the fitted detectors of loaded versions (``loaded``, LRU with a sliding TTL).
It verifies every artifact before unpickling it, loads each version once however many
requests ask at the same moment, and keeps scoring what it knows while the store is down.
No HTTP here; the data plane puts scoring and the anomaly log beside it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pynomaly_detector import datasets, heap, metrics
from pynomaly_detector.caching.memory import TTLCache
from pynomaly_detector.detectors import catalog, fitted
from pynomaly_detector.detectors.errors import InvalidInputError
from pynomaly_detector.registry import signing
from pynomaly_detector.registry.store import Draft, ModelStore, StoreUnavailableError
from pynomaly_detector.registry.versions import ModelVersion, now, valid_name

log = logging.getLogger(__name__)


class ModelNotFoundError(LookupError):
    """No stored model has this name (404)."""


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A model version ready to score."""

    meta: ModelVersion
    detector: fitted.FittedDetector


@dataclass(frozen=True, slots=True)
class DeclaredModel:
    """The model a deployment declares (``PYNOMALY_MODEL_*``): fitted once if missing."""

    name: str
    algorithm: str
    parameters: dict[str, Any] = field(default_factory=dict)
    contamination: float = 0.1
    training_path: str = ""
    training_url: str = ""
    max_training_rows: int = 1_000_000

    def training_data(self) -> datasets.TrainingData:
        """Read the declared training rows (blocking: run it in a thread)."""
        return datasets.read_source(
            path=self.training_path, url=self.training_url, max_rows=self.max_training_rows
        )


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
        lookups: TTLCache[str, ModelVersion],
        loaded: TTLCache[tuple[str, int], fitted.FittedDetector],
    ) -> None:
        self.store = store
        self._key = signing_key
        self._fit_pool = fit_pool
        self.lookups = lookups
        """L3: name -> newest version's metadata."""
        self.loaded = loaded
        """L1 models: (name, version) -> fitted detector."""
        self._known: dict[str, ModelVersion] = {}
        """Last version seen per name: keeps scoring while the store is unreachable."""
        self._loading: dict[tuple[str, int], asyncio.Future[fitted.FittedDetector]] = {}

    @property
    def known(self) -> dict[str, int]:
        """Name -> version of the models this process knows."""
        return {name: meta.version for name, meta in self._known.items()}

    def remember(self, meta: ModelVersion) -> None:
        """``meta`` is the newest version of its name."""
        self.lookups.put(meta.name, meta)
        self._known[meta.name] = meta

    def forget_lookup(self, name: str) -> None:
        """Look the newest version of ``name`` up in the store next time."""
        self.lookups.pop(name)

    def forget(self, name: str) -> None:
        """Drop everything this process holds about ``name`` (deleted)."""
        self.lookups.pop(name)
        self._known.pop(name, None)
        self.loaded.discard_where(lambda key: key[0] == name)

    # reading -------------------------------------------------------------------------

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
        self.remember(meta)
        return meta

    async def load(self, name: str) -> LoadedModel:
        """The newest version of ``name``, loaded."""
        meta = self.lookups.get(name)
        if meta is None:
            meta = await self.describe(name)
        detector = self.loaded.get((name, meta.version))
        if detector is None:
            detector = await self.detector(meta)
        return LoadedModel(meta, detector)

    async def detector(self, meta: ModelVersion) -> fitted.FittedDetector:
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
                    signing.load, self._key, artifact, meta.signature, name=meta.name
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
        metrics.MODEL_LOADS.labels("store").inc()
        future.set_result(detector)
        return detector

    async def list_models(self) -> list[ModelVersion]:
        """Newest version of every stored model."""
        found = await self.store.list_models()
        for meta in found:
            self.remember(meta)
        return found

    async def warmup(self, limit: int) -> None:
        """Load the newest version of stored models (at most ``limit``)."""
        for meta in (await self.store.list_models())[:limit]:
            self.remember(meta)
            try:
                await self.detector(meta)
            except (signing.ArtifactRejectedError, ModelNotFoundError) as error:
                # One bad artifact must not keep the replica unready; requests get a 503.
                log.warning("warm-up skipped %s v%d: %s", meta.name, meta.version, error)

    # writing -------------------------------------------------------------------------

    async def fit(
        self,
        name: str,
        *,
        algorithm: str,
        parameters: dict[str, Any],
        contamination: float,
        data: datasets.TrainingData,
    ) -> LoadedModel:
        """Fit and store a new version of ``name``; it serves at once in this process."""
        check_name(name)
        draft = await self.draft(name, algorithm, parameters, contamination, data)
        meta = await self.store.save(draft)
        detector = await asyncio.get_running_loop().run_in_executor(
            self._fit_pool,
            functools.partial(signing.load, self._key, draft[1], meta.signature, name=meta.name),
        )
        self.loaded.put((name, meta.version), detector)
        heap.settle()
        metrics.MODEL_LOADS.labels("fit").inc()
        self.remember(meta)
        return LoadedModel(meta, detector)

    async def draft(
        self,
        name: str,
        algorithm: str,
        parameters: dict[str, Any],
        contamination: float,
        data: datasets.TrainingData,
    ) -> Draft:
        """Fit in the fit pool and sign: a version ready to store."""
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

    async def delete(self, name: str) -> bool:
        """Delete every version of ``name``; whether it existed."""
        check_name(name)
        existed = await self.store.delete(name)
        self.forget(name)
        return existed

    async def declared(self, declared: DeclaredModel) -> ModelVersion:
        """Fit the declared model if the store lacks it (one replica fits, others wait).

        When its newest stored version fails signature verification (signed under another
        key: the signing-key Secret was re-created; or altered), the declared model is fitted
        again from its declared training data and stored as a new version under this key.
        Nothing unverified is unpickled. If another worker or replica stored a newer version
        while this one was fitting, that version is used instead of storing a second one.
        """
        fitted_here = False

        async def fit() -> Draft:
            nonlocal fitted_here
            fitted_here = True
            loop = asyncio.get_running_loop()
            data = await loop.run_in_executor(self._fit_pool, declared.training_data)
            return await self.draft(
                declared.name,
                declared.algorithm,
                dict(declared.parameters),
                declared.contamination,
                data,
            )

        meta = await self.store.ensure(declared.name, fit)
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
            draft = await fit()
            newest = await self.store.latest(declared.name)
            if newest is not None and newest.version > meta.version:
                meta = newest  # another worker or replica refitted meanwhile
                fitted_here = False
            else:
                meta = await self.store.save(draft)
            self.remember(meta)
            await self.detector(meta)
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

"""Challenger models: fitted beside the champion, loaded for shadow scoring, promoted.

A name has at most one challenger, stored beside its versions (``ModelStore.save_challenger``)
with version 0: it gets a number only when promoted. ``Challengers`` fits one from rows
(``PUT /v1/models/{name}/challenger``) or from the declaration (``PYNOMALY_MODEL_CHALLENGER_*``,
fitted once across replicas on the declared model's training data), loads it for the shadow
scorer (verified like every artifact; re-read when the store's generation moved), and
promotes it: ``ModelStore.promote`` copies it as the next version in one transaction (the
version it replaces stays stored: ``promote(name, version=N)`` makes a copy of version N the
newest again, which is the rollback).

What a promoted version carries in ``extra``: ``promoted`` (``challenger`` or ``rollback``),
``previous_version`` (the champion it replaced, the one to roll back to), ``promoted_at``,
the champion's ``declaration`` (so the declared model is not refitted over a promotion: it
was chosen on purpose) and, for a declared challenger, its ``challenger_declaration`` (so it
is not fitted again as a challenger).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from dataclasses import dataclass
from typing import Any

from pynomaly_detector import datasets
from pynomaly_detector.detectors import catalog
from pynomaly_detector.detectors.errors import InvalidInputError
from pynomaly_detector.registry import signing
from pynomaly_detector.registry.models import (
    DeclaredModel,
    FitSpec,
    LoadedModel,
    ModelNotFoundError,
    Models,
    declaration_digest,
)
from pynomaly_detector.registry.store import NothingToPromoteError
from pynomaly_detector.registry.versions import ModelVersion, now

log = logging.getLogger(__name__)

__all__ = ["Challengers", "DeclaredChallenger", "NothingToPromoteError"]


@dataclass(frozen=True, slots=True)
class DeclaredChallenger:
    """The challenger a deployment declares (``PYNOMALY_MODEL_CHALLENGER_*``)."""

    spec: FitSpec

    def digest(self, champion: DeclaredModel) -> str:
        """What a stored challenger (or a promoted version) carries to be this declaration
        (blocking: hashes the champion's training file, which the challenger is fitted on)."""
        spec = self.spec
        body = {
            "challenger": catalog.lookup(spec.algorithm).name,
            "parameters": spec.parameters,
            "contamination": spec.contamination,
            "alert_rate": spec.alert_rate,
            "training": champion.digest(),
        }
        return declaration_digest(body)


class Challengers:
    """Fit, load, promote and delete challengers through the registry of this process."""

    def __init__(self, models: Models) -> None:
        self.models = models
        self._loaded: dict[str, tuple[int, LoadedModel | None]] = {}
        """name -> (epoch it was read in, challenger or None)."""

    @property
    def store(self) -> Any:
        """The model store (``ModelStore``)."""
        return self.models.store

    async def fit(self, name: str, spec: FitSpec, data: datasets.TrainingData) -> ModelVersion:
        """Fit and store the challenger of ``name`` (replacing any); the champion must exist
        and score rows of the same width."""
        champion = await self.models.describe(name)
        if data.values.shape[1] != champion.n_features:
            raise InvalidInputError(
                f"the challenger must score the champion's rows: {champion.n_features} "
                f"features, got {data.values.shape[1]}"
            )
        meta, artifact = await self.models.draft(name, spec, data)
        stored: ModelVersion = await self.store.save_challenger(
            (dataclasses.replace(meta, extra={**meta.extra, "role": "challenger"}), artifact)
        )
        self._loaded.pop(name, None)
        return stored

    async def declared(
        self, champion: DeclaredModel, challenger: DeclaredChallenger
    ) -> ModelVersion | None:
        """Fit the declared challenger unless it is stored or was promoted already (one
        replica fits; the others wait for it under the store's lock)."""
        loop = asyncio.get_running_loop()
        digest = await loop.run_in_executor(None, challenger.digest, champion)

        def settled(current: ModelVersion | None, stored: ModelVersion | None) -> bool:
            if current is None:
                return True  # no champion yet: nothing to challenge
            if current.extra.get("challenger_declaration") == digest:
                return True  # this challenger was promoted: it is the champion now
            return stored is not None and stored.extra.get("declaration") == digest

        async def fit() -> tuple[ModelVersion, bytes]:
            data = await loop.run_in_executor(None, champion.training_data)
            spec = dataclasses.replace(challenger.spec, parameters=dict(challenger.spec.parameters))
            meta, artifact = await self.models.draft(champion.name, spec, data)
            extra = {**meta.extra, "role": "challenger", "declaration": digest}
            return dataclasses.replace(meta, extra=extra), artifact

        stored: ModelVersion | None = await self.store.ensure_challenger(
            champion.name, fit, settled=settled
        )
        self._loaded.pop(champion.name, None)
        return stored

    def stale(self, name: str) -> bool:
        """Whether the store changed since the challenger of ``name`` was last read."""
        cached = self._loaded.get(name)
        return cached is None or cached[0] != self.models.epoch

    async def current(self, name: str) -> LoadedModel | None:
        """The challenger of ``name``, loaded (re-read when the store's generation moved)."""
        cached = self._loaded.get(name)
        if cached is not None and cached[0] == self.models.epoch:
            return cached[1]
        epoch = self.models.epoch
        found = await self.store.challenger(name)
        loaded = None
        if found is not None:
            meta, artifact = found
            if (
                cached is not None
                and cached[1] is not None
                and (cached[1].meta.content_hash == meta.content_hash)
            ):
                loaded = cached[1]
            else:
                detector = await asyncio.get_running_loop().run_in_executor(
                    None,
                    functools.partial(
                        signing.load,
                        self.models.signing_key,
                        artifact,
                        meta.signature,
                        name=name,
                        meta=meta,
                    ),
                )
                loaded = LoadedModel(meta, detector)
        self._loaded[name] = (epoch, loaded)
        return loaded

    async def describe(self, name: str) -> ModelVersion | None:
        """Metadata of the challenger of ``name`` (no artifact is loaded)."""
        found = await self.store.challenger(name)
        return None if found is None else found[0]

    async def promote(self, name: str, *, version: int | None = None) -> ModelVersion:
        """Make the challenger (or, with ``version``, a copy of that stored version: a
        rollback) the newest version of ``name``, atomically across every process."""
        champion = await self.models.describe(name)
        extra: dict[str, Any] = {
            "promoted": "challenger" if version is None else "rollback",
            "previous_version": champion.version,
            "promoted_at": now(),
        }
        if "declaration" in champion.extra:
            extra["declaration"] = champion.extra["declaration"]
        expect = None
        if version is None:
            found = await self.store.challenger(name)
            if found is None:
                raise NothingToPromoteError(
                    f"model {name!r} has no challenger to promote: PUT /v1/models/{name}"
                    "/challenger or declare spec.model.challenger"
                )
            expect = found[0].content_hash
            if "declaration" in found[0].extra:
                extra["challenger_declaration"] = found[0].extra["declaration"]
            extra["role"] = "champion"
        elif version == champion.version:
            raise NothingToPromoteError(f"version {version} of {name!r} is already the newest")
        meta: ModelVersion = await self.store.promote(
            name, expect=expect, version=version, extra=extra
        )
        self._loaded.pop(name, None)
        self.models.remember(meta)
        log.info(
            "model %s: v%d is the champion now (%s, replacing v%d)",
            name,
            meta.version,
            extra["promoted"],
            champion.version,
        )
        return meta

    async def delete(self, name: str) -> None:
        """Remove the challenger of ``name`` (``ModelNotFoundError`` when there is none)."""
        if not await self.store.delete_challenger(name):
            raise ModelNotFoundError(f"model {name!r} has no challenger")
        self._loaded.pop(name, None)

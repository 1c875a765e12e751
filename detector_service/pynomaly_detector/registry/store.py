"""The model store interface every backend implements, and its errors."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from pynomaly_detector.registry.versions import AnomalyRecord, ModelVersion

Draft = tuple[ModelVersion, bytes]
"""A fitted model ready to store: metadata (``version`` is assigned by the store), artifact."""


class StoreUnavailableError(Exception):
    """The store cannot be reached now (database or pooler down); retry later (503)."""


class ModelStore(Protocol):
    """Versioned model artifacts with metadata, plus the anomaly log."""

    kind: str
    """``local`` or ``postgres`` (shown by /readyz)."""

    async def open(self) -> None:
        """Prepare the store (directories, pool, schema); tolerate an unreachable database."""

    async def close(self) -> None:
        """Release connections."""

    async def ping(self) -> bool:
        """Whether the store answers now (never raises)."""

    async def save(self, draft: Draft) -> ModelVersion:
        """Store a new version and return its metadata. Its number is higher than every
        number this name ever had, deleted versions included: never reused."""

    async def latest(self, name: str) -> ModelVersion | None:
        """The newest version of ``name``."""

    async def artifact(self, name: str, version: int) -> bytes | None:
        """The artifact bytes of one version."""

    async def list_models(self) -> list[ModelVersion]:
        """The newest version of every model."""

    async def delete(self, name: str) -> bool:
        """Delete every version of ``name``; whether it existed."""

    async def ensure(
        self,
        name: str,
        fit: Callable[[], Awaitable[Draft]],
        *,
        accept: Callable[[ModelVersion], bool] | None = None,
    ) -> ModelVersion:
        """The newest version of ``name``; if none exists (or ``accept`` refuses the newest),
        exactly one caller across processes and replicas runs ``fit`` and stores it while the
        others wait, then find it and accept it."""

    async def prune(self, name: str, *, keep: int) -> int:
        """Delete all but the newest ``keep`` (>= 1) versions of ``name``; how many went."""

    async def generation(self) -> int:
        """A number that changes whenever any model is saved or deleted (cheap to read)."""

    async def write_anomalies(self, records: Sequence[AnomalyRecord]) -> None:
        """Append anomaly records."""

    async def anomalies(
        self, name: str, *, since: dt.datetime | None, limit: int
    ) -> list[AnomalyRecord]:
        """Anomaly records of ``name`` after ``since``, oldest first."""

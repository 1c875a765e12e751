"""The model store interface every backend implements, and its errors."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from pynomaly_detector.registry.versions import AnomalyRecord, Feedback, ModelVersion

Draft = tuple[ModelVersion, bytes]
"""A fitted model ready to store: metadata (``version`` is assigned by the store), artifact."""


class StoreUnavailableError(Exception):
    """The store cannot be reached now (database or pooler down); retry later (503)."""


class NothingToPromoteError(LookupError):
    """No challenger (or not the one expected, or no such stored version) to promote (409)."""


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

    async def save_challenger(self, draft: Draft) -> ModelVersion:
        """Store ``draft`` as the challenger of its name (replacing any); its ``version`` is
        0: a challenger gets a version number only when promoted."""

    async def challenger(self, name: str) -> tuple[ModelVersion, bytes] | None:
        """The challenger of ``name`` and its artifact."""

    async def delete_challenger(self, name: str) -> bool:
        """Remove the challenger of ``name``; whether there was one."""

    async def ensure_challenger(
        self,
        name: str,
        fit: Callable[[], Awaitable[Draft]],
        *,
        settled: Callable[[ModelVersion | None, ModelVersion | None], bool],
    ) -> ModelVersion | None:
        """Under the name's lock across processes: unless ``settled(champion, challenger)``,
        run ``fit`` and store its draft as the challenger (the stored one, or None)."""

    async def promote(
        self,
        name: str,
        *,
        expect: str | None = None,
        version: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> ModelVersion:
        """Atomically make a new newest version of ``name``: the challenger (whose
        ``content_hash`` must be ``expect`` when given; it is then removed), or the stored
        ``version`` (a rollback). Artifact and signature are copied as they are (the
        signature does not cover the number); ``extra`` is merged into its metadata, and the
        version it replaces is kept. ``NothingToPromoteError`` when there is nothing to copy."""

    async def write_anomalies(self, records: Sequence[AnomalyRecord]) -> None:
        """Append anomaly records."""

    async def anomalies(
        self, name: str, *, since: dt.datetime | None, limit: int
    ) -> list[AnomalyRecord]:
        """Anomaly records of ``name`` after ``since``, oldest first."""

    async def anomalies_by_id(self, name: str, ids: Sequence[int]) -> list[AnomalyRecord]:
        """The anomaly records of ``name`` with these ids (unknown ids are left out)."""

    async def write_feedback(self, entries: Sequence[Feedback]) -> None:
        """Append feedback labels."""

    async def feedback_counts(self, name: str) -> dict[str, int]:
        """Label -> how many labels ``name`` has received (every version)."""

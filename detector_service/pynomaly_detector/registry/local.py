"""The embedded store: one directory per model, one JSON + one pickle per version.

Used when no database is configured (a laptop, the demo, a single replica). Workers of one
pod share the directory; ``fcntl`` locks serialise version numbering and declared-model fits
across them. ``.versions/<name>`` keeps the last version number of every name, deleted ones
included, so numbers are never reused; ``.generation`` counts saves and deletes so the other
workers notice any change with one small read. File I/O runs in threads so the event loop
never blocks on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import fcntl
import json
import logging
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

from pynomaly_detector.registry.store import Draft
from pynomaly_detector.registry.versions import AnomalyRecord, ModelVersion

log = logging.getLogger(__name__)


class LocalStore:
    """``ModelStore`` over a directory."""

    kind = "local"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    async def open(self) -> None:
        await asyncio.to_thread(self._locks.mkdir, parents=True, exist_ok=True)

    async def close(self) -> None:
        return None

    async def ping(self) -> bool:
        return await asyncio.to_thread(os.access, self.root, os.W_OK)

    @property
    def _locks(self) -> Path:
        return self.root / ".locks"

    @contextlib.asynccontextmanager
    async def _locked(self, name: str) -> AsyncIterator[None]:
        path = self._locks / f"{name}.lock"
        handle = await asyncio.to_thread(open, path, "a+")
        try:
            await asyncio.to_thread(fcntl.flock, handle.fileno(), fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()

    def _versions(self, name: str) -> list[int]:
        directory = self.root / name
        if not directory.is_dir():
            return []
        numbers = []
        for path in directory.glob("v*.json"):
            with contextlib.suppress(ValueError):
                numbers.append(int(path.stem[1:]))
        return sorted(numbers)

    def _read(self, name: str, version: int) -> ModelVersion | None:
        try:
            body = json.loads((self.root / name / f"v{version}.json").read_text())
        except FileNotFoundError:
            return None
        return ModelVersion.from_json(body)

    def _latest(self, name: str) -> ModelVersion | None:
        versions = self._versions(name)
        return self._read(name, versions[-1]) if versions else None

    def _next_version(self, name: str) -> int:
        """The next number never used for ``name`` (caller holds the name's lock)."""
        mark = self.root / ".versions" / name
        try:
            last = int(mark.read_text())
        except (FileNotFoundError, ValueError):
            last = 0
        versions = self._versions(name)
        number = max(last, versions[-1] if versions else 0) + 1
        mark.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(mark, str(number).encode())
        return number

    def _bump(self) -> None:
        """Count a save or delete in ``.generation`` (under its own lock: names save at once)."""
        path = self.root / ".generation"
        with open(path, "a+") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            handle.seek(0)
            text = handle.read().strip()
            handle.seek(0)
            handle.truncate()
            handle.write(str(int(text or "0") + 1))
            handle.flush()

    def _generation(self) -> int:
        try:
            return int((self.root / ".generation").read_text() or "0")
        except FileNotFoundError:
            return 0

    async def generation(self) -> int:
        return await asyncio.to_thread(self._generation)

    def _write(self, draft: Draft) -> ModelVersion:
        meta, artifact = draft
        directory = self.root / meta.name
        directory.mkdir(parents=True, exist_ok=True)
        stored = dataclasses.replace(meta, version=self._next_version(meta.name))
        stem = directory / f"v{stored.version}"
        # Artifact first, metadata last: a version is visible only once complete.
        _atomic_write(stem.with_suffix(".pkl"), artifact)
        _atomic_write(stem.with_suffix(".json"), json.dumps(stored.to_json()).encode())
        self._bump()
        return stored

    async def save(self, draft: Draft) -> ModelVersion:
        async with self._locked(draft[0].name):
            return await asyncio.to_thread(self._write, draft)

    async def prune(self, name: str, *, keep: int) -> int:
        def remove(old: list[int]) -> None:
            for version in old:
                stem = self.root / name / f"v{version}"
                # Metadata first: a version disappears before its artifact does.
                stem.with_suffix(".json").unlink(missing_ok=True)
                stem.with_suffix(".pkl").unlink(missing_ok=True)

        async with self._locked(name):
            old = self._versions(name)[: -max(keep, 1)]
            await asyncio.to_thread(remove, old)
            return len(old)

    async def latest(self, name: str) -> ModelVersion | None:
        return await asyncio.to_thread(self._latest, name)

    async def artifact(self, name: str, version: int) -> bytes | None:
        path = self.root / name / f"v{version}.pkl"
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None

    async def list_models(self) -> list[ModelVersion]:
        def scan() -> list[ModelVersion]:
            if not self.root.is_dir():
                return []
            found = []
            for directory in sorted(self.root.iterdir()):
                if directory.is_dir() and not directory.name.startswith("."):
                    meta = self._latest(directory.name)
                    if meta is not None:
                        found.append(meta)
            return found

        return await asyncio.to_thread(scan)

    async def delete(self, name: str) -> bool:
        if not await asyncio.to_thread((self.root / name).is_dir):
            return False  # nothing to delete: no lock either (a lock file per name asked for)
        async with self._locked(name):
            directory = self.root / name
            if not directory.is_dir():
                return False
            await asyncio.to_thread(shutil.rmtree, directory)
            await asyncio.to_thread(self._bump)
            return True

    async def ensure(
        self,
        name: str,
        fit: Callable[[], Awaitable[Draft]],
        *,
        accept: Callable[[ModelVersion], bool] | None = None,
    ) -> ModelVersion:
        async with self._locked(name):
            existing = await self.latest(name)
            if existing is not None and (accept is None or accept(existing)):
                return existing
            draft = await fit()
            return await asyncio.to_thread(self._write, draft)

    async def write_anomalies(self, records: Sequence[AnomalyRecord]) -> None:
        def append() -> None:
            by_model: dict[str, list[str]] = {}
            for record in records:
                by_model.setdefault(record.model, []).append(json.dumps(record.public()))
            for model, lines in by_model.items():
                directory = self.root / model
                if directory.is_dir():
                    # Workers of a pod append to one file: one locked write per batch, so
                    # lines from different workers never interleave.
                    with (directory / "anomalies.jsonl").open("a+b") as handle:
                        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                        text = "\n".join(lines) + "\n"
                        size = handle.seek(0, os.SEEK_END)
                        if size:
                            handle.seek(size - 1)
                            if handle.read(1) != b"\n":
                                text = "\n" + text  # after a torn line: start a fresh one
                        handle.write(text.encode())
                        handle.flush()

        await asyncio.to_thread(append)

    async def anomalies(
        self, name: str, *, since: dt.datetime | None, limit: int
    ) -> list[AnomalyRecord]:
        def read() -> list[AnomalyRecord]:
            path = self.root / name / "anomalies.jsonl"
            if not path.exists():
                return []
            found = []
            skipped = 0
            for line in path.read_text(errors="replace").splitlines():
                try:
                    body = json.loads(line)
                    body["detected_at"] = dt.datetime.fromisoformat(body["detected_at"])
                    record = AnomalyRecord(**body)
                except (ValueError, TypeError, KeyError):
                    skipped += 1  # a torn line (a crash mid-write): skipped, never a 500
                    continue
                if since is None or record.detected_at > since:
                    found.append(record)
            if skipped:
                log.warning("anomaly log of %s: %d unreadable line(s) skipped", name, skipped)
            return found[:limit]

        return await asyncio.to_thread(read)


def _atomic_write(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)

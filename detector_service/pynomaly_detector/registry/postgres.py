"""The Postgres store: artifacts and metadata in tables, reached through PgBouncer.

PgBouncer runs in transaction mode, so a server connection belongs to this client only for
the length of a transaction. Consequences, all handled here:

* asyncpg runs with ``statement_cache_size=0`` (unnamed statements only; PgBouncer 1.18 cannot
  route named prepared statements across transactions);
* advisory locks are *transaction-scoped* (``pg_advisory_xact_lock``): a session lock would be
  taken on whatever server connection happened to run that statement and leak to other
  clients. The declared-model fit therefore runs inside the transaction that holds the lock,
  and the new version is committed in that same transaction, so waiters see it the moment
  the lock is released. Waiters poll with ``pg_try_advisory_xact_lock`` instead of blocking,
  so they do not pin server connections while the winner fits;
* version numbers are never reused: ``pynomaly_model_names`` keeps the last number of every
  name, deleted ones included, so ``(name, version)`` names one model forever;
* ``pynomaly_generation`` is bumped in the transaction of every save and delete: processes
  poll it (one cheap query) to drop cached lookups when any model changed, whatever the
  Redis mode;
* a restarted PgBouncer/Postgres breaks pooled connections: each operation retries once on
  a fresh connection, and every failure surfaces as ``StoreUnavailableError`` (503) without
  a restart being needed to recover.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg

from pynomaly_detector import metrics
from pynomaly_detector.registry.store import Draft, StoreUnavailableError
from pynomaly_detector.registry.versions import AnomalyRecord, ModelVersion

log = logging.getLogger(__name__)

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS pynomaly_models (
    name text NOT NULL,
    version integer NOT NULL,
    algorithm text NOT NULL,
    n_samples bigint NOT NULL,
    threshold double precision NOT NULL,
    content_hash text NOT NULL,
    fitted_at timestamptz NOT NULL,
    metadata jsonb NOT NULL,
    artifact bytea NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS pynomaly_anomalies (
    id bigserial PRIMARY KEY,
    model text NOT NULL,
    version integer NOT NULL,
    score double precision NOT NULL,
    threshold double precision NOT NULL,
    row_values jsonb NOT NULL,
    detected_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS pynomaly_anomalies_model_time
    ON pynomaly_anomalies (model, detected_at);
CREATE TABLE IF NOT EXISTS pynomaly_model_names (
    name text PRIMARY KEY,
    last_version integer NOT NULL
);
CREATE TABLE IF NOT EXISTS pynomaly_generation (
    id integer PRIMARY KEY CHECK (id = 1),
    value bigint NOT NULL
);
INSERT INTO pynomaly_generation (id, value) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
"""

_BUMP = "UPDATE pynomaly_generation SET value = value + 1 WHERE id = 1"
_SCHEMA_LOCK = 0x70796E6F6D616C79  # "pynomaly": serialises concurrent schema creation
_FAILURES = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


def lock_key(name: str) -> int:
    """The 64-bit advisory lock key of model ``name``."""
    digest = hashlib.blake2b(f"pynomaly-model:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class PostgresStore:
    """``ModelStore`` over PostgreSQL (through PgBouncer in transaction mode)."""

    kind = "postgres"

    def __init__(
        self,
        dsn: str,
        *,
        password: str | None = None,
        min_size: int = 1,
        max_size: int = 5,
        timeout: float = 5.0,
        acquire_timeout: float = 30.0,
    ) -> None:
        self.dsn = dsn
        self.password = password
        self.min_size = min_size
        self.max_size = max_size
        self.timeout = timeout
        self.acquire_timeout = acquire_timeout
        self._pool: asyncpg.Pool | None = None
        self._schema_ready = False
        self._opening = asyncio.Lock()
        metrics.add_sampler(self._sample_pool)

    def _sample_pool(self) -> None:
        # Pool usage for the "database connections < 80 % of max" alert and the dashboard.
        pool = self._pool
        size = pool.get_size() if pool is not None else 0
        idle = pool.get_idle_size() if pool is not None else 0
        metrics.DB_POOL_CONNECTIONS.labels("in_use").set(size - idle)
        metrics.DB_POOL_CONNECTIONS.labels("idle").set(idle)
        metrics.DB_POOL_MAX_CONNECTIONS.set(self.max_size)

    async def open(self) -> None:
        try:
            await self._ready()
        except StoreUnavailableError as error:
            log.warning("model store unavailable at start (will retry on use): %s", error)

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), timeout=self.timeout)
            except (TimeoutError, *_FAILURES):
                pool.terminate()

    async def _ready(self) -> asyncpg.Pool:
        async with self._opening:
            if self._pool is None:
                try:
                    self._pool = await self._create_pool(self.min_size)
                except _FAILURES:
                    # The database may be down right now; a lazy pool reconnects when it is back.
                    self._pool = await self._create_pool(0)
            if not self._schema_ready:
                await self._call(self._pool, self._create_schema, "schema")
                self._schema_ready = True
            return self._pool

    async def _create_pool(self, min_size: int) -> asyncpg.Pool:
        pool: asyncpg.Pool = await asyncpg.create_pool(
            self.dsn,
            password=self.password,
            min_size=min_size,
            max_size=self.max_size,
            statement_cache_size=0,
            timeout=self.timeout,
            command_timeout=max(self.timeout, 30.0),
            max_inactive_connection_lifetime=300.0,
        )
        return pool

    @staticmethod
    async def _create_schema(connection: asyncpg.Connection) -> None:
        async with connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK)
            await connection.execute(SCHEMA)

    async def _call(
        self,
        pool: asyncpg.Pool,
        operation: Callable[[asyncpg.Connection], Awaitable[T]],
        name: str,
    ) -> T:
        last: BaseException | None = None
        for _attempt in range(2):
            try:
                async with pool.acquire(timeout=self.acquire_timeout) as connection:
                    return await operation(connection)
            except _FAILURES as error:
                last = error
                # A broken pooled connection (PgBouncer restarted) deserves one fresh try.
                if not isinstance(
                    error,
                    (asyncpg.ConnectionDoesNotExistError, ConnectionError, asyncpg.InterfaceError),
                ):
                    break
        metrics.STORE_ERRORS.labels(name).inc()
        # The driver's text names hosts, ports and users: logged, never sent to clients.
        log.warning("model database unavailable (%s): %s: %s", name, type(last).__name__, last)
        raise StoreUnavailableError(f"model database unavailable ({name}); retry later") from last

    async def _run(self, operation: Callable[[asyncpg.Connection], Awaitable[T]], name: str) -> T:
        try:
            pool = await self._ready()
        except _FAILURES as error:
            metrics.STORE_ERRORS.labels(name).inc()
            log.warning(
                "model database unavailable (%s): %s: %s", name, type(error).__name__, error
            )
            raise StoreUnavailableError(
                f"model database unavailable ({name}); retry later"
            ) from error
        return await self._call(pool, operation, name)

    async def ping(self) -> bool:
        async def select(connection: asyncpg.Connection) -> bool:
            return bool(await connection.fetchval("SELECT 1", timeout=self.timeout) == 1)

        try:
            return await asyncio.wait_for(self._run(select, "ping"), timeout=self.timeout)
        except (StoreUnavailableError, TimeoutError):
            return False

    async def generation(self) -> int:
        async def fetch(connection: asyncpg.Connection) -> int:
            value = await connection.fetchval("SELECT value FROM pynomaly_generation WHERE id = 1")
            return int(value or 0)

        return await self._run(fetch, "generation")

    @staticmethod
    async def _latest_on(connection: asyncpg.Connection, name: str) -> ModelVersion | None:
        row = await connection.fetchrow(
            "SELECT metadata FROM pynomaly_models WHERE name = $1 ORDER BY version DESC LIMIT 1",
            name,
        )
        return None if row is None else ModelVersion.from_json(json.loads(row["metadata"]))

    @classmethod
    async def _insert(cls, connection: asyncpg.Connection, draft: Draft) -> ModelVersion:
        meta, artifact = draft
        async with connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock($1)", lock_key(meta.name))
            # The next number never seen for this name (rows from before this table count).
            version = await connection.fetchval(
                "INSERT INTO pynomaly_model_names (name, last_version)"
                " SELECT $1, COALESCE(MAX(version), 0) + 1 FROM pynomaly_models WHERE name = $1"
                " ON CONFLICT (name) DO UPDATE SET last_version ="
                " GREATEST(pynomaly_model_names.last_version, EXCLUDED.last_version - 1) + 1"
                " RETURNING last_version",
                meta.name,
            )
            await connection.execute(_BUMP)
            stored = dataclasses.replace(meta, version=int(version))
            await connection.execute(
                "INSERT INTO pynomaly_models (name, version, algorithm, n_samples, threshold,"
                " content_hash, fitted_at, metadata, artifact)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9)",
                stored.name,
                stored.version,
                stored.algorithm,
                stored.n_samples,
                stored.threshold,
                stored.content_hash,
                dt.datetime.fromisoformat(stored.fitted_at),
                json.dumps(stored.to_json()),
                artifact,
            )
            return stored

    async def save(self, draft: Draft) -> ModelVersion:
        return await self._run(lambda connection: self._insert(connection, draft), "save")

    async def prune(self, name: str, *, keep: int) -> int:
        async def remove(connection: asyncpg.Connection) -> int:
            status: str = await connection.execute(
                "DELETE FROM pynomaly_models WHERE name = $1 AND version < ("
                " SELECT MIN(version) FROM (SELECT version FROM pynomaly_models"
                " WHERE name = $1 ORDER BY version DESC LIMIT $2) AS newest)",
                name,
                max(keep, 1),
            )
            return int(status.rsplit(" ", 1)[-1])

        return await self._run(remove, "prune")

    async def latest(self, name: str) -> ModelVersion | None:
        return await self._run(lambda connection: self._latest_on(connection, name), "latest")

    async def artifact(self, name: str, version: int) -> bytes | None:
        async def fetch(connection: asyncpg.Connection) -> bytes | None:
            value = await connection.fetchval(
                "SELECT artifact FROM pynomaly_models WHERE name = $1 AND version = $2",
                name,
                version,
            )
            return None if value is None else bytes(value)

        return await self._run(fetch, "artifact")

    async def list_models(self) -> list[ModelVersion]:
        async def fetch(connection: asyncpg.Connection) -> list[ModelVersion]:
            rows = await connection.fetch(
                "SELECT DISTINCT ON (name) metadata FROM pynomaly_models"
                " ORDER BY name, version DESC"
            )
            return [ModelVersion.from_json(json.loads(row["metadata"])) for row in rows]

        return await self._run(fetch, "list")

    async def delete(self, name: str) -> bool:
        async def remove(connection: asyncpg.Connection) -> bool:
            async with connection.transaction():
                await connection.execute("SELECT pg_advisory_xact_lock($1)", lock_key(name))
                status: str = await connection.execute(
                    "DELETE FROM pynomaly_models WHERE name = $1", name
                )
                await connection.execute("DELETE FROM pynomaly_anomalies WHERE model = $1", name)
                existed = not status.endswith(" 0")
                if existed:
                    await connection.execute(_BUMP)
            return existed

        return await self._run(remove, "delete")

    async def ensure(
        self,
        name: str,
        fit: Callable[[], Awaitable[Draft]],
        *,
        accept: Callable[[ModelVersion], bool] | None = None,
    ) -> ModelVersion:
        key = lock_key(name)

        async def attempt(connection: asyncpg.Connection) -> ModelVersion | None:
            async with connection.transaction():
                if not await connection.fetchval("SELECT pg_try_advisory_xact_lock($1)", key):
                    return None
                existing = await self._latest_on(connection, name)
                if existing is not None and (accept is None or accept(existing)):
                    return existing
                draft = await fit()
                # _insert re-takes the same xact lock: advisory locks are re-entrant.
                return await self._insert(connection, draft)

        deadline = time.monotonic() + 3600
        while time.monotonic() < deadline:
            found = await self._run(attempt, "ensure")
            if found is not None:
                return found
            await asyncio.sleep(
                0.5
            )  # another replica is fitting; poll without pinning a connection
        raise StoreUnavailableError(f"timed out waiting for another replica to fit {name!r}")

    async def write_anomalies(self, records: Sequence[AnomalyRecord]) -> None:
        if not records:
            return

        async def insert(connection: asyncpg.Connection) -> None:
            # One statement with arrays: no executemany, no prepared statement reuse.
            await connection.execute(
                "INSERT INTO pynomaly_anomalies"
                " (model, version, score, threshold, row_values, detected_at)"
                " SELECT m, v, s, t, r::jsonb, d FROM unnest("
                "$1::text[], $2::int[], $3::float8[], $4::float8[], $5::text[], $6::timestamptz[]"
                ") AS u(m, v, s, t, r, d)",
                [record.model for record in records],
                [record.version for record in records],
                [record.score for record in records],
                [record.threshold for record in records],
                [json.dumps(record.row) for record in records],
                [record.detected_at for record in records],
            )

        await self._run(insert, "anomaly_log")

    async def anomalies(
        self, name: str, *, since: dt.datetime | None, limit: int
    ) -> list[AnomalyRecord]:
        async def fetch(connection: asyncpg.Connection) -> list[AnomalyRecord]:
            rows = await connection.fetch(
                "SELECT model, version, score, threshold, row_values, detected_at"
                " FROM pynomaly_anomalies WHERE model = $1 AND ($2::timestamptz IS NULL"
                " OR detected_at > $2) ORDER BY detected_at, id LIMIT $3",
                name,
                since,
                limit,
            )
            return [_record(row) for row in rows]

        return await self._run(fetch, "anomalies")


def _record(row: Any) -> AnomalyRecord:
    return AnomalyRecord(
        model=row["model"],
        version=row["version"],
        score=row["score"],
        threshold=row["threshold"],
        row=json.loads(row["row_values"]),
        detected_at=row["detected_at"],
    )

"""The ``spec.postgres`` section: the model store's PostgreSQL and the PgBouncer in front of it.

Defaults are the performance guide's tuning. ``config`` fields are named exactly like the
postgresql.conf parameters (users know those names), everything else is camelCase.
The detector service reaches Postgres only through PgBouncer; ``pool`` is the asyncpg pool
each service worker opens, which together with the autoscaling ceiling feeds the
connection-budget check (``pynomaly_operator.budget``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from pynomaly_operator.specs.redis import ComputeResources, Persistence, SecretKeyRef, StoreModel

PostgresMode = Literal["managed", "external"]
PoolMode = Literal["session", "transaction", "statement"]

_PG_MEMORY_PATTERN = r"^[0-9]+(kB|MB|GB|TB)?$"
_PG_DURATION_PATTERN = r"^[0-9]+(us|ms|s|min|h|d)?$"


class PostgresConfig(StoreModel):
    """postgresql.conf parameters (names as PostgreSQL spells them); guide defaults."""

    # postgresql.conf names verbatim: users know them, so no camelCase alias here.
    model_config = ConfigDict(alias_generator=None)

    max_connections: int = Field(
        default=400, ge=10, le=10_000, description="Maximum concurrent server connections."
    )
    superuser_reserved_connections: int = Field(
        default=3, ge=0, le=100, description="Connections kept for superusers."
    )
    shared_buffers: str = Field(
        default="512MB", pattern=_PG_MEMORY_PATTERN, description="Shared buffer cache size."
    )
    effective_cache_size: str = Field(
        default="2GB", pattern=_PG_MEMORY_PATTERN, description="Planner's OS cache estimate."
    )
    maintenance_work_mem: str = Field(
        default="128MB", pattern=_PG_MEMORY_PATTERN, description="Memory for VACUUM, CREATE INDEX."
    )
    work_mem: str = Field(
        default="8MB", pattern=_PG_MEMORY_PATTERN, description="Memory per sort/hash operation."
    )
    checkpoint_completion_target: float = Field(
        default=0.9, ge=0.0, le=1.0, allow_inf_nan=False, description="Spread of checkpoint I/O."
    )
    checkpoint_timeout: str = Field(
        default="15min", pattern=_PG_DURATION_PATTERN, description="Time between checkpoints."
    )
    max_wal_size: str = Field(
        default="2GB",
        pattern=_PG_MEMORY_PATTERN,
        description="WAL size that triggers a checkpoint.",
    )
    min_wal_size: str = Field(
        default="512MB", pattern=_PG_MEMORY_PATTERN, description="WAL kept for recycling."
    )
    random_page_cost: float = Field(
        default=1.1, gt=0.0, le=1000.0, allow_inf_nan=False, description="Random I/O cost (SSD)."
    )
    effective_io_concurrency: int = Field(
        default=200, ge=0, le=1000, description="Concurrent I/O requests the storage handles."
    )
    default_statistics_target: int = Field(
        default=100, ge=1, le=10_000, description="Planner statistics detail."
    )
    autovacuum_max_workers: int = Field(
        default=4, ge=1, le=64, description="Concurrent autovacuum workers."
    )
    autovacuum_vacuum_scale_factor: float = Field(
        default=0.1, ge=0.0, le=100.0, allow_inf_nan=False, description="Vacuum threshold."
    )
    autovacuum_analyze_scale_factor: float = Field(
        default=0.05, ge=0.0, le=100.0, allow_inf_nan=False, description="Analyze threshold."
    )
    extra: dict[str, str] = Field(
        default_factory=dict,
        description="Further postgresql.conf parameters, rendered verbatim (name: value).",
    )


def default_pgbouncer_resources() -> ComputeResources:
    # PgBouncer is single-threaded: more than one core is never used.
    return ComputeResources(
        requests={"cpu": "100m", "memory": "64Mi"}, limits={"cpu": "1", "memory": "256Mi"}
    )


def default_postgres_resources() -> ComputeResources:
    return ComputeResources(
        requests={"cpu": "500m", "memory": "2Gi"}, limits={"cpu": "2", "memory": "4Gi"}
    )


class PgBouncerSpec(StoreModel):
    """The PgBouncer Deployment in front of Postgres; pgbouncer.ini defaults from the guide."""

    enabled: bool = Field(
        default=True,
        description="Run PgBouncer (always on for managed Postgres; optional for external).",
    )
    image: str = Field(
        default="edoburu/pgbouncer:v1.18.0-p0",
        min_length=1,
        description="PgBouncer 1.18+ image with a POSIX shell.",
    )
    replicas: int = Field(default=2, ge=1, le=20, description="PgBouncer pods.")
    pool_mode: PoolMode = Field(
        default="transaction", description="When a server connection returns to the pool."
    )
    max_client_conn: int = Field(
        default=1000, ge=1, le=100_000, description="Client connections each PgBouncer accepts."
    )
    default_pool_size: int = Field(
        default=20, ge=1, le=10_000, description="Server connections per database/user pair."
    )
    reserve_pool_size: int = Field(
        default=5, ge=0, le=10_000, description="Extra server connections under pressure."
    )
    reserve_pool_timeout: int = Field(
        default=5, ge=0, le=600, description="Seconds a client waits before the reserve is used."
    )
    server_lifetime: int = Field(
        default=3600, ge=0, le=86_400, description="Close server connections older than this (s)."
    )
    server_idle_timeout: int = Field(
        default=600, ge=0, le=86_400, description="Close server connections idle this long (s)."
    )
    resources: ComputeResources = Field(
        default_factory=default_pgbouncer_resources,
        description="Resources of each PgBouncer container (default requests 100m/64Mi, "
        "limits 1 CPU/256Mi).",
    )


class ClientPool(StoreModel):
    """The asyncpg pool each detector worker process opens to PgBouncer."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self.minSize <= self.maxSize", "message": "pool.minSize > pool.maxSize"}
            ]
        }
    )

    min_size: int = Field(default=1, ge=0, le=100, description="Connections opened at start.")
    max_size: int = Field(default=5, ge=1, le=100, description="Connection ceiling per worker.")


class PostgresExternal(StoreModel):
    """A PostgreSQL the operator does not run."""

    dsn_secret_ref: SecretKeyRef = Field(
        description="Secret key with the DSN (postgresql://user[:password]@host:port/db)."
    )
    password_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Optional Secret key with the password (if not in the DSN)."
    )


def _default_postgres_persistence() -> Persistence:
    return Persistence(size="20Gi")


class PostgresSpec(StoreModel):
    """PostgreSQL for model artifacts and metadata, reached through PgBouncer."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.mode != 'external' || has(self.external)",
                    "message": "postgres.external.dsnSecretRef is required when postgres.mode "
                    "is external",
                },
                {
                    "rule": "self.mode != 'managed' || self.pgbouncer.enabled",
                    "message": "managed Postgres is always fronted by PgBouncer",
                },
            ]
        }
    )

    mode: PostgresMode = Field(
        default="managed",
        description="managed (operator runs a StatefulSet) or external (DSN from a Secret).",
    )
    image: str = Field(
        default="postgres:15-bookworm", min_length=1, description="PostgreSQL 15 image."
    )
    database: str = Field(
        default="pynomaly",
        pattern=r"^[a-z_][a-z0-9_]*$",
        max_length=63,
        description="Application database, created on first start.",
    )
    user: str = Field(
        default="pynomaly",
        pattern=r"^[a-z_][a-z0-9_]*$",
        max_length=63,
        description="Application role (owner of the database); its password is generated.",
    )
    config: PostgresConfig = Field(
        default_factory=PostgresConfig, description="postgresql.conf parameters."
    )
    persistence: Persistence = Field(
        default_factory=_default_postgres_persistence, description="The data volume."
    )
    resources: ComputeResources = Field(
        default_factory=default_postgres_resources,
        description="Resources of the Postgres container (default requests 500m/2Gi, "
        "limits 2 CPU/4Gi).",
    )
    pgbouncer: PgBouncerSpec = Field(
        default_factory=PgBouncerSpec, description="The connection pooler in front."
    )
    pool: ClientPool = Field(
        default_factory=ClientPool, description="asyncpg pool per detector worker process."
    )
    external: PostgresExternal | None = Field(
        default=None, description="The external database (mode external only)."
    )

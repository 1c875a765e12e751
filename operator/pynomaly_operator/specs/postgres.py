"""The ``spec.postgres`` section: the model store's PostgreSQL and the PgBouncer in front of it.

Defaults are the performance guide's tuning. ``config`` fields are named exactly like the
postgresql.conf parameters (users know those names), everything else is camelCase.
The detector service reaches Postgres only through PgBouncer; ``pool`` is the asyncpg pool
each service worker opens, which together with the autoscaling ceiling feeds the
connection-budget check (``pynomaly_operator.budget``).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import ConfigDict, Field, field_validator

from pynomaly_operator.specs import base
from pynomaly_operator.specs.redis import (
    ComputeResources,
    Persistence,
    RetentionPolicy,
    SecretKeyRef,
    StoreModel,
)

PostgresMode = Literal["managed", "external"]
# No "statement": it returns the server connection after every statement, which breaks every
# multi-statement transaction the model store runs (refused by the CRD's enum).
PoolMode = Literal["session", "transaction"]

_PG_MEMORY_PATTERN = r"^[0-9]+(kB|MB|GB|TB)?$"

# ``config.extra``: what may be added to postgresql.conf. Names are lower-case parameter names
# (PostgreSQL folds case, so the lower-case grammar also closes ARCHIVE_COMMAND and the like),
# optionally with one ``extension.`` prefix; values are one line (a newline would start a new,
# unchecked directive). Refused outright: parameters that run shell commands (``*_command``:
# the Postgres pod holds the superuser password in its environment), load code
# (``*preload*``, ``*_library``, ``dynamic_library_path``, ``jit_provider``), read other files
# (``include*``, ``*_file``, ``data_directory``, ``ssl_crl_dir``) or undo what the operator
# sets (listening, sockets, password hashing). The CRD refuses them (CEL) and so does the
# operator (``PostgresConfig``), so neither ``kubectl apply`` nor an old CRD lets one through.
EXTRA_NAME_PATTERN = r"^[a-z_][a-z0-9_]*([.][a-z_][a-z0-9_]*)?$"  # no escapes: CEL-safe
EXTRA_VALUE_PATTERN = r"^[^\x00-\x1f\x7f]*$"
EXTRA_MAX_PARAMETERS = 64
DENIED_SUFFIXES = ("_command", "_library", "_file")
DENIED_PARTS = ("preload",)
DENIED_PREFIXES = ("include",)
DENIED_NAMES = (
    "data_directory",
    "dynamic_library_path",
    "jit_provider",
    "ssl_crl_dir",
    "listen_addresses",
    "port",
    "unix_socket_directories",
    "unix_socket_group",
    "unix_socket_permissions",
    "password_encryption",
)
_EXTRA_NAME_MESSAGE = (
    "postgres.config.extra: parameter names are lower-case postgresql.conf names (letters, "
    "digits and _, optionally one 'prefix.')"
)
_EXTRA_DENIED_MESSAGE = (
    "postgres.config.extra: parameters that run commands, load libraries, read other files or "
    "change what the operator sets are not allowed (*_command, *preload*, *_library, *_file, "
    "include*, " + ", ".join(DENIED_NAMES) + ")"
)


def denied_parameter(name: str) -> bool:
    """Whether ``name`` may not be set through ``config.extra`` (see above)."""
    return (
        name.endswith(DENIED_SUFFIXES)
        or any(part in name for part in DENIED_PARTS)
        or name.startswith(DENIED_PREFIXES)
        or name in DENIED_NAMES
    )


def _cel_list(items: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{item}'" for item in items) + "]"


# One rule per parameter entry: the name is at most 63 characters, so the API server's CEL
# cost estimate stays small (a rule over map keys would be estimated at megabyte-long keys and
# the CRD refused). The grammar itself is an OpenAPI pattern on the name, no CEL needed.
_DENY_RULE = (
    "!("
    + " || ".join(f"self.name.endsWith('{s}')" for s in DENIED_SUFFIXES)
    + " || "
    + " || ".join(f"self.name.contains('{s}')" for s in DENIED_PARTS)
    + " || "
    + " || ".join(f"self.name.startsWith('{s}')" for s in DENIED_PREFIXES)
    + f" || self.name in {_cel_list(DENIED_NAMES)})"
)


class PostgresParameter(StoreModel):
    """One further postgresql.conf parameter."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [{"rule": _DENY_RULE, "message": _EXTRA_DENIED_MESSAGE}]
        }
    )

    name: str = Field(
        max_length=63,
        description="Parameter name, lower case as PostgreSQL spells it (optionally "
        "'prefix.name' for an extension's parameter).",
        json_schema_extra={"pattern": EXTRA_NAME_PATTERN},  # checked below with a message
    )
    value: str = Field(
        pattern=EXTRA_VALUE_PATTERN,
        max_length=1024,
        description="Its value, one line (rendered quoted).",
    )

    @field_validator("name")
    @classmethod
    def _allowed(cls, name: str) -> str:
        if re.fullmatch(EXTRA_NAME_PATTERN, name) is None:
            raise ValueError(f"{_EXTRA_NAME_MESSAGE}: {name!r}")
        if denied_parameter(name):
            raise ValueError(f"{_EXTRA_DENIED_MESSAGE}: {name!r}")
        return name


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
    extra: list[PostgresParameter] = Field(
        default_factory=list,
        description="Further postgresql.conf parameters ({name, value}; the value is quoted). "
        "Names are lower-case parameter names; parameters that run commands, load libraries, "
        "read other files or change the operator's own settings are refused.",
        max_length=EXTRA_MAX_PARAMETERS,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
        },
    )

    @field_validator("extra")
    @classmethod
    def _unique(cls, extra: list[PostgresParameter]) -> list[PostgresParameter]:
        names = [p.name for p in extra]
        if len(set(names)) != len(names):
            raise ValueError("postgres.config.extra: each parameter name at most once")
        return extra


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
        default="transaction",
        description="When a server connection returns to the pool: after each transaction, "
        "or when the client disconnects (session). statement is refused: it breaks every "
        "multi-statement transaction of the model store.",
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
    server_login_retry: int = Field(
        default=2,
        ge=1,
        le=600,
        description="Seconds PgBouncer waits before it tries again a Postgres it could not log "
        "in to. PgBouncer's own 15 s would hold every query that long after a Postgres restart.",
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


class PostgresPersistence(Persistence):
    """The Postgres data volume: as ``Persistence``, 20Gi unless set (a spec that sets only
    the storage class still gets 20Gi, not the Redis default)."""

    size: base.Quantity = Field(
        default="20Gi", description="Requested size of the data volume (a Kubernetes quantity)."
    )
    when_deleted: RetentionPolicy = Field(
        default="Retain",
        description="What happens to the model data when the AnomalyDetector is deleted, and "
        "with it the artifact signing key (one lifetime for both): Retain keeps the volume and "
        "the key Secret (a re-applied resource reuses both), Delete removes both.",
    )


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
    persistence: PostgresPersistence = Field(
        default_factory=PostgresPersistence, description="The data volume."
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

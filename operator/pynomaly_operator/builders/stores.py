"""The stores' integration point: what the core reconcile asks about Redis and Postgres.

The reconcile calls exactly these five functions (contract in the team notes):
- ``objects``        every store child except Secrets (workloads, Services, PDBs, ConfigMaps,
                     NetworkPolicies), server-side applied each reconcile;
- ``secrets``        generated Secrets, created only when absent and never regenerated;
- ``service_env``    ``PYNOMALY_REDIS_*`` / ``PYNOMALY_DATABASE_*`` env of the detector
                     container (passwords as ``secretKeyRef``);
- ``conditions``     RedisReady / DatabaseReady / PoolerReady from observed children;
- ``budget_problems`` connection-budget violations (Degraded with the numbers).
Each mode's details live in the per-Kind modules (``builders.redis``, ``builders.postgres``,
``builders.pgbouncer``, ``builders.secrets``); this module only dispatches on the modes.
Every store pod is restricted-profile (``builders.security``) and fenced by its own
NetworkPolicy (see operator/STORES.md, "Pod security and network policies").
"""

from __future__ import annotations

import secrets as random_secrets
from collections.abc import Callable, Mapping
from typing import Any

from pynomaly_operator import budget, naming
from pynomaly_operator.builders import _common, pgbouncer, postgres, redis
from pynomaly_operator.builders import secrets as secret_builders
from pynomaly_operator.configs import pgbouncer_ini, redis_conf
from pynomaly_operator.specs import detector as specs

Observed = Mapping[tuple[str, str], Mapping[str, Any] | None]

REDIS_READY = "RedisReady"
DATABASE_READY = "DatabaseReady"
POOLER_READY = "PoolerReady"


def _token() -> str:
    return random_secrets.token_urlsafe(32)


def objects(detector: specs.AnomalyDetector, names: naming.Names) -> list[dict[str, Any]]:
    """All store children for the spec's modes, Secrets excluded (see ``secrets``)."""
    return [
        *redis.objects(detector, names),
        *postgres.objects(detector, names),
        *pgbouncer.objects(detector, names),
    ]


def secrets(
    detector: specs.AnomalyDetector,
    names: naming.Names,
    *,
    token: Callable[[], str] = _token,
) -> list[dict[str, Any]]:
    """Generated Secrets with fresh passwords: create only if absent, never update."""
    out: list[dict[str, Any]] = []
    if detector.spec.redis.mode in ("sentinel", "cluster", "standalone"):
        out.append(secret_builders.redis_secret(names, password=token()))
    if detector.spec.postgres.mode == "managed":
        out.append(
            secret_builders.postgres_secret(
                detector, names, superuser_password=token(), password=token()
            )
        )
    return out


def _redis_env(detector: specs.AnomalyDetector, names: naming.Names) -> list[dict[str, Any]]:
    spec = detector.spec.redis
    env = _common.env
    password = _common.secret_env(
        "PYNOMALY_REDIS_PASSWORD", names.redis_secret, secret_builders.REDIS_PASSWORD_KEY
    )
    if spec.mode == "none":
        return [env("PYNOMALY_REDIS_MODE", "none")]
    if spec.mode == "standalone":
        url = f"redis://{redis.client_host(names)}:{redis_conf.REDIS_PORT}/0"
        return [env("PYNOMALY_REDIS_MODE", "standalone"), env("PYNOMALY_REDIS_URL", url), password]
    if spec.mode == "sentinel":
        return [
            env("PYNOMALY_REDIS_MODE", "sentinel"),
            env("PYNOMALY_REDIS_SENTINELS", ",".join(redis.sentinel_addresses(detector, names))),
            env("PYNOMALY_REDIS_MASTER_NAME", spec.sentinel.master_name),
            password,
        ]
    if spec.mode == "cluster":
        return [
            env("PYNOMALY_REDIS_MODE", "cluster"),
            env("PYNOMALY_REDIS_URL", ",".join(redis.node_addresses(detector, names))),
            password,
        ]
    external = spec.external
    if external is None:  # the CRD's CEL rule rejects this; parse-time specs may not
        return [env("PYNOMALY_REDIS_MODE", "none")]
    out = [
        env("PYNOMALY_REDIS_MODE", external.client_mode),
        _common.secret_env(
            "PYNOMALY_REDIS_URL", external.url_secret_ref.name, external.url_secret_ref.key
        ),
    ]
    if external.password_secret_ref is not None:
        ref = external.password_secret_ref
        out.append(_common.secret_env("PYNOMALY_REDIS_PASSWORD", ref.name, ref.key))
    return out


def _database_env(detector: specs.AnomalyDetector, names: naming.Names) -> list[dict[str, Any]]:
    pg = detector.spec.postgres
    env = _common.env
    pool = [
        env("PYNOMALY_DATABASE_POOL_MIN_SIZE", str(pg.pool.min_size)),
        env("PYNOMALY_DATABASE_POOL_MAX_SIZE", str(pg.pool.max_size)),
    ]
    if pg.mode == "managed":
        # Through PgBouncer only; the password stays in the Secret.
        url = (
            f"postgresql://{pg.user}@{pgbouncer.host(names)}:"
            f"{pgbouncer_ini.PGBOUNCER_PORT}/{pg.database}"
        )
        return [
            env("PYNOMALY_DATABASE_URL", url),
            _common.secret_env(
                "PYNOMALY_DATABASE_PASSWORD",
                names.postgres_secret,
                secret_builders.POSTGRES_PASSWORD_KEY,
            ),
            *pool,
        ]
    external = pg.external
    if external is None:  # rejected by the CRD's CEL rule
        return []
    out = [
        _common.secret_env(
            "PYNOMALY_DATABASE_URL", external.dsn_secret_ref.name, external.dsn_secret_ref.key
        )
    ]
    if external.password_secret_ref is not None:
        ref = external.password_secret_ref
        out.append(_common.secret_env("PYNOMALY_DATABASE_PASSWORD", ref.name, ref.key))
    return [*out, *pool]


def service_env(detector: specs.AnomalyDetector, names: naming.Names) -> list[dict[str, Any]]:
    """Env entries of the detector container for the configured stores."""
    return [*_redis_env(detector, names), *_database_env(detector, names)]


# --- status --------------------------------------------------------------------------------


def _condition(type_: str, ok: bool, reason: str, message: str) -> dict[str, Any]:
    return {
        "type": type_,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
    }


def _replicas_ready(
    observed: Observed, kind: str, name: str, *, want: int, what: str
) -> tuple[bool, str, str]:
    """(ready, reason, message) of one workload from its status counters."""
    live = observed.get((kind, name))
    if live is None:
        return False, "NotFound", f"{kind} {name} not observed yet"
    status = live.get("status") or {}
    ready = int(status.get("readyReplicas") or 0)
    if ready >= want:
        return True, "Ready", f"{what}: {ready}/{want} ready"
    return False, "Progressing", f"{what}: {ready}/{want} ready"


def _redis_condition(
    detector: specs.AnomalyDetector, names: naming.Names, observed: Observed
) -> dict[str, Any]:
    spec = detector.spec.redis
    if spec.mode == "none":
        return _condition(REDIS_READY, True, "Disabled", "no Redis: in-process cache only")
    if spec.mode == "external":
        return _condition(REDIS_READY, True, "External", "external Redis: not checked")
    ok, reason, message = _replicas_ready(
        observed, "StatefulSet", names.redis, want=redis.data_replicas(detector), what="redis"
    )
    if ok and spec.mode == "sentinel":
        ok, reason, sentinel_message = _replicas_ready(
            observed,
            "StatefulSet",
            names.redis_sentinel,
            want=spec.sentinel.sentinels,
            what="sentinels",
        )
        message = f"{message}; {sentinel_message}"
    if ok and spec.mode == "cluster":
        job = observed.get(("Job", redis.bootstrap_job_name(names)))
        succeeded = int(((job or {}).get("status") or {}).get("succeeded") or 0)
        if succeeded < 1:
            ok, reason = False, "Bootstrapping"
            message = f"{message}; cluster bootstrap Job has not succeeded yet"
        else:
            message = f"{message}; cluster formed"
    return _condition(REDIS_READY, ok, reason, message)


def _database_conditions(
    detector: specs.AnomalyDetector, names: naming.Names, observed: Observed
) -> list[dict[str, Any]]:
    pg = detector.spec.postgres
    if pg.mode == "external":
        return [
            _condition(DATABASE_READY, True, "External", "external database: not checked"),
            _condition(POOLER_READY, True, "Disabled", "no PgBouncer for an external database"),
        ]
    ok, reason, message = _replicas_ready(
        observed, "StatefulSet", names.postgres, want=1, what="postgres"
    )
    out = [_condition(DATABASE_READY, ok, reason, message)]
    if not pg.pgbouncer.enabled:
        out.append(_condition(POOLER_READY, True, "Disabled", "PgBouncer disabled"))
        return out
    ok, reason, message = _replicas_ready(
        observed, "Deployment", names.pgbouncer, want=pg.pgbouncer.replicas, what="pgbouncer"
    )
    out.append(_condition(POOLER_READY, ok, reason, message))
    return out


def conditions(
    detector: specs.AnomalyDetector, names: naming.Names, observed: Observed
) -> list[dict[str, Any]]:
    """RedisReady, DatabaseReady, PoolerReady (type, status, reason, message)."""
    return [
        _redis_condition(detector, names, observed),
        *_database_conditions(detector, names, observed),
    ]


def budget_problems(detector: specs.AnomalyDetector) -> list[str]:
    """Connection-budget violations with the numbers (``pynomaly_operator.budget``)."""
    return budget.budget_problems(detector)

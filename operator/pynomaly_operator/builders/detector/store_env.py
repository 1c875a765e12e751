"""The detector container's store env: how it reaches Redis and the database.

``PYNOMALY_REDIS_*`` and ``PYNOMALY_DATABASE_*`` entries for the spec's modes. Addresses come
from the store packages (the same names their Services and pods get); passwords only as
``secretKeyRef`` entries, so no secret value is ever in plain env or a ConfigMap.
"""

from __future__ import annotations

from typing import Any

from pynomaly_operator import naming
from pynomaly_operator.builders import pgbouncer, pods, postgres, redis
from pynomaly_operator.specs import detector as specs


def redis_env(detector: specs.AnomalyDetector, names: naming.Names) -> list[dict[str, Any]]:
    """``PYNOMALY_REDIS_*``: mode, addresses and the password reference."""
    spec = detector.spec.redis
    env = pods.env
    password = pods.secret_env("PYNOMALY_REDIS_PASSWORD", names.redis_secret, redis.PASSWORD_KEY)
    if spec.mode == "none":
        return [env("PYNOMALY_REDIS_MODE", "none")]
    if spec.mode == "standalone":
        url = f"redis://{redis.client_host(names)}:{pods.REDIS_PORT}/0"
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
        pods.secret_env(
            "PYNOMALY_REDIS_URL", external.url_secret_ref.name, external.url_secret_ref.key
        ),
    ]
    if external.password_secret_ref is not None:
        ref = external.password_secret_ref
        out.append(pods.secret_env("PYNOMALY_REDIS_PASSWORD", ref.name, ref.key))
    return out


def database_env(detector: specs.AnomalyDetector, names: naming.Names) -> list[dict[str, Any]]:
    """``PYNOMALY_DATABASE_*``: URL (through PgBouncer when managed), password, pool."""
    pg = detector.spec.postgres
    env = pods.env
    pool = [
        env("PYNOMALY_DATABASE_POOL_MIN_SIZE", str(pg.pool.min_size)),
        env("PYNOMALY_DATABASE_POOL_MAX_SIZE", str(pg.pool.max_size)),
    ]
    if pg.mode == "managed":
        # Through PgBouncer only; the password stays in the Secret.
        url = f"postgresql://{pg.user}@{pgbouncer.host(names)}:{pods.PGBOUNCER_PORT}/{pg.database}"
        return [
            env("PYNOMALY_DATABASE_URL", url),
            pods.secret_env(
                "PYNOMALY_DATABASE_PASSWORD", names.postgres_secret, postgres.PASSWORD_KEY
            ),
            *pool,
        ]
    external = pg.external
    if external is None:  # rejected by the CRD's CEL rule
        return []
    out = [
        pods.secret_env(
            "PYNOMALY_DATABASE_URL", external.dsn_secret_ref.name, external.dsn_secret_ref.key
        )
    ]
    if external.password_secret_ref is not None:
        ref = external.password_secret_ref
        out.append(pods.secret_env("PYNOMALY_DATABASE_PASSWORD", ref.name, ref.key))
    return [*out, *pool]


def env(detector: specs.AnomalyDetector, names: naming.Names) -> list[dict[str, Any]]:
    """Every store env entry of the detector container."""
    return [*redis_env(detector, names), *database_env(detector, names)]

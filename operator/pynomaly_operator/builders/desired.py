"""The desired state of one ``AnomalyDetector``: every object the operator wants to exist.

``desired(detector, names, secret_uids)`` is the single assembly the reconciler applies and
``scripts/render-samples.py`` (policy checks) and ``bench/operator/run.py`` (the benchmark's
expected children) render, so none of them can drift from what the operator applies.

It returns ``Desired(secrets, objects)``:
- ``secrets``: the generated Secrets (artifact signing key, Redis password, Postgres
  logins) with fresh values from ``token``. The reconciler creates each only when absent and
  never updates one: a new value would lock running pods out of their data.
- ``objects``: everything else, in apply order: the detector's ServiceAccount and settings
  ConfigMap, then Redis, Postgres and PgBouncer, then the detector's Service, Deployment,
  PDB, HPA and NetworkPolicy. Pod templates that read a generated Secret are stamped with the
  hash of its UID from ``secret_uids`` (``secret_versions``), so a Secret re-created by hand
  rolls exactly its readers.

Pure: no client, no globals, no mutation of the input; randomness only through ``token``.
"""

from __future__ import annotations

import dataclasses
import secrets as random_secrets
from collections.abc import Callable, Mapping
from typing import Any

from pynomaly_operator import naming
from pynomaly_operator.builders import (
    detector as detector_builders,
)
from pynomaly_operator.builders import (
    pgbouncer,
    postgres,
    redis,
    secret_versions,
)
from pynomaly_operator.builders.detector import api_token, signing_key, store_env
from pynomaly_operator.specs import detector as specs


def new_token() -> str:
    """A fresh random password (URL-safe, 256 bits)."""
    return random_secrets.token_urlsafe(32)


def new_signing_key() -> str:
    """A fresh random artifact signing key (384 bits)."""
    return random_secrets.token_urlsafe(48)


@dataclasses.dataclass(frozen=True)
class Desired:
    """Generated Secrets (create when absent) and every other object (apply), in order."""

    secrets: list[dict[str, Any]]
    objects: list[dict[str, Any]]


def store_secrets(
    detector: specs.AnomalyDetector,
    names: naming.Names,
    *,
    token: Callable[[], str] = new_token,
) -> list[dict[str, Any]]:
    """The managed stores' generated Secrets (Redis password, Postgres logins)."""
    out = []
    if detector.spec.redis.managed:
        out.append(redis.secret(names, password=token()))
    if detector.spec.postgres.mode == "managed":
        out.append(postgres.secret(detector, names, superuser_password=token(), password=token()))
    return out


def secrets(
    detector: specs.AnomalyDetector,
    names: naming.Names,
    *,
    token: Callable[[], str] = new_token,
    signing_key_value: Callable[[], str] = new_signing_key,
) -> list[dict[str, Any]]:
    """Every generated Secret this spec needs, with fresh values."""
    return [
        signing_key.secret(names, key=signing_key_value(), retained=signing_key.retained(detector)),
        api_token.secret(names, token=token()),
        *store_secrets(detector, names, token=token),
    ]


def store_objects(detector: specs.AnomalyDetector, names: naming.Names) -> list[dict[str, Any]]:
    """Every Redis, Postgres and PgBouncer object except Secrets, for the spec's modes."""
    return [
        *redis.objects(detector, names),
        *postgres.objects(detector, names),
        *pgbouncer.objects(detector, names),
    ]


def objects(detector: specs.AnomalyDetector, names: naming.Names) -> list[dict[str, Any]]:
    """Every non-Secret object, in apply order, before stamping."""
    return [
        *detector_builders.before_stores(detector, names),
        *store_objects(detector, names),
        *detector_builders.after_stores(detector, names, store_env=store_env.env(detector, names)),
    ]


def desired(
    detector: specs.AnomalyDetector,
    names: naming.Names,
    secret_uids: Mapping[str, str],
    *,
    token: Callable[[], str] = new_token,
    signing_key_value: Callable[[], str] = new_signing_key,
) -> Desired:
    """What the operator wants for ``detector``; ``secret_uids``: generated Secret name ->
    UID as observed (missing ones are not stamped)."""
    return Desired(
        secrets=secrets(detector, names, token=token, signing_key_value=signing_key_value),
        objects=[dict(secret_versions.stamp(obj, secret_uids)) for obj in objects(detector, names)],
    )

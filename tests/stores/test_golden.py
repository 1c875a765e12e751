"""Golden files for every rendered store config and manifest (tests/stores/golden/).

A change to a renderer or builder shows up as a reviewable diff of the golden file.
Regenerate after an intended change with ``UPDATE_GOLDEN=1 pytest tests/stores``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pynomaly_operator import naming
from pynomaly_operator.builders import desired as desired_state
from pynomaly_operator.builders.detector import store_env
from pynomaly_operator.builders.pgbouncer import ini as pgbouncer_ini
from pynomaly_operator.builders.postgres import conf as postgres_conf
from pynomaly_operator.builders.redis import conf as redis_conf
from pynomaly_operator.specs.detector import AnomalyDetector
from tests.support import golden

GOLDEN = Path(__file__).parent / "golden"
UPDATE = golden.UPDATE


def detector(spec: dict[str, Any] | None = None) -> AnomalyDetector:
    return AnomalyDetector.from_body(
        {"metadata": {"name": "fraud", "namespace": "payments"}, "spec": spec or {}}
    )


NAMES = naming.Names(instance="fraud", namespace="payments")


def check(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"missing golden file {path}; run with UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{name} differs from its golden file"


def _yaml(objects: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=True, width=100)


def test_redis_conf_defaults() -> None:
    spec = detector().spec.redis
    check("redis.conf", redis_conf.redis_conf(spec))
    check(
        "sentinel.conf",
        redis_conf.sentinel_conf(
            spec, master_host="fraud-redis-0.fraud-redis-headless.payments.svc"
        ),
    )


def test_redis_cluster_conf() -> None:
    check(
        "redis-cluster.conf",
        redis_conf.redis_conf(detector({"redis": {"mode": "cluster"}}).spec.redis),
    )


def test_postgres_and_pgbouncer_conf_defaults() -> None:
    spec = detector().spec.postgres
    check("postgresql.conf", postgres_conf.postgresql_conf(spec))
    check("pg_hba.conf", postgres_conf.pg_hba_conf(spec))
    check(
        "pgbouncer.ini",
        pgbouncer_ini.pgbouncer_ini(spec, server_host="fraud-postgres.payments.svc"),
    )


@pytest.mark.parametrize(
    ("name", "spec"),
    [
        ("sentinel-managed", {}),
        ("cluster-managed", {"redis": {"mode": "cluster"}}),
        (
            "standalone-external",
            {
                "redis": {"mode": "standalone", "persistence": {"enabled": False}},
                "postgres": {
                    "mode": "external",
                    "external": {"dsnSecretRef": {"name": "db", "key": "dsn"}},
                },
            },
        ),
        (
            "external-redis-delete-pvcs",
            {
                "redis": {
                    "mode": "external",
                    "external": {"urlSecretRef": {"name": "cache", "key": "url"}},
                },
                "postgres": {"persistence": {"whenDeleted": "Delete", "storageClassName": "fast"}},
            },
        ),
    ],
)
def test_manifests(name: str, spec: dict[str, Any]) -> None:
    d = detector(spec)
    counter = iter(range(1000))
    check(f"{name}.objects.yaml", _yaml(desired_state.store_objects(d, NAMES)))
    check(
        f"{name}.secrets.yaml",
        _yaml(desired_state.store_secrets(d, NAMES, token=lambda: f"generated-{next(counter)}")),
    )
    check(f"{name}.env.yaml", _yaml([{"env": store_env.env(d, NAMES)}]))

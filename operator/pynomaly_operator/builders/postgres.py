"""Managed PostgreSQL: the StatefulSet, its Services and the config ConfigMap.

One pod with a PVC (retained on delete by default), postgresql.conf / pg_hba.conf from
``configs.postgres_conf``, the official image's entrypoint creating the superuser from the
generated Secret and running the init script that creates the application role and
database on the first start. The detector never connects here directly: PgBouncer does,
and the NetworkPolicy admits only PgBouncer's pods.

The pod runs with the restricted Pod Security profile as uid ``security.UID``: the image's
entrypoint supports an arbitrary uid (nss_wrapper, in /tmp, gives initdb a user name) when
PGDATA is writable, which the fsGroup makes it. The root filesystem is read-only: the socket
directory, /tmp and /dev/shm are emptyDirs.
"""

from __future__ import annotations

from typing import Any

from pynomaly_operator import naming
from pynomaly_operator.builders import _common
from pynomaly_operator.builders import secrets as secret_builders
from pynomaly_operator.configs import postgres_conf
from pynomaly_operator.specs import detector as specs
from pynomaly_operator.specs import postgres as postgres_specs

CONFIG_DIR = "/etc/postgresql"
INITDB_DIR = "/docker-entrypoint-initdb.d"
DATA_MOUNT = "/var/lib/postgresql/data"
# A subdirectory: a fresh volume's root may hold lost+found, which initdb refuses.
PGDATA = f"{DATA_MOUNT}/pgdata"
SOCKET_DIR = "/var/run/postgresql"


def headless_name(names: naming.Names) -> str:
    return names.child("postgres-headless")


def config_name(names: naming.Names) -> str:
    return names.child("postgres-config")


def host(names: naming.Names) -> str:
    """What PgBouncer connects to: the ClusterIP Service of the Postgres pod."""
    return f"{names.postgres}.{names.namespace}.svc"


def config_data(detector: specs.AnomalyDetector) -> dict[str, str]:
    spec = detector.spec.postgres
    return {
        postgres_conf.CONFIG_KEY: postgres_conf.postgresql_conf(spec),
        postgres_conf.HBA_KEY: postgres_conf.pg_hba_conf(spec),
        postgres_conf.INIT_SCRIPT_KEY: postgres_conf.INIT_SCRIPT,
        postgres_conf.SYNC_PASSWORDS_KEY: postgres_conf.SYNC_PASSWORDS_SCRIPT,
    }


def config_map(detector: specs.AnomalyDetector, names: naming.Names) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": config_name(names), "labels": names.labels(naming.COMPONENT_POSTGRES)},
        "data": config_data(detector),
    }


def stateful_set(detector: specs.AnomalyDetector, names: naming.Names) -> dict[str, Any]:
    spec = detector.spec.postgres
    labels = names.labels(naming.COMPONENT_POSTGRES)
    secret = names.postgres_secret
    ready = "pg_isready -h 127.0.0.1 -p 5432 -U postgres"
    scratch, scratch_mounts = _common.scratch_volumes(
        socket=SOCKET_DIR,
        tmp="/tmp",  # noqa: S108 - the read-only root's scratch space (nss_wrapper files)
    )
    container = {
        "name": "postgres",
        "image": spec.image,
        "args": [
            "-c",
            f"config_file={CONFIG_DIR}/{postgres_conf.CONFIG_KEY}",
            "-c",
            f"hba_file={CONFIG_DIR}/{postgres_conf.HBA_KEY}",
        ],
        "env": [
            _common.secret_env("POSTGRES_USER", secret, secret_builders.POSTGRES_SUPERUSER_KEY),
            _common.secret_env(
                "POSTGRES_PASSWORD", secret, secret_builders.POSTGRES_SUPERUSER_PASSWORD_KEY
            ),
            _common.secret_env("APP_USER", secret, secret_builders.POSTGRES_USER_KEY),
            _common.secret_env("APP_PASSWORD", secret, secret_builders.POSTGRES_PASSWORD_KEY),
            _common.secret_env("APP_DB", secret, secret_builders.POSTGRES_DATABASE_KEY),
            _common.env("PGDATA", PGDATA),
        ],
        "ports": [{"name": "postgres", "containerPort": postgres_conf.POSTGRES_PORT}],
        "resources": _common.resources(spec.resources, postgres_specs.default_postgres_resources()),
        "readinessProbe": _common.exec_probe(ready, period=5),
        "livenessProbe": {
            **_common.exec_probe(ready, period=10, failures=6),
            "initialDelaySeconds": 30,
        },
        # Retained volume + re-created Secret: passwords follow the Secret on every start.
        "lifecycle": {
            "postStart": {
                "exec": {
                    "command": [
                        "sh",
                        f"{CONFIG_DIR}/{postgres_conf.SYNC_PASSWORDS_KEY}",
                    ]
                }
            }
        },
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "initdb", "mountPath": INITDB_DIR, "readOnly": True},
            {"name": "data", "mountPath": DATA_MOUNT},
            {"name": "dshm", "mountPath": "/dev/shm"},  # noqa: S108 - shared memory, not a temp file
            *scratch_mounts,
        ],
    }
    config_items = [
        {"key": postgres_conf.CONFIG_KEY, "path": postgres_conf.CONFIG_KEY},
        {"key": postgres_conf.HBA_KEY, "path": postgres_conf.HBA_KEY},
        {"key": postgres_conf.SYNC_PASSWORDS_KEY, "path": postgres_conf.SYNC_PASSWORDS_KEY},
    ]
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": names.postgres, "labels": labels},
        "spec": {
            "serviceName": headless_name(names),
            "replicas": 1,
            "selector": {"matchLabels": names.selector(naming.COMPONENT_POSTGRES)},
            "persistentVolumeClaimRetentionPolicy": _common.retention_policy(spec.persistence),
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        naming.CONFIG_HASH_ANNOTATION: _common.data_hash(config_data(detector))
                    },
                },
                "spec": _common.restricted_pod_spec(
                    containers=[container],
                    claims=spec.persistence.enabled,
                    # Postgres must get time to write its shutdown checkpoint.
                    terminationGracePeriodSeconds=60,
                    volumes=[
                        {
                            "name": "config",
                            "configMap": {"name": config_name(names), "items": config_items},
                        },
                        {
                            "name": "initdb",
                            "configMap": {
                                "name": config_name(names),
                                "defaultMode": 0o555,
                                "items": [
                                    {
                                        "key": postgres_conf.INIT_SCRIPT_KEY,
                                        "path": postgres_conf.INIT_SCRIPT_KEY,
                                    }
                                ],
                            },
                        },
                        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
                        *scratch,
                        *_common.data_volumes(spec.persistence),
                    ],
                ),
            },
            "volumeClaimTemplates": _common.volume_claim_templates(spec.persistence, labels),
        },
    }


def headless_service(detector: specs.AnomalyDetector, names: naming.Names) -> dict[str, Any]:
    del detector
    return _common.headless_service(
        name=headless_name(names),
        labels=names.labels(naming.COMPONENT_POSTGRES),
        selector=names.selector(naming.COMPONENT_POSTGRES),
        ports=[{"name": "postgres", "port": postgres_conf.POSTGRES_PORT, "targetPort": "postgres"}],
    )


def service(detector: specs.AnomalyDetector, names: naming.Names) -> dict[str, Any]:
    del detector
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": names.postgres, "labels": names.labels(naming.COMPONENT_POSTGRES)},
        "spec": {
            "selector": names.selector(naming.COMPONENT_POSTGRES),
            "ports": [
                {"name": "postgres", "port": postgres_conf.POSTGRES_PORT, "targetPort": "postgres"}
            ],
        },
    }


def network_policy(detector: specs.AnomalyDetector, names: naming.Names) -> dict[str, Any]:
    """Postgres accepts only PgBouncer's pods and connects nowhere (DNS aside)."""
    del detector
    return _common.network_policy(
        name=names.postgres,
        labels=names.labels(naming.COMPONENT_POSTGRES),
        selector=names.selector(naming.COMPONENT_POSTGRES),
        ingress=[
            {
                "from": _common.pods(names.selector(naming.COMPONENT_PGBOUNCER)),
                "ports": _common.tcp(postgres_conf.POSTGRES_PORT),
            }
        ],
        egress=[],
    )


def objects(detector: specs.AnomalyDetector, names: naming.Names) -> list[dict[str, Any]]:
    """Managed Postgres children (none for external)."""
    if detector.spec.postgres.mode != "managed":
        return []
    return [
        config_map(detector, names),
        headless_service(detector, names),
        service(detector, names),
        stateful_set(detector, names),
        network_policy(detector, names),
    ]

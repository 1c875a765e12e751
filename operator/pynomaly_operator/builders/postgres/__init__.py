"""Managed PostgreSQL: the StatefulSet, its Services and the config ConfigMap.

One pod with a PVC (retained on delete by default), postgresql.conf / pg_hba.conf from
``builders.postgres.conf``, the official image's entrypoint creating the superuser from the
generated Secret and running the init script that creates the application role and
database on the first start. The detector never connects here directly: PgBouncer does,
and the NetworkPolicy admits only PgBouncer's pods.

The pod runs with the restricted Pod Security profile as uid ``pods.UID``: the image's
entrypoint supports an arbitrary uid (nss_wrapper, in /tmp, gives initdb a user name) when
PGDATA is writable, which the fsGroup makes it. The root filesystem is read-only: the socket
directory, /tmp and /dev/shm are emptyDirs.
"""

from __future__ import annotations

import base64
from typing import Any

from pynomaly_operator import naming, values
from pynomaly_operator.builders import pods
from pynomaly_operator.builders.postgres import conf
from pynomaly_operator.specs import detector as specs
from pynomaly_operator.specs import postgres as postgres_specs

CONFIG_DIR = "/etc/postgresql"
INITDB_DIR = "/docker-entrypoint-initdb.d"
DATA_MOUNT = "/var/lib/postgresql/data"
# A subdirectory: a fresh volume's root may hold lost+found, which initdb refuses.
PGDATA = f"{DATA_MOUNT}/pgdata"
SOCKET_DIR = "/var/run/postgresql"

# Keys of the generated Secret (names, not secrets).
SUPERUSER_KEY = "superuser-username"
SUPERUSER_PASSWORD_KEY = "superuser-password"  # noqa: S105
USER_KEY = "username"
PASSWORD_KEY = "password"  # noqa: S105
DATABASE_KEY = "database"
SUPERUSER = "postgres"


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
        conf.CONFIG_KEY: conf.postgresql_conf(spec),
        conf.HBA_KEY: conf.pg_hba_conf(spec),
        conf.INIT_SCRIPT_KEY: conf.INIT_SCRIPT,
        conf.SYNC_PASSWORDS_KEY: conf.SYNC_PASSWORDS_SCRIPT,
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
    ready = f"pg_isready -h 127.0.0.1 -p {pods.POSTGRES_PORT} -U postgres"
    scratch, scratch_mounts = pods.scratch_volumes(
        socket=SOCKET_DIR,
        tmp="/tmp",  # noqa: S108 - the read-only root's scratch space (nss_wrapper files)
    )
    container = {
        "name": "postgres",
        "image": spec.image,
        "args": [
            "-c",
            f"config_file={CONFIG_DIR}/{conf.CONFIG_KEY}",
            "-c",
            f"hba_file={CONFIG_DIR}/{conf.HBA_KEY}",
        ],
        "env": [
            pods.secret_env("POSTGRES_USER", secret, SUPERUSER_KEY),
            pods.secret_env("POSTGRES_PASSWORD", secret, SUPERUSER_PASSWORD_KEY),
            pods.secret_env("APP_USER", secret, USER_KEY),
            pods.secret_env("APP_PASSWORD", secret, PASSWORD_KEY),
            pods.secret_env("APP_DB", secret, DATABASE_KEY),
            pods.env("PGDATA", PGDATA),
        ],
        "ports": [{"name": "postgres", "containerPort": pods.POSTGRES_PORT}],
        "resources": pods.resources(spec.resources, postgres_specs.default_postgres_resources()),
        "readinessProbe": pods.exec_probe(ready, period=5),
        "livenessProbe": {
            **pods.exec_probe(ready, period=10, failures=6),
            "initialDelaySeconds": 30,
        },
        # Retained volume + re-created Secret: passwords follow the Secret on every start.
        "lifecycle": {
            "postStart": {
                "exec": {
                    "command": [
                        "sh",
                        f"{CONFIG_DIR}/{conf.SYNC_PASSWORDS_KEY}",
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
        {"key": conf.CONFIG_KEY, "path": conf.CONFIG_KEY},
        {"key": conf.HBA_KEY, "path": conf.HBA_KEY},
        {"key": conf.SYNC_PASSWORDS_KEY, "path": conf.SYNC_PASSWORDS_KEY},
    ]
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": names.postgres, "labels": labels},
        "spec": {
            "serviceName": headless_name(names),
            "replicas": 1,
            "selector": {"matchLabels": names.selector(naming.COMPONENT_POSTGRES)},
            "persistentVolumeClaimRetentionPolicy": pods.retention_policy(spec.persistence),
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        naming.CONFIG_HASH_ANNOTATION: values.short_hash(config_data(detector))
                    },
                },
                "spec": pods.restricted_pod_spec(
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
                                        "key": conf.INIT_SCRIPT_KEY,
                                        "path": conf.INIT_SCRIPT_KEY,
                                    }
                                ],
                            },
                        },
                        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
                        *scratch,
                        *pods.data_volumes(spec.persistence),
                    ],
                ),
            },
            "volumeClaimTemplates": pods.volume_claim_templates(spec.persistence, labels),
        },
    }


def headless_service(detector: specs.AnomalyDetector, names: naming.Names) -> dict[str, Any]:
    del detector
    return pods.headless_service(
        name=headless_name(names),
        labels=names.labels(naming.COMPONENT_POSTGRES),
        selector=names.selector(naming.COMPONENT_POSTGRES),
        ports=[{"name": "postgres", "port": pods.POSTGRES_PORT, "targetPort": "postgres"}],
    )


def service(detector: specs.AnomalyDetector, names: naming.Names) -> dict[str, Any]:
    del detector
    return pods.service(
        name=names.postgres,
        labels=names.labels(naming.COMPONENT_POSTGRES),
        selector=names.selector(naming.COMPONENT_POSTGRES),
        ports=[{"name": "postgres", "port": pods.POSTGRES_PORT, "targetPort": "postgres"}],
    )


def network_policy(detector: specs.AnomalyDetector, names: naming.Names) -> dict[str, Any]:
    """Postgres accepts only PgBouncer's pods and connects nowhere (DNS aside)."""
    del detector
    return pods.network_policy(
        name=names.postgres,
        labels=names.labels(naming.COMPONENT_POSTGRES),
        selector=names.selector(naming.COMPONENT_POSTGRES),
        ingress=[
            {
                "from": pods.peers(names.selector(naming.COMPONENT_PGBOUNCER)),
                "ports": pods.tcp(pods.POSTGRES_PORT),
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


def secret(
    detector: specs.AnomalyDetector,
    names: naming.Names,
    *,
    superuser_password: str,
    password: str,
) -> dict[str, Any]:
    """Opaque Secret ``<instance>-postgres-auth``: superuser and application credentials
    (passwords generated by the caller: randomness is not pure)."""
    pg = detector.spec.postgres
    values = {
        SUPERUSER_KEY: SUPERUSER,
        SUPERUSER_PASSWORD_KEY: superuser_password,
        USER_KEY: pg.user,
        PASSWORD_KEY: password,
        DATABASE_KEY: pg.database,
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": names.postgres_secret,
            "labels": names.labels(naming.COMPONENT_POSTGRES),
        },
        "type": "Opaque",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in sorted(values.items())},
    }

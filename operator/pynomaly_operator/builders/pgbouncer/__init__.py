"""PgBouncer in front of managed Postgres: Deployment, Service, PDB and its ConfigMap.

pgbouncer.ini comes from ``builders.pgbouncer.ini``; the userlist is written at container
start from the generated Secret (SCRAM end to end). Several replicas share nothing: each
keeps its own server pool, which is why the budget check multiplies by replicas.
Pods run with the restricted Pod Security profile (no unix socket, so the userlist emptyDir
and /tmp are the only writable paths); the NetworkPolicy admits only the detector pods and
lets PgBouncer reach only Postgres.
"""

from __future__ import annotations

from typing import Any

from pynomaly_operator import naming, values
from pynomaly_operator.builders import pods
from pynomaly_operator.builders import postgres as postgres_builders
from pynomaly_operator.builders.pgbouncer import ini
from pynomaly_operator.specs import detector as specs
from pynomaly_operator.specs import postgres as postgres_specs

CONFIG_DIR = "/etc/pgbouncer"


def config_name(names: naming.Names) -> str:
    return names.child("pgbouncer-config")


def host(names: naming.Names) -> str:
    return f"{names.pgbouncer}.{names.namespace}.svc"


def config_data(detector: specs.AnomalyDetector, names: naming.Names) -> dict[str, str]:
    return {
        ini.CONFIG_KEY: ini.pgbouncer_ini(
            detector.spec.postgres, server_host=postgres_builders.host(names)
        ),
        ini.START_SCRIPT_KEY: ini.START_SCRIPT,
    }


def config_map(detector: specs.AnomalyDetector, names: naming.Names) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": config_name(names),
            "labels": names.labels(naming.COMPONENT_PGBOUNCER),
        },
        "data": config_data(detector, names),
    }


def deployment(detector: specs.AnomalyDetector, names: naming.Names) -> dict[str, Any]:
    spec = detector.spec.postgres.pgbouncer
    labels = names.labels(naming.COMPONENT_PGBOUNCER)
    secret = names.postgres_secret
    port = pods.PGBOUNCER_PORT
    probe = {"tcpSocket": {"port": "pgbouncer"}, "periodSeconds": 5, "failureThreshold": 3}
    tmp_volumes, tmp_mounts = pods.scratch_volumes(tmp="/tmp")  # noqa: S108 - scratch
    container = {
        "name": "pgbouncer",
        "image": spec.image,
        "command": ["sh", f"{CONFIG_DIR}/{ini.START_SCRIPT_KEY}"],
        "env": [
            pods.secret_env("APP_USER", secret, postgres_builders.USER_KEY),
            pods.secret_env("APP_PASSWORD", secret, postgres_builders.PASSWORD_KEY),
            pods.env("INI", f"{CONFIG_DIR}/{ini.CONFIG_KEY}"),
            pods.env("AUTH_FILE", f"{ini.RUN_DIR}/userlist.txt"),
        ],
        "ports": [{"name": "pgbouncer", "containerPort": port}],
        "resources": pods.resources(spec.resources, postgres_specs.default_pgbouncer_resources()),
        "readinessProbe": probe,
        "livenessProbe": {**probe, "periodSeconds": 10, "failureThreshold": 6},
        # Let in-flight transactions finish before the pod goes (PAUSE-like drain).
        "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "sleep 5"]}}},
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "run", "mountPath": ini.RUN_DIR},
            *tmp_mounts,
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": names.pgbouncer, "labels": labels},
        "spec": {
            "replicas": spec.replicas,
            "selector": {"matchLabels": names.selector(naming.COMPONENT_PGBOUNCER)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        naming.CONFIG_HASH_ANNOTATION: values.short_hash(
                            config_data(detector, names)
                        )
                    },
                },
                "spec": pods.restricted_pod_spec(
                    containers=[container],
                    volumes=[
                        {
                            "name": "config",
                            "configMap": {"name": config_name(names), "defaultMode": 0o555},
                        },
                        {"name": "run", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
                        *tmp_volumes,
                    ],
                ),
            },
        },
    }


def service(detector: specs.AnomalyDetector, names: naming.Names) -> dict[str, Any]:
    del detector
    return pods.service(
        name=names.pgbouncer,
        labels=names.labels(naming.COMPONENT_PGBOUNCER),
        selector=names.selector(naming.COMPONENT_PGBOUNCER),
        ports=[{"name": "pgbouncer", "port": pods.PGBOUNCER_PORT, "targetPort": "pgbouncer"}],
    )


def pod_disruption_budget(detector: specs.AnomalyDetector, names: naming.Names) -> dict[str, Any]:
    del detector
    return pods.pdb(
        name=names.pgbouncer,
        labels=names.labels(naming.COMPONENT_PGBOUNCER),
        selector=names.selector(naming.COMPONENT_PGBOUNCER),
        budget={"maxUnavailable": 1},
    )


def network_policy(detector: specs.AnomalyDetector, names: naming.Names) -> dict[str, Any]:
    """PgBouncer: in from the detector pods only, out to Postgres only."""
    del detector
    return pods.network_policy(
        name=names.pgbouncer,
        labels=names.labels(naming.COMPONENT_PGBOUNCER),
        selector=names.selector(naming.COMPONENT_PGBOUNCER),
        ingress=[
            {
                "from": pods.peers(names.selector(naming.COMPONENT_DETECTOR)),
                "ports": pods.tcp(pods.PGBOUNCER_PORT),
            }
        ],
        egress=[
            {
                "to": pods.peers(names.selector(naming.COMPONENT_POSTGRES)),
                "ports": pods.tcp(pods.POSTGRES_PORT),
            }
        ],
    )


def objects(detector: specs.AnomalyDetector, names: naming.Names) -> list[dict[str, Any]]:
    """PgBouncer children: only in front of managed Postgres (see STORES.md for external)."""
    pg = detector.spec.postgres
    if pg.mode != "managed" or not pg.pgbouncer.enabled:
        return []
    return [
        config_map(detector, names),
        service(detector, names),
        deployment(detector, names),
        pod_disruption_budget(detector, names),
        network_policy(detector, names),
    ]

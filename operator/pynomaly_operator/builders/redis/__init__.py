"""Redis children for every ``spec.redis.mode``: StatefulSets, Services, PDBs, the config
ConfigMap and (cluster mode) the bootstrap Job.

Topologies:
- sentinel: StatefulSet ``<i>-redis`` (pod 0 master at first, others replicas; every start
  asks the sentinels for the current master), StatefulSet ``<i>-redis-sentinel``, headless
  Services for both, PDBs for both.
- cluster: StatefulSet ``<i>-redis`` with cluster-enabled nodes, headless Service, PDB, and
  the idempotent bootstrap Job ``<i>-redis-cluster-bootstrap``.
- standalone: StatefulSet of one, headless Service, client Service ``<i>-redis``.
- external / none: nothing.
Every mode adds NetworkPolicies: data pods and sentinels accept only the detector pods, each
other and the bootstrap Job. Pods run with the restricted Pod Security profile (uid
``pods.UID``, read-only root, emptyDirs for the config copy and /tmp).
All config text comes from ``builders.redis.conf``; the password only from the generated
Secret ``secret()`` (created when absent, never rewritten: see ``builders.desired``).
"""

from __future__ import annotations

import base64
from typing import Any

from pynomaly_operator import naming, values
from pynomaly_operator.builders import pods
from pynomaly_operator.builders.redis import conf
from pynomaly_operator.specs import detector as specs
from pynomaly_operator.specs import redis as redis_specs

CONFIG_DIR = "/etc/redis"
RUN_DIR = "/etc/redis-run"
COMPONENT_BOOTSTRAP = "redis-bootstrap"
PASSWORD_KEY = "password"  # noqa: S105 - the key name in the Secret, not a secret


# --- names and addresses (also used for the detector's env) ---------------------------


def headless_name(names: naming.Names) -> str:
    return names.child("redis-headless")


def config_name(names: naming.Names) -> str:
    return names.child("redis-config")


def bootstrap_job_name(names: naming.Names) -> str:
    return names.child("redis-bootstrap")


def data_replicas(detector: specs.AnomalyDetector) -> int:
    redis = detector.spec.redis
    if redis.mode == "sentinel":
        return redis.sentinel.replicas
    if redis.mode == "cluster":
        return redis.cluster.nodes
    return 1


def pod_host(names: naming.Names, ordinal: int) -> str:
    """Stable DNS name of Redis data pod ``ordinal`` (through the headless Service)."""
    return f"{names.redis}-{ordinal}.{headless_name(names)}.{names.namespace}.svc"


def sentinel_host(names: naming.Names, ordinal: int) -> str:
    return f"{names.redis_sentinel}-{ordinal}.{names.redis_sentinel}.{names.namespace}.svc"


def sentinel_addresses(detector: specs.AnomalyDetector, names: naming.Names) -> list[str]:
    return [
        f"{sentinel_host(names, i)}:{pods.SENTINEL_PORT}"
        for i in range(detector.spec.redis.sentinel.sentinels)
    ]


def node_addresses(detector: specs.AnomalyDetector, names: naming.Names) -> list[str]:
    return [f"{pod_host(names, i)}:{pods.REDIS_PORT}" for i in range(data_replicas(detector))]


def client_host(names: naming.Names) -> str:
    return f"{names.redis}.{names.namespace}.svc"


# --- ConfigMap ---------------------------------------------------------------------------


def config_data(detector: specs.AnomalyDetector, names: naming.Names) -> dict[str, str]:
    """Files of the Redis ConfigMap for the mode (no secrets)."""
    spec = detector.spec.redis
    data = {conf.CONFIG_KEY: conf.redis_conf(spec)}
    if spec.mode == "sentinel":
        data[conf.SENTINEL_CONFIG_KEY] = conf.sentinel_conf(
            spec, master_host=pod_host(names, 0), data_dir=RUN_DIR
        )
        data[conf.START_SCRIPT_KEY] = conf.REDIS_START_SCRIPT
        data[conf.SENTINEL_START_SCRIPT_KEY] = conf.SENTINEL_START_SCRIPT
    elif spec.mode == "cluster":
        data[conf.CLUSTER_START_SCRIPT_KEY] = conf.CLUSTER_START_SCRIPT
        data[conf.CLUSTER_BOOTSTRAP_KEY] = conf.CLUSTER_BOOTSTRAP_SCRIPT
    else:
        data[conf.START_SCRIPT_KEY] = conf.REDIS_START_SCRIPT
    return data


def config_map(detector: specs.AnomalyDetector, names: naming.Names) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": config_name(names), "labels": names.labels(naming.COMPONENT_REDIS)},
        "data": config_data(detector, names),
    }


# --- pods ----------------------------------------------------------------------------------


def _password_env(names: naming.Names) -> list[dict[str, Any]]:
    key = PASSWORD_KEY
    return [
        pods.secret_env("REDIS_PASSWORD", names.redis_secret, key),
        # redis-cli (probes, scripts) reads REDISCLI_AUTH: the password never hits argv.
        pods.secret_env("REDISCLI_AUTH", names.redis_secret, key),
    ]


def _volumes(names: naming.Names) -> list[dict[str, Any]]:
    """The config, its writable copy (in memory: it holds the password) and /tmp."""
    tmp_volumes, _ = pods.scratch_volumes(tmp="/tmp")  # noqa: S108 - read-only root's scratch
    return [
        {"name": "config", "configMap": {"name": config_name(names), "defaultMode": 0o555}},
        {"name": "run", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
        *tmp_volumes,
    ]


def _mounts() -> list[dict[str, Any]]:
    _, tmp_mounts = pods.scratch_volumes(tmp="/tmp")  # noqa: S108 - read-only root's scratch
    return [
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": "run", "mountPath": RUN_DIR},
        *tmp_mounts,
    ]


def _data_container(detector: specs.AnomalyDetector, names: naming.Names) -> dict[str, Any]:
    spec = detector.spec.redis
    port = pods.REDIS_PORT
    announce = f"$(POD_NAME).{headless_name(names)}.{names.namespace}.svc"
    env = [
        pods.field_env("POD_NAME", "metadata.name"),
        *_password_env(names),
        pods.env("CONF_SRC", f"{CONFIG_DIR}/{conf.CONFIG_KEY}"),
        pods.env("CONF_DST", f"{RUN_DIR}/{conf.CONFIG_KEY}"),
        pods.env("REDIS_PORT", str(port)),
        pods.env("ANNOUNCE_HOST", announce),
    ]
    ports = [{"name": "redis", "containerPort": port}]
    if spec.mode == "cluster":
        script = conf.CLUSTER_START_SCRIPT_KEY
        env += [
            pods.field_env("POD_IP", "status.podIP"),
            pods.env("NODES_CONF", f"{conf.DATA_DIR}/nodes.conf"),
        ]
        ports.append({"name": "cluster-bus", "containerPort": port + 10000})
    else:
        script = conf.START_SCRIPT_KEY
        sentinels = sentinel_addresses(detector, names) if spec.mode == "sentinel" else []
        env += [
            pods.env("INITIAL_MASTER_HOST", pod_host(names, 0)),
            pods.env("INITIAL_MASTER_PORT", str(port)),
            pods.env("SENTINELS", " ".join(sentinels)),
            pods.env("MASTER_NAME", spec.sentinel.master_name),
        ]
    ping = f"redis-cli -p {port} ping | grep -q PONG"
    return {
        "name": "redis",
        "image": spec.image,
        "command": ["sh", f"{CONFIG_DIR}/{script}"],
        "env": env,
        "ports": ports,
        "resources": pods.resources(spec.resources, redis_specs.default_redis_resources()),
        "readinessProbe": pods.exec_probe(ping, period=5),
        "livenessProbe": {
            **pods.exec_probe(ping, period=10, failures=6),
            "initialDelaySeconds": 15,
        },
        "volumeMounts": [*_mounts(), {"name": "data", "mountPath": conf.DATA_DIR}],
    }


def stateful_set(detector: specs.AnomalyDetector, names: naming.Names) -> dict[str, Any]:
    """The Redis data pods (sentinel, cluster or standalone)."""
    spec = detector.spec.redis
    labels = names.labels(naming.COMPONENT_REDIS)
    selector = names.selector(naming.COMPONENT_REDIS)
    config_hash = values.short_hash(config_data(detector, names))
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": names.redis, "labels": labels},
        "spec": {
            "serviceName": headless_name(names),
            "replicas": data_replicas(detector),
            # Cluster nodes must all be up before the bootstrap; sentinel replicas need
            # pod 0 first (OrderedReady).
            "podManagementPolicy": "Parallel" if spec.mode == "cluster" else "OrderedReady",
            "selector": {"matchLabels": selector},
            "persistentVolumeClaimRetentionPolicy": pods.retention_policy(spec.persistence),
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {naming.CONFIG_HASH_ANNOTATION: config_hash},
                },
                "spec": pods.restricted_pod_spec(
                    containers=[_data_container(detector, names)],
                    claims=spec.persistence.enabled,
                    terminationGracePeriodSeconds=30,
                    volumes=[*_volumes(names), *pods.data_volumes(spec.persistence)],
                ),
            },
            "volumeClaimTemplates": pods.volume_claim_templates(spec.persistence, labels),
        },
    }


def sentinel_stateful_set(detector: specs.AnomalyDetector, names: naming.Names) -> dict[str, Any]:
    """The sentinels (sentinel mode): stable names, config copy in an emptyDir."""
    spec = detector.spec.redis
    labels = names.labels(naming.COMPONENT_SENTINEL)
    selector = names.selector(naming.COMPONENT_SENTINEL)
    port = pods.SENTINEL_PORT
    announce = f"$(POD_NAME).{names.redis_sentinel}.{names.namespace}.svc"
    ping = f"redis-cli -p {port} ping | grep -q PONG"
    container = {
        "name": "sentinel",
        "image": spec.image,
        "command": ["sh", f"{CONFIG_DIR}/{conf.SENTINEL_START_SCRIPT_KEY}"],
        "env": [
            pods.field_env("POD_NAME", "metadata.name"),
            *_password_env(names),
            pods.env("CONF_SRC", f"{CONFIG_DIR}/{conf.SENTINEL_CONFIG_KEY}"),
            pods.env("CONF_DST", f"{RUN_DIR}/{conf.SENTINEL_CONFIG_KEY}"),
            pods.env("MASTER_NAME", spec.sentinel.master_name),
            pods.env("ANNOUNCE_HOST", announce),
            pods.env("SENTINELS", " ".join(sentinel_addresses(detector, names))),
        ],
        "ports": [{"name": "sentinel", "containerPort": port}],
        "resources": pods.resources(
            spec.sentinel.resources, redis_specs.default_sentinel_resources()
        ),
        "readinessProbe": pods.exec_probe(ping, period=5),
        "livenessProbe": {
            **pods.exec_probe(ping, period=10, failures=6),
            "initialDelaySeconds": 15,
        },
        "volumeMounts": _mounts(),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": names.redis_sentinel, "labels": labels},
        "spec": {
            "serviceName": names.redis_sentinel,
            "replicas": spec.sentinel.sentinels,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        naming.CONFIG_HASH_ANNOTATION: values.short_hash(
                            config_data(detector, names)
                        )
                    },
                },
                "spec": pods.restricted_pod_spec(containers=[container], volumes=_volumes(names)),
            },
        },
    }


# --- Services, PDBs, Job ---------------------------------------------------------------------


def headless_service(detector: specs.AnomalyDetector, names: naming.Names) -> dict[str, Any]:
    del detector
    ports = [{"name": "redis", "port": pods.REDIS_PORT, "targetPort": "redis"}]
    return pods.headless_service(
        name=headless_name(names),
        labels=names.labels(naming.COMPONENT_REDIS),
        selector=names.selector(naming.COMPONENT_REDIS),
        ports=ports,
    )


def service(detector: specs.AnomalyDetector, names: naming.Names) -> dict[str, Any]:
    """Client Service of a standalone Redis."""
    del detector
    return pods.service(
        name=names.redis,
        labels=names.labels(naming.COMPONENT_REDIS),
        selector=names.selector(naming.COMPONENT_REDIS),
        ports=[{"name": "redis", "port": pods.REDIS_PORT, "targetPort": "redis"}],
    )


def sentinel_service(detector: specs.AnomalyDetector, names: naming.Names) -> dict[str, Any]:
    """Headless: per-sentinel DNS names for clients and for sentinels finding each other."""
    del detector
    ports = [{"name": "sentinel", "port": pods.SENTINEL_PORT, "targetPort": "sentinel"}]
    return pods.headless_service(
        name=names.redis_sentinel,
        labels=names.labels(naming.COMPONENT_SENTINEL),
        selector=names.selector(naming.COMPONENT_SENTINEL),
        ports=ports,
    )


def pod_disruption_budget(detector: specs.AnomalyDetector, names: naming.Names) -> dict[str, Any]:
    """One data pod at a time may be evicted (a replica, or the master with a failover)."""
    del detector
    return pods.pdb(
        name=names.redis,
        labels=names.labels(naming.COMPONENT_REDIS),
        selector=names.selector(naming.COMPONENT_REDIS),
        budget={"maxUnavailable": 1},
    )


def sentinel_pod_disruption_budget(
    detector: specs.AnomalyDetector, names: naming.Names
) -> dict[str, Any]:
    """Keep a quorum of sentinels: otherwise a master failure during a drain is fatal."""
    return pods.pdb(
        name=names.redis_sentinel,
        labels=names.labels(naming.COMPONENT_SENTINEL),
        selector=names.selector(naming.COMPONENT_SENTINEL),
        budget={"minAvailable": detector.spec.redis.sentinel.quorum},
    )


def cluster_bootstrap_job(detector: specs.AnomalyDetector, names: naming.Names) -> dict[str, Any]:
    """Forms the cluster once; re-running it is a no-op (the script checks cluster info)."""
    spec = detector.spec.redis
    labels = names.labels(naming.COMPONENT_REDIS)
    tmp_volumes, tmp_mounts = pods.scratch_volumes(tmp="/tmp")  # noqa: S108 - scratch
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": bootstrap_job_name(names), "labels": labels},
        "spec": {
            "backoffLimit": 20,
            "template": {
                "metadata": {"labels": names.labels(COMPONENT_BOOTSTRAP)},
                "spec": pods.restricted_pod_spec(
                    restartPolicy="OnFailure",
                    containers=[
                        {
                            "name": "bootstrap",
                            "image": spec.image,
                            "command": ["sh", f"{CONFIG_DIR}/{conf.CLUSTER_BOOTSTRAP_KEY}"],
                            "env": [
                                pods.secret_env(
                                    "REDIS_PASSWORD",
                                    names.redis_secret,
                                    PASSWORD_KEY,
                                ),
                                pods.env(
                                    "CLUSTER_NODES", " ".join(node_addresses(detector, names))
                                ),
                                pods.env("CLUSTER_REPLICAS", str(spec.cluster.replicas_per_master)),
                                pods.env("WAIT_SECONDS", "600"),
                            ],
                            "resources": pods.resources(
                                spec.cluster.bootstrap_resources,
                                redis_specs.default_bootstrap_resources(),
                            ),
                            "volumeMounts": [
                                {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
                                *tmp_mounts,
                            ],
                        }
                    ],
                    volumes=[
                        {
                            "name": "config",
                            "configMap": {"name": config_name(names), "defaultMode": 0o555},
                        },
                        *tmp_volumes,
                    ],
                ),
            },
        },
    }


# --- NetworkPolicies --------------------------------------------------------------------------


def network_policy(detector: specs.AnomalyDetector, names: naming.Names) -> dict[str, Any]:
    """Data pods: Redis (and cluster bus) from the detector, each other, the sentinels and
    the bootstrap Job; out only to each other and the sentinels (a starting node asks them
    for the current master)."""
    mode = detector.spec.redis.mode
    redis = names.selector(naming.COMPONENT_REDIS)
    sentinel = names.selector(naming.COMPONENT_SENTINEL)
    bootstrap = names.selector(COMPONENT_BOOTSTRAP)
    detector_pods = names.selector(naming.COMPONENT_DETECTOR)
    port = pods.REDIS_PORT
    ingress = [
        {"from": pods.peers(detector_pods, redis), "ports": pods.tcp(port)},
    ]
    egress = [{"to": pods.peers(redis), "ports": pods.tcp(port)}]
    if mode == "sentinel":
        ingress[0]["from"] += pods.peers(sentinel)
        egress.append({"to": pods.peers(sentinel), "ports": pods.tcp(pods.SENTINEL_PORT)})
    if mode == "cluster":
        ingress[0]["from"] += pods.peers(bootstrap)
        # Cluster bus: gossip and failover between the nodes only.
        ingress.append({"from": pods.peers(redis), "ports": pods.tcp(port + 10000)})
        egress.append({"to": pods.peers(redis), "ports": pods.tcp(port + 10000)})
    return pods.network_policy(
        name=names.redis,
        labels=names.labels(naming.COMPONENT_REDIS),
        selector=redis,
        ingress=ingress,
        egress=egress,
    )


def sentinel_network_policy(detector: specs.AnomalyDetector, names: naming.Names) -> dict[str, Any]:
    """Sentinels: asked by the detector, the data pods and each other; they talk to the data
    pods (monitoring, failover) and each other."""
    del detector
    redis = names.selector(naming.COMPONENT_REDIS)
    sentinel = names.selector(naming.COMPONENT_SENTINEL)
    sentinel_port = pods.tcp(pods.SENTINEL_PORT)
    return pods.network_policy(
        name=names.redis_sentinel,
        labels=names.labels(naming.COMPONENT_SENTINEL),
        selector=sentinel,
        ingress=[
            {
                "from": pods.peers(names.selector(naming.COMPONENT_DETECTOR), redis, sentinel),
                "ports": sentinel_port,
            }
        ],
        egress=[
            {"to": pods.peers(redis), "ports": pods.tcp(pods.REDIS_PORT)},
            {"to": pods.peers(sentinel), "ports": sentinel_port},
        ],
    )


def bootstrap_network_policy(
    detector: specs.AnomalyDetector, names: naming.Names
) -> dict[str, Any]:
    """The bootstrap Job's pod: nothing in; out only to the data pods."""
    del detector
    return pods.network_policy(
        name=bootstrap_job_name(names),
        labels=names.labels(COMPONENT_BOOTSTRAP),
        selector=names.selector(COMPONENT_BOOTSTRAP),
        ingress=[],
        egress=[
            {
                "to": pods.peers(names.selector(naming.COMPONENT_REDIS)),
                "ports": pods.tcp(pods.REDIS_PORT),
            }
        ],
    )


def objects(detector: specs.AnomalyDetector, names: naming.Names) -> list[dict[str, Any]]:
    """Every Redis child for ``spec.redis.mode`` except the Secret (see ``secret``)."""
    mode = detector.spec.redis.mode
    if not detector.spec.redis.managed:
        return []
    out = [
        config_map(detector, names),
        headless_service(detector, names),
        stateful_set(detector, names),
        pod_disruption_budget(detector, names),
        network_policy(detector, names),
    ]
    if mode == "standalone":
        out.append(service(detector, names))
    elif mode == "sentinel":
        out += [
            sentinel_service(detector, names),
            sentinel_stateful_set(detector, names),
            sentinel_pod_disruption_budget(detector, names),
            sentinel_network_policy(detector, names),
        ]
    elif mode == "cluster":
        out += [
            cluster_bootstrap_job(detector, names),
            bootstrap_network_policy(detector, names),
        ]
    return out


def secret(names: naming.Names, *, password: str) -> dict[str, Any]:
    """Opaque Secret ``<instance>-redis-auth``: the password of every Redis node and sentinel
    (generated by the caller: randomness is not pure)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": names.redis_secret, "labels": names.labels(naming.COMPONENT_REDIS)},
        "type": "Opaque",
        "data": {PASSWORD_KEY: base64.b64encode(password.encode()).decode()},
    }

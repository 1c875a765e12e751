"""The ``spec.redis`` section: the Redis topology run (or pointed at) for the L2 cache.

Every field carries a description because the CRD schema is generated from these models.
Defaults are the Pynomaly performance guide's values; cross-field rules are CEL
(``x-kubernetes-validations``) so that ``kubectl apply`` rejects impossible specs up front.
Shared small types (secret references, persistence, compute resources) live here too and are
reused by ``specs.postgres``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from pynomaly_operator.specs import base

RedisMode = Literal["sentinel", "cluster", "standalone", "external", "none"]
MANAGED_MODES = frozenset({"sentinel", "cluster", "standalone"})  # the operator runs the pods
MaxmemoryPolicy = Literal[
    "noeviction",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
]
RetentionPolicy = Literal["Retain", "Delete"]

# Redis memory sizes as redis.conf accepts them: a number with an optional unit.
_MEMORY_PATTERN = r"^[0-9]+(b|k|kb|m|mb|g|gb|K|KB|M|MB|G|GB)?$"


# The store models share the root spec's base: camelCase on the wire, frozen, no NaN.
StoreModel = base.SpecModel


class SecretKeyRef(StoreModel):
    """A key in a Secret in the AnomalyDetector's namespace."""

    name: str = Field(min_length=1, max_length=253, description="Name of the Secret.")
    key: str = Field(min_length=1, max_length=253, description="Key inside the Secret.")


class Persistence(StoreModel):
    """A PersistentVolumeClaim template for a store's data directory."""

    enabled: bool = Field(
        default=True,
        description="Keep data on a PersistentVolumeClaim; false uses an emptyDir (data is lost "
        "when the pod goes away).",
    )
    size: base.Quantity = Field(
        default="8Gi",
        description="Requested size of each data volume (a Kubernetes quantity).",
    )
    storage_class_name: str | None = Field(
        default=None,
        description="StorageClass of the volumes; unset uses the cluster's default class.",
    )
    when_deleted: RetentionPolicy = Field(
        default="Retain",
        description="What happens to the volumes when the AnomalyDetector is deleted: Retain keeps "
        "them (data survives an accidental delete), Delete removes them with the StatefulSet.",
    )
    when_scaled: RetentionPolicy = Field(
        default="Retain",
        description="What happens to the volumes of pods removed by a scale-down.",
    )


class ComputeResources(StoreModel):
    """CPU and memory for a store container (Kubernetes quantities). Keys left out take the
    component's defaults, so every container always has CPU and memory requests and limits;
    a default limit below a request you set is raised to it (and a default request above a
    limit you set is lowered to it)."""

    requests: dict[str, base.Quantity] = Field(
        default_factory=dict, description="Resource requests, e.g. {cpu: 250m, memory: 1Gi}."
    )
    limits: dict[str, base.Quantity] = Field(
        default_factory=dict, description="Resource limits, e.g. {cpu: '2', memory: 3Gi}."
    )


def default_sentinel_resources() -> ComputeResources:
    return ComputeResources(
        requests={"cpu": "50m", "memory": "64Mi"}, limits={"cpu": "250m", "memory": "128Mi"}
    )


def default_bootstrap_resources() -> ComputeResources:
    return ComputeResources(
        requests={"cpu": "50m", "memory": "32Mi"}, limits={"cpu": "250m", "memory": "64Mi"}
    )


def default_redis_resources() -> ComputeResources:
    # The memory limit leaves headroom above maxmemory (2gb) for fork-on-save and buffers;
    # the CPU limit leaves a second core to the RDB child so saves do not throttle serving.
    return ComputeResources(
        requests={"cpu": "250m", "memory": "2560Mi"}, limits={"cpu": "2", "memory": "3Gi"}
    )


class SaveRule(StoreModel):
    """One RDB snapshot rule: save after ``seconds`` if at least ``changes`` keys changed."""

    seconds: int = Field(ge=1, le=86_400, description="Interval in seconds.")
    changes: int = Field(ge=1, description="Minimum number of changed keys within the interval.")


def _default_save() -> list[SaveRule]:
    return [
        SaveRule(seconds=900, changes=1),
        SaveRule(seconds=300, changes=10),
        SaveRule(seconds=60, changes=10000),
    ]


class RedisConfig(StoreModel):
    """redis.conf values; defaults are the performance guide's."""

    maxmemory: str = Field(
        default="2gb",
        pattern=_MEMORY_PATTERN,
        description="Memory limit of each Redis node's dataset (redis.conf units, e.g. 2gb).",
    )
    maxmemory_policy: MaxmemoryPolicy = Field(
        default="allkeys-lru", description="Eviction policy when maxmemory is reached."
    )
    save: list[SaveRule] = Field(
        default_factory=_default_save,
        max_length=8,
        description="RDB snapshot rules; an empty list disables snapshots.",
    )
    rdbcompression: bool = Field(default=True, description="Compress RDB snapshots.")
    rdbchecksum: bool = Field(default=True, description="Checksum RDB snapshots.")
    appendonly: bool = Field(
        default=False, description="Also keep an append-only file (more durable, more I/O)."
    )
    tcp_keepalive: int = Field(
        default=300, ge=0, le=7200, description="TCP keepalive interval for clients (seconds)."
    )
    timeout: int = Field(
        default=0, ge=0, le=86_400, description="Close idle clients after N seconds (0 = never)."
    )
    tcp_backlog: int = Field(default=511, ge=1, le=65_535, description="listen() backlog.")
    hash_max_listpack_entries: int = Field(
        default=512, ge=0, description="Hashes up to this many fields use the compact encoding."
    )
    hash_max_listpack_value: int = Field(
        default=64, ge=0, description="Hash values up to this many bytes use the compact encoding."
    )
    list_max_listpack_size: int = Field(
        default=-2,
        ge=-5,
        description="List node size: negative = size class (-2 = 8 KiB), positive = entries.",
    )
    set_max_intset_entries: int = Field(
        default=512, ge=0, description="Integer sets up to this size use the intset encoding."
    )
    zset_max_listpack_entries: int = Field(
        default=128, ge=0, description="Sorted sets up to this size use the compact encoding."
    )
    zset_max_listpack_value: int = Field(
        default=64, ge=0, description="Sorted-set members up to this many bytes stay compact."
    )


class RedisSentinel(StoreModel):
    """Sentinel topology: one master, replicas following it, sentinels electing a new master."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.quorum <= self.sentinels",
                    "message": "sentinel.quorum must not exceed sentinel.sentinels",
                }
            ]
        }
    )

    replicas: int = Field(
        default=3,
        ge=1,
        le=9,
        description="Redis data pods: pod 0 starts as master, the others replicate it.",
    )
    sentinels: int = Field(default=3, ge=1, le=9, description="Number of sentinel pods.")
    quorum: int = Field(
        default=2, ge=1, le=9, description="Sentinels that must agree the master is down."
    )
    master_name: str = Field(
        default="pynomaly-master",
        pattern=r"^[A-Za-z0-9._-]+$",
        max_length=64,
        description="Name under which sentinels monitor the master (clients ask for it).",
    )
    down_after_milliseconds: int = Field(
        default=5000,
        ge=100,
        le=600_000,
        description="How long the master must be unreachable before it is considered down.",
    )
    failover_timeout: int = Field(
        default=60_000, ge=1000, le=3_600_000, description="Sentinel failover-timeout (ms)."
    )
    parallel_syncs: int = Field(
        default=1, ge=1, le=8, description="Replicas re-synced at once after a failover."
    )
    resources: ComputeResources = Field(
        default_factory=default_sentinel_resources,
        description="Resources of each sentinel container (default requests 50m/64Mi, "
        "limits 250m/128Mi).",
    )


class RedisCluster(StoreModel):
    """Redis Cluster topology: hash slots sharded over masters, each with replicas."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.nodes % (self.replicasPerMaster + 1) == 0",
                    "message": "cluster.nodes must be a multiple of replicasPerMaster + 1",
                },
                {
                    "rule": "self.nodes / (self.replicasPerMaster + 1) >= 3",
                    "message": "a Redis cluster needs at least 3 masters",
                },
            ]
        }
    )

    nodes: int = Field(default=6, ge=3, le=100, description="Total Redis cluster nodes.")
    replicas_per_master: int = Field(
        default=1, ge=0, le=5, description="Replicas for each master (cluster-replicas)."
    )
    node_timeout_milliseconds: int = Field(
        default=5000,
        ge=100,
        le=600_000,
        description="cluster-node-timeout: how long a node may be unreachable before failover.",
    )
    bootstrap_resources: ComputeResources = Field(
        default_factory=default_bootstrap_resources,
        description="Resources of the cluster bootstrap Job's container (default requests "
        "50m/32Mi, limits 250m/64Mi).",
    )


class RedisExternal(StoreModel):
    """A Redis the operator does not run."""

    url_secret_ref: SecretKeyRef = Field(
        description="Secret key holding the Redis URL (redis://[:password@]host:port/db, or for "
        "a cluster a comma-separated list of host:port startup nodes)."
    )
    client_mode: Literal["standalone", "cluster"] = Field(
        default="standalone", description="How the service talks to the external Redis."
    )
    password_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Optional Secret key with the password (if not in the URL)."
    )


class RedisSpec(StoreModel):
    """Redis for the detector service's L2 cache."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.mode != 'external' || has(self.external)",
                    "message": "redis.external.urlSecretRef is required when mode is external",
                }
            ]
        }
    )

    mode: RedisMode = Field(
        default="sentinel",
        description="sentinel (master + replicas + sentinels), cluster (sharded), standalone "
        "(one pod), external (URL from a Secret) or none (in-process cache only).",
    )
    image: str = Field(
        default="redis:7.0.15-bookworm", min_length=1, description="Redis 7 container image."
    )
    sentinel: RedisSentinel = Field(
        default_factory=RedisSentinel, description="Sentinel topology settings."
    )
    cluster: RedisCluster = Field(
        default_factory=RedisCluster, description="Cluster topology settings."
    )
    config: RedisConfig = Field(default_factory=RedisConfig, description="redis.conf values.")
    persistence: Persistence = Field(
        default_factory=Persistence, description="Data volumes of the Redis pods."
    )
    resources: ComputeResources = Field(
        default_factory=default_redis_resources,
        description="Resources of each Redis data container (default requests 250m/2560Mi, "
        "limits 2 CPU/3Gi).",
    )
    external: RedisExternal | None = Field(
        default=None, description="The external Redis (mode external only)."
    )

    @property
    def managed(self) -> bool:
        """Whether the operator runs the Redis pods (sentinel, cluster or standalone)."""
        return self.mode in MANAGED_MODES

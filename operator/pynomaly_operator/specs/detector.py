"""The ``AnomalyDetector`` custom resource: spec, status and the parsed root object.

Defaults are the Pynomaly performance guide's; ranges, enums and CEL rules here become the
CRD schema (``pynomaly_operator.crdgen``), so ``kubectl apply`` refuses a bad spec with a
message naming the field. The operator parses every body with the same models
(``AnomalyDetector.from_body``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import pydantic

from pynomaly_operator.specs import base
from pynomaly_operator.specs.postgres import PostgresSpec
from pynomaly_operator.specs.redis import RedisSpec

Algorithm = Literal[
    "IForest",
    "ECOD",
    "COPOD",
    "HBOS",
    "LOF",
    "KNN",
    "OCSVM",
    "PCA",
    "LODA",
    "MCD",
    "IsolationForest",
    "LocalOutlierFactor",
    "OneClassSVM",
    "EllipticEnvelope",
]

DEFAULT_IMAGE = "pynomaly/detector:0.1.0"


def _field(default: Any, description: str, **kwargs: Any) -> Any:
    return pydantic.Field(default=default, description=description, **kwargs)


def _sub(factory: Any, description: str) -> Any:
    return pydantic.Field(default_factory=factory, description=description)


# --- model ------------------------------------------------------------------------------


class ConfigMapKeyRef(base.SpecModel):
    """A key of a ConfigMap in the detector's namespace."""

    name: str = pydantic.Field(description="ConfigMap name.", min_length=1, max_length=253)
    key: str = pydantic.Field(description="Key holding the CSV data.", min_length=1)


class TrainingSpec(base.SpecModel):
    """Where the fit data comes from (at most one source; none = fit through the API)."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=base.cel(
            ("!(has(self.configMapRef) && has(self.url))", "set configMapRef or url, not both")
        )
    )
    config_map_ref: ConfigMapKeyRef | None = _field(
        None, "CSV training data from a ConfigMap key, mounted into the pod as a file."
    )
    url: str | None = _field(
        None, "HTTP(S) URL of CSV training data.", pattern=r"^https?://", max_length=2048
    )


class ModelSpec(base.SpecModel):
    """The detector model the service fits and serves."""

    name: str | None = _field(
        None,
        "Model name in the registry; defaults to the resource name.",
        pattern=r"^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$",
        max_length=63,
    )
    algorithm: Algorithm = _field(
        "IForest", "Detector: a PyOD class name or a scikit-learn outlier estimator."
    )
    parameters: dict[str, Any] = _field(
        {},
        "Constructor parameters of the algorithm (names are checked by the operator; "
        "an unknown name sets Degraded/InvalidParameters).",
    )
    contamination: float = _field(
        0.1,
        "Expected share of anomalies; fixes the score threshold at fit time. In (0, 0.5].",
        gt=0,
        le=0.5,
    )
    training: TrainingSpec = _sub(TrainingSpec, "Training data source.")


# --- pods ---------------------------------------------------------------------------------


class ResourceList(base.SpecModel):
    cpu: base.Quantity = _field("750m", "CPU quantity.")
    memory: base.Quantity = _field("2Gi", "Memory quantity.")


class LimitList(base.SpecModel):
    cpu: base.Quantity = _field("2", "CPU quantity.")
    memory: base.Quantity = _field("6Gi", "Memory quantity.")


class ResourcesSpec(base.SpecModel):
    """Container resources of each detector pod."""

    requests: ResourceList = _sub(ResourceList, "Requests (default 750m CPU, 2Gi memory).")
    limits: LimitList = _sub(LimitList, "Limits (default 2 CPU, 6Gi memory).")


class PlacementSpec(base.SpecModel):
    """Which nodes run the detector pods."""

    mode: Literal["required", "preferred", "none"] = _field(
        "required",
        "Node affinity to instanceTypes: required (only those), preferred, or none.",
    )
    instance_types: list[Annotated[str, pydantic.Field(min_length=1, max_length=63)]] = _field(
        ["c5.2xlarge", "c5.4xlarge"],
        "Values of node.kubernetes.io/instance-type the pods may run on.",
        max_length=32,
    )
    zone_spread: bool = _field(
        True, "Spread pods across topology.kubernetes.io/zone (maxSkew 1, ScheduleAnyway)."
    )


class ScalingPolicy(base.SpecModel):
    stabilization_window_seconds: int = _field(
        60, "Stabilization window in seconds.", ge=0, le=3600
    )
    percent: int = _field(
        50, "Largest change per period, percent of current replicas.", ge=1, le=1000
    )
    period_seconds: int = _field(15, "Policy period in seconds.", ge=1, le=1800)


class ScaleDownPolicy(ScalingPolicy):
    stabilization_window_seconds: int = _field(
        300, "Stabilization window in seconds.", ge=0, le=3600
    )
    percent: int = _field(
        10, "Largest change per period, percent of current replicas.", ge=1, le=100
    )
    period_seconds: int = _field(60, "Policy period in seconds.", ge=1, le=1800)


class BehaviorSpec(base.SpecModel):
    scale_up: ScalingPolicy = _sub(ScalingPolicy, "Scale-up: default 60 s window, 50 % per 15 s.")
    scale_down: ScaleDownPolicy = _sub(
        ScaleDownPolicy, "Scale-down: default 300 s window, 10 % per 60 s."
    )


class LoadMetricSpec(base.SpecModel):
    """A per-pod load metric the HPA scales on, next to CPU and memory (HPA ``Pods`` metric
    served by a custom-metrics adapter; rules for prometheus-adapter in
    ``manifests/monitoring/prometheus-adapter-rules.yaml``)."""

    type: Literal["RequestsPerSecond", "InFlightRequests"] = _field(
        ...,
        "RequestsPerSecond: HTTP requests per second per pod "
        "(adapter metric pynomaly_requests_per_second); InFlightRequests: requests being "
        "served per pod (pynomaly_in_flight_requests).",
    )
    target_average_value: base.Quantity = _field(
        ..., 'Target per pod, averaged over pods (e.g. "200" requests/s, "32" in flight).'
    )
    metric_name: str | None = _field(
        None,
        "Name under which the adapter serves the metric (default above).",
        pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$",
        max_length=128,
    )


class AutoscalingSpec(base.SpecModel):
    """HorizontalPodAutoscaler (autoscaling/v2) of the detector Deployment."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=base.cel(
            ("self.minReplicas <= self.maxReplicas", "minReplicas must be <= maxReplicas")
        )
    )
    enabled: bool = _field(True, "false: no HPA; the Deployment runs minReplicas pods.")
    min_replicas: int = _field(3, "Lower bound of replicas (also the PDB's basis).", ge=1, le=1000)
    max_replicas: int = _field(20, "Upper bound of replicas.", ge=1, le=1000)
    target_cpu_utilization: int = _field(
        70, "Average CPU utilization target, percent.", ge=1, le=100
    )
    target_memory_utilization: int | None = _field(
        80, "Average memory utilization target, percent (null: CPU only).", ge=1, le=100
    )
    behavior: BehaviorSpec = _sub(BehaviorSpec, "Scaling behavior (stabilization and policies).")
    metrics: list[LoadMetricSpec] = _field(
        [],
        "Load metrics added to the CPU/memory targets (the HPA scales to the largest "
        "recommendation); needs a custom-metrics adapter serving them.",
        max_length=2,
    )


# --- service settings ------------------------------------------------------------------


class ServerSpec(base.SpecModel):
    """uvicorn / HTTP settings of the detector service."""

    @pydantic.field_validator("grpc_port")
    @classmethod
    def _grpc_port_is_free(cls, port: int | None) -> int | None:
        if port in (8000, 9090):
            raise ValueError("grpcPort must differ from the HTTP (8000) and metrics (9090) ports")
        return port

    model_config = pydantic.ConfigDict(
        json_schema_extra=base.cel(
            (
                "self.maxRequestsJitter <= self.maxRequests",
                "maxRequestsJitter must be <= maxRequests",
            ),
            (
                "!has(self.grpcPort) || (self.grpcPort != 8000 && self.grpcPort != 9090)",
                "grpcPort must differ from the HTTP (8000) and metrics (9090) ports",
            ),
        )
    )
    workers: int = _field(4, "Worker processes per pod.", ge=1, le=64)
    keepalive_seconds: int = _field(65, "HTTP keep-alive timeout in seconds.", ge=1, le=3600)
    timeout_seconds: int = _field(30, "Per-request timeout in seconds.", ge=1, le=3600)
    max_requests: int = _field(1000, "Requests before a worker restarts (0 = never).", ge=0)
    max_requests_jitter: int = _field(50, "Random jitter added to maxRequests.", ge=0)
    backlog: int = _field(2048, "Listen backlog.", ge=1, le=65535)
    limit_concurrency: int = _field(1000, "Concurrent connections per worker before 503.", ge=1)
    max_body_bytes: int = _field(
        64 * 1024 * 1024,
        "Largest request body in bytes (the service's own default, 64 MiB).",
        ge=1024,
    )
    batch_max_size: int = _field(
        4096,
        "Micro-batch: row budget of one model call (a larger request is never split).",
        ge=1,
        le=100000,
    )
    batch_max_wait_ms: int = _field(
        0,
        "Micro-batch: how long an idle model waits for more rows, ms (0: batches still form "
        "from requests arriving while a model call runs, without added latency).",
        ge=0,
        le=1000,
    )
    drain_seconds: int = _field(
        10,
        "On SIGTERM the service fails readiness at once and keeps serving this long (Service "
        "endpoints and clients catch up), then shuts down gracefully. The pod's grace period "
        "is drainSeconds + timeoutSeconds + 10 s (pool close and log flush).",
        ge=0,
        le=600,
    )
    grpc_port: int | None = _field(
        None,
        "Port of the service's gRPC endpoint (Open Inference Protocol v2); unset: no gRPC. "
        "Exposed on the Service as port grpc and admitted for allowedClients.",
        ge=1024,
        le=65535,
    )
    scoring_auth: Literal["none", "token"] = _field(
        "none",
        "Who may score: none (anyone the NetworkPolicy admits) or token (a bearer token from "
        "the generated Secret <name>-api-token, key token, one or more tokens one per line).",
    )


# --- network ------------------------------------------------------------------------------


class LabelSelector(base.SpecModel):
    """Labels that select namespaces or pods (every label must match; {} selects all)."""

    match_labels: dict[str, Annotated[str, pydantic.Field(max_length=63)]] = _field(
        {}, "Label key: value pairs that must all match.", max_length=32
    )


class ClientPeer(base.SpecModel):
    """Pods allowed to call the scoring API: pods matching podSelector in namespaces
    matching namespaceSelector (no namespaceSelector: this namespace only)."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=base.cel(
            (
                "has(self.namespaceSelector) || has(self.podSelector)",
                "each allowedClients entry sets namespaceSelector, podSelector or both",
            )
        )
    )
    namespace_selector: LabelSelector | None = _field(
        None, "Namespaces the clients run in ({} = every namespace)."
    )
    pod_selector: LabelSelector | None = _field(None, "The client pods ({} = every pod).")


def _same_namespace() -> list[ClientPeer]:
    return [ClientPeer(pod_selector=LabelSelector())]


class NetworkSpec(base.SpecModel):
    """Who may reach the detector pods (rendered into their NetworkPolicy)."""

    allowed_clients: list[ClientPeer] = pydantic.Field(
        default_factory=_same_namespace,
        description="Who may call the scoring API (HTTP, and gRPC when enabled). Default: every "
        "pod of this namespace. An empty list admits no client at all.",
        max_length=32,
    )
    operator_namespace: str = _field(
        "pynomaly-system",
        "Namespace of the operator, whose pods may read the served model's version from the "
        "HTTP port (GET /v1/models/<name>, reported in status.model).",
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        max_length=63,
    )
    metrics_namespaces: list[
        Annotated[str, pydantic.Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]
    ] = _field(
        ["monitoring"],
        "Namespaces whose pods may scrape the metrics port (Prometheus).",
        max_length=16,
    )


class MemoryCacheSpec(base.SpecModel):
    max_size: int = _field(1000, "Entries in the in-process LRU cache.", ge=0)
    ttl_seconds: int = _field(300, "TTL of in-process entries.", ge=1)


class RedisCacheSpec(base.SpecModel):
    ttl_seconds: int = _field(3600, "TTL of Redis cache entries.", ge=1)
    key_prefix: str = _field("pynomaly:", "Prefix of every Redis key.", max_length=64)


class QueryCacheSpec(base.SpecModel):
    ttl_seconds: int = _field(1800, "TTL of cached query results.", ge=1)


class CacheSpec(base.SpecModel):
    """L1 in-process and L2 Redis caches of the scoring path."""

    memory: MemoryCacheSpec = _sub(MemoryCacheSpec, "In-process LRU+TTL cache.")
    redis: RedisCacheSpec = _sub(RedisCacheSpec, "Redis cache.")
    query: QueryCacheSpec = _sub(QueryCacheSpec, "Query-result cache.")
    warmup: bool = _field(True, "Load popular models at start.")


class RateLimitSpec(base.SpecModel):
    requests_per_second: int = _field(0, "Requests per second per pod (0 = off).", ge=0)
    burst: int = _field(0, "Burst above the rate.", ge=0)


class MonitoringSpec(base.SpecModel):
    """Prometheus Operator objects for this detector (monitoring.coreos.com/v1), rendered only
    when their CRDs are served; the pods carry prometheus.io/* scrape annotations regardless."""

    enabled: bool = _field(False, "Render a ServiceMonitor or PodMonitor scraping /metrics.")
    kind: Literal["ServiceMonitor", "PodMonitor"] = _field(
        "ServiceMonitor",
        "ServiceMonitor scrapes ready endpoints; PodMonitor every pod (also not-ready ones).",
    )
    rules: bool = _field(
        False, "Render a PrometheusRule with this detector's alert and recording rules."
    )


# --- the resource --------------------------------------------------------------------------


class AnomalyDetectorSpec(base.SpecModel):
    """Desired state of an AnomalyDetector."""

    paused: bool = _field(False, "Stop reconciling children (no applies); status keeps reporting.")
    image: str = _field(DEFAULT_IMAGE, "Detector service image.", min_length=1, max_length=512)
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = _field(
        "IfNotPresent", "Image pull policy."
    )
    model: ModelSpec = _sub(ModelSpec, "The model served.")
    resources: ResourcesSpec = _sub(ResourcesSpec, "Detector container resources.")
    placement: PlacementSpec = _sub(PlacementSpec, "Node placement.")
    autoscaling: AutoscalingSpec = _sub(AutoscalingSpec, "Horizontal autoscaling.")
    server: ServerSpec = _sub(ServerSpec, "HTTP server settings.")
    cache: CacheSpec = _sub(CacheSpec, "Caches.")
    rate_limit: RateLimitSpec = _sub(RateLimitSpec, "Per-pod rate limit.")
    log_level: Literal["debug", "info", "warning", "error"] = _field("info", "Service log level.")
    anomaly_log: bool = _field(False, "Log every anomaly found.")
    cors_origins: list[str] = _field([], "Allowed CORS origins.", max_length=64)
    redis: RedisSpec = _sub(RedisSpec, "Redis (L2 cache).")
    postgres: PostgresSpec = _sub(PostgresSpec, "PostgreSQL model store (via PgBouncer).")
    network: NetworkSpec = _sub(NetworkSpec, "Who may reach the detector pods.")
    monitoring: MonitoringSpec = _sub(MonitoringSpec, "Prometheus scrape objects and alert rules.")


class Condition(base.SpecModel):
    type: str = pydantic.Field(description="Condition type.")
    status: Literal["True", "False", "Unknown"] = pydantic.Field(description="Status.")
    reason: str = pydantic.Field(description="CamelCase reason.")
    message: str = _field("", "Human-readable detail.")
    observed_generation: int | None = _field(None, "Generation the condition was computed for.")
    last_transition_time: str | None = _field(None, "When status last changed (RFC 3339).")


class ReplicasStatus(base.SpecModel):
    desired: int = _field(0, "Replicas wanted (HPA desired or Deployment spec).")
    ready: int = _field(0, "Ready detector pods.")


class ModelStatus(base.SpecModel):
    """The declared model, and the version the service actually serves (as it reports it)."""

    # Atomic: the operator's server-side apply replaces the whole map, so a field it no
    # longer reports (or one written by hand) does not linger beside what it observed.
    model_config = pydantic.ConfigDict(json_schema_extra={"x-kubernetes-map-type": "atomic"})

    name: str | None = _field(
        None, "Model name in the registry (spec.model.name or the resource name)."
    )
    algorithm: str | None = _field(None, "Declared algorithm (spec.model.algorithm).")
    version: int | None = _field(
        None, "Version the service serves (GET /v1/models/<name>); unset until it answers."
    )
    served_algorithm: str | None = _field(None, "Algorithm of the served version.")
    threshold: float | None = _field(None, "Score threshold of the served version.")
    fitted_at: str | None = _field(None, "When the served version was fitted.")


class AnomalyDetectorStatus(base.SpecModel):
    """Observed state, written by the operator only."""

    observed_generation: int | None = _field(None, "Generation last reconciled.")
    phase: Literal["Pending", "Progressing", "Ready", "Degraded", "Failed"] | None = _field(
        None, "Summary: Pending | Progressing | Ready | Degraded | Failed."
    )
    conditions: list[Condition] = _field([], "Ready, Progressing, Degraded and per component.")
    endpoint: str | None = _field(None, "In-cluster URL of the scoring API.")
    replicas: ReplicasStatus = _sub(ReplicasStatus, "Detector replicas.")
    model: ModelStatus = _sub(
        ModelStatus,
        "The declared model (name, algorithm); the fitted version and threshold are the "
        "service's (GET /v1/models/{name}).",
    )


class AnomalyDetector(base.SpecModel):
    """The parsed custom resource: what builders and status functions receive."""

    name: str
    namespace: str
    uid: str = ""
    generation: int = 0
    spec: AnomalyDetectorSpec

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> AnomalyDetector:
        """Parse a raw resource body (raises ``pydantic.ValidationError``)."""
        metadata = body.get("metadata") or {}
        return cls(
            name=metadata["name"],
            namespace=metadata.get("namespace") or "default",
            uid=metadata.get("uid") or "",
            generation=int(metadata.get("generation") or 0),
            spec=AnomalyDetectorSpec.model_validate(dict(body.get("spec") or {})),
        )

    @property
    def model_name(self) -> str:
        return self.spec.model.name or self.name

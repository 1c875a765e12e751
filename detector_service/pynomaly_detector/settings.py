"""The detector service's settings: one pydantic-settings class read from ``PYNOMALY_*`` env.

The operator renders a ConfigMap whose keys are exactly these environment names (the team
contract); secrets arrive as separate ``secretKeyRef`` env entries. Every field carries a
docstring because the README's settings table is generated from them.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PLACEHOLDER_SECRETS = frozenset(
    {"", "changeme", "change-me", "changethis", "secret", "placeholder"}
)
"""Values refused for the signing key outside development: they sign nothing worth trusting."""


class Settings(BaseSettings):
    """Everything the detector service reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="PYNOMALY_", extra="ignore", frozen=True, use_attribute_docstrings=True
    )

    environment: Literal["development", "production"] = "development"
    """``production`` refuses placeholder secrets (the signing key) at start."""

    host: str = "127.0.0.1"
    """Interface uvicorn binds; pods use ``0.0.0.0``."""
    port: int = Field(default=8000, ge=1, le=65535)
    """HTTP port of the API."""
    metrics_port: int = Field(default=9090, ge=0, le=65535)
    """Port of a separate ``/metrics`` listener in the parent process; 0 = only the main port."""
    grpc_port: int = Field(default=0, ge=0, le=65535)
    """Port of the Open Inference Protocol v2 gRPC API (``inference.GRPCInferenceService``),
    served by every worker beside HTTP; 0 = off."""
    workers: int = Field(default=4, ge=1, le=64)
    """uvicorn worker processes."""
    timeout_keep_alive: int = Field(default=65, ge=1)
    """Seconds an idle keep-alive connection stays open (above the load balancer's idle timeout)."""
    request_timeout_seconds: float = Field(default=30.0, gt=0)
    """Deadline of one request; a request still running then is answered 504."""
    max_requests: int = Field(default=0, ge=0)
    """Requests a worker serves before it is recycled (0 = never, the default here and in the
    operator's ``spec.server.maxRequests``: caches are bounded, so there is nothing to
    reclaim, and a recycled worker re-imports PyOD, reopens its pools and loses L1 (its most
    used models are reloaded before it serves); at 1,000 it restarted every 0.1-0.4 s under
    load, and uvicorn resets connections a recycling worker accepted but had not read)."""
    max_requests_jitter: int = Field(default=50, ge=0)
    """Random extra requests per worker so that workers do not all recycle at once."""
    backlog: int = Field(default=2048, ge=1)
    """Listen backlog of the server socket."""
    limit_concurrency: int = Field(default=1000, ge=1)
    """Concurrent connections+tasks per worker before uvicorn answers 503."""
    graceful_shutdown_seconds: int = Field(default=25, ge=1)
    """Seconds uvicorn waits for in-flight requests after SIGTERM (below the pod's grace period)."""
    drain_seconds: float = Field(default=10.0, ge=0)
    """After SIGTERM: seconds readiness fails while the service keeps serving (so endpoints
    are removed first), before uvicorn stops listening and finishes in-flight requests
    (``spec.server.drainSeconds``, whose default this is)."""
    fit_timeout_seconds: float = Field(default=25.0, gt=0)
    """Wall-clock limit of one fit, which runs in its own process: beyond it the process is
    killed, the model stays on its previous version and the PUT gets 422 ``fit_timeout``
    (also bounds the declared model's fit at start). Keep it below
    ``request_timeout_seconds``, else the request's 504 comes first (that stops the fit too)."""
    fit_server_idle_seconds: float = Field(default=60.0, ge=0)
    """Seconds without a fit after which a worker stops its fit fork server (the process
    that imports every algorithm once so fits start fast: ~250 MB RSS per worker). The next
    fit starts it again and waits for those imports (~2 s on an idle core). 0 = stop it as
    soon as no fit runs. Never stopped while a fit runs."""
    request_read_timeout_seconds: float = Field(default=15.0, gt=0)
    """Seconds a client has to send a whole request (headers and body) once it starts;
    slower requests get 408 and their connection is closed (slowloris)."""

    api_token_file: str = ""
    """File of bearer tokens, one per line (``#`` comments and blank lines ignored; several
    for rotation; re-read when it changes). Model management (PUT, DELETE, anomalies)
    requires one; empty = development mode, no authentication (logged at start)."""
    scoring_auth: Literal["none", "token"] = "none"
    """``token``: scoring (REST and gRPC) and model reads need a bearer token too (from
    ``api_token_file``); ``none``: scoring is open to what the NetworkPolicy admits."""

    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    """Largest request body accepted (uploads included); larger bodies get 413."""
    max_instances_per_request: int = Field(default=10_000, ge=1)
    """Most rows one detect/infer request may carry; more gets 413."""
    batch_max_size: int = Field(default=4096, ge=1)
    """Row budget of one model call: concurrent requests are merged while their rows fit; a
    request with more rows is scored alone, never split."""
    batch_max_wait_ms: float = Field(default=0.0, ge=0)
    """How long an idle model waits for more rows before its first call (0: batches still form
    from requests arriving while a call runs, without adding latency)."""
    batch_max_concurrency: int = Field(default=1, ge=1)
    """Model calls per model that may run at once in the worker thread pool."""
    scoring_inline_max_rows: int = Field(default=256, ge=0)
    """Model calls of at most this many rows run on the event loop when the model has a fast
    scorer (IsolationForest, IForest, ECOD, COPOD: ~0.6 ms for 256 rows); larger calls and
    other models use the thread pool, so a big call never stalls other requests' I/O
    (0 = always the pool)."""
    scoring_threads: int = Field(default=2, ge=1)
    """Threads of the pool that runs scoring calls off the event loop (fits have their own
    single thread, so a long fit never delays scoring)."""

    cache_memory_max_size: int = Field(default=1000, ge=0)
    """L1: most cached row scores kept in process (0 disables the L1 result cache: for traffic
    whose rows never repeat, such as scoring fresh 256-row batches, that measured ~15 % more
    rows/s)."""
    cache_memory_ttl_seconds: float = Field(default=300, ge=0)
    """L1: seconds a cached row score (and an idle loaded model) stays in process."""
    cache_model_max_models: int = Field(default=100, ge=1)
    """L1: most loaded models kept in process (LRU; the declared model is never evicted)."""
    cache_redis_ttl_seconds: int = Field(default=3600, ge=1)
    """L2: seconds a row score stays in Redis."""
    cache_redis_key_prefix: str = "pynomaly:"
    """L2: prefix of every Redis key this service writes."""
    cache_query_ttl_seconds: float = Field(default=1800, ge=0)
    """L3: seconds a registry lookup (latest version of a model) is reused without the store."""
    cache_revalidate_seconds: float = Field(default=1.0, ge=0)
    """Seconds between reads of the store's change counter (one small read per process): a
    model replaced or deleted elsewhere stops serving within this bound in every worker and
    replica, whatever the Redis mode (0 = never: only Redis pub/sub and the L3 TTL)."""
    cache_warmup: bool = True
    """Load every stored model at start so the first requests do not pay for loading."""

    redis_mode: Literal["none", "standalone", "sentinel", "cluster"] = "none"
    """``none`` keeps all caching in process."""
    redis_url: str = ""
    """standalone: ``redis://host:port/0``; cluster: startup nodes ``host:port,host:port``."""
    redis_sentinels: str = ""
    """sentinel: ``host:port,host:port,host:port``."""
    redis_master_name: str = "pynomaly-master"
    """sentinel: the monitored master's name."""
    redis_password: SecretStr = SecretStr("")
    """Password of Redis (and of the sentinels); from a Secret."""
    redis_socket_timeout_seconds: float = Field(default=0.25, gt=0)
    """Socket timeout of cache calls: a slow Redis is bypassed rather than waited for."""
    redis_backoff_max_seconds: float = Field(default=10.0, gt=0)
    """Longest pause of the L2 circuit breaker before it probes a failed Redis again."""
    redis_max_connections: int = Field(default=50, ge=1)
    """Most Redis connections per worker (per node in cluster mode); a caller waits up to the
    socket timeout for a free one, then the cache is bypassed for that call."""

    database_url: str = ""
    """``postgresql://user@host:port/db`` (via PgBouncer); empty = embedded directory store."""
    database_password: SecretStr = SecretStr("")
    """Password of the database user; from a Secret."""
    database_pool_min_size: int = Field(default=1, ge=0)
    """asyncpg pool: connections kept open per worker."""
    database_pool_max_size: int = Field(default=5, ge=1)
    """asyncpg pool: most connections per worker."""
    database_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    """Timeout of one database connect / command."""
    database_pool_acquire_timeout_seconds: float = Field(default=30.0, gt=0)
    """Longest wait for a free pooled connection when every one is busy."""

    model_dir: str = "./models"
    """Directory of the embedded model store (used when ``database_url`` is empty)."""
    artifact_signing_key: SecretStr = SecretStr("development-only-signing-key")
    """HMAC key signing model artifacts; unsigned or tampered artifacts are never unpickled."""

    model_name: str = ""
    """Name of the model this deployment declares; fitted once at start if the store lacks it."""
    model_algorithm: str = "IForest"
    """Algorithm of the declared model."""
    model_parameters: Annotated[dict[str, Any], NoDecode] = Field(default_factory=dict)
    """JSON object of estimator parameters of the declared model."""
    model_contamination: float = Field(default=0.1, gt=0, le=0.5)
    """Expected share of anomalies in the declared model's training data (sets the threshold)."""
    model_alert_rate: float | None = Field(default=None, gt=0, lt=0.5)
    """Share of normal traffic the declared model should flag (e.g. 0.001): the threshold is
    then the calibration-sample quantile with p-value <= this rate, not ``model_contamination``."""
    feedback_calibration: bool = False
    """Opt-in: add the scores of alerts labelled false_positive to the model's calibration
    sample (stored as a new model version), so similar rows get higher p-values afterwards."""
    model_training_path: str = ""
    """CSV file with the declared model's training rows (e.g. a mounted ConfigMap key)."""
    model_training_url: str = ""
    """http(s) URL of a CSV with the declared model's training rows."""
    model_max_training_rows: int = Field(default=1_000_000, ge=10)
    """Training rows beyond this are reservoir-sampled (recorded in the model's metadata)."""
    model_keep_versions: int = Field(default=10, ge=0)
    """Stored versions kept per model, newest first; older ones are deleted after each fit
    (the newest, which is the one served, is never deleted; 0 = keep every version)."""
    model_max_features: int = Field(default=10_000, ge=1, le=100_000)
    """Widest training row (columns) a fit accepts, checked on the CSV's first line or the
    JSON row lengths before any matrix is built (wider: 422)."""

    model_challenger_algorithm: str = ""
    """Algorithm of the declared model's challenger, fitted once on the declared training data
    and scored in shadow (empty: no declared challenger; one can still be PUT)."""
    model_challenger_parameters: Annotated[dict[str, Any], NoDecode] = Field(default_factory=dict)
    """JSON object of the challenger's estimator parameters."""
    model_challenger_contamination: float = Field(default=0.1, gt=0, le=0.5)
    """Contamination the challenger is fitted with (sets its threshold)."""
    model_challenger_alert_rate: float | None = Field(default=None, gt=0, lt=0.5)
    """Share of normal traffic the challenger flags (its threshold from its calibration
    sample), instead of its contamination."""
    model_promotion_min_rows: int = Field(default=0, ge=0)
    """Promote the challenger automatically once this many rows were compared over all
    workers and the agreement is reached (0: only ``POST /v1/models/{name}/promote``)."""
    model_promotion_min_agreement: float = Field(default=0.9, ge=-1, le=1)
    """Spearman rank correlation of challenger and champion scores needed to promote."""
    shadow_enabled: bool = True
    """Score the traffic with the challenger of a model, when it has one (off the hot path)."""
    shadow_cpu_share: float = Field(default=0.1, gt=0, le=1)
    """Share of one core per worker the challenger's scoring may use; rows beyond are skipped."""
    shadow_buffer_rows: int = Field(default=1024, ge=1)
    """Rows per model waiting for the challenger; rows offered while it is full are skipped."""
    drift_enabled: bool = True
    """Keep drift sketches of served models (``drift`` in ``GET /v1/models/{name}``)."""
    drift_window_rows: int = Field(default=20_000, ge=100)
    """Per worker: the drift figures cover its last ``window/2`` to ``window`` rows (counts
    are halved when they exceed it)."""
    drift_min_rows: int = Field(default=500, ge=1)
    """Rows needed before a drift score is reported (fewer: ``score`` is null, as the noise
    of a small sample would read as drift)."""
    drift_publish_seconds: float = Field(default=5.0, gt=0)
    """How often each worker shares its sketches through Redis and refreshes the gauges."""
    drift_stale_seconds: float = Field(default=600.0, gt=0)
    """A worker's shared sketch older than this no longer counts (stopped or idle worker)."""

    rate_limit_requests_per_second: float = Field(default=0, ge=0)
    """Per-client request rate (shared through Redis when configured); 0 = off."""
    rate_limit_burst: int = Field(default=0, ge=0)
    """Extra requests a client may send in a burst above the rate."""

    anomaly_log_enabled: bool = False
    """Record every anomalous row (model, version, score, row) in the store, batched."""
    anomaly_log_queue_size: int = Field(default=10_000, ge=1)
    """Most anomaly records waiting to be written; more are dropped and counted."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Log level of the service's JSON logs."""
    access_log: bool = True
    """Log one JSON line per request (health probes excluded)."""
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Origins allowed by CORS (JSON list or comma-separated); empty = CORS off."""

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.lstrip().startswith("["):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("model_parameters", "model_challenger_parameters", mode="before")
    @classmethod
    def _parse_parameters(cls, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else {}
        return value

    @model_validator(mode="after")
    def _refuse_placeholders(self) -> Settings:
        key = self.artifact_signing_key.get_secret_value()
        if self.environment == "production" and (
            key.lower() in PLACEHOLDER_SECRETS or key.startswith("development") or len(key) < 16
        ):
            msg = "PYNOMALY_ARTIFACT_SIGNING_KEY must be a real secret (>= 16 chars) in production"
            raise ValueError(msg)
        if self.scoring_auth == "token" and not self.api_token_file:
            raise ValueError("PYNOMALY_SCORING_AUTH=token needs PYNOMALY_API_TOKEN_FILE")
        if self.redis_mode == "sentinel" and not self.redis_sentinels:
            raise ValueError(
                "PYNOMALY_REDIS_SENTINELS is required when PYNOMALY_REDIS_MODE=sentinel"
            )
        if self.redis_mode in ("standalone", "cluster") and not self.redis_url:
            raise ValueError(
                f"PYNOMALY_REDIS_URL is required when PYNOMALY_REDIS_MODE={self.redis_mode}"
            )
        return self


def markdown_table() -> str:
    """The settings as a Markdown table (env name, default, meaning) for the README."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if isinstance(default, SecretStr):
            default = "(secret)" if default.get_secret_value() else '""'
        shown = json.dumps(default) if not isinstance(default, str) else f'"{default}"'
        description = (field.description or "").replace("``", "`").replace("|", "\\|")
        lines.append(f"| `PYNOMALY_{name.upper()}` | `{shown}` | {' '.join(description.split())} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())

"""The detector service's settings ConfigMap: keys are the service's ``PYNOMALY_*`` env names.

Rendered from the spec's server, cache, model, rate-limit and logging sections. Store
settings (Redis, database) and secrets do not live here: they come as ``env`` entries from
``builders.detector.store_env`` and ``secretKeyRef``s, so no secret value is ever in a
ConfigMap or plain env.
"""

from __future__ import annotations

import json
from typing import Any

from pynomaly_operator import naming
from pynomaly_operator.builders import pods
from pynomaly_operator.specs import detector as specs

TRAINING_DIR = "/etc/pynomaly/training"
MODEL_DIR = "/var/lib/pynomaly/models"


def training_path(detector: specs.AnomalyDetector) -> str | None:
    """Where the training ConfigMap key is mounted in the pod (None: no ConfigMap source)."""
    ref = detector.spec.model.training.config_map_ref
    return None if ref is None else f"{TRAINING_DIR}/{ref.key}"


def _flag(value: bool) -> str:
    return "true" if value else "false"


def settings(detector: specs.AnomalyDetector) -> dict[str, str]:
    """The ``PYNOMALY_*`` settings rendered from the spec (sorted keys, string values)."""
    spec = detector.spec
    server, cache, model = spec.server, spec.cache, spec.model
    data: dict[str, str] = {
        "PYNOMALY_HOST": "0.0.0.0",  # noqa: S104  (pods listen on their own IP)
        "PYNOMALY_PORT": str(pods.HTTP_PORT),
        "PYNOMALY_METRICS_PORT": str(pods.METRICS_PORT),
        "PYNOMALY_WORKERS": str(server.workers),
        "PYNOMALY_TIMEOUT_KEEP_ALIVE": str(server.keepalive_seconds),
        "PYNOMALY_REQUEST_TIMEOUT_SECONDS": str(server.timeout_seconds),
        "PYNOMALY_MAX_REQUESTS": str(server.max_requests),
        "PYNOMALY_MAX_REQUESTS_JITTER": str(server.max_requests_jitter),
        "PYNOMALY_BACKLOG": str(server.backlog),
        "PYNOMALY_LIMIT_CONCURRENCY": str(server.limit_concurrency),
        "PYNOMALY_MAX_BODY_BYTES": str(server.max_body_bytes),
        "PYNOMALY_BATCH_MAX_SIZE": str(server.batch_max_size),
        "PYNOMALY_BATCH_MAX_WAIT_MS": str(server.batch_max_wait_ms),
        "PYNOMALY_CACHE_MEMORY_MAX_SIZE": str(cache.memory.max_size),
        "PYNOMALY_CACHE_MEMORY_TTL_SECONDS": str(cache.memory.ttl_seconds),
        "PYNOMALY_CACHE_REDIS_TTL_SECONDS": str(cache.redis.ttl_seconds),
        "PYNOMALY_CACHE_REDIS_KEY_PREFIX": cache.redis.key_prefix,
        "PYNOMALY_CACHE_QUERY_TTL_SECONDS": str(cache.query.ttl_seconds),
        "PYNOMALY_CACHE_WARMUP": _flag(cache.warmup),
        "PYNOMALY_MODEL_DIR": MODEL_DIR,
        "PYNOMALY_MODEL_NAME": detector.model_name,
        "PYNOMALY_MODEL_ALGORITHM": model.algorithm,
        "PYNOMALY_MODEL_PARAMETERS": json.dumps(model.parameters, sort_keys=True),
        "PYNOMALY_MODEL_CONTAMINATION": repr(model.contamination),
        "PYNOMALY_RATE_LIMIT_REQUESTS_PER_SECOND": str(spec.rate_limit.requests_per_second),
        "PYNOMALY_RATE_LIMIT_BURST": str(spec.rate_limit.burst),
        "PYNOMALY_ANOMALY_LOG_ENABLED": _flag(spec.anomaly_log),
        "PYNOMALY_LOG_LEVEL": spec.log_level,
        "PYNOMALY_CORS_ORIGINS": ",".join(spec.cors_origins),
        "PYNOMALY_ENVIRONMENT": "production",
    }
    path = training_path(detector)
    if path is not None:
        data["PYNOMALY_MODEL_TRAINING_PATH"] = path
    if model.training.url is not None:
        data["PYNOMALY_MODEL_TRAINING_URL"] = model.training.url
    return dict(sorted(data.items()))


def config_map(detector: specs.AnomalyDetector, names: naming.Names) -> dict[str, Any]:
    """The settings ConfigMap."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": names.config,
            "labels": names.labels(naming.COMPONENT_DETECTOR),
        },
        "data": settings(detector),
    }

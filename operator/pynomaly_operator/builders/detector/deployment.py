"""The detector service Deployment.

Restricted-profile pods (non-root, read-only root filesystem with emptyDirs for /tmp and the
embedded model directory, seccomp RuntimeDefault, no capabilities, no privilege
escalation), settings from the ConfigMap, secrets only through ``secretKeyRef``, probes on
/livez and /readyz, node affinity to the spec's instance types, zone spread, Prometheus
scrape annotations and a config-hash annotation that rolls the pods when settings change.

``replicas`` is set only when no HPA manages the Deployment (the caller decides): the
operator must never fight the autoscaler over it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pynomaly_operator import naming
from pynomaly_operator.builders import pods
from pynomaly_operator.builders.detector import api_token, config_map, signing_key
from pynomaly_operator.specs import detector as specs

INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
ZONE_LABEL = "topology.kubernetes.io/zone"


def affinity(detector: specs.AnomalyDetector) -> dict[str, Any] | None:
    """Node affinity to the placement's instance types (None for mode ``none``)."""
    placement = detector.spec.placement
    if placement.mode == "none" or not placement.instance_types:
        return None
    term: dict[str, Any] = {
        "matchExpressions": [
            {"key": INSTANCE_TYPE_LABEL, "operator": "In", "values": list(placement.instance_types)}
        ]
    }
    node: dict[str, Any]
    if placement.mode == "required":
        node = {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}
    else:
        node = {
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "preference": term}]
        }
    return {"nodeAffinity": node}


def _volumes(
    detector: specs.AnomalyDetector, names: naming.Names
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    volumes: list[dict[str, Any]] = [
        {"name": "tmp", "emptyDir": {}},
        {"name": "models", "emptyDir": {}},
        api_token.volume(names),
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108  (the read-only root's scratch space)
        {"name": "models", "mountPath": config_map.MODEL_DIR},
        api_token.mount(),
    ]
    ref = detector.spec.model.training.config_map_ref
    if ref is not None:
        volumes.append(
            {
                "name": "training",
                "configMap": {"name": ref.name, "items": [{"key": ref.key, "path": ref.key}]},
            }
        )
        mounts.append({"name": "training", "mountPath": config_map.TRAINING_DIR, "readOnly": True})
    return volumes, mounts


def _ports(detector: specs.AnomalyDetector) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {"name": "http", "containerPort": pods.HTTP_PORT, "protocol": "TCP"},
        {"name": "metrics", "containerPort": pods.METRICS_PORT, "protocol": "TCP"},
    ]
    if detector.spec.server.grpc_port is not None:
        out.append(
            {"name": "grpc", "containerPort": detector.spec.server.grpc_port, "protocol": "TCP"}
        )
    return out


# After the drain, the slowest request may still run for timeoutSeconds; then the asyncpg
# pool closes and the anomaly log flushes. This margin covers those last steps.
SHUTDOWN_MARGIN_SECONDS = 10


def termination_grace_period(detector: specs.AnomalyDetector) -> int:
    """Seconds between SIGTERM and SIGKILL: drain, the longest request, then the margin.

    No preStop hook: the service starts draining on SIGTERM itself (readiness fails at once,
    requests are still served for ``drainSeconds``), which is what a preStop sleep would buy,
    without a second wait inside the same grace period or a shell in the image.
    """
    server = detector.spec.server
    return server.drain_seconds + server.timeout_seconds + SHUTDOWN_MARGIN_SECONDS


def deployment(
    detector: specs.AnomalyDetector,
    names: naming.Names,
    *,
    config_hash: str,
    store_env: Sequence[dict[str, Any]] = (),
    replicas: int | None = None,
) -> dict[str, Any]:
    """apps/v1 Deployment of the detector service.

    ``config_hash``: hash of the ConfigMap data (pod-template annotation);
    ``store_env``: env entries from ``builders.detector.store_env.env``;
    ``replicas``: set only when no HPA owns the replica count.
    """
    spec = detector.spec
    volumes, mounts = _volumes(detector, names)
    env: list[dict[str, Any]] = [
        {
            "name": "PYNOMALY_ARTIFACT_SIGNING_KEY",
            "valueFrom": {
                "secretKeyRef": {"name": names.signing_key_secret, "key": signing_key.KEY}
            },
        },
        # The token file's path is no secret; the tokens are in the mounted Secret.
        pods.env("PYNOMALY_API_TOKEN_FILE", api_token.FILE),
        pods.env("PYNOMALY_SCORING_AUTH", spec.server.scoring_auth),
        pods.env("PYNOMALY_DRAIN_SECONDS", str(spec.server.drain_seconds)),
        pods.env("PYNOMALY_GRPC_PORT", str(spec.server.grpc_port or 0)),  # 0: no gRPC
        *store_env,
    ]
    selector = names.selector(naming.COMPONENT_DETECTOR)
    pod_spec: dict[str, Any] = {
        "serviceAccountName": names.detector,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": termination_grace_period(detector),
        "securityContext": pods.pod_security_context(),
        "containers": [
            {
                "name": "detector",
                "image": spec.image,
                "imagePullPolicy": spec.image_pull_policy,
                "ports": _ports(detector),
                "envFrom": [{"configMapRef": {"name": names.config}}],
                "env": env,
                "resources": {
                    "requests": {
                        "cpu": spec.resources.requests.cpu,
                        "memory": spec.resources.requests.memory,
                    },
                    "limits": {
                        "cpu": spec.resources.limits.cpu,
                        "memory": spec.resources.limits.memory,
                    },
                },
                "startupProbe": pods.http_probe("/livez", port="http", period=5, failures=60),
                "livenessProbe": pods.http_probe("/livez", port="http", period=10, failures=3),
                "readinessProbe": pods.http_probe("/readyz", port="http", period=5, failures=3),
                "securityContext": pods.container_security_context(),
                "volumeMounts": mounts,
            }
        ],
        "volumes": volumes,
    }
    node_affinity = affinity(detector)
    if node_affinity is not None:
        pod_spec["affinity"] = node_affinity
    if spec.placement.zone_spread:
        pod_spec["topologySpreadConstraints"] = [
            {
                "maxSkew": 1,
                "topologyKey": ZONE_LABEL,
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": selector},
            }
        ]
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": names.detector, "labels": names.labels(naming.COMPONENT_DETECTOR)},
        "spec": {
            "selector": {"matchLabels": selector},
            "revisionHistoryLimit": 5,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
            },
            "template": {
                "metadata": {
                    "labels": names.labels(naming.COMPONENT_DETECTOR),
                    "annotations": {
                        naming.CONFIG_HASH_ANNOTATION: config_hash,
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(pods.METRICS_PORT),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": pod_spec,
            },
        },
    }
    if replicas is not None:
        body["spec"] = {"replicas": replicas, **body["spec"]}
    return body

"""The detector, Redis (with a sentinel), PostgreSQL and PgBouncer images, run as the pods the
operator renders for one AnomalyDetector, in one podman pod (loopback only).

Each container is the rendered pod template's container (uid, read-only root, emptyDirs,
ConfigMaps, Secrets, probes: tests/images/pods.py), with only the image swapped for the one
``make images`` built through the spec's own image fields. The stores start with the
rendered configs and start scripts; the detector reaches them by the names in its rendered
env and answers fit and score. Cold start and RSS at ready are recorded in
.images/budgets.json (README, "Container images").
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.images import pods
from tests.images.rendering import render

pytestmark = [pytest.mark.images, pytest.mark.slow]

NAMESPACE = "pynomaly-images"
NAME = "shop"
BUDGETS = pods.REPO / ".images" / "budgets.json"
TRAINING = f"{NAME}-training"
_RANDOM = random.Random(13)
ROWS = [[_RANDOM.gauss(0, 1), _RANDOM.gauss(0, 1)] for _ in range(500)]
NORMAL, OUTLIER = [0.1, -0.2], [8.0, -8.0]


def training_config_map() -> dict[str, Any]:
    """The user's ConfigMap with the declared model's CSV training data."""
    csv = "a,b\n" + "".join(f"{a},{b}\n" for a, b in ROWS)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": TRAINING, "namespace": NAMESPACE},
        "data": {"rows.csv": csv},
    }


def body(images: dict[str, str]) -> dict[str, Any]:
    """One AnomalyDetector with every store managed, one replica each, our images."""
    return {
        "apiVersion": "pynomaly.io/v1alpha1",
        "kind": "AnomalyDetector",
        "metadata": {"name": NAME},
        "spec": {
            "image": images["DETECTOR_IMAGE"],
            "model": {
                "algorithm": "IForest",
                "contamination": 0.05,
                "training": {"configMapRef": {"name": TRAINING, "key": "rows.csv"}},
            },
            "redis": {
                "mode": "sentinel",
                "image": images["REDIS_IMAGE"],
                "sentinel": {"replicas": 1, "sentinels": 1, "quorum": 1},
            },
            "postgres": {
                "mode": "managed",
                "image": images["POSTGRES_IMAGE"],
                "pgbouncer": {"image": images["PGBOUNCER_IMAGE"], "replicas": 1},
            },
        },
    }


def workload(manifests: pods.Manifests, kind: str, name: str) -> dict[str, Any]:
    return manifests.get(kind, name)


def rss_bytes(pid: int) -> int:
    """Resident memory of a container's process tree (the uvicorn master and its workers)."""
    root = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])


def record(**figures: Any) -> None:
    BUDGETS.parent.mkdir(exist_ok=True)
    known = json.loads(BUDGETS.read_text()) if BUDGETS.exists() else {}
    known.update(figures)
    BUDGETS.write_text(json.dumps(known, indent=2, sort_keys=True) + "\n")


def test_detector_with_managed_stores(
    images: dict[str, str], pod_workdir: Path, pod_name: str
) -> None:
    manifests = render(body(images), namespace=NAMESPACE)
    manifests.objects.append(training_config_map())
    detector_workload = workload(manifests, "Deployment", NAME)
    assert (
        detector_workload["spec"]["template"]["spec"]["containers"][0]["image"]
        == images["DETECTOR_IMAGE"]
    )
    with pods.podman_pod(
        pod_name, pod_workdir, namespace=NAMESPACE, hostnames=manifests.hostnames(NAMESPACE)
    ) as pod:
        redis = pod.run(
            manifests,
            workload(manifests, "StatefulSet", f"{NAME}-redis"),
            pod_name=f"{NAME}-redis-0",
        )
        sentinel = pod.run(
            manifests,
            workload(manifests, "StatefulSet", f"{NAME}-redis-sentinel"),
            pod_name=f"{NAME}-redis-sentinel-0",
        )
        postgres = pod.run(
            manifests,
            workload(manifests, "StatefulSet", f"{NAME}-postgres"),
            pod_name=f"{NAME}-postgres-0",
        )
        redis.wait(timeout=60)
        sentinel.wait(timeout=60)
        postgres.wait(timeout=180)
        pgbouncer = pod.run(
            manifests,
            workload(manifests, "Deployment", f"{NAME}-pgbouncer"),
            pod_name=f"{NAME}-pgbouncer-0",
        )
        pgbouncer.wait(timeout=60)

        # First replica: fits the declared model from the training ConfigMap and stores it.
        began = time.monotonic()
        first = pod.run(manifests, detector_workload, pod_name=f"{NAME}-0")
        first.wait("startupProbe", timeout=180)
        workers = int(manifests.config_map(f"{NAME}-config").get("PYNOMALY_WORKERS", 1))
        first.wait(timeout=180, consecutive=4 * workers)
        with_fit = time.monotonic() - began
        port = first.port("http")
        ready = pod.request("GET", port, "/readyz").json()
        assert ready["ready"] is True, ready
        assert ready["declared_model_loaded"] is True, ready
        assert (ready["database"], ready["redis"]) == ("up", "up"), ready

        # Model management needs the API token the operator generated (Secret <name>-api-token,
        # mounted as PYNOMALY_API_TOKEN_FILE); without it the service answers 401.
        token = manifests.secret(f"{NAME}-api-token")["token"].strip()
        assert pod.request("PUT", port, "/v1/models/api-fitted", body={}).status == 401
        fitted = pod.request(
            "PUT",
            port,
            "/v1/models/api-fitted",
            body={"algorithm": "IForest", "instances": ROWS},
            headers={"authorization": f"Bearer {token}"},
        )
        assert fitted.status == 201, fitted.body
        for model in (NAME, "api-fitted"):
            scored = pod.request(
                "POST",
                port,
                f"/v1/models/{model}/detect",
                body={"instances": [NORMAL, OUTLIER]},
            )
            assert scored.status == 200, scored.body
            answer = scored.json()
            assert answer["is_anomaly"] == [False, True], answer
            assert answer["scores"][1] > answer["scores"][0]
        first.stop()

        # Second replica, as after a rollout: the declared model is in Postgres, no fit.
        began = time.monotonic()
        detector = pod.run(manifests, detector_workload, pod_name=f"{NAME}-1")
        detector.wait("startupProbe", timeout=120)
        detector.wait(timeout=120)  # the pod turns Ready (successThreshold 1)
        cold_start = time.monotonic() - began
        detector.wait(timeout=120, consecutive=4 * workers)  # every worker answers ready
        all_workers = time.monotonic() - began
        rss = rss_bytes(detector.main_pid())
        record(
            detector_cold_start_seconds=round(cold_start, 2),
            detector_all_workers_ready_seconds=round(all_workers, 2),
            detector_start_with_declared_fit_seconds=round(with_fit, 2),
            detector_rss_at_ready_mib=round(rss / 2**20, 1),
            detector_workers=int(manifests.config_map(f"{NAME}-config").get("PYNOMALY_WORKERS", 1)),
            machine_load_1m=round(os.getloadavg()[0], 1),
        )
        scored = pod.request(
            "POST", port, f"/v1/models/{NAME}/detect", body={"instances": [OUTLIER]}
        )
        assert scored.status == 200, scored.body
        assert scored.json()["is_anomaly"] == [True]

        # The fitted model went through PgBouncer into Postgres: the application role reads it.
        assert NAME == "shop"
        stored = postgres.exec(
            "sh",
            "-c",
            'PGPASSWORD="$APP_PASSWORD" psql -h 127.0.0.1 -U "$APP_USER" -d "$APP_DB" -tA '
            "-c \"SELECT count(*) FROM pynomaly_models WHERE name = 'shop'\"",
        )
        assert stored.returncode == 0, stored.stderr
        assert int(stored.stdout.strip()) >= 1, stored.stdout
        # The sentinel knows the master by the StatefulSet pod's DNS name.
        master = sentinel.exec(
            "sh",
            "-c",
            'REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli -p 26379 '
            'sentinel get-master-addr-by-name "$MASTER_NAME"',
        )
        assert f"{NAME}-redis-0.{NAME}-redis-headless" in master.stdout, master
        # Liveness of every container, as the kubelet would check it now.
        for container in (redis, sentinel, postgres, pgbouncer, detector):
            assert container.probe(container.spec["livenessProbe"]), container.name


def test_rendered_redis_start_script_as_the_pod_user(
    images: dict[str, str], pod_workdir: Path, pod_name: str
) -> None:
    manifests = render(body(images), namespace=NAMESPACE)
    with pods.podman_pod(
        pod_name, pod_workdir, namespace=NAMESPACE, hostnames=manifests.hostnames(NAMESPACE)
    ) as pod:
        redis = pod.run(
            manifests,
            workload(manifests, "StatefulSet", f"{NAME}-redis"),
            pod_name=f"{NAME}-redis-0",
        )
        redis.wait(timeout=60)

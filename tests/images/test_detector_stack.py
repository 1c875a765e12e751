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


def body(images: dict[str, str]) -> dict[str, Any]:
    """One AnomalyDetector with every store managed, one replica each, our images."""
    return {
        "apiVersion": "pynomaly.io/v1alpha1",
        "kind": "AnomalyDetector",
        "metadata": {"name": NAME},
        "spec": {
            "image": images["DETECTOR_IMAGE"],
            "model": {"algorithm": "IForest", "contamination": 0.05},
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


def template(manifests: pods.Manifests, kind: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = manifests.get(kind, name)["spec"]["template"]
    return found


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
    detector_template = template(manifests, "Deployment", NAME)
    assert detector_template["spec"]["containers"][0]["image"] == images["DETECTOR_IMAGE"]
    with pods.podman_pod(
        pod_name, pod_workdir, namespace=NAMESPACE, hostnames=manifests.hostnames(NAMESPACE)
    ) as pod:
        redis = pod.run(
            manifests,
            template(manifests, "StatefulSet", f"{NAME}-redis"),
            pod_name=f"{NAME}-redis-0",
        )
        sentinel = pod.run(
            manifests,
            template(manifests, "StatefulSet", f"{NAME}-redis-sentinel"),
            pod_name=f"{NAME}-redis-sentinel-0",
        )
        postgres = pod.run(
            manifests,
            template(manifests, "StatefulSet", f"{NAME}-postgres"),
            pod_name=f"{NAME}-postgres-0",
        )
        redis.wait(timeout=60)
        sentinel.wait(timeout=60)
        postgres.wait(timeout=180)
        pgbouncer = pod.run(
            manifests,
            template(manifests, "Deployment", f"{NAME}-pgbouncer"),
            pod_name=f"{NAME}-pgbouncer-0",
        )
        pgbouncer.wait(timeout=60)

        began = time.monotonic()
        detector = pod.run(manifests, detector_template, pod_name=f"{NAME}-0")
        detector.wait("startupProbe", timeout=120)
        detector.wait(timeout=120)
        cold_start = time.monotonic() - began
        rss = rss_bytes(detector.main_pid())
        record(
            detector_cold_start_seconds=round(cold_start, 2),
            detector_rss_at_ready_mib=round(rss / 2**20, 1),
            detector_workers=int(manifests.config_map(f"{NAME}-config").get("PYNOMALY_WORKERS", 1)),
        )

        port = detector.port("http")
        ready = pod.request("GET", port, "/readyz").json()
        assert ready["ready"] is True, ready
        assert ready["database"] == "up", ready
        assert ready["redis"] == "up", ready
        assert ready["store"] != "memory", ready

        rows = [[float(i % 7), float(i % 5)] for i in range(200)]
        fitted = pod.request(
            "PUT", port, f"/v1/models/{NAME}", body={"algorithm": "IForest", "instances": rows}
        )
        assert fitted.status == 201, fitted.body
        scored = pod.request(
            "POST",
            port,
            f"/v1/models/{NAME}/detect",
            body={"instances": [[3.0, 2.0], [500.0, -80.0]]},
        )
        assert scored.status == 200, scored.body
        answer = scored.json()
        assert answer["is_anomaly"] == [False, True], answer
        assert answer["scores"][1] > answer["scores"][0]

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

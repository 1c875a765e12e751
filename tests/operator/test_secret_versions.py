"""Pod templates carry the UIDs of the generated Secrets they read, so a re-created Secret
rolls exactly the workloads that use it (and an unchanged one changes nothing)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pynomaly_operator import naming
from pynomaly_operator.builders import desired as desired_state
from pynomaly_operator.builders import detector as detector_builders
from pynomaly_operator.builders import secret_versions
from pynomaly_operator.builders.detector import store_env
from pynomaly_operator.specs.detector import AnomalyDetector

NAMES = naming.Names(instance="fraud", namespace="payments")
UIDS = {
    NAMES.signing_key_secret: "uid-signing-1",
    NAMES.redis_secret: "uid-redis-1",
    NAMES.postgres_secret: "uid-postgres-1",
}


def desired(redis_mode: str) -> list[dict[str, Any]]:
    detector = AnomalyDetector.from_body(
        {
            "metadata": {"name": "fraud", "namespace": "payments"},
            "spec": {"redis": {"mode": redis_mode}, "postgres": {"mode": "managed"}},
        }
    )
    return [
        *desired_state.store_objects(detector, NAMES),
        *detector_builders.after_stores(detector, NAMES, store_env=store_env.env(detector, NAMES)),
    ]


def stamps(uids: dict[str, str], redis_mode: str = "sentinel") -> dict[tuple[str, str], str]:
    out = {}
    for obj in desired(redis_mode):
        stamped = secret_versions.stamp(obj, uids)
        template = (stamped.get("spec") or {}).get("template") or {}
        value = ((template.get("metadata") or {}).get("annotations") or {}).get(
            naming.SECRETS_HASH_ANNOTATION
        )
        if value is not None:
            out[(obj["kind"], obj["metadata"]["name"])] = value
    return out


@pytest.mark.parametrize("redis_mode", ["sentinel", "cluster", "standalone"])
def test_every_workload_reading_a_generated_secret_is_stamped(redis_mode: str) -> None:
    stamped = stamps(UIDS, redis_mode)
    workloads = {
        (obj["kind"], obj["metadata"]["name"])
        for obj in desired(redis_mode)
        if obj["kind"] in ("Deployment", "StatefulSet")
    }
    assert set(stamped) == workloads  # every Deployment and StatefulSet here reads one
    assert ("Deployment", NAMES.detector) in stamped
    assert ("StatefulSet", NAMES.postgres) in stamped
    assert ("Deployment", NAMES.pgbouncer) in stamped


def test_a_recreated_secret_rolls_only_its_readers() -> None:
    before = stamps(UIDS)
    after_redis = stamps({**UIDS, NAMES.redis_secret: "uid-redis-2"})
    changed = {key for key in before if before[key] != after_redis[key]}
    assert ("Deployment", NAMES.detector) in changed
    assert all(kind == "StatefulSet" or name == NAMES.detector for kind, name in changed), changed
    assert ("StatefulSet", NAMES.postgres) not in changed
    assert ("Deployment", NAMES.pgbouncer) not in changed

    after_signing = stamps({**UIDS, NAMES.signing_key_secret: "uid-signing-2"})
    changed = {key for key in before if before[key] != after_signing[key]}
    assert changed == {("Deployment", NAMES.detector)}

    assert stamps(dict(UIDS)) == before  # same UIDs, same stamps: nothing to apply


def test_unknown_secrets_jobs_and_inputs_are_left_alone() -> None:
    objects = desired("cluster")
    pristine = copy.deepcopy(objects)
    for obj in objects:
        stamped = secret_versions.stamp(obj, UIDS)
        if obj["kind"] not in ("Deployment", "StatefulSet"):
            assert stamped == obj  # Jobs (immutable templates), Services, ... untouched
        unknown = secret_versions.stamp(obj, {"someone-elses-secret": "uid"})
        assert unknown == obj  # only the generated Secrets count
    assert objects == pristine  # builders' output is never mutated


def test_referenced_finds_env_envfrom_and_volumes() -> None:
    pod_spec = {
        "initContainers": [{"env": [{"valueFrom": {"secretKeyRef": {"name": "a", "key": "k"}}}]}],
        "containers": [
            {"envFrom": [{"secretRef": {"name": "b"}}, {"configMapRef": {"name": "cm"}}]}
        ],
        "volumes": [
            {"name": "v", "secret": {"secretName": "c"}},
            {"name": "p", "projected": {"sources": [{"secret": {"name": "d"}}]}},
            {"name": "t", "emptyDir": {}},
        ],
    }
    assert secret_versions.referenced(pod_spec) == {"a", "b", "c", "d"}

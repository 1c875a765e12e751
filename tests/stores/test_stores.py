"""The stores integration point without servers: env names, secrets, conditions, budget.

Everything here is pure: builders in, dicts out. The real servers are exercised by the
other test modules in this directory.
"""

from __future__ import annotations

import json
from typing import Any

import pydantic
import pytest

from pynomaly_detector.settings import Settings
from pynomaly_operator import naming
from pynomaly_operator.builders import desired as desired_state
from pynomaly_operator.builders import redis as redis_builders
from pynomaly_operator.builders.detector import store_env
from pynomaly_operator.specs.detector import AnomalyDetector
from pynomaly_operator.specs.postgres import PostgresSpec
from pynomaly_operator.specs.redis import RedisSpec
from pynomaly_operator.status import budget, conditions

NAMES = naming.Names(instance="a" * naming.MAX_NAME_LENGTH, namespace="payments")
MODES = ["sentinel", "cluster", "standalone", "none"]


def detector(spec: dict[str, Any] | None = None, *, name: str = "fraud") -> AnomalyDetector:
    return AnomalyDetector.from_body(
        {"metadata": {"name": name, "namespace": "payments"}, "spec": spec or {}}
    )


def observed_ready(d: AnomalyDetector, names: naming.Names) -> dict[tuple[str, str], Any]:
    out: dict[tuple[str, str], Any] = {}
    for obj in desired_state.store_objects(d, names):
        kind, name = obj["kind"], obj["metadata"]["name"]
        replicas = obj.get("spec", {}).get("replicas", 1)
        out[(kind, name)] = {"status": {"readyReplicas": replicas, "succeeded": 1}}
    return out


@pytest.mark.parametrize("mode", MODES)
def test_service_env_names_are_detector_settings(mode: str) -> None:
    d = detector({"redis": {"mode": mode}})
    fields = {f"PYNOMALY_{name.upper()}" for name in Settings.model_fields}
    for entry in store_env.env(d, NAMES):
        assert entry["name"] in fields
        if "PASSWORD" in entry["name"]:
            assert "secretKeyRef" in entry["valueFrom"], "passwords only from Secrets"


@pytest.mark.parametrize("mode", MODES)
def test_service_env_parses_as_settings(mode: str) -> None:
    d = detector({"redis": {"mode": mode}})
    plain = {e["name"]: e["value"] for e in store_env.env(d, NAMES) if "value" in e}
    settings = Settings.model_validate(
        {k.removeprefix("PYNOMALY_").lower(): v for k, v in plain.items()}
    )
    assert settings.redis_mode == mode
    assert settings.database_url.startswith("postgresql://pynomaly@")
    assert "pgbouncer" in settings.database_url  # the service reaches Postgres via PgBouncer


@pytest.mark.parametrize("mode", MODES)
def test_no_generated_password_outside_secrets(mode: str) -> None:
    d = detector({"redis": {"mode": mode}})
    secrets = desired_state.store_secrets(d, NAMES, token=lambda: "SENTINEL-PASSWORD-VALUE")
    assert all(s["kind"] == "Secret" for s in secrets)
    rendered = json.dumps(desired_state.store_objects(d, NAMES)) + json.dumps(
        store_env.env(d, NAMES)
    )
    assert "SENTINEL-PASSWORD-VALUE" not in rendered
    assert "requirepass" not in json.dumps(
        [o["data"] for o in desired_state.store_objects(d, NAMES) if o["kind"] == "ConfigMap"]
    ).replace('echo \\"requirepass $REDIS_PASSWORD\\"', "")


@pytest.mark.parametrize("mode", MODES)
def test_children_are_labelled_and_names_fit_dns(mode: str) -> None:
    d = detector({"redis": {"mode": mode}}, name=NAMES.instance)
    for obj in desired_state.store_objects(d, NAMES):
        labels = obj["metadata"]["labels"]
        assert labels[naming.LABEL_INSTANCE] == NAMES.instance
        assert labels[naming.LABEL_MANAGED_BY] == naming.MANAGED_BY
        assert labels[naming.LABEL_PART_OF] == naming.PART_OF
        assert len(obj["metadata"]["name"]) <= 63
        if obj["kind"] == "StatefulSet":
            assert len(obj["spec"]["serviceName"]) <= 63


# The StatefulSet controller labels pods with controller-revision-hash = "<sts>-<10 chars>",
# a label value limited to 63: StatefulSet names must stay within 52 characters.
def test_statefulset_names_leave_room_for_revision_hash() -> None:
    d = detector({}, name=NAMES.instance)
    for obj in desired_state.store_objects(d, NAMES):
        if obj["kind"] == "StatefulSet":
            assert len(obj["metadata"]["name"]) <= 52


def test_secrets_created_only_for_managed_stores() -> None:
    assert [s["metadata"]["name"] for s in desired_state.store_secrets(detector(), NAMES)] == [
        NAMES.redis_secret,
        NAMES.postgres_secret,
    ]
    external = detector(
        {
            "redis": {"mode": "none"},
            "postgres": {
                "mode": "external",
                "external": {"dsnSecretRef": {"name": "d", "key": "k"}},
            },
        }
    )
    assert desired_state.store_secrets(external, NAMES) == []


def test_pvcs_retained_by_default_and_deleted_on_request() -> None:
    sts = [o for o in desired_state.store_objects(detector(), NAMES) if o["kind"] == "StatefulSet"]
    data_sets = [o for o in sts if o["spec"].get("volumeClaimTemplates")]
    assert len(data_sets) == 2  # redis data + postgres; sentinels keep no data
    for obj in data_sets:
        assert obj["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"
    d = detector({"postgres": {"persistence": {"whenDeleted": "Delete"}}})
    pg = next(
        o
        for o in desired_state.store_objects(d, NAMES)
        if o["metadata"]["name"] == NAMES.postgres and o["kind"] == "StatefulSet"
    )
    assert pg["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Delete"


@pytest.mark.parametrize("mode", MODES)
def test_conditions_follow_observed_state(mode: str) -> None:
    d = detector({"redis": {"mode": mode}})
    none = conditions.stores(d, NAMES, {})
    assert [c["type"] for c in none] == ["RedisReady", "DatabaseReady", "PoolerReady"]
    if mode != "none":
        assert none[0]["status"] == "False"
        assert none[0]["reason"] == "NotFound"
    ready = conditions.stores(d, NAMES, observed_ready(d, NAMES))
    assert all(c["status"] == "True" for c in ready), ready


def test_partial_readiness_reports_numbers() -> None:
    d = detector()
    observed = observed_ready(d, NAMES)
    observed[("StatefulSet", NAMES.redis)] = {"status": {"readyReplicas": 1}}
    redis_ready = conditions.stores(d, NAMES, observed)[0]
    assert redis_ready["status"] == "False"
    assert redis_ready["reason"] == "Progressing"
    assert "1/3" in redis_ready["message"]


def test_cluster_waits_for_bootstrap_job() -> None:
    d = detector({"redis": {"mode": "cluster"}})
    observed = observed_ready(d, NAMES)
    observed[("Job", redis_builders.bootstrap_job_name(NAMES))] = {"status": {}}
    assert conditions.stores(d, NAMES, observed)[0]["reason"] == "Bootstrapping"


def test_default_budget_fits() -> None:
    assert budget.budget_problems(detector()) == []
    assert budget.client_connections(detector()) == 20 * 4 * 5


def test_impossible_budget_reports_numbers() -> None:
    d = detector(
        {
            "autoscaling": {"maxReplicas": 100},
            "server": {"workers": 8},
            "postgres": {
                "pool": {"maxSize": 10},
                "pgbouncer": {"replicas": 4, "defaultPoolSize": 100, "reservePoolSize": 10},
                "config": {"max_connections": 200},
            },
        }
    )
    problems = budget.budget_problems(d)
    assert len(problems) == 2
    assert "100 pods x 8 workers x pool 10 = 8000" in problems[0]
    assert "2000 per replica > max_client_conn 1000" in problems[0]
    assert "4 replicas x (default_pool_size 100 + reserve_pool_size 10) = 440" in problems[1]
    assert "max_connections 200 - superuser_reserved 3 = 197" in problems[1]


def test_spec_defaults_are_the_guides() -> None:
    r, p = RedisSpec(), PostgresSpec()
    assert (r.mode, r.sentinel.sentinels, r.sentinel.quorum, r.sentinel.master_name) == (
        "sentinel",
        3,
        2,
        "pynomaly-master",
    )
    assert (r.cluster.nodes, r.cluster.replicas_per_master) == (6, 1)
    assert (r.config.maxmemory, r.config.maxmemory_policy) == ("2gb", "allkeys-lru")
    assert (p.config.max_connections, p.config.shared_buffers, p.config.work_mem) == (
        400,
        "512MB",
        "8MB",
    )
    b = p.pgbouncer
    assert (
        b.replicas,
        b.pool_mode,
        b.max_client_conn,
        b.default_pool_size,
        b.reserve_pool_size,
    ) == (
        2,
        "transaction",
        1000,
        20,
        5,
    )
    assert (b.server_lifetime, b.server_idle_timeout) == (3600, 600)


def test_spec_ranges_reject_bad_values() -> None:
    with pytest.raises(pydantic.ValidationError):
        RedisSpec.model_validate({"mode": "memcached"})
    with pytest.raises(pydantic.ValidationError):
        RedisSpec.model_validate({"config": {"maxmemory": "lots"}})
    with pytest.raises(pydantic.ValidationError):
        PostgresSpec.model_validate({"pgbouncer": {"poolMode": "sometimes"}})


def test_cel_rules_are_in_the_schema() -> None:
    schema = json.dumps(RedisSpec.model_json_schema(by_alias=True))
    assert "self.quorum <= self.sentinels" in schema
    assert "self.nodes % (self.replicasPerMaster + 1) == 0" in schema
    assert "has(self.external)" in json.dumps(PostgresSpec.model_json_schema(by_alias=True))

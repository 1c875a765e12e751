"""The minimal sample on the real node: Ready with real probes, scored through its Service.

Issue #14's scenarios, in the order they run against one AnomalyDetector (module fixture
``stack``): 1 + 4 (Ready under Pod Security ``restricted``; fit and score through the
ClusterIP; the L2 cache and the registry seen from inside the store pods), 2 (the HPA
scales for real), 3 (faults with time limits), and last the CR's deletion. The operator
runs on the host (``pynomaly-operator run``) as in ``make demo``; its children run as real
pods from the project's images.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.controlplane import KubectlError, wait_until

from . import hpa
from .conftest import NODE, ProjectImages, RealCluster
from .stack import (
    NAME,
    SCORING,
    Load,
    Stack,
    detect,
    ensure_fitted,
    fit,
    request_ok,
    running_stack,
    wait_gone,
)

pytestmark = [pytest.mark.realnode, pytest.mark.slow]

MODEL = "payments"


@pytest.fixture(scope="module")
def stack(
    real_cluster: RealCluster,
    project_images: ProjectImages,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """The minimal sample (test overlay) Ready in a ``restricted`` namespace, operator running."""
    workdir = tmp_path_factory.mktemp("operator")
    with running_stack(real_cluster.cp, project_images, workdir) as st:
        yield st


def _ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", [])
    )


# ---- scenarios 1 and 4 ----------------------------------------------------------------------


def test_every_child_runs_for_real_under_pod_security_restricted(stack: Stack) -> None:
    """Every pod the operator rendered is admitted by ``restricted`` and Ready on the node."""
    labels = stack.get("namespace", stack.ns)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    pods = stack.pods()
    by_component: dict[str, int] = {}
    for pod in pods:
        component = pod["metadata"]["labels"]["app.kubernetes.io/component"]
        by_component[component] = by_component.get(component, 0) + 1
        assert pod["spec"]["nodeName"] == NODE, f"{pod['metadata']['name']} not on the real node"
        assert pod["status"]["phase"] == "Running"
        for c in pod["status"]["containerStatuses"]:
            assert c["imageID"], "a real runtime reports the image it ran"
    assert by_component.get("redis") == 3
    assert by_component.get("sentinel", by_component.get("redis-sentinel")) == 3
    assert by_component.get("postgres") == 1
    assert by_component.get("pgbouncer") == 1
    assert by_component.get("detector", 0) >= 1
    not_ready = [p["metadata"]["name"] for p in pods if not _ready(p)]
    assert not not_ready, f"pods not Ready: {not_ready}"
    restarts = {
        p["metadata"]["name"]: sum(c["restartCount"] for c in p["status"]["containerStatuses"])
        for p in pods
    }
    print("\nrestarts per pod before Ready:", restarts)
    # The detector runs as the contract says: uid 10001, read-only root.
    detector = stack.pods("detector")[0]["metadata"]["name"]
    out = stack.exec(detector, "detector", "id -u; touch /x 2>/dev/null && echo rw || echo ro")
    assert out.split() == ["10001", "ro"]


def test_fit_and_score_through_the_service_with_l2_and_registry(stack: Stack) -> None:
    """Fit and score through the ClusterIP; the L2 keys in Redis and the model row in Postgres."""
    fitted = fit(stack, MODEL)
    assert fitted["name"] == MODEL
    first = detect(stack, MODEL, SCORING)
    again = detect(stack, MODEL, SCORING)
    assert len(first["scores"]) == len(SCORING)
    assert first["scores"] == again["scores"]
    assert first["version"] == fitted["version"]

    # L2: the scores were written to the sentinel-elected master (seen from inside the pod).
    master = _redis_master_pod(stack)
    keys = wait_until(
        lambda: int(stack.exec(master, "redis", "redis-cli -p 6379 dbsize").strip() or 0),
        timeout=30,
        what="L2 keys on the Redis master",
        interval=1,
    )
    role = stack.exec(master, "redis", "redis-cli -p 6379 role | head -1").strip()
    assert role == "master"
    print(f"\nL2: {keys} keys on {master}")

    # Registry: the fitted version is a row in Postgres (psql inside the Postgres pod).
    rows = stack.exec(
        "payments-postgres-0",
        "postgres",
        'PGPASSWORD="$APP_PASSWORD" psql -h 127.0.0.1 -U "$APP_USER" -d "$APP_DB" -At '
        "-c 'select name, version, algorithm from pynomaly_models order by version'",
    )
    assert f"{MODEL}|{fitted['version']}|IForest" in rows.splitlines(), rows


def _redis_master_pod(stack: Stack) -> str:
    """The pod sentinel 0 names as master (their answer is the pod's stable DNS name)."""
    return _sentinel_master(stack, 0)


def _sentinel_master(stack: Stack, index: int) -> str:
    answer = stack.exec(
        f"{NAME}-redis-sentinel-{index}",
        "sentinel",
        "redis-cli -p 26379 sentinel get-master-addr-by-name pynomaly-master | head -1",
    ).strip()
    return answer.split(".", 1)[0]


def _agreed_master(stack: Stack) -> str | None:
    """The master once the topology has settled: every sentinel names the same pod, and it is
    the only data pod that answers ROLE with "master". Seen while a failover completes: pod 0,
    restarted before the sentinels had promoted a replica, starts as master (they still named
    it) and is a second master for ~6 s until they demote it; one sentinel alone can also
    lag the others by a few seconds."""
    try:
        named = {_sentinel_master(stack, i) for i in range(3)}
    except KubectlError:  # a sentinel pod may be restarting; poll again
        return None
    if len(named) != 1:
        return None
    master = named.pop()
    masters = [
        pod["metadata"]["name"]
        for pod in stack.pods("redis")
        if _role(stack, pod["metadata"]["name"]) == "master"
    ]
    return master if masters == [master] else None


def _role(stack: Stack, pod: str) -> str:
    out = stack.kubectl(
        "exec", pod, "-c", "redis", "--", "redis-cli", "-p", "6379", "role", check=False
    )
    return (out.split() or [""])[0]


# ---- scenario 2: the HPA scales for real ----------------------------------------------------

# Shortened windows for the test CR (the guide's defaults, 60 s/300 s, run in
# test_hpa_defaults.py, `make test-hpa-defaults`): up 50 % per 15 s after a 15 s window, down
# 50 % per 30 s after a 45 s window. The CPU target is 30 % (the guide's 70 % of the overlay's
# 250m): on this shared 2-core machine, with other work running, a detector pod gets about
# 80-150m of CPU however hard it is loaded.
TEST_BEHAVIOR = {
    "scaleUp": {"stabilizationWindowSeconds": 15, "percent": 50, "periodSeconds": 15},
    "scaleDown": {"stabilizationWindowSeconds": 45, "percent": 50, "periodSeconds": 30},
}
TEST_AUTOSCALING = {"targetCpuUtilization": 30, "behavior": TEST_BEHAVIOR}


def test_hpa_scales_the_detector_up_under_load_and_back_down(stack: Stack) -> None:
    """Load through the Service raises CPU; the HPA follows the rendered behavior both ways."""
    stack.kubectl(
        "patch", "anomalydetector", NAME, "--type=merge", "-p",
        yaml.safe_dump({"spec": {"autoscaling": TEST_AUTOSCALING}}),
    )  # fmt: skip
    wait_until(
        lambda: (stack.get("hpa", NAME)["spec"].get("behavior", {}).get("scaleUp", {}).get(
            "stabilizationWindowSeconds") == 15),
        timeout=60, what="the operator to render the test behavior", interval=1,
    )  # fmt: skip
    ensure_fitted(stack, MODEL)
    run = hpa.up_and_down(
        stack, MODEL, threads=6, rest_timeout=240, up_timeout=280, down_timeout=300
    )
    spec = stack.get("hpa", NAME)["spec"]
    text = hpa.report(
        run,
        title="HPA on the real node: replica timeline, shortened windows",
        intro=f"""
`make test-realnode`
(`tests/realnode/test_stack.py::test_hpa_scales_the_detector_up_under_load_and_back_down`):
the minimal sample with the test overlay (detector requests 250m CPU, 2 workers; HPA
{spec["minReplicas"]}-{spec["maxReplicas"]} replicas), the test CR shortening the guide's
windows (60 s up / 300 s down) and setting the CPU target to 30 % because a pod gets little
CPU on this shared machine. Load from the host to the Service's ClusterIP (6 threads,
64 fresh rows per request) until the Deployment is at maxReplicas.""",
        hpa_spec=spec,
    )
    print("\n" + text)
    record = os.environ.get("PYNOMALY_HPA_RECORD")
    if record:
        Path(record).write_text(text)  # a failed run's timeline is a result too
    assert run.error is None, run.error
    found, _ = run.violations()
    assert not found, found
    # The CPU came from scoring, not from failing requests.
    assert run.load is not None
    assert run.load.ok > 0, run.load.summary()
    assert not run.load.failed, run.load.summary()


# ---- scenario 3: faults with time limits ----------------------------------------------------


def test_redis_master_deleted_under_load_fails_over_without_failed_requests(stack: Stack) -> None:
    """The master's pod deleted: scoring never fails; L2 writes resume within 30 s of a master.

    Two outcomes are both correct. Usually the sentinels mark the master down after
    ``down-after-milliseconds`` (5 s) and elect a replica. When the StatefulSet's new pod 0
    is up sooner, its start script asks the sentinels, who still name it, so it starts as the
    master again and no failover is needed (seen once in a standalone run: "no new master
    within 60 s"). The test waits for either: another master, or the same name on a new pod,
    named by all three sentinels and confirmed by the pod's own ROLE.
    """
    old = _redis_master_pod(stack)
    old_uid = stack.get("pod", old)["metadata"]["uid"]
    ensure_fitted(stack, MODEL)
    load = Load(stack, MODEL, threads=2, max_seconds=150).start()
    try:
        time.sleep(3)  # load established before the fault
        t = time.monotonic()
        stack.kubectl("delete", "pod", old, "--wait=false")

        def master_after_the_fault() -> str | None:
            master = _agreed_master(stack)
            if master is None:
                return None
            if master != old:
                return master  # failed over
            return master if _pod_ready_with_new_uid(stack, old, old_uid) else None

        new = wait_until(
            master_after_the_fault, timeout=90, interval=1,
            what="a master after the fault (a replica elected, or pod 0 back as master)",
        )  # fmt: skip
        outcome = "failed over to" if new != old else "no failover needed: back as master"
        # Writes are counted as SET calls on the new master: its key count is no measure, since
        # at maxmemory (allkeys-lru) every new key evicts an old one (CI 2026-11-30 saw the count
        # fall, 318,164 -> 316,872, while the detectors wrote).
        before = wait_until(
            lambda: (n,) if (n := _set_calls(stack, new)) >= 0 else None,
            timeout=15, what=f"INFO commandstats from {new}",
        )[0]  # fmt: skip
        try:
            wait_until(
                lambda: _set_calls(stack, new) > before, timeout=30, what=f"L2 writes on {new}"
            )
        except AssertionError as exc:
            # Seen once in ~7 runs (2026-11-30 CI): the new master elected, no L2 write on it
            # within 30 s. What the detectors said about Redis is what the next look needs.
            raise AssertionError(f"{exc}\n{_redis_diagnostics(stack, new, before)}") from None
        l2_back = time.monotonic() - t
    finally:
        result = load.stop()
    print(f"\nmaster {old} deleted: {outcome} {new}, L2 back after {l2_back:.1f}s")
    print(f"scoring during the failover: {result.summary()}")
    assert not result.failed, result.failed[:5]
    assert result.ok > 0
    assert l2_back < 30 + 90  # a master (election, or pod 0 back) then writes within 30 s


def _pod_ready_with_new_uid(stack: Stack, name: str, old_uid: str) -> bool:
    """Whether pod ``name`` exists again as a new pod (another UID) and is Ready."""
    found = stack.kubectl("get", "pod", name, "--ignore-not-found", "-o", "json", check=False)
    if not found.strip():
        return False
    pod = json.loads(found)
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )
    return bool(pod["metadata"]["uid"] != old_uid and ready)


def _redis_diagnostics(stack: Stack, master: str, before: int) -> str:
    """The new master's writes and keys, every role, and each detector pod's Redis view."""
    lines = [
        f"SET calls on {master}: {before} -> {_set_calls(stack, master)}",
        f"dbsize on {master}: {_dbsize(stack, master)}",
    ]
    for pod in stack.pods("redis"):
        name = pod["metadata"]["name"]
        role = stack.kubectl(
            "exec", name, "-c", "redis", "--", "redis-cli", "-p", "6379", "role", check=False
        )
        lines.append(f"role of {name}: {' '.join(role.split()[:3])}")
    for i in range(3):
        try:
            lines.append(f"sentinel {i} names {_sentinel_master(stack, i)}")
        except KubectlError as exc:
            lines.append(f"sentinel {i}: {exc}")
    for pod in stack.pods("detector"):
        name = pod["metadata"]["name"]
        log = stack.kubectl("logs", name, "-c", "detector", "--tail=-1", check=False)
        redis = [
            line
            for line in log.splitlines()
            if "redis" in line.lower() and "/v1/models/" not in line
        ][-8:]
        lines.append(f"{name}, last Redis log lines:")
        lines.extend(f"  {line[:300]}" for line in redis or ["(none)"])
        metrics = stack.kubectl(
            "exec", name, "-c", "detector", "--", "python", "-c",
            "import urllib.request as u; print(u.urlopen('http://127.0.0.1:9090/metrics')"
            ".read().decode())",
            check=False,
        )  # fmt: skip
        l2 = [m for m in metrics.splitlines() if 'level="l2"' in m or "l2_circuit" in m]
        lines.extend(f"  {m}" for m in l2 if not m.startswith("#"))
    return "\n".join(lines)


def _set_calls(stack: Stack, pod: str) -> int:
    """How many SET commands the Redis in ``pod`` has run (INFO commandstats), or -1."""
    out = stack.kubectl(
        "exec", pod, "-c", "redis", "--", "redis-cli", "-p", "6379", "info", "commandstats",
        check=False,
    )  # fmt: skip
    for line in out.splitlines():
        if line.startswith("cmdstat_set:"):
            fields = dict(kv.split("=", 1) for kv in line.split(":", 1)[1].strip().split(","))
            return int(fields["calls"])
    return 0 if "# Commandstats" in out else -1


def _dbsize(stack: Stack, pod: str) -> int:
    out = stack.kubectl(
        "exec", pod, "-c", "redis", "--", "redis-cli", "-p", "6379", "dbsize", check=False
    )
    return int(out.strip()) if out.strip().isdigit() else -1


def test_postgres_deleted_loaded_models_keep_scoring_and_fits_resume(stack: Stack) -> None:
    """Postgres pod deleted: scoring of loaded models never fails; a fit succeeds < 60 s."""
    ensure_fitted(stack, MODEL)
    load = Load(stack, MODEL, threads=2, max_seconds=150).start()
    try:
        time.sleep(3)
        t = time.monotonic()
        stack.kubectl("delete", "pod", f"{NAME}-postgres-0", "--wait=false")

        def fitted() -> bool:
            try:
                fit(stack, "after-postgres", timeout=30)
            except (AssertionError, OSError):
                return False
            return True

        time.sleep(2)
        wait_until(fitted, timeout=90, what="a fit after the Postgres pod's deletion", interval=2)
        resumed = time.monotonic() - t
    finally:
        result = load.stop()
    print(f"\nPostgres pod deleted: fits resumed after {resumed:.1f}s; scoring {result.summary()}")
    assert not result.failed, result.failed[:5]
    assert result.ok > 0
    assert resumed < 60


def test_rollout_restart_under_load_fails_no_request(stack: Stack) -> None:
    """``kubectl rollout restart`` of the detector under load: 0 failed requests (drain)."""
    ensure_fitted(stack, MODEL)
    load = Load(stack, MODEL, threads=2, max_seconds=400).start()
    try:
        time.sleep(3)
        t = time.monotonic()
        stack.kubectl("rollout", "restart", f"deployment/{NAME}")
        stack.kubectl("rollout", "status", f"deployment/{NAME}", "--timeout=380s", timeout=400)
        took = time.monotonic() - t
        time.sleep(5)  # requests in flight to the old pods finish inside the drain
    finally:
        result = load.stop()
    print(f"\nrollout restart took {took:.0f}s; {result.summary()}")
    assert not result.failed, result.failed[:5]
    assert result.ok > 0


def test_zz_deleting_the_detector_removes_every_child_within_60s(stack: Stack) -> None:
    """The AnomalyDetector deleted: every child object and every pod gone in < 60 s."""
    assert request_ok(f"{stack.url}/readyz")
    t = time.monotonic()
    stack.kubectl("delete", "anomalydetector", NAME, "--wait=false")
    selector = f"app.kubernetes.io/instance={NAME}"
    for kind in ("statefulsets", "deployments", "services", "configmaps", "secrets", "pods"):
        wait_gone(stack, kind, selector, timeout=max(1.0, 60 - (time.monotonic() - t)))
    took = time.monotonic() - t
    print(f"\nevery child and pod gone {took:.1f}s after the delete")
    assert took < 60
    assert not stack.kubectl("get", "anomalydetector", "--ignore-not-found").strip()

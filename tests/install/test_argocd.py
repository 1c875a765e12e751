"""Argo CD integration: the health check (run with the real Lua interpreter), its argocd-cm
snippet, and the example Applications.

Health fixtures are the operator's own status output where it exists (see
``test_health_of_operator_status``); the cases here are the ones Argo CD meets before or around
the operator's status: no status yet, a spec the operator has not observed, a paused resource.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
import yaml

from tests.install.conftest import MANIFESTS, ROOT, documents
from tests.install.lua import run_health

HEALTH = MANIFESTS / "argocd" / "health.lua"
CM_KEY = "resource.customizations.health.pynomaly.io_AnomalyDetector"


def _cond(type_: str, status: str, reason: str, message: str = "") -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason, "message": message}


def _detector(
    *, generation: int = 2, status: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "pynomaly.io/v1alpha1",
        "kind": "AnomalyDetector",
        "metadata": {"name": "fraud", "namespace": "payments", "generation": generation},
        "spec": {"model": {"algorithm": "IForest"}},
    }
    if status is not None:
        obj["status"] = status
    for key, value in extra.items():
        if key == "annotations":
            obj["metadata"]["annotations"] = value
        else:
            obj["spec"][key] = value
    return obj


READY = {
    "observedGeneration": 2,
    "phase": "Ready",
    "conditions": [
        _cond("Ready", "True", "Ready", "3/3 detector pods ready"),
        _cond("Progressing", "False", "Ready"),
        _cond("Degraded", "False", "Ready"),
    ],
}


def test_no_status_yet_is_progressing() -> None:
    hs = run_health(HEALTH, _detector())
    assert hs["status"] == "Progressing"
    assert "operator" in hs["message"]


def test_ready_is_healthy_with_the_ready_message() -> None:
    hs = run_health(HEALTH, _detector(status=READY))
    assert hs == {"status": "Healthy", "message": "Ready: 3/3 detector pods ready"}


@pytest.mark.parametrize("observed", [1, None], ids=["behind", "missing"])
def test_unobserved_generation_is_progressing_even_when_ready(observed: int | None) -> None:
    status = {**READY, "observedGeneration": observed}
    hs = run_health(HEALTH, _detector(generation=2, status=status))
    assert hs["status"] == "Progressing"
    assert "generation 2" in hs["message"]


def test_degraded_condition_wins_and_carries_its_message() -> None:
    status = {
        "observedGeneration": 2,
        "phase": "Degraded",
        "conditions": [
            _cond("Ready", "False", "Degraded", "see Degraded"),
            _cond("Degraded", "True", "ConnectionBudgetExceeded", "20 pods x 4 workers x 5 > 380"),
        ],
    }
    hs = run_health(HEALTH, _detector(status=status))
    assert hs == {
        "status": "Degraded",
        "message": "ConnectionBudgetExceeded: 20 pods x 4 workers x 5 > 380",
    }


def test_failed_phase_is_degraded() -> None:
    status = {
        "observedGeneration": 2,
        "phase": "Failed",
        "conditions": [_cond("Ready", "False", "InvalidSpec", "unknown parameter 'n_trees'")],
    }
    hs = run_health(HEALTH, _detector(status=status))
    assert hs["status"] == "Degraded"
    assert "n_trees" in hs["message"]


def test_rolling_out_is_progressing() -> None:
    status = {
        "observedGeneration": 2,
        "phase": "Progressing",
        "conditions": [
            _cond("Ready", "False", "Progressing", "1/3 detector pods ready"),
            _cond("Progressing", "True", "RollingOut", "1/3 detector pods ready"),
        ],
    }
    hs = run_health(HEALTH, _detector(status=status))
    assert hs == {"status": "Progressing", "message": "RollingOut: 1/3 detector pods ready"}


def test_paused_is_suspended_by_spec_or_annotation() -> None:
    assert run_health(HEALTH, _detector(status=READY, paused=True))["status"] == "Suspended"
    paused = _detector(status=READY, annotations={"pynomaly.io/paused": "true"})
    assert run_health(HEALTH, paused)["status"] == "Suspended"
    assert run_health(HEALTH, _detector(status=READY, paused=False))["status"] == "Healthy"


def test_messages_with_quotes_and_newlines_survive() -> None:
    status = {
        "observedGeneration": 2,
        "phase": "Degraded",
        "conditions": [_cond("Degraded", "True", "ImagePull", 'image "x"\nnot found \\ é')],
    }
    hs = run_health(HEALTH, _detector(status=status))
    assert hs["message"] == 'ImagePull: image "x"\nnot found \\ é'


def test_argocd_cm_snippet_is_generated_from_health_lua() -> None:
    snippet = yaml.safe_load((MANIFESTS / "argocd" / "argocd-cm-health.yaml").read_text())
    assert snippet["kind"] == "ConfigMap"
    assert snippet["metadata"]["name"] == "argocd-cm"
    assert snippet["data"][CM_KEY] == HEALTH.read_text()
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "argocd-health-cm.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr


def test_applications_point_at_paths_in_this_repository() -> None:
    apps = [
        doc
        for path in sorted((MANIFESTS / "argocd").glob("application-*.yaml"))
        for doc in documents(path)
    ]
    assert len(apps) == 2
    for app in apps:
        assert app["kind"] == "Application"
        source = app["spec"]["source"]
        path = ROOT / source["path"]
        assert path.is_dir(), source["path"]
        include = source.get("directory", {}).get("include")
        if include:
            assert (path / include).is_file(), include
    paths = {app["spec"]["source"]["path"] for app in apps}
    assert "manifests" in paths
    assert any(p.startswith("manifests/samples") for p in paths)


# ---- fixtures from the operator's own status computation -----------------------------------

NOW = "2026-01-01T00:00:00Z"


def _deployment(*, replicas: int, ready: int, deadline: bool = False) -> dict[str, Any]:
    conditions = []
    if deadline:
        conditions.append(
            {
                "type": "Progressing",
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": 'ReplicaSet "fraud-5d8" has timed out progressing.',
            }
        )
    return {
        "metadata": {"generation": 1},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "conditions": conditions,
        },
    }


def _just_applied(deployment: dict[str, Any]) -> dict[str, Any]:
    from pynomaly_operator.status import conditions

    ident = ("Deployment", "fraud")
    shown: dict[str, Any] = conditions.awaiting({ident: deployment}, {ident})[ident]
    return shown


def _rolling(deployment: dict[str, Any]) -> dict[str, Any]:
    """Observed by its controller, one new pod of three up so far."""
    return {
        **deployment,
        "metadata": {"generation": 2},
        "status": {**deployment["status"], "observedGeneration": 2, "updatedReplicas": 1},
    }


def _store(type_: str, ok: bool, reason: str, message: str) -> dict[str, Any]:
    return {
        "type": type_,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
    }


STORES_READY = [
    _store("RedisReady", True, "Ready", "3/3 ready"),
    _store("DatabaseReady", True, "Ready", "1/1 ready"),
    _store("PoolerReady", True, "Ready", "2/2 ready"),
]

# name -> (spec, observed inputs, Argo CD status expected, text the message must contain)
OBSERVED: dict[str, tuple[dict[str, Any], dict[str, Any], str, str]] = {
    "just-created": ({}, {"deployment": None, "store_conditions": []}, "Progressing", ""),
    "rolling-out": (
        {},
        {"deployment": _deployment(replicas=3, ready=1), "store_conditions": STORES_READY},
        "Progressing",
        "1/3 ready",
    ),
    "redis-starting": (
        {},
        {
            "deployment": _deployment(replicas=3, ready=3),
            "store_conditions": [
                _store("RedisReady", False, "Progressing", "1/3 ready"),
                *STORES_READY[1:],
            ],
        },
        "Progressing",
        "RedisReady",
    ),
    "ready": (
        {},
        {"deployment": _deployment(replicas=3, ready=3), "store_conditions": STORES_READY},
        "Healthy",
        "serving at http://fraud.payments.svc:8000",
    ),
    # The reconcile that applies a spec change sees the old template's pods all ready: the
    # status it writes for the new generation must still read Progressing (not Healthy).
    "spec-change-just-applied": (
        {},
        {
            "deployment": _just_applied(_deployment(replicas=3, ready=3)),
            "store_conditions": STORES_READY,
        },
        "Progressing",
        "not observed yet",
    ),
    "spec-change-observed-rolling": (
        {},
        {
            "deployment": _rolling(_deployment(replicas=3, ready=3)),
            "store_conditions": STORES_READY,
        },
        "Progressing",
        "1 updated",
    ),
    "budget-exceeded": (
        {},
        {
            "deployment": _deployment(replicas=3, ready=3),
            "store_conditions": STORES_READY,
            "problems": [
                {
                    "reason": "ConnectionBudgetExceeded",
                    "message": "20 pods x 4 workers x 5 connections = 400 > 380",
                }
            ],
        },
        "Degraded",
        "ConnectionBudgetExceeded: 20 pods x 4 workers",
    ),
    "deadline-exceeded": (
        {},
        {
            "deployment": _deployment(replicas=3, ready=0, deadline=True),
            "store_conditions": STORES_READY,
        },
        "Degraded",
        "timed out progressing",
    ),
    "paused": (
        {"paused": True},
        {"deployment": _deployment(replicas=3, ready=3), "store_conditions": STORES_READY},
        "Suspended",
        "paused",
    ),
}


def _operator_view(
    spec: dict[str, Any], observed: dict[str, Any], *, generation: int = 1
) -> dict[str, Any]:
    """The resource as Argo CD would see it after the operator wrote status (JSON round trip)."""
    from pynomaly_operator import status
    from pynomaly_operator.specs.detector import AnomalyDetector

    body = {
        "apiVersion": "pynomaly.io/v1alpha1",
        "kind": "AnomalyDetector",
        "metadata": {"name": "fraud", "namespace": "payments", "generation": generation},
        "spec": spec,
    }
    detector = AnomalyDetector.from_body(body)
    computed = status.compute(
        detector,
        deployment=observed["deployment"],
        hpa=None,
        store_conditions=observed["store_conditions"],
        problems=observed.get("problems", []),
        previous=None,
        now=NOW,
    )
    return json.loads(json.dumps({**body, "status": computed}))


@pytest.mark.parametrize("case", sorted(OBSERVED))
def test_health_of_operator_status(case: str) -> None:
    spec, observed, expected, text = OBSERVED[case]
    obj = _operator_view(spec, observed)
    hs = run_health(HEALTH, obj)
    assert hs["status"] == expected, (obj["status"], hs)
    assert text in hs["message"], hs


def test_health_of_invalid_spec_status() -> None:
    from pynomaly_operator import status

    body = {"metadata": {"name": "fraud", "namespace": "payments", "generation": 4}, "spec": {}}
    obj = {**body, "status": status.invalid(body, "spec.model: bad", previous=None, now=NOW)}
    hs = run_health(HEALTH, json.loads(json.dumps(obj)))
    assert hs == {"status": "Degraded", "message": "InvalidSpec: spec.model: bad"}


def test_health_when_the_operator_lags_a_new_generation() -> None:
    spec, observed, _, _ = OBSERVED["ready"]
    obj = _operator_view(spec, observed, generation=1)
    obj["metadata"]["generation"] = 2  # the user applied a change the operator has not seen
    assert run_health(HEALTH, obj)["status"] == "Progressing"


def test_a_ready_condition_of_an_older_generation_is_progressing() -> None:
    """status.observedGeneration caught up but Ready is still stamped for the previous
    generation (written by an older operator, or mid-update): not Healthy."""
    stale_ready = {**READY["conditions"][0], "observedGeneration": 1}
    status = {**READY, "conditions": [stale_ready, *READY["conditions"][1:]]}
    hs = run_health(HEALTH, _detector(generation=2, status=status))
    assert hs["status"] == "Progressing"
    assert "generation 2" in hs["message"]

"""The spec-hash + drift check that decides whether a child is patched."""

from __future__ import annotations

import copy

from pynomaly_operator import naming
from pynomaly_operator.reconciling import applying, comparing, observing

OWNER = {"metadata": {"name": "fraud", "namespace": "p", "uid": "u-1"}}
DESIRED = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "fraud-config", "labels": {"a": "b"}},
    "data": {"K": "v", "EMPTY": ""},
}


def live_of(prepared: dict) -> dict:  # what the API server returns: defaults added, "" dropped
    live = copy.deepcopy(prepared)
    live["metadata"]["resourceVersion"] = "12"
    live["metadata"]["uid"] = "c-1"
    del live["data"]["EMPTY"]
    return live


def test_prepare_adds_owner_namespace_and_hash_without_mutating() -> None:
    before = copy.deepcopy(DESIRED)
    prepared = applying.prepare(DESIRED, OWNER)
    assert before == DESIRED
    assert prepared["metadata"]["namespace"] == "p"
    assert prepared["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert prepared["metadata"]["ownerReferences"][0]["controller"] is True
    assert naming.SPEC_HASH_ANNOTATION in prepared["metadata"]["annotations"]
    assert applying.prepare(DESIRED, OWNER) == prepared  # stable hash


def test_up_to_date_ignores_server_defaults() -> None:
    prepared = applying.prepare(DESIRED, OWNER)
    assert comparing.up_to_date(live_of(prepared), prepared)


def test_hand_edit_is_drift() -> None:
    prepared = applying.prepare(DESIRED, OWNER)
    live = live_of(prepared)
    live["data"]["K"] = "edited"
    assert not comparing.up_to_date(live, prepared)


def test_changed_desire_is_a_new_hash() -> None:
    prepared = applying.prepare(DESIRED, OWNER)
    changed = applying.prepare({**DESIRED, "data": {"K": "w"}}, OWNER)
    assert not comparing.up_to_date(live_of(prepared), changed)
    assert not comparing.up_to_date(None, prepared)


def test_contains_rules() -> None:
    assert comparing.contains({"a": 1, "b": 2}, {"a": 1})
    assert not comparing.contains({"a": [1, 2]}, {"a": [1]})
    assert comparing.contains({"x": 1.0}, {"x": 1})
    assert not comparing.contains({"x": 1}, {"x": True})
    assert comparing.contains({}, {"automount": False, "list": []})
    assert not comparing.contains({}, {"flag": True})


def test_applies_reads_the_replicas_owners_that_trimming_keeps() -> None:
    """The hand-over to the HPA needs to know whether the operator's apply owns replicas;
    the index keeps exactly that much of managedFields (reduced to spec.replicas)."""
    live = {
        "kind": "Deployment",
        "metadata": {
            "name": "fraud",
            "managedFields": [
                {
                    "manager": naming.FIELD_MANAGER,
                    "operation": "Apply",
                    "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {}}},
                },
                {
                    "manager": "kube-controller-manager",
                    "operation": "Update",
                    "fieldsV1": {"f:status": {"f:replicas": {}}},
                },
            ],
        },
        "spec": {"replicas": 3},
    }
    trimmed = observing.trim(live)
    assert trimmed["metadata"]["managedFields"] == [
        {
            "manager": naming.FIELD_MANAGER,
            "operation": "Apply",
            "fieldsV1": {"f:spec": {"f:replicas": {}}},
        }
    ]
    assert comparing.applies(trimmed, naming.FIELD_MANAGER, ("spec", "replicas"))
    assert not comparing.applies(trimmed, naming.HANDOVER_FIELD_MANAGER, ("spec", "replicas"))
    assert not comparing.applies(trimmed, naming.FIELD_MANAGER, ("spec", "paused"))
    assert not comparing.applies(None, naming.FIELD_MANAGER, ("spec", "replicas"))

    # Once the HPA scaled (an Update), the operator no longer owns it: nothing to hand over.
    scaled = copy.deepcopy(live)
    scaled["metadata"]["managedFields"][0]["fieldsV1"] = {"f:spec": {"f:template": {}}}
    scaled["metadata"]["managedFields"][1]["fieldsV1"] = {"f:spec": {"f:replicas": {}}}
    assert not comparing.applies(observing.trim(scaled), naming.FIELD_MANAGER, ("spec", "replicas"))
    assert "managedFields" not in observing.trim({"metadata": {"managedFields": []}})["metadata"]

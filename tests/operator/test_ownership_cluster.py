"""What the operator may delete and which specs it refuses, against the real API server."""

from __future__ import annotations

from typing import Any

import pytest

from pynomaly_operator import naming
from tests.operator.test_operator_cluster import BASE_SPEC, Kube, Operator, ready, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def test_a_labelled_object_without_owner_reference_is_never_deleted(
    kube: Kube, operator: Operator
) -> None:
    """Labels are anyone's to set: only objects the resource controls are pruned."""
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "fraud-notes",
                "namespace": kube.namespace,
                "labels": {
                    naming.LABEL_MANAGED_BY: naming.MANAGED_BY,
                    naming.LABEL_INSTANCE: "fraud",
                },
            },
            "data": {"owner": "a person"},
        }
    )
    kube.apply(kube.detector("fraud"))
    ready(kube, "fraud")
    # One more full reconcile after Ready (the resync), then the object is still there.
    kube.apply(kube.detector("fraud", {**BASE_SPEC, "server": {"workers": 2}}))
    ready(kube, "fraud")
    assert kube.get("configmap", "fraud-notes") is not None
    assert not any("fraud-notes" in line for line in operator.writes() if " DELETE " in line)


def test_statement_pool_mode_is_refused(kube: Kube) -> None:
    spec: dict[str, Any] = {
        **BASE_SPEC,
        "postgres": {"mode": "managed", "pgbouncer": {"poolMode": "statement"}},
    }
    result = kube.apply(kube.detector("pooled", spec), check=False)
    assert result.returncode != 0
    assert "spec.postgres.pgbouncer.poolMode" in result.stderr, result.stderr


def test_signing_key_outlives_the_resource_while_its_data_does(
    kube: Kube, operator: Operator
) -> None:
    """External database (data outlives the resource): delete + re-apply keeps the same key,
    so every model stored before is still accepted."""
    kube.apply(kube.detector("fraud"))
    ready(kube, "fraud")
    key = kube.get("secret", "fraud-signing-key")
    assert key is not None
    assert not key["metadata"].get("ownerReferences")
    kube.run("delete", "anomalydetector", "fraud", "--wait=true")
    wait_for(
        "garbage collection", lambda: kube.get("deployment", "fraud") is None or None, timeout=60
    )
    kube.apply(kube.detector("fraud"))
    ready(kube, "fraud")
    again = kube.get("secret", "fraud-signing-key")
    assert again is not None
    assert again["data"] == key["data"]


def test_signing_key_goes_with_data_deleted_with_the_resource(
    kube: Kube, operator: Operator
) -> None:
    spec = {
        **BASE_SPEC,
        "postgres": {"mode": "managed", "persistence": {"whenDeleted": "Delete"}},
    }
    kube.apply(kube.detector("fraud", spec))
    wait_for("signing key", lambda: kube.get("secret", "fraud-signing-key"), timeout=60)
    kube.run("delete", "anomalydetector", "fraud", "--wait=true")
    wait_for(
        "signing key garbage-collected",
        lambda: kube.get("secret", "fraud-signing-key") is None or None,
        timeout=60,
    )

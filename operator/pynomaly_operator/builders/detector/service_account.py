"""The detector pods' ServiceAccount: they never talk to the API server, so no token."""

from __future__ import annotations

from typing import Any

from pynomaly_operator import naming
from pynomaly_operator.specs import detector as specs


def service_account(detector: specs.AnomalyDetector, names: naming.Names) -> dict[str, Any]:
    """ServiceAccount with ``automountServiceAccountToken: false``."""
    del detector  # same signature as every builder; nothing in the spec shapes it
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": names.detector, "labels": names.labels(naming.COMPONENT_DETECTOR)},
        "automountServiceAccountToken": False,
    }

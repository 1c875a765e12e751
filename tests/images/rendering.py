"""The objects the operator applies for one AnomalyDetector, rendered by its own builders.

``builders.desired.desired`` is the one assembly the reconcile applies (and
scripts/render-samples.py renders); this calls it with real random Secret values.

The image tests run what this returns, so a change in a builder (a mount, an env var, a
probe, a user) reaches the image tests without anyone re-describing a container here.
Generated Secrets get real random values, as in the reconcile.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pynomaly_operator import naming
from pynomaly_operator.builders import desired
from pynomaly_operator.specs.detector import AnomalyDetector
from tests.images.pods import Manifests


def render(body: Mapping[str, Any], *, namespace: str) -> Manifests:
    """Every child of ``body`` (Secrets first), with the namespace filled in."""
    body = {**body, "metadata": {**body["metadata"], "namespace": namespace}}
    detector = AnomalyDetector.from_body(body)
    names = naming.names_for(body)
    objects = _children(detector, names)
    return Manifests(
        [
            {**obj, "metadata": {**obj.get("metadata", {}), "namespace": namespace}}
            for obj in objects
        ]
    )


def _children(detector: AnomalyDetector, names: naming.Names) -> list[dict[str, Any]]:
    wanted = desired.desired(detector, names, {})
    return [*wanted.secrets, *wanted.objects]

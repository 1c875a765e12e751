"""The stores engineer's integration point (``builders.stores``), called through one adapter.

Kept behind this module so the reconcile reads the same whatever the stores support is:
objects to apply, generated Secrets, env for the detector container, store conditions and
connection-budget problems.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from pynomaly_operator import naming
from pynomaly_operator.specs import detector as specs


def _module() -> ModuleType | None:
    try:
        return importlib.import_module("pynomaly_operator.builders.stores")
    except ModuleNotFoundError:
        return None


_stores = _module()


def objects(detector: specs.AnomalyDetector, names: naming.Names) -> list[dict[str, Any]]:
    return [] if _stores is None else list(_stores.objects(detector, names))


def secrets(detector: specs.AnomalyDetector, names: naming.Names) -> list[dict[str, Any]]:
    return [] if _stores is None else list(_stores.secrets(detector, names))


def service_env(detector: specs.AnomalyDetector, names: naming.Names) -> list[dict[str, Any]]:
    if _stores is None:
        return [{"name": "PYNOMALY_REDIS_MODE", "value": "none"}]
    return list(_stores.service_env(detector, names))


def conditions(
    detector: specs.AnomalyDetector,
    names: naming.Names,
    observed: Mapping[tuple[str, str], Mapping[str, Any] | None],
) -> list[dict[str, Any]]:
    return [] if _stores is None else list(_stores.conditions(detector, names, observed))


def budget_problems(detector: specs.AnomalyDetector) -> list[str]:
    return [] if _stores is None else list(_stores.budget_problems(detector))

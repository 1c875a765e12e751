"""The supported algorithms and how to import them lazily.

PyOD modules cost tens of megabytes of RSS each, so nothing is imported until a model of
that algorithm is fitted or loaded. Names are matched case-insensitively; PyOD's names come
first, scikit-learn's estimators keep their class names.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any, Literal

from pynomaly_detector.detectors import errors


@dataclass(frozen=True, slots=True)
class Algorithm:
    """One supported estimator: where it lives and how its scores are read."""

    name: str
    module: str
    class_name: str
    family: Literal["pyod", "sklearn"]
    fixed: tuple[tuple[str, Any], ...] = ()
    """Constructor arguments the service sets and users may not (e.g. ``novelty=True``)."""

    def load(self) -> type[Any]:
        """Import the estimator class (the first call pays the import)."""
        cls: type[Any] = getattr(importlib.import_module(self.module), self.class_name)
        return cls

    def parameter_names(self) -> list[str]:
        """Constructor parameters a user may set, from the estimator's own signature."""
        signature = inspect.signature(self.load().__init__)
        fixed = {name for name, _ in self.fixed}
        return sorted(
            name
            for name, parameter in signature.parameters.items()
            if name != "self"
            and name not in fixed
            and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
        )


_ALGORITHMS = (
    Algorithm("IForest", "pyod.models.iforest", "IForest", "pyod"),
    Algorithm("ECOD", "pyod.models.ecod", "ECOD", "pyod"),
    Algorithm("COPOD", "pyod.models.copod", "COPOD", "pyod"),
    Algorithm("HBOS", "pyod.models.hbos", "HBOS", "pyod"),
    Algorithm("LOF", "pyod.models.lof", "LOF", "pyod"),
    Algorithm("KNN", "pyod.models.knn", "KNN", "pyod"),
    Algorithm("OCSVM", "pyod.models.ocsvm", "OCSVM", "pyod"),
    Algorithm("PCA", "pyod.models.pca", "PCA", "pyod"),
    Algorithm("LODA", "pyod.models.loda", "LODA", "pyod"),
    Algorithm("MCD", "pyod.models.mcd", "MCD", "pyod"),
    Algorithm("IsolationForest", "sklearn.ensemble", "IsolationForest", "sklearn"),
    Algorithm(
        "LocalOutlierFactor",
        "sklearn.neighbors",
        "LocalOutlierFactor",
        "sklearn",
        fixed=(("novelty", True),),
    ),
    Algorithm("OneClassSVM", "sklearn.svm", "OneClassSVM", "sklearn"),
    Algorithm("EllipticEnvelope", "sklearn.covariance", "EllipticEnvelope", "sklearn"),
)

ALGORITHMS: dict[str, Algorithm] = {algorithm.name.lower(): algorithm for algorithm in _ALGORITHMS}
"""Lower-cased name -> algorithm."""

NAMES: tuple[str, ...] = tuple(algorithm.name for algorithm in _ALGORITHMS)
"""Canonical names, in documentation order."""


def lookup(name: str) -> Algorithm:
    """The algorithm called ``name`` (case-insensitive), or an error listing the valid names."""
    try:
        return ALGORITHMS[name.lower()]
    except KeyError:
        msg = f"unknown algorithm {name!r}; valid algorithms: {', '.join(NAMES)}"
        raise errors.UnknownAlgorithmError(msg) from None

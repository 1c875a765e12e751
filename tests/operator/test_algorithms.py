"""The operator's algorithm table matches the service's catalog and the real estimators.

The operator cannot import the service or PyOD (independence contract), so it keeps a
copy of each algorithm's parameter names; this test is what keeps the copy honest.
"""

from __future__ import annotations

import importlib
import inspect
import typing

from pynomaly_detector.detectors import catalog
from pynomaly_operator import algorithms
from pynomaly_operator.specs import detector as specs


def test_same_algorithms_as_the_service() -> None:
    assert set(algorithms.NAMES) == set(catalog.NAMES)
    assert set(typing.get_args(specs.Algorithm)) == set(catalog.NAMES)


def test_parameter_names_match_the_service_catalog() -> None:
    for algorithm in catalog.ALGORITHMS.values():
        expected = set(algorithm.parameter_names()) - {"contamination"}
        assert algorithms.PARAMETERS[algorithm.name] == expected, algorithm.name


def test_parameter_names_exist_on_the_real_estimators() -> None:
    for algorithm in catalog.ALGORITHMS.values():
        estimator = getattr(importlib.import_module(algorithm.module), algorithm.class_name)
        accepted = set(inspect.signature(estimator.__init__).parameters)
        assert algorithms.PARAMETERS[algorithm.name] <= accepted, algorithm.name


def test_unknown_parameters_are_reported_sorted() -> None:
    assert algorithms.unknown_parameters("IForest", {"n_estimators": 1}) == []
    assert algorithms.unknown_parameters("IForest", {"zeta": 1, "alpha": 2}) == ["alpha", "zeta"]

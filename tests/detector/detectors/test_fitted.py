"""Fitting: parameter validation against the estimator's signature, thresholds, directions."""

from __future__ import annotations

import numpy as np
import pytest

from pynomaly_detector.detectors import catalog, errors, fitted

X = np.random.default_rng(1).normal(size=(150, 3))
OUTLIER = np.array([[9.0, -9.0, 9.0]])
FAST = ["IForest", "ECOD", "COPOD", "KNN", "PCA", "LocalOutlierFactor", "EllipticEnvelope"]


@pytest.mark.parametrize("algorithm", FAST)
def test_higher_means_more_anomalous_and_threshold_matches_contamination(algorithm: str) -> None:
    parameters = {"n_estimators": 25} if algorithm == "IForest" else {}
    detector = fitted.fit(algorithm, X, parameters=parameters, contamination=0.1)
    scores = detector.score(X)
    assert detector.score(OUTLIER)[0] > np.median(scores)
    assert detector.score(OUTLIER)[0] > detector.threshold
    assert 0.03 <= float((scores > detector.threshold).mean()) <= 0.2
    assert (detector.n_features, detector.n_samples) == (3, 150)


def test_unknown_parameter_names_the_valid_ones() -> None:
    with pytest.raises(errors.InvalidParametersError) as raised:
        fitted.fit("IForest", X, parameters={"trees": 5})
    assert "trees" in str(raised.value)
    assert "n_estimators" in str(raised.value)


def test_service_owned_parameters_are_not_settable() -> None:
    with pytest.raises(errors.InvalidParametersError, match="novelty"):
        fitted.fit("LocalOutlierFactor", X, parameters={"novelty": False})
    with pytest.raises(errors.InvalidParametersError, match="own field"):
        fitted.fit("IForest", X, parameters={"contamination": 0.2})


def test_rejected_values_are_parameter_errors() -> None:
    with pytest.raises(errors.InvalidParametersError, match="n_estimators"):
        fitted.fit("IForest", X, parameters={"n_estimators": -1})


def test_unknown_algorithm_lists_the_catalog() -> None:
    with pytest.raises(errors.UnknownAlgorithmError, match="IForest"):
        fitted.fit("DeepMagic", X)


@pytest.mark.parametrize("contamination", [0.0, 0.6])
def test_contamination_range(contamination: float) -> None:
    with pytest.raises(errors.InvalidParametersError):
        fitted.fit("ECOD", X, contamination=contamination)


def test_unusable_training_data() -> None:
    with pytest.raises(errors.InvalidInputError):
        fitted.fit("ECOD", X[:1])
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(errors.InvalidInputError, match="NaN"):
        fitted.fit("ECOD", bad)


def test_catalog_is_case_insensitive_and_complete() -> None:
    assert catalog.lookup("iforest").name == "IForest"
    assert len(catalog.NAMES) == 14
    assert "novelty" not in catalog.lookup("LocalOutlierFactor").parameter_names()


@pytest.mark.parametrize(
    ("algorithm", "parameters", "message"),
    [
        ("IForest", {"n_estimators": 100_000_000}, "n_estimators must be between 1 and 1000"),
        ("IForest", {"n_jobs": -1}, "n_jobs must be 1"),
        ("KNN", {"n_neighbors": 50_000}, "n_neighbors must be between 1 and 1000"),
        ("OneClassSVM", {"max_iter": -1}, "max_iter must be between 1 and 100000"),
    ],
)
def test_parameters_that_scale_the_work_are_bounded(
    algorithm: str, parameters: dict[str, object], message: str
) -> None:
    with pytest.raises(errors.InvalidParametersError, match=message):
        fitted.fit(algorithm, X, parameters=parameters)

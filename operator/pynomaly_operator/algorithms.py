"""The algorithms an ``AnomalyDetector`` may name, with each one's parameter names.

The operator must not import the detector service or PyOD (import-linter independence
contract; PyOD alone costs ~200 MB), yet a spec with an unknown parameter must be refused
before it reaches a pod. So the operator keeps this small table;
``tests/operator/test_algorithms.py`` cross-checks it against the service's detectors
module and the real PyOD estimators' constructor signatures.
``contamination`` is its own spec field, so it is not a parameter here. The names equal
the service's ``detectors.catalog`` parameter names (its estimators' own signatures).
"""

from __future__ import annotations

from collections.abc import Mapping

# PyOD's OCSVM and MCD wrap scikit-learn's OneClassSVM and EllipticEnvelope: same parameters.
_SVM = frozenset(
    {
        "cache_size",
        "coef0",
        "degree",
        "gamma",
        "kernel",
        "max_iter",
        "nu",
        "shrinking",
        "tol",
        "verbose",
    }
)
_COVARIANCE = frozenset({"assume_centered", "random_state", "store_precision", "support_fraction"})

PARAMETERS: Mapping[str, frozenset[str]] = {
    "IForest": frozenset(
        {
            "behaviour",
            "bootstrap",
            "max_features",
            "max_samples",
            "n_estimators",
            "n_jobs",
            "random_state",
            "verbose",
        }
    ),
    "ECOD": frozenset({"n_jobs"}),
    "COPOD": frozenset({"n_jobs"}),
    "HBOS": frozenset({"alpha", "n_bins", "tol"}),
    "LOF": frozenset(
        {
            "algorithm",
            "leaf_size",
            "metric",
            "metric_params",
            "n_jobs",
            "n_neighbors",
            "novelty",
            "p",
        }
    ),
    "KNN": frozenset(
        {
            "algorithm",
            "leaf_size",
            "method",
            "metric",
            "metric_params",
            "n_jobs",
            "n_neighbors",
            "p",
            "radius",
        }
    ),
    "OCSVM": _SVM,
    "PCA": frozenset(
        {
            "copy",
            "iterated_power",
            "n_components",
            "n_selected_components",
            "random_state",
            "standardization",
            "svd_solver",
            "tol",
            "weighted",
            "whiten",
        }
    ),
    "LODA": frozenset({"n_bins", "n_random_cuts", "random_state"}),
    "MCD": _COVARIANCE,
    "IsolationForest": frozenset(
        {
            "bootstrap",
            "max_features",
            "max_samples",
            "n_estimators",
            "n_jobs",
            "random_state",
            "verbose",
            "warm_start",
        }
    ),
    "LocalOutlierFactor": frozenset(
        {"algorithm", "leaf_size", "metric", "metric_params", "n_jobs", "n_neighbors", "p"}
    ),
    "OneClassSVM": _SVM,
    "EllipticEnvelope": _COVARIANCE,
}

NAMES: tuple[str, ...] = tuple(PARAMETERS)


def unknown_parameters(algorithm: str, parameters: Mapping[str, object]) -> list[str]:
    """Parameter names ``algorithm`` does not accept, sorted (empty = all fine)."""
    known = PARAMETERS.get(algorithm, frozenset())
    return sorted(name for name in parameters if name not in known)

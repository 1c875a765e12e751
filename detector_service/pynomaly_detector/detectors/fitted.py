"""A fitted detector: the estimator, how to read its scores, and its threshold.

This is what the registry pickles (signed) and what the scoring layer calls. ``score`` is
batch-independent for every algorithm: a row's score never depends on the other rows it is
scored with, which is what makes micro-batching and per-row caching correct.

IsolationForest and PyOD's IForest are scored through a flattened forest
(``detectors/forest.py``), built when the detector is fitted or unpickled and never stored in
the artifact: it is derived data, and rebuilding it lets a newer scikit-learn re-check it.

Every detector fitted since calibrated scores exist carries ``calibration_scores`` (see
``detectors/calibration.py``: which algorithms hold calibration rows out of fitting and how
p-values are computed) and, when fitted with an ``alert_rate``, a threshold taken from that
sample. Fields added later are appended after the original ones in the pickled state, so
artifacts stored before them still load (with ``None``: no p-values for those models).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from pynomaly_detector.detectors import calibration, catalog, errors, forest
from pynomaly_detector.detectors.ecdf import EcdfScorer

FloatArray = npt.NDArray[np.float64]

ECDF_KINDS = {"ECOD": "ecod", "COPOD": "copod"}

FORESTS = frozenset({"IForest", "IsolationForest"})
"""Algorithms scored through ``forest.FlatForest`` when it reproduces the estimator."""


@dataclass(slots=True)
class FittedDetector:
    """A fitted estimator, its threshold (from ``contamination`` or ``alert_rate``) and its
    calibration sample."""

    algorithm: str
    parameters: dict[str, Any]
    contamination: float
    n_features: int
    n_samples: int
    threshold: float
    estimator: Any = None
    """The fitted PyOD / scikit-learn estimator (``None`` for ECOD/COPOD)."""
    ecdf: EcdfScorer | None = None
    """ECOD/COPOD: the training-distribution scorer used instead of PyOD's batch scoring."""
    extra: dict[str, Any] = field(default_factory=dict)
    calibration_scores: FloatArray | None = None
    """Scores of normal rows, float64, sorted ascending, at most ``calibration.MAX_SIZE``:
    what p-values compare a score with. ``None`` for models fitted before calibration."""
    alert_rate: float | None = None
    """The share of normal rows the threshold flags, when fitted with ``alert_rate``."""
    calibration_held_out: int = 0
    """Training rows held out of fitting to score the calibration sample (0: training scores)."""
    feature_medians: FloatArray | None = None
    """Per feature: the training median (the reference explanations compare a row with)."""
    flat_forest: forest.FlatForest | None = field(default=None, compare=False, repr=False)
    """IsolationForest / IForest: the flattened forest (derived, never pickled)."""

    def __getstate__(self) -> list[Any]:
        # The dataclass default minus ``flat_forest``: artifacts keep the layout they always had.
        return [getattr(self, f.name) for f in fields(self) if f.name != "flat_forest"]

    def __setstate__(self, state: list[Any]) -> None:
        names = [f.name for f in fields(self) if f.name != "flat_forest"]
        if len(state) > len(names):
            raise ValueError("artifact written by a newer version (more fields than known)")
        for name, value in zip(names, state, strict=False):
            object.__setattr__(self, name, value)
        # Artifacts stored before later fields existed: those take their defaults.
        for f in fields(self)[len(state) :]:
            if f.name != "flat_forest":
                object.__setattr__(self, f.name, f.default)
        self.flat_forest = None
        self.prepare()

    def p_values(self, scores: FloatArray) -> FloatArray | None:
        """Per score: its p-value against the calibration sample (``None`` without one)."""
        if self.calibration_scores is None:
            return None
        return calibration.p_values(self.calibration_scores, scores)

    def prepare(self) -> None:
        """Build the fast scorer of forest models (after fitting and after unpickling)."""
        if self.algorithm not in FORESTS or self.estimator is None:
            return
        # PyOD's IForest keeps the sklearn IsolationForest it wraps in ``detector_``.
        model = self.estimator if self.algorithm == "IsolationForest" else self.estimator.detector_
        self.flat_forest = forest.build(model)

    @property
    def fast(self) -> bool:
        """Scored in numpy in microseconds per row (flattened forest, ECOD/COPOD scorer)."""
        return self.flat_forest is not None or self.ecdf is not None

    def score(self, rows: FloatArray, *, finite: bool = False) -> FloatArray:
        """Anomaly scores of the rows of ``rows`` (higher = more anomalous). ``finite``: the
        caller has checked that every value is finite (the scoring path refuses the others)."""
        if self.ecdf is not None:
            return self.ecdf.score(rows)
        if self.flat_forest is not None and (finite or np.isfinite(rows).all()):
            if self.algorithm == "IsolationForest":
                return self.flat_forest.anomaly_scores(rows)
            samples = self.flat_forest.score_samples(rows)
            # PyOD: invert_order(decision_function) = -(score_samples - offset_).
            flipped: FloatArray = -(samples - self.estimator.detector_.offset_)
            return flipped
        if catalog.lookup(self.algorithm).family == "sklearn":
            scores: FloatArray = -np.asarray(self.estimator.score_samples(rows), dtype=np.float64)
            return scores
        return np.asarray(self.estimator.decision_function(rows), dtype=np.float64)


PARAMETER_LIMITS: dict[str, int] = {
    "n_estimators": 1000,
    "n_neighbors": 1000,
    "n_bins": 1000,
    "n_random_cuts": 1000,
    "n_components": 10_000,
    "max_iter": 100_000,
    "leaf_size": 10_000,
}
"""Largest value of integer parameters that scale the work of a fit (or of every scoring
call): beyond it a fit could hold a core for hours. Above the limit (or negative, which means
"unlimited" for ``max_iter``) is a 422; ``n_jobs`` may only be 1 (the service parallelises
across requests and workers, a fit must not take every core)."""


def _check_limits(parameters: dict[str, Any]) -> None:
    if parameters.get("n_jobs", 1) not in (1, None):
        raise errors.InvalidParametersError(
            "n_jobs must be 1: the service runs one core per fit and parallelises across requests"
        )
    for name, limit in PARAMETER_LIMITS.items():
        value = parameters.get(name)
        if isinstance(value, bool) or not isinstance(value, int):
            continue
        if not 0 < value <= limit:
            raise errors.InvalidParametersError(
                f"{name} must be between 1 and {limit} (got {value})"
            )


def fit(
    algorithm: str,
    rows: FloatArray,
    *,
    parameters: dict[str, Any] | None = None,
    contamination: float = 0.1,
    alert_rate: float | None = None,
) -> FittedDetector:
    """Validate ``parameters`` against the estimator's signature and fit it on ``rows``.

    The threshold is the ``1 - contamination`` quantile of the training scores (PyOD's own
    ``threshold_`` for PyOD models), or, with ``alert_rate``, the calibration-sample score
    that flags rows with a p-value at most ``alert_rate`` (``calibration.alert_threshold``).
    Raises ``InvalidParametersError`` naming the valid parameters when one is unknown, and
    when the estimator rejects a value; ``InvalidInputError`` for unusable training rows.
    """
    spec = catalog.lookup(algorithm)
    parameters = dict(parameters or {})
    if alert_rate is not None:
        if not 0 < alert_rate < 0.5:
            raise errors.InvalidParametersError("alert_rate must be in (0, 0.5)")
        # The estimator's own contamination only sets a threshold this one replaces.
        contamination = alert_rate
    if not 0 < contamination <= 0.5:
        raise errors.InvalidParametersError("contamination must be in (0, 0.5]")
    rows = np.asarray(rows, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[0] < 2 or rows.shape[1] < 1:
        raise errors.InvalidInputError("training data needs at least 2 rows and 1 column")
    if not np.isfinite(rows).all():
        raise errors.InvalidInputError("training data contains NaN or infinite values")
    if "contamination" in parameters:
        raise errors.InvalidParametersError(
            "set 'contamination' as its own field, not among the parameters"
        )
    _check_limits(parameters)
    names = spec.parameter_names()
    valid = [name for name in names if name != "contamination"]
    unknown = sorted(set(parameters) - set(valid))
    if unknown:
        msg = (
            f"unknown parameter(s) {', '.join(unknown)} for {spec.name}; "
            f"valid parameters: {', '.join(valid)}"
        )
        raise errors.InvalidParametersError(msg)
    arguments = dict(parameters)
    if "contamination" in names:
        arguments["contamination"] = contamination
    if "random_state" in valid:
        arguments.setdefault("random_state", 0)
    if "n_jobs" in valid:
        # The service parallelises across requests; a model call uses one core.
        arguments.setdefault("n_jobs", 1)
    arguments.update(dict(spec.fixed))
    try:
        estimator = spec.load()(**arguments)
    except (TypeError, ValueError) as error:
        raise errors.InvalidParametersError(f"{spec.name}: {error}") from error
    n_samples, n_features = rows.shape
    held_out = calibration.held_out_rows(spec.name, n_samples)
    fit_rows, calibration_rows = calibration.split(rows, held_out)
    quantile = 100.0 * (1.0 - contamination)
    if spec.name in ECDF_KINDS:
        scorer = EcdfScorer.fit("ecod" if spec.name == "ECOD" else "copod", fit_rows)
        detector = FittedDetector(
            spec.name, parameters, contamination, n_features, n_samples, 0.0, ecdf=scorer
        )
        training_scores = detector.score(fit_rows)
        detector.threshold = float(np.percentile(training_scores, quantile))
    else:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                estimator.fit(fit_rows)
        except (TypeError, ValueError) as error:
            raise errors.InvalidParametersError(f"{spec.name}: {error}") from error
        detector = FittedDetector(
            spec.name, parameters, contamination, n_features, n_samples, 0.0, estimator=estimator
        )
        detector.prepare()
        training_scores = detector.score(fit_rows)
        if spec.family == "pyod":
            # PyOD's threshold comes from its training scores (leave-self-out for KNN/LOF).
            detector.threshold = float(estimator.threshold_)
        else:
            detector.threshold = float(np.percentile(training_scores, quantile))
    detector.calibration_held_out = held_out
    detector.calibration_scores = calibration.sample(
        detector.score(calibration_rows) if held_out else training_scores
    )
    detector.feature_medians = np.median(rows, axis=0)
    if alert_rate is not None:
        try:
            detector.threshold = calibration.alert_threshold(
                detector.calibration_scores, alert_rate
            )
        except ValueError as error:
            raise errors.InvalidParametersError(str(error)) from None
        detector.alert_rate = alert_rate
    return detector

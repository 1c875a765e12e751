"""Deterministic data and the one fitted IsolationForest every benchmarked server uses.

Lives apart from the orchestrator because it must run under two interpreters: the
project's .venv (in-process limit, our service) and MLServer's own virtualenv (the
model file MLServer loads). It imports only numpy, scikit-learn and joblib, which
both environments have, so "same fitted model" is checked, not assumed: both sides
refit from the same seed and compare scores on the same check rows.

Usage (as a script):
    python bench/bench_data.py fit --work DIR     # fit, dump DIR/model.joblib, write scores
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

SEED = 20_000
N_TRAIN = 20_000
N_FEATURES = 16
N_ESTIMATORS = 100
CONTAMINATION = 0.1
# Query rows are rounded so that their JSON text parses back to exactly the same
# float64 in every server (shortest repr round-trips), which makes scores comparable.
DECIMALS = 6


def training_rows() -> np.ndarray[Any, np.dtype[np.float64]]:
    """The 20,000 x 16 training matrix: mostly normal data plus 2 % shifted outliers."""
    rng = np.random.default_rng(SEED)
    rows = rng.normal(0.0, 1.0, size=(N_TRAIN, N_FEATURES))
    n_out = N_TRAIN // 50
    rows[:n_out] += rng.uniform(3.0, 6.0, size=(n_out, N_FEATURES))
    return np.round(rows, DECIMALS)


def query_rows(count: int, *, seed: int) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Distinct rows to score, from the training distribution (about 5 % outliers)."""
    rng = np.random.default_rng(seed)
    rows = rng.normal(0.0, 1.0, size=(count, N_FEATURES))
    outliers = rng.random(count) < 0.05
    rows[outliers] += rng.uniform(3.0, 6.0, size=(int(outliers.sum()), N_FEATURES))
    return np.round(rows, DECIMALS)


def check_rows() -> np.ndarray[Any, np.dtype[np.float64]]:
    """A few rows (inliers and outliers) whose scores must agree between servers."""
    return query_rows(8, seed=SEED + 1)


def model_parameters() -> dict[str, Any]:
    """The estimator parameters, as passed to sklearn and to our service's fit API."""
    return {"n_estimators": N_ESTIMATORS, "random_state": SEED}


def fit_model() -> Any:
    """IsolationForest(n_estimators=100, contamination=0.1, random_state=SEED) on the rows."""
    from sklearn.ensemble import IsolationForest

    model = IsolationForest(contamination=CONTAMINATION, **model_parameters())
    model.fit(training_rows())
    return model


def reference_scores(model: Any) -> dict[str, list[float]]:
    """sklearn's own outputs on the check rows, for comparing servers against."""
    rows = check_rows()
    return {
        "decision_function": [float(v) for v in model.decision_function(rows)],
        "score_samples": [float(v) for v in model.score_samples(rows)],
        "predict": [float(v) for v in model.predict(rows)],
    }


def _fit_command(work: Path) -> None:
    import joblib
    import sklearn

    work.mkdir(parents=True, exist_ok=True)
    model = fit_model()
    joblib.dump(model, work / "model.joblib")
    payload = {"sklearn": sklearn.__version__, **reference_scores(model)}
    (work / "reference-scores.json").write_text(json.dumps(payload))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="fit the model and dump it with joblib")
    fit.add_argument("--work", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "fit":
        _fit_command(args.work)


if __name__ == "__main__":
    main()

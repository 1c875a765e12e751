"""The in-process limit: IsolationForest.decision_function timed in a loop, no HTTP at all.

Run by the orchestrator under the project's .venv, pinned to the server CPU, as
    python bench/inprocess.py --work DIR --seconds S
It refits the model from the shared seed, checks its scores equal those of the model file
MLServer loads (DIR/reference-scores.json, written by bench_data.py under MLServer's
virtualenv), then times 1, 256 and 4,096-row calls for a bounded time each and prints
one JSON object.

Two faster scorers are timed beside it, both returning sklearn's exact score_samples (checked
here): a plain loop over the trees' `apply` (sklearn dispatches 100 joblib tasks per call,
which is most of its ~3-5 ms per call), and a flattened forest traversed for all trees and
rows at once with numpy (microseconds for one row, slower than the loop on big batches).
They show what a service could reach per CPU without changing the model.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from bench_data import check_rows, fit_model, query_rows, reference_scores

BATCH_SIZES = (1, 256, 4096)
Scorer = Callable[[np.ndarray[Any, Any]], Any]


def _tree_parts(model: Any) -> Iterator[tuple[Any, Any, Any, Any]]:
    yield from zip(
        model.estimators_,
        model.estimators_features_,
        model._decision_path_lengths,
        model._average_path_length_per_tree,
        strict=True,
    )


def _denominator(model: Any) -> float:
    from sklearn.ensemble._iforest import _average_path_length

    return float(len(model.estimators_) * _average_path_length([model._max_samples])[0])


def tree_loop_scorer(model: Any) -> Scorer:
    """score_samples as sklearn computes it, minus joblib: one tree.apply per tree."""
    parts = list(_tree_parts(model))
    denominator = _denominator(model)

    def score(rows: np.ndarray[Any, Any]) -> Any:
        x32 = np.asarray(rows, dtype=np.float32)  # sklearn's trees compare in float32
        depths = np.zeros(len(x32))
        for tree, features, path_lengths, average_lengths in parts:
            subset = x32 if len(features) == x32.shape[1] else x32[:, features]
            leaves = tree.apply(subset, check_input=False)
            depths += path_lengths[leaves] + average_lengths[leaves] - 1.0
        return -(2.0 ** (-depths / denominator))

    return score


def flat_scorer(model: Any) -> Scorer:
    """The forest as flat node arrays, traversed for every (row, tree) pair at once."""
    feature, left, right, threshold, value, roots = [], [], [], [], [], []
    offset = 0
    for tree, features, path_lengths, average_lengths in _tree_parts(model):
        t = tree.tree_
        leaf = t.children_left == -1
        here = np.arange(t.node_count)
        roots.append(offset)
        feature.append(np.asarray(features)[np.where(leaf, 0, t.feature)])
        left.append(np.where(leaf, here, t.children_left) + offset)  # leaves loop on themselves
        right.append(np.where(leaf, here, t.children_right) + offset)
        threshold.append(t.threshold)
        value.append(path_lengths + average_lengths - 1.0)
        offset += t.node_count
    feat = np.concatenate(feature).astype(np.intp)
    lo = np.concatenate(left).astype(np.intp)
    hi = np.concatenate(right).astype(np.intp)
    thr = np.concatenate(threshold)
    val = np.concatenate(value)
    root = np.array(roots, dtype=np.intp)
    depth = max(int(e.tree_.max_depth) for e in model.estimators_)
    denominator = _denominator(model)

    def score(rows: np.ndarray[Any, Any]) -> Any:
        x = np.asarray(rows, dtype=np.float32).astype(np.float64)
        n, d = x.shape
        flat = x.ravel()
        node = np.tile(root, n)
        base = np.repeat(np.arange(n) * d, len(root))
        for _ in range(depth):
            node = np.where(flat[base + feat[node]] <= thr[node], lo[node], hi[node])
        return -(2.0 ** (-val[node].reshape(n, -1).sum(axis=1) / denominator))

    return score


def time_calls(call: Scorer, rows: np.ndarray[Any, Any], *, seconds: float) -> dict[str, float]:
    """Call `call(rows)` until `seconds` pass (at least 3 calls)."""
    call(rows)  # first call pays lazy allocations
    calls = 0
    latencies: list[float] = []
    start = time.perf_counter()
    deadline = start + seconds
    while calls < 3 or time.perf_counter() < deadline:
        t0 = time.perf_counter()
        call(rows)
        latencies.append(time.perf_counter() - t0)
        calls += 1
    elapsed = time.perf_counter() - start
    lat = np.array(latencies) * 1000.0
    return {
        "rows_per_call": float(len(rows)),
        "calls": float(calls),
        "calls_per_s": calls / elapsed,
        "rows_per_s": calls * len(rows) / elapsed,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()

    model = fit_model()
    ours = reference_scores(model)
    reference = json.loads((args.work / "reference-scores.json").read_text())
    max_diff = float(
        np.max(np.abs(np.array(ours["decision_function"]) - reference["decision_function"]))
    )
    rows = query_rows(max(BATCH_SIZES), seed=7)
    expected = model.score_samples(rows)
    faster = {"tree_loop": tree_loop_scorer(model), "flat_numpy": flat_scorer(model)}
    variants: dict[str, Any] = {}
    for name, scorer in faster.items():
        diff = float(np.max(np.abs(scorer(rows) - expected)))
        cells = [time_calls(scorer, rows[:n], seconds=args.seconds / 2) for n in BATCH_SIZES]
        variants[name] = {"max_abs_diff_vs_score_samples": diff, "cells": cells}
    cells = [
        time_calls(model.decision_function, rows[:n], seconds=args.seconds) for n in BATCH_SIZES
    ]
    result = {
        "reference_max_abs_diff": max_diff,
        "check_rows": len(check_rows()),
        "cells": cells,
        "faster_scorers": variants,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""Calibrated scores over HTTP: p-values in detect, ``alert_rate`` fits, models from before."""

from __future__ import annotations

import copyreg
import dataclasses
import pickle
from pathlib import Path

import numpy as np

from pynomaly_detector.detectors import fitted
from pynomaly_detector.registry import signing
from pynomaly_detector.registry.local import LocalStore
from pynomaly_detector.registry.versions import ModelVersion, now
from tests.detector.conftest import SIGNING_KEY, service, training_rows


async def test_detect_carries_p_values_and_alert_rate_sets_the_threshold(tmp_path: Path) -> None:
    rows = np.random.default_rng(0).normal(size=(3000, 3)).tolist()
    async with service(tmp_path) as client:
        fit = await client.put(
            "/v1/models/budget",
            json={"algorithm": "ECOD", "alert_rate": 0.01, "instances": rows},
        )
        assert fit.status_code == 201, fit.text
        meta = fit.json()
        assert meta["alert_rate"] == 0.01
        assert meta["calibration_size"] == 2048
        probe = [[0.0, 0.0, 0.0], [0.5, -0.5, 0.2], [6.0, -6.0, 6.0]]
        detected = await client.post("/v1/models/budget/detect", json={"instances": probe})
        assert detected.status_code == 200, detected.text
        body = detected.json()
        assert "p_values_unavailable" not in body
        p_values = body["p_values"]
        assert len(p_values) == 3
        assert all(1 / 2049 <= p <= 1 for p in p_values)
        assert p_values[2] == 1 / 2049  # beyond every calibration score
        assert body["is_anomaly"] == [p <= 0.01 for p in p_values] == [False, False, True]
        described = (await client.get("/v1/models/budget")).json()
        assert described["alert_rate"] == 0.01


async def test_contamination_and_alert_rate_together_is_a_422_saying_so(tmp_path: Path) -> None:
    async with service(tmp_path) as client:
        both = await client.put(
            "/v1/models/both",
            json={"contamination": 0.1, "alert_rate": 0.01, "instances": training_rows()},
        )
        assert both.status_code == 422
        assert "either 'contamination'" in str(both.json()["detail"])
        bad = await client.put(
            "/v1/models/bad", json={"alert_rate": 0.5, "instances": training_rows()}
        )
        assert bad.status_code == 422
        assert "alert_rate" in str(bad.json()["detail"])
        too_fine = await client.put(
            "/v1/models/fine", json={"alert_rate": 0.0001, "instances": training_rows()}
        )
        assert too_fine.status_code == 422
        assert "calibration sample" in str(too_fine.json()["detail"])


async def test_csv_fit_takes_alert_rate(tmp_path: Path) -> None:
    csv = "\n".join(",".join(str(v) for v in row) for row in training_rows(400)).encode()
    async with service(tmp_path) as client:
        fit = await client.put(
            "/v1/models/csv",
            files={"file": ("train.csv", csv, "text/csv")},
            data={"algorithm": "IForest", "alert_rate": "0.05"},
        )
        assert fit.status_code == 201, fit.text
        assert fit.json()["alert_rate"] == 0.05


def _old_artifact(detector: fitted.FittedDetector) -> bytes:
    """``detector`` pickled as before calibration: only the fields that existed then."""
    later = {"calibration_scores", "alert_rate", "calibration_held_out", "feature_medians"}
    state = [
        getattr(detector, f.name)
        for f in dataclasses.fields(detector)
        if f.name not in later and f.name != "flat_forest"
    ]

    class Old:
        def __reduce__(self) -> tuple[object, ...]:
            # What pickle writes for a FittedDetector: a new instance, then __setstate__(state).
            return (copyreg._reconstructor, (fitted.FittedDetector, object, None), state)  # type: ignore[attr-defined]  # private in typeshed, public in pickle's protocol 0-1 output

    return pickle.dumps(Old(), protocol=pickle.HIGHEST_PROTOCOL)


async def test_a_model_stored_before_calibration_scores_with_null_p_values(
    tmp_path: Path,
) -> None:
    rows = np.asarray(training_rows(), dtype=np.float64)
    artifact = _old_artifact(fitted.fit("IForest", rows, parameters={"n_estimators": 20}))
    meta = ModelVersion(
        name="legacy",
        version=0,
        algorithm="IForest",
        parameters={"n_estimators": 20},
        contamination=0.1,
        features=["f0", "f1", "f2"],
        n_samples=len(rows),
        threshold=0.05,
        fitted_at=now(),
        content_hash=signing.content_hash(artifact),
        signature="",
    )
    meta = dataclasses.replace(meta, signature=signing.seal(SIGNING_KEY.encode(), meta, artifact))
    # Stored the way the previous release stored it: its metadata had no calibration fields.
    store = LocalStore(tmp_path / "models")
    await store.open()
    await store.save((meta, artifact))
    async with service(tmp_path) as client:
        detected = await client.post("/v1/models/legacy/detect", json={"instances": [[0, 0, 0]]})
        assert detected.status_code == 200, detected.text
        body = detected.json()
        assert body["p_values"] is None
        assert "refit" in body["p_values_unavailable"]
        assert len(body["scores"]) == 1
        described = (await client.get("/v1/models/legacy")).json()
        assert described["calibration_size"] is None

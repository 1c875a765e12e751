"""The demo's pieces that can be checked in a second (the whole `make demo` takes ~30 s and
is run by hand; its timing is in the README): the script parses, the Makefile exposes it,
the request bodies and the closing report are right.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.install.conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import demo_data  # a script, imported from scripts/ (on sys.path above)

DATA = ROOT / "manifests" / "samples" / "data"


def test_demo_script_parses_and_has_its_steps() -> None:
    script = ROOT / "scripts" / "demo.sh"
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=10)
    text = script.read_text()
    for step in ("start_cluster", "install_crd", "start_operator", "apply_sample"):
        assert f"{step}() {{" in text
    for step in ("start_stores", "start_service", "fit_and_score", "down"):
        assert f"{step}() {{" in text


def test_makefile_documents_demo_targets() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "\ndemo: setup ## " in makefile
    assert "\ndemo-down: ## " in makefile


def test_fit_body_uses_the_operators_model_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYNOMALY_MODEL_ALGORITHM", "HBOS")
    monkeypatch.setenv("PYNOMALY_MODEL_CONTAMINATION", "0.02")
    monkeypatch.setenv("PYNOMALY_MODEL_PARAMETERS", '{"n_bins": 20}')
    body = demo_data.fit_body(DATA / "training.csv")
    assert body["algorithm"] == "HBOS"
    assert body["contamination"] == 0.02
    assert body["parameters"] == {"n_bins": 20}
    assert len(body["instances"]) == 400
    assert all(len(row) == 3 for row in body["instances"])


def test_report_passes_only_when_the_expected_rows_are_flagged(tmp_path: Path) -> None:
    rows = demo_data.detect_body(DATA / "score.csv")["instances"]
    expected = [row[0] > 1000 or row[2] > 20 for row in rows]
    response = tmp_path / "response.json"
    response.write_text(
        json.dumps({"scores": [1.0 if e else 0.0 for e in expected], "is_anomaly": expected})
    )
    assert demo_data.report(DATA / "score.csv", response) == 0
    response.write_text(
        json.dumps({"scores": [0.0] * len(rows), "is_anomaly": [False] * len(rows)})
    )
    assert demo_data.report(DATA / "score.csv", response) == 1


def test_status_line_waits_for_the_observed_generation() -> None:
    ready = {
        "metadata": {"generation": 2},
        "status": {
            "phase": "Ready",
            "observedGeneration": 2,
            "conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": "ok"}],
        },
    }
    line, done = demo_data.status_line(ready)
    assert done
    assert "Ready=True" in line
    ready["status"]["observedGeneration"] = 1
    assert not demo_data.status_line(ready)[1]
    assert not demo_data.status_line({"metadata": {"generation": 1}})[1]


async def test_explained_calibrated_alert_step_on_the_sample_data(tmp_path: Path) -> None:
    from tests.detector.conftest import service

    async with service(tmp_path) as client:
        fit = await client.put(
            "/v1/models/calibrated", json=demo_data.calibrated_fit_body(DATA / "training.csv")
        )
        assert fit.status_code == 201, fit.text
        detected = await client.post(
            "/v1/models/calibrated/detect", json=demo_data.explain_body(DATA / "score.csv")
        )
        assert detected.status_code == 200, detected.text
    response = tmp_path / "explain-response.json"
    response.write_text(detected.text)
    assert demo_data.explained(DATA / "score.csv", response) == 0

#!/usr/bin/env python3
"""Request bodies and the closing report of ``make demo`` (scripts/demo.sh).

    demo_data.py fit-body TRAINING_CSV        -> JSON for PUT /v1/models/{name}
    demo_data.py detect-body SCORE_CSV        -> JSON for POST /v1/models/{name}/detect
    demo_data.py report SCORE_CSV RESPONSE    -> table of the rows scored; exit 1 when the
                                                 anomalies found differ from the expected column
    demo_data.py status < detector.json       -> one progress line; exit 0 once Ready and the
                                                 operator has observed the latest generation
    demo_data.py calibrated-fit-body TRAINING_CSV -> JSON for an ECOD fit with alert_rate 0.01
    demo_data.py explain-body SCORE_CSV       -> detect body with "explain": true
    demo_data.py explained SCORE_CSV RESPONSE -> each alert with its p-value and reasons; exit 1
                                                 when there is none or one lacks a reason

The model settings for the fit (algorithm, parameters, contamination) come from the
environment the operator rendered (PYNOMALY_MODEL_*), so the demo fits what the
AnomalyDetector asked for. Standard library only.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path
from typing import Any

FEATURES = ("amount", "hour", "items")


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _instances(rows: list[dict[str, str]]) -> list[list[float]]:
    return [[float(row[name]) for name in FEATURES] for row in rows]


def fit_body(training: Path) -> dict[str, Any]:
    body: dict[str, Any] = {
        "algorithm": os.environ.get("PYNOMALY_MODEL_ALGORITHM") or "IForest",
        "contamination": float(os.environ.get("PYNOMALY_MODEL_CONTAMINATION") or 0.01),
        "instances": _instances(_rows(training)),
    }
    parameters = os.environ.get("PYNOMALY_MODEL_PARAMETERS")
    body["parameters"] = json.loads(parameters) if parameters else {}
    return body


def detect_body(score: Path) -> dict[str, Any]:
    return {"instances": _instances(_rows(score))}


def report(score: Path, response_path: Path) -> int:
    rows = _rows(score)
    response = json.loads(response_path.read_text())
    scores: list[float] = response["scores"]
    flagged: list[bool] = response["is_anomaly"]
    threshold = response.get("threshold")
    shown = "?" if threshold is None else f"{round(float(threshold), 4) + 0.0:.4f}"
    print(f"    model {response.get('model')} v{response.get('version')}, threshold {shown}")
    print(f"    {'amount':>9} {'hour':>5} {'items':>5} {'score':>9}  verdict")
    for row, value, anomaly in zip(rows, scores, flagged, strict=True):
        verdict = "ANOMALY" if anomaly else "ok"
        print(
            f"    {float(row['amount']):>9.2f} {float(row['hour']):>5.1f} "
            f"{float(row['items']):>5.0f} {value:>9.4f}  {verdict}"
        )
    found = [i for i, anomaly in enumerate(flagged) if anomaly]
    expected = [i for i, row in enumerate(rows) if row.get("expected") == "1"]
    print(f"    found {len(found)} anomalies in {len(rows)} rows (expected {len(expected)})")
    return 0 if found == expected else 1


ALERT_RATE = 0.01
"""The calibrated model's alert budget: flag 1 % of normal traffic."""


def calibrated_fit_body(training: Path) -> dict[str, Any]:
    rows = _instances(_rows(training))
    return {"algorithm": "ECOD", "alert_rate": ALERT_RATE, "instances": rows}


def _column(feature: str) -> str:
    """The CSV column of a JSON-fitted model's feature ``f<i>`` (rows go in FEATURES order)."""
    index = feature[1:]
    return FEATURES[int(index)] if feature[:1] == "f" and index.isdigit() else feature


def explain_body(score: Path) -> dict[str, Any]:
    return {"instances": _instances(_rows(score)), "explain": True}


def explained(score: Path, response_path: Path) -> int:
    rows = _rows(score)
    response = json.loads(response_path.read_text())
    alerts = [i for i, flagged in enumerate(response["is_anomaly"]) if flagged]
    print(
        f"    model {response.get('model')} v{response.get('version')}: "
        f"{len(alerts)} alerts in {len(rows)} rows at alert_rate {ALERT_RATE}"
    )
    missing = 0
    for index in alerts:
        row = rows[index]
        reasons = response["explanations"][index] or []
        missing += not reasons
        because = ", ".join(
            f"{_column(item['feature'])} {item['direction']} normal ({item['contribution']:.0%})"
            for item in reasons[:2]
        )
        print(
            f"    amount={float(row['amount']):.2f} hour={float(row['hour']):.1f} "
            f"items={float(row['items']):.0f}  p={response['p_values'][index]:.4f}  "
            f"because: {because or '?'}"
        )
    return 1 if missing or not alerts else 0


def status_line(obj: dict[str, Any]) -> tuple[str, bool]:
    """A one-line summary of an AnomalyDetector's status and whether it is Ready."""
    status = obj.get("status") or {}
    generation = obj["metadata"].get("generation")
    ready = next((c for c in status.get("conditions", []) if c.get("type") == "Ready"), {})
    line = (
        f"phase={status.get('phase', '-')} generation={generation} "
        f"observed={status.get('observedGeneration', '-')} "
        f"Ready={ready.get('status', '-')} {ready.get('reason', '')}: {ready.get('message', '')}"
    )
    done = status.get("phase") == "Ready" and status.get("observedGeneration") == generation
    return line, done


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "fit-body":
        json.dump(fit_body(Path(argv[1])), sys.stdout)
        return 0
    if len(argv) >= 2 and argv[0] == "detect-body":
        json.dump(detect_body(Path(argv[1])), sys.stdout)
        return 0
    if len(argv) >= 3 and argv[0] == "report":
        return report(Path(argv[1]), Path(argv[2]))
    if len(argv) >= 2 and argv[0] == "calibrated-fit-body":
        json.dump(calibrated_fit_body(Path(argv[1])), sys.stdout)
        return 0
    if len(argv) >= 2 and argv[0] == "explain-body":
        json.dump(explain_body(Path(argv[1])), sys.stdout)
        return 0
    if len(argv) >= 3 and argv[0] == "explained":
        return explained(Path(argv[1]), Path(argv[2]))
    if argv[:1] == ["status"]:
        line, done = status_line(json.load(sys.stdin))
        print(line)
        return 0 if done else 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

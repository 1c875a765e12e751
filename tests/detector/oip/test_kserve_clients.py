"""KServe's ``InferenceRESTClient`` (binary and JSON) and ``InferenceGRPCClient``, unchanged.

The ``kserve`` package pins psutil < 6 and pandas < 3, below this project's floors, so it lives
in its own virtualenv, ``.venv-kserve`` (``make kserve-venv``; created here on first use), and
``kserve_client.py`` runs under that interpreter against the package's service process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.detector.oip.conftest import Detector

pytestmark = [pytest.mark.oip, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
VENV = ROOT / ".venv-kserve"
REQUIREMENT = "kserve==0.21.*"  # keep in step with the Makefile's kserve-venv target


def _kserve_python() -> Path:
    python = VENV / "bin" / "python"
    if not (VENV / ".installed").exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=120)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", REQUIREMENT], check=True, timeout=900
        )
        (VENV / ".installed").touch()
    return python


def test_kserve_rest_and_grpc_clients(detector: Detector, queries: np.ndarray) -> None:
    run = subprocess.run(
        [
            str(_kserve_python()),
            str(Path(__file__).with_name("kserve_client.py")),
            detector.http,
            detector.grpc,
            json.dumps(queries.tolist()),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(run.stdout)
    v1 = detector.v1(queries)
    for transport in ("rest", "grpc"):
        assert results[transport]["live"] is True
        assert results[transport]["ready"] is True
        assert results[transport]["model_ready"] is True
    for answer in (results["rest"]["binary"], results["rest"]["json"], results["grpc"]["infer"]):
        assert answer["id"] == "k-1"
        np.testing.assert_array_equal(np.array(answer["scores"]), v1)
        assert answer["is_anomaly"][:2] == [True, True]  # the two far rows

"""Policy checks (checkov) over the install manifests and every sample's rendered children.

checkov runs from its own virtualenv (``make checkov``: its pins would downgrade packages in
.venv). Skips are documented in tests/install/checkov.yaml or as ``checkov.io/skipN``
annotations on the object (kustomize drops YAML comments). Schema validation is not done
here: the real API server does it (``kubectl apply --dry-run=server`` in
test_cluster_install.py), since kubeconform's schemas cannot be downloaded on this network.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.install.conftest import MANIFESTS, ROOT
from tests.support.controlplane import KUBECTL

CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
CONFIG = Path(__file__).with_name("checkov.yaml")


def _checkov(directory: Path) -> list[dict[str, Any]]:
    """Failed checks checkov reports for the YAML files in ``directory``."""
    if not CHECKOV.exists():
        pytest.skip("checkov is not installed: make checkov")
    done = subprocess.run(
        [str(CHECKOV), "--config-file", str(CONFIG), "-d", str(directory), "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode in (0, 1), done.stderr[-2000:]
    report = json.loads(done.stdout)
    reports = report if isinstance(report, list) else [report]
    failed: list[dict[str, Any]] = []
    for one in reports:
        failed.extend(one.get("results", {}).get("failed_checks", []))
    return failed


def _summary(failed: list[dict[str, Any]]) -> str:
    return "\n".join(f"{f['check_id']} {f['check_name']}: {f['resource']}" for f in failed[:60]) + (
        f"\n... {len(failed) - 60} more" if len(failed) > 60 else ""
    )


def test_install_manifests_pass_checkov(tmp_path: Path) -> None:
    built = subprocess.run(
        [str(KUBECTL), "kustomize", str(MANIFESTS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    (tmp_path / "install.yaml").write_text(built.stdout)
    failed = _checkov(tmp_path)
    assert not failed, _summary(failed)


def test_rendered_samples_pass_checkov(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "render-samples.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert len(list(tmp_path.glob("*.yaml"))) >= 6
    failed = _checkov(tmp_path)
    assert not failed, _summary(failed)

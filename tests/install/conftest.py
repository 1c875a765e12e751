"""Shared helpers for the install tests: repository paths and rendered manifests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
SAMPLES = MANIFESTS / "samples"
SAMPLE_FILES = sorted(SAMPLES.glob("*.yaml"))


def kustomize(path: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize PATH`` parsed into documents (kubectl's embedded kustomize)."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    done = subprocess.run(
        ["kubectl", "kustomize", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"kubectl kustomize {path} failed:\n{done.stderr}"
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def documents(path: Path) -> list[dict[str, Any]]:
    """Every YAML document in one file."""
    return [d for d in yaml.safe_load_all(path.read_text()) if d]

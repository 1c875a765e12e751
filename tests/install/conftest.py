"""Shared helpers for the install tests: repository paths and rendered manifests."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.support.controlplane import KUBECTL

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
SAMPLES = MANIFESTS / "samples"
SAMPLE_FILES = sorted(SAMPLES.glob("*.yaml"))


def kustomize(path: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize PATH`` parsed into documents (kubectl's embedded kustomize)."""
    assert KUBECTL.exists(), f"{KUBECTL} is missing: `make controlplane` builds it"
    done = subprocess.run(
        [str(KUBECTL), "kustomize", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"kubectl kustomize {path} failed:\n{done.stderr}"
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def documents(path: Path) -> list[dict[str, Any]]:
    """Every YAML document in one file."""
    return [d for d in yaml.safe_load_all(path.read_text()) if d]

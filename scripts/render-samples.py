#!/usr/bin/env python3
"""Renders every sample's children with the operator's pure builders, one YAML file per sample.

    render-samples.py OUT_DIR [--namespace NS]

For each AnomalyDetector in manifests/samples/*.yaml this writes OUT_DIR/<sample>.yaml with
exactly what the reconcile applies (``builders.desired.desired``, the same call the
reconciler makes: generated Secrets, then every other object in apply order), with the
namespace filled in as the applier does. Policy checks
(checkov) and the API server's own validation (kubectl apply --dry-run=server) run over them.
Secret values are placeholders: rendering must not mint real passwords.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from pynomaly_operator import naming
from pynomaly_operator.builders import desired
from pynomaly_operator.specs.detector import AnomalyDetector

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "manifests" / "samples"


def _placeholder() -> str:
    return "rendered-placeholder-not-a-secret"


def render(body: dict[str, Any], *, namespace: str) -> list[dict[str, Any]]:
    """The children of one AnomalyDetector body, as the reconcile would apply them."""
    body = {**body, "metadata": {**body["metadata"], "namespace": namespace}}
    detector = AnomalyDetector.from_body(body)
    names = naming.names_for(body)
    plan = desired.desired(detector, names, {}, token=_placeholder, signing_key_value=_placeholder)
    objects = [*plan.secrets, *plan.objects]
    rendered = []
    for obj in objects:
        metadata = {**obj.get("metadata", {}), "namespace": namespace}
        rendered.append({**obj, "metadata": metadata})
    return rendered


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="directory for <sample>.yaml files")
    parser.add_argument("--namespace", default="pynomaly-samples", help="namespace to render in")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for path in sorted(SAMPLES.glob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        rendered = [
            obj
            for doc in docs
            if doc.get("kind") == "AnomalyDetector"
            for obj in render(doc, namespace=args.namespace)
        ]
        target = args.out / path.name
        target.write_text(yaml.safe_dump_all(rendered, sort_keys=False))
        print(f"{target}: {len(rendered)} objects")
    return 0


if __name__ == "__main__":
    sys.exit(main())

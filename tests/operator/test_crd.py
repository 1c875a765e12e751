"""The committed CRD is exactly what the models generate; the schema is structural."""

from __future__ import annotations

import pathlib
from typing import Any

from pynomaly_operator import crdgen

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_committed_crd_is_fresh() -> None:
    committed = (ROOT / "crds" / crdgen.CRD_FILE).read_text()
    assert committed == crdgen.render(), "crds/ is stale: run `make crds`"
    assert (ROOT / "crds" / crdgen.KUSTOMIZATION_FILE).read_text() == crdgen.KUSTOMIZATION


def _walk(node: Any, path: str = "") -> list[str]:
    problems = []
    if isinstance(node, dict):
        for bad in ("$ref", "anyOf", "allOf", "oneOf", "title", "$defs"):
            if bad in node:
                problems.append(f"{path}: {bad}")
        if "properties" in node and node.get("type") != "object":
            problems.append(f"{path}: properties without type object")
        for key, value in node.items():
            problems += _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            problems += _walk(value, f"{path}[{i}]")
    return problems


def test_schema_is_structural() -> None:
    schema = crdgen.openapi_schema()
    assert _walk(schema) == []
    spec = schema["properties"]["spec"]
    contamination = spec["properties"]["model"]["properties"]["contamination"]
    assert contamination["minimum"] == 0
    assert contamination["exclusiveMinimum"] is True
    assert contamination["maximum"] == 0.5
    rules = spec["properties"]["autoscaling"]["x-kubernetes-validations"]
    assert rules[0]["rule"] == "self.minReplicas <= self.maxReplicas"
    assert spec["default"]["autoscaling"]["minReplicas"] == 3


def test_markdown_reference_lists_fields() -> None:
    text = crdgen.markdown()
    assert "| `autoscaling.minReplicas` | integer (>= 1, <= 1000) | `3` |" in text
    assert "### `status`" in text

"""The CRD and the pydantic models agree on every field: type, default, bounds, enum, pattern.

The CRD is generated from the models, so a disagreement is a generator bug (a default made
by ``default_factory`` left out, a map's value type dropped): the API server would then store
a different default than the operator assumes, or admit what the operator refuses. This walks
every field of the spec and status models and checks the generated schema node against the
field's own declaration. The property test at the end asks the real API server.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterator
from typing import Any

import pydantic
import pydantic_core
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from pynomaly_operator import crdgen
from pynomaly_operator.specs import detector as specs

SCHEMA = crdgen.openapi_schema()
ROOTS = [
    (specs.AnomalyDetectorSpec, SCHEMA["properties"]["spec"], "spec"),
    (specs.AnomalyDetectorStatus, SCHEMA["properties"]["status"], "status"),
]
JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string"}


def _strip(annotation: Any) -> tuple[Any, list[Any]]:
    """(bare type, constraint metadata) with Optional and Annotated unwrapped."""
    metadata: list[Any] = []
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            args = typing.get_args(annotation)
            annotation = args[0]
            for meta in args[1:]:
                metadata.extend(meta.metadata if isinstance(meta, FieldInfo) else [meta])
        elif origin in (typing.Union, types.UnionType):
            options = [a for a in typing.get_args(annotation) if a is not type(None)]
            assert len(options) == 1, annotation
            annotation = options[0]
        else:
            return annotation, metadata


def _constraints(metadata: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for meta in metadata:
        for attr in ("ge", "gt", "le", "lt", "min_length", "max_length", "pattern"):
            value = getattr(meta, attr, None)
            if value is not None:
                out[attr] = value
    return out


def _json_default(field: FieldInfo) -> Any:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]  # no factory takes data here
    elif field.default is PydanticUndefined:
        return PydanticUndefined
    else:
        value = field.default
    return pydantic_core.to_jsonable_python(value, by_alias=True, exclude_none=True)


def _check_value(where: str, bare: Any, metadata: list[Any], node: dict[str, Any]) -> None:
    """The schema ``node`` of one value matches its Python type and constraints."""
    origin = typing.get_origin(bare)
    if origin is typing.Literal:
        assert node.get("type") == "string", where
        assert node.get("enum") == list(typing.get_args(bare)), where
    elif isinstance(bare, type) and issubclass(bare, pydantic.BaseModel):
        assert node.get("type") == "object", where
        assert "properties" in node, where
    elif origin is list:
        assert node.get("type") == "array", where
        item, item_meta = _strip(typing.get_args(bare)[0])
        _check_value(f"{where}[]", item, item_meta, node["items"])
    elif origin is dict:
        assert node.get("type") == "object", where
        value_type, value_meta = _strip(typing.get_args(bare)[1])
        if value_type is Any:
            assert node.get("x-kubernetes-preserve-unknown-fields") is True, where
        else:
            assert "additionalProperties" in node, f"{where}: map values have no type"
            _check_value(f"{where}{{}}", value_type, value_meta, node["additionalProperties"])
    elif bare is Any:
        return
    else:
        assert node.get("type") == JSON_TYPES[bare], (where, node.get("type"), bare)
    limits = _constraints(metadata)
    for attr, (key, exclusive) in {
        "ge": ("minimum", False),
        "gt": ("minimum", True),
        "le": ("maximum", False),
        "lt": ("maximum", True),
    }.items():
        if attr in limits:
            assert node.get(key) == limits[attr], (where, attr)
            assert bool(node.get(f"exclusive{key.title()}")) is exclusive, (where, attr)
    sized = {"string": "Length", "array": "Items", "object": "Properties"}.get(node.get("type", ""))
    for attr, key in (("min_length", "min"), ("max_length", "max")):
        if attr in limits:
            assert node.get(f"{key}{sized}") == limits[attr], (where, attr)
    if "pattern" in limits:
        assert node.get("pattern") == limits["pattern"], where


def _fields(
    model: type[pydantic.BaseModel], node: dict[str, Any], path: str
) -> Iterator[tuple[str, FieldInfo, dict[str, Any], dict[str, Any]]]:
    properties = node["properties"]
    names = {field.alias or name for name, field in model.model_fields.items()}
    assert set(properties) == names, (path, set(properties) ^ names)
    for name, field in model.model_fields.items():
        key = field.alias or name
        prop = properties[key]
        yield f"{path}.{key}", field, prop, node
        bare, _ = _strip(field.annotation)
        if isinstance(bare, type) and issubclass(bare, pydantic.BaseModel):
            yield from _fields(bare, prop, f"{path}.{key}")


def every_field() -> list[tuple[str, FieldInfo, dict[str, Any], dict[str, Any]]]:
    return [row for model, node, path in ROOTS for row in _fields(model, node, path)]


FIELDS = every_field()


@pytest.mark.parametrize(("where", "field", "prop", "parent"), FIELDS, ids=[f[0] for f in FIELDS])
def test_every_field_agrees(
    where: str, field: FieldInfo, prop: dict[str, Any], parent: dict[str, Any]
) -> None:
    bare, metadata = _strip(field.annotation)
    _check_value(where, bare, [*metadata, *field.metadata], prop)
    default = _json_default(field)
    key = where.rsplit(".", 1)[-1]
    if default is PydanticUndefined:
        assert key in parent.get("required", []), f"{where}: required in the model only"
        assert "default" not in prop, where
    elif default is None:
        assert "default" not in prop, where
    else:
        assert prop.get("default") == default, (where, prop.get("default"), default)
    assert prop.get("description"), f"{where} has no description"


def test_the_walk_covers_the_whole_schema() -> None:
    assert len(FIELDS) > 150


# --- what the API server admits, the operator parses ------------------------------------------


def _strategy(node: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values for one schema node, some of them outside its bounds (the server decides)."""
    if "enum" in node:
        return st.sampled_from([*node["enum"], "NotInTheEnum"])
    kind = node.get("type")
    if kind == "object" and "properties" in node:
        if depth > 4:
            return st.just({})
        return st.fixed_dictionaries(
            {},
            optional={k: _strategy(v, depth + 1) for k, v in node["properties"].items()},
        )
    if kind == "object":
        values = node.get("additionalProperties") or {"type": "string"}
        return st.dictionaries(
            st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True),
            _strategy(values, depth + 1),
            max_size=2,
        )
    if kind == "array":
        return st.lists(_strategy(node["items"], depth + 1), max_size=2)
    if kind == "integer":
        low, high = node.get("minimum", -5), node.get("maximum", 10_000)
        return st.integers(int(low) - 1, int(high) + 1)
    if kind == "number":
        low, high = node.get("minimum", -1.0), node.get("maximum", 1000.0)
        return st.floats(float(low) - 0.5, float(high) + 0.5, allow_nan=False)
    if kind == "boolean":
        return st.booleans()
    if "pattern" in node:
        return st.one_of(
            st.from_regex(node["pattern"], fullmatch=True).filter(
                lambda s: len(s) <= node.get("maxLength", 64)
            ),
            st.text(max_size=8),
        )
    return st.text(min_size=node.get("minLength", 0), max_size=12)


@pytest.mark.cluster
@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(spec=_strategy(SCHEMA["properties"]["spec"]))
def test_whatever_the_api_server_admits_the_operator_parses(kube: Any, spec: Any) -> None:
    body = kube.detector("prop", spec)
    result = kube.run(
        "create", "--dry-run=server", "-o", "json", "-f", "-", check=False, input=json.dumps(body)
    )
    if result.returncode != 0:
        return  # refused with a message: nothing reaches the operator
    stored = json.loads(result.stdout)
    specs.AnomalyDetector.from_body(stored)  # raises if the operator would refuse it

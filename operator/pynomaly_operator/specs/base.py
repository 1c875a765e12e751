"""The base class of every CRD model: camelCase on the wire, snake_case in Python.

The same models parse custom resources in the operator and generate the CRD schema
(``pynomaly_operator.crdgen``), so one definition decides names, defaults and ranges.
Every field needs a ``description``: it becomes the CRD's and the README's documentation.
Cross-field rules go into ``model_config["json_schema_extra"]`` as
``{"x-kubernetes-validations": [{"rule": ..., "message": ...}]}`` (use ``cel()``).
"""

from __future__ import annotations

from typing import Any

import pydantic
from pydantic.alias_generators import to_camel


class SpecModel(pydantic.BaseModel):
    """Base of the CRD models (frozen: builders must never mutate their input)."""

    model_config = pydantic.ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        extra="ignore",
        allow_inf_nan=False,
    )


def cel(*rules: tuple[str, str]) -> dict[str, Any]:
    """``json_schema_extra`` carrying CEL rules: ``cel((rule, message), ...)``."""
    return {"x-kubernetes-validations": [{"rule": r, "message": m} for r, m in rules]}

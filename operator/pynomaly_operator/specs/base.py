"""The base class of every CRD model: camelCase on the wire, snake_case in Python.

The same models parse custom resources in the operator and generate the CRD schema
(``pynomaly_operator.crdgen``), so one definition decides names, defaults and ranges.
Every field needs a ``description``: it becomes the CRD's and the README's documentation.
Cross-field rules go into ``model_config["json_schema_extra"]`` as
``{"x-kubernetes-validations": [{"rule": ..., "message": ...}]}`` (use ``cel()``).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any

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


# A Kubernetes quantity (CPU, memory, volume size) in the notation the operator writes and
# compares: a decimal number with an optional SI or binary suffix. One grammar for every
# quantity field, so the CRD, the models and ``quantity()`` agree.
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
Quantity = Annotated[str, pydantic.Field(pattern=QUANTITY_PATTERN, max_length=32)]

_QUANTITY = re.compile(QUANTITY_PATTERN)
_SUFFIX = {
    "m": Decimal("0.001"),
    "": Decimal(1),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}


def quantity(text: str) -> Decimal | None:
    """A ``Quantity`` as a number (None if ``text`` is not in its grammar)."""
    text = text.strip()
    match = _QUANTITY.match(text)
    if match is None:
        return None
    suffix = match.group(2) or ""
    return Decimal(text[: len(text) - len(suffix)]) * _SUFFIX[suffix]


def cel(*rules: tuple[str, str]) -> dict[str, Any]:
    """``json_schema_extra`` carrying CEL rules: ``cel((rule, message), ...)``."""
    return {"x-kubernetes-validations": [{"rule": r, "message": m} for r, m in rules]}

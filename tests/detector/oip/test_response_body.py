"""The JSON infer response is serialised from pieces; it must be the response object's bytes."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson
import pytest

from pynomaly_detector.api import oip
from pynomaly_detector.scoring import tensors

SCORES = np.array([0.4312345678901234, 0.61, 0.5])
FLAGS = SCORES > 0.55
ARRAYS: dict[str, Any] = {
    "scores": SCORES,
    "is_anomaly": FLAGS,
    "p_values": np.array([0.25, 0.0099, 0.5]),
    "explanations": ["null", '[{"feature":"a","contribution":0.5}]', "null"],
}


def _object(
    name: str,
    version: int,
    threshold: float,
    wanted: list[tensors.Requested],
    header: dict[str, Any],
) -> bytes:
    # What ``_infer`` serialised before (and still does when an output is binary).
    response: dict[str, Any] = {
        "model_name": name,
        "model_version": str(version),
        "parameters": {"threshold": threshold},
        "outputs": [
            {
                "name": output.name,
                "shape": [len(SCORES)],
                "datatype": tensors.ALL_OUTPUTS[output.name],
                "data": ARRAYS[output.name],
            }
            for output in wanted
        ],
    }
    if "id" in header:
        response["id"] = header["id"]
    return orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY)


WANTED = [
    [tensors.Requested("scores", False), tensors.Requested("is_anomaly", False)],
    [tensors.Requested("is_anomaly", False), tensors.Requested("scores", False)],
    [tensors.Requested("scores", False)],
    [tensors.Requested(name, False) for name in tensors.ALL_OUTPUTS],
    [],
]
HEADERS: list[dict[str, Any]] = [
    {},
    {"id": "request-7"},
    {"id": 12},
    {"id": {"nested": ["x", 1.5, None]}},
    {"id": 'quote " and \\ and \u00e9'},
]


@pytest.mark.parametrize("wanted", WANTED)
@pytest.mark.parametrize("header", HEADERS)
@pytest.mark.parametrize(
    ("name", "version", "threshold"),
    [("payments", 1, 0.55), ("m.v-2_x", 31, 1e-300), ("name", 7, -0.0)],
)
def test_the_json_response_is_the_response_objects_bytes(
    wanted: list[tensors.Requested],
    header: dict[str, Any],
    name: str,
    version: int,
    threshold: float,
) -> None:
    model: Any = SimpleNamespace(meta=SimpleNamespace(version=version, threshold=threshold))
    built = oip._json_body(name, model, len(SCORES), wanted, ARRAYS, header)
    assert built == _object(name, version, threshold, wanted, header)
    # Once more, from the cached prefix of this model version.
    assert oip._json_body(name, model, len(SCORES), wanted, ARRAYS, header) == built

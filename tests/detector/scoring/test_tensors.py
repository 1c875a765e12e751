"""v2 tensor codecs: JSON data, raw bytes and column blocks become the model's float64 matrix."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from pynomaly_detector.scoring import rows, tensors


def _decode(header: dict[str, Any], binary: bytes = b"", *, n_features: int = 3) -> Any:
    return tensors.json_inputs(header, binary, n_features=n_features, max_rows=100)


def _input(shape: list[int], datatype: str = "FP64", **fields: Any) -> dict[str, Any]:
    return {"name": "input-0", "shape": shape, "datatype": datatype, **fields}


@pytest.mark.parametrize(
    "datatype",
    [
        "FP16",
        "FP32",
        "FP64",
        "INT8",
        "INT16",
        "INT32",
        "INT64",
        "UINT8",
        "UINT16",
        "UINT32",
        "UINT64",
        "BOOL",
    ],
)
def test_binary_inputs_of_every_datatype_decode_like_their_values(datatype: str) -> None:
    dtype = tensors.DTYPES[datatype]
    values = np.array([[0, 1, 1], [1, 0, 1]], dtype=dtype)
    header = {"inputs": [_input([2, 3], datatype, parameters={"binary_data_size": values.nbytes})]}
    decoded = _decode(header, values.astype(dtype.newbyteorder("<")).tobytes())
    assert decoded.dtype == np.float64
    np.testing.assert_array_equal(decoded, values.astype(np.float64))


def test_json_and_binary_inputs_mix_as_column_blocks() -> None:
    second = np.array([[2.5, 3.5], [4.5, 5.5]], dtype="<f4")
    header = {
        "inputs": [
            {"name": "a", "shape": [2], "datatype": "INT64", "data": [7, 8]},
            {
                "name": "b",
                "shape": [2, 2],
                "datatype": "FP32",
                "parameters": {"binary_data_size": second.nbytes},
            },
        ]
    }
    decoded = _decode(header, second.tobytes())
    np.testing.assert_array_equal(decoded, [[7, 2.5, 3.5], [8, 4.5, 5.5]])


def test_nested_json_data_is_row_major() -> None:
    header = {"inputs": [_input([2, 3], data=[[[1, 2, 3]], [[4, 5, 6]]])]}
    np.testing.assert_array_equal(_decode(header), [[1, 2, 3], [4, 5, 6]])


def test_one_dimensional_input_is_one_row() -> None:
    header = {"inputs": [_input([3], data=[1, 2, 3])]}
    assert _decode(header).shape == (1, 3)


BAD_BINARY: list[tuple[dict[str, Any], bytes, str]] = [
    (
        {"inputs": [_input([1, 3], parameters={"binary_data_size": 24})]},
        b"\0" * 16,
        "only 16 bytes",
    ),
    ({"inputs": [_input([1, 3], parameters={"binary_data_size": 16})]}, b"\0" * 16, "needs 24"),
    (
        {"inputs": [_input([1, 3], parameters={"binary_data_size": 24})]},
        b"\0" * 25,
        "1 bytes after",
    ),
    ({"inputs": [_input([1, 3], parameters={"binary_data_size": -1})]}, b"", "non-negative"),
    (
        {"inputs": [_input([1, 3], parameters={"binary_data_size": "24"})]},
        b"\0" * 24,
        "non-negative",
    ),
    ({"inputs": [_input([1, 3], parameters={"binary_data_size": True})]}, b"\0", "non-negative"),
    ({"inputs": [_input([1, 3], parameters="x")]}, b"", "'parameters'"),
    (
        {"inputs": [_input([1, 3], data=[0, 0, 0], parameters={"binary_data_size": 24})]},
        b"\0" * 24,
        "not both",
    ),
    ({"inputs": [_input([1, 3], "BOOL", parameters={"binary_data_size": 3})]}, b"\0\2\0", "0 or 1"),
    ({"inputs": [_input([1, 3], "BYTES", parameters={"binary_data_size": 3})]}, b"abc", "BYTES"),
    (
        {"inputs": [_input([1, 3], parameters={"binary_data_size": 24})]},
        np.array([0, np.nan, 0]).tobytes(),
        "NaN",
    ),
    ({"inputs": [_input([1, 3])]}, b"", "give 'data'"),
]


@pytest.mark.parametrize(("header", "binary", "message"), BAD_BINARY)
def test_bad_binary_inputs_say_what_is_wrong(
    header: dict[str, Any], binary: bytes, message: str
) -> None:
    with pytest.raises(tensors.TensorError, match=message):
        _decode(header, binary)


def test_column_blocks_must_have_equal_rows() -> None:
    header = {
        "inputs": [
            {"name": "a", "shape": [2], "datatype": "FP64", "data": [1, 2]},
            {"name": "b", "shape": [3, 2], "datatype": "FP64", "data": [0] * 6},
        ]
    }
    with pytest.raises(tensors.TensorError, match="same number of rows"):
        _decode(header)


def test_rows_beyond_the_limit_are_refused_before_decoding() -> None:
    header = {"inputs": [_input([101, 3], parameters={"binary_data_size": 101 * 24})]}
    with pytest.raises(rows.TooManyRowsError):
        _decode(header, b"")


def test_json_booleans_in_a_bool_tensor_and_numbers_elsewhere() -> None:
    header = {"inputs": [_input([1, 3], "BOOL", data=[True, False, True])]}
    np.testing.assert_array_equal(_decode(header), [[1, 0, 1]])
    with pytest.raises(tensors.TensorError, match="true/false"):
        _decode({"inputs": [_input([1, 3], "BOOL", data=[1, 0, 1])]})


def test_requested_outputs_binary_defaults_and_overrides() -> None:
    assert tensors.requested_outputs({}) == [
        tensors.Requested("scores", False),
        tensors.Requested("is_anomaly", False),
    ]
    header = {
        "parameters": {"binary_data_output": True},
        "outputs": [
            {"name": "is_anomaly", "parameters": {"binary_data": False}},
            {"name": "scores"},
        ],
    }
    assert tensors.requested_outputs(header) == [
        tensors.Requested("is_anomaly", False),
        tensors.Requested("scores", True),
    ]


def test_raw_outputs_are_little_endian_bytes() -> None:
    scores = np.array([0.25, -1.5])
    assert tensors.raw(scores) == scores.astype("<f8").tobytes()
    assert tensors.raw(scores > 0) == b"\x01\x00"


ONE_ROW_DECODED = [
    _input([1, 3], data=[0.5, -0.0, 1.7e308]),
    _input([1, 3], data=[[0.5, -1.25, 5e-324]]),
    _input([3], data=[0.1, 0.2, 0.3]),
    _input([1, 3], "FP32", data=[0.1, 0.2, 0.3]),
    _input([1, 3], "INT64", data=[1.5, 2.0, -3.0]),
]


@pytest.mark.parametrize("tensor", ONE_ROW_DECODED)
def test_the_one_row_path_decodes_as_the_general_path(tensor: dict[str, Any]) -> None:
    header = {"inputs": [tensor]}
    fast = tensors.one_row(header, 3)
    assert fast is not None
    general = _decode(header)
    assert fast.dtype == general.dtype == np.float64
    assert fast.shape == general.shape == (1, 3)
    assert fast.tobytes() == general.tobytes()


ONE_ROW_DECLINED = [
    {"inputs": [_input([1, 3], data=[1, 2, 3])]},  # ints: numpy types them otherwise
    {"inputs": [_input([1, 3], data=[1.0, True, 3.0])]},  # a boolean among numbers
    {"inputs": [_input([1, 3], data=[1.0, None, 3.0])]},
    {"inputs": [_input([1, 3], data=[1.0, 2.0, float("inf")])]},
    {"inputs": [_input([1, 3], "BOOL", data=[1.0, 2.0, 3.0])]},
    {"inputs": [_input([1, 3], "FP128", data=[1.0, 2.0, 3.0])]},
    {"inputs": [_input([1, 3], {}, data=[1.0, 2.0, 3.0])]},  # type: ignore[arg-type]
    {"inputs": [_input([True, 3], data=[1.0, 2.0, 3.0])]},  # true is not a dimension
    {"inputs": [_input([1, 4], data=[1.0, 2.0, 3.0, 4.0])]},  # another width
    {"inputs": [_input([2, 3], data=[1.0, 2.0, 3.0] * 2)]},  # two rows: the general path
    {"inputs": [_input([1, 3], data=[1.0, 2.0])]},  # too short for its shape
    {"inputs": [_input([1, 3], data=[[1.0], [2.0], [3.0]])]},
    {"inputs": [{**_input([1, 3], data=[1.0, 2.0, 3.0]), "parameters": {}}]},
    {"inputs": [_input([1, 3], data=[1.0, 2.0, 3.0])] * 2},  # column blocks
    {"inputs": _input([1, 3], data=[1.0, 2.0, 3.0])},  # not a list
    {"inputs": ["x"]},
    {},
]


@pytest.mark.parametrize("header", ONE_ROW_DECLINED)
def test_the_one_row_path_leaves_everything_else_to_the_general_path(
    header: dict[str, Any],
) -> None:
    # Declined requests are decoded, or refused with their message, by ``json_inputs``.
    assert tensors.one_row(header, 3) is None

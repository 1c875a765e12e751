"""Row validation with numpy: every bad input is a clear InvalidInputError."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from pynomaly_detector.detectors.errors import InvalidInputError
from pynomaly_detector.scoring import rows


def test_valid_rows_become_float64() -> None:
    values = rows.matrix([[1, 2], [3.5, 4]], n_features=2, max_rows=10)
    assert values.dtype == np.float64
    assert values.shape == (2, 2)


@pytest.mark.parametrize(
    ("instances", "message"),
    [
        ({"a": 1}, "list of rows"),
        ([], "empty"),
        ([[1, 2], [3]], "same length|equally long"),
        ([["1", 2]], "only numbers"),
        ([[True, 2]], "only numbers"),
        ([[None, 2]], "only numbers"),
        ([1, 2], "2-D"),
        ([[1, 2, 3]], "expects 2 features"),
        ([[float("nan"), 1]], "NaN"),
        ([[1, float("inf")]], "NaN or infinite"),
        ([[10**400, 1]], "only numbers"),
    ],
)
def test_bad_rows(instances: Any, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        rows.matrix(instances, n_features=2, max_rows=10)


def test_too_many_rows() -> None:
    with pytest.raises(rows.TooManyRowsError):
        rows.matrix([[1.0, 2.0]] * 11, n_features=2, max_rows=10)


def test_digests_identify_rows() -> None:
    values = np.array([[1.0, 2.0], [1.0, 2.0], [2.0, 1.0]])
    first, second, third = rows.digests(values)
    assert first == second != third
    assert len(first) == 16


def test_a_wrong_width_is_refused_before_any_value_is_copied() -> None:
    """A big request of the wrong width must not cost a matrix (and a flat copy) first."""
    import tracemalloc

    wide = [[0.5] * 50 for _ in range(20_000)]  # 1M values: ~8 MB flat, 8 MB as an array
    tracemalloc.start()
    try:
        with pytest.raises(InvalidInputError, match="expects 3 features"):
            rows.matrix(wide, n_features=3, max_rows=100_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, f"{peak} bytes allocated to refuse a wrong width"


def test_rows_wider_than_the_limit_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="at most 10 features"):
        rows.matrix([[1.0] * 11, [2.0] * 11], n_features=None, max_rows=10, max_features=10)


@pytest.mark.parametrize(
    "row",
    [
        [1, 2.5],
        [0.0, -0.0],
        [1e308, -1e-308],
        [],
        [[1], 2],
        ["1", 2],
        [True, 2],
        [None, 2],
        [float("nan"), 1],
        [1, float("-inf")],
        [10**400, 1],
        [1, 2, 3],
        list(range(rows.PYTHON_CHECK_VALUES + 1)),
    ],
    ids=repr,
)
@pytest.mark.parametrize(("n_features", "max_features"), [(None, None), (2, None), (None, 2)])
def test_one_row_is_validated_as_the_same_row_among_others(
    row: list[Any], n_features: int | None, max_features: int | None
) -> None:
    """A body of one row takes a shorter path: same matrix, same refusal, same message."""

    def outcome(instances: list[Any]) -> tuple[str, Any]:
        try:
            values = rows.matrix(
                instances, n_features=n_features, max_rows=10, max_features=max_features
            )
        except InvalidInputError as error:
            return type(error).__name__, str(error).replace("row 1 ", "row 0 ")
        return "ok", values[:1].tobytes() + repr(values[:1].shape).encode()

    assert outcome([row]) == outcome([row, row])


@pytest.mark.parametrize(
    "layout",
    ["c", "strided", "transposed", "fortran", "float32", "big-endian", "one-row"],
)
def test_row_keys_are_each_rows_float64_bytes_whatever_the_layout(layout: str) -> None:
    base = np.arange(32.0).reshape(4, 8) / 7
    values = {
        "c": base,
        "strided": base[:, ::2],
        "transposed": base.T,
        "fortran": np.asfortranarray(base),
        "float32": base.astype(np.float32),
        "big-endian": base.astype(">f8"),
        "one-row": base[1:2],
    }[layout]
    expected = [np.asarray(row, dtype="<f8").tobytes() for row in np.asarray(values, np.float64)]
    assert rows.row_bytes(values) == expected

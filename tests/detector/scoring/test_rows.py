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

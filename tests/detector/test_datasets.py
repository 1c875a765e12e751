"""CSV training data: chunks, float32 downcast, reservoir sampling, malformed input."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from pynomaly_detector import datasets
from pynomaly_detector.detectors.errors import InvalidInputError


def test_header_and_float32(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("a,b\n1.5,2\n3,4\n5,6\n")
    data = datasets.read_csv(path, max_rows=100)
    assert data.features == ["a", "b"]
    assert data.values.dtype == np.float32
    assert data.values.tolist() == [[1.5, 2.0], [3.0, 4.0], [5.0, 6.0]]
    assert data.provenance == {"rows_seen": 3, "sampled": False, "dtype": "float32"}


def test_headerless_and_out_of_float32_range_keeps_float64() -> None:
    data = datasets.read_csv(io.BytesIO(b"1e39,2\n3,4\n"), max_rows=100)
    assert data.features == ["f0", "f1"]
    assert data.values.dtype == np.float64


def test_reservoir_sampling_bounds_memory_and_records_it() -> None:
    body = "x,y\n" + "".join(f"{i},{i % 7}\n" for i in range(5000))
    data = datasets.read_csv(io.BytesIO(body.encode()), max_rows=300, chunk_rows=700)
    assert data.values.shape == (300, 2)
    assert data.rows_seen == 5000
    assert data.sampled
    firsts = data.values[:, 0]
    assert len(set(firsts.tolist())) == 300  # distinct rows, no duplicates
    assert firsts.max() > 2500  # rows from late chunks made it in


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty"),
        (b"a,b\n1,x\n", "not numeric"),
        (b"a,b\n1,\n2,3\n", "missing"),
        (b"a,b\n1,2\n", "at least 2"),
        (b'a,b\n1,2\n3,4,5,6\n"', "malformed"),
    ],
)
def test_malformed(body: bytes, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        datasets.read_csv(io.BytesIO(body), max_rows=100)


def test_a_csv_wider_than_the_limit_is_refused_from_its_first_line() -> None:
    """2 rows x 30,000 columns: refused before pandas parses anything."""
    line = ",".join(["1.5"] * 30_000)
    body = io.BytesIO(f"{line}\n{line}\n".encode())
    with pytest.raises(InvalidInputError, match="more than 10000 columns"):
        datasets.read_csv(body, max_rows=100)


def test_wide_rows_are_read_in_smaller_chunks() -> None:
    line = ",".join(["1.5"] * 5_000)
    body = io.BytesIO(("\n".join([line] * 900) + "\n").encode())
    data = datasets.read_csv(body, max_rows=1000)
    assert data.values.shape == (900, 5_000)

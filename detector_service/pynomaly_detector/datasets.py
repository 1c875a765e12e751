"""Training data from CSV, read in chunks so a file larger than memory still fits a model.

``read_source`` reads the declared model's training file or downloads its URL.
Chunks are parsed with pandas (``chunksize``), checked (numeric columns, no missing or
infinite values), stored as float32 when that loses nothing that matters (relative error
below 1e-6, else float64), and reservoir-sampled once more than ``max_rows`` rows were seen
(Algorithm R, vectorised per chunk), so memory is bounded by ``max_rows`` whatever the file
size. The sample and the rows seen are recorded in the model's metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from pynomaly_detector.detectors.errors import InvalidInputError

CHUNK_ROWS = 50_000
CHUNK_VALUES = 2_000_000
"""A chunk holds at most this many values (16 MB as float64), however wide the rows are."""
MAX_FEATURES = 10_000
"""Default widest row (columns) accepted; ``PYNOMALY_MODEL_MAX_FEATURES``."""


@dataclass(frozen=True, slots=True)
class TrainingData:
    """Rows to fit on and where they came from."""

    values: npt.NDArray[np.floating[Any]]
    features: list[str]
    rows_seen: int
    sampled: bool

    @property
    def provenance(self) -> dict[str, Any]:
        """What the model's metadata records about its training data."""
        return {
            "rows_seen": self.rows_seen,
            "sampled": self.sampled,
            "dtype": str(self.values.dtype),
        }


def _has_header(first_line: str) -> bool:
    fields = [field.strip() for field in first_line.split(",")]
    for field in fields:
        try:
            float(field)
        except ValueError:
            return True
    return False


def read_csv(
    source: str | Path | IO[bytes],
    *,
    max_rows: int,
    max_features: int = MAX_FEATURES,
    chunk_rows: int = CHUNK_ROWS,
    seed: int = 0,
) -> TrainingData:
    """Parse ``source`` (a path or a binary file object positioned at its start).

    The width is checked on the first line, before any matrix is built: more than
    ``max_features`` columns is an ``InvalidInputError``. Chunks hold at most
    ``CHUNK_VALUES`` values, so wide rows mean fewer rows per chunk, not more memory.
    """
    # Closed in the finally below when we opened it.
    handle: IO[bytes] = Path(source).open("rb") if isinstance(source, str | Path) else source  # noqa: SIM115
    try:
        # A line of max_features numbers fits in 64 bytes per value; longer is too wide anyway.
        first = handle.readline(max_features * 64 + 2).decode("utf-8", errors="replace")
        handle.seek(0)
        if not first.strip():
            raise InvalidInputError("the CSV is empty")
        width = first.count(",") + 1
        if width > max_features or (not first.endswith("\n") and len(first) > max_features * 64):
            raise InvalidInputError(
                f"the CSV has more than {max_features} columns"
                " (the limit is PYNOMALY_MODEL_MAX_FEATURES)"
            )
        header = 0 if _has_header(first) else None
        chunk_rows = max(1, min(chunk_rows, CHUNK_VALUES // width))
        return _read(handle, header=header, max_rows=max_rows, chunk_rows=chunk_rows, seed=seed)
    finally:
        if isinstance(source, str | Path):
            handle.close()


def _read(
    handle: IO[bytes], *, header: int | None, max_rows: int, chunk_rows: int, seed: int
) -> TrainingData:
    rng = np.random.default_rng(seed)
    reservoir: npt.NDArray[np.floating[Any]] | None = None
    filled = 0
    seen = 0
    features: list[str] = []
    try:
        reader = pd.read_csv(
            handle,
            header=header,
            chunksize=chunk_rows,
            skipinitialspace=True,
        )
        for chunk in reader:
            if not features:
                features = [str(column) for column in chunk.columns]
                if header is None:
                    features = [f"f{index}" for index in range(len(features))]
            bad = [
                str(column)
                for column in chunk.columns
                if not pd.api.types.is_numeric_dtype(chunk[column])
            ]
            if bad:
                raise InvalidInputError(f"CSV column(s) {', '.join(bad)} are not numeric")
            values = chunk.to_numpy(dtype=np.float64)
            if not np.isfinite(values).all():
                row = seen + int(np.flatnonzero(~np.isfinite(values).all(axis=1))[0])
                raise InvalidInputError(f"CSV data row {row} has a missing or infinite value")
            values = _downcast(values, reservoir)
            if reservoir is None:
                reservoir = np.empty((max_rows, values.shape[1]), dtype=values.dtype)
            elif reservoir.dtype != values.dtype:
                reservoir = reservoir.astype(np.float64)
                values = values.astype(np.float64)
            take = min(max_rows - filled, len(values))
            reservoir[filled : filled + take] = values[:take]
            filled += take
            rest = values[take:]
            if len(rest):
                # Algorithm R: row i (0-based, overall) replaces slot j ~ U[0, i] if j < max_rows.
                indices = np.arange(seen + take, seen + len(values))
                slots = rng.integers(0, indices + 1)
                keep = slots < max_rows
                reservoir[slots[keep]] = rest[keep]
            seen += len(values)
    except (
        pd.errors.ParserError,
        pd.errors.EmptyDataError,
        UnicodeDecodeError,
        ValueError,
    ) as error:
        if isinstance(error, InvalidInputError):
            raise
        raise InvalidInputError(f"malformed CSV: {error}") from None
    if reservoir is None or filled < 2:
        raise InvalidInputError("the CSV needs at least 2 data rows")
    return TrainingData(reservoir[:filled], features, seen, seen > max_rows)


def _downcast(
    values: npt.NDArray[np.float64], reservoir: npt.NDArray[np.floating[Any]] | None
) -> npt.NDArray[np.floating[Any]]:
    if reservoir is not None and reservoir.dtype == np.float64:
        return values
    with np.errstate(over="ignore"):  # out-of-range values become inf and fail the check
        narrow = values.astype(np.float32)
    if np.allclose(narrow, values, rtol=1e-6, atol=1e-30):
        return narrow
    return values


class NoTrainingSourceError(InvalidInputError):
    """A declared model has neither a training path nor a training URL."""


def read_source(
    *, path: str, url: str, max_rows: int, max_features: int = MAX_FEATURES
) -> TrainingData:
    """Training rows from a CSV file ``path``, else downloaded from the http(s) ``url``.

    Blocking (file and network I/O): callers run it in a thread. The download is spooled to
    an anonymous temporary file, so memory stays bounded by ``max_rows`` like a local file.
    """
    if path:
        return read_csv(path, max_rows=max_rows, max_features=max_features)
    if url:
        import tempfile
        import urllib.request

        if not url.startswith(("http://", "https://")):
            raise InvalidInputError("PYNOMALY_MODEL_TRAINING_URL must be http(s)")
        with tempfile.TemporaryFile() as spool:
            # Scheme checked above: only http(s) URLs are opened.
            with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310
                while block := response.read(1 << 20):
                    spool.write(block)
            spool.seek(0)
            return read_csv(spool, max_rows=max_rows, max_features=max_features)
    raise NoTrainingSourceError(
        "the declared model needs PYNOMALY_MODEL_TRAINING_PATH or PYNOMALY_MODEL_TRAINING_URL"
    )

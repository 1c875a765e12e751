"""Metadata of one stored model version and of anomaly log records."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """What the registry knows about one fitted version (the artifact is stored beside it)."""

    name: str
    version: int
    algorithm: str
    parameters: dict[str, Any]
    contamination: float
    features: list[str]
    n_samples: int
    threshold: float
    fitted_at: str
    content_hash: str
    """sha256 of the pickled artifact."""
    signature: str
    """HMAC-SHA256 of the artifact under the signing key (hex)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Training provenance: rows seen, whether they were sampled, source."""
    alert_rate: float | None = None
    """Set when the threshold was fitted from an alert rate (the calibration quantile) rather
    than from ``contamination``; ``None`` otherwise and for versions stored before it existed."""
    calibration_size: int | None = None
    """Scores in the artifact's calibration sample; ``None`` for versions without one."""

    @property
    def n_features(self) -> int:
        """Width of a row this model scores."""
        return len(self.features)

    def public(self) -> dict[str, Any]:
        """The JSON the API returns (no signature)."""
        body = asdict(self)
        body.pop("signature")
        body["n_features"] = self.n_features
        return body

    def to_json(self) -> dict[str, Any]:
        """Everything, for the store."""
        return asdict(self)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> ModelVersion:
        """Inverse of ``to_json``."""
        return cls(**body)


def now() -> str:
    """UTC now as ISO 8601 (the format of ``fitted_at``)."""
    return dt.datetime.now(dt.UTC).isoformat()


@dataclass(frozen=True, slots=True)
class AnomalyRecord:
    """One anomalous row seen by ``detect``."""

    model: str
    version: int
    score: float
    threshold: float
    row: list[float]
    detected_at: dt.datetime

    def public(self) -> dict[str, Any]:
        """The JSON the API returns."""
        body = asdict(self)
        body["detected_at"] = self.detected_at.isoformat()
        return body


NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"
"""Model names: lower-case DNS-label-like, safe as a file name and a Redis key part."""


def valid_name(name: str) -> bool:
    """Whether ``name`` matches ``NAME_PATTERN``."""
    import re

    return re.fullmatch(NAME_PATTERN, name) is not None and ".." not in name

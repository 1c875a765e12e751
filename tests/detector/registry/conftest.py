"""Store factories shared by the registry tests."""

from __future__ import annotations

import datetime as dt

from pynomaly_detector.registry.versions import AnomalyRecord, ModelVersion


def draft(name: str, *, payload: bytes = b"artifact") -> tuple[ModelVersion, bytes]:
    """A storable (metadata, artifact) pair; the artifact bytes are opaque to stores."""
    meta = ModelVersion(
        name=name,
        version=0,
        algorithm="ECOD",
        parameters={},
        contamination=0.1,
        features=["a", "b"],
        n_samples=10,
        threshold=1.0,
        fitted_at=dt.datetime.now(dt.UTC).isoformat(),
        content_hash="h",
        signature="s",
        extra={"rows_seen": 10},
    )
    return meta, payload


def record(name: str, score: float) -> AnomalyRecord:
    """An anomaly record of ``name``."""
    return AnomalyRecord(name, 1, score, 1.0, [1.0, 2.0], dt.datetime.now(dt.UTC))

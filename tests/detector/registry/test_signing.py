"""Artifacts are unpickled only after their HMAC verifies."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from pynomaly_detector.detectors import fitted
from pynomaly_detector.registry import signing
from pynomaly_detector.registry.versions import ModelVersion
from tests.detector.conftest import service, training_rows

KEY = b"k" * 32


def test_round_trip() -> None:
    detector = fitted.fit("ECOD", np.random.default_rng(0).normal(size=(50, 2)))
    artifact, signature, digest = signing.dump(KEY, detector)
    assert len(digest) == 64
    loaded = signing.load(KEY, artifact, signature)
    np.testing.assert_array_equal(loaded.score(np.zeros((1, 2))), detector.score(np.zeros((1, 2))))


class Boom:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (pytest.fail, ("a tampered artifact was unpickled",))


@pytest.mark.parametrize("key", [b"another-key-entirely", KEY])
def test_tampered_or_foreign_artifacts_are_never_unpickled(key: bytes) -> None:
    evil = pickle.dumps(Boom())
    signature = signing.sign(b"another-key-entirely", evil) if key != KEY else "00" * 32
    with pytest.raises(signing.ArtifactRejectedError, match="signature"):
        signing.load(KEY, evil, signature, name="evil")


def test_signed_but_not_a_detector_is_refused() -> None:
    artifact = pickle.dumps({"not": "a detector"})
    with pytest.raises(signing.ArtifactRejectedError, match="not a fitted detector"):
        signing.load(KEY, artifact, signing.sign(KEY, artifact))


async def test_changed_metadata_is_refused_like_a_changed_artifact(tmp_path: Path) -> None:
    """Whoever can write the store cannot move a model's threshold or features either."""
    async with service(tmp_path) as client:
        fitted_meta = await client.put(
            "/v1/models/m", json={"algorithm": "ECOD", "instances": training_rows(d=2)}
        )
        assert fitted_meta.status_code == 201
    stored = tmp_path / "models" / "m" / "v1.json"
    body = json.loads(stored.read_text())
    assert body["signature"].startswith("v2:")
    body["threshold"] = 1e9  # nothing would ever be flagged again
    stored.write_text(json.dumps(body))
    async with service(tmp_path) as client:
        scored = await client.post("/v1/models/m/detect", json={"instances": [[0, 0]]})
        assert scored.status_code == 503
        assert scored.json()["error"] == "artifact_rejected"


def test_artifact_only_signatures_from_before_still_verify() -> None:
    detector = fitted.fit("ECOD", np.random.default_rng(0).normal(size=(50, 2)))
    artifact, signature, _ = signing.dump(KEY, detector)
    meta = ModelVersion(
        name="old", version=1, algorithm="ECOD", parameters={}, contamination=0.1,
        features=["a", "b"], n_samples=50, threshold=detector.threshold, fitted_at="",
        content_hash=signing.content_hash(artifact), signature=signature,
    )  # fmt: skip
    assert isinstance(signing.load(KEY, artifact, signature, meta=meta), type(detector))

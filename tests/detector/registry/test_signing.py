"""Artifacts are unpickled only after their HMAC verifies."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from pynomaly_detector.detectors import fitted
from pynomaly_detector.registry import signing

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

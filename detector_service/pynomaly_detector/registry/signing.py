"""Artifacts are pickles, so they are HMAC-signed and never unpickled unless verified.

Whoever can write the store cannot make a replica execute code without the signing key.
"""

from __future__ import annotations

import hashlib
import hmac
import pickle

from pynomaly_detector.detectors.fitted import FittedDetector


class ArtifactRejectedError(Exception):
    """A stored artifact whose signature does not verify; it was not unpickled."""


def sign(key: bytes, artifact: bytes) -> str:
    """HMAC-SHA256 of ``artifact`` (hex)."""
    return hmac.new(key, artifact, hashlib.sha256).hexdigest()


def content_hash(artifact: bytes) -> str:
    """sha256 of ``artifact`` (hex)."""
    return hashlib.sha256(artifact).hexdigest()


def dump(key: bytes, detector: FittedDetector) -> tuple[bytes, str, str]:
    """Pickle ``detector``: ``(artifact, signature, content hash)``."""
    artifact = pickle.dumps(detector, protocol=pickle.HIGHEST_PROTOCOL)
    return artifact, sign(key, artifact), content_hash(artifact)


def load(key: bytes, artifact: bytes, signature: str, *, name: str = "") -> FittedDetector:
    """Verify, then unpickle; ``ArtifactRejectedError`` when verification fails."""
    if not hmac.compare_digest(sign(key, artifact), signature):
        msg = f"artifact of model {name!r} failed signature verification; refusing to load it"
        raise ArtifactRejectedError(msg)
    # Verified with our key above: only artifacts this service signed are unpickled.
    detector = pickle.loads(artifact)  # noqa: S301
    if not isinstance(detector, FittedDetector):
        raise ArtifactRejectedError(f"artifact of model {name!r} is not a fitted detector")
    return detector

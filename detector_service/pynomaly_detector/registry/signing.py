"""Artifacts are pickles, so they are HMAC-signed and never unpickled unless verified.

Whoever can write the store cannot make a replica execute code without the signing key.
A version's signature (``seal``, prefixed ``v2:``) covers its metadata too — name,
algorithm, parameters, contamination, features, row count, threshold and the artifact's
hash — so a changed threshold or feature list is refused like a changed artifact. (The
version number is assigned by the store after signing and is not covered.) Signatures
from before (artifact only, no prefix) still verify, with a warning, so stored models keep
serving after an upgrade; refitting a model gives it a v2 signature.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import pickle

from pynomaly_detector.detectors.fitted import FittedDetector
from pynomaly_detector.registry.versions import ModelVersion

log = logging.getLogger(__name__)

SEALED = "v2:"
"""Prefix of signatures that cover the metadata as well as the artifact."""


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


def seal(key: bytes, meta: ModelVersion, artifact: bytes) -> str:
    """The signature of a version: HMAC-SHA256 over its metadata and its artifact."""
    covered = {
        "name": meta.name,
        "algorithm": meta.algorithm,
        "parameters": meta.parameters,
        "contamination": meta.contamination,
        "features": meta.features,
        "n_samples": meta.n_samples,
        "threshold": meta.threshold,
        "content_hash": content_hash(artifact),
    }
    message = json.dumps(covered, sort_keys=True, separators=(",", ":")).encode()
    return SEALED + hmac.new(key, message, hashlib.sha256).hexdigest()


def load(
    key: bytes,
    artifact: bytes,
    signature: str,
    *,
    name: str = "",
    meta: ModelVersion | None = None,
) -> FittedDetector:
    """Verify, then unpickle; ``ArtifactRejectedError`` when verification fails.

    A sealed signature (``v2:``) is checked against ``meta`` (required) and the artifact.
    """
    if signature.startswith(SEALED):
        valid = meta is not None and hmac.compare_digest(seal(key, meta, artifact), signature)
    else:
        valid = hmac.compare_digest(sign(key, artifact), signature)
        if valid and meta is not None:
            log.warning(
                "model %s v%d has an artifact-only signature (stored before metadata was "
                "signed); refit it to sign its metadata too",
                meta.name,
                meta.version,
            )
    if not valid:
        msg = f"model {name!r} failed signature verification; refusing to load it"
        raise ArtifactRejectedError(msg)
    # Verified with our key above: only artifacts this service signed are unpickled.
    detector = pickle.loads(artifact)  # noqa: S301
    if not isinstance(detector, FittedDetector):
        raise ArtifactRejectedError(f"artifact of model {name!r} is not a fitted detector")
    return detector

"""Bearer-token authentication: who may change models, and (optionally) who may score.

Tokens come from ``api_token_file`` (the operator mounts Secret ``<name>-api-token`` there):
one per line, blank lines and ``#`` comments ignored, several at once so a token can be
rotated without downtime (add the new one, move clients, remove the old one). Kubernetes
updates a mounted Secret in place (it swaps a symlink), so the file is checked at most once a
second and re-read when its identity, size or modification time changed; a failed re-read
keeps the tokens read last. Presented tokens are compared in constant time with every known
token (SHA-256 digests, so lengths leak nothing either).

What needs a token (``needs_token``, checked by the edge layer, ``api.middleware.Edge``):

- model management, always: every method other than GET/HEAD/OPTIONS under ``/v1`` and
  ``/v2`` except scoring (PUT and DELETE of models, any future write), and the anomaly log;
- scoring and model reads (detect, infer, list, describe, v2 metadata) only with
  ``scoring_auth=token``;
- never: probes, ``/metrics``, the OpenAPI document, CORS preflights.

Without a token file the service runs in development mode: nothing is checked (as before
authentication existed) and the start-up log says so.
"""

from __future__ import annotations

import logging

import orjson

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset(
    {"/livez", "/readyz", "/metrics", "/v2/health/live", "/v2/health/ready", "/openapi.json"}
)
"""Never authenticated: probes, scrapes and the API description."""


def bearer(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The presented bearer token: ``None`` without ``Authorization``, ``b""`` if malformed."""
    for key, value in headers:
        if key == b"authorization":
            scheme, _, token = value.strip().partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                return token.strip()
            return b""
    return None


def needs_token(method: str, path: str, *, scoring: bool) -> bool:
    """Whether a request must carry a token (``scoring``: scoring and reads are protected)."""
    if path in OPEN_PATHS or method == "OPTIONS":
        return False
    if path.endswith("/anomalies"):
        return True
    if method in ("GET", "HEAD"):
        return scoring
    if method == "POST" and path.endswith(("/detect", "/infer")):
        return scoring
    return True


def refusal(presented: bytes | None) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The 401 response (headers, body) for a missing (``None``) or invalid token."""
    if presented is None:
        challenge = b'Bearer realm="pynomaly"'
        detail = "this request needs 'Authorization: Bearer <token>'"
    else:
        challenge = b'Bearer realm="pynomaly", error="invalid_token"'
        detail = "the bearer token is not valid"
    payload = orjson.dumps({"error": "unauthorized", "detail": detail})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"www-authenticate", challenge),
    ]
    return headers, payload

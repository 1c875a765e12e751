"""API bearer tokens from ``PYNOMALY_API_TOKEN_FILE``, compared in constant time; no HTTP here.

Tokens come from ``api_token_file`` (the operator mounts Secret ``<name>-api-token`` so the
file is ``/etc/pynomaly/api-token/token``): one per line, blank lines and ``#`` comments
ignored, several at once so a token can be rotated without downtime (add the new one, move
clients, remove the old one). Kubernetes updates a mounted Secret in place (it swaps a
symlink), so the file is checked at most once a second and re-read when its identity, size or
modification time changed; a failed re-read keeps the tokens read last. Presented tokens are
compared in constant time with every known token (SHA-256 digests, so lengths leak nothing
either). Every transport uses this one class: REST through ``api.middleware.Edge``, gRPC
through ``TokenFile.allows`` on the ``authorization`` metadata.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

RECHECK_SECONDS = 1.0
"""How often the token file's identity is checked for a change."""


class TokenFileError(RuntimeError):
    """The configured token file cannot be read at start."""


def parse_tokens(text: str) -> list[str]:
    """The tokens in a token file's text (one per line; blanks and ``#`` comments skipped)."""
    tokens = []
    for line in text.splitlines():
        token = line.strip()
        if token and not token.startswith("#"):
            tokens.append(token)
    return tokens


def _digest(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


class TokenFile:
    """The accepted tokens, re-read when the file changes."""

    def __init__(self, path: str | Path, *, recheck_seconds: float = RECHECK_SECONDS) -> None:
        self.path = Path(path)
        self.recheck_seconds = recheck_seconds
        self._identity: tuple[int, int, int, int] | None = None
        self._digests: tuple[bytes, ...] = ()
        self._checked = 0.0
        self._lock = threading.Lock()
        try:
            self._reload(self._stat())
        except OSError as error:
            raise TokenFileError(
                f"cannot read PYNOMALY_API_TOKEN_FILE {self.path}: {error}"
            ) from None

    def _stat(self) -> tuple[int, int, int, int]:
        info = os.stat(self.path)  # follows the Secret volume's symlinks
        return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)

    def _reload(self, identity: tuple[int, int, int, int]) -> None:
        tokens = parse_tokens(self.path.read_text(encoding="utf-8", errors="replace"))
        self._digests = tuple(_digest(token.encode()) for token in tokens)
        self._identity = identity
        if tokens:
            log.info("read %d API token(s) from %s", len(tokens), self.path)
        else:
            log.error("%s holds no token: every protected request is refused", self.path)

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < self.recheck_seconds:
            return
        with self._lock:
            if now - self._checked < self.recheck_seconds:
                return
            self._checked = now
            try:
                identity = self._stat()
                if identity != self._identity:
                    self._reload(identity)
            except OSError as error:  # mid-swap or removed: keep the tokens read last
                log.warning("cannot re-read %s, keeping the previous tokens: %s", self.path, error)

    @property
    def count(self) -> int:
        """How many tokens are accepted now."""
        self._refresh()
        return len(self._digests)

    def accepts(self, presented: bytes) -> bool:
        """Whether ``presented`` is one of the tokens (constant time in the token values)."""
        self._refresh()
        digest = _digest(presented)
        matched = False
        for known in self._digests:
            matched |= hmac.compare_digest(digest, known)
        return matched

    def allows(self, authorization: str | bytes | None) -> bool:
        """Whether an ``Authorization`` value (header or gRPC metadata) is ``Bearer <token>``."""
        if authorization is None:
            return False
        value = authorization.encode() if isinstance(authorization, str) else authorization
        scheme, _, presented = value.strip().partition(b" ")
        presented = presented.strip()
        return scheme.lower() == b"bearer" and bool(presented) and self.accepts(presented)

"""API bearer tokens from ``PYNOMALY_API_TOKEN_FILE``, compared in constant time; no HTTP here.

The file holds one or more tokens, one per line (blank lines and lines starting with ``#`` are
ignored), so a rotation adds the new token before it removes the old one. The operator mounts
Secret ``<name>-api-token`` so the file is ``/etc/pynomaly/api-token/token``; the kubelet
updates a mounted Secret in place, so the file is read again when its modification time
changes (looked at no more than once a second). Any transport (REST, gRPC) asks
``Tokens.allows(authorization)`` with the value of its ``Authorization`` header or metadata.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)


class TokenFileError(RuntimeError):
    """The token file cannot be read or holds no token (the service does not start)."""


def parse(text: str) -> tuple[bytes, ...]:
    """The tokens in a token file's text."""
    lines = (line.strip() for line in text.splitlines())
    return tuple(line.encode() for line in lines if line and not line.startswith("#"))


class Tokens:
    """The accepted bearer tokens, re-read when the file changes."""

    def __init__(self, path: str | os.PathLike[str], *, recheck_seconds: float = 1.0) -> None:
        self.path = Path(path)
        self.recheck_seconds = recheck_seconds
        self._mtime = -1
        self._checked = 0.0
        self._tokens: tuple[bytes, ...] = ()
        if not self._reload():
            raise TokenFileError(f"cannot read the API token file {self.path}")
        if not self._tokens:
            raise TokenFileError(f"the API token file {self.path} holds no token")

    def _reload(self) -> bool:
        try:
            mtime = self.path.stat().st_mtime_ns
            if mtime != self._mtime:
                tokens = parse(self.path.read_text())
                if tokens or not self._tokens:
                    self._tokens = tokens
                else:  # an emptied file mid-rotation: keep accepting the last known tokens
                    log.warning(
                        "API token file %s holds no token; keeping the previous ones", self.path
                    )
                self._mtime = mtime
        except OSError as error:
            log.warning("cannot read the API token file %s: %s", self.path, error)
            return False
        return True

    def allows(self, authorization: str | bytes | None) -> bool:
        """Whether ``authorization`` is ``Bearer <one of the tokens>``."""
        now = time.monotonic()
        if now - self._checked >= self.recheck_seconds:
            self._checked = now
            self._reload()
        if authorization is None:
            return False
        value = authorization.encode() if isinstance(authorization, str) else authorization
        scheme, _, presented = value.strip().partition(b" ")
        if scheme.lower() != b"bearer" or not presented:
            return False
        presented = presented.strip()
        # Compare with every token, no early exit: the time taken says nothing about which
        # token (or which prefix) came close.
        matched = False
        for token in self._tokens:
            matched |= hmac.compare_digest(presented, token)
        return matched

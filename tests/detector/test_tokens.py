"""Bearer tokens from a file: several for rotation, comments ignored, re-read when changed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pynomaly_detector.tokens import TokenFileError, Tokens


def test_tokens_rotate_and_reload(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("# comment\n\nfirst-token\n  second-token  \n")
    tokens = Tokens(path, recheck_seconds=0)
    assert tokens.allows("Bearer first-token")
    assert tokens.allows(b"bearer second-token")
    assert not tokens.allows("Bearer # comment")
    assert not tokens.allows("Bearer first")
    assert not tokens.allows("Basic first-token")
    assert not tokens.allows(None)
    assert not tokens.allows("Bearer ")

    path.write_text("third-token\n")
    os.utime(path, ns=(1, 10**18))  # a new modification time, as the kubelet's swap gives
    assert tokens.allows("Bearer third-token")
    assert not tokens.allows("Bearer first-token")

    path.write_text("# emptied mid-rotation\n")
    os.utime(path, ns=(1, 2 * 10**18))
    assert tokens.allows("Bearer third-token")  # the last known tokens stay accepted


def test_missing_or_empty_token_file_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(TokenFileError, match="cannot read"):
        Tokens(tmp_path / "absent")
    (tmp_path / "empty").write_text("# nothing\n")
    with pytest.raises(TokenFileError, match="no token"):
        Tokens(tmp_path / "empty")

"""Bearer-token authentication: model management needs a token, scoring optionally, probes
never; tokens rotate through the file the way Kubernetes updates a mounted Secret."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pydantic
import pytest

from pynomaly_detector.api.app import create_app
from pynomaly_detector.api.auth import needs_token
from pynomaly_detector.settings import Settings
from pynomaly_detector.tokens import TokenFile, TokenFileError, parse_tokens
from tests.detector.conftest import service, serving, settings_for, training_rows

pytestmark = pytest.mark.http

FIT = {"algorithm": "ECOD", "instances": training_rows(60, d=2)}


def _secret_volume(root: Path, text: str, version: int = 1) -> Path:
    """A directory laid out like a mounted Secret: token -> ..data/token, ..data -> ..vN."""
    root.mkdir(parents=True, exist_ok=True)
    payload = root / f"..v{version}"
    payload.mkdir()
    (payload / "token").write_text(text)
    staged = root / "..data_tmp"
    staged.symlink_to(payload.name)
    os.replace(staged, root / "..data")  # the kubelet's atomic swap
    link = root / "token"
    if not link.is_symlink():
        link.symlink_to("..data/token")
    return link


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_model_management_needs_a_token_and_scoring_stays_open(tmp_path: Path) -> None:
    token_file = _secret_volume(
        tmp_path / "secret", "# rotation: old and new\nold-token\n\nnew-token\n"
    )
    async with service(tmp_path, api_token_file=str(token_file)) as client:
        missing = await client.put("/v1/models/m", json=FIT)
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == 'Bearer realm="pynomaly"'
        assert missing.json()["error"] == "unauthorized"
        wrong = await client.put("/v1/models/m", json=FIT, headers=_bearer("guess"))
        assert wrong.status_code == 401
        assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
        basic = await client.put("/v1/models/m", json=FIT, headers={"authorization": "Basic eA=="})
        assert basic.status_code == 401
        assert not (tmp_path / "models" / "m").exists()

        assert (
            await client.put("/v1/models/m", json=FIT, headers=_bearer("old-token"))
        ).status_code == 201
        assert (
            await client.put("/v1/models/m", json=FIT, headers=_bearer("new-token"))
        ).status_code == 201

        scored = await client.post("/v1/models/m/detect", json={"instances": [[0.0, 0.0]]})
        assert scored.status_code == 200
        assert (await client.get("/v1/models")).status_code == 200
        assert (await client.get("/v1/models/m")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200
        assert (await client.get("/openapi.json")).status_code == 200

        assert (await client.get("/v1/models/m/anomalies")).status_code == 401
        assert (
            await client.get("/v1/models/m/anomalies", headers=_bearer("new-token"))
        ).status_code == 200
        assert (await client.delete("/v1/models/m")).status_code == 401
        assert (await client.get("/v1/models/m")).status_code == 200  # still there
        assert (
            await client.delete("/v1/models/m", headers=_bearer("old-token"))
        ).status_code == 200


async def test_rotated_secret_is_picked_up_without_a_restart(tmp_path: Path) -> None:
    root = tmp_path / "secret"
    token_file = _secret_volume(root, "first\n")
    tokens = TokenFile(token_file, recheck_seconds=0)
    assert tokens.accepts(b"first")
    _secret_volume(root, "second\nthird\n", version=2)
    assert not tokens.accepts(b"first")
    assert tokens.accepts(b"second")
    assert tokens.accepts(b"third")
    assert tokens.count == 2
    (root / "..data").unlink()  # mid-swap: the file is gone for a moment
    assert tokens.accepts(b"second")  # the last tokens read still count


async def test_scoring_can_require_the_token_too(tmp_path: Path) -> None:
    token_file = _secret_volume(tmp_path / "secret", "s3cret\n")
    options = {"api_token_file": str(token_file), "scoring_auth": "token"}
    async with service(tmp_path, **options) as client:
        assert (
            await client.put("/v1/models/m", json=FIT, headers=_bearer("s3cret"))
        ).status_code == 201
        body = {"instances": [[0.0, 0.0]]}
        assert (await client.post("/v1/models/m/detect", json=body)).status_code == 401
        assert (await client.get("/v1/models")).status_code == 401
        infer = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [0, 0]}]}
        assert (await client.post("/v2/models/m/infer", json=infer)).status_code == 401
        assert (
            await client.post("/v1/models/m/detect", json=body, headers=_bearer("s3cret"))
        ).status_code == 200
        assert (
            await client.post("/v2/models/m/infer", json=infer, headers=_bearer("s3cret"))
        ).status_code == 200
        assert (await client.get("/v2/health/ready")).status_code == 200
        assert (await client.get("/livez")).status_code == 200


async def test_development_mode_is_open_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        async with service(tmp_path) as client:
            assert (await client.put("/v1/models/m", json=FIT)).status_code == 201
            assert (await client.delete("/v1/models/m")).status_code == 200
    assert any("development mode" in record.getMessage() for record in caplog.records)


async def test_an_unreadable_token_file_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(TokenFileError, match="PYNOMALY_API_TOKEN_FILE"):
        create_app(settings_for(tmp_path, api_token_file=str(tmp_path / "missing")))


async def test_an_empty_token_file_refuses_every_protected_request(tmp_path: Path) -> None:
    token_file = _secret_volume(tmp_path / "secret", "# no token yet\n")
    app = create_app(settings_for(tmp_path, api_token_file=str(token_file)))
    async with serving(app) as client:
        assert (await client.put("/v1/models/m", json=FIT, headers=_bearer(""))).status_code == 401
        assert (await client.put("/v1/models/m", json=FIT, headers=_bearer("x"))).status_code == 401


def test_scoring_auth_needs_a_token_file() -> None:
    with pytest.raises(pydantic.ValidationError, match="PYNOMALY_API_TOKEN_FILE"):
        Settings(scoring_auth="token")


def test_what_needs_a_token() -> None:
    assert needs_token("PUT", "/v1/models/m", scoring=False)
    assert needs_token("DELETE", "/v1/models/m", scoring=False)
    assert needs_token("POST", "/v1/models/m/retrain", scoring=False)  # any future write
    assert needs_token("GET", "/v1/models/m/anomalies", scoring=False)
    assert not needs_token("POST", "/v1/models/m/detect", scoring=False)
    assert needs_token("POST", "/v1/models/m/detect", scoring=True)
    assert not needs_token("GET", "/readyz", scoring=True)
    assert not needs_token("OPTIONS", "/v1/models/m", scoring=True)
    assert parse_tokens(" a \n#b\n\n c") == ["a", "c"]


def test_authorization_values_from_any_transport(tmp_path: Path) -> None:
    """gRPC metadata and REST headers are judged by the same ``TokenFile.allows``."""
    path = tmp_path / "token"
    path.write_text("# comment\n\nfirst-token\n  second-token  \n")
    tokens = TokenFile(path, recheck_seconds=0)
    assert tokens.allows("Bearer first-token")
    assert tokens.allows(b"bearer second-token")
    assert not tokens.allows("Bearer # comment")
    assert not tokens.allows("Bearer first")
    assert not tokens.allows("Basic first-token")
    assert not tokens.allows(None)
    assert not tokens.allows("Bearer ")

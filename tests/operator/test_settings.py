"""``OperatorSettings``: read from ``PYNOMALY_OPERATOR_*`` when constructed, not at import."""

from __future__ import annotations

import pydantic
import pytest

from pynomaly_operator import settings


def test_defaults_and_env_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYNOMALY_OPERATOR_RESYNC_SECONDS", raising=False)
    assert settings.OperatorSettings().resync_seconds == 15.0
    monkeypatch.setenv("PYNOMALY_OPERATOR_RESYNC_SECONDS", "2.5")
    assert settings.OperatorSettings().resync_seconds == 2.5


def test_a_resync_period_of_zero_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYNOMALY_OPERATOR_RESYNC_SECONDS", "0")
    with pytest.raises(pydantic.ValidationError, match="resync_seconds"):
        settings.OperatorSettings()


def test_every_field_is_documented() -> None:
    for name, field in settings.OperatorSettings.model_fields.items():
        assert field.description, f"OperatorSettings.{name} has no docstring"

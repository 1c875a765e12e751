"""``postgres.config.extra`` cannot turn "may edit an AnomalyDetector" into a shell.

Before: any key was rendered verbatim into postgresql.conf, so a key with a newline added
arbitrary directives, and ``archive_command`` ran shell in the Postgres pod with the
superuser password in its environment. Now the CRD (CEL, checked by the real API server
below) and the operator's own model refuse the same names, and values are one line.
"""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from pynomaly_operator.builders.postgres import conf
from pynomaly_operator.specs.postgres import PostgresSpec

DENIED = [
    "archive_command",
    "restore_command",
    "ssl_passphrase_command",
    "shared_preload_libraries",
    "session_preload_libraries",
    "local_preload_libraries",
    "archive_library",
    "dynamic_library_path",
    "include",
    "include_if_exists",
    "include_dir",
    "data_directory",
    "hba_file",
    "ident_file",
    "ssl_key_file",
    "listen_addresses",
    "port",
    "password_encryption",
]
OUTSIDE_GRAMMAR = [
    "log_statement\ninclude_if_exists",
    "ARCHIVE_COMMAND",  # PostgreSQL folds case: this would be archive_command
    "work mem",
    "a=b",
    "x.y.z",
    "",
]


def _entries(extra: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, value in extra.items()]


def spec(extra: dict[str, str]) -> PostgresSpec:
    return PostgresSpec.model_validate({"config": {"extra": _entries(extra)}})


@pytest.mark.parametrize("name", DENIED)
def test_operator_refuses_parameters_that_run_load_or_read(name: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="are not allowed"):
        spec({name: "x"})


@pytest.mark.parametrize("name", OUTSIDE_GRAMMAR)
def test_operator_refuses_names_outside_the_grammar(name: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=r"lower-case postgresql\.conf names"):
        spec({name: "x"})


def test_a_value_cannot_start_a_new_line() -> None:
    with pytest.raises(pydantic.ValidationError):
        spec({"log_statement": "all'\narchive_command = 'sh -c id"})


def test_allowed_parameters_are_rendered_quoted_on_one_line() -> None:
    text = conf.postgresql_conf(
        spec({"log_statement": "all", "pg_stat_statements.track": "it's all"})
    )
    assert "log_statement = 'all'\n" in text
    assert "pg_stat_statements.track = 'it''s all'\n" in text


# --- the API server refuses the same specs (CEL in the generated CRD) ----------------------


def _detector(kube: Any, extra: dict[str, str]) -> dict[str, Any]:
    return kube.detector(
        "pg-extra",
        {"redis": {"mode": "none"}, "postgres": {"config": {"extra": _entries(extra)}}},
    )


@pytest.mark.cluster
def test_api_server_refuses_denied_parameters_with_a_message(kube: Any) -> None:
    for name in ("archive_command", "shared_preload_libraries", "include_if_exists", "hba_file"):
        result = kube.apply(_detector(kube, {name: "x"}), check=False)
        assert result.returncode != 0, name
        assert "are not allowed" in result.stderr, (name, result.stderr)
    for name in ("ARCHIVE_COMMAND", "log_statement\ninclude_if_exists"):
        result = kube.apply(_detector(kube, {name: "x"}), check=False)
        assert result.returncode != 0, name
        assert "spec.postgres.config.extra[0].name" in result.stderr, (name, result.stderr)
    result = kube.apply(_detector(kube, {"log_statement": "all\ninclude 'x'"}), check=False)
    assert result.returncode != 0
    assert "spec.postgres.config.extra[0].value" in result.stderr, result.stderr


@pytest.mark.cluster
def test_api_server_admits_ordinary_parameters(kube: Any) -> None:
    result = kube.apply(
        _detector(kube, {"log_statement": "all", "pg_stat_statements.track": "all"}),
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_statement_pool_mode_is_refused() -> None:
    """It returns the server connection after each statement: every store transaction breaks."""
    with pytest.raises(pydantic.ValidationError, match=r"pool_mode|poolMode"):
        PostgresSpec.model_validate({"pgbouncer": {"poolMode": "statement"}})

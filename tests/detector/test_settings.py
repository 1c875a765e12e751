"""Settings: env names of the contract, parsing, placeholder refusal."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from pynomaly_detector.settings import Settings, markdown_table

# The contract file lists the names as text; keep them pasteable.
CONTRACT = """
PYNOMALY_HOST PYNOMALY_PORT PYNOMALY_METRICS_PORT PYNOMALY_WORKERS PYNOMALY_TIMEOUT_KEEP_ALIVE
PYNOMALY_REQUEST_TIMEOUT_SECONDS PYNOMALY_MAX_REQUESTS PYNOMALY_MAX_REQUESTS_JITTER
PYNOMALY_BACKLOG PYNOMALY_LIMIT_CONCURRENCY PYNOMALY_MAX_BODY_BYTES PYNOMALY_BATCH_MAX_SIZE
PYNOMALY_BATCH_MAX_WAIT_MS PYNOMALY_CACHE_MEMORY_MAX_SIZE PYNOMALY_CACHE_MEMORY_TTL_SECONDS
PYNOMALY_CACHE_REDIS_TTL_SECONDS PYNOMALY_CACHE_REDIS_KEY_PREFIX PYNOMALY_CACHE_QUERY_TTL_SECONDS
PYNOMALY_CACHE_WARMUP PYNOMALY_REDIS_MODE PYNOMALY_REDIS_URL PYNOMALY_REDIS_SENTINELS
PYNOMALY_REDIS_MASTER_NAME PYNOMALY_REDIS_PASSWORD PYNOMALY_DATABASE_URL
PYNOMALY_DATABASE_PASSWORD PYNOMALY_DATABASE_POOL_MIN_SIZE PYNOMALY_DATABASE_POOL_MAX_SIZE
PYNOMALY_MODEL_DIR PYNOMALY_ARTIFACT_SIGNING_KEY PYNOMALY_MODEL_NAME PYNOMALY_MODEL_ALGORITHM
PYNOMALY_MODEL_PARAMETERS PYNOMALY_MODEL_CONTAMINATION PYNOMALY_MODEL_TRAINING_PATH
PYNOMALY_MODEL_TRAINING_URL PYNOMALY_RATE_LIMIT_REQUESTS_PER_SECOND PYNOMALY_RATE_LIMIT_BURST
PYNOMALY_ANOMALY_LOG_ENABLED PYNOMALY_LOG_LEVEL PYNOMALY_CORS_ORIGINS
""".split()  # noqa: SIM905


def test_every_contract_name_is_a_field() -> None:
    fields = {f"PYNOMALY_{name.upper()}" for name in Settings.model_fields}
    assert set(CONTRACT) - fields == set()


def test_defaults_of_the_contract() -> None:
    settings = Settings()
    assert (settings.host, settings.port, settings.metrics_port) == ("127.0.0.1", 8000, 9090)
    assert (settings.workers, settings.timeout_keep_alive) == (4, 65)
    assert settings.cache_memory_max_size == 1000
    assert settings.cache_redis_key_prefix == "pynomaly:"
    assert settings.redis_mode == "none"


def test_production_defaults_serve() -> None:
    """Defaults the performance guide and a loaded service need: no worker recycling (it
    restarted workers every 0.1-0.4 s under load), bounded pools, a model cache of 100."""
    settings = Settings()
    assert settings.max_requests == 0
    assert settings.redis_max_connections == 50
    assert settings.database_pool_acquire_timeout_seconds == 30.0
    assert settings.cache_model_max_models == 100


def test_every_field_has_a_docstring() -> None:
    missing = [name for name, field in Settings.model_fields.items() if not field.description]
    assert missing == []


def test_readme_settings_table_is_current() -> None:
    readme = Path(__file__).parents[2] / "detector_service" / "README.md"
    assert markdown_table() in readme.read_text(), (
        "regenerate: python -m pynomaly_detector.settings"
    )


def test_env_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYNOMALY_MODEL_PARAMETERS", '{"n_estimators": 50}')
    monkeypatch.setenv("PYNOMALY_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("PYNOMALY_LOG_LEVEL", "debug")
    monkeypatch.setenv("PYNOMALY_REDIS_PASSWORD", "s3cret")
    settings = Settings()
    assert settings.model_parameters == {"n_estimators": 50}
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.log_level == "DEBUG"
    assert settings.redis_password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)


def test_empty_parameters_env_is_an_empty_object(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYNOMALY_MODEL_PARAMETERS", "")
    assert Settings().model_parameters == {}


@pytest.mark.parametrize("key", ["changeme", "development-only-signing-key", "short"])
def test_production_refuses_placeholder_signing_keys(key: str) -> None:
    with pytest.raises(ValidationError, match="SIGNING_KEY"):
        Settings(environment="production", artifact_signing_key=key)


def test_redis_modes_need_addresses() -> None:
    with pytest.raises(ValidationError, match="SENTINELS"):
        Settings(redis_mode="sentinel")
    with pytest.raises(ValidationError, match="REDIS_URL"):
        Settings(redis_mode="standalone")

"""Every key of the rendered settings ConfigMap is a field of the service's Settings,
and the service accepts the rendered values as they are."""

from __future__ import annotations

import pytest

from pynomaly_detector.settings import Settings
from pynomaly_operator.builders.detector import config_map as configmap
from pynomaly_operator.specs import detector as specs

SPECS = [
    {},
    {
        "model": {
            "algorithm": "LOF",
            "parameters": {"n_neighbors": 5},
            "training": {"configMapRef": {"name": "t", "key": "d.csv"}},
        },
        "corsOrigins": ["https://a.example", "https://b.example"],
        "logLevel": "debug",
    },
]


@pytest.mark.parametrize("spec", SPECS)
def test_keys_are_settings_fields(spec: dict[str, object]) -> None:
    detector = specs.AnomalyDetector.from_body(
        {"metadata": {"name": "x", "namespace": "n"}, "spec": spec}
    )
    data = configmap.settings(detector)
    fields = {f"PYNOMALY_{name.upper()}" for name in Settings.model_fields}
    assert set(data) <= fields, sorted(set(data) - fields)


@pytest.mark.parametrize("spec", SPECS)
def test_service_accepts_the_rendered_values(
    spec: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    detector = specs.AnomalyDetector.from_body(
        {"metadata": {"name": "x", "namespace": "n"}, "spec": spec}
    )
    for key, value in configmap.settings(detector).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PYNOMALY_ARTIFACT_SIGNING_KEY", "a-generated-key-of-sufficient-length")
    settings = Settings()
    assert settings.workers == detector.spec.server.workers
    assert settings.model_parameters == dict(detector.spec.model.parameters)
    assert settings.cors_origins == list(detector.spec.cors_origins)


def test_body_limit_default_is_the_services() -> None:
    """An AnomalyDetector that does not set ``server.maxBodyBytes`` serves what the service
    serves by default (it rendered 10 MiB while the service's own default is 64 MiB)."""
    detector = specs.AnomalyDetector.from_body({"metadata": {"name": "x", "namespace": "n"}})
    rendered = configmap.settings(detector)["PYNOMALY_MAX_BODY_BYTES"]
    assert int(rendered) == Settings.model_fields["max_body_bytes"].default

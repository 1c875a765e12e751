"""Every key of the rendered settings ConfigMap is a field of the service's Settings, the
service accepts the rendered values as they are, and the defaults both sides hold agree."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pynomaly_detector.dataplane import termination_grace
from pynomaly_detector.settings import Settings
from pynomaly_operator import naming
from pynomaly_operator.builders.detector import config_map as configmap
from pynomaly_operator.builders.detector import deployment
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


def test_worker_recycling_defaults_agree() -> None:
    """A resource without ``spec.server`` runs the service as its own defaults would: workers
    are not recycled (``PYNOMALY_MAX_REQUESTS`` 0), the jitter is the service's."""
    detector = specs.AnomalyDetector.from_body({"metadata": {"name": "x", "namespace": "n"}})
    data = configmap.settings(detector)
    defaults = Settings()
    assert int(data["PYNOMALY_MAX_REQUESTS"]) == defaults.max_requests == 0
    assert int(data["PYNOMALY_MAX_REQUESTS_JITTER"]) == defaults.max_requests_jitter


def test_drain_defaults_agree_and_the_grace_period_is_the_one_the_service_budgets() -> None:
    """The CRD's ``server.drainSeconds`` default is the service's ``PYNOMALY_DRAIN_SECONDS``
    default (they were 10 and 5), so the service run without the operator drains as a pod
    does; the pod's grace period the operator renders from the defaults is the one the service
    computes to budget its final anomaly-log flush."""
    crd = yaml.safe_load(
        (Path(__file__).parents[2] / "crds" / "anomalydetectors.pynomaly.io.yaml").read_text()
    )
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    server = schema["properties"]["spec"]["properties"]["server"]["properties"]
    defaults = Settings()
    assert server["drainSeconds"]["default"] == defaults.drain_seconds == 10
    assert server["timeoutSeconds"]["default"] == defaults.request_timeout_seconds

    detector = specs.AnomalyDetector.from_body({"metadata": {"name": "x", "namespace": "n"}})
    assert detector.spec.server.drain_seconds == defaults.drain_seconds
    names = naming.Names(instance="x", namespace="n")
    pod = deployment.deployment(detector, names, config_hash="h")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == termination_grace(defaults) == 50

"""spec.model.challenger / promotion / drift: parsed, validated, rendered for the service."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from pynomaly_detector.settings import Settings
from pynomaly_operator import naming
from pynomaly_operator.builders.detector import config_map
from pynomaly_operator.specs import detector as specs
from pynomaly_operator.status import problems

pytestmark = pytest.mark.drift


def _detector(model: dict[str, Any]) -> specs.AnomalyDetector:
    return specs.AnomalyDetector.from_body(
        {"metadata": {"name": "fraud", "namespace": "p"}, "spec": {"model": model}}
    )


def test_challenger_and_promotion_reach_the_service_settings() -> None:
    detector = _detector(
        {
            "algorithm": "IForest",
            "training": {"url": "https://data.invalid/train.csv"},
            "challenger": {"algorithm": "ECOD", "alertRate": 0.01},
            "promotion": {"minRows": 5000, "minAgreement": 0.8},
            "drift": {"threshold": 0.2},
        }
    )
    names = naming.Names(instance=detector.name, namespace=detector.namespace)
    data = config_map.config_map(detector, names)["data"]
    assert data["PYNOMALY_MODEL_CHALLENGER_ALGORITHM"] == "ECOD"
    assert data["PYNOMALY_MODEL_CHALLENGER_ALERT_RATE"] == "0.01"
    assert data["PYNOMALY_MODEL_PROMOTION_MIN_ROWS"] == "5000"
    values = {key.removeprefix("PYNOMALY_").lower(): value for key, value in data.items()}
    settings = Settings(**{**values, "artifact_signing_key": "a-real-secret-of-32-characters!!"})
    assert settings.model_challenger_algorithm == "ECOD"
    assert settings.model_challenger_alert_rate == 0.01
    assert settings.model_promotion_min_rows == 5000
    assert settings.model_promotion_min_agreement == 0.8


def test_without_a_challenger_nothing_is_rendered() -> None:
    detector = _detector({"algorithm": "IForest"})
    names = naming.Names(instance=detector.name, namespace=detector.namespace)
    data = config_map.config_map(detector, names)["data"]
    assert not [key for key in data if "CHALLENGER" in key or "PROMOTION" in key]


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (
            {"challenger": {"algorithm": "ECOD", "contamination": 0.1, "alertRate": 0.01}},
            "not both",
        ),
        ({"challenger": {"parameters": {}}}, "algorithm"),
        ({"challenger": {"algorithm": "Nope"}}, "algorithm"),
        ({"promotion": {"minAgreement": 0.9}}, "minRows"),
        ({"promotion": {"minRows": 10, "minAgreement": 2}}, "minAgreement"),
        ({"drift": {"threshold": 0}}, "threshold"),
    ],
)
def test_bad_specs_are_refused_naming_the_field(model: dict[str, Any], message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        _detector(model)


def test_unknown_challenger_parameters_degrade_with_a_reason() -> None:
    detector = _detector({"challenger": {"algorithm": "IForest", "parameters": {"trees": 5}}})
    found = problems.problems(detector, training=None)
    assert found[0]["reason"] == "InvalidParameters"
    assert "spec.model.challenger.parameters" in found[0]["message"]

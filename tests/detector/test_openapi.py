"""The OpenAPI document is true to the service: schemathesis generates requests from it
(valid and invalid) against the real server and checks every answer: no 5xx, every status
documented, every body of its documented type and schema.

The CI run is bounded (``PYNOMALY_FUZZ_EXAMPLES``, default 20 per operation); the longer run
of ``bench/openapi_fuzz.md`` uses the same test with a larger count.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema

from tests.detector.conftest import training_rows
from tests.detector.server_process import detector_process

pytestmark = [pytest.mark.http, pytest.mark.slow]

EXAMPLES = int(os.environ.get("PYNOMALY_FUZZ_EXAMPLES", "20"))
REPORT = os.environ.get("PYNOMALY_FUZZ_REPORT", "")
"""Append the cases run per operation and status (JSON lines) here (the long run's record)."""
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenApiSchema]:
    tmp_path = tmp_path_factory.mktemp("openapi")
    with detector_process(tmp_path, ANOMALY_LOG_ENABLED="true", MAX_REQUESTS="0") as running:
        fitted = httpx.put(
            f"{running.base}/v1/models/fraud",
            json={"algorithm": "ECOD", "instances": training_rows(100, d=3)},
            timeout=60,
        )
        assert fitted.status_code == 201, fitted.text
        yield schemathesis.openapi.from_url(f"{running.base}/openapi.json")


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_answers_as_documented(
    api_schema: OpenApiSchema, mode: GenerationMode
) -> None:
    """schemathesis' own pytest loader does not run on pytest 9, so the operations are
    walked here: ``EXAMPLES`` generated cases per operation and mode."""
    failures: list[str] = []
    counts: dict[str, dict[str, int]] = {}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 14
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: schemathesis.Case) -> None:
            response = case.call_and_validate(checks=CHECKS, timeout=60)
            tally = counts.setdefault(operation.label, {})  # noqa: B023  (run() is called in this iteration)
            tally[str(response.status_code)] = tally.get(str(response.status_code), 0) + 1

        try:
            run()
        except Unsatisfiable:
            # Nothing to make invalid (no parameters, no body): no negative cases exist.
            assert mode is GenerationMode.NEGATIVE, operation.label
        except Exception as error:  # collected: one report for every operation
            failures.append(f"{operation.label}: {error}")
    if REPORT:
        with Path(REPORT).open("a") as report:
            report.write(json.dumps({"mode": mode.value, "cases": counts, "failures": failures}))
            report.write("\n")
    assert failures == [], "\n\n".join(failures)


def test_the_document_states_bodies_parameters_and_errors(api_schema: OpenApiSchema) -> None:
    paths = api_schema.raw_schema["paths"]
    for path, method in [
        ("/v1/models/{name}/detect", "post"),
        ("/v2/models/{name}/infer", "post"),
        ("/v1/models/{name}", "put"),
    ]:
        operation = paths[path][method]
        assert operation["requestBody"]["required"] is True
        assert [p["name"] for p in operation["parameters"]] == ["name"]
        assert {"400", "401", "413", "422", "503"} <= set(operation["responses"])
    assert "multipart/form-data" in paths["/v1/models/{name}"]["put"]["requestBody"]["content"]
    assert "404" in paths["/v1/models/{name}/anomalies"]["get"]["responses"]
    schemas = api_schema.raw_schema["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert set(schemas["Error"]["required"]) == {"error", "detail"}

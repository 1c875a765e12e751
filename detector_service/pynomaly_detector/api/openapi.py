"""The OpenAPI document, true to what the service accepts and answers.

The hot routes read their bodies with orjson (no pydantic), so FastAPI cannot see their path
parameters, bodies or answers; and every error is ``{"error", "detail"}``, not FastAPI's
``HTTPValidationError``. ``document`` takes FastAPI's generated document and states, per
operation, the request body, the ``name`` path parameter, and every status the service can
answer with its real schema. The schemas below are documentation only: the routes validate
with numpy and their own checks. A schemathesis run over this document is a test
(``tests/detector/test_openapi.py``): no 5xx, no undocumented status or shape.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

from pynomaly_detector.registry.versions import NAME_PATTERN
from pynomaly_detector.settings import Settings


class Problem(BaseModel):
    """One problem of a request that failed FastAPI's parameter validation."""

    loc: list[str | int]
    msg: str


class Error(BaseModel):
    """Every error: a stable code and a human message (or, for 422 ``invalid_request``, the
    list of parameter problems)."""

    error: str = Field(examples=["model_not_found"])
    detail: str | list[Problem] | dict[str, Any]


class DetectRequest(BaseModel):
    """Rows to score: a list of equally long lists of finite numbers."""

    model_config = ConfigDict(extra="allow")
    instances: list[list[float]] = Field(min_length=1)
    explain: bool = Field(
        default=False,
        description="also answer 'explanations' (ECOD, COPOD, IForest, IsolationForest; "
        "other algorithms: 422)",
    )


class Explained(BaseModel):
    """One feature of an explanation."""

    feature: str
    contribution: float = Field(description="share of the row's attribution, 0..1")
    direction: Literal["above", "below"] = Field(description="versus the training median")


class Detection(BaseModel):
    """Per row: the score (higher = more anomalous) and whether it is above the threshold."""

    scores: list[float]
    is_anomaly: list[bool]
    p_values: list[float] | None = Field(
        description="per row: share of calibration scores at least as high, (count+1)/(n+1);"
        " null for model versions fitted without a calibration sample"
    )
    p_values_unavailable: str | None = Field(
        default=None, description="why p_values is null (only present then)"
    )
    explanations: list[list[Explained] | None] | None = Field(
        default=None,
        description="with explain: per row, null when not flagged, else its most contributing"
        " features first",
    )
    threshold: float
    model: str
    version: int


class InferInput(BaseModel):
    """One tensor of shape [rows, features] (or [features] for one row), flat or nested."""

    model_config = ConfigDict(extra="allow")
    name: str
    shape: list[int]
    datatype: Literal[
        "FP16",
        "FP32",
        "FP64",
        "INT8",
        "INT16",
        "INT32",
        "INT64",
        "UINT8",
        "UINT16",
        "UINT32",
        "UINT64",
    ]
    data: list[Any]
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    """Open Inference Protocol v2 request with exactly one input tensor."""

    model_config = ConfigDict(extra="allow")
    id: str | None = None
    inputs: list[InferInput] = Field(min_length=1, max_length=1)
    parameters: dict[str, Any] | None = None


class InferOutput(BaseModel):
    """An output tensor: ``scores`` (FP64) or ``is_anomaly`` (BOOL)."""

    name: str
    shape: list[int]
    datatype: str
    data: list[float] | list[bool]


class InferResponse(BaseModel):
    """Open Inference Protocol v2 response."""

    model_name: str
    model_version: str
    id: Any = None
    """The request's ``id``, echoed as sent."""
    parameters: dict[str, Any]
    outputs: list[InferOutput]


class FitRequest(BaseModel):
    """A fit from JSON rows (or upload a CSV as multipart ``file``)."""

    algorithm: str = "IForest"
    parameters: dict[str, Any] = Field(default_factory=dict)
    contamination: float | None = Field(
        default=None, gt=0, le=0.5, description="share of anomalies in the training rows (0.1)"
    )
    alert_rate: float | None = Field(
        default=None,
        gt=0,
        lt=0.5,
        description="share of normal traffic to flag (instead of contamination, not with it)",
    )
    instances: list[list[float]] = Field(min_length=2)


class FitUpload(BaseModel):
    """A fit from a CSV file (header optional) with the options as form fields."""

    file: bytes = Field(json_schema_extra={"format": "binary"})
    algorithm: str = "IForest"
    contamination: str = Field(default="0.1", description="a number in (0, 0.5]")
    alert_rate: str = Field(default="", description="a number in (0, 0.5), not with contamination")
    parameters: str = Field(default="{}", description="a JSON object of estimator parameters")


class Drift(BaseModel):
    """Recent traffic of the version against its reference (``GET /v1/models/{name}``)."""

    score: float | None = Field(description="PSI of recent vs reference scores (null: few rows)")
    features: dict[str, float] = Field(description="PSI per tracked feature")
    alert_rate: float | None = Field(description="share of recent rows flagged")
    rows: int = Field(description="recent rows the figures cover (all workers sharing Redis)")
    reference: str = Field(description="calibration | training")
    scope: str = Field(description="cluster (every worker sharing Redis) | worker")


class ModelInfo(BaseModel):
    """Metadata of a model version."""

    model_config = ConfigDict(extra="allow")
    name: str
    version: int
    algorithm: str
    threshold: float
    n_features: int
    drift: Drift | None = Field(
        default=None, description="GET /v1/models/{name} only: drift and live alert rate"
    )


class ModelList(BaseModel):
    """The newest version of every model."""

    models: list[ModelInfo]


class Deleted(BaseModel):
    """The name whose versions were deleted."""

    deleted: str


class DeletedChallenger(BaseModel):
    """The name whose challenger was removed."""

    deleted_challenger: str


class PromoteRequest(BaseModel):
    """Promote the challenger (``{}`` or no body) or roll back to a stored version."""

    model_config = ConfigDict(extra="forbid")
    version: int | None = Field(default=None, ge=1, description="stored version to restore")


class Anomalies(BaseModel):
    """Logged anomalous rows, oldest first."""

    anomalies: list[dict[str, Any]]


class V2Metadata(BaseModel):
    """Open Inference Protocol v2 model metadata."""

    model_config = ConfigDict(extra="allow")
    name: str
    versions: list[str]
    platform: str
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]


class FeedbackRequest(BaseModel):
    """Labels of logged alerts (``labels``: anomaly id + true_positive/false_positive) and/or
    rows with what they really were (``rows``: row + anomaly/normal)."""

    model_config = ConfigDict(extra="allow")
    labels: list[dict[str, Any]] = Field(default_factory=list)
    rows: list[dict[str, Any]] = Field(default_factory=list)


class FeedbackAnswer(BaseModel):
    """Labels recorded, counts per label, precision over labelled alerts, calibration fed."""

    model_config = ConfigDict(extra="allow")
    model: str
    recorded: int
    counts: dict[str, int]
    precision: float | None
    calibration: dict[str, int] | None


class ModelReady(BaseModel):
    """The model is loaded."""

    name: str
    ready: bool


class Live(BaseModel):
    """The process answers."""

    live: bool


class Ready(BaseModel):
    """Readiness (``/v2/health/ready``)."""

    ready: bool


class Readiness(BaseModel):
    """``/readyz``: the verdict and the state of every dependency (also the 503 body)."""

    model_config = ConfigDict(extra="allow")
    ready: bool
    draining: bool


SCHEMAS: list[type[BaseModel]] = [
    Problem,
    Error,
    DetectRequest,
    Detection,
    InferInput,
    InferRequest,
    InferOutput,
    InferResponse,
    FitRequest,
    FitUpload,
    ModelInfo,
    ModelList,
    Deleted,
    Anomalies,
    FeedbackRequest,
    FeedbackAnswer,
    Drift,
    DeletedChallenger,
    PromoteRequest,
    V2Metadata,
    ModelReady,
    Live,
    Ready,
    Readiness,
]

ERRORS = {
    400: "The body is not JSON, or not a JSON object (`bad_request`).",
    401: "A bearer token is needed and missing or wrong (`unauthorized`).",
    404: "No model of this name (`model_not_found`), or the deployment's declared model has "
    "no fitted version yet (`model_not_fitted`: fit it with PUT first).",
    409: "Nothing to promote: the model has no challenger, or no stored version of that "
    "number (`nothing_to_promote`).",
    413: "The body exceeds the size limit, or carries more rows or values than one request "
    "may (`body_too_large`, `too_many_rows`).",
    422: "The body or a parameter is well-formed JSON but invalid: rows of the wrong width, "
    "NaN, strings or booleans, an unknown algorithm or parameter, an invalid name "
    "(`invalid_input`, `invalid_request`); a fit stopped at its time limit, the model left on "
    "its previous version (`fit_timeout`).",
    429: "The client exceeded the rate limit (`rate_limited`).",
    503: "The model store is unavailable, a stored artifact failed verification, or a fit's "
    "process died (`store_unavailable`, `artifact_rejected`, `fit_failed`).",
    504: "The request did not complete within the deadline (`deadline_exceeded`).",
}

COMMON = (401, 429, 503, 504)
"""Statuses any API operation may answer (auth, rate limit, store, deadline)."""


def _json(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}


def _ok(name: str, description: str = "Success") -> dict[str, Any]:
    return {"description": description, "content": _json(name)}


# (method, path) -> request body, success responses, error statuses
OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("post", "/v1/models/{name}/detect"): {
        "body": {"required": True, "content": _json("DetectRequest")},
        "ok": {"200": _ok("Detection")},
        "errors": (400, 404, 413, 422),
    },
    ("post", "/v2/models/{name}/infer"): {
        "body": {"required": True, "content": _json("InferRequest")},
        "ok": {"200": _ok("InferResponse")},
        "errors": (400, 404, 413, 422),
    },
    ("put", "/v1/models/{name}"): {
        "body": {
            "required": True,
            "content": {
                **_json("FitRequest"),
                "multipart/form-data": {"schema": {"$ref": "#/components/schemas/FitUpload"}},
            },
        },
        "ok": {"201": _ok("ModelInfo", "The new version")},
        "errors": (400, 413, 422),
    },
    ("get", "/v1/models"): {"ok": {"200": _ok("ModelList")}, "errors": ()},
    ("get", "/v1/models/{name}"): {"ok": {"200": _ok("ModelInfo")}, "errors": (404, 422)},
    ("delete", "/v1/models/{name}"): {"ok": {"200": _ok("Deleted")}, "errors": (404, 422)},
    ("get", "/v1/models/{name}/anomalies"): {
        "ok": {"200": _ok("Anomalies")},
        "errors": (404, 422),
    },
    ("post", "/v1/models/{name}/feedback"): {
        "body": {"required": True, "content": _json("FeedbackRequest")},
        "ok": {"200": _ok("FeedbackAnswer")},
        "errors": (400, 404, 413, 422),
    },
    ("put", "/v1/models/{name}/challenger"): {
        "body": {
            "required": True,
            "content": {
                **_json("FitRequest"),
                "multipart/form-data": {"schema": {"$ref": "#/components/schemas/FitUpload"}},
            },
        },
        "ok": {"201": _ok("ModelInfo", "The new challenger (no version until promoted)")},
        "errors": (400, 404, 413, 422),
    },
    ("delete", "/v1/models/{name}/challenger"): {
        "ok": {"200": _ok("DeletedChallenger")},
        "errors": (404, 422),
    },
    ("post", "/v1/models/{name}/promote"): {
        "body": {"required": False, "content": _json("PromoteRequest")},
        "ok": {"200": _ok("ModelInfo", "The new champion")},
        "errors": (400, 404, 409, 413, 422),
    },
    ("get", "/v2/models/{name}"): {"ok": {"200": _ok("V2Metadata")}, "errors": (404, 422)},
    ("get", "/v2/models/{name}/ready"): {
        "ok": {"200": _ok("ModelReady")},
        "errors": (404, 422),
    },
    ("get", "/v2/health/live"): {"ok": {"200": _ok("Live")}, "errors": (), "probe": True},
    ("get", "/v2/health/ready"): {
        "ok": {"200": _ok("Ready"), "503": {"description": "Not ready", "content": _json("Error")}},
        "errors": (),
        "probe": True,
    },
    ("get", "/livez"): {"ok": {"200": _ok("Live")}, "errors": (), "probe": True},
    ("get", "/readyz"): {
        "ok": {
            "200": _ok("Readiness"),
            "503": {"description": "Not ready (the same body)", "content": _json("Readiness")},
        },
        "errors": (),
        "probe": True,
    },
    ("get", "/metrics"): {
        "ok": {
            "200": {
                "description": "Prometheus text exposition",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
        "errors": (),
        "probe": True,
    },
}

NAME_PARAMETER = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "Model name: 1-63 lower-case letters, digits, '.', '_' or '-' (invalid: 422).",
    "schema": {"type": "string", "pattern": NAME_PATTERN, "maxLength": 63},
}


def _components() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in SCHEMAS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas


def _protected(method: str, path: str, settings: Settings) -> bool:
    from pynomaly_detector.api.auth import needs_token

    return bool(settings.api_token_file) and needs_token(
        method.upper(), path, scoring=settings.scoring_auth == "token"
    )


def document(app: FastAPI, settings: Settings) -> dict[str, Any]:
    """The OpenAPI document of ``app`` (built once)."""
    if app.openapi_schema:
        return app.openapi_schema
    spec = get_openapi(
        title=app.title,
        version=app.version,
        description="Anomaly detection: fit models, score rows (v1 and Open Inference Protocol "
        "v2). Every error is JSON `{error, detail}`.",
        routes=app.routes,
    )
    components = spec.setdefault("components", {})
    components["schemas"] = _components()
    components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            known = OPERATIONS.get((method, path))
            if known is None:
                continue
            if "{name}" in path:
                others = [p for p in operation.get("parameters", []) if p.get("name") != "name"]
                operation["parameters"] = [NAME_PARAMETER, *others]
            if "body" in known:
                operation["requestBody"] = known["body"]
            responses: dict[str, Any] = dict(known["ok"])
            statuses = set(known["errors"])
            if not known.get("probe"):
                statuses |= set(COMMON)
                if operation.get("parameters"):
                    statuses.add(422)  # FastAPI's own parameter validation
            for status in sorted(statuses):
                responses[str(status)] = {"description": ERRORS[status], "content": _json("Error")}
            operation["responses"] = responses
            if _protected(method, path, settings):
                operation["security"] = [{"bearer": []}]
    app.openapi_schema = spec
    return spec

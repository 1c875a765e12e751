"""/v1: fit, list, describe, delete and the anomaly log (detect is in ``scoring``)."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.datastructures import UploadFile
from starlette.responses import Response

from pynomaly_detector import datasets
from pynomaly_detector.api.bodies import Bound, json_object, json_response
from pynomaly_detector.api.deps import AppSettings, Plane
from pynomaly_detector.api.errors import BadRequestError, validation_problems
from pynomaly_detector.dataplane import FitSpec, training_from_instances
from pynomaly_detector.detectors.errors import InvalidInputError, InvalidParametersError

router = APIRouter(prefix="/v1", tags=["models"])


class FitOptions(BaseModel):
    """Everything of a fit request except the rows (validated with numpy)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    algorithm: str = "IForest"
    parameters: dict[str, Any] = Field(default_factory=dict)
    contamination: float | None = Field(default=None, gt=0, le=0.5)
    """Expected share of anomalies in the training rows (default 0.1)."""
    alert_rate: float | None = Field(default=None, gt=0, lt=0.5)
    """Share of normal traffic to flag: the threshold is the calibration quantile."""
    instances: Any = None

    def spec(self) -> FitSpec:
        """What to fit (contamination 0.1 when neither threshold rule is given)."""
        return FitSpec(
            algorithm=self.algorithm,
            parameters=self.parameters,
            contamination=0.1 if self.contamination is None else self.contamination,
            alert_rate=self.alert_rate,
        )

    @model_validator(mode="after")
    def _one_threshold_rule(self) -> FitOptions:
        if self.contamination is not None and self.alert_rate is not None:
            msg = (
                "give either 'contamination' (share of anomalies in the training rows) or "
                "'alert_rate' (share of normal traffic to flag), not both"
            )
            raise ValueError(msg)
        return self


def _options(body: dict[str, Any]) -> FitOptions:
    try:
        return FitOptions.model_validate(body)
    except ValidationError as error:
        raise InvalidParametersError(f"invalid fit request: {validation_problems(error)}") from None


async def _multipart(
    request: Request, settings: AppSettings
) -> tuple[FitOptions, datasets.TrainingData]:
    form = await request.form(max_files=1, max_fields=16)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise BadRequestError("multipart fit requests need a CSV file in the 'file' field")
        fields: dict[str, Any] = {}
        for key in ("algorithm", "contamination", "alert_rate"):
            value = form.get(key)
            if isinstance(value, str) and value:
                fields[key] = value
        raw_parameters = form.get("parameters")
        if isinstance(raw_parameters, str) and raw_parameters.strip():
            try:
                fields["parameters"] = orjson.loads(raw_parameters)
            except orjson.JSONDecodeError:
                raise BadRequestError("'parameters' must be a JSON object") from None
        options = _options(fields)
        data = await asyncio.to_thread(
            datasets.read_csv,
            upload.file,
            max_rows=settings.model_max_training_rows,
            max_features=settings.model_max_features,
        )
    finally:
        await form.close()
    return options, data


async def fit_request(
    request: Request, settings: AppSettings
) -> tuple[FitSpec, datasets.TrainingData]:
    """What to fit and the rows of a fit body: JSON ``instances`` or a multipart CSV ``file``."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        options, data = await _multipart(request, settings)
    else:
        bound = Bound(rows=settings.model_max_training_rows)
        options = _options(await json_object(request, bound))
        if options.instances is None:
            raise InvalidInputError("'instances' is required (or upload a CSV as multipart 'file')")
        data = training_from_instances(
            options.instances,
            max_rows=settings.model_max_training_rows,
            max_features=settings.model_max_features,
        )
    return options.spec(), data


@router.put("/models/{name}", status_code=201)
async def fit(name: str, request: Request, plane: Plane, settings: AppSettings) -> Response:
    """Fit a new version from JSON ``instances`` or an uploaded CSV (multipart ``file``)."""
    spec, data = await fit_request(request, settings)
    meta = await plane.fit(name, spec, data)
    return json_response(meta.public(), status=201)


@router.get("/models")
async def list_models(plane: Plane) -> Response:
    """The newest version of every model."""
    return json_response({"models": [meta.public() for meta in await plane.list_models()]})


@router.get("/models/{name}")
async def describe(name: str, plane: Plane) -> Response:
    """Metadata of the newest version of ``name`` and its ``drift``."""
    return json_response(await plane.report(name))


@router.delete("/models/{name}")
async def delete(name: str, plane: Plane) -> Response:
    """Delete every version of ``name``."""
    await plane.delete(name)
    return json_response({"deleted": name})


@router.get("/models/{name}/anomalies")
async def anomalies(
    name: str,
    plane: Plane,
    since: Annotated[dt.datetime | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> Response:
    """Logged anomalies of ``name`` after ``since`` (ISO 8601), oldest first."""
    await plane.describe(name)  # 404 for a model that does not exist
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=dt.UTC)
    records = await plane.anomalies(name, since=since, limit=limit)
    return json_response({"anomalies": [record.public() for record in records]})

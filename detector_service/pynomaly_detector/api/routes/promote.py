"""/v1 challenger management: fit or remove a model's challenger, promote it, roll back.

``PUT /v1/models/{name}/challenger`` takes the body of a fit (JSON rows or a CSV upload);
``POST /v1/models/{name}/promote`` makes the challenger the champion (empty body or ``{}``)
or makes a copy of a stored version the newest again (``{"version": N}``: the rollback).
All of them change models, so they need a token (``api.auth``). The work is the data
plane's (``registry.challenger``, ``scoring.shadow``).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import Response

from pynomaly_detector.api.bodies import Bound, json_response, loads_object, read_bounded
from pynomaly_detector.api.deps import AppSettings, Plane
from pynomaly_detector.api.errors import validation_problems
from pynomaly_detector.api.routes.models import fit_request
from pynomaly_detector.detectors.errors import InvalidParametersError

router = APIRouter(prefix="/v1", tags=["models"])


class PromoteOptions(BaseModel):
    """What to promote: the challenger (no ``version``) or a stored version (rollback)."""

    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(default=None, ge=1, strict=True)


@router.put("/models/{name}/challenger", status_code=201)
async def fit_challenger(
    name: str, request: Request, plane: Plane, settings: AppSettings
) -> Response:
    """Fit the challenger of ``name`` (replacing any) from the body of a fit."""
    spec, data = await fit_request(request, settings)
    meta = await plane.fit_challenger(name, spec, data)
    body = meta.public()
    body.pop("version")
    return json_response(body, status=201)


@router.delete("/models/{name}/challenger")
async def delete_challenger(name: str, plane: Plane) -> Response:
    """Remove the challenger of ``name``."""
    await plane.delete_challenger(name)
    return json_response({"deleted_challenger": name})


@router.post("/models/{name}/promote")
async def promote(name: str, request: Request, plane: Plane) -> Response:
    """Promote the challenger, or (``{"version": N}``) roll back to a copy of version N."""
    raw = await read_bounded(request, Bound(rows=1))
    fields = loads_object(raw) if raw.strip() else {}
    try:
        options = PromoteOptions.model_validate(fields)
    except ValidationError as error:
        raise InvalidParametersError(
            f"invalid promote request: {validation_problems(error)}"
        ) from None
    meta = await plane.promote(name, version=options.version)
    return json_response(meta.public())

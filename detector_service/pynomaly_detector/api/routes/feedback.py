"""/v1/models/{name}/feedback: labels for alerts, precision, opt-in calibration feedback.

Token-protected like every other model-management POST (``api.auth``). The body is checked
with pydantic here; what the labels mean and where they go is the data plane's business.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.responses import Response

from pynomaly_detector.api.bodies import Bound, json_object, json_response
from pynomaly_detector.api.deps import AppSettings, Plane
from pynomaly_detector.api.errors import validation_problems
from pynomaly_detector.detectors.errors import InvalidInputError

router = APIRouter(prefix="/v1", tags=["models"])

MAX_LABELS = 10_000
"""Anomaly-log labels per request."""


class AlertLabel(BaseModel):
    """A label for one logged anomaly."""

    model_config = ConfigDict(extra="forbid")
    id: Annotated[int, Field(ge=1)]
    """Its id in ``GET /v1/models/{name}/anomalies``."""
    label: Literal["true_positive", "false_positive"]


class RowLabel(BaseModel):
    """A row with what it really was; scored with the newest version."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    row: list[Any]
    label: Literal["anomaly", "normal"]


class FeedbackBody(BaseModel):
    """Labels of logged alerts and/or labelled rows (at least one)."""

    model_config = ConfigDict(extra="forbid")
    labels: list[AlertLabel] = Field(default_factory=list, max_length=MAX_LABELS)
    rows: list[RowLabel] = Field(default_factory=list)

    @model_validator(mode="after")
    def _something(self) -> FeedbackBody:
        if not self.labels and not self.rows:
            raise ValueError("send 'labels' (anomaly ids with a label) and/or 'rows'")
        return self


@router.post("/models/{name}/feedback")
async def feedback(name: str, request: Request, plane: Plane, settings: AppSettings) -> Response:
    """Record labels; answer the label counts, the precision over labelled alerts and, with
    ``PYNOMALY_FEEDBACK_CALIBRATION``, the version the false positives were fed into."""
    raw = await json_object(request, Bound(rows=settings.max_instances_per_request + MAX_LABELS))
    try:
        body = FeedbackBody.model_validate(raw)
    except ValidationError as error:
        raise InvalidInputError(f"invalid feedback: {validation_problems(error)}") from None
    answer: dict[str, Any] = await plane.feedback(
        name,
        labels=[(item.id, item.label) for item in body.labels],
        rows=[item.row for item in body.rows],
        row_labels=[item.label for item in body.rows],
    )
    return json_response(answer)

"""The public API documents (contract v1): request bodies and response documents."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .models import ModelInfo, Prediction, PredictionError, PredictionStatus, Service

MAX_METADATA_ENTRIES = 16
MAX_METADATA_VALUE = 256


class WebhookTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2048, description="Where to POST the signed notification (https).")


class NotificationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    webhook: WebhookTarget | None = None


class NewPredictionRequest(BaseModel):
    """Body of ``POST /predictions``. Unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid")

    service: str = Field(min_length=1, max_length=63, description="The service to run.")
    notification: NotificationRequest | None = None
    content_type: str | None = Field(default=None, max_length=128)
    metadata: dict[str, str] = Field(default_factory=dict)

    @field_validator("metadata")
    @classmethod
    def _metadata_is_small(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_METADATA_ENTRIES:
            raise ValueError(f"at most {MAX_METADATA_ENTRIES} entries")
        for key, item in value.items():
            if not 1 <= len(key) <= 64:
                raise ValueError(f"key '{key[:64]}' must be 1 to 64 characters")
            if len(item) > MAX_METADATA_VALUE:
                raise ValueError(f"value of '{key}' is longer than {MAX_METADATA_VALUE} characters")
        return value


class UploadDocument(BaseModel):
    url: str
    fields: dict[str, str]
    method: Literal["POST"] = "POST"
    expires_at: datetime
    max_bytes: int


class NewPredictionResponse(BaseModel):
    prediction_id: str
    service: str
    status: PredictionStatus
    created_at: datetime
    metadata: dict[str, str] = Field(default_factory=dict)
    upload: UploadDocument


class ResultDocument(BaseModel):
    url: str
    content_type: str
    expires_at: datetime


class StepDocument(BaseModel):
    name: str
    service: str
    prediction_id: str
    status: PredictionStatus
    started_at: datetime | None = None
    finished_at: datetime | None = None
    model: ModelInfo
    error: PredictionError | None = None


class PredictionDocument(BaseModel):
    """Body of ``GET /predictions/{id}`` and the ``data`` of every webhook."""

    prediction_id: str
    service: str
    status: PredictionStatus
    created_at: datetime
    updated_at: datetime
    metadata: dict[str, str]
    model: ModelInfo
    result: ResultDocument | None = None
    error: PredictionError | None = None
    steps: list[StepDocument] | None = None


class ServiceDocument(BaseModel):
    name: str
    kind: Literal["model", "ensemble"]
    description: str
    content_types: list[str]
    max_bytes: int
    version: str

    @classmethod
    def of(cls, service: Service) -> ServiceDocument:
        return cls(
            name=service.name,
            kind=service.kind,
            description=service.description,
            content_types=service.content_types,
            max_bytes=service.max_bytes,
            version=service.version,
        )


class ServiceListDocument(BaseModel):
    services: list[ServiceDocument]


class ErrorDocument(BaseModel):
    """Every 4xx/5xx answer: a stable code and a message naming the problem."""

    code: str
    message: str


def step_document(child: Prediction) -> StepDocument:
    return StepDocument(
        name=child.step or "",
        service=child.service,
        prediction_id=child.prediction_id,
        status=child.status,
        started_at=child.started_at,
        finished_at=child.finished_at,
        model=child.model,
        error=child.error,
    )

"""The public API documents (contract v1): request bodies and response documents.

Built on demand: every handler imports this module through the lifecycle, but only the API
handlers and webhook delivery use the documents, so each model is declared with ``defer_build``
and the handlers that serve a document build it at their cold start with :func:`build` (the
others never pay for it; a model nobody built is built at its first use, as usual).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .audit import step_timing
from .media_types import ACCEPT_PATTERN, CONTENT_TYPE_PATTERN, DEFAULT_ACCEPT, is_accept, is_content_type
from .models import (
    BatchStatus,
    InputInfo,
    ModelInfo,
    Prediction,
    PredictionError,
    PredictionStatus,
    Service,
    StepTiming,
    empty_list,
)

MAX_METADATA_ENTRIES = 16
MAX_METADATA_VALUE = 256
MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=64)]
MetadataValue = Annotated[str, StringConstraints(max_length=MAX_METADATA_VALUE)]
MAX_MEDIA_TYPE_LENGTH = 128


def _checked_content_type(value: str) -> str:
    # Surrounding whitespace is not part of an HTTP header value (and never reaches SageMaker).
    value = value.strip()
    if not is_content_type(value):
        raise PydanticCustomError(
            "content_type",
            "'{value}' is not a media type: write type/subtype, optionally with parameters, "
            "e.g. 'application/json' or 'application/json; charset=utf-8'",
            {"value": value},
        )
    return value


def _checked_accept(value: str) -> str:
    value = value.strip()
    if not is_accept(value):
        raise PydanticCustomError(
            "accept",
            "'{value}' is not a media type or a comma-separated list of them as in an HTTP Accept header, "
            "e.g. 'application/json', 'text/csv' or 'image/png, */*;q=0.8'",
            {"value": value},
        )
    return value


# The pattern is published in the OpenAPI document; the validators check the same grammar with a
# message naming the problem (a ``pattern`` constraint would answer with the regular expression).
ContentType = Annotated[
    str,
    StringConstraints(max_length=MAX_MEDIA_TYPE_LENGTH),
    AfterValidator(_checked_content_type),
    WithJsonSchema({"type": "string", "maxLength": MAX_MEDIA_TYPE_LENGTH, "pattern": CONTENT_TYPE_PATTERN}),
]
AcceptValue = Annotated[
    str,
    StringConstraints(max_length=MAX_MEDIA_TYPE_LENGTH),
    AfterValidator(_checked_accept),
    WithJsonSchema({"type": "string", "maxLength": MAX_MEDIA_TYPE_LENGTH, "pattern": ACCEPT_PATTERN}),
]


def build(*models: type[BaseModel]) -> None:
    """Build the validators and serializers of ``models`` now (at cold start), not at first use."""
    for model in models:
        model.model_rebuild()


class WebhookTarget(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    url: str = Field(max_length=2048, description="Where to POST the signed notification (https).")


class EventBridgeTarget(BaseModel):
    """The gateway's own event bus: nothing to choose (yet)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)


class NotificationRequest(BaseModel):
    """How to be told that the prediction ended: one channel at most (none: poll)."""

    # maxProperties: the published schema says what the validator below enforces.
    model_config = ConfigDict(extra="forbid", defer_build=True, json_schema_extra={"maxProperties": 1})

    webhook: WebhookTarget | None = None
    eventbridge: EventBridgeTarget | None = Field(
        default=None,
        description="Put a prediction.completed, prediction.failed, prediction.expired or prediction.cancelled "
        "event on the gateway's EventBridge bus (source 'ensemble-gateway'; its data is the "
        "GET /predictions/{prediction_id} document).",
    )

    @model_validator(mode="after")
    def _one_channel(self) -> NotificationRequest:
        given = [name for name in type(self).model_fields if name in self.model_fields_set]
        if len(given) > 1:
            raise PydanticCustomError(
                "notification_channels",
                "choose one notification channel, not {given}",
                {"given": " and ".join(f"'{name}'" for name in given)},
            )
        return self


class NewPredictionRequest(BaseModel):
    """Body of ``POST /predictions``. Unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    service: str = Field(min_length=1, max_length=63, description="The service to run.")
    notification: NotificationRequest | None = None
    content_type: ContentType | None = Field(
        default=None,
        description="The input's content type, parameters allowed ('application/json; charset=utf-8'); its media "
        "type must be one the service accepts. Default: the service's first.",
    )
    accept: AcceptValue = Field(
        default=DEFAULT_ACCEPT,
        description="The content type wanted for the output, passed to the model as SageMaker's Accept: a media "
        "type or a comma-separated list of them as in an HTTP Accept header ('*/*' allowed).",
    )
    # Constraints expressed as types so that they are in the published schema too.
    metadata: dict[MetadataKey, MetadataValue] = Field(
        default_factory=dict,
        max_length=MAX_METADATA_ENTRIES,
        description=f"At most {MAX_METADATA_ENTRIES} entries, echoed back; keys 1-64 characters, "
        f"values at most {MAX_METADATA_VALUE}.",
    )
    input: Any = Field(
        default=None,
        description="The input itself, as JSON (any value but null), for a service accepting JSON: the prediction "
        "starts at once, with no upload form. Stored as compact UTF-8 JSON (the digest and size in `input` are of "
        "those bytes), at most the gateway's InlineInputMaxBytes (default 256 KiB) and the service's max_bytes. "
        "Leave it out to upload the input instead.",
    )


class UploadDocument(BaseModel):
    model_config = ConfigDict(defer_build=True)

    url: str
    fields: dict[str, str]
    method: Literal["POST"] = "POST"
    expires_at: datetime
    max_bytes: int


class NewPredictionResponse(BaseModel):
    model_config = ConfigDict(defer_build=True)

    prediction_id: str
    service: str
    status: PredictionStatus
    created_at: datetime
    metadata: dict[str, str] = Field(default_factory=dict)
    # None when an idempotent replay names a prediction whose input was already accepted (or whose
    # upload window closed): an accepted input cannot be replaced; None too for an input given inline.
    upload: UploadDocument | None
    # The accepted input (its digest, size, type) when it came inline; None until an upload is accepted.
    input: InputInfo | None = None


class ResultDocument(BaseModel):
    model_config = ConfigDict(defer_build=True)

    url: str
    content_type: str
    expires_at: datetime


class ShadowDocument(BaseModel):
    """What a shadow version answered for the same input: lineage only, never the result."""

    model_config = ConfigDict(defer_build=True)

    prediction_id: str = Field(description="The shadow's own ID (it is not a prediction of its own to GET).")
    service: str
    version: str = Field(description="The shadow version that was also sent the input.")
    status: PredictionStatus = Field(description="RUNNING until the shadow ends (it has its own timeout).")
    started_at: datetime | None = None
    finished_at: datetime | None = None
    model: ModelInfo
    error: PredictionError | None = None
    output: Any = Field(
        default=None, description="The shadow's output when it is JSON of at most 4 KB (else see result)."
    )
    result: ResultDocument | None = Field(
        default=None, description="A download URL of the shadow's output when it is not inline."
    )


class StepDocument(BaseModel):
    model_config = ConfigDict(defer_build=True)

    name: str
    service: str
    prediction_id: str
    status: PredictionStatus
    started_at: datetime | None = None
    finished_at: datetime | None = None
    model: ModelInfo
    error: PredictionError | None = None
    timing: StepTiming | None = Field(
        default=None,
        description="Where the step's time went, in milliseconds: queue_ms (until the model had the input), "
        "model_ms (the model's receipt to its answer; for an async endpoint this includes its own queue), "
        "overhead_ms (the answer until the gateway recorded it) and total_ms. Null until the step ended; "
        "the parts are null when no model answered (an ensemble, a skipped step).",
    )
    shadows: list[ShadowDocument] | None = Field(
        default=None,
        description="The step's target's shadow versions, sent the same step input (GET /predictions/"
        "{prediction_id} only; null in lists and for a step without shadows).",
    )


class PredictionDocument(BaseModel):
    """Body of ``GET /predictions/{id}`` and the ``data`` of every webhook."""

    model_config = ConfigDict(defer_build=True)

    prediction_id: str
    service: str
    status: PredictionStatus
    created_at: datetime
    updated_at: datetime
    metadata: dict[str, str]
    model: ModelInfo
    # The accepted input (what the model read); None until the upload is accepted.
    input: InputInfo | None = None
    result: ResultDocument | None = None
    error: PredictionError | None = None
    steps: list[StepDocument] | None = None
    shadows: list[ShadowDocument] | None = Field(
        default=None,
        description="The service's shadow versions, sent the same input: their outputs and timings, never the "
        "result (the prediction never waits for them); null when there are none.",
    )


class PredictionListDocument(BaseModel):
    """Body of ``GET /predictions``: one page of the caller's own predictions, newest first."""

    model_config = ConfigDict(defer_build=True)

    predictions: list[PredictionDocument] = Field(
        description="The page, newest first. An ensemble's steps are those that have finished (its "
        "record holds their outcomes); GET /predictions/{prediction_id} also lists those still running."
    )
    next_token: str | None = Field(
        description="Pass it as next_token, with the same filters, for the next page; null: there is none. "
        "A page may hold fewer than limit predictions, even none, and still have one."
    )


class UploadRenewalDocument(BaseModel):
    """Body of ``POST /predictions/{id}/upload``: a new form for the awaited upload."""

    model_config = ConfigDict(defer_build=True)

    prediction_id: str
    upload: UploadDocument


class ServiceDocument(BaseModel):
    model_config = ConfigDict(defer_build=True)

    name: str
    kind: Literal["model", "ensemble"]
    description: str
    content_types: list[str]
    max_bytes: int
    version: str
    # An ensemble's step names in catalog order (None for a model): a client knows from the start
    # how many steps a prediction of it has (the CLI's progress line).
    steps: list[str] | None = None
    versions: list[ServingVersionDocument] = Field(
        default_factory=empty_list,
        description="The versions serving predictions, each with its share of traffic (percent).",
    )
    traffic: dict[str, int] = Field(
        default_factory=dict, description="The split between serving versions: version to percent, summing to 100."
    )
    sticky_key: str | None = Field(
        default=None,
        description="The metadata field whose value picks the version (the same one for every prediction with "
        "that value); null: each prediction is drawn at random by the weights.",
    )

    @classmethod
    def of(cls, service: Service) -> ServiceDocument:
        traffic = service.serving_traffic()
        return cls(
            name=service.name,
            kind=service.kind,
            description=service.description,
            content_types=service.content_types,
            max_bytes=service.max_bytes,
            version=service.version,
            steps=list(service.ensemble.steps) if service.ensemble is not None else None,
            versions=[ServingVersionDocument(version=v, weight=w) for v, w in traffic.items()],
            traffic=traffic,
            sticky_key=service.sticky(),
        )


class ServingVersionDocument(BaseModel):
    model_config = ConfigDict(defer_build=True)

    version: str
    weight: int


class ServiceListDocument(BaseModel):
    model_config = ConfigDict(defer_build=True)

    services: list[ServiceDocument]


#: Metadata entries a batch may give: every item also gets ``batch_id`` and ``line``.
MAX_BATCH_METADATA_ENTRIES = MAX_METADATA_ENTRIES - 2
RESERVED_BATCH_METADATA = ("batch_id", "line")
MAX_BATCH_CONCURRENCY = 100
MANIFEST_URI_PATTERN = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.+$"


class NewBatchRequest(BaseModel):
    """Body of ``POST /batches``. Unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    service: str = Field(min_length=1, max_length=63, description="The service every line is a prediction of.")
    manifest_uri: str | None = Field(
        default=None,
        max_length=1024,
        pattern=MANIFEST_URI_PATTERN,
        description="s3://bucket/key of a JSON Lines manifest in a bucket this gateway may read (its operator "
        "lists them); without it the answer carries an upload form for the manifest.",
    )
    content_type: ContentType | None = Field(
        default=None,
        description="The items' content type (a media type the service accepts). Default: the service's first.",
    )
    max_concurrency: int = Field(
        default=10, ge=1, le=MAX_BATCH_CONCURRENCY, description="At most this many items run at once."
    )
    tolerated_failure_percent: int = Field(
        default=0,
        ge=0,
        le=100,
        description="The batch is FAILED (nothing new starts) once more than this percentage of its lines failed.",
    )
    notification: NotificationRequest | None = Field(
        default=None, description="Told once, when the batch ends (batch.completed, ...); items notify nobody."
    )
    metadata: dict[MetadataKey, MetadataValue] = Field(
        default_factory=dict,
        max_length=MAX_BATCH_METADATA_ENTRIES,
        description=f"At most {MAX_BATCH_METADATA_ENTRIES} entries, copied to every item (which also gets "
        "batch_id and line).",
    )

    @model_validator(mode="after")
    def _no_reserved_metadata(self) -> NewBatchRequest:
        reserved = [key for key in RESERVED_BATCH_METADATA if key in self.metadata]
        if reserved:
            raise PydanticCustomError(
                "reserved_metadata",
                "metadata key '{key}' is set by the gateway on every item",
                {"key": reserved[0]},
            )
        return self


class NewBatchResponse(BaseModel):
    """Answer of ``POST /batches`` (202)."""

    model_config = ConfigDict(defer_build=True)

    batch_id: str
    service: str
    status: BatchStatus
    created_at: datetime
    upload: UploadDocument | None = Field(
        description="Where to POST the manifest (a presigned form); null when manifest_uri was given, or on a "
        "replay once the manifest was accepted."
    )


class BatchCountsDocument(BaseModel):
    model_config = ConfigDict(defer_build=True)

    total: int = Field(description="Lines of the manifest (0 until it has been read).")
    pending: int
    running: int
    completed: int
    failed: int
    cancelled: int


class BatchDocument(BaseModel):
    """Body of ``GET /batches/{batch_id}`` and the ``data`` of the batch's webhook or event."""

    model_config = ConfigDict(defer_build=True)

    batch_id: str
    service: str
    status: BatchStatus
    counts: BatchCountsDocument
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = Field(
        default=None,
        description="Set once every started item has ended and the result is written (a FAILED or CANCELLED "
        "batch may have items still running until then).",
    )
    max_concurrency: int
    tolerated_failure_percent: int
    metadata: dict[str, str]
    error: PredictionError | None = None
    result: ResultDocument | None = Field(
        default=None,
        description="When finished: JSON Lines, one line per manifest line in input order: line, prediction_id, "
        "status, output (or output_url) or error.",
    )


class ErrorDocument(BaseModel):
    """Every 4xx/5xx answer: a stable code and a message naming the problem."""

    model_config = ConfigDict(defer_build=True)

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
        timing=step_timing(child.started_at, child.model_started_at, child.model_finished_at, child.finished_at)
        if child.status.is_terminal
        else None,
    )

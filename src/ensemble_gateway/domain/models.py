"""Entities of the domain: predictions, services, clients.

They are pydantic models so that the same classes validate catalog files, serialise to DynamoDB
items and render the public API documents.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from .media_types import is_accept

PREDICTION_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SERVICE_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def empty_list() -> list[Any]:
    """A new empty list: the default factory of list fields.

    Why not ``list`` itself: pydantic inspects every default factory's signature, and for the
    builtin it parses the text signature with ``tokenize`` (~4 ms over the domain's models at
    every cold start); a plain function's signature costs microseconds.
    """
    return []


def utcnow() -> datetime:
    """Return the current time, timezone-aware, truncated to milliseconds."""
    now = datetime.now(UTC)
    return now.replace(microsecond=(now.microsecond // 1000) * 1000)


def new_prediction_id() -> str:
    """Return a new prediction ID.

    URL-safe and 26 characters long: it doubles as the SageMaker ``InferenceId`` (at most 64
    characters) and as a Step Functions execution name (at most 80).
    """
    # A time prefix keeps IDs roughly sortable; the random part makes them unguessable.
    stamp = utcnow().strftime("%Y%m%d%H%M%S")
    return f"p{stamp}{secrets.token_hex(6)}"


class PredictionStatus(StrEnum):
    """The lifecycle of a prediction. Terminal statuses never change."""

    PENDING_UPLOAD = "PENDING_UPLOAD"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"
    # Ended by its owner (``POST /predictions/{id}/cancel``), or a step of an ensemble so ended.
    CANCELLED = "CANCELLED"
    # A step of an ensemble whose ``when`` was false: it never ran (never a top-level status).
    SKIPPED = "SKIPPED"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {
        PredictionStatus.COMPLETED,
        PredictionStatus.FAILED,
        PredictionStatus.EXPIRED,
        PredictionStatus.CANCELLED,
        PredictionStatus.SKIPPED,
    }
)
#: The statuses a top-level prediction can have (``SKIPPED`` is a step's only).
PREDICTION_STATUSES = tuple(status for status in PredictionStatus if status is not PredictionStatus.SKIPPED)


class CallbackKind(StrEnum):
    """How the gateway tells someone that a prediction finished."""

    NONE = "none"
    WEBHOOK = "webhook"
    TASK_TOKEN = "task_token"
    # An event on the gateway's EventBridge bus (no target: the bus is the gateway's own).
    EVENTBRIDGE = "eventbridge"
    # A shadow of another prediction (``target``: its ID): its outcome is recorded on that one.
    SHADOW = "shadow"
    # An item of a batch (``target``: the batch ID): its outcome is counted into the batch, which
    # notifies once when it ends; the item itself notifies nobody.
    BATCH = "batch"


class Callback(BaseModel):
    """A webhook URL or an EventBridge event for a top-level prediction, or a Step Functions task
    token for a step (see ``domain/notifiers/``: one module per kind)."""

    kind: CallbackKind = CallbackKind.NONE
    target: str | None = None


class PredictionError(BaseModel):
    """Why a prediction failed or expired, in words a user can act on."""

    code: str
    message: str
    step: str | None = None


class Assignment(BaseModel):
    """How a prediction's version was drawn from its service's traffic split.

    ``by`` is ``sticky`` (a hash of the metadata field ``key``: the same version every time for
    that value) or ``random`` (one uniform draw per prediction); ``bucket`` is the draw, in
    ``[0, 10000)``, and ``traffic`` the split it was drawn from.
    """

    by: Literal["sticky", "random"]
    key: str | None = None
    bucket: int
    traffic: dict[str, int]


class ModelInfo(BaseModel):
    """What actually produced (or was asked to produce) the output."""

    endpoint: str | None = None
    version: str | None = None
    # Set when the service's traffic was split between versions: how this version was chosen.
    assignment: Assignment | None = None

    @model_serializer(mode="wrap")
    def _without_unset_assignment(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Most predictions have no split: their ``model`` stays {"endpoint", "version"}, as before.
        dumped: dict[str, Any] = handler(self)
        if dumped.get("assignment", 0) is None:
            del dumped["assignment"]
        return dumped


class InputInfo(BaseModel):
    """The accepted input: what the model reads, fixed when the upload was accepted.

    ``sha256`` is the hex digest of the accepted object's bytes, ``size`` its length, and
    ``content_type`` the type the model is told it is (the request's ``content_type``).
    """

    sha256: str
    size: int
    content_type: str


class StepTiming(BaseModel):
    """Where a step's time went, in milliseconds (see ``domain/audit.step_timing``).

    ``queue_ms``: start until the model had the input; ``model_ms``: the model's receipt to its
    answer; ``overhead_ms``: the answer until the gateway recorded the end; ``total_ms``: all of
    it. The parts are None when no model answered (an ensemble, a skipped or refused step).
    """

    total_ms: int
    queue_ms: int | None = None
    model_ms: int | None = None
    overhead_ms: int | None = None


class StepOutcome(BaseModel):
    """What a finished step left for the steps after it (kept on the ensemble's record).

    ``output`` is the step's JSON output when it is small enough to travel inline; otherwise the
    step's output is read from ``output_uri``.
    """

    step: str
    service: str
    # A member of a fan-out step (its output is keyed by service under the step's name).
    fan_out: bool = False
    status: PredictionStatus
    started_at: datetime | None = None
    finished_at: datetime | None = None
    model: ModelInfo = Field(default_factory=ModelInfo)
    error: PredictionError | None = None
    optional: bool = False
    # What an optional step that failed contributes instead of an output.
    default: Any = None
    output_uri: str | None = None
    content_type: str | None = None
    output: Any = None
    inline: bool = False
    # The shadow versions the step was also sent to (copied from its record): the lineage of a
    # finished ensemble reads the shadows' outcomes of these steps only.
    shadow_versions: list[str] = Field(default_factory=empty_list)
    # When the model had the step's input and when it answered (see Prediction): the lineage's
    # per-step attribution (queue time, model time, gateway overhead) reads them.
    model_started_at: datetime | None = None
    model_finished_at: datetime | None = None


class ShadowOutcome(BaseModel):
    """What a shadow version answered for the same input (kept on the prediction it shadowed).

    Never the prediction's result and never read by later steps: only for the lineage and
    ``services compare``. ``output`` is the JSON output when small, else read from ``output_uri``.
    """

    prediction_id: str
    service: str
    version: str
    status: PredictionStatus
    started_at: datetime | None = None
    finished_at: datetime | None = None
    model: ModelInfo = Field(default_factory=ModelInfo)
    error: PredictionError | None = None
    output_uri: str | None = None
    content_type: str | None = None
    output: Any = None
    inline: bool = False


class Prediction(BaseModel):
    """One prediction: a top-level request, or one step of an ensemble (a *child*)."""

    model_config = ConfigDict(use_enum_values=False)

    prediction_id: str
    service: str
    owner: str
    status: PredictionStatus = PredictionStatus.PENDING_UPLOAD
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    content_type: str = "application/json"
    # What the model is asked to answer with (SageMaker's Accept), as the request gave it.
    accept: str = "application/json"
    metadata: dict[str, str] = Field(default_factory=dict)
    callback: Callback = Field(default_factory=Callback)
    parent_id: str | None = None
    step: str | None = None
    input_uri: str | None = None
    # Set once, when the upload is accepted (copied to ``input_uri``) and before anything reads it.
    input: InputInfo | None = None
    output_uri: str | None = None
    output_content_type: str | None = None
    failure_uri: str | None = None
    model: ModelInfo = Field(default_factory=ModelInfo)
    error: PredictionError | None = None
    upload_expires_at: datetime | None = None
    deadline_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    dispatched_at: datetime | None = None
    # When the model had the input and when it answered: SageMaker's receivedTime and eventTime of
    # an async notification, or the real-time call's start and end (None: no model answered).
    model_started_at: datetime | None = None
    model_finished_at: datetime | None = None
    # The audit outbox: the terminal status whose decision record is not yet delivered. Set in the
    # same conditional write that ends the prediction, removed once the record is delivered; the
    # sweeper re-delivers what stays set (see domain/auditing.py).
    audit_pending: str | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None
    webhook_attempts: list[dict[str, Any]] = Field(default_factory=empty_list)
    # Epoch seconds; DynamoDB TTL deletes the record some time after it (lazily: filter on it).
    expires_at: int | None = None
    # A step (child): whether the ensemble goes on without it when it fails, and whether its success
    # finishes the ensemble (the step the state machine completes with, see EnsembleSpec).
    optional: bool = False
    final_step: bool = False
    fan_out: bool = False
    # A member of a final fan-out step: how many members the fan-out has (the last one to succeed
    # finishes the ensemble). None when unknown: the Complete task finishes the ensemble then.
    fan_out_size: int | None = None
    # An optional step's declared default, as JSON text (DynamoDB would drop nulls inside a value).
    step_default: str | None = None
    # An ensemble (parent): the outcome of each finished step, by child prediction ID, written by the
    # step's notification so that later steps and the ensemble's output read one record.
    step_outputs: dict[str, StepOutcome] = Field(default_factory=dict)

    # A prediction that has shadows: their outcomes, by shadow prediction ID (see ShadowOutcome).
    shadow_outcomes: dict[str, ShadowOutcome] = Field(default_factory=dict)
    # The shadow versions this prediction was also sent to (set when they were started).
    shadow_versions: list[str] = Field(default_factory=empty_list)
    # A step (at any depth) of an ensemble that is itself a shadow: like the shadow, it never
    # starts shadows of its own.
    in_shadow: bool = False

    @property
    def is_step(self) -> bool:
        return self.parent_id is not None

    @property
    def is_shadow(self) -> bool:
        """A copy of another prediction sent to a shadow version (``parent_id`` is that one)."""
        return self.callback.kind is CallbackKind.SHADOW

    @property
    def under_shadow(self) -> bool:
        """A shadow, or a step (at any depth) of a shadow ensemble: it never starts shadows."""
        return self.is_shadow or self.in_shadow


#: The SageMaker framework containers whose default handlers and images serve a model directory.
MODEL_FRAMEWORKS = ("sklearn", "xgboost", "pytorch", "huggingface", "custom")
#: Environment variable names a SageMaker container accepts (``Environment`` of ``CreateModel``).
_ENVIRONMENT_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]{0,1023}$")


class ModelTarget(BaseModel):
    """Where a model service runs: a SageMaker endpoint, invoked asynchronously or in real time.

    ``model_data`` and what follows it say where the model comes from, in SageMaker's vocabulary:
    a directory or a ``model.tar.gz`` in the inference-toolkit layout (artefacts at the root,
    ``code/inference.py``, optional ``code/requirements.txt``) or an ``s3://`` URI of one, served
    by the ``framework``'s container (its default handlers fill in what ``inference.py`` leaves
    out). Without ``model_data`` the endpoint is assumed to exist already.
    """

    model_config = ConfigDict(extra="forbid")

    endpoint_name: str
    model_data: str | None = Field(default=None, min_length=1, max_length=1024)
    framework: Literal["sklearn", "xgboost", "pytorch", "huggingface", "custom"] = "custom"
    # The framework container's version (its image tag), e.g. "1.2-1" for scikit-learn.
    framework_version: str | None = Field(default=None, max_length=64)
    # A custom container image (``framework`` "custom" on AWS); the framework's image otherwise.
    image: str | None = Field(default=None, max_length=255)
    # The script under code/ that the container imports, as SAGEMAKER_PROGRAM names it.
    entry_point: str = Field(default="inference.py", pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.py)?$")
    # The container's environment variables (SageMaker's ``Environment``; at most 100 on AWS).
    environment: dict[str, str] = Field(default_factory=dict, max_length=100)
    invocation: Literal["async", "realtime"] = "async"
    # SageMaker async's InvocationTimeoutSeconds (default 900, at most 3600); real-time is 60 s.
    invocation_timeout_seconds: int = Field(default=900, ge=1, le=3600)
    # How long a request may wait in the endpoint's queue (SageMaker's RequestTTLSeconds, 60 s to
    # 6 h): an endpoint scaled to zero takes minutes to come up, and the deadline must allow for it.
    request_ttl_seconds: int = Field(default=3600, ge=60, le=21600)

    @field_validator("environment")
    @classmethod
    def _environment_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name, setting in value.items():
            if not _ENVIRONMENT_NAME.match(name):
                raise ValueError(f"'{name}' is not an environment variable name (letters, digits and '_')")
            if len(setting) > 1024:
                raise ValueError(f"the value of '{name}' is longer than 1024 characters")
        return value


class FanOut(BaseModel):
    """Run one child per active catalog model registered for ``task`` (a Map state)."""

    model_config = ConfigDict(extra="forbid")

    task: str


class EnsembleStep(BaseModel):
    """One step of an ensemble: which service it calls and how its input is built."""

    model_config = ConfigDict(extra="forbid")

    service: str | None = None
    fan_out: FanOut | None = None
    mapping: Any = "$.input"
    optional: bool = False
    default: Any = None
    # The content type this step's model is asked to answer with (SageMaker's Accept). Unset: the
    # ensemble request's ``accept`` for the final step, JSON for the others (later mappings read JSON).
    accept: str | None = Field(default=None, max_length=128)
    # Declarative ensembles: run the step only when this condition holds (``{"path": P, OP: V}``,
    # ``all``/``any``/``not``; see domain/conditions.py). False: the step is SKIPPED.
    when: dict[str, Any] | None = None
    # Steps this one runs after even though its mapping reads nothing of theirs.
    after: list[str] = Field(default_factory=empty_list)

    @field_validator("accept")
    @classmethod
    def _accept_is_media_range(cls, value: str | None) -> str | None:
        if value is not None and not is_accept(value):
            raise ValueError(
                f"'{value}' is not a media type or a comma-separated list of them as in an HTTP Accept header"
            )
        return value

    @model_validator(mode="after")
    def _one_target(self) -> EnsembleStep:
        if (self.service is None) == (self.fan_out is None):
            raise ValueError("a step names exactly one of 'service' or 'fan_out'")
        return self


class EnsembleSpec(BaseModel):
    """The DAG: per step, its target and input mapping, and either an ASL definition file (the
    escape hatch) or nothing more: the gateway infers the DAG and generates the state machine.
    """

    model_config = ConfigDict(extra="forbid")

    definition: str | None = None
    steps: dict[str, EnsembleStep] = Field(min_length=1)
    # Declarative ensembles: the ensemble's result, a step name or a mapping over input, steps and
    # metadata. None: the one step nothing else reads.
    output: str | dict[str, Any] | None = None
    state_machine_arn: str | None = None
    timeout_seconds: int | None = Field(default=None, ge=1)
    # Set at registration from the ASL: the step whose success ends the ensemble (its task goes
    # straight to the Complete task). That step's notification finishes the ensemble at once,
    # without waiting for the Complete task's Lambda hop.
    final_step: str | None = None


VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
#: The metadata field names a sticky key may name (the metadata keys a request may send).
STICKY_KEY_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


class VersionStatus(StrEnum):
    """Where a version of a service stands (SageMaker Model Registry's approval states, plus
    ``retired``). Only an ``approved`` version serves."""

    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    REJECTED = "rejected"
    # Approved once, then replaced by a promotion (a rollback may bring it back).
    RETIRED = "retired"


class VersionRecord(BaseModel):
    """One version of a service: what serves it (its own endpoint, or its own state machine) and
    its approval."""

    version: str
    status: VersionStatus
    registered_at: datetime
    description: str = ""
    model: ModelTarget | None = None
    ensemble: EnsembleSpec | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    note: str | None = None


class VersionEvent(BaseModel):
    """One entry of a service's history: who did what to which version, when."""

    at: datetime
    action: Literal[
        "registered", "updated", "approved", "rejected", "traffic", "shadow", "promoted", "rolled_back", "retired"
    ]
    by: str
    version: str | None = None
    note: str | None = None
    # ``traffic``, ``promoted``, ``rolled_back``: the split from then on (and its sticky key).
    traffic: dict[str, int] | None = None
    sticky_key: str | None = None
    # ``shadow``: the shadow versions from then on.
    shadow: list[str] | None = None


class Rollout(BaseModel):
    """A service's versions and how predictions are routed between them (kept by the gateway).

    ``traffic`` holds approved versions only, weights summing to 100. ``requested`` is a split a
    catalog entry asked for that names versions not yet approved: it applies when they are.
    ``previous`` are the splits before, the last one first (``services rollback``).
    """

    versions: dict[str, VersionRecord] = Field(default_factory=dict)
    traffic: dict[str, int] = Field(default_factory=dict)
    sticky_key: str | None = None
    shadow: list[str] = Field(default_factory=empty_list)
    requested: dict[str, int] | None = None
    requested_sticky_key: str | None = None
    previous: list[dict[str, Any]] = Field(default_factory=empty_list)
    history: list[VersionEvent] = Field(default_factory=empty_list)


class Service(BaseModel):
    """An entry of the service catalog: one model or an ensemble.

    A service has versions (see ``domain/rollout.py``): the entry's ``model`` / ``ensemble`` and
    ``version`` are those of its *primary* version (the one with the most traffic), and
    ``rollout`` keeps every version and the split between them. ``approval``, ``traffic``,
    ``sticky_key`` and ``shadow`` are what a catalog entry asks for; ``rollout`` is the gateway's.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Literal["model", "ensemble"]
    description: str = ""
    version: str = "1"
    active: bool = True
    # "required": every version waits for `services approve`, the first one too; "none": every
    # version is approved when applied; unset: the first version serves at once, later ones wait.
    approval: Literal["required", "none"] | None = None
    # The split between approved versions (weights summing to 100), and the metadata field whose
    # value makes the draw sticky; the versions that also get a copy of each input.
    traffic: dict[str, int] | None = None
    sticky_key: str | None = None
    shadow: list[str] | None = None
    rollout: Rollout | None = None
    content_types: list[str] = Field(default_factory=lambda: ["application/json"], min_length=1)
    max_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    # The decision records carry the input and output payloads themselves (small ones), not only
    # their S3 references and hashes: opt in only where the data may live as long as the audit.
    audit_payloads: bool = False
    # Catalog tasks this model serves; ensembles fan out over the active models of a task.
    tasks: list[str] = Field(default_factory=empty_list)
    model: ModelTarget | None = None
    ensemble: EnsembleSpec | None = None

    @field_validator("name")
    @classmethod
    def _name_is_slug(cls, value: str) -> str:
        if not SERVICE_NAME_PATTERN.match(value):
            raise ValueError("must be lowercase letters, digits and '-', starting with a letter or digit")
        return value

    @field_validator("version")
    @classmethod
    def _version_is_label(cls, value: str) -> str:
        if not VERSION_PATTERN.match(value):
            raise ValueError("must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit")
        return value

    @field_validator("sticky_key")
    @classmethod
    def _sticky_key_is_metadata_name(cls, value: str | None) -> str | None:
        if value is not None and not STICKY_KEY_PATTERN.match(value):
            raise ValueError("must name a metadata field (1 to 128 letters, digits, '_', '.' or '-')")
        return value

    @model_validator(mode="after")
    def _kind_matches_target(self) -> Service:
        if self.kind == "model" and self.model is None:
            raise ValueError("a 'model' service needs a 'model' section")
        if self.kind == "ensemble" and self.ensemble is None:
            raise ValueError("an 'ensemble' service needs an 'ensemble' section")
        return self

    def timeout_seconds(self) -> int:
        """How long one prediction of this service may take once running."""
        if self.model is not None:
            if self.model.invocation == "realtime":
                return 60
            return self.model.request_ttl_seconds + self.model.invocation_timeout_seconds
        assert self.ensemble is not None
        return self.ensemble.timeout_seconds or 3600

    def versions(self) -> dict[str, VersionRecord]:
        """Every version of the service (an entry stored before versions existed: its one version)."""
        if self.rollout is not None and self.rollout.versions:
            return self.rollout.versions
        return {
            self.version: VersionRecord(
                version=self.version,
                status=VersionStatus.APPROVED,
                registered_at=datetime(1970, 1, 1, tzinfo=UTC),
                description=self.description,
                model=self.model,
                ensemble=self.ensemble,
            )
        }

    def serving_traffic(self) -> dict[str, int]:
        """The split between approved versions (empty: no version may serve yet)."""
        if self.rollout is None:
            return {self.version: 100}
        return dict(self.rollout.traffic)

    def shadow_versions(self) -> list[str]:
        """The versions that also get a copy of each input (never answering it)."""
        return list(self.rollout.shadow) if self.rollout is not None else []

    def sticky(self) -> str | None:
        """The metadata field that makes the traffic draw sticky (None: one random draw each)."""
        return self.rollout.sticky_key if self.rollout is not None else None

    def at_version(self, version: str) -> Service | None:
        """The entry as one version serves it: that version's endpoint or state machine, and no
        rollout (what a prediction of that version, or an ensemble step calling it, needs)."""
        record = self.versions().get(version)
        if record is None:
            return None
        return self.model_copy(
            update={
                "version": version,
                "model": record.model,
                "ensemble": record.ensemble,
                "rollout": None,
                "traffic": None,
                "sticky_key": None,
                "shadow": None,
            }
        )


class EnsembleContext(BaseModel):
    """What every step of one ensemble execution needs, carried in the execution input.

    Built when the execution starts (process-input) from the ensemble's record and the catalog;
    get-transform-call receives it in each task's payload (``$$.Execution.Input``) and so starts a
    step without reading either. Targets are the catalog entries as they were at the start: an
    execution runs against one version of its ensemble, as it runs one version of its state machine.
    """

    prediction_id: str
    service: str
    owner: str
    metadata: dict[str, str] = Field(default_factory=dict)
    expires_at: int | None = None
    input_uri: str | None = None
    content_type: str = "application/json"
    # The ensemble request's ``accept``: what its final step is asked to answer with.
    accept: str = "application/json"
    steps: dict[str, EnsembleStep]
    targets: dict[str, Service] = Field(default_factory=dict)
    # The members of each fan-out step, as the state machine's Map iterates them.
    fan_out_members: dict[str, list[str]] = Field(default_factory=dict)
    # How the version of each target with a traffic split was drawn (once per ensemble prediction).
    assignments: dict[str, Assignment] = Field(default_factory=dict)
    # The shadow versions of each target that has some (each a version entry, as in ``targets``).
    shadow_targets: dict[str, list[Service]] = Field(default_factory=dict)
    # The execution is a shadow's (or runs under one): its steps start no shadows, and are marked
    # ``in_shadow`` so that an ensemble step under them starts none either.
    shadow: bool = False
    final_step: str | None = None
    # The ensemble's result: a step name, or a mapping over input, steps and metadata (declarative).
    output: str | dict[str, Any] | None = None
    # The request itself, when it is small JSON (``request_inline``); otherwise read from input_uri.
    request: Any = None
    request_inline: bool = False

    def final_fan_out_size(self, step: str) -> int | None:
        """How many members ``step`` fans out to when it is the fan-out that ends the ensemble."""
        if step != self.final_step or step not in self.fan_out_members:
            return None
        return len(self.fan_out_members[step])

    @classmethod
    def of(
        cls,
        prediction: Prediction,
        ensemble: Service,
        targets: dict[str, Service],
        fan_out_members: dict[str, list[str]] | None = None,
        assignments: dict[str, Assignment] | None = None,
        shadow_targets: dict[str, list[Service]] | None = None,
    ) -> EnsembleContext:
        """The context of ``prediction``, an execution of ``ensemble`` (request not inlined)."""
        assert ensemble.ensemble is not None
        return cls(
            prediction_id=prediction.prediction_id,
            service=ensemble.name,
            owner=prediction.owner,
            metadata=prediction.metadata,
            expires_at=prediction.expires_at,
            input_uri=prediction.input_uri,
            content_type=prediction.content_type,
            accept=prediction.accept,
            steps=ensemble.ensemble.steps,
            targets=targets,
            fan_out_members=fan_out_members or {},
            assignments=assignments or {},
            shadow_targets=shadow_targets or {},
            shadow=prediction.under_shadow,
            final_step=ensemble.ensemble.final_step,
            output=ensemble.ensemble.output,
        )


class Client(BaseModel):
    """An API client: who owns predictions and with what secret their webhooks are signed."""

    client_id: str
    name: str
    api_key_hash: str | None = None
    principal_arn: str | None = None
    # The newest first. During a rotation two are valid and webhooks carry both signatures.
    webhook_secrets: list[str] = Field(default_factory=empty_list)
    created_at: datetime = Field(default_factory=utcnow)


def new_batch_id() -> str:
    """Return a new batch ID: ``b`` and the same shape as a prediction ID (27 characters).

    Its items are ``{batch_id}-{line:06d}`` (34 characters): prediction IDs that are still a
    SageMaker ``InferenceId`` (at most 64) and a Step Functions execution name (at most 80).
    """
    stamp = utcnow().strftime("%Y%m%d%H%M%S")
    return f"b{stamp}{secrets.token_hex(6)}"


BATCH_ID_PATTERN = re.compile(r"^b[0-9]{14}[0-9a-f]{12}$")


def batch_item_id(batch_id: str, line: int) -> str:
    """The prediction ID of line ``line`` (1-based) of a batch: the same whatever the attempt."""
    return f"{batch_id}-{line:06d}"


class BatchStatus(StrEnum):
    """The lifecycle of a batch. ``finished_at`` (and the result) is set once every started item
    has ended: a batch FAILED or CANCELLED may still have items running until then."""

    PENDING_UPLOAD = "PENDING_UPLOAD"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    COMPLETED_WITH_FAILURES = "COMPLETED_WITH_FAILURES"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        return self not in (BatchStatus.PENDING_UPLOAD, BatchStatus.RUNNING)


class LineRange(BaseModel):
    """Lines a driver tick has taken from the manifest and is turning into items: ``count`` lines
    from line ``first_line`` at byte ``first_offset``. Kept on the batch until every one of them
    is an item that was dispatched (or has ended), so that a crashed tick is redone."""

    first_line: int
    first_offset: int
    count: int


class Batch(BaseModel):
    """A batch: one manifest of inputs, each line becoming an item (a prediction of ``service``).

    ``next_line`` / ``next_offset`` are the manifest cursor (the first line not yet taken);
    ``completed``, ``failed`` and ``cancelled`` count the items that ended, each once (see
    ``BatchStore.record_outcome``). Items started are ``next_line - 1``; running are those
    started that have not been counted.
    """

    batch_id: str
    service: str
    owner: str
    status: BatchStatus = BatchStatus.PENDING_UPLOAD
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    content_type: str = "application/json"
    max_concurrency: int = 10
    tolerated_failure_percent: int = 0
    metadata: dict[str, str] = Field(default_factory=dict)
    callback: Callback = Field(default_factory=Callback)
    manifest_uri: str | None = None
    # The copy the gateway reads (fixed when the manifest was accepted: a later upload changes nothing).
    accepted_manifest_uri: str | None = None
    manifest_sha256: str | None = None
    manifest_size: int | None = None
    total: int | None = None
    next_line: int = 1
    next_offset: int = 0
    pending_range: LineRange | None = None
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    error: PredictionError | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    result_uri: str | None = None
    notified_at: datetime | None = None
    upload_expires_at: datetime | None = None
    # When the sweeper looks at it next: the upload deadline, or the last progress plus the stall time.
    due_at: datetime | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None
    webhook_attempts: list[dict[str, Any]] = Field(default_factory=empty_list)
    expires_at: int | None = None

    @property
    def started(self) -> int:
        return self.next_line - 1

    @property
    def ended(self) -> int:
        return self.completed + self.failed + self.cancelled

    @property
    def running(self) -> int:
        return max(0, self.started - self.ended)


class BatchOutcome(BaseModel):
    """How one item of a batch ended (kept beside the batch, one entry per line): a line of the
    result file. ``output`` is the JSON output when small (``inline``); else ``output_uri``."""

    line: int
    prediction_id: str
    status: PredictionStatus
    output: Any = None
    inline: bool = False
    output_uri: str | None = None
    content_type: str | None = None
    error: PredictionError | None = None

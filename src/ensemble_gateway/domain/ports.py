"""The ports the domain needs from the outside world. Adapters implement them with boto3.

:class:`GatewayPorts` bundles them with the configuration, the clock and the logger: the one
object every use case of the gateway shares (bootstrap builds it once per cold start).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from .models import (
    Batch,
    BatchOutcome,
    BatchStatus,
    Client,
    LineRange,
    Prediction,
    PredictionStatus,
    Service,
    ShadowOutcome,
    StepOutcome,
    utcnow,
)

if TYPE_CHECKING:
    from .webhooks import Resolver


@dataclass(frozen=True)
class PresignedUpload:
    """A presigned S3 POST: the client sends ``fields`` plus its file to ``url``."""

    url: str
    fields: dict[str, str]
    expires_at: datetime
    max_bytes: int


@dataclass(frozen=True)
class StoredObject:
    """An object as stored: the hex SHA-256 of its bytes and its size."""

    sha256: str
    size: int


@dataclass(frozen=True)
class RealtimeResponse:
    """The answer of a real-time endpoint."""

    body: bytes
    content_type: str
    invoked_variant: str | None = None


@dataclass(frozen=True)
class PageCursor:
    """Where a page of an owner's predictions ended: the last record it covered, in list order."""

    created_at: datetime
    prediction_id: str


@dataclass(frozen=True)
class PredictionQuery:
    """Which of an owner's top-level predictions to list (``GET /predictions``), newest first.

    Parameters
    ----------
    owner
        The client whose predictions these are; never anyone else's.
    now
        Records past their retention (``expires_at`` before it) are left out, as ``GET`` 404s them.
    status, service
        Only records with this status, of this service (None: any).
    created_after
        Only records created strictly after this moment (None: any).
    limit
        At most this many records in the page.
    after
        Start after this position (the cursor of the previous page); None: from the newest.
    """

    owner: str
    now: datetime
    status: PredictionStatus | None = None
    service: str | None = None
    created_after: datetime | None = None
    limit: int = 20
    after: PageCursor | None = None


@dataclass(frozen=True)
class PredictionPage:
    """One page of a :class:`PredictionQuery`: the records, and where to go on (None: the end)."""

    predictions: list[Prediction]
    cursor: PageCursor | None = None


class PredictionStore(Protocol):
    def create(self, prediction: Prediction, *, claim_dispatch_until: datetime | None = None) -> bool:
        """Store a new record; False if the ID exists already.

        ``claim_dispatch_until``: the record is created with its dispatch taken until then (the
        creator dispatches it; ``claim_dispatch`` refuses everyone else).
        """

    def get(self, prediction_id: str) -> Prediction | None: ...

    def find_by_idempotency_key(self, owner: str, key: str) -> Prediction | None: ...

    def transition(
        self,
        prediction_id: str,
        from_statuses: Iterable[PredictionStatus],
        to_status: PredictionStatus,
        changes: Mapping[str, Any] | None = None,
    ) -> Prediction | None:
        """Move the record conditionally; the new record, or None if its status was not allowed."""

    def claim_dispatch(self, prediction_id: str, now: datetime, lease_seconds: int) -> Prediction | None:
        """Take the right to dispatch a RUNNING, not yet dispatched record (None: someone has it)."""

    def update(self, prediction_id: str, changes: Mapping[str, Any]) -> None: ...

    def append_webhook_attempt(self, prediction_id: str, attempt: Mapping[str, Any]) -> None: ...

    def claim_webhook(self, prediction_id: str, event_type: str, now: datetime, lease_seconds: int) -> bool:
        """Take the right to send one webhook attempt (False: another worker is sending it now)."""

    def release_webhook(self, prediction_id: str, event_type: str) -> None: ...

    def children(self, parent_id: str) -> list[Prediction]: ...

    def record_step_outcome(self, parent_id: str, child_id: str, outcome: StepOutcome) -> Prediction | None:
        """Leave a finished step's outcome on its ensemble's record; the updated ensemble record
        (None if it does not exist). Recording the same child again replaces its outcome."""

    def record_shadow_outcome(self, primary_id: str, shadow_id: str, outcome: ShadowOutcome) -> bool:
        """Leave a finished shadow's outcome on the prediction it shadowed (False: there is no
        such prediction). Recording the same shadow again replaces its outcome; nothing else of
        the record changes (its status, callback, step outcomes, ``updated_at``)."""

    def overdue(self, status: PredictionStatus, now: datetime, limit: int) -> list[Prediction]:
        """Records in ``status`` whose ``deadline_at`` has passed."""

    def audit_pending(self, status: PredictionStatus, before: datetime, limit: int) -> list[Prediction]:
        """Records whose decision record for ``status`` is not delivered (``audit_pending``) and
        that ended (``finished_at``) before ``before``: the audit outbox's backlog."""

    def list_owned(self, query: PredictionQuery) -> PredictionPage:
        """One page of ``query.owner``'s top-level predictions (never a step), newest first.

        Ordered by ``created_at`` then ``prediction_id``, both descending. At most ``query.limit``
        records; the cursor names the last record of the page when more may follow (a page may
        then hold fewer than ``limit``, even none: a store bounds the work of one page), and is
        None at the end. Records past their retention are never returned.
        """


class ServiceCatalog(Protocol):
    def get(self, name: str) -> Service | None: ...

    def get_many(self, names: Iterable[str]) -> dict[str, Service]:
        """The entries of ``names`` that exist, read together."""

    def list(self, active_only: bool = True) -> list[Service]: ...

    def put(self, service: Service) -> None: ...


class ClientDirectory(Protocol):
    def get(self, client_id: str) -> Client | None: ...

    def by_api_key_hash(self, api_key_hash: str) -> Client | None: ...

    def by_principal(self, principal_arn: str) -> Client | None: ...

    def put(self, client: Client) -> None: ...


class ObjectStore(Protocol):
    def presign_upload(self, key: str, content_type: str, max_bytes: int, expires_in: int) -> PresignedUpload: ...

    def presign_download(self, uri: str, expires_in: int) -> str: ...

    def read(self, uri: str) -> bytes: ...

    def write(self, key: str, body: bytes, content_type: str) -> str:
        """Store ``body`` under ``key``; return its ``s3://`` URI."""

    def accept_upload(self, upload_key: str, input_key: str) -> StoredObject | None:
        """Copy the object at ``upload_key`` to ``input_key``; the copy's digest and size.

        None when there is no object at ``upload_key``.
        """

    def delete(self, key: str) -> None:
        """Remove the object at ``key`` (nothing when there is none)."""

    def describe(self, uri: str) -> StoredObject | None:
        """The SHA-256 and size of the object at ``uri`` (S3's checksum when it has a whole-object
        one, else the object hashed as it is read); None when there is no such object."""

    def read_range(self, uri: str, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` (inclusive, as HTTP's Range) of the object at ``uri``; fewer
        at its end, none past it.

        Raises
        ------
        LookupError
            There is no such object, or it cannot be read.
        """

    def copy_from(self, source_uri: str, key: str) -> StoredObject | None:
        """Copy the object at ``source_uri`` (any bucket this gateway may read) to ``key`` of the
        gateway's bucket; the copy's digest and size. None when there is no object to copy (or it
        may not be read)."""


class ModelRuntime(Protocol):
    def invoke_async(
        self,
        endpoint: str,
        input_uri: str,
        content_type: str,
        inference_id: str,
        timeout_seconds: int,
        request_ttl_seconds: int = 3600,
        *,
        accept: str,
    ) -> str:
        """Queue an async inference; return the output location SageMaker will write.

        ``content_type`` and ``accept`` are SageMaker's ``ContentType`` and ``Accept``: what the
        input is, and what the model is asked to answer with.
        """

    def invoke_realtime(
        self, endpoint: str, body: bytes, content_type: str, inference_id: str, *, accept: str
    ) -> RealtimeResponse:
        """Invoke a real-time endpoint; its answer, whose ``content_type`` is what the model returned.

        Raises
        ------
        ModelInvocationError
            The model answered with an error (``message``: the model's own words).
        DispatchError
            SageMaker refused the request (unknown endpoint, invalid input).
        """


class WorkflowEngine(Protocol):
    def start(self, state_machine_arn: str, name: str, payload: Mapping[str, Any]) -> str: ...

    def succeed_task(self, token: str, output: Mapping[str, Any]) -> bool:
        """Resume a waiting task; False if the token is no longer valid (late or duplicate)."""

    def fail_task(self, token: str, error: str, cause: str) -> bool: ...

    def stop(self, state_machine_arn: str, name: str, error: str, cause: str) -> bool:
        """Stop the execution ``name`` (started by :meth:`start`); False if there is none.

        An execution that has already finished is not an error.
        """


class WebhookQueue(Protocol):
    def enqueue(self, job: Mapping[str, Any], delay_seconds: int) -> None: ...

    def dead_letter(self, job: Mapping[str, Any]) -> None: ...


class DispatchQueue(Protocol):
    def enqueue(self, prediction_id: str) -> None:
        """Hand a RUNNING prediction whose dispatch is not held to process-input, which dispatches it.

        Raises
        ------
        Exception
            The queue did not take it (the caller fails the prediction with the reason).
        """


class ShadowQueue(Protocol):
    def enqueue(self, job: Mapping[str, Any]) -> None:
        """Queue one shadow dispatch (``{"shadow_id": ...}``) for the shadow-dispatch function.

        Raises
        ------
        Exception
            The queue did not take the job (the caller marks the shadow failed).
        """


class BatchStore(Protocol):
    """Batches, and the outcome of each of their items (the store of ``domain/batch_driver.py``).

    Every write is conditional: a batch's cursor moves from the value its writer read, its
    counts move once per item, its status only from the statuses given.
    """

    def create(self, batch: Batch) -> bool:
        """Store a new batch (and its idempotency key's marker); False if either exists."""

    def get(self, batch_id: str) -> Batch | None: ...

    def find_by_idempotency_key(self, owner: str, key: str) -> Batch | None: ...

    def transition(
        self,
        batch_id: str,
        from_statuses: Iterable[BatchStatus],
        to_status: BatchStatus,
        changes: Mapping[str, Any] | None = None,
    ) -> Batch | None:
        """Move the batch conditionally; the new record, or None if its status was not allowed."""

    def update(self, batch_id: str, changes: Mapping[str, Any]) -> None:
        """Set (None: remove) fields of the batch, unconditionally (bookkeeping)."""

    def take_lines(self, batch_id: str, expected_next_line: int, taken: LineRange, next_offset: int) -> Batch | None:
        """Take ``taken`` (the lines from ``expected_next_line``) for items: the cursor moves past
        them and ``pending_range`` is set, only if the cursor is still at ``expected_next_line``,
        no range is pending and the batch is RUNNING. The new record, or None (someone else took
        them, or the batch stopped)."""

    def release_lines(self, batch_id: str, first_line: int) -> None:
        """Clear ``pending_range`` if it is still the one from ``first_line``."""

    def record_outcome(self, batch_id: str, outcome: BatchOutcome, now: datetime) -> bool:
        """Keep ``outcome`` and count it into the batch (``completed``, ``failed`` or
        ``cancelled``), both or neither; False (nothing changes) when that line's outcome was
        recorded already: an item is counted once, whatever the duplicates."""

    def outcomes(self, batch_id: str) -> list[BatchOutcome]:
        """Every recorded outcome of the batch, in line order."""

    def due(self, status: BatchStatus, now: datetime, limit: int) -> list[Batch]:
        """Batches in ``status`` whose ``due_at`` has passed (the sweeper's work list)."""

    def append_webhook_attempt(self, batch_id: str, attempt: Mapping[str, Any]) -> None: ...

    def claim_webhook(self, batch_id: str, event_type: str, now: datetime, lease_seconds: int) -> bool:
        """Take the right to send one webhook attempt (False: another worker is sending it now)."""

    def release_webhook(self, batch_id: str, event_type: str) -> None: ...


class BatchQueue(Protocol):
    def enqueue(self, job: Mapping[str, Any]) -> None:
        """Queue one tick of a batch (``{"batch_id": ...}``) for the batch driver.

        Raises
        ------
        Exception
            The queue did not take it (the caller fails, and its event source retries).
        """


class EventPublisher(Protocol):
    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        """Put one event (``detail_type``, ``detail`` as JSON) on the gateway's event bus.

        Raises
        ------
        Exception
            The bus did not take the event: the caller fails, and its event source retries.
        """


class AuditSink(Protocol):
    def put(self, records: list[dict[str, Any]]) -> None:
        """Deliver decision records (JSON-ready dicts, see ``domain/audit.py``) to the audit store.

        At least once: a record may be delivered again after a failure, with the same
        ``record_id`` (readers deduplicate on it).

        Raises
        ------
        Exception
            Some record was not taken: the caller keeps it pending and it is delivered again.
        """


class MetricsSink(Protocol):
    def put(self, values: Mapping[str, tuple[float, str]], dimensions: Mapping[str, str]) -> None:
        """Put one set of metric values (``name → (value, unit)``) with these dimensions."""


@dataclass
class GatewayConfig:
    """The values the use cases need from the settings (never read from the environment here)."""

    region: str
    upload_expiry_seconds: int = 900
    result_url_expiry_seconds: int = 3600
    retention_days: int = 30
    default_max_bytes: int = 10 * 1024 * 1024
    allow_loopback_http_webhooks: bool = False
    # The largest JSON input a request may carry inline (``input``); 0: inline inputs are refused.
    inline_input_max_bytes: int = 256 * 1024


@dataclass
class GatewayPorts:
    """What every use case shares: the configuration, the ports, the clock and the logger.

    Mutable on purpose: the use cases read it at each call, so a test (or the local runtime) that
    swaps a port or the logger changes it for all of them at once.

    Parameters
    ----------
    config
        The settings the use cases read.
    predictions, catalog, objects, models, workflows, webhooks
        The ports (DynamoDB, S3, SageMaker, Step Functions, SQS on AWS).
    resolve
        DNS resolution for the webhook URL policy (at submission and at delivery).
    clock
        The current time, timezone-aware.
    logger
        Anything with ``info(message, extra=...)`` (Powertools' Logger); None logs nothing.
    """

    config: GatewayConfig
    predictions: PredictionStore
    catalog: ServiceCatalog
    objects: ObjectStore
    models: ModelRuntime
    workflows: WorkflowEngine
    webhooks: WebhookQueue
    resolve: Resolver
    clock: Callable[[], datetime] = field(default=utcnow)
    logger: Any = None

    def log(self, message: str, **fields: Any) -> None:
        """Log ``message`` with ``fields`` as structured keys (nothing without a logger)."""
        if self.logger is not None:
            self.logger.info(message, extra=fields)

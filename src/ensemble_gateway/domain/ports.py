"""The ports the domain needs from the outside world. Adapters implement them with boto3."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from .models import Client, Prediction, PredictionStatus, Service, StepOutcome


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

    def overdue(self, status: PredictionStatus, now: datetime, limit: int) -> list[Prediction]:
        """Records in ``status`` whose ``deadline_at`` has passed."""


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

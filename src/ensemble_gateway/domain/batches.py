"""Batches as their owner sees them: ``POST /batches`` (submit, idempotent replay), ``GET
/batches/{id}`` (the document) and ``POST /batches/{id}/cancel``.

The batch is driven by ``batch_driver.py``: this module only records it, renders it and asks the
driver to move (a tick on the batch queue). Nothing here reads a manifest or starts an item, so the
API function that serves these routes may not invoke models either.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .api import BatchCountsDocument, BatchDocument, NewBatchRequest, NewBatchResponse, ResultDocument, UploadDocument
from .errors import ConflictError, InvalidRequestError, NotFoundError, ServiceInactiveError
from .intake import request_fingerprint, upload_deadline
from .media_types import same_media_type
from .models import (
    BATCH_ID_PATTERN,
    Batch,
    BatchStatus,
    Client,
    PredictionError,
    Service,
    new_batch_id,
)
from .records import manifest_upload_key

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .notifiers import Notifiers
    from .ports import BatchQueue, BatchStore, GatewayPorts, PresignedUpload

#: Why a batch its owner cancelled is CANCELLED (and why its lines never started are).
CANCELLED_BY_CLIENT = "cancelled by the client"
#: The largest manifest accepted (an upload form's limit; a manifest_uri object larger is refused).
MAX_MANIFEST_BYTES = 1024 * 1024 * 1024
#: The most lines a manifest may have.
MAX_MANIFEST_LINES = 100_000


def source_bucket(uri: str) -> str:
    """The bucket of an ``s3://bucket/key`` URI ('' when it is not one)."""
    if not uri.startswith("s3://"):
        return ""
    return uri[5:].partition("/")[0]


def check_source(uri: str, allowed: tuple[str, ...], own_bucket: str | None) -> None:
    """Refuse an object the gateway must not read for a client: a bucket its operator did not
    list, and always the gateway's own bucket (other clients' inputs and outputs are there: the
    gateway's role would read them for whoever asks, a confused deputy).

    Raises
    ------
    InvalidRequestError
        The bucket is not one this gateway reads client objects from.
    """
    bucket = source_bucket(uri)
    if not bucket or "/" not in uri[5:] or uri.endswith("/"):
        raise InvalidRequestError(f"'{uri[:200]}' is not an s3://bucket/key URI")
    if own_bucket is not None and bucket == own_bucket:
        raise InvalidRequestError("objects of the gateway's own bucket cannot be named; upload the manifest instead")
    if bucket not in allowed:
        listed = ", ".join(allowed) if allowed else "none"
        raise InvalidRequestError(
            f"this gateway reads client objects only from the buckets its operator listed ({listed}), "
            f"not '{bucket}'; upload the manifest instead (omit manifest_uri)"
        )


@dataclass
class Batches:
    """Submit, read and cancel batches.

    Parameters
    ----------
    ports
        The gateway's shared ports (catalog, objects, clock, config).
    notifiers
        Turns the request's ``notification`` into the batch's callback (as for a prediction).
    store
        The batches.
    queue
        The batch driver's queue (a tick after a cancel or a given manifest_uri).
    source_buckets
        The buckets a ``manifest_uri`` (and a manifest line's ``s3_uri``) may name.
    bucket
        The gateway's own bucket (never a source).
    """

    ports: GatewayPorts
    notifiers: Notifiers
    store: BatchStore
    queue: BatchQueue
    source_buckets: tuple[str, ...] = ()
    bucket: str | None = None

    def submit(
        self,
        client: Client,
        request: NewBatchRequest,
        *,
        idempotency_key: str | None = None,
        raw_body: Mapping[str, Any] | None = None,
    ) -> NewBatchResponse:
        """Accept a batch; the answer carries the manifest's upload form unless ``manifest_uri``.

        Raises
        ------
        NotFoundError
            The service is not in the catalog.
        ServiceInactiveError
            The service is not active.
        InvalidRequestError
            The content type, the notification or the manifest's bucket is not acceptable.
        ConflictError
            ``idempotency_key`` was used before with another body.
        """
        ports = self.ports
        fingerprint = request_fingerprint(raw_body if raw_body is not None else request.model_dump())
        if idempotency_key:
            existing = self.store.find_by_idempotency_key(client.client_id, idempotency_key)
            if existing is not None:
                return self._replay(existing, fingerprint)
        service = self._active_service(request.service)
        content_type = request.content_type or service.content_types[0]
        if not any(same_media_type(content_type, accepted) for accepted in service.content_types):
            raise InvalidRequestError(
                f"content_type '{content_type}' is not accepted by service '{service.name}'; "
                f"it accepts: {', '.join(service.content_types)}"
            )
        if request.manifest_uri is not None:
            check_source(request.manifest_uri, self.source_buckets, self.bucket)
        callback = self.notifiers.callback_for(request.notification)
        now = ports.clock()
        config = ports.config
        batch_id = new_batch_id()
        upload: PresignedUpload | None = None
        if request.manifest_uri is None:
            upload = ports.objects.presign_upload(
                manifest_upload_key(batch_id), "application/x-ndjson", MAX_MANIFEST_BYTES, config.upload_expiry_seconds
            )
        batch = Batch(
            batch_id=batch_id,
            service=service.name,
            owner=client.client_id,
            status=BatchStatus.PENDING_UPLOAD,
            created_at=now,
            updated_at=now,
            content_type=content_type,
            max_concurrency=request.max_concurrency,
            tolerated_failure_percent=request.tolerated_failure_percent,
            metadata=request.metadata,
            callback=callback,
            manifest_uri=request.manifest_uri,
            upload_expires_at=upload.expires_at if upload else None,
            # Without a form the first tick is queued now; the sweeper looks again if it is lost.
            due_at=upload_deadline(upload.expires_at, config) if upload else now + timedelta(minutes=2),
            idempotency_key=idempotency_key,
            request_hash=fingerprint,
            expires_at=int((now + timedelta(days=config.retention_days)).timestamp()),
        )
        if not self.store.create(batch):
            existing = (
                self.store.find_by_idempotency_key(client.client_id, idempotency_key) if idempotency_key else None
            )
            if existing is None:
                raise ConflictError("the batch could not be recorded; retry the request")
            return self._replay(existing, fingerprint)
        if request.manifest_uri is not None:
            self.queue.enqueue({"batch_id": batch_id, "manifest": True})
        ports.log("batch accepted", batch_id=batch_id, service=service.name, uploaded=upload is None)
        return NewBatchResponse(
            batch_id=batch_id,
            service=service.name,
            status=batch.status,
            created_at=now,
            upload=_document(upload) if upload else None,
        )

    def _replay(self, existing: Batch, fingerprint: str) -> NewBatchResponse:
        if existing.request_hash != fingerprint:
            raise ConflictError("Idempotency-Key was already used with a different request body")
        upload = None
        remaining = (
            int((existing.upload_expires_at - self.ports.clock()).total_seconds()) if existing.upload_expires_at else 0
        )
        if existing.status is BatchStatus.PENDING_UPLOAD and existing.manifest_uri is None and remaining > 0:
            upload = _document(
                self.ports.objects.presign_upload(
                    manifest_upload_key(existing.batch_id), "application/x-ndjson", MAX_MANIFEST_BYTES, remaining
                )
            )
        return NewBatchResponse(
            batch_id=existing.batch_id,
            service=existing.service,
            status=existing.status,
            created_at=existing.created_at,
            upload=upload,
        )

    def _active_service(self, name: str) -> Service:
        service = self.ports.catalog.get(name)
        if service is None:
            raise NotFoundError(f"service '{name}' does not exist")
        if not service.active:
            raise ServiceInactiveError(f"service '{name}' is not active")
        return service

    def get_owned(self, client: Client, batch_id: str) -> Batch:
        """The batch ``batch_id`` if ``client`` owns it.

        Raises
        ------
        NotFoundError
            Unknown, another client's, or past its retention: the same 404.
        """
        batch = self.store.get(batch_id) if BATCH_ID_PATTERN.match(batch_id) else None
        if batch is None or batch.owner != client.client_id:
            raise NotFoundError(f"batch '{batch_id[:64]}' does not exist")
        if batch.expires_at is not None and batch.expires_at < self.ports.clock().timestamp():
            raise NotFoundError(f"batch '{batch_id[:64]}' does not exist")
        return batch

    def cancel(self, client: Client, batch_id: str) -> Batch:
        """Cancel a batch that has not ended: nothing new starts; its running items are cancelled
        by the driver (a tick is queued), which then writes the result.

        Cancelling a cancelled batch answers it as it is (and queues a tick again).

        Raises
        ------
        NotFoundError
            As ``GET``.
        ConflictError
            It had ended already (COMPLETED, COMPLETED_WITH_FAILURES or FAILED).
        """
        batch = self.get_owned(client, batch_id)
        if batch.status is not BatchStatus.CANCELLED:
            if batch.status.is_terminal:
                raise ConflictError(
                    f"batch '{batch_id}' has already ended {batch.status.value}: only a PENDING_UPLOAD or RUNNING "
                    "batch can be cancelled"
                )
            now = self.ports.clock()
            cancelled = self.store.transition(
                batch_id,
                [BatchStatus.PENDING_UPLOAD, BatchStatus.RUNNING],
                BatchStatus.CANCELLED,
                {"error": PredictionError(code="Cancelled", message=CANCELLED_BY_CLIENT), "due_at": now},
            )
            if cancelled is None:
                current = self.store.get(batch_id)
                if current is None or current.status is not BatchStatus.CANCELLED:
                    status = current.status.value if current else "gone"
                    raise ConflictError(f"batch '{batch_id}' has already ended {status}")
                cancelled = current
            batch = cancelled
            self.ports.log("batch cancelled", batch_id=batch_id)
        if batch.finished_at is None:
            self.queue.enqueue({"batch_id": batch_id})
        return batch

    def document(self, batch: Batch) -> BatchDocument:
        """The public document of a batch, with a fresh download URL of its result when finished."""
        total = batch.total or 0
        result = None
        if batch.result_uri and batch.finished_at is not None:
            expiry = self.ports.config.result_url_expiry_seconds
            result = ResultDocument(
                url=self.ports.objects.presign_download(batch.result_uri, expiry),
                content_type="application/x-ndjson",
                expires_at=self.ports.clock() + timedelta(seconds=expiry),
            )
        return BatchDocument(
            batch_id=batch.batch_id,
            service=batch.service,
            status=batch.status,
            counts=BatchCountsDocument(
                total=total,
                pending=max(0, total - batch.started),
                running=batch.running,
                completed=batch.completed,
                failed=batch.failed,
                cancelled=batch.cancelled,
            ),
            created_at=batch.created_at,
            started_at=batch.started_at,
            finished_at=batch.finished_at,
            max_concurrency=batch.max_concurrency,
            tolerated_failure_percent=batch.tolerated_failure_percent,
            metadata=batch.metadata,
            error=batch.error,
            result=result,
        )


def _document(form: PresignedUpload) -> UploadDocument:
    return UploadDocument(url=form.url, fields=form.fields, expires_at=form.expires_at, max_bytes=form.max_bytes)

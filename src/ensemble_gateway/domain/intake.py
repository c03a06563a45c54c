"""Intake: a prediction request is accepted (or replayed) and answered with its upload form, and a
prediction awaiting its upload gets a new form on request."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .api import NewPredictionRequest, NewPredictionResponse, UploadDocument, UploadRenewalDocument
from .errors import ConflictError, InvalidRequestError, NotFoundError, ServiceInactiveError
from .media_types import same_media_type
from .models import Assignment, Client, ModelInfo, Prediction, PredictionStatus, Service, new_prediction_id
from .read_model import owned_prediction
from .records import upload_key
from .rollout import draw

if TYPE_CHECKING:
    from .notifiers import Notifiers
    from .ports import GatewayConfig, GatewayPorts, PresignedUpload

PENDING = PredictionStatus.PENDING_UPLOAD


def request_fingerprint(body: Mapping[str, Any]) -> str:
    """A stable hash of a request body, to tell an idempotent retry from a reused key."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class Intake:
    """``POST /predictions`` and ``GET /services``.

    Parameters
    ----------
    ports
        The gateway's shared ports.
    notifiers
        Turns the request's ``notification`` into the callback to record (each channel's module
        checks its own part of the request: intake knows none of them).
    """

    ports: GatewayPorts
    notifiers: Notifiers

    def submit(
        self,
        client: Client,
        request: NewPredictionRequest,
        *,
        idempotency_key: str | None = None,
        raw_body: Mapping[str, Any] | None = None,
    ) -> NewPredictionResponse:
        """Accept a prediction request and return where to upload its input.

        Raises
        ------
        NotFoundError
            The service is not in the catalog.
        ServiceInactiveError
            The service exists but is not active.
        InvalidRequestError
            The content type or the notification is not acceptable.
        ConflictError
            ``idempotency_key`` was used before with another body.
        """
        ports = self.ports
        config = ports.config
        fingerprint = request_fingerprint(raw_body if raw_body is not None else request.model_dump())
        if idempotency_key:
            existing = ports.predictions.find_by_idempotency_key(client.client_id, idempotency_key)
            if existing is not None:
                return self._replay(existing, fingerprint)

        service = self._active_service(request.service)
        # Stored, presigned and passed to the model as given; matched on its media type alone
        # ("application/json; charset=utf-8" is JSON to a service that accepts application/json).
        content_type = request.content_type or service.content_types[0]
        if not any(same_media_type(content_type, accepted) for accepted in service.content_types):
            raise InvalidRequestError(
                f"content_type '{content_type}' is not accepted by service '{service.name}'; "
                f"it accepts: {', '.join(service.content_types)}"
            )
        callback = self.notifiers.callback_for(request.notification)

        now = ports.clock()
        prediction_id = new_prediction_id()
        # The version is drawn once, here, and recorded: dispatch sends the prediction to it.
        drawn = draw(service, metadata=request.metadata, draw_id=prediction_id)
        upload = ports.objects.presign_upload(
            upload_key(prediction_id), content_type, self._max_bytes(service), config.upload_expiry_seconds
        )
        prediction = Prediction(
            prediction_id=prediction_id,
            service=service.name,
            owner=client.client_id,
            status=PENDING,
            created_at=now,
            updated_at=now,
            content_type=content_type,
            accept=request.accept,
            metadata=request.metadata,
            callback=callback,
            model=_model_info(service, drawn.version, drawn.assignment),
            upload_expires_at=upload.expires_at,
            deadline_at=upload_deadline(upload.expires_at, config),
            idempotency_key=idempotency_key,
            request_hash=fingerprint,
            expires_at=int((now + timedelta(days=config.retention_days)).timestamp()),
        )
        if not ports.predictions.create(prediction):
            # Lost a race with a concurrent request carrying the same idempotency key.
            existing = (
                ports.predictions.find_by_idempotency_key(client.client_id, idempotency_key)
                if idempotency_key
                else None
            )
            if existing is None:
                raise ConflictError("the prediction could not be recorded; retry the request")
            return self._replay(existing, fingerprint)
        ports.log("prediction accepted", prediction_id=prediction_id, service=service.name)
        return NewPredictionResponse(
            prediction_id=prediction_id,
            service=service.name,
            status=PENDING,
            created_at=now,
            metadata=request.metadata,
            upload=_document(upload),
        )

    def renew_upload(self, client: Client, prediction_id: str) -> UploadRenewalDocument:
        """A new upload form for a prediction of ``client`` that still awaits its input.

        The form is valid ``upload_expiry_seconds`` from now, for the same key, content type and
        size as the first; the prediction's upload window (when the sweeper expires it) moves with
        it, in a write conditional on PENDING_UPLOAD. The earlier forms stay valid until their own
        expiry (a presigned POST cannot be revoked): whichever upload comes first is accepted.

        Raises
        ------
        NotFoundError
            Unknown, another client's, a step, or past its retention (as ``GET``).
        ConflictError
            It no longer awaits an upload (its input was accepted, or it has ended): the status.
        """
        ports = self.ports
        prediction = owned_prediction(ports, client, prediction_id)
        if prediction.status is not PENDING:
            raise ConflictError(_not_pending(prediction_id, prediction.status))
        config = ports.config
        form = ports.objects.presign_upload(
            upload_key(prediction_id),
            prediction.content_type,
            self._max_bytes(ports.catalog.get(prediction.service)),
            config.upload_expiry_seconds,
        )
        # Never earlier than the window it replaces (the expiry setting may have been lowered).
        window = max(form.expires_at, prediction.upload_expires_at or form.expires_at)
        renewed = ports.predictions.transition(
            prediction_id,
            [PENDING],
            PENDING,
            {"upload_expires_at": window, "deadline_at": upload_deadline(window, config)},
        )
        if renewed is None:
            current = ports.predictions.get(prediction_id)
            raise ConflictError(_not_pending(prediction_id, current.status if current else None))
        ports.log("upload form renewed", prediction_id=prediction_id, expires_at=form.expires_at)
        return UploadRenewalDocument(prediction_id=prediction_id, upload=_document(form))

    def _max_bytes(self, service: Service | None) -> int:
        """The largest upload a form of ``service`` allows (the gateway's cap without a service)."""
        default_max = self.ports.config.default_max_bytes
        return min(service.max_bytes if service else default_max, default_max)

    def _replay(self, existing: Prediction, fingerprint: str) -> NewPredictionResponse:
        """The answer to a retried request: the same prediction, and an upload form only while one
        can still be used (PENDING_UPLOAD, window open), valid no longer than the first one."""
        ports = self.ports
        if existing.request_hash != fingerprint:
            raise ConflictError("Idempotency-Key was already used with a different request body")
        upload: UploadDocument | None = None
        remaining = (
            int((existing.upload_expires_at - ports.clock()).total_seconds()) if existing.upload_expires_at else 0
        )
        if existing.status is PENDING and remaining > 0:
            max_bytes = self._max_bytes(ports.catalog.get(existing.service))
            form = ports.objects.presign_upload(
                upload_key(existing.prediction_id), existing.content_type, max_bytes, remaining
            )
            upload = _document(form)
        return NewPredictionResponse(
            prediction_id=existing.prediction_id,
            service=existing.service,
            status=existing.status,
            created_at=existing.created_at,
            metadata=existing.metadata,
            upload=upload,
        )

    def _active_service(self, name: str) -> Service:
        service = self.ports.catalog.get(name)
        if service is None:
            raise NotFoundError(f"service '{name}' does not exist")
        if not service.active:
            raise ServiceInactiveError(f"service '{name}' is not active")
        return service

    def list_services(self) -> list[Service]:
        """The services a client may submit to (the active ones)."""
        return self.ports.catalog.list(active_only=True)


def upload_deadline(upload_expires_at: datetime, config: GatewayConfig) -> datetime:
    """When the sweeper expires a prediction whose upload form expires at ``upload_expires_at``:
    the URL is dead by then, and an upload that started just before has had time to land and be
    announced."""
    return upload_expires_at + timedelta(seconds=min(30, config.upload_expiry_seconds))


def _document(form: PresignedUpload) -> UploadDocument:
    return UploadDocument(url=form.url, fields=form.fields, expires_at=form.expires_at, max_bytes=form.max_bytes)


def _not_pending(prediction_id: str, status: PredictionStatus | None) -> str:
    now = f"is {status.value}" if status is not None else "no longer exists"
    return f"prediction '{prediction_id}' {now}: a new upload form is given only while it is PENDING_UPLOAD"


def _model_info(service: Service, version: str, assignment: Assignment | None) -> ModelInfo:
    served = service.at_version(version) or service
    endpoint = served.model.endpoint_name if served.model else None
    return ModelInfo(endpoint=endpoint, version=version, assignment=assignment)

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
from .errors import ConflictError, InputTooLargeError, InvalidRequestError, NotFoundError, ServiceInactiveError
from .media_types import is_json_type, same_media_type
from .models import (
    Assignment,
    Callback,
    Client,
    InputInfo,
    ModelInfo,
    Prediction,
    PredictionError,
    PredictionStatus,
    Service,
    new_prediction_id,
)
from .read_model import owned_prediction
from .records import DEADLINE_MARGIN_SECONDS, input_key, upload_key
from .rollout import Drawn, draw

if TYPE_CHECKING:
    from .completion import Completion
    from .dispatch import Dispatch
    from .notifiers import Notifiers
    from .ports import DispatchQueue, GatewayConfig, GatewayPorts, PresignedUpload

PENDING = PredictionStatus.PENDING_UPLOAD
RUNNING = PredictionStatus.RUNNING
# How long the request that created an inline prediction holds its dispatch (as process-input's
# lease): a redelivered hand-off waits for it rather than dispatching beside it.
INLINE_DISPATCH_LEASE_SECONDS = 300


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
    # Start predictions whose input came inline (None: inline inputs are refused).
    dispatch: Dispatch | None = None
    completion: Completion | None = None
    # process-input's queue: an inline prediction whose dispatch failed part-way is handed to it.
    dispatch_queue: DispatchQueue | None = None

    def submit(
        self,
        client: Client,
        request: NewPredictionRequest,
        *,
        idempotency_key: str | None = None,
        raw_body: Mapping[str, Any] | None = None,
    ) -> NewPredictionResponse:
        """Accept a prediction request and return where to upload its input, or, when the request
        carries its input inline (``input``), store it and start the prediction at once.

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
        InputTooLargeError
            The inline input is larger than the gateway or the service takes.
        """
        ports = self.ports
        config = ports.config
        fingerprint = request_fingerprint(raw_body if raw_body is not None else request.model_dump())
        if idempotency_key:
            existing = ports.predictions.find_by_idempotency_key(client.client_id, idempotency_key)
            if existing is not None:
                return self._replay(existing, fingerprint)

        service = self._active_service(request.service)
        if "input" in request.model_fields_set:
            return self._submit_inline(client, request, service, fingerprint, idempotency_key)
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

    def _submit_inline(
        self,
        client: Client,
        request: NewPredictionRequest,
        service: Service,
        fingerprint: str,
        idempotency_key: str | None,
    ) -> NewPredictionResponse:
        """A request carrying its input: stored as an accepted upload would be (``inputs/{id}``,
        immutable, its digest recorded), then dispatched in this request.

        The record is created RUNNING with its input and its dispatch held, so nothing else
        dispatches it beside this request. If dispatching fails part-way (an AWS error, say), the
        hold is released and the prediction handed to process-input, which retries as it does for
        uploads; if even that fails, the prediction ends FAILED with the reason. A crash of this
        function leaves it to the sweeper at its deadline, as for a model that never answers.
        """
        ports = self.ports
        config = ports.config
        if self.dispatch is None or self.completion is None or config.inline_input_max_bytes <= 0:
            raise InvalidRequestError(
                "this gateway takes no input inline (its InlineInputMaxBytes is 0): leave out 'input' and upload it"
            )
        body = _inline_body(request.input)
        content_type = self._inline_content_type(request, service)
        limit = min(config.inline_input_max_bytes, self._max_bytes(service))
        if len(body) > limit:
            raise InputTooLargeError(
                f"the input is {len(body)} bytes as compact JSON; at most {limit} are taken inline by service "
                f"'{service.name}': leave out 'input' and upload it (up to {self._max_bytes(service)} bytes)"
            )
        callback = self.notifiers.callback_for(request.notification)
        prediction_id = new_prediction_id()
        drawn = draw(service, metadata=request.metadata, draw_id=prediction_id)
        # Written before the record names it: no record ever points at an input that is not there.
        input_uri = ports.objects.write(input_key(prediction_id), body, content_type)
        accepted = InputInfo(sha256=hashlib.sha256(body).hexdigest(), size=len(body), content_type=content_type)
        prediction = self._inline_record(
            client, request, service, drawn, prediction_id, content_type, callback, input_uri, accepted
        )
        prediction = prediction.model_copy(update={"idempotency_key": idempotency_key, "request_hash": fingerprint})
        now = prediction.created_at
        if not ports.predictions.create(
            prediction, claim_dispatch_until=now + timedelta(seconds=INLINE_DISPATCH_LEASE_SECONDS)
        ):
            # Lost a race with a concurrent request carrying the same key: its input stands.
            ports.objects.delete(input_key(prediction_id))
            existing = (
                ports.predictions.find_by_idempotency_key(client.client_id, idempotency_key)
                if idempotency_key
                else None
            )
            if existing is None:
                raise ConflictError("the prediction could not be recorded; retry the request")
            return self._replay(existing, fingerprint)
        ports.log("prediction accepted with its input inline", prediction_id=prediction_id, service=service.name)
        self._start_inline(prediction, service, body)
        current = ports.predictions.get(prediction_id) or prediction
        return NewPredictionResponse(
            prediction_id=prediction_id,
            service=service.name,
            status=current.status,
            created_at=prediction.created_at,
            metadata=request.metadata,
            upload=None,
            input=accepted,
        )

    def _inline_content_type(self, request: NewPredictionRequest, service: Service) -> str:
        if request.content_type is not None:
            if not is_json_type(request.content_type):
                raise InvalidRequestError(
                    f"an input given inline is JSON, not '{request.content_type}': leave out 'input' and upload it"
                )
            if not any(same_media_type(request.content_type, accepted) for accepted in service.content_types):
                raise InvalidRequestError(
                    f"content_type '{request.content_type}' is not accepted by service '{service.name}'; "
                    f"it accepts: {', '.join(service.content_types)}"
                )
            return request.content_type
        for accepted in service.content_types:
            if is_json_type(accepted):
                return accepted
        raise InvalidRequestError(
            f"service '{service.name}' accepts no JSON ({', '.join(service.content_types)}), so its input cannot "
            "come inline: leave out 'input' and upload it"
        )

    def _inline_record(
        self,
        client: Client,
        request: NewPredictionRequest,
        service: Service,
        drawn: Drawn,
        prediction_id: str,
        content_type: str,
        callback: Callback,
        input_uri: str,
        accepted: InputInfo,
    ) -> Prediction:
        config = self.ports.config
        now = self.ports.clock()
        served = service.at_version(drawn.version) or service
        return Prediction(
            prediction_id=prediction_id,
            service=service.name,
            owner=client.client_id,
            status=RUNNING,
            created_at=now,
            updated_at=now,
            content_type=content_type,
            accept=request.accept,
            metadata=request.metadata,
            callback=callback,
            model=_model_info(service, drawn.version, drawn.assignment),
            input_uri=input_uri,
            input=accepted,
            started_at=now,
            deadline_at=now + timedelta(seconds=served.timeout_seconds() + DEADLINE_MARGIN_SECONDS),
            expires_at=int((now + timedelta(days=config.retention_days)).timestamp()),
        )

    def _start_inline(self, prediction: Prediction, service: Service, body: bytes) -> None:
        assert self.dispatch is not None and self.completion is not None
        ports = self.ports
        prediction_id = prediction.prediction_id
        try:
            self.dispatch.start_accepted(prediction, service, body)
            return
        except Exception as error:
            reason = f"{type(error).__name__}: {error}"
            ports.log("inline dispatch failed; handing it to process-input", prediction_id=prediction_id, error=reason)
        try:
            if self.dispatch_queue is None:
                raise RuntimeError("no dispatch queue is configured")
            # Released first: process-input claims it as it claims an upload's dispatch.
            ports.predictions.update(prediction_id, {"dispatch_lease_until": ports.clock() - timedelta(seconds=1)})
            self.dispatch_queue.enqueue(prediction_id)
        except Exception as error:
            ports.log("inline prediction could not be handed over", prediction_id=prediction_id, error=str(error))
            self.completion.finish(
                prediction_id,
                succeeded=False,
                error=PredictionError(
                    code="DispatchFailed",
                    message=f"the prediction could not be started ({reason[:300]}); submit it again",
                ),
                extra={"dispatched_at": ports.clock()},
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


def _inline_body(value: Any) -> bytes:
    """The bytes an inline input is stored as: compact UTF-8 JSON, keys in the order given."""
    if value is None:
        raise InvalidRequestError("'input' is null: give the input as a JSON value, or leave it out and upload it")
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError):
        raise InvalidRequestError("'input' must be plain JSON (no NaN or Infinity)") from None


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

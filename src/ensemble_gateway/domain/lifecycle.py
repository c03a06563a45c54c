"""The prediction lifecycle: submit, start, dispatch, finish, report.

Every step is written for at-least-once delivery: transitions are conditional writes, dispatch is
claimed with a lease, and a duplicate event finds the work done and only re-drives the callback.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .api import (
    NewPredictionRequest,
    NewPredictionResponse,
    PredictionDocument,
    ResultDocument,
    StepDocument,
    UploadDocument,
    step_document,
)
from .errors import (
    ConflictError,
    DispatchError,
    InvalidRequestError,
    ModelInvocationError,
    NotFoundError,
    ServiceInactiveError,
)
from .media_types import media_type, same_media_type
from .models import (
    Callback,
    CallbackKind,
    Client,
    EnsembleContext,
    InputInfo,
    ModelInfo,
    Prediction,
    PredictionError,
    PredictionStatus,
    Service,
    StepOutcome,
    new_prediction_id,
    utcnow,
)
from .notifications import InferenceResult, model_failure_message
from .ports import (
    ModelRuntime,
    ObjectStore,
    PredictionStore,
    ServiceCatalog,
    WebhookQueue,
    WorkflowEngine,
)
from .webhooks import Resolver, check_webhook_url

RUNNING = PredictionStatus.RUNNING
PENDING = PredictionStatus.PENDING_UPLOAD
COMPLETED = PredictionStatus.COMPLETED
FAILED = PredictionStatus.FAILED
EXPIRED = PredictionStatus.EXPIRED

# Extra time past a model's own timeout before the gateway declares the prediction lost.
DEADLINE_MARGIN_SECONDS = 120
# How long a dispatcher holds a prediction before another (a redelivered event) may take over.
DISPATCH_LEASE_SECONDS = 300
# Small JSON outputs travel inline in the Step Functions state so that Choice states can read them
# (and on the ensemble's record, so that later steps read no S3 object).
INLINE_OUTPUT_LIMIT = 4096
# A JSON request up to this size travels in the execution input: its steps read no S3 object. The
# state (and each task's payload) is limited to 256 KB, so larger requests stay in S3.
INLINE_REQUEST_LIMIT = 32 * 1024
JSON_TYPES = ("application/json", "text/json")


def upload_key(prediction_id: str) -> str:
    """Where the client's presigned POST puts the input: the only key an upload form can write."""
    return f"uploads/{prediction_id}"


def input_key(prediction_id: str) -> str:
    """The accepted input: copied from the upload once, by the gateway, before anything reads it."""
    return f"inputs/{prediction_id}"


def step_input_key(prediction_id: str) -> str:
    return f"steps/{prediction_id}"


def output_key(prediction_id: str) -> str:
    return f"outputs/{prediction_id}"


def failure_key(prediction_id: str) -> str:
    return f"failures/{prediction_id}"


def prediction_id_from_key(key: str) -> str | None:
    """The prediction an uploaded (or input, or step input) object belongs to; None for foreign keys."""
    for prefix in ("uploads/", "inputs/", "steps/"):
        if key.startswith(prefix):
            candidate = key[len(prefix) :]
            if candidate and "/" not in candidate:
                return candidate
    return None


def request_fingerprint(body: Mapping[str, Any]) -> str:
    """A stable hash of a request body, to tell an idempotent retry from a reused key."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class GatewayConfig:
    """The values the lifecycle needs from the settings (never read from the environment here)."""

    region: str
    upload_expiry_seconds: int = 900
    result_url_expiry_seconds: int = 3600
    retention_days: int = 30
    default_max_bytes: int = 10 * 1024 * 1024
    allow_loopback_http_webhooks: bool = False


@dataclass
class Gateway:
    """The use cases of the gateway, wired to its ports.

    Handlers build one per cold start and call one method per event.
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

    # ----------------------------------------------------------------------------------------
    # new-prediction
    # ----------------------------------------------------------------------------------------
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
            The content type or webhook URL is not acceptable.
        ConflictError
            ``idempotency_key`` was used before with another body.
        """
        fingerprint = request_fingerprint(raw_body if raw_body is not None else request.model_dump())
        if idempotency_key:
            existing = self.predictions.find_by_idempotency_key(client.client_id, idempotency_key)
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
        callback = Callback()
        if request.notification and request.notification.webhook:
            target = check_webhook_url(
                request.notification.webhook.url,
                self.resolve,
                allow_loopback_http=self.config.allow_loopback_http_webhooks,
            )
            callback = Callback(kind=CallbackKind.WEBHOOK, target=target.url)

        now = self.clock()
        prediction_id = new_prediction_id()
        max_bytes = min(service.max_bytes, self.config.default_max_bytes)
        upload = self.objects.presign_upload(
            upload_key(prediction_id), content_type, max_bytes, self.config.upload_expiry_seconds
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
            model=self._model_info(service),
            upload_expires_at=upload.expires_at,
            # Past this the sweeper expires it: the URL is dead and an upload that started just
            # before the expiry has had time to land and be announced.
            deadline_at=upload.expires_at + timedelta(seconds=min(30, self.config.upload_expiry_seconds)),
            idempotency_key=idempotency_key,
            request_hash=fingerprint,
            expires_at=int((now + timedelta(days=self.config.retention_days)).timestamp()),
        )
        if not self.predictions.create(prediction):
            # Lost a race with a concurrent request carrying the same idempotency key.
            existing = (
                self.predictions.find_by_idempotency_key(client.client_id, idempotency_key) if idempotency_key else None
            )
            if existing is None:
                raise ConflictError("the prediction could not be recorded; retry the request")
            return self._replay(existing, fingerprint)
        self._log("prediction accepted", prediction_id=prediction_id, service=service.name)
        return NewPredictionResponse(
            prediction_id=prediction_id,
            service=service.name,
            status=PENDING,
            created_at=now,
            metadata=request.metadata,
            upload=UploadDocument(
                url=upload.url, fields=upload.fields, expires_at=upload.expires_at, max_bytes=upload.max_bytes
            ),
        )

    def _replay(self, existing: Prediction, fingerprint: str) -> NewPredictionResponse:
        """The answer to a retried request: the same prediction, and an upload form only while one
        can still be used (PENDING_UPLOAD, window open), valid no longer than the first one."""
        if existing.request_hash != fingerprint:
            raise ConflictError("Idempotency-Key was already used with a different request body")
        upload: UploadDocument | None = None
        remaining = (
            int((existing.upload_expires_at - self.clock()).total_seconds()) if existing.upload_expires_at else 0
        )
        if existing.status is PENDING and remaining > 0:
            service = self.catalog.get(existing.service)
            max_bytes = min(
                service.max_bytes if service else self.config.default_max_bytes, self.config.default_max_bytes
            )
            form = self.objects.presign_upload(
                upload_key(existing.prediction_id), existing.content_type, max_bytes, remaining
            )
            upload = UploadDocument(
                url=form.url, fields=form.fields, expires_at=form.expires_at, max_bytes=form.max_bytes
            )
        return NewPredictionResponse(
            prediction_id=existing.prediction_id,
            service=existing.service,
            status=existing.status,
            created_at=existing.created_at,
            metadata=existing.metadata,
            upload=upload,
        )

    def _active_service(self, name: str) -> Service:
        service = self.catalog.get(name)
        if service is None:
            raise NotFoundError(f"service '{name}' does not exist")
        if not service.active:
            raise ServiceInactiveError(f"service '{name}' is not active")
        return service

    @staticmethod
    def _model_info(service: Service) -> ModelInfo:
        endpoint = service.model.endpoint_name if service.model else None
        return ModelInfo(endpoint=endpoint, version=service.version)

    def list_services(self) -> list[Service]:
        return self.catalog.list(active_only=True)

    # ----------------------------------------------------------------------------------------
    # process-input
    # ----------------------------------------------------------------------------------------
    def input_uploaded(self, bucket: str, key: str, size: int | None = None) -> None:
        """Handle one S3 ``ObjectCreated`` event for ``uploads/{id}``: accept the input and start
        the prediction, once.

        The upload is copied to ``inputs/{id}`` (which no upload form can write) and its digest
        recorded before anything reads it: what the model reads is what was accepted, whatever
        is uploaded afterwards. A duplicate event, a second upload, or one for an expired or
        unknown prediction, changes nothing. ``size`` (the event's) is only logged: the accepted
        copy's size is what counts.
        """
        prediction_id = prediction_id_from_key(key)
        if prediction_id is None or not key.startswith("uploads/"):
            self._log("ignoring object outside uploads/", key=key)
            return
        prediction = self.predictions.get(prediction_id)
        if prediction is None:
            self._log("ignoring upload for unknown prediction", prediction_id=prediction_id)
            return
        service = self.catalog.get(prediction.service)
        if prediction.status is PENDING:
            timeout = service.timeout_seconds() if service else 900
            now = self.clock()
            # The transition also takes the dispatch (one write): whoever starts it accepts the
            # input and dispatches it.
            moved = self.predictions.transition(
                prediction_id,
                [PENDING],
                RUNNING,
                {
                    "input_uri": f"s3://{bucket}/{input_key(prediction_id)}",
                    "started_at": now,
                    "deadline_at": now + timedelta(seconds=timeout + DEADLINE_MARGIN_SECONDS),
                    "dispatch_lease_until": now + timedelta(seconds=DISPATCH_LEASE_SECONDS),
                },
            )
            if moved is not None:
                self._dispatch_and_mark(moved, service, input_size=None)
                return
            self._log("upload raced with another transition", prediction_id=prediction_id)
        elif prediction.status.is_terminal:
            # A real-time prediction finishes inside process-input: if it crashed after the terminal
            # write, this redelivery is what drives the callback it skipped (idempotent).
            self._log("duplicate or late upload event: already finished", prediction_id=prediction_id)
            self.drive_callback(prediction)
            return
        elif prediction.input is not None:
            self._log(
                "upload after acceptance ignored: the accepted input stands", prediction_id=prediction_id, size=size
            )
        self.dispatch(prediction_id, service)

    def dispatch(self, prediction_id: str, service: Service | None = None, *, input_size: int | None = None) -> None:
        """Send a RUNNING prediction to its model or workflow, unless someone already has.

        ``service`` is the prediction's catalog entry when the caller has just read it (saves a read).
        """
        claimed = self.predictions.claim_dispatch(prediction_id, self.clock(), lease_seconds=DISPATCH_LEASE_SECONDS)
        if claimed is None:
            self._log("dispatch skipped: already dispatched, claimed or not running", prediction_id=prediction_id)
            return
        if service is None or service.name != claimed.service:
            service = self.catalog.get(claimed.service)
        self._dispatch_and_mark(claimed, service, input_size=input_size)

    def _dispatch_and_mark(self, claimed: Prediction, service: Service | None, *, input_size: int | None) -> None:
        if not claimed.is_step:
            accepted = self._accept_input(claimed)
            if accepted is None:
                return
            claimed, input_size = accepted, accepted.input.size if accepted.input else input_size
        dispatched = self.dispatch_claimed(claimed, service, input_size=input_size)
        # A real-time answer finished the prediction, marking it dispatched in the same write.
        realtime = service is not None and service.model is not None and service.model.invocation == "realtime"
        if dispatched and not realtime:
            self.predictions.update(claimed.prediction_id, {"dispatched_at": self.clock()})

    def _accept_input(self, claimed: Prediction) -> Prediction | None:
        """Fix the input of a prediction whose dispatch the caller holds: copy the upload to
        ``inputs/{id}`` and record its digest, unless an earlier attempt already did.

        Returns the prediction with its ``input``, or None when the upload is gone (the prediction
        is then FAILED with the reason).
        """
        if claimed.input is not None:
            return claimed  # accepted by an attempt that crashed before dispatching: never copy again
        prediction_id = claimed.prediction_id
        stored = self.objects.accept_upload(upload_key(prediction_id), input_key(prediction_id))
        if stored is None:
            self.finish(
                prediction_id,
                succeeded=False,
                error=PredictionError(
                    code="InputMissing",
                    message="the uploaded input is no longer in the bucket; submit the prediction again",
                ),
                extra={"dispatched_at": self.clock()},
            )
            return None
        accepted = InputInfo(sha256=stored.sha256, size=stored.size, content_type=claimed.content_type)
        self.predictions.update(prediction_id, {"input": accepted})
        # The copy is what counts from here on; a later upload lands beside nothing and is ignored.
        self.objects.delete(upload_key(prediction_id))
        self._log("input accepted", prediction_id=prediction_id, sha256=stored.sha256, size=stored.size)
        return claimed.model_copy(update={"input": accepted})

    def dispatch_claimed(
        self,
        prediction: Prediction,
        service: Service | None,
        *,
        input_size: int | None = None,
        body: bytes | None = None,
    ) -> bool:
        """Dispatch a prediction whose dispatch the caller holds; a refusal fails the prediction.

        ``body`` is the input when the caller has it in memory (a real-time step: no S3 round trip).
        Returns whether the prediction was dispatched (False: it was refused and is now FAILED).
        """
        try:
            if service is None:
                raise DispatchError(f"service '{prediction.service}' no longer exists")
            if not service.active and prediction.parent_id is None:
                raise DispatchError(f"service '{prediction.service}' was deactivated")
            self._dispatch_to(prediction, service, input_size=input_size, body=body)
        except DispatchError as error:
            self._log("dispatch failed", prediction_id=prediction.prediction_id, reason=error.message)
            self.finish(
                prediction.prediction_id,
                succeeded=False,
                error=PredictionError(code=error.code, message=error.message),
                extra={"dispatched_at": self.clock()},
            )
            return False
        return True

    def _dispatch_to(
        self, prediction: Prediction, service: Service, *, input_size: int | None, body: bytes | None
    ) -> None:
        if service.model is not None:
            if service.model.invocation == "async":
                assert prediction.input_uri is not None
                self.models.invoke_async(
                    service.model.endpoint_name,
                    prediction.input_uri,
                    prediction.content_type,
                    prediction.prediction_id,
                    service.model.invocation_timeout_seconds,
                    service.model.request_ttl_seconds,
                    accept=prediction.accept,
                )
                self._log(
                    "sent to async endpoint",
                    prediction_id=prediction.prediction_id,
                    endpoint=service.model.endpoint_name,
                    accept=prediction.accept,
                )
            else:
                self._invoke_realtime(prediction, service, body)
            return
        assert service.ensemble is not None
        if not service.ensemble.state_machine_arn:
            raise DispatchError(f"ensemble '{service.name}' has no state machine; register it again")
        self.workflows.start(
            service.ensemble.state_machine_arn,
            prediction.prediction_id,
            self.execution_input(prediction, service, input_size),
        )
        self._log("started ensemble", prediction_id=prediction.prediction_id, service=service.name)

    def execution_input(
        self, prediction: Prediction, service: Service, input_size: int | None = None
    ) -> dict[str, Any]:
        """The state machine input: references, the fan-out lists, and every step's context.

        ``context`` (a :class:`~.models.EnsembleContext`) is what get-transform-call needs to start
        any step of this execution without reading the catalog or the ensemble's record: the
        owner, metadata and retention, the step specs, every target's catalog entry as it was when
        the execution started, and the request itself when it is JSON of at most
        ``INLINE_REQUEST_LIMIT`` bytes.
        """
        assert service.ensemble is not None
        fanout: dict[str, list[dict[str, str]]] = {}
        targets: dict[str, Service] = {}
        active: list[Service] | None = None
        for step_name, step in service.ensemble.steps.items():
            if step.fan_out is not None:
                if active is None:
                    active = self.catalog.list(active_only=True)
                members = sorted(
                    (s for s in active if step.fan_out.task in s.tasks and s.kind == "model"), key=lambda s: s.name
                )
                fanout[step_name] = [{"service": s.name} for s in members]
                targets.update((s.name, s) for s in members)
        named = {
            step.service for step in service.ensemble.steps.values() if step.service and step.service not in targets
        }
        targets.update(self.catalog.get_many(sorted(named)))
        fan_out_members = {step: [m["service"] for m in listed] for step, listed in fanout.items()}
        context = EnsembleContext.of(prediction, service, targets, fan_out_members)
        if input_size is not None and input_size <= INLINE_REQUEST_LIMIT and is_json_type(prediction.content_type):
            assert prediction.input_uri is not None
            with contextlib.suppress(ValueError):
                context.request = json.loads(self.objects.read(prediction.input_uri))
                context.request_inline = True
        return {
            "prediction_id": prediction.prediction_id,
            "service": service.name,
            "input_uri": prediction.input_uri,
            "content_type": prediction.content_type,
            "fanout": fanout,
            "steps": {},
            "context": context.model_dump(mode="json", exclude_defaults=True),
        }

    def _invoke_realtime(self, prediction: Prediction, service: Service, body: bytes | None = None) -> None:
        """Call a real-time endpoint and finish the prediction with its answer.

        Why not publish to the success topic as SageMaker async does: that would add an SNS hop
        (and a notifications invocation) to every real-time prediction and ensemble step for no
        gain; ``finish`` is the one path both take.
        """
        assert service.model is not None
        if body is None:
            assert prediction.input_uri is not None
            body = self.objects.read(prediction.input_uri)
        endpoint = service.model.endpoint_name
        try:
            response = self.models.invoke_realtime(
                endpoint, body, prediction.content_type, prediction.prediction_id, accept=prediction.accept
            )
        except ModelInvocationError as error:
            # The failure object keeps SageMaker's whole answer; the user reads the model's message.
            failure_uri = self.objects.write(failure_key(prediction.prediction_id), error.detail.encode(), "text/plain")
            self.finish(
                prediction.prediction_id,
                succeeded=False,
                failure_uri=failure_uri,
                error=PredictionError(code="ModelError", message=error.message),
                extra={"dispatched_at": self.clock()},
            )
            return
        output_uri = self.objects.write(output_key(prediction.prediction_id), response.body, response.content_type)
        extra: dict[str, Any] = {"dispatched_at": self.clock()}
        if response.invoked_variant:
            extra["model"] = ModelInfo(endpoint=endpoint, version=f"{service.version}/{response.invoked_variant}")
        self.finish(
            prediction.prediction_id,
            succeeded=True,
            output_uri=output_uri,
            output_content_type=response.content_type,
            extra=extra,
            output_body=response.body,
        )

    # ----------------------------------------------------------------------------------------
    # notifications
    # ----------------------------------------------------------------------------------------
    def inference_finished(self, result: InferenceResult) -> None:
        """Handle one SageMaker (or gateway) ``InferenceResult`` notification."""
        if result.succeeded:
            self.finish(
                result.inference_id,
                succeeded=True,
                output_uri=result.response_parameters.output_location,
                output_content_type=result.response_parameters.content_type,
            )
        else:
            reason = result.failure_reason or "the model failed"
            # The user reads the model's own message; SageMaker's whole reason stays in the log (and
            # the failure object SageMaker wrote, at failure_uri).
            self._log("model failed", prediction_id=result.inference_id, failure_reason=reason)
            self.finish(
                result.inference_id,
                succeeded=False,
                failure_uri=result.failure_location,
                error=PredictionError(code="ModelError", message=model_failure_message(reason)),
            )

    def finish(
        self,
        prediction_id: str,
        *,
        succeeded: bool,
        output_uri: str | None = None,
        output_content_type: str | None = None,
        failure_uri: str | None = None,
        error: PredictionError | None = None,
        extra: Mapping[str, Any] | None = None,
        output_body: bytes | None = None,
    ) -> Prediction | None:
        """Move a RUNNING prediction to COMPLETED or FAILED once, then drive its callback.

        ``extra`` are further fields written in the same conditional update. ``output_body`` is the
        output when the caller has it in memory (a real-time answer): a step's outcome then reads
        nothing back from S3.

        A duplicate finds the record terminal and only re-drives the callback, which is itself
        idempotent (task tokens answer once; webhooks are delivered once per terminal status).
        """
        now = self.clock()
        changes: dict[str, Any] = {**(extra or {}), "finished_at": now}
        if succeeded:
            changes.update(output_uri=output_uri, output_content_type=output_content_type)
        else:
            changes.update(error=error, failure_uri=failure_uri)
        moved = self.predictions.transition(prediction_id, [RUNNING], COMPLETED if succeeded else FAILED, changes)
        if moved is None:
            current = self.predictions.get(prediction_id)
            if current is None:
                self._log("notification for unknown prediction", prediction_id=prediction_id)
                return None
            if not current.status.is_terminal:
                # PENDING_UPLOAD: a notification cannot precede the upload; refuse to guess.
                self._log(
                    "notification for a prediction that is not running",
                    prediction_id=prediction_id,
                    status=current.status,
                )
                return current
            self._log(
                "duplicate or late notification: re-driving callback only",
                prediction_id=prediction_id,
                status=current.status,
            )
            self.drive_callback(current)
            return current
        self._log("prediction finished", prediction_id=prediction_id, status=moved.status)
        self.drive_callback(moved, output=output_body)
        return moved

    def expire_or_timeout(self, prediction: Prediction) -> Prediction | None:
        """Called by the sweeper for a record past its deadline."""
        if prediction.status is PENDING:
            moved = self.predictions.transition(
                prediction.prediction_id,
                [PENDING],
                EXPIRED,
                {
                    "finished_at": self.clock(),
                    "error": PredictionError(
                        code="UploadExpired", message="no input was uploaded before the upload URL expired"
                    ),
                },
            )
        elif prediction.status is RUNNING:
            service = self.catalog.get(prediction.service)
            limit = service.timeout_seconds() if service else 0
            if service is not None and service.ensemble is not None:
                message = (
                    f"no result within {limit} s (the ensemble's timeout) plus {DEADLINE_MARGIN_SECONDS} s; "
                    "the ensemble never finished and its execution was stopped"
                )
                # Stopped before the terminal write: no step of it starts after the prediction is
                # declared failed, and a transient error leaves the record RUNNING for the next sweep.
                self._stop_execution(prediction, service, message)
            else:
                message = (
                    f"no result within {limit} s (the service's queue time and invocation timeout) "
                    f"plus {DEADLINE_MARGIN_SECONDS} s; the model never answered"
                )
            moved = self.predictions.transition(
                prediction.prediction_id,
                [RUNNING],
                FAILED,
                {"finished_at": self.clock(), "error": PredictionError(code="Timeout", message=message)},
            )
        else:
            return None
        if moved is not None:
            self.drive_callback(moved)
        return moved

    def _stop_execution(self, prediction: Prediction, service: Service, message: str) -> None:
        """Stop the Step Functions execution of an ensemble prediction (named after it).

        An execution that has already finished, or was never started, is not an error.
        """
        assert service.ensemble is not None
        arn = service.ensemble.state_machine_arn
        if not arn:
            return
        stopped = self.workflows.stop(arn, prediction.prediction_id, "Timeout", message)
        self._log(
            "stopped the execution of a timed-out ensemble" if stopped else "timed-out ensemble had no execution",
            prediction_id=prediction.prediction_id,
            service=service.name,
        )

    def sweep(self, limit: int = 100) -> int:
        """Expire predictions never uploaded and fail those whose model never answered."""
        now = self.clock()
        swept = 0
        for status in (PENDING, RUNNING):
            for prediction in self.predictions.overdue(status, now, limit):
                if self.expire_or_timeout(prediction) is not None:
                    swept += 1
        return swept

    def drive_callback(self, prediction: Prediction, output: bytes | None = None) -> None:
        """Tell whoever waits that ``prediction`` is terminal (``output``: its output, if in memory)."""
        kind = prediction.callback.kind
        if kind is CallbackKind.TASK_TOKEN and prediction.callback.target:
            self._answer_task(prediction, prediction.callback.target, output)
        elif kind is CallbackKind.WEBHOOK and prediction.callback.target:
            event_type = f"prediction.{prediction.status.value.lower()}"
            if event_type in prediction_delivered_events(prediction):
                return
            self.webhooks.enqueue(
                {"prediction_id": prediction.prediction_id, "event_type": event_type, "attempt": 0},
                delay_seconds=0,
            )

    def _answer_task(self, step: Prediction, token: str, output: bytes | None) -> None:
        """A step finished: leave its outcome on the ensemble's record, then resume the workflow.

        The outcome is recorded before the token is answered, so the steps the state machine runs
        next find it. When this step's success ends the ensemble (``final_step``), the ensemble is
        finished here and the Complete task that follows finds it done.
        """
        outcome = self.step_outcome(step, output)
        parent = None
        if step.parent_id is not None:
            parent = self.predictions.record_step_outcome(step.parent_id, step.prediction_id, outcome)
        if (
            step.status is COMPLETED
            and step.final_step
            and parent is not None
            and parent.status is RUNNING
            and _ends_ensemble(step, parent)
        ):
            self.complete_ensemble(parent, step.step)
        if step.status is COMPLETED:
            self.workflows.succeed_task(token, task_result(step, outcome))
            return
        if step.optional or step.status is PredictionStatus.SKIPPED:
            # The ensemble goes on without it (failed but optional, or its ``when`` was false);
            # later mappings see the step's declared default.
            self.workflows.succeed_task(token, {**task_result(step, outcome), "skipped": True})
            return
        error = step.error or PredictionError(code="StepFailed", message="the step failed")
        self.workflows.fail_task(
            token,
            "StepFailed",
            json.dumps(
                {
                    "step": step.step,
                    "prediction_id": step.prediction_id,
                    "code": error.code,
                    "message": error.message,
                }
            ),
        )

    def step_outcome(self, step: Prediction, output: bytes | None = None) -> StepOutcome:
        """What a finished step leaves for the steps after it: small JSON output inline.

        ``output`` is the step's output when the caller has it; otherwise it is read from S3.
        """
        outcome = StepOutcome(
            step=step.step or "",
            service=step.service,
            fan_out=step.fan_out,
            status=step.status,
            started_at=step.started_at,
            finished_at=step.finished_at,
            model=step.model,
            error=step.error,
            optional=step.optional,
            default=json.loads(step.step_default) if step.step_default else None,
            output_uri=step.output_uri,
            content_type=step.output_content_type,
        )
        if step.status is COMPLETED and step.output_uri and is_json_type(step.output_content_type or ""):
            raw = output
            if raw is None:
                try:
                    raw = self.objects.read(step.output_uri)
                except Exception:  # the reference still travels; readers fetch it themselves
                    raw = b""
            if 0 < len(raw) <= INLINE_OUTPUT_LIMIT:
                with contextlib.suppress(ValueError):
                    outcome.output = json.loads(raw)
                    outcome.inline = True
        return outcome

    def ensemble_outputs(self, parent: Prediction, names: set[str] | None = None) -> dict[str, Any]:
        """The outputs of the finished steps of ``parent`` (all, or only ``names``), parsed as JSON.

        A fan-out step's output is a dict keyed by member service. A failed optional step
        contributes its declared default. An output that is not JSON is passed on as
        ``{"output_uri": ...}``.
        """
        outputs: dict[str, Any] = {}
        ordered = sorted(parent.step_outputs.values(), key=lambda o: (o.finished_at or parent.created_at, o.service))
        for outcome in ordered:
            if names is not None and outcome.step not in names:
                continue
            if outcome.status is COMPLETED:
                value = outcome.output if outcome.inline else self._read_output(outcome)
            elif outcome.optional or outcome.status is PredictionStatus.SKIPPED:
                value = outcome.default
            else:
                continue
            if outcome.fan_out:
                outputs.setdefault(outcome.step, {})[outcome.service] = value
            else:
                outputs[outcome.step] = value
        return outputs

    def _read_output(self, outcome: StepOutcome) -> Any:
        if not outcome.output_uri:
            return None
        # An output without a content type may still be JSON: try it.
        if outcome.content_type is None or is_json_type(outcome.content_type):
            with contextlib.suppress(ValueError):
                return json.loads(self.objects.read(outcome.output_uri))
        # Not JSON (an image, say): later steps can only pass it on as a reference.
        return {"output_uri": outcome.output_uri}

    def complete_ensemble(
        self, parent: Prediction, output_step: str | None, *, result: Any = None
    ) -> Prediction | None:
        """Store an ensemble's output document and finish it (a no-op once it is terminal).

        The document's ``result`` is ``output_step``'s output, or ``result`` when given (an
        output mapping's value).
        """
        if parent.status.is_terminal:
            return parent
        outputs = self.ensemble_outputs(parent)
        if output_step:
            result = outputs.get(output_step)
        document = {"result": result, "steps": outputs}
        uri = self.objects.write(output_key(parent.prediction_id), json.dumps(document).encode(), "application/json")
        return self.finish(parent.prediction_id, succeeded=True, output_uri=uri, output_content_type="application/json")

    # ----------------------------------------------------------------------------------------
    # results
    # ----------------------------------------------------------------------------------------
    def document(self, prediction: Prediction) -> PredictionDocument:
        """The public document of a prediction, with a fresh download URL when completed."""
        result = None
        if prediction.status is COMPLETED and prediction.output_uri:
            expiry = self.config.result_url_expiry_seconds
            result = ResultDocument(
                url=self.objects.presign_download(prediction.output_uri, expiry),
                content_type=prediction.output_content_type or "application/octet-stream",
                expires_at=self.clock() + timedelta(seconds=expiry),
            )
        steps = None
        if prediction.status is COMPLETED and prediction.step_outputs:
            # A completed ensemble: every step has finished and left its outcome on this record, so
            # the lineage needs no query of the children.
            outcomes = sorted(
                prediction.step_outputs.items(),
                key=lambda item: (item[1].started_at or prediction.created_at, item[1].step),
            )
            steps = [
                StepDocument(
                    name=outcome.step,
                    service=outcome.service,
                    prediction_id=child_id,
                    status=outcome.status,
                    started_at=outcome.started_at,
                    finished_at=outcome.finished_at,
                    model=outcome.model,
                    error=outcome.error,
                )
                for child_id, outcome in outcomes
            ]
        else:
            service = self.catalog.get(prediction.service)
            if service is not None and service.kind == "ensemble":
                children = sorted(
                    self.predictions.children(prediction.prediction_id),
                    key=lambda child: (child.created_at, child.step or ""),
                )
                steps = [step_document(child) for child in children]
        return PredictionDocument(
            prediction_id=prediction.prediction_id,
            service=prediction.service,
            status=prediction.status,
            created_at=prediction.created_at,
            updated_at=prediction.updated_at,
            metadata=prediction.metadata,
            model=prediction.model,
            input=prediction.input,
            result=result,
            error=prediction.error,
            steps=steps,
        )

    def get_owned(self, client: Client, prediction_id: str) -> Prediction:
        """The prediction, if ``client`` owns it; otherwise 404 (no existence leak)."""
        prediction = self.predictions.get(prediction_id) if _valid_id(prediction_id) else None
        if prediction is None or prediction.owner != client.client_id or prediction.is_step:
            raise NotFoundError(f"prediction '{prediction_id[:64]}' does not exist")
        if prediction.expires_at is not None and prediction.expires_at < self.clock().timestamp():
            raise NotFoundError(f"prediction '{prediction_id[:64]}' does not exist")
        return prediction

    def _log(self, message: str, **fields: Any) -> None:
        if self.logger is not None:
            self.logger.info(message, extra=fields)


def _ends_ensemble(step: Prediction, parent: Prediction) -> bool:
    """Whether the success of ``step`` (a final step) leaves nothing else to run in ``parent``.

    A single step: yes. A member of a fan-out: once every member has succeeded (counted by service,
    so a retried member counts once).
    """
    if not step.fan_out:
        return True
    if not step.fan_out_size:
        return False
    succeeded = {
        outcome.service
        for outcome in parent.step_outputs.values()
        if outcome.step == step.step and outcome.status is COMPLETED
    }
    return len(succeeded) >= step.fan_out_size


def task_result(step: Prediction, outcome: StepOutcome) -> dict[str, Any]:
    """What a finished step passes on in the Step Functions state: a reference, small output inline
    (so that Choice states can read it)."""
    result: dict[str, Any] = {
        "prediction_id": step.prediction_id,
        "status": step.status.value,
        "output_uri": step.output_uri,
        "content_type": step.output_content_type,
    }
    if outcome.inline:
        result["output"] = outcome.output
    return result


def is_json_type(content_type: str) -> bool:
    """Whether a content type (parameters ignored) is JSON."""
    return media_type(content_type) in JSON_TYPES


def prediction_delivered_events(prediction: Prediction) -> set[str]:
    return {attempt.get("event_type", "") for attempt in prediction.webhook_attempts if attempt.get("delivered")}


def _valid_id(prediction_id: str) -> bool:
    from .models import PREDICTION_ID_PATTERN

    return bool(PREDICTION_ID_PATTERN.match(prediction_id))


def jitter() -> float:
    return random.random()

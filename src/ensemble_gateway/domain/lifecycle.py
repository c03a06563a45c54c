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
from .models import (
    Callback,
    CallbackKind,
    Client,
    ModelInfo,
    Prediction,
    PredictionError,
    PredictionStatus,
    Service,
    new_prediction_id,
    utcnow,
)
from .notifications import InferenceResult, inference_result_message
from .ports import (
    ModelRuntime,
    NotificationPublisher,
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
# Small JSON outputs travel inline in the Step Functions state so that Choice states can read them.
INLINE_OUTPUT_LIMIT = 4096


def input_key(prediction_id: str) -> str:
    return f"inputs/{prediction_id}"


def step_input_key(prediction_id: str) -> str:
    return f"steps/{prediction_id}"


def output_key(prediction_id: str) -> str:
    return f"outputs/{prediction_id}"


def failure_key(prediction_id: str) -> str:
    return f"failures/{prediction_id}"


def prediction_id_from_key(key: str) -> str | None:
    """The prediction an uploaded (or step input) object belongs to; None for foreign keys."""
    for prefix in ("inputs/", "steps/"):
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
    success_topic_arn: str
    error_topic_arn: str
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
    publisher: NotificationPublisher
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
        content_type = request.content_type or service.content_types[0]
        if content_type not in service.content_types:
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
            input_key(prediction_id), content_type, max_bytes, self.config.upload_expiry_seconds
        )
        prediction = Prediction(
            prediction_id=prediction_id,
            service=service.name,
            owner=client.client_id,
            status=PENDING,
            created_at=now,
            updated_at=now,
            content_type=content_type,
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
        if existing.request_hash != fingerprint:
            raise ConflictError("Idempotency-Key was already used with a different request body")
        service = self.catalog.get(existing.service)
        max_bytes = min(service.max_bytes if service else self.config.default_max_bytes, self.config.default_max_bytes)
        upload = self.objects.presign_upload(
            input_key(existing.prediction_id),
            existing.content_type,
            max_bytes,
            self.config.upload_expiry_seconds,
        )
        return NewPredictionResponse(
            prediction_id=existing.prediction_id,
            service=existing.service,
            status=existing.status,
            created_at=existing.created_at,
            metadata=existing.metadata,
            upload=UploadDocument(
                url=upload.url,
                fields=upload.fields,
                expires_at=min(upload.expires_at, existing.upload_expires_at or upload.expires_at),
                max_bytes=upload.max_bytes,
            ),
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
    def input_uploaded(self, bucket: str, key: str) -> None:
        """Handle one S3 ``ObjectCreated`` event for ``inputs/{id}``: start the prediction once.

        A duplicate event, or one for an expired or unknown prediction, changes nothing.
        """
        prediction_id = prediction_id_from_key(key)
        if prediction_id is None or not key.startswith("inputs/"):
            self._log("ignoring object outside inputs/", key=key)
            return
        prediction = self.predictions.get(prediction_id)
        if prediction is None:
            self._log("ignoring upload for unknown prediction", prediction_id=prediction_id)
            return
        service = self.catalog.get(prediction.service)
        if prediction.status is PENDING:
            timeout = service.timeout_seconds() if service else 900
            now = self.clock()
            moved = self.predictions.transition(
                prediction_id,
                [PENDING],
                RUNNING,
                {
                    "input_uri": f"s3://{bucket}/{key}",
                    "started_at": now,
                    "deadline_at": now + timedelta(seconds=timeout + DEADLINE_MARGIN_SECONDS),
                },
            )
            if moved is None:
                self._log("upload raced with another transition", prediction_id=prediction_id)
        elif prediction.status.is_terminal:
            self._log("duplicate or late upload event: already finished", prediction_id=prediction_id)
            return
        self.dispatch(prediction_id, service)

    def dispatch(self, prediction_id: str, service: Service | None = None) -> None:
        """Send a RUNNING prediction to its model or workflow, unless someone already has.

        ``service`` is the prediction's catalog entry when the caller has just read it (saves a read).
        """
        claimed = self.predictions.claim_dispatch(prediction_id, self.clock(), lease_seconds=300)
        if claimed is None:
            self._log("dispatch skipped: already dispatched, claimed or not running", prediction_id=prediction_id)
            return
        if service is None or service.name != claimed.service:
            service = self.catalog.get(claimed.service)
        try:
            if service is None:
                raise DispatchError(f"service '{claimed.service}' no longer exists")
            if not service.active and claimed.parent_id is None:
                raise DispatchError(f"service '{claimed.service}' was deactivated")
            self._dispatch_to(claimed, service)
        except DispatchError as error:
            self._log("dispatch failed", prediction_id=prediction_id, reason=error.message)
            self.predictions.update(prediction_id, {"dispatched_at": self.clock()})
            self.finish(prediction_id, succeeded=False, error=PredictionError(code=error.code, message=error.message))
            return
        self.predictions.update(prediction_id, {"dispatched_at": self.clock()})

    def _dispatch_to(self, prediction: Prediction, service: Service) -> None:
        assert prediction.input_uri is not None
        if service.model is not None:
            if service.model.invocation == "async":
                self.models.invoke_async(
                    service.model.endpoint_name,
                    prediction.input_uri,
                    prediction.content_type,
                    prediction.prediction_id,
                    service.model.invocation_timeout_seconds,
                    service.model.request_ttl_seconds,
                )
                self._log(
                    "sent to async endpoint",
                    prediction_id=prediction.prediction_id,
                    endpoint=service.model.endpoint_name,
                )
            else:
                self._invoke_realtime(prediction, service)
            return
        assert service.ensemble is not None
        if not service.ensemble.state_machine_arn:
            raise DispatchError(f"ensemble '{service.name}' has no state machine; register it again")
        self.workflows.start(
            service.ensemble.state_machine_arn,
            prediction.prediction_id,
            self.execution_input(prediction, service),
        )
        self._log("started ensemble", prediction_id=prediction.prediction_id, service=service.name)

    def execution_input(self, prediction: Prediction, service: Service) -> dict[str, Any]:
        """The state machine input: references only, plus the fan-out lists from the catalog."""
        assert service.ensemble is not None
        fanout: dict[str, list[dict[str, str]]] = {}
        for step_name, step in service.ensemble.steps.items():
            if step.fan_out is not None:
                members = [
                    s for s in self.catalog.list(active_only=True) if step.fan_out.task in s.tasks and s.kind == "model"
                ]
                fanout[step_name] = [{"service": s.name} for s in sorted(members, key=lambda s: s.name)]
        return {
            "prediction_id": prediction.prediction_id,
            "service": service.name,
            "input_uri": prediction.input_uri,
            "content_type": prediction.content_type,
            "fanout": fanout,
            "steps": {},
        }

    def _invoke_realtime(self, prediction: Prediction, service: Service) -> None:
        """Call a real-time endpoint, then publish what SageMaker async would have published."""
        assert service.model is not None and prediction.input_uri is not None
        body = self.objects.read(prediction.input_uri)
        received = self.clock()
        endpoint = service.model.endpoint_name
        common: dict[str, Any] = dict(
            region=self.config.region,
            inference_id=prediction.prediction_id,
            endpoint_name=endpoint,
            input_location=prediction.input_uri,
            input_content_type=prediction.content_type,
            received_at=received,
        )
        try:
            response = self.models.invoke_realtime(endpoint, body, prediction.content_type, prediction.prediction_id)
        except ModelInvocationError as error:
            failure_uri = self.objects.write(
                failure_key(prediction.prediction_id), error.message.encode(), "text/plain"
            )
            message = inference_result_message(
                **common, finished_at=self.clock(), failure_reason=error.message, failure_location=failure_uri
            )
            self.publisher.publish(self.config.error_topic_arn, message)
            return
        output_uri = self.objects.write(output_key(prediction.prediction_id), response.body, response.content_type)
        if response.invoked_variant:
            self.predictions.update(
                prediction.prediction_id,
                {"model": ModelInfo(endpoint=endpoint, version=f"{service.version}/{response.invoked_variant}")},
            )
        message = inference_result_message(
            **common,
            finished_at=self.clock(),
            output_location=output_uri,
            output_content_type=response.content_type,
        )
        self.publisher.publish(self.config.success_topic_arn, message)

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
            self.finish(
                result.inference_id,
                succeeded=False,
                failure_uri=result.failure_location,
                error=PredictionError(code="ModelError", message=result.failure_reason or "the model failed"),
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
    ) -> Prediction | None:
        """Move a RUNNING prediction to COMPLETED or FAILED once, then drive its callback.

        A duplicate finds the record terminal and only re-drives the callback, which is itself
        idempotent (task tokens answer once; webhooks are delivered once per terminal status).
        """
        now = self.clock()
        changes: dict[str, Any] = {"finished_at": now}
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
        self.drive_callback(moved)
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
            moved = self.predictions.transition(
                prediction.prediction_id,
                [RUNNING],
                FAILED,
                {
                    "finished_at": self.clock(),
                    "error": PredictionError(
                        code="Timeout",
                        message=f"no result within {limit} s (the service's queue time and invocation timeout) "
                        f"plus {DEADLINE_MARGIN_SECONDS} s; the model never answered",
                    ),
                },
            )
        else:
            return None
        if moved is not None:
            self.drive_callback(moved)
        return moved

    def sweep(self, limit: int = 100) -> int:
        """Expire predictions never uploaded and fail those whose model never answered."""
        now = self.clock()
        swept = 0
        for status in (PENDING, RUNNING):
            for prediction in self.predictions.overdue(status, now, limit):
                if self.expire_or_timeout(prediction) is not None:
                    swept += 1
        return swept

    def drive_callback(self, prediction: Prediction) -> None:
        """Tell whoever waits that ``prediction`` is terminal."""
        kind = prediction.callback.kind
        if kind is CallbackKind.TASK_TOKEN and prediction.callback.target:
            self._answer_task(prediction, prediction.callback.target)
        elif kind is CallbackKind.WEBHOOK and prediction.callback.target:
            event_type = f"prediction.{prediction.status.value.lower()}"
            if event_type in prediction_delivered_events(prediction):
                return
            self.webhooks.enqueue(
                {"prediction_id": prediction.prediction_id, "event_type": event_type, "attempt": 0},
                delay_seconds=0,
            )

    def _answer_task(self, prediction: Prediction, token: str) -> None:
        if prediction.status is COMPLETED:
            self.workflows.succeed_task(token, self.step_result(prediction))
            return
        if self._is_optional_step(prediction):
            # The ensemble goes on without it; later mappings see the step's declared default.
            self.workflows.succeed_task(token, {**self.step_result(prediction), "skipped": True})
            return
        error = prediction.error or PredictionError(code="StepFailed", message="the step failed")
        self.workflows.fail_task(
            token,
            "StepFailed",
            json.dumps(
                {
                    "step": prediction.step,
                    "prediction_id": prediction.prediction_id,
                    "code": error.code,
                    "message": error.message,
                }
            ),
        )

    def _is_optional_step(self, prediction: Prediction) -> bool:
        if prediction.parent_id is None or prediction.step is None:
            return False
        parent = self.predictions.get(prediction.parent_id)
        service = self.catalog.get(parent.service) if parent else None
        if service is None or service.ensemble is None:
            return False
        step = service.ensemble.steps.get(prediction.step)
        return bool(step and step.optional)

    def step_result(self, prediction: Prediction) -> dict[str, Any]:
        """What a finished step passes on in the Step Functions state: a reference, small output."""
        result: dict[str, Any] = {
            "prediction_id": prediction.prediction_id,
            "status": prediction.status.value,
            "output_uri": prediction.output_uri,
            "content_type": prediction.output_content_type,
        }
        if prediction.output_uri and (prediction.output_content_type or "").startswith("application/json"):
            try:
                raw = self.objects.read(prediction.output_uri)
            except Exception:
                raw = b""
            if 0 < len(raw) <= INLINE_OUTPUT_LIMIT:
                with contextlib.suppress(ValueError):
                    result["output"] = json.loads(raw)
        return result

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


def prediction_delivered_events(prediction: Prediction) -> set[str]:
    return {attempt.get("event_type", "") for attempt in prediction.webhook_attempts if attempt.get("delivered")}


def _valid_id(prediction_id: str) -> bool:
    from .models import PREDICTION_ID_PATTERN

    return bool(PREDICTION_ID_PATTERN.match(prediction_id))


def jitter() -> float:
    return random.random()

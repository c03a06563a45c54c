"""Dispatch: an uploaded input is accepted once and sent to its model or workflow once.

Written for at-least-once delivery of S3 events: the ``PENDING_UPLOAD → RUNNING`` transition
takes the dispatch in the same write, and dispatch is otherwise claimed with a lease.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .errors import DispatchError, ModelInvocationError
from .media_types import is_json_type
from .models import (
    Assignment,
    EnsembleContext,
    InputInfo,
    Prediction,
    PredictionError,
    PredictionStatus,
    Service,
    VersionStatus,
)
from .records import DEADLINE_MARGIN_SECONDS, failure_key, input_key, output_key, prediction_id_from_key, upload_key
from .rollout import NoServingVersionError, draw, shadows_of

if TYPE_CHECKING:
    from .completion import Completion
    from .ports import GatewayPorts
    from .shadows import Shadows

RUNNING = PredictionStatus.RUNNING
PENDING = PredictionStatus.PENDING_UPLOAD
# How long a dispatcher holds a prediction before another (a redelivered event) may take over.
DISPATCH_LEASE_SECONDS = 300
# A JSON request up to this size travels in the execution input: its steps read no S3 object. The
# state (and each task's payload) is limited to 256 KB, so larger requests stay in S3.
INLINE_REQUEST_LIMIT = 32 * 1024


@dataclass
class Dispatch:
    """Accepts uploads and dispatches predictions (process-input; steps of get-transform-call).

    Parameters
    ----------
    ports
        The gateway's shared ports.
    completion
        Finishes what dispatch ends itself: a real-time answer, a refused dispatch, a missing upload.
    shadows
        Starts a dispatched prediction's shadows (set by the wiring; None: no shadows).
    """

    ports: GatewayPorts
    completion: Completion
    shadows: Shadows | None = None

    def input_uploaded(self, bucket: str, key: str, size: int | None = None) -> None:
        """Handle one S3 ``ObjectCreated`` event for ``uploads/{id}``: accept the input and start
        the prediction, once.

        The upload is copied to ``inputs/{id}`` (which no upload form can write) and its digest
        recorded before anything reads it: what the model reads is what was accepted, whatever
        is uploaded afterwards. A duplicate event, a second upload, or one for an expired or
        unknown prediction, changes nothing. ``size`` (the event's) is only logged: the accepted
        copy's size is what counts.
        """
        ports = self.ports
        prediction_id = prediction_id_from_key(key)
        if prediction_id is None or not key.startswith("uploads/"):
            ports.log("ignoring object outside uploads/", key=key)
            return
        prediction = ports.predictions.get(prediction_id)
        if prediction is None:
            ports.log("ignoring upload for unknown prediction", prediction_id=prediction_id)
            return
        service = ports.catalog.get(prediction.service)
        if prediction.status is PENDING:
            timeout = service.timeout_seconds() if service else 900
            now = ports.clock()
            # The transition also takes the dispatch (one write): whoever starts it accepts the
            # input and dispatches it.
            moved = ports.predictions.transition(
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
            ports.log("upload raced with another transition", prediction_id=prediction_id)
        elif prediction.status is PredictionStatus.CANCELLED:
            # Cancelled before its upload arrived (or was accepted): the upload is never read.
            ports.log("upload for a cancelled prediction ignored", prediction_id=prediction_id)
            return
        elif prediction.status.is_terminal:
            # A real-time prediction finishes inside process-input: if it crashed after the terminal
            # write, this redelivery is what drives the callback it skipped (idempotent).
            ports.log("duplicate or late upload event: already finished", prediction_id=prediction_id)
            self.completion.notify(prediction)
            return
        elif prediction.input is not None:
            ports.log(
                "upload after acceptance ignored: the accepted input stands", prediction_id=prediction_id, size=size
            )
        self.dispatch(prediction_id, service)

    def dispatch(self, prediction_id: str, service: Service | None = None, *, input_size: int | None = None) -> None:
        """Send a RUNNING prediction to its model or workflow, unless someone already has.

        ``service`` is the prediction's catalog entry when the caller has just read it (saves a read).
        """
        ports = self.ports
        claimed = ports.predictions.claim_dispatch(prediction_id, ports.clock(), lease_seconds=DISPATCH_LEASE_SECONDS)
        if claimed is None:
            ports.log("dispatch skipped: already dispatched, claimed or not running", prediction_id=prediction_id)
            return
        if service is None or service.name != claimed.service:
            service = ports.catalog.get(claimed.service)
        self._dispatch_and_mark(claimed, service, input_size=input_size)

    def start_accepted(self, claimed: Prediction, service: Service, body: bytes) -> None:
        """Dispatch a prediction created RUNNING with its input accepted and its dispatch held by
        the caller (an input given inline), as process-input does once it has accepted an upload;
        ``body`` is that input, in memory (no S3 read).

        Raises
        ------
        Exception
            An AWS error part-way: the caller still holds the dispatch and hands it on.
        """
        self._dispatch_and_mark(claimed, service, input_size=len(body), body=body)

    def _dispatch_and_mark(
        self, claimed: Prediction, service: Service | None, *, input_size: int | None, body: bytes | None = None
    ) -> None:
        if not claimed.is_step:
            accepted = self._accept_input(claimed)
            if accepted is None:
                return
            claimed, input_size = accepted, accepted.input.size if accepted.input else input_size
        served: Service | None = service
        if service is not None and not claimed.is_step:
            resolved = self._served_version(claimed, service)
            if resolved is None:
                return
            claimed, served = resolved
        dispatched = self.dispatch_claimed(claimed, served, input_size=input_size, body=body)
        # A real-time answer finished the prediction, marking it dispatched in the same write.
        realtime = served is not None and served.model is not None and served.model.invocation == "realtime"
        if dispatched and not realtime:
            self.ports.predictions.update(claimed.prediction_id, {"dispatched_at": self.ports.clock()})
        if dispatched and self.shadows is not None and service is not None and not claimed.is_step:
            # Only now: the prediction is on its way (a real-time one has answered) and waits for
            # nothing of its shadows; ``start`` never raises.
            served_version = claimed.model.version or service.version
            targets = [v for v in (service.at_version(s) for s in shadows_of(service, served_version)) if v is not None]
            self.shadows.start(claimed, targets)

    def _served_version(self, claimed: Prediction, service: Service) -> tuple[Prediction, Service] | None:
        """The version entry a top-level prediction goes to: the one drawn at intake while it is
        approved; drawn again (and recorded) when it was rejected or retired since, or is gone.

        Returns None when no version may serve: the prediction is then FAILED with the reason.
        """
        versions = service.versions()
        recorded = claimed.model.version
        record = versions.get(recorded) if recorded is not None else None
        if record is not None and record.status is VersionStatus.APPROVED:
            served = service.at_version(record.version)
            assert served is not None
            return claimed, served
        try:
            drawn = draw(service, metadata=claimed.metadata, draw_id=claimed.prediction_id)
        except NoServingVersionError as error:
            self.completion.finish(
                claimed.prediction_id,
                succeeded=False,
                error=PredictionError(code=error.code, message=error.message),
                extra={"dispatched_at": self.ports.clock()},
            )
            return None
        served = service.at_version(drawn.version)
        assert served is not None
        model = claimed.model.model_copy(
            update={
                "version": drawn.version,
                "endpoint": served.model.endpoint_name if served.model else None,
                "assignment": drawn.assignment,
            }
        )
        self.ports.predictions.update(claimed.prediction_id, {"model": model})
        self.ports.log(
            "version drawn again at dispatch",
            prediction_id=claimed.prediction_id,
            recorded=recorded,
            version=drawn.version,
        )
        return claimed.model_copy(update={"model": model}), served

    def _accept_input(self, claimed: Prediction) -> Prediction | None:
        """Fix the input of a prediction whose dispatch the caller holds: copy the upload to
        ``inputs/{id}`` and record its digest, unless an earlier attempt already did.

        Returns the prediction with its ``input``, or None when the upload is gone (the prediction
        is then FAILED with the reason).
        """
        if claimed.input is not None:
            return claimed  # accepted by an attempt that crashed before dispatching: never copy again
        ports = self.ports
        prediction_id = claimed.prediction_id
        stored = ports.objects.accept_upload(upload_key(prediction_id), input_key(prediction_id))
        if stored is None:
            self.completion.finish(
                prediction_id,
                succeeded=False,
                error=PredictionError(
                    code="InputMissing",
                    message="the uploaded input is no longer in the bucket; submit the prediction again",
                ),
                extra={"dispatched_at": ports.clock()},
            )
            return None
        accepted = InputInfo(sha256=stored.sha256, size=stored.size, content_type=claimed.content_type)
        ports.predictions.update(prediction_id, {"input": accepted})
        # The copy is what counts from here on; a later upload lands beside nothing and is ignored.
        ports.objects.delete(upload_key(prediction_id))
        ports.log("input accepted", prediction_id=prediction_id, sha256=stored.sha256, size=stored.size)
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
            self.ports.log("dispatch failed", prediction_id=prediction.prediction_id, reason=error.message)
            self.completion.finish(
                prediction.prediction_id,
                succeeded=False,
                error=PredictionError(code=error.code, message=error.message),
                extra={"dispatched_at": self.ports.clock()},
            )
            return False
        return True

    def _dispatch_to(
        self, prediction: Prediction, service: Service, *, input_size: int | None, body: bytes | None
    ) -> None:
        ports = self.ports
        if service.model is not None:
            if service.model.invocation == "async":
                assert prediction.input_uri is not None
                ports.models.invoke_async(
                    service.model.endpoint_name,
                    prediction.input_uri,
                    prediction.content_type,
                    prediction.prediction_id,
                    service.model.invocation_timeout_seconds,
                    service.model.request_ttl_seconds,
                    accept=prediction.accept,
                )
                ports.log(
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
        ports.workflows.start(
            service.ensemble.state_machine_arn,
            prediction.prediction_id,
            self.execution_input(prediction, service, input_size, body=body),
        )
        ports.log("started ensemble", prediction_id=prediction.prediction_id, service=service.name)

    def execution_input(
        self, prediction: Prediction, service: Service, input_size: int | None = None, *, body: bytes | None = None
    ) -> dict[str, Any]:
        """The state machine input: references, the fan-out lists, and every step's context.

        ``context`` (a :class:`~.models.EnsembleContext`) is what get-transform-call needs to start
        any step of this execution without reading the catalog or the ensemble's record: the
        owner, metadata and retention, the step specs, every target's catalog entry as it was when
        the execution started, and the request itself when it is JSON of at most
        ``INLINE_REQUEST_LIMIT`` bytes (``body`` when the caller has it, else read from S3).
        """
        assert service.ensemble is not None
        fanout, targets, assignments, shadow_targets = self.step_targets(prediction, service)
        fan_out_members = {step: [m["service"] for m in listed] for step, listed in fanout.items()}
        context = EnsembleContext.of(prediction, service, targets, fan_out_members, assignments, shadow_targets)
        if input_size is not None and input_size <= INLINE_REQUEST_LIMIT and is_json_type(prediction.content_type):
            assert prediction.input_uri is not None
            raw = body if body is not None else self.ports.objects.read(prediction.input_uri)
            with contextlib.suppress(ValueError):
                context.request = json.loads(raw)
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

    def step_targets(
        self, prediction: Prediction, service: Service
    ) -> tuple[dict[str, list[dict[str, str]]], dict[str, Service], dict[str, Assignment], dict[str, list[Service]]]:
        """What the steps of one execution of ``service`` call: the fan-out lists, each target's
        version entry (drawn once here for this ensemble prediction), how each split was drawn,
        and each target's shadow versions.

        Raises
        ------
        DispatchError
            A target has no approved version serving.
        """
        assert service.ensemble is not None
        catalog = self.ports.catalog
        fanout: dict[str, list[dict[str, str]]] = {}
        entries: dict[str, Service] = {}
        active: list[Service] | None = None
        for step_name, step in service.ensemble.steps.items():
            if step.fan_out is not None:
                if active is None:
                    active = catalog.list(active_only=True)
                members = sorted(
                    (s for s in active if step.fan_out.task in s.tasks and s.kind == "model"), key=lambda s: s.name
                )
                fanout[step_name] = [{"service": s.name} for s in members]
                entries.update((s.name, s) for s in members)
        named = {
            step.service for step in service.ensemble.steps.values() if step.service and step.service not in entries
        }
        entries.update(catalog.get_many(sorted(named)))
        targets: dict[str, Service] = {}
        assignments: dict[str, Assignment] = {}
        shadow_targets: dict[str, list[Service]] = {}
        for name, entry in entries.items():
            try:
                drawn = draw(entry, metadata=prediction.metadata, draw_id=prediction.prediction_id)
            except NoServingVersionError as error:
                raise DispatchError(f"{error.message} (a step of ensemble '{service.name}' calls it)") from None
            served = entry.at_version(drawn.version)
            assert served is not None
            targets[name] = served
            if drawn.assignment is not None:
                assignments[name] = drawn.assignment
            # A shadow (or anything under one) never starts shadows of its own.
            shadows = [] if prediction.under_shadow else shadows_of(entry, drawn.version)
            if shadows:
                shadow_targets[name] = [v for v in (entry.at_version(s) for s in shadows) if v is not None]
        return fanout, targets, assignments, shadow_targets

    def _invoke_realtime(self, prediction: Prediction, service: Service, body: bytes | None = None) -> None:
        """Call a real-time endpoint and finish the prediction with its answer.

        Why not publish to the success topic as SageMaker async does: that would add an SNS hop
        (and a notifications invocation) to every real-time prediction and ensemble step for no
        gain; ``finish`` is the one path both take.
        """
        assert service.model is not None
        ports = self.ports
        if body is None:
            assert prediction.input_uri is not None
            body = ports.objects.read(prediction.input_uri)
        endpoint = service.model.endpoint_name
        # The call's start and end: the model's share of the prediction's time.
        called_at = ports.clock()
        try:
            response = ports.models.invoke_realtime(
                endpoint, body, prediction.content_type, prediction.prediction_id, accept=prediction.accept
            )
        except ModelInvocationError as error:
            answered_at = ports.clock()
            # The failure object keeps SageMaker's whole answer; the user reads the model's message.
            failure_uri = ports.objects.write(
                failure_key(prediction.prediction_id), error.detail.encode(), "text/plain"
            )
            self.completion.finish(
                prediction.prediction_id,
                succeeded=False,
                failure_uri=failure_uri,
                error=PredictionError(code="ModelError", message=error.message),
                extra={
                    "dispatched_at": ports.clock(),
                    "model_started_at": called_at,
                    "model_finished_at": answered_at,
                },
            )
            return
        answered_at = ports.clock()
        output_uri = ports.objects.write(output_key(prediction.prediction_id), response.body, response.content_type)
        extra: dict[str, Any] = {
            "dispatched_at": ports.clock(),
            "model_started_at": called_at,
            "model_finished_at": answered_at,
        }
        if response.invoked_variant:
            extra["model"] = prediction.model.model_copy(
                update={"endpoint": endpoint, "version": f"{service.version}/{response.invoked_variant}"}
            )
        self.completion.finish(
            prediction.prediction_id,
            succeeded=True,
            output_uri=output_uri,
            output_content_type=response.content_type,
            extra=extra,
            output_body=response.body,
        )

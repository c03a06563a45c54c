"""How the use cases of the prediction lifecycle fit together: submit, dispatch, finish, sweep, report.

Each use case is a module of its own, and all share one :class:`~.ports.GatewayPorts`:

- ``intake``: ``POST /predictions`` (submit, idempotent replay) and ``GET /services``;
- ``dispatch``: upload acceptance, dispatch claims, real-time calls, execution input;
- ``completion``: ``finish`` (and SageMaker notifications), handing the result to the notifiers;
- ``ensembles``: step outcomes, ensemble outputs and completion (``steps``: get-transform-call);
- ``sweeping``: expiry of uploads that never came, timeouts of models that never answered;
- ``read_model``: the documents of ``GET /predictions/{id}``, webhooks and events;
- ``listing``: ``GET /predictions``, the caller's own a page at a time;
- ``cancellation``: ``POST /predictions/{id}/cancel`` (``intake`` renews upload forms);
- ``shadows``: the copies of a prediction sent to its service's shadow versions;
- ``auditing``: the decision record of every terminal prediction, through an outbox;
- ``batches`` and ``batch_driver``: ``/batches`` (submit, read, cancel), and the ticks that turn a
  manifest into items and items into one result file;
- ``notifiers``: one module per callback kind (none, task token, webhook, EventBridge, shadow,
  batch).

:func:`compose` wires them; :class:`Gateway` is every use case behind one object, for the tests
and tools written before the split (handlers call the use cases, through bootstrap).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from .auditing import Auditing
from .batch_driver import BatchDriver
from .batches import Batches
from .cancellation import Cancellation
from .completion import Completion
from .dispatch import DISPATCH_LEASE_SECONDS, INLINE_REQUEST_LIMIT, Dispatch
from .ensembles import INLINE_OUTPUT_LIMIT, Ensembles, task_result
from .intake import Intake, request_fingerprint
from .listing import Listing
from .media_types import JSON_TYPES, is_json_type
from .metering import Metering
from .models import CallbackKind, Client, Prediction, PredictionError, Service, StepOutcome
from .notifiers import Notifiers
from .notifiers.batch import BatchNotifier
from .notifiers.eventbridge import EventBridgeNotifier
from .notifiers.none import PollingOnly
from .notifiers.shadow import ShadowNotifier
from .notifiers.task_token import TaskTokenNotifier
from .notifiers.webhook import WebhookNotifier, prediction_delivered_events
from .ports import GatewayConfig, GatewayPorts
from .read_model import ReadModel
from .records import (
    DEADLINE_MARGIN_SECONDS,
    failure_key,
    input_key,
    output_key,
    prediction_id_from_key,
    step_input_key,
    upload_key,
)
from .shadows import Shadows
from .sweeping import Sweeping

if TYPE_CHECKING:
    from .api import NewPredictionRequest, NewPredictionResponse, PredictionDocument
    from .notifications import InferenceResult
    from .ports import (
        AuditSink,
        BatchQueue,
        BatchStore,
        DispatchQueue,
        EventPublisher,
        MetricsSink,
        ModelRuntime,
        ObjectStore,
        PredictionStore,
        ServiceCatalog,
        ShadowQueue,
        WebhookQueue,
        WorkflowEngine,
    )
    from .webhooks import Resolver

T = TypeVar("T")

# Importable from here as before the split.
__all__ = [
    "DEADLINE_MARGIN_SECONDS",
    "DISPATCH_LEASE_SECONDS",
    "INLINE_OUTPUT_LIMIT",
    "INLINE_REQUEST_LIMIT",
    "JSON_TYPES",
    "Gateway",
    "GatewayConfig",
    "GatewayPorts",
    "UseCases",
    "compose",
    "failure_key",
    "input_key",
    "is_json_type",
    "output_key",
    "prediction_delivered_events",
    "prediction_id_from_key",
    "request_fingerprint",
    "step_input_key",
    "task_result",
    "upload_key",
]


@dataclass(frozen=True)
class UseCases:
    """The use cases of one gateway, wired to one set of ports (bootstrap builds one per cold start)."""

    ports: GatewayPorts
    notifiers: Notifiers
    intake: Intake
    dispatch: Dispatch
    completion: Completion
    ensembles: Ensembles
    sweeping: Sweeping
    read_model: ReadModel
    listing: Listing
    cancellation: Cancellation
    shadows: Shadows
    auditing: Auditing
    metering: Metering
    # None: the gateway has no batches (no batch store or queue configured).
    batches: Batches | None = None
    batch_driver: BatchDriver | None = None


def compose(
    ports: GatewayPorts,
    *,
    events: EventPublisher | None = None,
    shadow_queue: ShadowQueue | None = None,
    audit_sink: AuditSink | None = None,
    metrics: MetricsSink | None = None,
    batch_store: BatchStore | None = None,
    batch_queue: BatchQueue | None = None,
    bucket: str | None = None,
    batch_source_buckets: tuple[str, ...] = (),
    dispatch_queue: DispatchQueue | None = None,
) -> UseCases:
    """Build the use cases over ``ports`` and register the notifier of every callback kind.

    Parameters
    ----------
    ports
        Shared by every use case.
    events
        The gateway's event bus; None when it has none (``{"eventbridge": {}}`` is then refused).
    shadow_queue
        The queue of shadow dispatches; None when the gateway has none (no shadow is started).
    audit_sink
        The audit store of decision records; None when the gateway has none (they stay pending).
    metrics
        Where the figures of ended predictions go (CloudWatch EMF); None: not measured.
    batch_store, batch_queue
        The batches and the queue of their ticks; without both, ``batches`` and ``batch_driver``
        are None (and an item's end, which cannot happen then, counts nothing).
    bucket
        The gateway's bucket (the driver copies manifests and objects there; never a source).
    batch_source_buckets
        The buckets a batch's ``manifest_uri`` and its lines' ``s3_uri`` may name.
    dispatch_queue
        process-input's queue, where an inline prediction whose dispatch failed part-way is handed
        over; None: such a prediction is FAILED with the reason.
    """
    auditing = Auditing(ports, audit_sink)
    metering = Metering(ports, metrics)
    notifiers = Notifiers(auditor=auditing, meter=metering)
    completion = Completion(ports, notifiers)
    ensembles = Ensembles(ports, completion)
    read_model = ReadModel(ports)
    notifiers.register(CallbackKind.NONE, PollingOnly())
    notifiers.register(CallbackKind.WEBHOOK, WebhookNotifier(ports))
    notifiers.register(CallbackKind.EVENTBRIDGE, EventBridgeNotifier(ports, read_model, events))
    notifiers.register(CallbackKind.SHADOW, ShadowNotifier(ports))
    notifiers.register(CallbackKind.BATCH, BatchNotifier(ports, batch_store, batch_queue))
    # Last: a step's notifier finishes its ensemble through completion, which notifies in turn.
    notifiers.register(CallbackKind.TASK_TOKEN, TaskTokenNotifier(ports, ensembles))
    dispatch = Dispatch(ports, completion)
    shadows = Shadows(ports, dispatch, completion, shadow_queue)
    # Dispatch starts a prediction's shadows once it is on its way; shadows dispatch through it.
    dispatch.shadows = shadows
    cancellation = Cancellation(ports, notifiers, ensembles)
    batches: Batches | None = None
    batch_driver: BatchDriver | None = None
    if batch_store is not None and batch_queue is not None:
        batches = Batches(ports, notifiers, batch_store, batch_queue, batch_source_buckets, bucket)
        batch_driver = BatchDriver(
            ports,
            notifiers,
            batch_store,
            batch_queue,
            dispatch,
            cancellation,
            batches,
            events=events,
            source_buckets=batch_source_buckets,
            bucket=bucket,
        )
    return UseCases(
        ports=ports,
        notifiers=notifiers,
        intake=Intake(ports, notifiers, dispatch=dispatch, completion=completion, dispatch_queue=dispatch_queue),
        dispatch=dispatch,
        completion=completion,
        ensembles=ensembles,
        sweeping=Sweeping(ports, notifiers, auditing=auditing, batches=batch_store, batch_queue=batch_queue),
        read_model=read_model,
        listing=Listing(ports, read_model),
        cancellation=cancellation,
        shadows=shadows,
        auditing=auditing,
        metering=metering,
        batches=batches,
        batch_driver=batch_driver,
    )


class _Port(Generic[T]):
    """An attribute of :class:`Gateway` that reads and replaces ``ports.<name>``, which every use
    case shares: a test swapping one swaps it for all of them."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type) -> _Port[T]: ...

    @overload
    def __get__(self, instance: Gateway, owner: type) -> T: ...

    def __get__(self, instance: Gateway | None, owner: type) -> T | _Port[T]:
        if instance is None:
            return self
        value: T = getattr(instance.use_cases.ports, self.name)
        return value

    def __set__(self, instance: Gateway, value: T) -> None:
        setattr(instance.use_cases.ports, self.name, value)


class Gateway:
    """Every use case behind one object, as the gateway was before the split into use cases.

    Kept for the tests and tools that drive the whole lifecycle through one object; the handlers
    call the use cases themselves. Each method delegates to the use case that holds it; the port
    attributes read and replace the ports every use case shares.
    """

    config: _Port[GatewayConfig] = _Port()
    predictions: _Port[PredictionStore] = _Port()
    catalog: _Port[ServiceCatalog] = _Port()
    objects: _Port[ObjectStore] = _Port()
    models: _Port[ModelRuntime] = _Port()
    workflows: _Port[WorkflowEngine] = _Port()
    webhooks: _Port[WebhookQueue] = _Port()
    resolve: _Port[Resolver] = _Port()
    clock: _Port[Callable[[], datetime]] = _Port()
    logger: _Port[Any] = _Port()

    def __init__(self, use_cases: UseCases) -> None:
        self.use_cases = use_cases

    # intake
    def submit(
        self,
        client: Client,
        request: NewPredictionRequest,
        *,
        idempotency_key: str | None = None,
        raw_body: Mapping[str, Any] | None = None,
    ) -> NewPredictionResponse:
        """See :meth:`.intake.Intake.submit`."""
        return self.use_cases.intake.submit(client, request, idempotency_key=idempotency_key, raw_body=raw_body)

    def list_services(self) -> list[Service]:
        """See :meth:`.intake.Intake.list_services`."""
        return self.use_cases.intake.list_services()

    # dispatch
    def input_uploaded(self, bucket: str, key: str, size: int | None = None) -> None:
        """See :meth:`.dispatch.Dispatch.input_uploaded`."""
        self.use_cases.dispatch.input_uploaded(bucket, key, size)

    def dispatch(self, prediction_id: str, service: Service | None = None, *, input_size: int | None = None) -> None:
        """See :meth:`.dispatch.Dispatch.dispatch`."""
        self.use_cases.dispatch.dispatch(prediction_id, service, input_size=input_size)

    def dispatch_claimed(
        self,
        prediction: Prediction,
        service: Service | None,
        *,
        input_size: int | None = None,
        body: bytes | None = None,
    ) -> bool:
        """See :meth:`.dispatch.Dispatch.dispatch_claimed`."""
        return self.use_cases.dispatch.dispatch_claimed(prediction, service, input_size=input_size, body=body)

    def execution_input(
        self, prediction: Prediction, service: Service, input_size: int | None = None
    ) -> dict[str, Any]:
        """See :meth:`.dispatch.Dispatch.execution_input`."""
        return self.use_cases.dispatch.execution_input(prediction, service, input_size)

    # completion
    def inference_finished(self, result: InferenceResult) -> None:
        """See :meth:`.completion.Completion.inference_finished`."""
        self.use_cases.completion.inference_finished(result)

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
        """See :meth:`.completion.Completion.finish`."""
        return self.use_cases.completion.finish(
            prediction_id,
            succeeded=succeeded,
            output_uri=output_uri,
            output_content_type=output_content_type,
            failure_uri=failure_uri,
            error=error,
            extra=extra,
            output_body=output_body,
        )

    def drive_callback(self, prediction: Prediction, output: bytes | None = None) -> None:
        """See :meth:`.completion.Completion.notify`."""
        self.use_cases.completion.notify(prediction, output)

    # ensembles
    def step_outcome(self, step: Prediction, output: bytes | None = None) -> StepOutcome:
        """See :meth:`.ensembles.Ensembles.step_outcome`."""
        return self.use_cases.ensembles.step_outcome(step, output)

    def ensemble_outputs(self, parent: Prediction, names: set[str] | None = None) -> dict[str, Any]:
        """See :meth:`.ensembles.Ensembles.ensemble_outputs`."""
        return self.use_cases.ensembles.ensemble_outputs(parent, names)

    def complete_ensemble(
        self, parent: Prediction, output_step: str | None, *, result: Any = None
    ) -> Prediction | None:
        """See :meth:`.ensembles.Ensembles.complete_ensemble`."""
        return self.use_cases.ensembles.complete_ensemble(parent, output_step, result=result)

    # sweeping
    def sweep(self, limit: int = 100) -> int:
        """See :meth:`.sweeping.Sweeping.sweep`."""
        return self.use_cases.sweeping.sweep(limit)

    def expire_or_timeout(self, prediction: Prediction) -> Prediction | None:
        """See :meth:`.sweeping.Sweeping.expire_or_timeout`."""
        return self.use_cases.sweeping.expire_or_timeout(prediction)

    # read model
    def document(self, prediction: Prediction) -> PredictionDocument:
        """See :meth:`.read_model.ReadModel.document`."""
        return self.use_cases.read_model.document(prediction)

    def get_owned(self, client: Client, prediction_id: str) -> Prediction:
        """See :meth:`.read_model.ReadModel.get_owned`."""
        return self.use_cases.read_model.get_owned(client, prediction_id)

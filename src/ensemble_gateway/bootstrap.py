"""Composition root: builds the domain's use cases with their AWS adapters, once per process.

Nothing here runs at import time, and each builder imports only what its use case needs, so that a
handler's cold start pays for its own dependencies and no one else's (the sweeper never loads the
mapping DSL or the webhook HTTP client, for instance).

Every use case shares one set of ports (:func:`use_cases`); the handlers take theirs from the
builders below (``intake()``, ``dispatch()``, ...), unless a test injects its own.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from .settings import Settings, get_settings

if TYPE_CHECKING:
    from .adapters.dynamodb import DynamoClientDirectory
    from .domain.auth import Authenticator
    from .domain.batch_driver import BatchDriver
    from .domain.batches import Batches
    from .domain.cancellation import Cancellation
    from .domain.completion import Completion
    from .domain.delivery import WebhookDelivery
    from .domain.dispatch import Dispatch
    from .domain.intake import Intake
    from .domain.lifecycle import Gateway, UseCases
    from .domain.listing import Listing
    from .domain.ports import (
        AuditSink,
        BatchQueue,
        BatchStore,
        DispatchQueue,
        EventPublisher,
        GatewayPorts,
        MetricsSink,
        ShadowQueue,
    )
    from .domain.read_model import ReadModel
    from .domain.shadows import Shadows
    from .domain.steps import EnsembleSteps
    from .domain.sweeping import Sweeping


def build_ports(settings: Settings, logger: object = None) -> GatewayPorts:
    """The ports every use case shares, wired to AWS. Clients are created on first use, never here."""
    from .adapters.dns import resolve_all
    from .adapters.dynamodb import DynamoPredictionStore, DynamoServiceCatalog
    from .adapters.messaging import SqsWebhookQueue
    from .adapters.s3 import S3ObjectStore
    from .adapters.sagemaker import SageMakerModelRuntime
    from .adapters.stepfunctions import StepFunctionsEngine
    from .domain.ports import GatewayConfig, GatewayPorts
    from .domain.webhooks import LoopbackPortGuard, Resolver

    resolve: Resolver = resolve_all
    if settings.webhook_forbidden_loopback_ports:
        # Checked wherever a webhook URL is: at submission and at every delivery.
        resolve = LoopbackPortGuard(resolve_all, settings.webhook_forbidden_loopback_ports)
    return GatewayPorts(
        config=GatewayConfig(
            region=settings.region,
            upload_expiry_seconds=settings.upload_expiry_seconds,
            result_url_expiry_seconds=settings.result_url_expiry_seconds,
            retention_days=settings.retention_days,
            default_max_bytes=settings.max_upload_bytes,
            allow_loopback_http_webhooks=settings.allow_loopback_webhooks,
            inline_input_max_bytes=settings.inline_input_max_bytes,
        ),
        predictions=DynamoPredictionStore(settings.predictions_table),
        catalog=DynamoServiceCatalog(settings.services_table),
        objects=S3ObjectStore(settings.bucket, settings.kms_key_id),
        models=SageMakerModelRuntime(),
        workflows=StepFunctionsEngine(),
        webhooks=SqsWebhookQueue(settings.webhook_queue_url, settings.webhook_dlq_url),
        resolve=resolve,
        logger=logger,
    )


def build_event_publisher(settings: Settings) -> EventPublisher | None:
    """The gateway's event bus (``EVENT_BUS_NAME``); None when the gateway has none."""
    if not settings.event_bus_name:
        return None
    from .adapters.eventbridge import EventBridgePublisher

    return EventBridgePublisher(settings.event_bus_name)


def build_dispatch_queue(settings: Settings) -> DispatchQueue | None:
    """process-input's queue (``INPUT_QUEUE_URL``), for inline predictions handed over; None where
    it is not configured."""
    if not settings.input_queue_url:
        return None
    from .adapters.messaging import SqsDispatchQueue

    return SqsDispatchQueue(settings.input_queue_url)


def build_shadow_queue(settings: Settings) -> ShadowQueue | None:
    """The queue of shadow dispatches (``SHADOW_QUEUE_URL``); None where it is not configured."""
    if not settings.shadow_queue_url:
        return None
    from .adapters.messaging import SqsShadowQueue

    return SqsShadowQueue(settings.shadow_queue_url)


def build_audit_sink(settings: Settings) -> AuditSink | None:
    """The audit store: the Firehose stream (``AUDIT_STREAM_NAME``) on AWS; the data bucket
    itself, in the stream's layout, where ``AUDIT_SINK`` is ``s3`` (the local runtime: moto's
    Firehose ignores the stream's partitioning); None where neither is configured."""
    if settings.audit_sink == "s3":
        from .adapters.s3 import S3AuditSink

        return S3AuditSink(settings.bucket, settings.kms_key_id)
    if not settings.audit_stream_name:
        return None
    from .adapters.firehose import FirehoseAuditSink

    return FirehoseAuditSink(settings.audit_stream_name)


def build_metrics() -> MetricsSink:
    """CloudWatch metrics in the embedded metric format (Powertools), printed per set; nothing is
    printed where Powertools' metrics are disabled (the local runtime)."""
    from .observability import EmfMetrics

    return EmfMetrics()


def build_batch_ports(settings: Settings) -> tuple[BatchStore | None, BatchQueue | None]:
    """The batches table and the batch queue (``BATCHES_TABLE``, ``BATCH_QUEUE_URL``); None where
    they are not configured (clients are created on first use: a function that never ends a batch
    item never pays for them)."""
    if not settings.batches_table or not settings.batch_queue_url:
        return None, None
    from .adapters.dynamodb import DynamoBatchStore
    from .adapters.messaging import SqsBatchQueue

    return DynamoBatchStore(settings.batches_table), SqsBatchQueue(settings.batch_queue_url)


def build_use_cases(settings: Settings, logger: object = None) -> UseCases:
    """Every use case, over one set of ports wired to AWS."""
    from .domain.lifecycle import compose

    batch_store, batch_queue = build_batch_ports(settings)
    return compose(
        build_ports(settings, logger),
        events=build_event_publisher(settings),
        shadow_queue=build_shadow_queue(settings),
        audit_sink=build_audit_sink(settings),
        metrics=build_metrics(),
        batch_store=batch_store,
        batch_queue=batch_queue,
        bucket=settings.bucket,
        batch_source_buckets=settings.batch_source_buckets,
        dispatch_queue=build_dispatch_queue(settings),
    )


def build_gateway(settings: Settings, logger: object = None) -> Gateway:
    """The one-object facade over freshly built use cases (tests and tools)."""
    from .domain.lifecycle import Gateway

    return Gateway(build_use_cases(settings, logger))


@functools.cache
def use_cases() -> UseCases:
    from .observability import logger

    return build_use_cases(get_settings(), logger)


def intake() -> Intake:
    return use_cases().intake


def dispatch() -> Dispatch:
    return use_cases().dispatch


def completion() -> Completion:
    return use_cases().completion


def sweeping() -> Sweeping:
    return use_cases().sweeping


def read_model() -> ReadModel:
    return use_cases().read_model


def listing() -> Listing:
    return use_cases().listing


def cancellation() -> Cancellation:
    return use_cases().cancellation


def shadows() -> Shadows:
    return use_cases().shadows


def batches() -> Batches:
    """The batches use case (raises ``SettingsError`` where the gateway has no batches)."""
    built = use_cases().batches
    if built is None:
        from .settings import SettingsError

        raise SettingsError("invalid configuration: BATCHES_TABLE and BATCH_QUEUE_URL are required for batches")
    return built


def batch_driver() -> BatchDriver:
    """The batch driver (raises ``SettingsError`` where the gateway has no batches)."""
    built = use_cases().batch_driver
    if built is None:
        from .settings import SettingsError

        raise SettingsError("invalid configuration: BATCHES_TABLE and BATCH_QUEUE_URL are required for batches")
    return built


@functools.cache
def gateway() -> Gateway:
    """The facade over this process's use cases (the same objects the handlers call)."""
    from .domain.lifecycle import Gateway

    return Gateway(use_cases())


@functools.cache
def client_directory() -> DynamoClientDirectory:
    from .adapters.dynamodb import DynamoClientDirectory

    return DynamoClientDirectory(get_settings().clients_table)


@functools.cache
def authenticator() -> Authenticator:
    from .domain.auth import Authenticator

    return Authenticator(client_directory(), get_settings().auth_mode)


@functools.cache
def webhook_delivery() -> WebhookDelivery:
    from .adapters.webhook_http import HttpWebhookSender
    from .domain.delivery import WebhookDelivery

    built = use_cases()
    return WebhookDelivery(
        ports=built.ports,
        documents=built.read_model,
        clients=client_directory(),
        sender=HttpWebhookSender(),
        auditing=built.auditing,
        metering=built.metering,
        batches=built.batches,
    )


@functools.cache
def ensemble_steps() -> EnsembleSteps:
    from .domain.steps import EnsembleSteps

    built = use_cases()
    return EnsembleSteps(
        ports=built.ports,
        dispatch=built.dispatch,
        completion=built.completion,
        ensembles=built.ensembles,
        shadows=built.shadows,
    )


def reset() -> None:
    """Forget the cached settings and adapters (tests and the local runtime change the environment)."""
    for cached in (use_cases, gateway, client_directory, authenticator, webhook_delivery, ensemble_steps, get_settings):
        cached.cache_clear()

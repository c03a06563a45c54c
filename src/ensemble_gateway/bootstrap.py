"""Composition root: builds the domain's use cases with their AWS adapters, once per process.

Nothing here runs at import time, and each builder imports only what its use case needs, so that a
handler's cold start pays for its own dependencies and no one else's (the sweeper never loads the
mapping DSL or the webhook HTTP client, for instance).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from .settings import Settings, get_settings

if TYPE_CHECKING:
    from .adapters.dynamodb import DynamoClientDirectory
    from .domain.delivery import WebhookDelivery
    from .domain.lifecycle import Gateway
    from .domain.steps import EnsembleSteps


def build_gateway(settings: Settings, logger: object = None) -> Gateway:
    """Wire the use cases to AWS. Clients are created on first use, never here."""
    from .adapters.dns import resolve_all
    from .adapters.dynamodb import DynamoPredictionStore, DynamoServiceCatalog
    from .adapters.messaging import SqsWebhookQueue
    from .adapters.s3 import S3ObjectStore
    from .adapters.sagemaker import SageMakerModelRuntime
    from .adapters.stepfunctions import StepFunctionsEngine
    from .domain.lifecycle import Gateway, GatewayConfig
    from .domain.webhooks import LoopbackPortGuard, Resolver

    resolve: Resolver = resolve_all
    if settings.webhook_forbidden_loopback_ports:
        # Checked wherever a webhook URL is: at submission and at every delivery.
        resolve = LoopbackPortGuard(resolve_all, settings.webhook_forbidden_loopback_ports)
    return Gateway(
        config=GatewayConfig(
            region=settings.region,
            upload_expiry_seconds=settings.upload_expiry_seconds,
            result_url_expiry_seconds=settings.result_url_expiry_seconds,
            retention_days=settings.retention_days,
            default_max_bytes=settings.max_upload_bytes,
            allow_loopback_http_webhooks=settings.allow_loopback_webhooks,
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


@functools.cache
def gateway() -> Gateway:
    from .observability import logger

    return build_gateway(get_settings(), logger)


@functools.cache
def client_directory() -> DynamoClientDirectory:
    from .adapters.dynamodb import DynamoClientDirectory

    return DynamoClientDirectory(get_settings().clients_table)


@functools.cache
def webhook_delivery() -> WebhookDelivery:
    from .adapters.webhook_http import HttpWebhookSender
    from .domain.delivery import WebhookDelivery

    return WebhookDelivery(gateway=gateway(), clients=client_directory(), sender=HttpWebhookSender())


@functools.cache
def ensemble_steps() -> EnsembleSteps:
    from .domain.steps import EnsembleSteps

    return EnsembleSteps(gateway())


def reset() -> None:
    """Forget the cached settings and adapters (tests and the local runtime change the environment)."""
    for cached in (gateway, client_directory, webhook_delivery, ensemble_steps, get_settings):
        cached.cache_clear()

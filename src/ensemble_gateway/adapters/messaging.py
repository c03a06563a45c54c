"""SQS adapters: the webhook delivery queue, the shadow queue and the batch queue."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .aws import LazyClient

SQS_MAX_DELAY_SECONDS = 900


class SqsWebhookQueue(LazyClient):
    """The durable retry queue: a delay longer than SQS allows is served in hops (``not_before``)."""

    service_name = "sqs"

    def __init__(self, queue_url: str, dead_letter_url: str, client: Any = None) -> None:
        super().__init__(client)
        self.queue_url = queue_url
        self.dead_letter_url = dead_letter_url

    def enqueue(self, job: Mapping[str, Any], delay_seconds: int) -> None:
        self.client.send_message(
            QueueUrl=self.queue_url,
            MessageBody=json.dumps(job, default=str),
            DelaySeconds=max(0, min(delay_seconds, SQS_MAX_DELAY_SECONDS)),
        )

    def dead_letter(self, job: Mapping[str, Any]) -> None:
        self.client.send_message(QueueUrl=self.dead_letter_url, MessageBody=json.dumps(job, default=str))


class SqsDispatchQueue(LazyClient):
    """process-input's queue, for predictions to dispatch again (``{"dispatch": {"prediction_id"}}``)
    beside the S3 events of uploads."""

    service_name = "sqs"

    def __init__(self, queue_url: str, client: Any = None) -> None:
        super().__init__(client)
        self.queue_url = queue_url

    def enqueue(self, prediction_id: str) -> None:
        body = json.dumps({"dispatch": {"prediction_id": prediction_id}})
        self.client.send_message(QueueUrl=self.queue_url, MessageBody=body)


class SqsShadowQueue(LazyClient):
    """The shadow queue: one message per shadow to dispatch (the shadow-dispatch function's)."""

    service_name = "sqs"

    def __init__(self, queue_url: str, client: Any = None) -> None:
        super().__init__(client)
        self.queue_url = queue_url

    def enqueue(self, job: Mapping[str, Any]) -> None:
        self.client.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(job, default=str))


class SqsBatchQueue(LazyClient):
    """The batch queue: ticks of batches for the batch-driver function (S3 also sends the
    manifests' ``ObjectCreated`` events here)."""

    service_name = "sqs"

    def __init__(self, queue_url: str, client: Any = None) -> None:
        super().__init__(client)
        self.queue_url = queue_url

    def enqueue(self, job: Mapping[str, Any]) -> None:
        self.client.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(job, default=str))

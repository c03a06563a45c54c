"""Integration harness: moto as a real HTTP server on 127.0.0.1, the stack deployed from
``template.yaml``, and the handlers driven directly with real AWS event shapes (the test plays
Lambda, the event source mappings and, where moto cannot, SageMaker).

Each test module gets its own server and its own stack (a unique stack name, so its tables,
queues, topics and bucket never collide with another stack in this process).
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"


def _load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


@dataclass
class ApiAnswer:
    """What API Gateway would return to the caller."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class Harness:
    """The deployed stack plus the moves a test makes as Lambda, SQS, SNS and SageMaker."""

    endpoint: str
    stack: Any
    environment: dict[str, str]
    client: Callable[[str], Any]
    _captures: dict[str, str] = field(default_factory=dict)

    # -- resources ----------------------------------------------------------------------------
    @property
    def bucket(self) -> str:
        return str(self.stack.outputs["BucketName"])

    def queue_url(self, logical_id: str) -> str:
        return str(self.stack.physical[logical_id])

    def queue_arn(self, logical_id: str) -> str:
        return str(self.stack.attributes[(logical_id, "Arn")])

    def topic_arn(self, logical_id: str) -> str:
        return str(self.stack.physical[logical_id])

    def new_client(self, name: str = "tests") -> tuple[Any, str]:
        """Register an API client; return it (with its webhook secret) and its API key."""
        from ensemble_gateway.adapters.dynamodb import DynamoClientDirectory
        from ensemble_gateway.admin import create_client

        directory = DynamoClientDirectory(self.environment["CLIENTS_TABLE"], self.client("dynamodb"))
        return create_client(directory, name)

    def put_service(self, definition: dict[str, Any]) -> None:
        from ensemble_gateway.adapters.dynamodb import DynamoServiceCatalog
        from ensemble_gateway.domain.models import Service

        catalog = DynamoServiceCatalog(self.environment["SERVICES_TABLE"], self.client("dynamodb"))
        catalog.put(Service.model_validate(definition))

    def prediction_record(self, prediction_id: str) -> Any:
        from ensemble_gateway.adapters.dynamodb import DynamoPredictionStore

        store = DynamoPredictionStore(self.environment["PREDICTIONS_TABLE"], self.client("dynamodb"))
        return store.get(prediction_id)

    # -- playing Lambda -----------------------------------------------------------------------
    @staticmethod
    def context(function: str) -> Any:
        from ensemble_gateway.local.lambdas import FakeLambdaContext

        return FakeLambdaContext(
            function_name=function,
            memory_limit_in_mb=512,
            invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function}",
            aws_request_id=str(uuid.uuid4()),
            deadline=time.monotonic() + 30,
        )

    def submit(
        self,
        body: dict[str, Any] | str,
        api_key: str | None,
        *,
        idempotency_key: str | None = None,
    ) -> ApiAnswer:
        """``POST /predictions`` through API Gateway's REST proxy event into new-prediction."""
        from ensemble_gateway.handlers import new_prediction

        event = _load_event("new_prediction.json")
        headers = {k: v for k, v in event["headers"].items() if k not in ("Authorization", "Idempotency-Key")}
        if api_key is not None:
            headers["Authorization"] = f"Bearer {api_key}"
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        event["headers"] = headers
        event["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
        event["body"] = body if isinstance(body, str) else json.dumps(body)
        event["requestContext"]["requestId"] = str(uuid.uuid4())
        return self._answer(new_prediction.handler(event, self.context("NewPredictionFunction")))

    def get_prediction(self, prediction_id: str, api_key: str) -> ApiAnswer:
        """``GET /predictions/{id}`` through API Gateway's REST proxy event into results."""
        from ensemble_gateway.handlers import results

        event = _load_event("results.json")
        headers = {k: v for k, v in event["headers"].items() if k != "Authorization"}
        headers["Authorization"] = f"Bearer {api_key}"
        event["headers"] = headers
        event["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
        event["path"] = f"/predictions/{prediction_id}"
        event["pathParameters"] = {"prediction_id": prediction_id}
        event["requestContext"]["path"] = f"/dev/predictions/{prediction_id}"
        event["requestContext"]["requestId"] = str(uuid.uuid4())
        return self._answer(results.handler(event, self.context("ResultsFunction")))

    @staticmethod
    def _answer(response: dict[str, Any]) -> ApiAnswer:
        body = response.get("body") or "{}"
        return ApiAnswer(
            status=int(response["statusCode"]),
            body=json.loads(body),
            headers={k.lower(): v for k, v in (response.get("headers") or {}).items()},
        )

    # -- queues -------------------------------------------------------------------------------
    def receive(self, queue_url: str, *, wait_seconds: int = 1, delete: bool = True) -> list[dict[str, Any]]:
        """Every message now on a queue (as the event source mapping would receive them)."""
        sqs = self.client("sqs")
        messages: list[dict[str, Any]] = []
        while True:
            response = sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=wait_seconds if not messages else 0,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            batch = response.get("Messages", [])
            if not batch:
                break
            messages.extend(batch)
            if delete:
                sqs.delete_message_batch(
                    QueueUrl=queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
                )
        return messages

    @staticmethod
    def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
        """The event Lambda's SQS event source mapping passes to a function."""
        return {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m.get("Attributes", {}),
                    "messageAttributes": m.get("MessageAttributes", {}),
                    "md5OfBody": m.get("MD5OfBody", ""),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": queue_arn,
                    "awsRegion": REGION,
                }
                for m in messages
            ]
        }

    def sns_event(self, topic_arn: str, message: dict[str, Any] | str) -> dict[str, Any]:
        """The event SNS passes to a subscribed Lambda function (one record)."""
        template = copy.deepcopy(_load_event("notifications_success.json"))
        record = template["Records"][0]
        record["EventSubscriptionArn"] = f"{topic_arn}:{uuid.uuid4()}"
        record["Sns"]["MessageId"] = str(uuid.uuid4())
        record["Sns"]["TopicArn"] = topic_arn
        record["Sns"]["Message"] = message if isinstance(message, str) else json.dumps(message)
        return template

    def capture_topic(self, topic_logical_id: str) -> str:
        """Subscribe a queue to a topic (as SNS → Lambda would be); return the queue's URL."""
        if topic_logical_id not in self._captures:
            sqs = self.client("sqs")
            name = f"{self.stack.stack_name}-{topic_logical_id}-capture"
            url = sqs.create_queue(QueueName=name)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            self.client("sns").subscribe(TopicArn=self.topic_arn(topic_logical_id), Protocol="sqs", Endpoint=arn)
            self._captures[topic_logical_id] = url
        return self._captures[topic_logical_id]

    def sns_events_from(self, topic_logical_id: str) -> list[dict[str, Any]]:
        """What SNS delivered to the topic's subscribers since the last call, as Lambda events."""
        messages = self.receive(self.capture_topic(topic_logical_id))
        events = []
        for message in messages:
            envelope = json.loads(message["Body"])
            events.append(self.sns_event(envelope["TopicArn"], envelope["Message"]))
        return events

    # -- moto's static SageMaker runtime ------------------------------------------------------
    def queue_realtime_result(
        self, body: dict[str, Any] | str, variant: str = "AllTraffic", content_type: str = "application/json"
    ) -> None:
        """The next new InvokeEndpoint request gets this answer (moto's moto-api): ``body`` as JSON,
        or as it is when it is text."""
        import requests

        response = requests.post(
            f"{self.endpoint}/moto-api/static/sagemaker/endpoint-results",
            json={
                "account_id": ACCOUNT_ID,
                "region": REGION,
                "results": [
                    {
                        "Body": body if isinstance(body, str) else json.dumps(body),
                        "ContentType": content_type,
                        "InvokedProductionVariant": variant,
                    }
                ],
            },
            timeout=10,
        )
        response.raise_for_status()


class SageMakerCalls:
    """Records the SageMaker runtime API calls the gateway's adapter makes (botocore hooks)."""

    def __init__(self, *clients: Any) -> None:
        self.clients = clients
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _record(self, operation: str) -> Callable[..., None]:
        def record(params: dict[str, Any], **_: Any) -> None:
            self.calls.append((operation, dict(params)))

        return record

    def __enter__(self) -> SageMakerCalls:
        self._hooks = [
            (f"provide-client-params.sagemaker-runtime.{operation}", self._record(operation))
            for operation in ("InvokeEndpoint", "InvokeEndpointAsync")
        ]
        for client in self.clients:
            for event, hook in self._hooks:
                client.meta.events.register(event, hook)
        return self

    def __exit__(self, *exc: object) -> None:
        for client in self.clients:
            for event, hook in self._hooks:
                client.meta.events.unregister(event, hook)

    def of(self, operation: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == operation]


@pytest.fixture(scope="module")
def stack() -> Iterator[Harness]:
    """moto on 127.0.0.1, the template deployed to it, and the functions' environment set."""
    import boto3
    from botocore.config import Config
    from moto.server import ThreadedMotoServer

    from ensemble_gateway import bootstrap
    from ensemble_gateway.local.deployer import LocalDeployer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"

    @functools.cache
    def client(service: str) -> Any:
        config = (
            Config(signature_version="s3v4", s3={"addressing_style": "path"})
            if service == "s3"
            else Config(retries={"max_attempts": 2})
        )
        return boto3.session.Session().client(
            service,
            region_name=REGION,
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=config,
        )

    try:
        with pytest.MonkeyPatch.context() as patch:
            for name, value in {
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
            }.items():
                patch.setenv(name, value)
            patch.delenv("AWS_SESSION_TOKEN", raising=False)
            patch.delenv("AWS_PROFILE", raising=False)
            patch.delenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", raising=False)
            deployed = LocalDeployer(
                ROOT / "template.yaml", client, stack_name=f"it-{uuid.uuid4().hex[:10]}", region=REGION
            ).deploy()
            environment: dict[str, str] = {}
            for spec in deployed.functions.values():
                environment.update(spec.environment)
            environment.update(
                {
                    "AUTH_MODE": "api_key",
                    "ALLOW_LOOPBACK_WEBHOOKS": "true",
                    "POWERTOOLS_TRACE_DISABLED": "true",
                    "POWERTOOLS_METRICS_DISABLED": "true",
                    "POWERTOOLS_LOG_LEVEL": "WARNING",
                }
            )
            for name, value in environment.items():
                patch.setenv(name, value)
            bootstrap.reset()
            try:
                yield Harness(endpoint=endpoint, stack=deployed, environment=environment, client=client)
            finally:
                bootstrap.reset()
    finally:
        # The environment is restored by now: whatever runs next rebuilds its adapters from it.
        bootstrap.reset()
        server.stop()


@pytest.fixture
def sagemaker_calls(stack: Harness) -> Iterator[SageMakerCalls]:
    """The SageMaker runtime calls made through the gateway's own (cached) adapter clients (one
    for real-time calls, one for async calls: their timeouts and retries differ)."""
    from ensemble_gateway import bootstrap

    models = bootstrap.gateway().models
    with SageMakerCalls(models.client, models.async_client) as calls:
        yield calls

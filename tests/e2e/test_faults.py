"""Fault injection on the local runtime: nothing lost, nothing done twice, no one where they don't belong.

Each test injects one fault that is a normal operating condition for the gateway (duplicate
events, a crash after a write, concurrent duplicates, a model error, a lost notification, a dead
webhook receiver, bad input, another client's ID) and records what happened; the run ends by
printing the figures (see ``pytest_terminal_summary`` in tests/conftest.py).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
import requests

from conftest import FAULT_FIGURES, sample
from ensemble_gateway import bootstrap
from ensemble_gateway.client import GatewayClient, GatewayClientError
from ensemble_gateway.domain.models import Prediction, PredictionStatus, utcnow
from ensemble_gateway.local.lambdas import FakeLambdaContext

TERMINAL = ("COMPLETED", "FAILED", "EXPIRED")
LOST = "lost (not terminal after 90 s; must be 0)"
DUPLICATES = "duplicate webhooks (must be 0)"
for _figure in ("predictions submitted under faults", "completed", "failed or expired with a reason", LOST, DUPLICATES):
    FAULT_FIGURES.setdefault(_figure, 0)


def count(name: str, amount: int = 1) -> None:
    FAULT_FIGURES[name] = FAULT_FIGURES.get(name, 0) + amount


def settle(api: Any, prediction_id: str, expected: str | None = None) -> dict[str, Any]:
    """Wait for a terminal status and record the outcome in the figures."""
    count("predictions submitted under faults")
    document = api.wait(prediction_id, timeout=90, interval=0.3)
    if document["status"] not in TERMINAL:
        count(LOST)
    elif document["status"] == "COMPLETED":
        count("completed")
    else:
        count("failed or expired with a reason")
        assert document["error"]["message"], document
    if expected:
        assert document["status"] == expected, document
    return document


def record_duplicates(receiver: Any, prediction_id: str) -> int:
    ids = Counter(r["headers"]["webhook-id"] for r in receiver.delivered(prediction_id))
    duplicates = sum(n - 1 for n in ids.values())
    count(DUPLICATES, duplicates)
    return duplicates


@pytest.fixture
def notifications(runtime: Any) -> Any:
    """An SQS queue subscribed to both notification topics: what SageMaker (or the gateway) published."""
    sqs, sns = runtime.client("sqs"), runtime.client("sns")
    url = sqs.create_queue(QueueName=f"faults-capture-{time.monotonic_ns()}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    subscriptions = [
        sns.subscribe(
            TopicArn=runtime.stack.outputs[name],
            Protocol="sqs",
            Endpoint=arn,
            Attributes={"RawMessageDelivery": "true"},
        )["SubscriptionArn"]
        for name in ("SuccessTopicArn", "ErrorTopicArn")
    ]

    class Captured:
        def messages(self, inference_id: str, wait: float = 5.0) -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = []
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
                for message in batch.get("Messages", []):
                    found.append(json.loads(message["Body"]))
                if batch.get("Messages") is None and found:
                    break
            self.seen = getattr(self, "seen", []) + found
            return [m for m in self.seen if m.get("inferenceId") == inference_id]

    yield Captured()
    for subscription in subscriptions:
        sns.unsubscribe(SubscriptionArn=subscription)
    sqs.delete_queue(QueueUrl=url)


def s3_event(bucket: str, key: str) -> str:
    return json.dumps(
        {
            "Records": [
                {
                    "eventVersion": "2.1",
                    "eventSource": "aws:s3",
                    "awsRegion": "us-east-1",
                    "eventName": "ObjectCreated:Post",
                    "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 2}},
                }
            ]
        }
    )


def test_duplicate_s3_events_dispatch_once(runtime: Any, api: Any, webhook_receiver: Any, notifications: Any) -> None:
    # GIVEN an async prediction that completed
    accepted = api.submit("fraud-score", webhook_url=webhook_receiver.url)
    pid = accepted["prediction_id"]
    api.upload(accepted["upload"], sample("fraud-score"), "application/json")
    first = settle(api, pid, "COMPLETED")
    webhook_receiver.wait_for(pid)

    # WHEN the S3 event is delivered three more times (S3 and SQS deliver at least once)
    bucket = runtime.stack.outputs["BucketName"]
    queue = runtime.stack.physical["InputQueue"]
    for _ in range(3):
        runtime.client("sqs").send_message(QueueUrl=queue, MessageBody=s3_event(bucket, f"inputs/{pid}"))
    time.sleep(2)
    runtime.wait_idle(10)

    # THEN the model was invoked once (one notification), the record is unchanged, one webhook
    assert len(notifications.messages(pid)) == 1
    assert api.status(pid)["updated_at"] == first["updated_at"]
    assert len(webhook_receiver.delivered(pid)) == 1
    assert record_duplicates(webhook_receiver, pid) == 0


def test_duplicate_sns_notifications_finish_once(
    runtime: Any, api: Any, webhook_receiver: Any, notifications: Any
) -> None:
    # GIVEN a completed async prediction and the notification that finished it
    accepted = api.submit("slow-noop", webhook_url=webhook_receiver.url)
    pid = accepted["prediction_id"]
    api.upload(accepted["upload"], b'{"sleep_ms": 0}', "application/json")
    first = settle(api, pid, "COMPLETED")
    webhook_receiver.wait_for(pid)
    (message,) = notifications.messages(pid)

    # WHEN SNS delivers it again, twice, and a late *failure* notification arrives too
    sns = runtime.client("sns")
    for _ in range(2):
        sns.publish(TopicArn=runtime.stack.outputs["SuccessTopicArn"], Message=json.dumps(message))
    failed = {**message, "invocationStatus": "Failed", "failureReason": "late duplicate"}
    sns.publish(TopicArn=runtime.stack.outputs["ErrorTopicArn"], Message=json.dumps(failed))
    time.sleep(2)
    runtime.wait_idle(10)

    # THEN the terminal status never changes and the webhook was sent once
    after = api.status(pid)
    assert after["status"] == "COMPLETED"
    assert after["updated_at"] == first["updated_at"]
    assert len(webhook_receiver.delivered(pid)) == 1
    assert record_duplicates(webhook_receiver, pid) == 0


def test_a_crash_after_the_terminal_write_is_retried_without_a_duplicate(
    runtime: Any, api: Any, webhook_receiver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the notifications function crashes once right after writing the terminal status
    gateway = bootstrap.gateway()
    original = gateway.drive_callback
    crashed: list[str] = []

    def crash_once(prediction: Prediction, output: bytes | None = None) -> None:
        if prediction.service == "slow-noop" and not crashed:
            crashed.append(prediction.prediction_id)
            raise RuntimeError("injected crash after the write")
        original(prediction, output)

    monkeypatch.setattr(gateway, "drive_callback", crash_once)

    # WHEN a prediction finishes (SNS redelivers the failed event, as Lambda retries it)
    accepted = api.submit("slow-noop", webhook_url=webhook_receiver.url)
    pid = accepted["prediction_id"]
    api.upload(accepted["upload"], b'{"sleep_ms": 0}', "application/json")
    settle(api, pid, "COMPLETED")

    # THEN the retry drives the webhook that the crash skipped, exactly once
    assert crashed == [pid]
    delivered = webhook_receiver.wait_for(pid, timeout=30)
    assert len(delivered) == 1
    assert record_duplicates(webhook_receiver, pid) == 0
    count("crashes injected after a write")


def test_concurrent_duplicate_s3_events_dispatch_once(
    runtime: Any, api: Any, notifications: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ensemble_gateway.handlers import process_input

    # GIVEN an uploaded input whose S3 event has not been processed yet: the test plays the
    # event source itself, calling process-input from five threads with the same record
    gateway = bootstrap.gateway()
    accepted = api.submit("slow-noop")
    pid = accepted["prediction_id"]
    original_input_uploaded = gateway.input_uploaded
    monkeypatch.setattr(
        gateway,
        "input_uploaded",
        lambda bucket, key, size=None: None if key == f"inputs/{pid}" else original_input_uploaded(bucket, key, size),
    )
    api.upload(accepted["upload"], b'{"sleep_ms": 50}', "application/json")
    time.sleep(1.5)
    monkeypatch.setattr(gateway, "input_uploaded", original_input_uploaded)
    assert api.status(pid)["status"] == "PENDING_UPLOAD"
    body = s3_event(runtime.stack.outputs["BucketName"], f"inputs/{pid}")
    event = [
        {
            "Records": [
                {
                    "messageId": f"m{i}",
                    "receiptHandle": "r",
                    "body": body,
                    "attributes": {},
                    "messageAttributes": {},
                    "md5OfBody": "",
                    "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
                    "awsRegion": "us-east-1",
                }
            ]
        }
        for i in range(5)
    ]
    # Each thread gets its own batch processor: Lambda runs concurrent invocations in separate instances.
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    def invoke(batch: dict[str, Any]) -> None:
        process_partial_response(
            event=batch,
            record_handler=process_input.record_handler,
            processor=BatchProcessor(event_type=EventType.SQS),
            context=FakeLambdaContext("p", 128, "arn", "id", time.monotonic() + 30),
        )

    # WHEN the five duplicates run at the same time
    threads = [threading.Thread(target=invoke, args=(batch,)) for batch in event]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # THEN the model ran once: one notification, one COMPLETED
    settle(api, pid, "COMPLETED")
    assert len(notifications.messages(pid)) == 1
    count("concurrent duplicate deliveries injected", len(event))


def test_a_model_error_fails_with_the_models_reason_and_one_webhook(api: Any, webhook_receiver: Any) -> None:
    # GIVEN a model that raises on every input
    accepted = api.submit("always-fails", webhook_url=webhook_receiver.url)
    pid = accepted["prediction_id"]

    # WHEN it is given an input
    api.upload(accepted["upload"], b"{}", "application/json")
    document = settle(api, pid, "FAILED")

    # THEN the reason is the model's own, and one prediction.failed webhook was sent
    assert "this model always fails" in document["error"]["message"]
    delivered = webhook_receiver.wait_for(pid)
    assert [json.loads(d["body"])["type"] for d in delivered] == ["prediction.failed"]
    assert record_duplicates(webhook_receiver, pid) == 0


def test_a_lost_model_notification_ends_failed_by_its_deadline(
    runtime: Any, api: Any, client_credentials: dict[str, Any]
) -> None:
    # GIVEN a RUNNING prediction whose model will never answer (its notification was lost) and
    # whose deadline (the service's invocation timeout plus a margin) has just passed
    gateway = bootstrap.gateway()
    now = utcnow()
    lost = Prediction(
        prediction_id=f"plost{time.monotonic_ns()}",
        service="fraud-score",
        owner=client_credentials["client"].client_id,
        status=PredictionStatus.RUNNING,
        input_uri="s3://nowhere/inputs/x",
        started_at=now - timedelta(hours=1),
        dispatched_at=now - timedelta(hours=1),
        deadline_at=now - timedelta(seconds=1),
    )
    assert gateway.predictions.create(lost)

    # WHEN the sweeper runs (every second in this runtime)
    document = settle(api, lost.prediction_id, "FAILED")

    # THEN it is FAILED with a reason naming the timeout, not RUNNING forever
    assert document["error"]["code"] == "Timeout"
    assert "never answered" in document["error"]["message"]


def test_a_gone_webhook_receiver_stops_retries_and_the_result_stays_pollable(api: Any, webhook_receiver: Any) -> None:
    # GIVEN a receiver that answers 410 Gone
    webhook_receiver.fail_next = 10
    webhook_receiver.fail_status = 410

    # WHEN a prediction completes
    accepted = api.submit("echo", webhook_url=webhook_receiver.url)
    pid = accepted["prediction_id"]
    api.upload(accepted["upload"], b"{}", "application/json")
    document = settle(api, pid, "COMPLETED")
    time.sleep(7)  # longer than the first retry delay (5 s): a retry would have arrived

    # THEN there was exactly one attempt, and the result can still be fetched
    assert [a["answered"] for a in webhook_receiver.attempts(pid)] == [410]
    assert api.download(document)


BAD_REQUESTS: list[tuple[str, dict[str, Any], int]] = [
    ("unknown service", {"service": "no-such-service"}, 404),
    ("unknown field", {"service": "echo", "colour": "blue"}, 400),
    ("webhook not https", {"service": "echo", "notification": {"webhook": {"url": "http://example.com/h"}}}, 400),
    (
        "webhook to a private address",
        {"service": "echo", "notification": {"webhook": {"url": "https://10.0.0.7/h"}}},
        400,
    ),
    (
        "webhook to the metadata service",
        {"service": "echo", "notification": {"webhook": {"url": "https://169.254.169.254/latest"}}},
        400,
    ),
    ("content type not accepted", {"service": "echo", "content_type": "image/png"}, 400),
    ("service missing", {"metadata": {}}, 400),
    ("metadata too large", {"service": "echo", "metadata": {f"k{i}": "v" for i in range(40)}}, 400),
    ("metadata value not a string", {"service": "echo", "metadata": {"k": 1}}, 400),
]


def test_bad_input_is_rejected_with_a_clear_error(runtime: Any, api: Any, client_credentials: dict[str, Any]) -> None:
    headers = {"Authorization": f"Bearer {client_credentials['api_key']}", "Content-Type": "application/json"}
    rejected = 0
    # GIVEN requests that are wrong in one way each
    for name, body, status in BAD_REQUESTS:
        # WHEN each is sent
        response = requests.post(f"{runtime.api_url}/predictions", json=body, headers=headers, timeout=10)
        # THEN it gets the documented 4xx with a message
        assert response.status_code == status, (name, response.text)
        assert response.json()["message"], name
        rejected += 1
    raw = [
        ("malformed JSON", b'{"service": "echo",', "application/json", 400),
        ("not JSON", b"service=echo", "application/x-www-form-urlencoded", 415),
    ]
    for name, data, content_type, status in raw:
        response = requests.post(
            f"{runtime.api_url}/predictions", data=data, headers={**headers, "Content-Type": content_type}, timeout=10
        )
        assert response.status_code == status, (name, response.text)
        rejected += 1
    unauthenticated = requests.post(f"{runtime.api_url}/predictions", json={"service": "echo"}, timeout=10)
    assert unauthenticated.status_code == 401
    rejected += 1
    # AND an upload breaking its POST policy is refused by S3
    accepted = api.submit("echo")
    upload = accepted["upload"]
    too_big = requests.post(
        upload["url"],
        data=upload["fields"],
        files={"file": ("x", b"0" * (upload["max_bytes"] + 1), "application/json")},
        timeout=10,
    )
    assert too_big.status_code == 400
    rejected += 1
    count("bad inputs tried", len(BAD_REQUESTS) + len(raw) + 2)
    count("bad inputs rejected", rejected)


def test_a_prediction_is_visible_only_to_its_owner(runtime: Any, api: Any) -> None:
    from ensemble_gateway.adapters.dynamodb import DynamoClientDirectory
    from ensemble_gateway.admin import create_client

    # GIVEN a prediction of one client, and a second client
    document = api.predict("echo", b'{"secret": 1}', timeout=60)
    directory = DynamoClientDirectory(runtime.stack.outputs["ClientsTableName"], runtime.client("dynamodb"))
    _, other_key = create_client(directory, "another-client")
    other = GatewayClient(runtime.api_url, other_key)

    # WHEN the other client asks for it, or for an ID that does not exist
    with pytest.raises(GatewayClientError) as theirs:
        other.status(document["prediction_id"])
    with pytest.raises(GatewayClientError) as unknown:
        other.status("p-does-not-exist")

    # THEN both are the same 404: nothing tells the prediction exists
    assert theirs.value.status == unknown.value.status == 404
    assert theirs.value.code == unknown.value.code
    count("cross-client reads refused", 1)

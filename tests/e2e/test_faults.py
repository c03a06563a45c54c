"""Fault injection on the local runtime: nothing lost, nothing done twice, no one where they don't belong.

Each test injects one fault that is a normal operating condition for the gateway (duplicate
events, a crash after a write, concurrent duplicates, a model error, a lost notification, a dead
or slow webhook receiver, a second upload, bad input, another client's ID, forged S3 requests)
and records what happened; the run ends by printing the figures (see ``pytest_terminal_summary``
in tests/conftest.py).
"""

from __future__ import annotations

import base64
import hashlib
import json
import select
import socket
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from conftest import FAULT_FIGURES, sample
from ensemble_gateway import bootstrap
from ensemble_gateway.adapters.webhook_http import DEFAULT_DEADLINE_SECONDS
from ensemble_gateway.client import GatewayClient, GatewayClientError
from ensemble_gateway.domain.models import Prediction, PredictionStatus, utcnow
from ensemble_gateway.local.lambdas import FakeLambdaContext

TERMINAL = ("COMPLETED", "FAILED", "EXPIRED", "CANCELLED")
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
        runtime.client("sqs").send_message(QueueUrl=queue, MessageBody=s3_event(bucket, f"uploads/{pid}"))
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
    completion = bootstrap.completion()
    original = completion.notify
    crashed: list[str] = []

    def crash_once(prediction: Prediction, output: bytes | None = None) -> None:
        if prediction.service == "slow-noop" and not crashed:
            crashed.append(prediction.prediction_id)
            raise RuntimeError("injected crash after the write")
        original(prediction, output)

    monkeypatch.setattr(completion, "notify", crash_once)

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
    dispatch = bootstrap.dispatch()
    accepted = api.submit("slow-noop")
    pid = accepted["prediction_id"]
    original_input_uploaded = dispatch.input_uploaded
    monkeypatch.setattr(
        dispatch,
        "input_uploaded",
        lambda bucket, key, size=None: None if key == f"uploads/{pid}" else original_input_uploaded(bucket, key, size),
    )
    api.upload(accepted["upload"], b'{"sleep_ms": 50}', "application/json")
    time.sleep(1.5)
    monkeypatch.setattr(dispatch, "input_uploaded", original_input_uploaded)
    assert api.status(pid)["status"] == "PENDING_UPLOAD"
    body = s3_event(runtime.stack.outputs["BucketName"], f"uploads/{pid}")
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


def test_an_accepted_input_cannot_change_and_a_replay_gives_no_upload_form(runtime: Any, api: Any) -> None:
    # GIVEN a fraud-score prediction whose first upload (a low-risk claim) was accepted
    first, second = sample("fraud-score", "claim-low-risk.json"), sample("fraud-score", "claim-suspicious.json")
    key = f"immutable-{time.monotonic_ns()}"
    accepted = api.submit("fraud-score", idempotency_key=key)
    pid = accepted["prediction_id"]
    api.upload(accepted["upload"], first, "application/json")
    deadline = time.monotonic() + 30
    while api.status(pid).get("input") is None and time.monotonic() < deadline:
        time.sleep(0.05)
    # WHEN the same upload form is used again at once, with another claim (S3 takes it: the
    # form is still valid), and the prediction finishes
    api.upload(accepted["upload"], second, "application/json")
    count("second uploads after acceptance")
    done = settle(api, pid, "COMPLETED")

    # THEN what the model read, and what the record shows, is the first upload
    bucket = runtime.stack.outputs["BucketName"]
    stored = runtime.client("s3").get_object(Bucket=bucket, Key=f"inputs/{pid}")["Body"].read()
    changed = stored != first or done["input"]["sha256"] != hashlib.sha256(first).hexdigest()
    count("accepted inputs changed afterwards (must be 0)", int(changed))
    assert stored == first
    assert done["input"] == {
        "sha256": hashlib.sha256(first).hexdigest(),
        "size": len(first),
        "content_type": "application/json",
    }
    # AND the output is the first claim's (a fresh prediction on it answers the same)
    control = api.submit("fraud-score")
    api.upload(control["upload"], first, "application/json")
    expected = settle(api, control["prediction_id"], "COMPLETED")
    assert (
        requests.get(done["result"]["url"], timeout=10).json()
        == requests.get(expected["result"]["url"], timeout=10).json()
    )
    # AND replaying the request gives the finished prediction and no upload form
    replay = api.submit("fraud-score", idempotency_key=key)
    assert replay["prediction_id"] == pid and replay["status"] == "COMPLETED"
    assert replay["upload"] is None


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
        ("malformed JSON", b'{"service": "echo",', "application/json", 400, "not valid JSON"),
        ("not JSON", b"service=echo", "application/x-www-form-urlencoded", 415, "application/json"),
        # Nested past the parser's recursion limit: once a 502 (RecursionError), before authentication.
        ("JSON 1,000 levels deep", b"[" * 1000 + b"]" * 1000, "application/json", 400, "deeper than 32 levels"),
        ("JSON 100,000 levels deep", b'{"a":' * 100_000, "application/json", 400, "deeper than 32 levels"),
        ("a duplicate key", b'{"service": "echo", "service": "fraud-score"}', "application/json", 400, "twice"),
    ]
    for name, data, content_type, status, message in raw:
        response = requests.post(
            f"{runtime.api_url}/predictions", data=data, headers={**headers, "Content-Type": content_type}, timeout=10
        )
        assert response.status_code == status, (name, response.text)
        assert message in response.json()["message"], (name, response.text)
        rejected += 1
    keys = [("an Idempotency-Key of 256 characters", "k" * 256), ("an Idempotency-Key with a space", "a b")]
    for name, key in keys:
        response = requests.post(
            f"{runtime.api_url}/predictions",
            json={"service": "echo"},
            headers={**headers, "Idempotency-Key": key},
            timeout=10,
        )
        assert response.status_code == 400, (name, response.text)
        assert "Idempotency-Key" in response.json()["message"], name
        rejected += 1
    # Headers past API Gateway's 10,240 bytes: once an HTML page from the HTTP server (200 kB).
    for size in (20_000, 200_000):
        response = requests.post(
            f"{runtime.api_url}/predictions",
            json={"service": "echo"},
            headers={**headers, "Idempotency-Key": "k" * size},
            timeout=10,
        )
        assert response.status_code == 431, (size, response.text[:200])
        assert response.headers["Content-Type"] == "application/json"
        assert "10240" in response.json()["message"], size
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
    count("bad inputs tried", len(BAD_REQUESTS) + len(raw) + len(keys) + 2 + 2)
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


# ----------------------------------------------------------------------------------------------
# webhooks: a slow receiver of one client hurts no other; none may aim at the runtime itself
# ----------------------------------------------------------------------------------------------
DELAYED = "webhooks delayed by a slow receiver of another client (must be 0)"
AIMED_AT_RUNTIME = "webhooks aimed at the runtime itself refused"
FAULT_FIGURES.setdefault(DELAYED, 0)

# The slow receiver sends one byte of its answer this often: each socket read gets data well
# within a per-read timeout, so only the attempt's total deadline can end it.
DRIP_EVERY = 3.0
# Scheduling slack on a loaded 2-core machine, on top of the deadline.
SLACK = 5.0


class FakeSlowDripReceiver:
    """A webhook receiver on 127.0.0.1 that answers its first request one byte every ``DRIP_EVERY``.

    Later requests (the gateway's retries) get 410 Gone at once, so that delivery stops there.
    Records when the first request had arrived and when the gateway hung up on it.
    """

    def __init__(self) -> None:
        self.arrived: float | None = None
        self.hung_up: float | None = None
        self.requests = 0
        self.first = threading.Event()
        self.done = threading.Event()
        self._lock = threading.Lock()
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(8)
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}/hooks"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            with self._lock:
                self.requests += 1
                first = self.requests == 1
            if not first:
                conn.sendall(b"HTTP/1.1 410 Gone\r\nContent-Length: 0\r\n\r\n")
                return
            self.arrived = time.monotonic()
            self.first.set()
            for byte in b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n":
                readable, _, _ = select.select([conn], [], [], DRIP_EVERY)
                if readable:
                    try:
                        if not conn.recv(65536):
                            break
                    except OSError:
                        break
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    break
            self.hung_up = time.monotonic()
            self.done.set()

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def slow_receiver() -> Any:
    receiver = FakeSlowDripReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def other_client(runtime: Any) -> GatewayClient:
    """A second client of the gateway, with its own API key and webhook secret."""
    from ensemble_gateway.adapters.dynamodb import DynamoClientDirectory
    from ensemble_gateway.admin import create_client

    directory = DynamoClientDirectory(runtime.stack.outputs["ClientsTableName"], runtime.client("dynamodb"))
    _, api_key = create_client(directory, "slow-receiver-client")
    return GatewayClient(runtime.api_url, api_key)


def webhook_attempts(runtime: Any, prediction_id: str) -> list[dict[str, Any]]:
    from ensemble_gateway.adapters.dynamodb import DynamoPredictionStore

    store = DynamoPredictionStore(runtime.stack.outputs["PredictionsTableName"], runtime.client("dynamodb"))
    record = store.get(prediction_id)
    return record.webhook_attempts if record is not None else []


def test_a_slow_receiver_of_one_client_does_not_delay_another_clients_webhooks(
    runtime: Any, api: Any, webhook_receiver: Any, slow_receiver: FakeSlowDripReceiver, other_client: GatewayClient
) -> None:
    # GIVEN one client's prediction whose webhook receiver drips its answer, and whose webhook
    # attempt has begun
    slow = other_client.submit("echo", webhook_url=slow_receiver.url)
    other_client.upload(slow["upload"], b'{"who": "slow"}', "application/json")
    assert slow_receiver.first.wait(60), "the slow receiver's webhook never came"
    assert slow_receiver.arrived is not None

    # WHEN another client's prediction completes while that attempt is still dripping
    prompt = api.submit("echo", webhook_url=webhook_receiver.url)
    api.upload(prompt["upload"], b'{"who": "prompt"}', "application/json")
    delivered = webhook_receiver.wait_for(prompt["prediction_id"], timeout=60)
    arrived = time.monotonic()

    # THEN its webhook came while the slow attempt was still running: it waited for no one
    assert len(delivered) == 1
    began, ended = slow_receiver.arrived, slow_receiver.hung_up
    held = ended is not None and ended <= arrived
    count(DELAYED, int(held))
    assert not held, f"the prompt webhook came {arrived - began:.1f} s after the slow attempt began, after it ended"
    # AND the slow attempt was cut at its total deadline, not after the whole drip (~140 s)
    assert slow_receiver.done.wait(DEFAULT_DEADLINE_SECONDS + SLACK), "the slow attempt was not cut"
    assert slow_receiver.hung_up is not None
    assert slow_receiver.hung_up - slow_receiver.arrived <= DEFAULT_DEADLINE_SECONDS + SLACK
    # AND it is on the record as a failed attempt (its retry follows the schedule)
    deadline = time.monotonic() + 30
    attempts = webhook_attempts(runtime, slow["prediction_id"])
    while not attempts and time.monotonic() < deadline:
        time.sleep(0.2)
        attempts = webhook_attempts(runtime, slow["prediction_id"])
    assert attempts, "the slow attempt was not recorded"
    assert attempts[0]["delivered"] is False
    assert "deadline" in (attempts[0]["error"] or "")


def test_a_webhook_aimed_at_the_runtime_itself_is_refused(runtime: Any, api: Any) -> None:
    # GIVEN the runtime's own ports: its AWS endpoint (a POST there can invoke a function) and its API
    aws_port = urlsplit(runtime.aws_url).port
    api_port = urlsplit(runtime.api_url).port
    targets = [
        f"http://127.0.0.1:{aws_port}/2015-03-31/functions/webhook-delivery/invocations",
        f"http://localhost:{aws_port}/",
        f"http://127.0.0.1:{api_port}/predictions",
    ]
    for url in targets:
        # WHEN a prediction asks for a webhook there
        with pytest.raises(GatewayClientError) as refused:
            api.submit("echo", webhook_url=url)
        # THEN it is refused with a 400 saying why
        assert refused.value.status == 400, url
        assert "local runtime's own ports" in refused.value.message, refused.value.message
        count(AIMED_AT_RUNTIME)


# ----------------------------------------------------------------------------------------------
# S3: forged or tampered requests are refused as S3 refuses them (the upload key is always taken
# from the form the API returns)
# ----------------------------------------------------------------------------------------------
TRIED = "forged or tampered S3 requests tried"
REFUSED = "forged or tampered S3 requests refused"
for _figure in (TRIED, REFUSED):
    FAULT_FIGURES.setdefault(_figure, 0)


def refused(response: requests.Response, status: int, code: str) -> dict[str, str]:
    """Assert S3's refusal (status and XML error code) and record it; the error's elements."""
    count(TRIED)
    assert response.status_code == status, response.text
    error = {child.tag: child.text or "" for child in ET.fromstring(response.content)}
    assert error["Code"] == code, error
    count(REFUSED)
    return error


@pytest.fixture(scope="module")
def s3_other_client(runtime: Any) -> GatewayClient:
    """A second client of the gateway, whose outputs the first must not read."""
    from ensemble_gateway.adapters.dynamodb import DynamoClientDirectory
    from ensemble_gateway.admin import create_client

    directory = DynamoClientDirectory(runtime.stack.outputs["ClientsTableName"], runtime.client("dynamodb"))
    _, api_key = create_client(directory, "s3-guard-other")
    return GatewayClient(runtime.api_url, api_key)


def bucket_of(url: str) -> str:
    """The bucket of a path-style URL of the local endpoint."""
    return urlsplit(url).path.lstrip("/").split("/", 1)[0]


def objects_about(runtime: Any, bucket: str, prediction_id: str) -> list[str]:
    """Every key of the bucket that names the prediction, whatever its prefix."""
    s3 = runtime.client("s3")
    keys = [
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for item in page.get("Contents", [])
    ]
    return [key for key in keys if prediction_id in key]


def assert_not_started(runtime: Any, api: Any, prediction_id: str, bucket: str) -> None:
    """Nothing was stored for the prediction, and it still waits for its upload."""
    time.sleep(1.0)
    runtime.wait_idle(5)
    assert objects_about(runtime, bucket, prediction_id) == []
    assert api.status(prediction_id)["status"] == "PENDING_UPLOAD"


def test_a_result_url_with_its_key_swapped_does_not_return_another_clients_output(
    api: Any, s3_other_client: GatewayClient
) -> None:
    # GIVEN a completed prediction of this client, and one of another client with a secret in it
    mine = api.predict("echo", b'{"owner": "me"}', timeout=60)
    theirs = s3_other_client.predict("echo", b'{"owner": "them", "secret": "s3-guard-7f3a"}', timeout=60)
    assert mine["status"] == theirs["status"] == "COMPLETED", (mine, theirs)
    assert b"s3-guard-7f3a" in s3_other_client.download(theirs)

    # WHEN this client's result URL is edited to point at the other client's output
    my_url = urlsplit(mine["result"]["url"])
    their_path = urlsplit(theirs["result"]["url"]).path
    assert their_path != my_url.path
    forged = requests.get(urlunsplit(my_url._replace(path=their_path)), timeout=10)
    # AND the other client's output is asked for with no credentials at all
    anonymous = requests.get(urlunsplit(my_url._replace(path=their_path, query="")), timeout=10)

    # THEN both are refused as S3 refuses them, and the other client's output is not in either
    refused(forged, 403, "SignatureDoesNotMatch")
    refused(anonymous, 403, "AccessDenied")
    assert b"s3-guard-7f3a" not in forged.content + anonymous.content
    # AND this client's own URL, as issued, still downloads its output
    assert json.loads(api.download(mine))["echo"] == {"owner": "me"}


def test_a_form_urlencoded_post_with_only_the_key_stores_nothing_and_starts_nothing(runtime: Any, api: Any) -> None:
    # GIVEN a submitted prediction and the upload form the API returned
    accepted = api.submit("echo")
    pid, upload = accepted["prediction_id"], accepted["upload"]
    key = upload["fields"]["key"]

    # WHEN the bucket gets a form-urlencoded POST with only key=<the upload key>, no policy, no signature
    response = requests.post(upload["url"], data={"key": key}, timeout=10)

    # THEN S3 refuses it (a POST upload must be multipart/form-data), nothing is stored, and the
    # prediction does not start
    error = refused(response, 412, "PreconditionFailed")
    assert "multipart/form-data" in error["Condition"]
    assert_not_started(runtime, api, pid, bucket_of(upload["url"]))
    # AND the real upload with the given form still completes it
    api.upload(upload, b'{"after": "refusal"}', "application/json")
    assert api.wait(pid, timeout=60)["status"] == "COMPLETED"


def test_a_multipart_post_without_a_signature_is_refused(runtime: Any, api: Any) -> None:
    # GIVEN a submitted prediction and its upload form
    accepted = api.submit("echo")
    pid, upload = accepted["prediction_id"], accepted["upload"]
    fields = upload["fields"]
    file = {"file": ("input.json", b'{"forged": true}', "application/json")}

    # WHEN the form is posted without its signature, and with nothing but its key
    unsigned = {name: value for name, value in fields.items() if name.lower() != "x-amz-signature"}
    without_signature = requests.post(upload["url"], data=unsigned, files=file, timeout=10)
    bare = requests.post(upload["url"], data={"key": fields["key"]}, files=file, timeout=10)

    # THEN S3 asks for the signature, refuses the bare form as anonymous, and nothing starts
    assert refused(without_signature, 400, "InvalidArgument")["ArgumentName"] == "X-Amz-Signature"
    refused(bare, 403, "AccessDenied")
    assert_not_started(runtime, api, pid, bucket_of(upload["url"]))


def test_a_tampered_policy_is_refused(runtime: Any, api: Any) -> None:
    # GIVEN a submitted prediction and its upload form, whose policy a client edits to lift the size limit
    accepted = api.submit("echo")
    pid, upload = accepted["prediction_id"], accepted["upload"]
    policy = json.loads(base64.b64decode(upload["fields"]["policy"]))
    policy["conditions"] = [
        ["content-length-range", 1, 10**12] if isinstance(c, list) and c[0] == "content-length-range" else c
        for c in policy["conditions"]
    ]
    tampered = {**upload["fields"], "policy": base64.b64encode(json.dumps(policy).encode()).decode()}

    # WHEN the edited form is posted with a file over the original limit
    response = requests.post(
        upload["url"],
        data=tampered,
        files={"file": ("input.json", b" " * (upload["max_bytes"] + 1), "application/json")},
        timeout=10,
    )

    # THEN the policy's signature no longer matches, and nothing is stored or started
    refused(response, 403, "SignatureDoesNotMatch")
    assert_not_started(runtime, api, pid, bucket_of(upload["url"]))


def test_an_expired_presigned_get_is_refused(runtime: Any, api: Any) -> None:
    # GIVEN a completed prediction and a URL of its output presigned (with the endpoint's own
    # credentials) for one second
    document = api.predict("echo", b'{"expires": "soon"}', timeout=60)
    assert document["status"] == "COMPLETED", document
    bucket, _, key = urlsplit(document["result"]["url"]).path.lstrip("/").partition("/")
    url = runtime.client("s3").generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=1)
    assert requests.get(url, timeout=10).status_code == 200

    # WHEN it is used after it expired
    time.sleep(2.1)
    response = requests.get(url, timeout=10)

    # THEN S3 refuses it as expired
    assert refused(response, 403, "AccessDenied")["Message"] == "Request has expired"


def test_the_real_client_flow_still_works(api: Any) -> None:
    # GIVEN the gateway's client: submit, upload with the given form, wait, fetch the result URL
    # WHEN a prediction goes through it
    document = api.predict("echo", b'{"through": "the guard"}', timeout=60)
    # THEN it completes and its output downloads
    assert document["status"] == "COMPLETED", document
    assert json.loads(api.download(document))["echo"] == {"through": "the guard"}

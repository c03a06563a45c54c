"""One slow webhook receiver costs the others nothing: records of a batch, and batches, run side by side.

The webhook-delivery handler runs with the real sender against real receivers on 127.0.0.1; the
local runtime's registry and poller run with test doubles of SQS and of a handler module.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import types
import uuid
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from fake_receivers import FakeReceivers, FakeSlowReceiver
from gateway_fakes import World, make_world, new_client

from ensemble_gateway import bootstrap
from ensemble_gateway.adapters.webhook_http import DEFAULT_DEADLINE_SECONDS, HttpWebhookSender
from ensemble_gateway.domain.models import Callback, CallbackKind, Prediction, PredictionError, PredictionStatus
from ensemble_gateway.domain.webhooks import new_webhook_secret
from ensemble_gateway.handlers import webhook_delivery
from ensemble_gateway.local.deployer import EventSource, FunctionSpec
from ensemble_gateway.local.lambdas import FakeLambdaContext, FunctionRegistry
from ensemble_gateway.local.pollers import LOCAL_MAX_CONCURRENT_BATCHES, SqsPoller

DEADLINE = 3.0
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:webhooks"
SECRET = new_webhook_secret()
# Settings the handler's cold start reads (the delivery itself is the test's, below).
ENVIRONMENT = {
    "AWS_REGION": "us-east-1",
    "PREDICTIONS_TABLE": "predictions",
    "SERVICES_TABLE": "services",
    "CLIENTS_TABLE": "clients",
    "BUCKET": "bucket",
    "WEBHOOK_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/webhooks",
    "WEBHOOK_DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/webhooks-dlq",
}


@pytest.fixture
def receivers() -> Iterator[FakeReceivers]:
    made = FakeReceivers()
    yield made
    made.close()


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """Fakes behind the real handler: its delivery uses them and the real sender (3 s deadline)."""
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    bootstrap.reset()
    built = make_world(clients=[new_client("c_owner", [SECRET])], allow_loopback_http=True)
    delivery = built.delivery()
    delivery.sender = HttpWebhookSender(deadline_seconds=DEADLINE)
    monkeypatch.setattr(webhook_delivery, "webhook_delivery", lambda: delivery)
    yield built
    bootstrap.reset()


def due_webhook(world: World, prediction_id: str, url: str) -> str:
    """A failed prediction whose webhook to ``url`` is due; returns the job as a message body."""
    world.store.create(
        Prediction(
            prediction_id=prediction_id,
            service="fraud-score",
            owner="c_owner",
            status=PredictionStatus.FAILED,
            callback=Callback(kind=CallbackKind.WEBHOOK, target=url),
            error=PredictionError(code="ModelError", message="the model failed"),
        )
    )
    return json.dumps({"prediction_id": prediction_id, "event_type": "prediction.failed"})


def sqs_event(bodies: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Lambda's SQS event for ``bodies``, and the message IDs in order."""
    ids = [str(uuid.uuid4()) for _ in bodies]
    records = [
        {
            "messageId": message_id,
            "receiptHandle": f"rh-{message_id}",
            "body": body,
            "attributes": {"ApproximateReceiveCount": "1"},
            "messageAttributes": {},
            "md5OfBody": "",
            "eventSource": "aws:sqs",
            "eventSourceARN": QUEUE_ARN,
            "awsRegion": "us-east-1",
        }
        for message_id, body in zip(ids, bodies, strict=True)
    ]
    return {"Records": records}, ids


def context() -> FakeLambdaContext:
    return FakeLambdaContext(
        function_name="webhook-delivery",
        memory_limit_in_mb=512,
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:webhook-delivery",
        aws_request_id=str(uuid.uuid4()),
        deadline=time.monotonic() + 30,
    )


def attempts(world: World, prediction_id: str) -> list[dict[str, Any]]:
    record = world.store.get(prediction_id)
    assert record is not None
    return record.webhook_attempts


# ------------------------------------------------------------------------------------------------
# the handler: the records of one batch
# ------------------------------------------------------------------------------------------------
def test_fast_receivers_are_delivered_without_waiting_for_a_slow_one(world: World, receivers: FakeReceivers) -> None:
    # GIVEN a batch whose first record is for a slow-drip receiver and the next four for
    # receivers (of other clients) that answer at once
    slow = receivers("drip-status")
    fast: list[FakeSlowReceiver] = [receivers("fast") for _ in range(4)]
    bodies = [due_webhook(world, "p-slow", slow.url)]
    bodies += [due_webhook(world, f"p-fast-{i}", receiver.url) for i, receiver in enumerate(fast)]
    event, _ = sqs_event(bodies)

    # WHEN webhook-delivery handles the batch
    response = webhook_delivery.handler(event, context())

    # THEN every fast receiver had its webhook before the slow one's attempt reached its
    # deadline (worked one after another, they would all have come after it)
    (slow_arrived,) = slow.arrived
    fast_arrivals = [receiver.arrived[0] for receiver in fast]
    assert max(fast_arrivals) < slow_arrived + DEADLINE, (slow_arrived, fast_arrivals)
    # AND the slow attempt was cut at its deadline and scheduled for a retry; the others delivered
    assert "deadline" in attempts(world, "p-slow")[0]["error"]
    assert [job["prediction_id"] for job, _ in world.webhooks.jobs] == ["p-slow"]
    for i in range(4):
        assert [a["delivered"] for a in attempts(world, f"p-fast-{i}")] == [True]
    # AND every message is done (a scheduled retry is a new message): no batch item failures
    assert response == {"batchItemFailures": []}


def test_only_the_records_that_fail_are_reported_and_the_others_are_done(
    world: World, receivers: FakeReceivers
) -> None:
    # GIVEN a batch with a deliverable job, a body that is not JSON, a job without a prediction
    # and a job for a slow receiver (a failed attempt, retried by a new message)
    fast, slow = receivers("fast"), receivers("drip-status")
    bodies = [
        due_webhook(world, "p-ok", fast.url),
        "{not json",
        json.dumps({"event_type": "prediction.failed"}),
        due_webhook(world, "p-slow", slow.url),
    ]
    event, ids = sqs_event(bodies)

    # WHEN webhook-delivery handles it
    response = webhook_delivery.handler(event, context())

    # THEN exactly the two broken messages are reported (they stay on the queue for a retry and
    # then the DLQ); the deliverable one was delivered and the slow one's retry is queued
    assert sorted(item["itemIdentifier"] for item in response["batchItemFailures"]) == sorted([ids[1], ids[2]])
    assert [a["delivered"] for a in attempts(world, "p-ok")] == [True]
    assert [job["prediction_id"] for job, _ in world.webhooks.jobs] == ["p-slow"]


def test_a_batch_that_fails_entirely_is_returned_whole(world: World) -> None:
    # GIVEN a batch of messages that all fail
    event, _ = sqs_event(["{not json", "[]"])
    # WHEN / THEN the invocation fails, so that Lambda returns every message to the queue
    with pytest.raises(BatchProcessingError):
        webhook_delivery.handler(event, context())


# ------------------------------------------------------------------------------------------------
# the local runtime: batches of a reentrant function overlap, others stay serialised
# ------------------------------------------------------------------------------------------------
class FakeSqs:
    """A queue handing out the given batches, one per receive; records what is deleted."""

    def __init__(self, batches: list[list[str]]) -> None:
        self.batches = deque(
            [[{"MessageId": body, "ReceiptHandle": f"rh-{body}", "Body": body} for body in batch] for batch in batches]
        )
        self.deleted: list[str] = []
        self.lock = threading.Lock()

    def receive_message(self, **_: Any) -> dict[str, Any]:
        with self.lock:
            if self.batches:
                return {"Messages": self.batches.popleft()}
        time.sleep(0.05)
        return {}

    def delete_message_batch(self, **request: Any) -> None:
        with self.lock:
            self.deleted.extend(entry["ReceiptHandle"].removeprefix("rh-") for entry in request["Entries"])


class FakeHandlerModule(types.ModuleType):
    """A handler module: "slow-*" records wait for ``release``; every record's start is noted."""

    def __init__(self, name: str, reentrant: bool) -> None:
        super().__init__(name)
        if reentrant:
            self.REENTRANT = True
        self.release = threading.Event()
        self.started: dict[str, float] = {}
        self.running = 0
        self.most_running = 0
        self.lock = threading.Lock()

    def handler(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        with self.lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            for record in event["Records"]:
                self.started[record["body"]] = time.monotonic()
                if record["body"].startswith("slow"):
                    assert self.release.wait(20)
            return {"batchItemFailures": []}
        finally:
            with self.lock:
                self.running -= 1


def function_spec(module_name: str, scaling: dict[str, Any] | None = None) -> FunctionSpec:
    properties: dict[str, Any] = {"Queue": QUEUE_ARN, "BatchSize": 10}
    if scaling is not None:
        properties["ScalingConfig"] = scaling
    return FunctionSpec(
        logical_id="WebhookDeliveryFunction",
        function_name="webhook-delivery",
        handler=f"{module_name}.handler",
        environment={},
        timeout=30,
        events=[EventSource(name="Deliveries", kind="SQS", properties=properties)],
    )


def start_poller(
    monkeypatch: pytest.MonkeyPatch, batches: list[list[str]], reentrant: bool, scaling: dict[str, Any] | None = None
) -> tuple[SqsPoller, FakeSqs, FakeHandlerModule]:
    name = f"fake_handlers_{uuid.uuid4().hex}"
    module = FakeHandlerModule(name, reentrant)
    monkeypatch.setitem(sys.modules, name, module)
    spec = function_spec(name, scaling)
    sqs = FakeSqs(batches)
    poller = SqsPoller(
        sqs, "https://queue.local/webhooks", QUEUE_ARN, spec, FunctionRegistry({spec.logical_id: spec}, "us-east-1")
    )
    poller.start()
    return poller, sqs, module


def wait_until(condition: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


def stop(poller: SqsPoller, sqs: FakeSqs, module: FakeHandlerModule, messages: int) -> None:
    """Release the held batches, let the poller finish the queue, then stop it."""
    module.release.set()
    wait_until(lambda: len(sqs.deleted) == messages)
    poller.stopping.set()
    poller.join(timeout=10)
    assert not poller.is_alive()


def test_a_batch_held_by_a_slow_receiver_does_not_hold_the_next_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a reentrant function (as webhook-delivery is) and two batches: one held by a slow
    # receiver, then one that is quick
    poller, sqs, module = start_poller(monkeypatch, [["slow-1"], ["fast-1"]], reentrant=True)
    try:
        # WHEN the poller works the queue
        # THEN the second batch runs while the first is still held, as Lambda's pollers run them
        assert wait_until(lambda: "fast-1" in sqs.deleted)
        assert "slow-1" not in sqs.deleted
        assert poller.busy.is_set()
    finally:
        stop(poller, sqs, module, 2)
    # AND once released, the first batch is done too and the poller is idle
    assert sorted(sqs.deleted) == ["fast-1", "slow-1"]
    assert not poller.busy.is_set()


def test_a_function_that_is_not_reentrant_still_gets_one_batch_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a function whose handler keeps an invocation's state at module level (no REENTRANT)
    poller, sqs, module = start_poller(
        monkeypatch, [["slow-1"], ["fast-1"]], reentrant=False, scaling={"MaximumConcurrency": 5}
    )
    try:
        # WHEN the first batch is held
        assert wait_until(lambda: "slow-1" in module.started)
        time.sleep(1.0)
        # THEN the second is not even received: it waits on the queue, not for the lock
        assert "fast-1" not in module.started
        assert len(sqs.batches) == 1
    finally:
        stop(poller, sqs, module, 2)
    assert sorted(sqs.deleted) == ["fast-1", "slow-1"]
    assert module.most_running == 1


def test_concurrent_batches_are_capped_by_the_event_sources_maximum_concurrency(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a reentrant function whose event source allows 2 concurrent batches, and three held batches
    poller, sqs, module = start_poller(
        monkeypatch, [["slow-1"], ["slow-2"], ["slow-3"]], reentrant=True, scaling={"MaximumConcurrency": 2}
    )
    try:
        # WHEN the poller works the queue
        assert wait_until(lambda: module.running == 2)
        time.sleep(1.0)
        # THEN two run, and the third waits on the queue until one of them ends
        assert module.running == 2
        assert len(sqs.batches) == 1
    finally:
        stop(poller, sqs, module, 3)
    assert sorted(sqs.deleted) == ["slow-1", "slow-2", "slow-3"]
    assert module.most_running == 2


def test_a_stopping_poller_ends_only_once_its_batches_have(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a reentrant function with a held batch
    poller, sqs, module = start_poller(monkeypatch, [["slow-1"]], reentrant=True)
    assert wait_until(lambda: "slow-1" in module.started)
    # WHEN the poller is asked to stop
    poller.stopping.set()
    # THEN it waits for the batch (a runtime joining its pollers has nothing left running) ...
    poller.join(timeout=1.0)
    assert poller.is_alive()
    assert poller.busy.is_set()
    # ... and ends once the batch does, with the batch's message deleted
    module.release.set()
    poller.join(timeout=10)
    assert not poller.is_alive()
    assert sqs.deleted == ["slow-1"]


def test_overlapping_invocations_are_allowed_only_to_reentrant_handlers() -> None:
    # GIVEN the template's webhook-delivery and process-input handlers
    def spec(logical_id: str, handler: str) -> FunctionSpec:
        return FunctionSpec(logical_id, logical_id, handler, {}, 30, [])

    delivery = spec("WebhookDeliveryFunction", "ensemble_gateway.handlers.webhook_delivery.handler")
    process_input = spec("ProcessInputFunction", "ensemble_gateway.handlers.process_input.handler")
    registry = FunctionRegistry({s.logical_id: s for s in (delivery, process_input)}, "us-east-1")
    # WHEN / THEN webhook-delivery declares itself reentrant; process-input (a module-level batch
    # processor) does not, and keeps its lock
    assert registry.reentrant(delivery) is True
    assert registry.reentrant(process_input) is False


# ------------------------------------------------------------------------------------------------
# the template: the function's budget is one attempt, and its concurrency is capped
# ------------------------------------------------------------------------------------------------
def test_the_function_timeout_covers_one_attempt_and_its_concurrency_is_capped() -> None:
    from ensemble_gateway.local.template import load_template

    # GIVEN the template's webhook-delivery function and its queue event source
    template = load_template(Path(__file__).resolve().parents[2] / "template.yaml")
    function = template["Resources"]["WebhookDeliveryFunction"]["Properties"]
    (source,) = [e["Properties"] for e in function["Events"].values() if e["Type"] == "SQS"]
    timeout = int(function.get("Timeout", template["Globals"]["Function"]["Timeout"]))

    # THEN the timeout is one attempt's deadline plus a margin for the records' AWS calls (the
    # records of a batch run side by side), not a whole batch of attempts in a row
    assert DEFAULT_DEADLINE_SECONDS + 10 <= timeout < source["BatchSize"] * DEFAULT_DEADLINE_SECONDS
    # AND the event source caps its concurrent batches (in CloudFormation's range), so a burst of
    # webhooks cannot take the account's concurrency from the API
    assert 2 <= int(source["ScalingConfig"]["MaximumConcurrency"]) <= 1000
    # AND the local runtime runs at most its own cap of them
    assert LOCAL_MAX_CONCURRENT_BATCHES >= 2

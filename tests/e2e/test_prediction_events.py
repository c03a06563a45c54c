"""Prediction events on EventBridge, end to end on the local runtime: a subscriber's rule on the
gateway's bus routes them to its SQS queue, as a team on AWS would subscribe."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import sample

PATTERN = {
    "source": ["ensemble-gateway"],
    "detail-type": ["prediction.completed", "prediction.failed", "prediction.expired"],
}


@pytest.fixture
def subscriber(runtime: Any) -> Iterator[Any]:
    """An SQS queue behind a rule on the gateway's bus matching every prediction event."""
    events, sqs = runtime.client("events"), runtime.client("sqs")
    bus = runtime.stack.outputs["EventBusName"]
    name = f"events-subscriber-{time.monotonic_ns()}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps(PATTERN))
    events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "queue", "Arn": arn}])

    class Subscriber:
        def events_of(self, prediction_id: str, wait: float = 20.0) -> list[dict[str, Any]]:
            """The events the queue got for the prediction, once at least one arrived."""
            found: list[dict[str, Any]] = []
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
                    "Messages", []
                ):
                    found.append(json.loads(message["Body"]))
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                mine = [e for e in found if e["detail"]["data"]["prediction_id"] == prediction_id]
                if mine:
                    time.sleep(1.0)  # a duplicate would arrive right behind it
                    for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
                        found.append(json.loads(message["Body"]))
                    return [e for e in found if e["detail"]["data"]["prediction_id"] == prediction_id]
            return []

    yield Subscriber()
    events.remove_targets(Rule=name, EventBusName=bus, Ids=["queue"])
    events.delete_rule(Name=name, EventBusName=bus)
    sqs.delete_queue(QueueUrl=url)


def test_a_completed_prediction_puts_one_event_with_the_get_document(api: Any, subscriber: Any) -> None:
    # GIVEN a prediction asking to be announced on EventBridge
    accepted = api.submit("fraud-score", extra={"notification": {"eventbridge": {}}})
    # WHEN its input is uploaded and it completes
    api.upload(accepted["upload"], sample("fraud-score", "claim-low-risk.json"), "application/json")
    document = api.wait(accepted["prediction_id"], timeout=60)
    assert document["status"] == "COMPLETED", document
    # THEN the subscriber's queue got one event: the gateway's source, the type as detail-type,
    # and the GET document as its data
    (event,) = subscriber.events_of(accepted["prediction_id"])
    assert event["source"] == "ensemble-gateway"
    assert event["detail-type"] == "prediction.completed"
    detail = event["detail"]
    assert detail["type"] == "prediction.completed"
    assert detail["event_id"] == f"{accepted['prediction_id']}:prediction.completed"
    # (but the result URL, signed anew, and the shadows: the example catalog's fraud-score 1.1.0
    # shadows every input and ends on its own, after the prediction and its event)
    changing = {"result", "shadows"}
    assert {k: v for k, v in detail["data"].items() if k not in changing} == {
        k: v for k, v in api.status(accepted["prediction_id"]).items() if k not in changing
    }
    assert detail["data"]["result"]["content_type"] == "application/json"


def test_a_failed_prediction_puts_a_failed_event_with_the_models_reason(api: Any, subscriber: Any) -> None:
    # GIVEN a prediction of a model that always fails, announced on EventBridge
    accepted = api.submit("always-fails", extra={"notification": {"eventbridge": {}}})
    # WHEN it runs and fails
    api.upload(accepted["upload"], b'{"x": 1}', "application/json")
    document = api.wait(accepted["prediction_id"], timeout=60)
    assert document["status"] == "FAILED", document
    # THEN one prediction.failed event carries the model's reason
    (event,) = subscriber.events_of(accepted["prediction_id"])
    assert event["detail-type"] == "prediction.failed"
    assert event["detail"]["data"]["error"] == document["error"]


def test_webhook_and_eventbridge_together_are_refused(api: Any) -> None:
    from ensemble_gateway.client import GatewayClientError

    # WHEN a request asks for both channels
    with pytest.raises(GatewayClientError) as refused:
        api.submit(
            "echo",
            extra={"notification": {"webhook": {"url": "https://hooks.example.com/x"}, "eventbridge": {}}},
        )
    # THEN it is a 400 saying so
    assert refused.value.status == 400

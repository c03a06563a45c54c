"""``notification: {"eventbridge": {}}``: one event on the gateway's bus when a prediction ends.

The event's detail carries the same ``data`` as a webhook (the ``GET /predictions/{id}``
document). Delivery is at least once: a duplicate of the event that ended a prediction publishes
again, with the same ``event_id``, for consumers to deduplicate on.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from gateway_fakes import FakeEventPublisher, FakeLogger, World, make_world, model_service, new_client
from pydantic import ValidationError

from ensemble_gateway.domain.api import NewPredictionRequest
from ensemble_gateway.domain.errors import InvalidRequestError
from ensemble_gateway.domain.models import Callback, CallbackKind, Prediction, PredictionStatus, Service
from ensemble_gateway.domain.notifications import InferenceResult
from ensemble_gateway.domain.notifiers.eventbridge import EventBridgeNotifier
from ensemble_gateway.domain.ports import RealtimeResponse

EVENTBRIDGE: dict[str, Any] = {"eventbridge": {}}
CLAIM = {"claim": {"amount": 1200}}


def claim_ensemble() -> Service:
    return Service.model_validate(
        {
            "name": "claim",
            "kind": "ensemble",
            "ensemble": {
                "definition": "claim.asl.json",
                "steps": {"fraud": {"service": "fraud-score", "mapping": {"claim": "$.input.claim"}}},
                "state_machine_arn": "arn:aws:states:us-east-1:123456789012:stateMachine:gw-claim",
                "final_step": "fraud",
            },
        }
    )


@pytest.fixture
def world() -> World:
    return make_world(
        services=[model_service("fraud-score"), model_service("repair-cost", invocation="realtime"), claim_ensemble()],
        clients=[new_client("c_owner")],
    )


def bus(world: World) -> FakeEventPublisher:
    assert world.events is not None
    return world.events


def submit(world: World, service: str = "fraud-score", notification: dict[str, Any] | None = None) -> str:
    body: dict[str, Any] = {"service": service, "notification": EVENTBRIDGE if notification is None else notification}
    client = world.clients.get("c_owner")
    assert client is not None
    return world.gateway.submit(client, NewPredictionRequest.model_validate(body), raw_body=body).prediction_id


def upload(world: World, prediction_id: str, body: bytes = json.dumps(CLAIM).encode()) -> None:
    world.objects.put_upload(f"uploads/{prediction_id}", body)
    world.gateway.input_uploaded(world.objects.bucket, f"uploads/{prediction_id}", len(body))


def succeeded(world: World, prediction_id: str, output: bytes = b'{"p": 0.1}') -> InferenceResult:
    uri = world.objects.write(f"outputs/{prediction_id}.out", output, "application/json")
    return InferenceResult.model_validate(
        {
            "inferenceId": prediction_id,
            "invocationStatus": "Completed",
            "responseParameters": {"contentType": "application/json", "outputLocation": uri},
        }
    )


def failed(prediction_id: str) -> InferenceResult:
    return InferenceResult.model_validate(
        {"inferenceId": prediction_id, "invocationStatus": "Failed", "failureReason": "ModelError: boom"}
    )


def record(world: World, prediction_id: str) -> Prediction:
    found = world.store.get(prediction_id)
    assert found is not None
    return found


def document(world: World, prediction_id: str) -> dict[str, Any]:
    """The GET document of the prediction now, as JSON (what the event's data must be)."""
    rendered: dict[str, Any] = json.loads(world.gateway.document(record(world, prediction_id)).model_dump_json())
    return rendered


# ------------------------------------------------------------------------------------------------
# one event per terminal prediction
# ------------------------------------------------------------------------------------------------
def test_a_completed_prediction_publishes_one_event_with_the_get_document(world: World) -> None:
    # GIVEN a prediction asking for EventBridge
    prediction_id = submit(world)
    assert record(world, prediction_id).callback == Callback(kind=CallbackKind.EVENTBRIDGE)
    upload(world, prediction_id)
    assert bus(world).events == []
    # WHEN its model succeeds
    world.clock.advance(seconds=3)
    world.gateway.inference_finished(succeeded(world, prediction_id))
    # THEN exactly one event: its type as detail-type, a dedupe id, the time, and the GET document
    (event,) = bus(world).events
    assert event.detail_type == "prediction.completed"
    assert event.detail == {
        "type": "prediction.completed",
        "timestamp": "2026-11-22T09:00:03Z",
        "event_id": f"{prediction_id}:prediction.completed",
        "data": document(world, prediction_id),
    }
    assert event.detail["data"]["result"]["content_type"] == "application/json"
    # AND no webhook was queued: the channels are exclusive
    assert world.webhooks.jobs == []


def test_a_failed_prediction_publishes_a_failed_event_with_the_models_reason(world: World) -> None:
    prediction_id = submit(world)
    upload(world, prediction_id)
    # WHEN its model fails
    world.gateway.inference_finished(failed(prediction_id))
    # THEN one prediction.failed event carries the model's own message
    (event,) = bus(world).events
    assert (event.detail_type, event.detail["type"]) == ("prediction.failed", "prediction.failed")
    error = record(world, prediction_id).error
    assert error is not None and error.code == "ModelError" and "boom" in error.message
    assert event.detail["data"]["error"] == error.model_dump(mode="json")
    assert event.detail["data"] == document(world, prediction_id)


def test_an_upload_that_never_comes_publishes_an_expired_event(world: World) -> None:
    # GIVEN a prediction whose input is never uploaded
    prediction_id = submit(world)
    # WHEN the sweeper runs past its upload deadline, twice
    world.clock.advance(seconds=931)
    assert world.gateway.sweep() == 1
    assert world.gateway.sweep() == 0
    # THEN one prediction.expired event
    (event,) = bus(world).events
    assert event.detail_type == "prediction.expired"
    assert event.detail["event_id"] == f"{prediction_id}:prediction.expired"
    assert event.detail["data"]["error"]["code"] == "UploadExpired"


def test_a_model_that_never_answers_publishes_a_failed_event_at_its_deadline(world: World) -> None:
    prediction_id = submit(world)
    upload(world, prediction_id)
    # WHEN the sweeper finds it past its deadline
    world.clock.advance(hours=2)
    assert world.gateway.sweep() == 1
    # THEN one prediction.failed event saying it timed out
    (event,) = bus(world).events
    assert event.detail_type == "prediction.failed"
    assert event.detail["data"]["error"]["code"] == "Timeout"


def test_a_realtime_prediction_publishes_its_event_when_process_input_finishes_it(world: World) -> None:
    world.models.realtime_answer = RealtimeResponse(body=b'{"eur": 900}', content_type="application/json")
    prediction_id = submit(world, "repair-cost")
    # WHEN the upload is announced (the model answers inline)
    upload(world, prediction_id)
    # THEN its one event is published by then
    (event,) = bus(world).events
    assert event.detail_type == "prediction.completed"
    assert event.detail["data"] == document(world, prediction_id)


def test_an_ensemble_publishes_one_event_with_its_lineage_and_its_steps_none(world: World) -> None:
    # GIVEN an ensemble asking for EventBridge, started
    parent_id = submit(world, "claim")
    upload(world, parent_id)
    (_, _, execution) = world.workflows.started[-1]
    step = world.steps().call(parent_id, "fraud", "token-fraud", execution=json.loads(json.dumps(execution)))
    # WHEN its final step succeeds
    world.gateway.inference_finished(succeeded(world, step["prediction_id"]))
    # THEN one event, for the ensemble (its steps answer task tokens), with the lineage
    (event,) = bus(world).events
    assert event.detail["data"]["prediction_id"] == parent_id
    assert [s["name"] for s in event.detail["data"]["steps"]] == ["fraud"]
    assert event.detail["data"] == document(world, parent_id)


# ------------------------------------------------------------------------------------------------
# at least once
# ------------------------------------------------------------------------------------------------
def test_a_duplicate_notification_publishes_again_with_the_same_event_id(world: World) -> None:
    # GIVEN a completed prediction whose event was published
    prediction_id = submit(world)
    upload(world, prediction_id)
    world.gateway.inference_finished(succeeded(world, prediction_id))
    finished_at = record(world, prediction_id).finished_at
    # WHEN SNS delivers its notification again, and a late failure arrives too
    world.gateway.inference_finished(succeeded(world, prediction_id))
    world.gateway.inference_finished(failed(prediction_id))
    # THEN the prediction is unchanged, and each re-drive published the same event again
    # (delivery is at least once: consumers deduplicate on event_id)
    assert record(world, prediction_id).status is PredictionStatus.COMPLETED
    assert record(world, prediction_id).finished_at == finished_at
    events = bus(world).of(prediction_id)
    assert [e.detail["event_id"] for e in events] == [f"{prediction_id}:prediction.completed"] * 3
    assert {e.detail_type for e in events} == {"prediction.completed"}


def test_a_refused_publish_fails_the_invocation_and_its_retry_publishes(world: World) -> None:
    # GIVEN a bus that refuses the next event
    prediction_id = submit(world)
    upload(world, prediction_id)
    bus(world).fail_next = 1
    # WHEN the model's notification is handled
    result = succeeded(world, prediction_id)
    with pytest.raises(RuntimeError, match="did not take"):
        world.gateway.inference_finished(result)
    # THEN the prediction is COMPLETED but nothing was published; the invocation failed
    assert record(world, prediction_id).status is PredictionStatus.COMPLETED
    assert bus(world).events == []
    # WHEN SNS retries the notification (as Lambda does after the failure)
    world.gateway.inference_finished(result)
    # THEN the event is published, once
    (event,) = bus(world).events
    assert event.detail["event_id"] == f"{prediction_id}:prediction.completed"


# ------------------------------------------------------------------------------------------------
# what a request may ask for
# ------------------------------------------------------------------------------------------------
def test_webhook_and_eventbridge_together_are_refused_naming_both() -> None:
    # WHEN a request asks for both channels
    with pytest.raises(ValidationError) as refused:
        NewPredictionRequest.model_validate(
            {"service": "echo", "notification": {"webhook": {"url": "https://hooks.example.com/x"}, **EVENTBRIDGE}}
        )
    # THEN it is refused at the notification, saying why
    (error,) = refused.value.errors()
    assert error["loc"] == ("notification",)
    assert error["msg"] == "choose one notification channel, not 'webhook' and 'eventbridge'"


def test_without_an_event_bus_an_eventbridge_request_is_refused_and_nothing_recorded() -> None:
    # GIVEN a gateway deployed without an event bus
    world = make_world(services=[model_service("fraud-score")], clients=[new_client("c_owner")], event_bus=False)
    # WHEN a client asks for EventBridge
    with pytest.raises(InvalidRequestError, match="this gateway has no event bus configured") as refused:
        submit(world)
    # THEN it is a 400, nothing was recorded, and other channels still work
    assert refused.value.http_status == 400
    assert world.store.records == {}
    webhook = submit(world, notification={"webhook": {"url": "https://hooks.example.com/ml"}})
    assert record(world, webhook).callback.kind is CallbackKind.WEBHOOK
    assert record(world, submit(world, notification={})).callback == Callback()


def test_a_channel_without_a_notifier_is_refused_by_intake_without_knowing_the_channel(world: World) -> None:
    # GIVEN a gateway wired without an EventBridge notifier
    del world.use_cases.notifiers.by_kind[CallbackKind.EVENTBRIDGE]
    # WHEN / THEN a request for it is refused, naming it, before anything is recorded
    with pytest.raises(InvalidRequestError, match="notification 'eventbridge' is not available"):
        submit(world)
    assert world.store.records == {}


def test_a_prediction_finishing_after_its_bus_was_removed_is_logged_not_failed(world: World) -> None:
    # GIVEN a prediction recorded while the gateway had a bus, which it no longer has
    prediction_id = submit(world)
    upload(world, prediction_id)
    notifier = world.use_cases.notifiers.by_kind[CallbackKind.EVENTBRIDGE]
    assert isinstance(notifier, EventBridgeNotifier)
    notifier.publisher = None
    logger = FakeLogger()
    world.gateway.logger = logger
    # WHEN it finishes
    world.gateway.inference_finished(succeeded(world, prediction_id))
    # THEN it is COMPLETED (nothing to retry), and the log says the event went nowhere
    assert record(world, prediction_id).status is PredictionStatus.COMPLETED
    assert logger.fields_of("no event bus configured: prediction event not published") == [
        {"prediction_id": prediction_id}
    ]
    assert bus(world).events == []

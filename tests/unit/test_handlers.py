"""Every Lambda handler takes its use case as ``dependencies``: the sample events of ``events/``
through each real handler (Powertools decorators included), its domain wired to in-memory fakes.

Nothing here builds the process's own use cases: a handler that ignored the injected ones would
reach for AWS and fail.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from gateway_fakes import FakeClients, FakeSender, World, make_world, model_service, new_client

from ensemble_gateway import bootstrap
from ensemble_gateway.domain.auth import Authenticator
from ensemble_gateway.domain.models import Callback, CallbackKind, Prediction, PredictionStatus, Service
from ensemble_gateway.handlers import (
    cancel_prediction,
    get_transform_call,
    new_prediction,
    notifications,
    process_input,
    results,
    shadow_dispatch,
    sweeper,
    webhook_delivery,
)
from ensemble_gateway.local.lambdas import FakeLambdaContext

EVENTS = Path(__file__).resolve().parents[2] / "events"
# The prediction every sample event names.
SAMPLE_ID = "p20261122000000abcdef012345"
SAMPLE_BUCKET = "ensemble-gateway-data-123456789012-us-east-1"
# The sample API events are signed by a session of this role.
ROLE = "arn:aws:iam::123456789012:role/claims-intake"
# What the handlers' settings need at their first invocation; every table and queue is a dummy:
# the tests' use cases are fakes.
ENVIRONMENT = {
    "AWS_REGION": "us-east-1",
    "PREDICTIONS_TABLE": "nowhere-predictions",
    "SERVICES_TABLE": "nowhere-services",
    "CLIENTS_TABLE": "nowhere-clients",
    "BUCKET": "nowhere",
    "WEBHOOK_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/nowhere",
    "WEBHOOK_DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/nowhere-dlq",
    "POWERTOOLS_METRICS_DISABLED": "true",
}


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    bootstrap.reset()
    yield
    bootstrap.reset()


@pytest.fixture
def world() -> World:
    claim = Service.model_validate(
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
    intake = new_client("c_intake").model_copy(update={"principal_arn": ROLE})
    return make_world(services=[model_service("fraud-score"), claim], clients=[intake])


def sample(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text(encoding="utf-8"))
    return event


def context(function: str) -> FakeLambdaContext:
    return FakeLambdaContext(
        function_name=function,
        memory_limit_in_mb=512,
        invoked_function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{function}",
        aws_request_id=str(uuid.uuid4()),
        deadline=time.monotonic() + 30,
    )


def iam(world: World) -> Authenticator:
    return Authenticator(world.clients, "iam")


def record(world: World, prediction_id: str = SAMPLE_ID) -> Prediction:
    found = world.store.get(prediction_id)
    assert found is not None
    return found


def results_dependencies(world: World) -> results.Dependencies:
    return results.Dependencies(
        authenticator=iam(world), read_model=world.use_cases.read_model, listing=world.use_cases.listing
    )


def running(world: World, **fields: Any) -> None:
    """The sample prediction, RUNNING on fraud-score and dispatched, as the sample events find it."""
    world.store.create(
        Prediction(
            prediction_id=SAMPLE_ID,
            service="fraud-score",
            owner="c_intake",
            status=PredictionStatus.RUNNING,
            input_uri=f"s3://{SAMPLE_BUCKET}/inputs/{SAMPLE_ID}",
            started_at=world.clock(),
            dispatched_at=world.clock(),
            deadline_at=world.clock() + timedelta(minutes=10),
            **fields,
        )
    )


def test_new_prediction_submits_through_the_injected_authenticator_and_intake(world: World) -> None:
    # GIVEN the sample POST /predictions, signed by a session of a role registered as a client
    event = sample("new_prediction")
    # WHEN new-prediction handles it with the fakes' authenticator and intake
    dependencies = new_prediction.Dependencies(authenticator=iam(world), intake=world.use_cases.intake)
    answer = new_prediction.handler(event, context("new-prediction"), dependencies=dependencies)
    # THEN it is accepted for the role's client, and recorded by the injected intake
    assert answer["statusCode"] == 202, answer["body"]
    accepted = json.loads(answer["body"])
    created = record(world, accepted["prediction_id"])
    assert (created.owner, created.idempotency_key) == ("c_intake", "claim-C-1001-v1")
    assert created.callback == Callback(kind=CallbackKind.WEBHOOK, target="https://hooks.example.com/ml")


def test_new_prediction_refuses_a_principal_the_injected_directory_does_not_know(world: World) -> None:
    # GIVEN a directory without the sample's role
    dependencies = new_prediction.Dependencies(
        authenticator=Authenticator(FakeClients(), "iam"), intake=world.use_cases.intake
    )
    # WHEN the sample request arrives
    answer = new_prediction.handler(sample("new_prediction"), context("new-prediction"), dependencies=dependencies)
    # THEN it is 401 naming the principal, and nothing was recorded
    assert answer["statusCode"] == 401
    assert "claims-intake" in json.loads(answer["body"])["message"]
    assert world.store.records == {}


def test_results_answers_from_the_injected_read_model(world: World) -> None:
    # GIVEN the sample prediction, running, owned by the role's client
    running(world)
    # WHEN results handles the sample GET with the fakes' read model
    dependencies = results_dependencies(world)
    answer = results.handler(sample("results"), context("results"), dependencies=dependencies)
    # THEN it is the prediction's document
    assert answer["statusCode"] == 200, answer["body"]
    document = json.loads(answer["body"])
    assert (document["prediction_id"], document["status"]) == (SAMPLE_ID, "RUNNING")


def test_results_of_another_clients_prediction_is_not_found(world: World) -> None:
    # GIVEN the sample prediction owned by someone else
    running(world)
    world.store.update(SAMPLE_ID, {"owner": "c_other"})
    dependencies = results_dependencies(world)
    # WHEN the role's client asks for it
    answer = results.handler(sample("results"), context("results"), dependencies=dependencies)
    # THEN it is the same 404 as an unknown prediction
    assert answer["statusCode"] == 404


def test_results_lists_the_callers_own_through_the_injected_listing(world: World) -> None:
    # GIVEN the sample prediction, running, owned by the role's client, and one of another client
    running(world)
    world.store.create(
        Prediction(prediction_id="p-other", service="fraud-score", owner="c_other", status=PredictionStatus.RUNNING)
    )
    # WHEN results handles the sample GET /predictions?status=RUNNING&limit=10
    answer = results.handler(sample("results_list"), context("results"), dependencies=results_dependencies(world))
    # THEN the page holds the caller's own only, and says it is the last
    assert answer["statusCode"] == 200, answer["body"]
    page = json.loads(answer["body"])
    assert [p["prediction_id"] for p in page["predictions"]] == [SAMPLE_ID]
    assert page["next_token"] is None


def test_results_refuses_a_list_filter_it_does_not_know(world: World) -> None:
    # GIVEN the sample list request with a status that is no status
    event = sample("results_list")
    event["queryStringParameters"] = {"status": "DONE"}
    # WHEN results handles it
    answer = results.handler(event, context("results"), dependencies=results_dependencies(world))
    # THEN it is a 400 naming the value and the statuses there are
    assert answer["statusCode"] == 400
    assert json.loads(answer["body"])["message"].startswith("status 'DONE' is not one of PENDING_UPLOAD, RUNNING")


def test_cancel_prediction_cancels_through_the_injected_cancellation(world: World) -> None:
    # GIVEN the sample prediction, running, owned by the role's client
    running(world)
    dependencies = cancel_prediction.Dependencies(
        authenticator=iam(world), cancellation=world.use_cases.cancellation, read_model=world.use_cases.read_model
    )
    # WHEN cancel-prediction handles the sample POST /predictions/{id}/cancel
    answer = cancel_prediction.handler(sample("cancel_prediction"), context("cancel"), dependencies=dependencies)
    # THEN it answers the CANCELLED document, as recorded
    assert answer["statusCode"] == 200, answer["body"]
    document = json.loads(answer["body"])
    assert (document["status"], document["error"]["code"]) == ("CANCELLED", "Cancelled")
    assert record(world).status is PredictionStatus.CANCELLED
    # AND a second cancel of the same answers the same; a cancel with a body is refused
    again = cancel_prediction.handler(sample("cancel_prediction"), context("cancel"), dependencies=dependencies)
    assert again["statusCode"] == 200
    with_body = sample("cancel_prediction")
    with_body["body"] = json.dumps({"reason": "no"})
    refused = cancel_prediction.handler(with_body, context("cancel"), dependencies=dependencies)
    assert refused["statusCode"] == 400
    assert json.loads(refused["body"])["message"] == "unknown field 'reason': this request takes no body"


def test_new_prediction_renews_an_upload_form_through_the_injected_intake(world: World) -> None:
    # GIVEN the sample prediction awaiting its upload
    world.store.create(
        Prediction(
            prediction_id=SAMPLE_ID,
            service="fraud-score",
            owner="c_intake",
            upload_expires_at=world.clock(),
            deadline_at=world.clock() + timedelta(seconds=30),
        )
    )
    world.clock.advance(minutes=5)
    # WHEN new-prediction handles the sample POST /predictions/{id}/upload
    dependencies = new_prediction.Dependencies(authenticator=iam(world), intake=world.use_cases.intake)
    answer = new_prediction.handler(
        sample("new_prediction_upload"), context("new-prediction"), dependencies=dependencies
    )
    # THEN it answers a form valid from now, for the prediction's upload key
    assert answer["statusCode"] == 200, answer["body"]
    renewed = json.loads(answer["body"])
    assert renewed["prediction_id"] == SAMPLE_ID
    assert renewed["upload"]["fields"]["key"] == f"uploads/{SAMPLE_ID}"
    assert record(world).upload_expires_at == world.clock() + timedelta(seconds=900)


def test_process_input_dispatches_through_the_injected_dispatch(world: World) -> None:
    # GIVEN the sample prediction awaiting its upload, and the upload in the bucket
    world.store.create(
        Prediction(prediction_id=SAMPLE_ID, service="fraud-score", owner="c_intake", deadline_at=world.clock())
    )
    world.objects.put_upload(f"uploads/{SAMPLE_ID}", b'{"claim": {"amount": 1}}')
    # WHEN process-input handles the sample S3 event (through SQS)
    answer = process_input.handler(
        sample("process_input"), context("process-input"), dependencies=world.use_cases.dispatch
    )
    # THEN the batch succeeded and the prediction was sent to its model, once
    assert answer == {"batchItemFailures": []}
    assert record(world).status is PredictionStatus.RUNNING
    assert [call["inference_id"] for call in world.models.async_calls] == [SAMPLE_ID]


def test_shadow_dispatch_dispatches_through_the_injected_shadows_and_reports_a_bad_record(world: World) -> None:
    # GIVEN fraud-score with 1.1.0 as its shadow, and the sample prediction's shadow started
    from ensemble_gateway.domain.rollout import apply_entry

    first = apply_entry(None, model_service("fraud-score"), world.clock())
    entry = model_service("fraud-score", shadow=["1.1.0"]).model_copy(
        update={"version": "1.1.0", "model": model_service("shadow-v110").model}
    )
    world.catalog.put(apply_entry(first, entry, world.clock()))
    running(world)
    target = world.catalog.services["fraud-score"].at_version("1.1.0")
    assert target is not None
    world.use_cases.shadows.start(record(world), [target])
    event = sample("shadow_dispatch")
    assert json.loads(event["Records"][0]["body"]) == world.shadow_queue.jobs[0]
    # AND a second record that is no shadow job
    broken = {**event["Records"][0], "messageId": "not-a-job", "body": "{}"}
    event = {"Records": [event["Records"][0], broken]}

    # WHEN the shadow-dispatch function handles the batch
    answer = shadow_dispatch.handler(event, context("shadow-dispatch"), dependencies=world.use_cases.shadows)

    # THEN the shadow went to its version's endpoint, and only the bad record is retried
    assert answer == {"batchItemFailures": [{"itemIdentifier": "not-a-job"}]}
    assert [call["endpoint"] for call in world.models.async_calls] == ["shadow-v110-endpoint"]


def test_notifications_finishes_through_the_injected_completion(world: World) -> None:
    # GIVEN the sample prediction running on its async model
    running(world)
    # WHEN notifications handles the sample SageMaker success message
    answer = notifications.handler(
        sample("notifications_success"), context("notifications"), dependencies=world.use_cases.completion
    )
    # THEN it is COMPLETED with SageMaker's output location
    assert answer == {"finished": 1}
    finished = record(world)
    assert finished.status is PredictionStatus.COMPLETED
    assert finished.output_uri is not None and finished.output_uri.endswith(".out")


def test_sweeper_sweeps_through_the_injected_sweeping(world: World) -> None:
    # GIVEN the sample prediction past its deadline, its model silent
    running(world)
    world.clock.advance(hours=1)
    # WHEN the sweeper runs on its schedule
    answer = sweeper.handler(sample("sweeper"), context("sweeper"), dependencies=world.use_cases.sweeping)
    # THEN it was failed by its deadline
    assert answer == {"swept": 1}
    error = record(world).error
    assert error is not None and error.code == "Timeout"


def test_get_transform_call_starts_a_step_through_the_injected_steps(world: World) -> None:
    # GIVEN the sample ensemble prediction running, its request accepted
    world.objects.write(f"inputs/{SAMPLE_ID}", b'{"claim": {"amount": 1200}}', "application/json")
    world.store.create(
        Prediction(
            prediction_id=SAMPLE_ID,
            service="claim",
            owner="c_intake",
            status=PredictionStatus.RUNNING,
            input_uri=f"s3://{world.objects.bucket}/inputs/{SAMPLE_ID}",
        )
    )
    # WHEN the state machine calls the sample step (an old payload: no execution input)
    answer = get_transform_call.handler(
        sample("get_transform_call"), context("get-transform-call"), dependencies=world.steps()
    )
    # THEN the step's child is running on its model with the mapped input
    assert answer["status"] == "RUNNING"
    (call,) = world.models.async_calls
    assert call["inference_id"] == answer["prediction_id"]
    assert json.loads(world.objects.read(call["input_uri"])) == {"claim": {"amount": 1200}}


def test_webhook_delivery_sends_through_the_injected_delivery(world: World) -> None:
    # GIVEN the sample prediction completed, its webhook due
    running(world, callback=Callback(kind=CallbackKind.WEBHOOK, target="https://hooks.example.com/ml"))
    world.store.transition(SAMPLE_ID, [PredictionStatus.RUNNING], PredictionStatus.COMPLETED)
    sender = FakeSender(204)
    # WHEN webhook-delivery handles the sample job with the fakes' delivery and sender
    answer = webhook_delivery.handler(
        sample("webhook_delivery"), context("webhook-delivery"), dependencies=world.delivery(sender)
    )
    # THEN the one webhook was sent to the checked address and recorded as delivered
    assert answer == {"batchItemFailures": []}
    (sent,) = sender.sent
    assert json.loads(sent.body)["type"] == "prediction.completed"
    assert record(world).webhook_attempts[-1]["delivered"] is True


@pytest.mark.parametrize(
    ("event_bus", "notification", "message"),
    [
        (
            True,
            {"webhook": {"url": "https://hooks.example.com/ml"}, "eventbridge": {}},
            "field 'notification': choose one notification channel, not 'webhook' and 'eventbridge'",
        ),
        (False, {"eventbridge": {}}, "this gateway has no event bus configured"),
    ],
)
def test_new_prediction_answers_400_to_a_notification_it_cannot_serve(
    event_bus: bool, notification: dict[str, Any], message: str
) -> None:
    # GIVEN a gateway with or without an event bus
    intake = new_client("c_intake").model_copy(update={"principal_arn": ROLE})
    world = make_world(services=[model_service("fraud-score")], clients=[intake], event_bus=event_bus)
    event = sample("new_prediction")
    event["body"] = json.dumps({"service": "fraud-score", "notification": notification})
    # WHEN the request reaches new-prediction
    dependencies = new_prediction.Dependencies(authenticator=iam(world), intake=world.use_cases.intake)
    answer = new_prediction.handler(event, context("new-prediction"), dependencies=dependencies)
    # THEN it is a 400 saying why, and nothing was recorded
    assert answer["statusCode"] == 400
    refused = json.loads(answer["body"])
    assert refused["code"] == "InvalidRequest"
    assert refused["message"].startswith(message)
    assert world.store.records == {}

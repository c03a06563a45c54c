"""Cancellation (``POST /predictions/{id}/cancel``) against in-memory fakes.

A cancel ends a PENDING_UPLOAD or RUNNING prediction CANCELLED once and tells whoever waits once;
whatever comes after (an upload, a model's answer) changes nothing. A running ensemble's execution
is stopped first, and its running steps end with it.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from gateway_fakes import FakeLogger, World, make_world, model_service, new_client

from ensemble_gateway.domain.api import NewPredictionRequest
from ensemble_gateway.domain.errors import ConflictError, NotFoundError
from ensemble_gateway.domain.models import Client, Prediction, PredictionError, PredictionStatus, Service
from ensemble_gateway.domain.notifications import InferenceResult
from ensemble_gateway.domain.ports import RealtimeResponse

PENDING = PredictionStatus.PENDING_UPLOAD
RUNNING = PredictionStatus.RUNNING
COMPLETED = PredictionStatus.COMPLETED
CANCELLED = PredictionStatus.CANCELLED
HOOK = "https://hooks.example.com/ml"
MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:gw-claim"


def claim_ensemble(name: str = "claim", machine: str = MACHINE) -> Service:
    return Service.model_validate(
        {
            "name": name,
            "kind": "ensemble",
            "ensemble": {
                "definition": "claim.asl.json",
                "steps": {
                    "fraud": {"service": "fraud-score", "mapping": {"claim": "$.input.claim"}},
                    "cost": {"service": "repair-cost", "mapping": {"claim": "$.input.claim"}},
                    "decision": {
                        "service": "repair-cost",
                        "mapping": {"fraud": "$.steps.fraud", "cost": "$.steps.cost"},
                    },
                },
                "state_machine_arn": machine,
                "final_step": "decision",
            },
        }
    )


@pytest.fixture
def world() -> World:
    world = make_world(
        services=[model_service("fraud-score"), model_service("repair-cost", invocation="realtime"), claim_ensemble()],
        clients=[new_client("c_owner"), new_client("c_other")],
    )
    world.use_cases.ports.logger = FakeLogger()
    return world


def owner(world: World, client_id: str = "c_owner") -> Client:
    client = world.clients.get(client_id)
    assert client is not None
    return client


def submit(world: World, service: str = "fraud-score", notification: dict[str, Any] | None = None) -> str:
    body: dict[str, Any] = {"service": service, "notification": notification or {"webhook": {"url": HOOK}}}
    return world.use_cases.intake.submit(
        owner(world), NewPredictionRequest.model_validate(body), raw_body=body
    ).prediction_id


def uploaded(world: World, prediction_id: str, body: bytes = b'{"claim": {"amount": 10}}') -> None:
    world.objects.put_upload(f"uploads/{prediction_id}", body)
    world.use_cases.dispatch.input_uploaded(world.objects.bucket, f"uploads/{prediction_id}", len(body))


def cancel(world: World, prediction_id: str, client_id: str = "c_owner") -> Prediction:
    return world.use_cases.cancellation.cancel(owner(world, client_id), prediction_id)


def record(world: World, prediction_id: str) -> Prediction:
    found = world.store._load(prediction_id)
    assert found is not None
    return found


def jobs(world: World) -> list[dict[str, Any]]:
    return [job for job, _ in world.webhooks.jobs]


def succeeded(world: World, prediction_id: str) -> None:
    """SageMaker async writes the output and publishes its success notification (late, here)."""
    uri = world.objects.write(f"outputs/{prediction_id}.out", b'{"p": 0.9}', "application/json")
    world.use_cases.completion.inference_finished(
        InferenceResult.model_validate(
            {
                "inferenceId": prediction_id,
                "invocationStatus": "Completed",
                "responseParameters": {"contentType": "application/json", "outputLocation": uri},
            }
        )
    )


def logged(world: World, message: str) -> list[dict[str, Any]]:
    logger = world.use_cases.ports.logger
    assert isinstance(logger, FakeLogger)
    return logger.fields_of(message)


# -- single models -------------------------------------------------------------------------------


def test_a_prediction_awaiting_its_upload_is_cancelled_and_its_late_upload_is_never_read(world: World) -> None:
    # GIVEN a prediction awaiting its upload, with a webhook
    prediction_id = submit(world)
    world.clock.advance(seconds=5)
    # WHEN its owner cancels it
    cancelled = cancel(world, prediction_id)
    # THEN it is CANCELLED, saying why and when, and one prediction.cancelled webhook is queued
    assert cancelled.status is CANCELLED
    assert cancelled.error == PredictionError(code="Cancelled", message="cancelled by the client")
    assert cancelled.finished_at == world.clock()
    assert jobs(world) == [{"prediction_id": prediction_id, "event_type": "prediction.cancelled", "attempt": 0}]
    # WHEN the upload lands afterwards
    uploaded(world, prediction_id)
    # THEN nothing was accepted or dispatched, and no second webhook was queued
    after = record(world, prediction_id)
    assert (after.status, after.input, after.input_uri) == (CANCELLED, None, None)
    assert world.models.async_calls == []
    assert len(jobs(world)) == 1
    assert logged(world, "upload for a cancelled prediction ignored") == [{"prediction_id": prediction_id}]


def test_a_running_prediction_is_cancelled_and_its_late_model_answer_changes_nothing(world: World) -> None:
    # GIVEN a prediction sent to its async model
    prediction_id = submit(world)
    uploaded(world, prediction_id)
    assert len(world.models.async_calls) == 1
    # WHEN its owner cancels it, and the model answers later
    cancel(world, prediction_id)
    before = record(world, prediction_id)
    world.clock.advance(minutes=2)
    succeeded(world, prediction_id)
    # THEN the record is as the cancel left it: no output, same updated_at
    assert record(world, prediction_id) == before
    assert (before.status, before.output_uri) == (CANCELLED, None)
    # AND the answer re-drove no callback: the one queued webhook is the cancel's
    assert [job["event_type"] for job in jobs(world)] == ["prediction.cancelled"]
    assert logged(world, "notification for a cancelled prediction ignored") == [{"prediction_id": prediction_id}]


def test_the_cancelled_webhook_is_delivered_once_with_the_cancelled_document(world: World) -> None:
    # GIVEN a cancelled prediction and its queued webhook
    prediction_id = submit(world)
    cancel(world, prediction_id)
    delivery = world.delivery()
    # WHEN the job is delivered, and a cancel of the same prediction is sent again
    (job,) = world.webhooks.take()
    assert delivery.deliver(job) == "delivered"
    again = cancel(world, prediction_id)
    # THEN the webhook was a signed prediction.cancelled carrying the GET document
    (sent,) = world.sender.sent
    body = json.loads(sent.body)
    assert body["type"] == "prediction.cancelled"
    assert (body["data"]["status"], body["data"]["error"]["code"]) == ("CANCELLED", "Cancelled")
    assert sent.headers["webhook-id"] == f"msg_{prediction_id}_cancelled"
    # AND the second cancel answered the same record and queued nothing: it was delivered
    assert again == record(world, prediction_id)
    assert world.webhooks.take() == []
    assert len(world.sender.sent) == 1


def test_a_prediction_asking_for_events_announces_its_cancel_once(world: World) -> None:
    # GIVEN a prediction notified on the gateway's event bus
    prediction_id = submit(world, notification={"eventbridge": {}})
    # WHEN it is cancelled
    cancel(world, prediction_id)
    # THEN one prediction.cancelled event carries its document
    assert world.events is not None
    (event,) = world.events.of(prediction_id)
    assert event.detail_type == "prediction.cancelled"
    assert event.detail["event_id"] == f"{prediction_id}:prediction.cancelled"
    assert event.detail["data"]["status"] == "CANCELLED"


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (COMPLETED, None),
        (PredictionStatus.FAILED, PredictionError(code="ModelError", message="no")),
        (PredictionStatus.EXPIRED, PredictionError(code="UploadExpired", message="late")),
    ],
)
def test_an_ended_prediction_cannot_be_cancelled(
    world: World, status: PredictionStatus, error: PredictionError | None
) -> None:
    # GIVEN a prediction that has ended
    prediction_id = submit(world)
    world.store.transition(prediction_id, [PENDING], status, {"error": error})
    before = record(world, prediction_id)
    # WHEN its owner cancels it
    # THEN it is a conflict naming its status, and nothing changed or was queued
    with pytest.raises(ConflictError, match=f"has already ended {status.value}"):
        cancel(world, prediction_id)
    assert record(world, prediction_id) == before
    assert jobs(world) == []


def test_only_the_owner_can_cancel_and_a_step_or_an_unknown_id_is_not_found(world: World) -> None:
    # GIVEN a prediction of c_owner, and a step record of an ensemble of c_owner
    prediction_id = submit(world)
    world.store.create(Prediction(prediction_id="p-step", service="fraud-score", owner="c_owner", parent_id="p-x"))
    # WHEN another client, or the owner for a step or an unknown ID, cancels
    # THEN each is the 404 of GET, and the prediction still awaits its upload
    for client_id, target in (("c_other", prediction_id), ("c_owner", "p-step"), ("c_owner", "p-nope")):
        with pytest.raises(NotFoundError, match="does not exist"):
            cancel(world, target, client_id)
    assert record(world, prediction_id).status is PENDING
    assert jobs(world) == []


def test_an_upload_accepted_while_the_cancel_decides_is_cancelled_as_running(world: World) -> None:
    # GIVEN a prediction awaiting its upload, whose upload is accepted just as the cancel writes
    prediction_id = submit(world)
    original = world.store.transition
    raced: list[str] = []

    def racing(pid: str, allowed: Any, to: PredictionStatus, changes: Any = None) -> Prediction | None:
        if to is CANCELLED and not raced:
            raced.append(pid)
            uploaded(world, pid)
        return original(pid, allowed, to, changes)

    world.store.transition = racing  # type: ignore[method-assign,assignment]
    # WHEN its owner cancels it
    cancelled = cancel(world, prediction_id)
    # THEN the first write found it RUNNING, and the cancel ended it from there
    assert raced == [prediction_id]
    assert cancelled.status is CANCELLED
    assert [t for t in world.store.transitions if t[0] == prediction_id][-1] == (prediction_id, RUNNING, CANCELLED)


# -- ensembles -----------------------------------------------------------------------------------


def start_ensemble(world: World) -> tuple[str, dict[str, Any]]:
    """Submit and upload the claim ensemble; its prediction ID and execution input."""
    prediction_id = submit(world, service="claim")
    uploaded(world, prediction_id)
    (_, name, execution) = world.workflows.started[-1]
    assert name == prediction_id
    return prediction_id, json.loads(json.dumps(execution))


def test_a_running_ensemble_is_stopped_before_it_is_cancelled_and_its_running_steps_end_with_it(
    world: World,
) -> None:
    # GIVEN an ensemble whose cost step (real-time) finished and whose fraud step (async) is running
    parent_id, execution = start_ensemble(world)
    steps = world.steps()
    fraud = steps.call(parent_id, "fraud", "token-fraud", execution=execution)["prediction_id"]
    world.models.realtime_answer = RealtimeResponse(body=b'{"eur": 900}', content_type="application/json")
    cost = steps.call(parent_id, "cost", "token-cost", execution=execution)["prediction_id"]
    assert record(world, cost).status is COMPLETED
    answered = list(world.workflows.answers)
    # WHEN its owner cancels it
    world.clock.advance(seconds=3)
    cancelled = cancel(world, parent_id)
    # THEN its execution was stopped with the reason
    assert world.workflows.stopped == [(MACHINE, parent_id, "Cancelled", "cancelled by the client")]
    assert cancelled.status is CANCELLED
    # AND the running step is CANCELLED too (its outcome on the ensemble's record); the finished one
    # keeps its outcome; no task was answered (the execution is gone)
    step = record(world, fraud)
    assert (step.status, step.error) == (
        CANCELLED,
        PredictionError(code="Cancelled", message="its ensemble was cancelled by the client", step="fraud"),
    )
    outcomes = record(world, parent_id).step_outputs
    assert (outcomes[fraud].status, outcomes[cost].status) == (CANCELLED, COMPLETED)
    assert world.workflows.answers == answered
    # AND the answer's lineage shows both, as the list's will (from the record)
    document = world.use_cases.read_model.document(record(world, parent_id))
    assert {(s.name, s.status) for s in document.steps or []} == {("fraud", CANCELLED), ("cost", COMPLETED)}
    (listed,) = world.use_cases.read_model.documents([record(world, parent_id)])
    assert {(s.name, s.status) for s in listed.steps or []} == {("fraud", CANCELLED), ("cost", COMPLETED)}
    # AND one webhook is queued, for the ensemble
    assert jobs(world) == [{"prediction_id": parent_id, "event_type": "prediction.cancelled", "attempt": 0}]
    # WHEN the fraud model answers late
    parent_before = record(world, parent_id)
    succeeded(world, fraud)
    # THEN nothing moves: the step stays CANCELLED, its task is not answered, the ensemble unchanged
    assert record(world, fraud).status is CANCELLED
    assert world.workflows.answers == answered
    assert record(world, parent_id) == parent_before
    assert len(jobs(world)) == 1


def test_an_ensemble_whose_execution_cannot_be_stopped_stays_running_for_a_retry(world: World) -> None:
    # GIVEN a running ensemble, and Step Functions failing to stop its execution
    parent_id, _ = start_ensemble(world)
    world.workflows.stop_error = RuntimeError("ThrottlingException")
    # WHEN its owner cancels it
    # THEN the error surfaces and the prediction is still RUNNING: nothing was declared or told
    with pytest.raises(RuntimeError, match="Throttling"):
        cancel(world, parent_id)
    assert record(world, parent_id).status is RUNNING
    assert jobs(world) == []
    # WHEN the owner retries once Step Functions answers
    world.workflows.stop_error = None
    # THEN it is cancelled
    assert cancel(world, parent_id).status is CANCELLED
    assert world.workflows.stopped == [(MACHINE, parent_id, "Cancelled", "cancelled by the client")]


def test_an_ensemble_awaiting_its_upload_has_no_execution_to_stop(world: World) -> None:
    # GIVEN an ensemble prediction awaiting its upload
    parent_id = submit(world, service="claim")
    # WHEN it is cancelled
    cancel(world, parent_id)
    # THEN nothing was stopped, and it is CANCELLED
    assert world.workflows.stopped == []
    assert record(world, parent_id).status is CANCELLED


def test_a_nested_ensembles_execution_and_steps_are_cancelled_with_its_parent() -> None:
    # GIVEN an ensemble running a step that is itself an ensemble, whose own step is running
    inner_machine = MACHINE.replace("gw-claim", "gw-inner")
    world = make_world(
        services=[model_service("fraud-score"), claim_ensemble(), claim_ensemble("inner", inner_machine)],
        clients=[new_client("c_owner")],
    )
    now = world.clock()
    for prediction in (
        Prediction(prediction_id="p-outer", service="claim", owner="c_owner", status=RUNNING, created_at=now),
        Prediction(
            prediction_id="p-outer-s1", service="inner", owner="c_owner", status=RUNNING, parent_id="p-outer", step="a"
        ),
        Prediction(
            prediction_id="p-outer-s1-s1",
            service="fraud-score",
            owner="c_owner",
            status=RUNNING,
            parent_id="p-outer-s1",
            step="fraud",
        ),
    ):
        world.store.create(prediction)
    # WHEN the outer ensemble is cancelled
    world.use_cases.cancellation.cancel(owner(world), "p-outer")
    # THEN both executions were stopped, outer first, and every record is CANCELLED
    assert [(arn, name) for arn, name, _, _ in world.workflows.stopped] == [
        (MACHINE, "p-outer"),
        (inner_machine, "p-outer-s1"),
    ]
    assert {pid: record(world, pid).status for pid in ("p-outer", "p-outer-s1", "p-outer-s1-s1")} == dict.fromkeys(
        ("p-outer", "p-outer-s1", "p-outer-s1-s1"), CANCELLED
    )
    # AND each level's record holds its cancelled step
    assert record(world, "p-outer").step_outputs["p-outer-s1"].status is CANCELLED
    assert record(world, "p-outer-s1").step_outputs["p-outer-s1-s1"].status is CANCELLED


def test_a_retried_cancel_finishes_the_steps_a_failed_first_attempt_left_running(world: World) -> None:
    # GIVEN a running ensemble step, and a first cancel that failed after the terminal write
    parent_id, execution = start_ensemble(world)
    fraud = world.steps().call(parent_id, "fraud", "token-fraud", execution=execution)["prediction_id"]
    world.store.transition(parent_id, [RUNNING], CANCELLED, {"finished_at": world.clock() + timedelta(seconds=1)})
    assert record(world, fraud).status is RUNNING
    # WHEN the owner cancels again
    again = cancel(world, parent_id)
    # THEN the step is cancelled now, and whoever waits is told
    assert again.status is CANCELLED
    assert record(world, fraud).status is CANCELLED
    assert [job["event_type"] for job in jobs(world)] == ["prediction.cancelled"]

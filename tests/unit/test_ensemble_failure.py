"""The ensemble failure path: the state machine caught an error and get-transform-call's ``fail``
ends the ensemble FAILED, naming the step, with one callback.

The tests play the state machine as ``test_steps.py`` does: the steps are started with the
execution input, and ``fail`` gets what a Catch passes (``Error``, ``Cause``, and in generated
state machines what was ``Caught``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from gateway_fakes import FakeSender, World, make_world, model_service, new_client

from ensemble_gateway.domain.api import NewPredictionRequest
from ensemble_gateway.domain.models import Callback, Prediction, PredictionError, PredictionStatus, Service
from ensemble_gateway.domain.notifications import InferenceResult

FAILED = PredictionStatus.FAILED
RUNNING = PredictionStatus.RUNNING
HOOK = "https://hooks.example.com/ml"
TIMEOUT_MESSAGE = "the step's model did not answer within the step's timeout"


@pytest.fixture
def world() -> World:
    claim = Service.model_validate(
        {
            "name": "claim",
            "kind": "ensemble",
            "ensemble": {
                "definition": "claim.asl.json",
                "steps": {
                    # fraud and cost run side by side (two Parallel branches), decision after both.
                    "fraud": {"service": "fraud-score", "mapping": {"claim": "$.input.claim"}},
                    "cost": {"service": "repair-cost", "mapping": {"claim": "$.input.claim"}},
                    "decision": {"service": "claim-decision", "mapping": {"fraud": "$.steps.fraud.p"}},
                },
                "state_machine_arn": "arn:aws:states:us-east-1:123456789012:stateMachine:gw-claim",
                "final_step": "decision",
            },
        }
    )
    return make_world(
        services=[model_service("fraud-score"), model_service("repair-cost"), model_service("claim-decision"), claim],
        clients=[new_client("c_owner")],
    )


def start(world: World) -> tuple[str, dict[str, Any]]:
    """An ensemble prediction with a webhook, uploaded and started: its ID and execution input."""
    client = world.clients.get("c_owner")
    assert client is not None
    body = {"service": "claim", "notification": {"webhook": {"url": HOOK}}}
    parent_id = world.gateway.submit(client, NewPredictionRequest.model_validate(body), raw_body=body).prediction_id
    raw = json.dumps({"claim": {"amount": 1200}}).encode()
    world.objects.put_upload(f"uploads/{parent_id}", raw)
    world.gateway.input_uploaded(world.objects.bucket, f"uploads/{parent_id}", len(raw))
    (_, _, execution) = world.workflows.started[-1]
    return parent_id, json.loads(json.dumps(execution))


def run_steps(world: World, parent_id: str, execution: dict[str, Any], *names: str) -> dict[str, str]:
    """Start ``names`` (their task tokens are ``token-<name>``); their child IDs by step."""
    steps = world.steps()
    return {name: steps.call(parent_id, name, f"token-{name}", execution=execution)["prediction_id"] for name in names}


def record(world: World, prediction_id: str) -> Prediction:
    found = world.store.get(prediction_id)
    assert found is not None
    return found


def callbacks_of(world: World, prediction_id: str) -> list[str]:
    """The webhook jobs queued for ``prediction_id``, by event type."""
    return [job["event_type"] for job, _ in world.webhooks.jobs if job["prediction_id"] == prediction_id]


def answers_for(world: World, token: str) -> list[tuple[str, Any]]:
    return [(kind, output) for t, kind, output in world.workflows.answers if t == token]


def assert_failed_once(world: World, parent_id: str, expected: PredictionError) -> None:
    """The ensemble is FAILED with ``expected`` (its step named) and told its owner once."""
    parent = record(world, parent_id)
    assert parent.status is FAILED
    assert parent.error == expected
    assert callbacks_of(world, parent_id) == ["prediction.failed"]


def test_a_failed_step_fails_the_ensemble_with_the_steps_own_reason(world: World) -> None:
    # GIVEN a running ensemble whose fraud model fails while cost is still running
    parent_id, execution = start(world)
    children = run_steps(world, parent_id, execution, "fraud", "cost")
    world.gateway.inference_finished(
        InferenceResult.model_validate(
            {"inferenceId": children["fraud"], "invocationStatus": "Failed", "failureReason": "model says no"}
        )
    )
    # THEN the fraud task was failed with the step named as data, and the ensemble is not yet failed
    ((kind, answer),) = answers_for(world, "token-fraud")
    assert (kind, answer["error"], answer["cause"]["step"]) == ("failure", "StepFailed", "fraud")
    assert record(world, parent_id).status is RUNNING

    # WHEN the state machine's Catch calls fail with the task's error and cause
    result = world.steps().fail(parent_id, {"Error": "StepFailed", "Cause": json.dumps(answer["cause"])})

    # THEN the ensemble FAILED with the step's own reason, naming it, and its webhook was queued once
    assert result == {"prediction_id": parent_id, "status": "FAILED"}
    fraud_error = record(world, children["fraud"]).error
    assert fraud_error is not None
    assert_failed_once(world, parent_id, PredictionError(code="ModelError", message=fraud_error.message, step="fraud"))
    # AND the sibling that did not fail is left to its model (no timeout, nothing to cancel)
    assert record(world, children["cost"]).status is RUNNING


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            # A generated state machine: the step as data, what was caught kept.
            {
                "Error": "StepFailed",
                "Cause": json.dumps({"step": "cost"}),
                "Caught": {"Error": "Lambda.ServiceException", "Cause": "Rate exceeded"},
            },
            PredictionError(code="StepFailed", message="Lambda.ServiceException: Rate exceeded", step="cost"),
        ),
        (
            {"Error": "StepFailed", "Cause": json.dumps({"step": "cost"}), "Caught": {"Error": "Lambda.Unknown"}},
            PredictionError(code="StepFailed", message="Lambda.Unknown: no cause given", step="cost"),
        ),
        (
            # A hand-written one: the step named only in the cause, nothing caught.
            {"Error": "States.TaskFailed", "Cause": json.dumps({"step": "cost"})},
            PredictionError(code="States.TaskFailed", message="step 'cost' failed (States.TaskFailed)", step="cost"),
        ),
        (
            # Nothing names a step: the cause is all there is.
            {"Error": "States.Runtime", "Cause": "An error occurred while executing the state 'Route'"},
            PredictionError(code="States.Runtime", message="An error occurred while executing the state 'Route'"),
        ),
        (None, PredictionError(code="States.Runtime", message="the ensemble failed: States.Runtime")),
    ],
)
def test_a_caught_error_no_record_explains_is_reported_as_caught(
    world: World, error: dict[str, Any] | None, expected: PredictionError
) -> None:
    # GIVEN a running ensemble whose cost step never got a child (its Lambda call failed)
    parent_id, _ = start(world)
    # WHEN the state machine fails the ensemble
    world.steps().fail(parent_id, error)
    # THEN the error says what was caught, naming the step when the cause carries it; one webhook
    assert_failed_once(world, parent_id, expected)


@pytest.mark.parametrize(
    "error",
    [
        # A hand-written state machine's documented convention, and a generated one's data.
        {"Error": "States.Timeout", "Cause": "step 'fraud' timed out after 300 s"},
        {"Error": "StepTimedOut", "Cause": json.dumps({"step": "fraud"}), "Caught": {}},
    ],
)
def test_a_step_timeout_fails_that_steps_child_and_the_ensemble_naming_it(world: World, error: dict[str, Any]) -> None:
    # GIVEN a running ensemble with fraud and cost both waiting on their models
    parent_id, execution = start(world)
    children = run_steps(world, parent_id, execution, "fraud", "cost")

    # WHEN fraud's callback task times out
    world.steps().fail(parent_id, error)

    # THEN the ensemble FAILED with a timeout naming fraud, told once
    assert_failed_once(world, parent_id, PredictionError(code="Timeout", message=TIMEOUT_MESSAGE, step="fraud"))
    # AND fraud's child is FAILED too, its token forgotten, while cost (another branch) runs on
    fraud = record(world, children["fraud"])
    assert (fraud.status, fraud.callback) == (FAILED, Callback())
    assert fraud.error == PredictionError(code="Timeout", message=TIMEOUT_MESSAGE, step="fraud")
    assert record(world, children["cost"]).status is RUNNING

    # WHEN fraud's model answers late after all
    world.gateway.inference_finished(
        InferenceResult.model_validate(
            {
                "inferenceId": children["fraud"],
                "invocationStatus": "Completed",
                "responseParameters": {
                    "contentType": "application/json",
                    "outputLocation": world.objects.write("outputs/late.out", b'{"p": 0.1}', "application/json"),
                },
            }
        )
    )
    # THEN nothing changes: no task is answered for the timed-out token, no second webhook
    assert record(world, children["fraud"]).status is FAILED
    assert answers_for(world, "token-fraud") == []
    assert callbacks_of(world, parent_id) == ["prediction.failed"]


def test_a_step_whose_model_answered_just_after_its_timeout_still_timed_out(world: World) -> None:
    # GIVEN a fraud step whose model answered between the task's timeout and the Catch
    parent_id, execution = start(world)
    children = run_steps(world, parent_id, execution, "fraud")
    world.gateway.inference_finished(
        InferenceResult.model_validate(
            {
                "inferenceId": children["fraud"],
                "invocationStatus": "Completed",
                "responseParameters": {
                    "contentType": "application/json",
                    "outputLocation": world.objects.write("outputs/f.out", b'{"p": 0.1}', "application/json"),
                },
            }
        )
    )
    # WHEN the state machine reports the timeout
    world.steps().fail(parent_id, {"Error": "States.Timeout", "Cause": "step 'fraud' timed out"})
    # THEN the ensemble still failed by the step's timeout, naming it
    assert_failed_once(world, parent_id, PredictionError(code="Timeout", message=TIMEOUT_MESSAGE, step="fraud"))


def test_a_retried_fail_changes_nothing_and_sends_no_second_webhook(world: World) -> None:
    # GIVEN an ensemble failed by a Caught error, its webhook delivered
    parent_id, _ = start(world)
    caught = {"Error": "StepFailed", "Cause": json.dumps({"step": "cost"}), "Caught": {"Error": "Lambda.Unknown"}}
    world.steps().fail(parent_id, caught)
    first = record(world, parent_id)
    for job in world.webhooks.take():
        assert world.delivery(FakeSender(204)).deliver(job) == "delivered"

    # WHEN Step Functions runs the Fail task again (a retry after a transient Lambda error),
    # with another error this time
    world.clock.advance(seconds=5)
    world.steps().fail(parent_id, {"Error": "States.Runtime", "Cause": "something else"})

    # THEN the failure stands as first recorded, and no second webhook is queued
    again = record(world, parent_id)
    assert (again.error, again.finished_at) == (first.error, first.finished_at)
    assert world.webhooks.jobs == []


def test_fail_for_an_unknown_ensemble_is_an_error_for_the_state_machine(world: World) -> None:
    with pytest.raises(LookupError, match="'p-nope' does not exist"):
        world.steps().fail("p-nope", {"Error": "StepFailed"})

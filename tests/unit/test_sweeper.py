"""The sweeper and ensembles: an ensemble failed at its deadline has its execution stopped."""

from __future__ import annotations

import json

import pytest
from gateway_fakes import World, make_world, model_service, new_client

from ensemble_gateway.domain.api import NewPredictionRequest
from ensemble_gateway.domain.lifecycle import DEADLINE_MARGIN_SECONDS
from ensemble_gateway.domain.models import PredictionStatus, Service

MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:gw-claim"
TIMEOUT = 600


@pytest.fixture
def world() -> World:
    claim = Service.model_validate(
        {
            "name": "claim",
            "kind": "ensemble",
            "ensemble": {
                "definition": "claim.asl.json",
                "timeout_seconds": TIMEOUT,
                "steps": {"fraud": {"service": "fraud-score", "mapping": {"claim": "$.input.claim"}}},
                "state_machine_arn": MACHINE,
                "final_step": "fraud",
            },
        }
    )
    return make_world(services=[model_service("fraud-score"), claim], clients=[new_client("c_owner")])


def start(world: World, service: str) -> str:
    client = world.clients.get("c_owner")
    assert client is not None
    body = {"service": service, "notification": {"webhook": {"url": "https://hooks.example.com/ml"}}}
    prediction_id = world.gateway.submit(client, NewPredictionRequest.model_validate(body), raw_body=body).prediction_id
    raw = json.dumps({"claim": {"amount": 1}}).encode()
    world.objects.put_upload(f"uploads/{prediction_id}", raw)
    world.gateway.input_uploaded(world.objects.bucket, f"uploads/{prediction_id}", len(raw))
    return prediction_id


def status(world: World, prediction_id: str) -> PredictionStatus:
    record = world.store.get(prediction_id)
    assert record is not None
    return record.status


def test_an_ensemble_past_its_deadline_is_failed_and_its_execution_stopped(world: World) -> None:
    # GIVEN a running ensemble whose execution never finishes
    prediction_id = start(world, "claim")
    assert [(arn, name) for arn, name, _ in world.workflows.started] == [(MACHINE, prediction_id)]

    # WHEN the sweeper runs just before, then just past its deadline (timeout + margin)
    world.clock.advance(seconds=TIMEOUT + DEADLINE_MARGIN_SECONDS - 1)
    assert world.gateway.sweep() == 0
    assert world.workflows.stopped == []
    world.clock.advance(seconds=2)
    assert world.gateway.sweep() == 1

    # THEN the execution named after the prediction was stopped, with the reason
    ((arn, name, error, cause),) = world.workflows.stopped
    assert (arn, name, error) == (MACHINE, prediction_id, "Timeout")
    record = world.store.get(prediction_id)
    assert record is not None and record.error is not None
    assert record.status is PredictionStatus.FAILED
    assert record.error.code == "Timeout"
    assert cause == record.error.message
    assert "execution was stopped" in record.error.message
    # AND the client is told once
    assert [(j["prediction_id"], j["event_type"]) for j in world.webhooks.take()] == [
        (prediction_id, "prediction.failed")
    ]
    # AND a later sweep stops nothing more
    world.clock.advance(hours=1)
    assert world.gateway.sweep() == 0
    assert len(world.workflows.stopped) == 1


def test_a_failed_stop_leaves_the_ensemble_running_for_the_next_sweep(world: World) -> None:
    # GIVEN an ensemble past its deadline, and Step Functions failing for a moment
    prediction_id = start(world, "claim")
    world.clock.advance(seconds=TIMEOUT + DEADLINE_MARGIN_SECONDS + 1)
    world.workflows.stop_error = RuntimeError("throttled")

    # WHEN the sweeper runs
    with pytest.raises(RuntimeError):
        world.gateway.sweep()
    # THEN nothing was declared: no step can start after a FAILED that did not stop the execution
    assert status(world, prediction_id) is PredictionStatus.RUNNING
    assert world.webhooks.take() == []

    # WHEN Step Functions answers again and the next sweep runs
    world.workflows.stop_error = None
    assert world.gateway.sweep() == 1
    # THEN the execution is stopped and the ensemble failed
    assert [name for _, name, _, _ in world.workflows.stopped] == [prediction_id]
    assert status(world, prediction_id) is PredictionStatus.FAILED


def test_an_ensemble_whose_execution_is_gone_still_fails(world: World) -> None:
    # GIVEN an ensemble past its deadline whose execution does not exist (never started)
    prediction_id = start(world, "claim")
    world.workflows.started.clear()
    world.clock.advance(seconds=TIMEOUT + DEADLINE_MARGIN_SECONDS + 1)

    # WHEN the sweeper runs
    assert world.gateway.sweep() == 1

    # THEN it tried the stop and failed the prediction all the same
    assert [name for _, name, _, _ in world.workflows.stopped] == [prediction_id]
    assert status(world, prediction_id) is PredictionStatus.FAILED


def test_a_model_past_its_deadline_stops_no_execution(world: World) -> None:
    # GIVEN an async model prediction whose model never answers
    prediction_id = start(world, "fraud-score")
    world.clock.advance(hours=3)

    # WHEN the sweeper fails it
    assert world.gateway.sweep() == 1

    # THEN no execution is stopped (there is none) and the message names the model
    assert world.workflows.stopped == []
    record = world.store.get(prediction_id)
    assert record is not None and record.error is not None
    assert "the model never answered" in record.error.message

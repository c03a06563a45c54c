"""One-request predictions: ``POST /predictions`` with the input inline (``input``).

Against the in-memory fakes: the input is stored as an accepted upload would be, the prediction
starts in the request, and a dispatch failing part-way is handed to process-input (or ends FAILED).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from gateway_fakes import World, make_world, model_service, new_client

from ensemble_gateway.domain.api import NewPredictionRequest, NewPredictionResponse
from ensemble_gateway.domain.errors import ConflictError, InputTooLargeError, InvalidRequestError
from ensemble_gateway.domain.models import PredictionStatus, Service
from ensemble_gateway.handlers.process_input import record_handler

RUNNING = PredictionStatus.RUNNING
COMPLETED = PredictionStatus.COMPLETED
FAILED = PredictionStatus.FAILED
CLAIM = {"claim": {"amount": 1200, "vehicle_value": 9000}}


def claim_ensemble() -> Service:
    return Service.model_validate(
        {
            "name": "claim",
            "kind": "ensemble",
            "ensemble": {
                "definition": "claim.asl.json",
                "steps": {
                    "fraud": {"service": "fraud-score", "mapping": {"claim": "$.input.claim"}},
                    "cost": {"service": "repair-cost", "mapping": {"claim": "$.input.claim"}},
                },
                "state_machine_arn": "arn:aws:states:us-east-1:123456789012:stateMachine:gw-claim",
            },
        }
    )


@pytest.fixture
def world() -> World:
    return make_world(
        services=[
            model_service("fraud-score"),
            model_service("repair-cost", invocation="realtime"),
            model_service("damage", content_types=["image/png"]),
            model_service("small", max_bytes=64),
            claim_ensemble(),
        ],
        clients=[new_client("c_owner")],
    )


def submit_inline(
    world: World, service: str = "fraud-score", value: Any = CLAIM, key: str | None = None, **body: Any
) -> NewPredictionResponse:
    request: dict[str, Any] = {"service": service, "input": value, **body}
    client = world.clients.get("c_owner")
    assert client is not None
    # Through JSON, as the API handler parses it.
    raw = json.loads(json.dumps(request))
    return world.gateway.submit(client, NewPredictionRequest.model_validate(raw), idempotency_key=key, raw_body=raw)


def stored_input(world: World, prediction_id: str) -> bytes:
    return world.objects.read(f"s3://{world.objects.bucket}/inputs/{prediction_id}")


def test_an_inline_input_is_stored_as_an_accepted_upload_and_sent_to_the_async_model_at_once(world: World) -> None:
    # GIVEN a request carrying its input
    # WHEN it is submitted
    response = submit_inline(world)

    # THEN no upload form is given and the prediction is already RUNNING, sent to its endpoint
    assert response.upload is None
    assert response.status is RUNNING
    assert [c["inference_id"] for c in world.models.async_calls] == [response.prediction_id]
    # AND the input is stored once, as compact JSON, its digest and size recorded and answered
    body = stored_input(world, response.prediction_id)
    assert json.loads(body) == CLAIM
    record = world.store.get(response.prediction_id)
    assert record is not None and record.input is not None
    assert record.input.sha256 == hashlib.sha256(body).hexdigest() == response.input.sha256  # type: ignore[union-attr]
    assert record.input.size == len(body)
    assert record.input_uri == world.models.async_calls[0]["input_uri"]
    assert record.dispatched_at is not None
    # AND no upload key was ever written
    assert not [k for k in world.objects.objects if "uploads/" in k]


def test_an_inline_input_to_a_realtime_model_is_answered_in_the_request(world: World) -> None:
    # GIVEN a real-time service
    # WHEN a request with its input inline is submitted
    response = submit_inline(world, service="repair-cost")

    # THEN the response already says COMPLETED, the model read the request's bytes
    assert response.status is COMPLETED
    assert json.loads(world.models.realtime_calls[0]["body"]) == CLAIM
    record = world.store.get(response.prediction_id)
    assert record is not None and record.output_uri is not None


def test_an_inline_ensemble_input_travels_in_the_execution_input(world: World) -> None:
    # GIVEN an ensemble
    # WHEN its input comes inline
    response = submit_inline(world, service="claim")

    # THEN its execution starts in the request with the request inline in the step context
    (_, name, execution) = world.workflows.started[-1]
    assert name == response.prediction_id
    assert execution["context"]["request"] == CLAIM
    assert execution["input_uri"].endswith(f"inputs/{response.prediction_id}")


def test_an_idempotent_retry_of_an_inline_request_returns_the_same_prediction_without_a_second_start(
    world: World,
) -> None:
    # GIVEN an inline request submitted with an Idempotency-Key
    first = submit_inline(world, key="k-1")
    # WHEN it is retried with the same body
    again = submit_inline(world, key="k-1")
    # THEN it is the same prediction, started once, with no upload form
    assert again.prediction_id == first.prediction_id
    assert again.upload is None
    assert len(world.models.async_calls) == 1
    # AND a different body under that key is refused
    with pytest.raises(ConflictError):
        submit_inline(world, key="k-1", value={"claim": {"amount": 1}})


@pytest.mark.parametrize(
    ("service", "extra", "error", "words"),
    [
        ("fraud-score", {"value": None}, InvalidRequestError, "null"),
        ("damage", {}, InvalidRequestError, "accepts no JSON"),
        ("fraud-score", {"content_type": "text/csv"}, InvalidRequestError, "inline is JSON"),
        ("small", {"value": {"text": "x" * 100}}, InputTooLargeError, "at most 64"),
    ],
)
def test_an_inline_input_the_service_cannot_take_is_refused_and_nothing_is_stored(
    world: World, service: str, extra: dict[str, Any], error: type[Exception], words: str
) -> None:
    # GIVEN an inline request the service cannot take
    # WHEN it is submitted
    with pytest.raises(error) as raised:
        submit_inline(world, service=service, **extra)
    # THEN the error says why, and no record or object was left
    assert words in str(raised.value)
    assert not world.store.records
    assert not world.objects.objects


def test_inline_inputs_are_refused_when_the_gateway_takes_none(world: World) -> None:
    # GIVEN a gateway whose InlineInputMaxBytes is 0
    world.gateway.use_cases.ports.config.inline_input_max_bytes = 0
    # WHEN an inline request comes
    with pytest.raises(InvalidRequestError, match="InlineInputMaxBytes is 0"):
        submit_inline(world)


def test_the_gateway_limit_applies_below_the_services(world: World) -> None:
    # GIVEN a gateway taking at most 32 bytes inline
    world.gateway.use_cases.ports.config.inline_input_max_bytes = 32
    # WHEN a 40-byte input comes
    with pytest.raises(InputTooLargeError, match="upload it"):
        submit_inline(world, value={"text": "y" * 29})


def test_a_dispatch_failing_part_way_is_handed_to_process_input_which_dispatches_it_once(world: World) -> None:
    # GIVEN an async endpoint that fails the first call (a throttle, say)
    world.models.async_error = ConnectionError("throttled")
    # WHEN an inline request is submitted
    response = submit_inline(world)
    # THEN the request is still accepted, RUNNING, and the prediction handed over
    assert response.status is RUNNING
    assert world.dispatch_queue.handed_over == [response.prediction_id]
    record = world.store.get(response.prediction_id)
    assert record is not None and record.dispatched_at is None

    # WHEN process-input gets the hand-over and the endpoint answers again
    world.models.async_error = None
    message = json.dumps({"dispatch": {"prediction_id": response.prediction_id}})
    record_handler(_sqs_record(message), world.use_cases.dispatch)
    # THEN it is dispatched; a duplicate of the message changes nothing
    record_handler(_sqs_record(message), world.use_cases.dispatch)
    calls = [c for c in world.models.async_calls if c["inference_id"] == response.prediction_id]
    assert len(calls) == 2  # the failed attempt and the dispatch
    dispatched = world.store.get(response.prediction_id)
    assert dispatched is not None and dispatched.dispatched_at is not None


def test_a_dispatch_that_cannot_be_handed_over_either_ends_failed_with_the_reason(world: World) -> None:
    # GIVEN an endpoint and a queue that both fail
    world.models.async_error = ConnectionError("throttled")
    world.dispatch_queue.fail_next = 1
    # WHEN an inline request is submitted
    response = submit_inline(world)
    # THEN it ended FAILED, saying why and what to do
    assert response.status is FAILED
    record = world.store.get(response.prediction_id)
    assert record is not None and record.error is not None
    assert record.error.code == "DispatchFailed"
    assert "throttled" in record.error.message and "submit it again" in record.error.message


def _sqs_record(body: str) -> Any:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    return SQSRecord({"messageId": "m-1", "body": body, "attributes": {}, "messageAttributes": {}})

"""Shadow versions (issue 16): the same input also sent to a service's shadow versions.

A shadow never changes the result, never feeds a later step, never fails or delays the
prediction: the tests play process-input, the shadow-dispatch function (``run_shadow_dispatches``),
SageMaker's notifications and the sweeper against the in-memory fakes, and read the lineage.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from gateway_fakes import T0, FakeLogger, World, make_world, model_service, new_client

from ensemble_gateway.domain.api import NewPredictionRequest
from ensemble_gateway.domain.models import (
    CallbackKind,
    EnsembleContext,
    Prediction,
    PredictionStatus,
    Service,
)
from ensemble_gateway.domain.notifications import InferenceResult
from ensemble_gateway.domain.ports import RealtimeResponse
from ensemble_gateway.domain.records import DEADLINE_MARGIN_SECONDS
from ensemble_gateway.domain.rollout import apply_entry
from ensemble_gateway.domain.shadows import shadow_prediction_id
from ensemble_gateway.domain.steps import child_prediction_id

RUNNING = PredictionStatus.RUNNING
COMPLETED = PredictionStatus.COMPLETED
FAILED = PredictionStatus.FAILED
HOOK = "https://hooks.example.com/ml"
PRIMARY_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:gw-score"
SHADOW_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:gw-score_v1-1-0"


def versioned_model(name: str = "fraud-score", invocation: str = "async", shadow_timeout: int = 600) -> Service:
    """``name`` serving 1.0.0 (endpoint ``{name}-endpoint``) with 1.1.0 as its shadow (``{name}-v110``)."""
    first = apply_entry(None, model_service(name, invocation), T0)
    second = Service.model_validate(
        {
            "name": name,
            "kind": "model",
            "version": "1.1.0",
            "model": {
                "endpoint_name": f"{name}-v110",
                "invocation": invocation,
                "invocation_timeout_seconds": shadow_timeout,
            },
            "shadow": ["1.1.0"],
        }
    )
    return apply_entry(first, second, T0)


def score_ensemble(version: str, arn: str, **extra: Any) -> Service:
    """A one-step ensemble over fraud-score, one version of it registered on ``arn``."""
    return Service.model_validate(
        {
            "name": "score",
            "kind": "ensemble",
            "version": version,
            "ensemble": {
                "definition": "score.asl.json",
                "steps": {"fraud": {"service": "fraud-score", "mapping": "$.input"}},
                "state_machine_arn": arn,
                "final_step": "fraud",
            },
            **extra,
        }
    )


def versioned_ensemble() -> Service:
    first = apply_entry(None, score_ensemble("1.0.0", PRIMARY_ARN), T0)
    return apply_entry(first, score_ensemble("1.1.0", SHADOW_ARN, shadow=["1.1.0"]), T0)


def submit(world: World, service: str = "fraud-score", body: bytes = b'{"amount": 10}') -> str:
    """Submit (with a webhook) and upload: the prediction is dispatched."""
    request: dict[str, Any] = {"service": service, "notification": {"webhook": {"url": HOOK}}}
    client = world.clients.get("c_owner")
    assert client is not None
    prediction_id = world.gateway.submit(
        client, NewPredictionRequest.model_validate(request), raw_body=request
    ).prediction_id
    world.objects.put_upload(f"uploads/{prediction_id}", body)
    world.gateway.input_uploaded(world.objects.bucket, f"uploads/{prediction_id}", len(body))
    return prediction_id


def async_answers(world: World, inference_id: str, output: bytes) -> None:
    """SageMaker async writes the output and publishes its success notification."""
    uri = world.objects.write(f"outputs/{inference_id}.out", output, "application/json")
    world.gateway.inference_finished(
        InferenceResult.model_validate(
            {
                "inferenceId": inference_id,
                "invocationStatus": "Completed",
                "responseParameters": {"contentType": "application/json", "outputLocation": uri},
            }
        )
    )


def async_fails(world: World, inference_id: str, message: str) -> None:
    world.gateway.inference_finished(
        InferenceResult.model_validate(
            {
                "inferenceId": inference_id,
                "invocationStatus": "Failed",
                "failureReason": f'ClientError: Received server error (500) from model with message "{message}".',
                "failureLocation": f"s3://gw-data/failures/{inference_id}-error.out",
            }
        )
    )


def record(world: World, prediction_id: str) -> Prediction:
    found = world.store._load(prediction_id)
    assert found is not None
    return found


def webhook_events(world: World) -> list[tuple[str, str]]:
    return [(job["prediction_id"], job["event_type"]) for job, _ in world.webhooks.jobs]


@pytest.fixture
def world() -> World:
    return make_world(services=[versioned_model()], clients=[new_client("c_owner")])


# ------------------------------------------------------------------------------------------------
# async endpoints
# ------------------------------------------------------------------------------------------------
def test_a_shadow_gets_the_same_input_and_its_answer_is_lineage_never_the_result(world: World) -> None:
    # GIVEN fraud-score serving 1.0.0 with 1.1.0 as its shadow, and a prediction dispatched to 1.0.0
    prediction_id = submit(world)
    shadow_id = shadow_prediction_id(prediction_id, "1.1.0")
    (served,) = world.models.async_calls
    assert served["endpoint"] == "fraud-score-endpoint" and served["inference_id"] == prediction_id

    # WHEN the shadow-dispatch function takes the queued shadow
    assert world.run_shadow_dispatches() == 1

    # THEN the shadow version's endpoint got the same accepted input, under the shadow's own ID
    shadowed = world.models.async_calls[1]
    assert shadowed["endpoint"] == "fraud-score-v110"
    assert shadowed["inference_id"] == shadow_id
    assert shadowed["input_uri"] == served["input_uri"] == f"s3://gw-data/inputs/{prediction_id}"
    assert shadowed["content_type"] == served["content_type"]
    shadow = record(world, shadow_id)
    assert shadow.callback.kind is CallbackKind.SHADOW and shadow.callback.target == prediction_id
    assert shadow.parent_id == prediction_id and shadow.model.version == "1.1.0"
    assert shadow.input == record(world, prediction_id).input

    # WHEN both answer, the shadow something else and later
    async_answers(world, prediction_id, b'{"score": 0.1}')
    world.clock.advance(seconds=3)
    async_answers(world, shadow_id, b'{"score": 0.9}')

    # THEN the prediction's result is its own version's, told once to its webhook
    primary = record(world, prediction_id)
    assert primary.status is COMPLETED
    assert primary.output_uri == f"s3://gw-data/outputs/{prediction_id}.out"
    assert primary.model.version == "1.0.0"
    assert webhook_events(world) == [(prediction_id, "prediction.completed")]
    # AND the shadow's output and timings are on the prediction's record, by the shadow's ID
    outcome = primary.shadow_outcomes[shadow_id]
    assert (outcome.version, outcome.status, outcome.output, outcome.inline) == (
        "1.1.0",
        COMPLETED,
        {"score": 0.9},
        True,
    )
    assert outcome.started_at == T0 and outcome.finished_at == T0 + timedelta(seconds=3)
    assert outcome.model.endpoint == "fraud-score-v110"
    # AND GET shows the shadow beside the result, which stays the prediction's own
    document = world.gateway.document(primary)
    assert document.result is not None and f"outputs/{prediction_id}.out" in document.result.url
    assert document.shadows is not None
    (shadow_document,) = document.shadows
    assert shadow_document.prediction_id == shadow_id
    assert (shadow_document.version, shadow_document.status) == ("1.1.0", COMPLETED)
    assert shadow_document.output == {"score": 0.9} and shadow_document.result is None


def test_a_failing_shadow_never_fails_the_prediction(world: World) -> None:
    # GIVEN a prediction and its dispatched shadow
    prediction_id = submit(world)
    shadow_id = shadow_prediction_id(prediction_id, "1.1.0")
    world.run_shadow_dispatches()

    # WHEN the shadow version's model fails, then the prediction's answers
    async_fails(world, shadow_id, "feature 'amount' missing")
    async_answers(world, prediction_id, b'{"score": 0.1}')

    # THEN the prediction completed and only its own end was announced
    assert record(world, prediction_id).status is COMPLETED
    assert webhook_events(world) == [(prediction_id, "prediction.completed")]
    # AND the shadow's failure is in its lineage, with the model's own words
    outcome = record(world, prediction_id).shadow_outcomes[shadow_id]
    assert outcome.status is FAILED
    assert outcome.error is not None and outcome.error.message == "feature 'amount' missing"
    (shadow_document,) = world.gateway.document(record(world, prediction_id)).shadows or []
    assert shadow_document.status is FAILED and shadow_document.error == outcome.error


def test_a_slow_shadow_never_delays_the_prediction_and_ends_at_its_own_deadline(world: World) -> None:
    # GIVEN a prediction whose shadow version never answers (its own timeout: 600 s + 3600 s queued)
    prediction_id = submit(world)
    shadow_id = shadow_prediction_id(prediction_id, "1.1.0")
    world.run_shadow_dispatches()
    shadow_deadline = T0 + timedelta(seconds=3600 + 600 + DEADLINE_MARGIN_SECONDS)
    assert record(world, shadow_id).deadline_at == shadow_deadline

    # WHEN the prediction's own model answers
    world.clock.advance(seconds=2)
    async_answers(world, prediction_id, b'{"score": 0.1}')

    # THEN it is finished and announced at once, its shadow still running
    assert record(world, prediction_id).status is COMPLETED
    assert webhook_events(world) == [(prediction_id, "prediction.completed")]
    (running,) = world.gateway.document(record(world, prediction_id)).shadows or []
    assert running.status is RUNNING

    # WHEN the sweeper runs past the shadow's own deadline
    world.clock.set(shadow_deadline + timedelta(seconds=1))
    world.gateway.sweep()

    # THEN the shadow timed out, recorded on the prediction, which is exactly as it was
    outcome = record(world, prediction_id).shadow_outcomes[shadow_id]
    assert outcome.status is FAILED and outcome.error is not None and outcome.error.code == "Timeout"
    primary = record(world, prediction_id)
    assert primary.status is COMPLETED and primary.finished_at == T0 + timedelta(seconds=2)
    assert webhook_events(world) == [(prediction_id, "prediction.completed")]


def test_a_real_time_prediction_answers_before_its_shadow_is_even_dispatched() -> None:
    # GIVEN a real-time service with a shadow version, each endpoint answering differently
    world = make_world(services=[versioned_model("repair-cost", "realtime")], clients=[new_client("c_owner")])
    answers = {"repair-cost-endpoint": b'{"eur": 900}', "repair-cost-v110": b'{"eur": 1100}'}

    def answer(endpoint: str, body: bytes, content_type: str, inference_id: str, *, accept: str) -> RealtimeResponse:
        world.models.realtime_calls.append({"endpoint": endpoint, "body": body, "inference_id": inference_id})
        return RealtimeResponse(body=answers[endpoint], content_type="application/json")

    world.models.invoke_realtime = answer  # type: ignore[method-assign]

    # WHEN a prediction is uploaded
    prediction_id = submit(world, "repair-cost", b'{"damage": "bumper"}')

    # THEN it has its answer and its webhook is queued, while its shadow is only queued
    assert record(world, prediction_id).status is COMPLETED
    assert webhook_events(world) == [(prediction_id, "prediction.completed")]
    assert [call["endpoint"] for call in world.models.realtime_calls] == ["repair-cost-endpoint"]
    assert world.shadow_queue.jobs == [{"shadow_id": shadow_prediction_id(prediction_id, "1.1.0")}]

    # WHEN the shadow is dispatched
    world.run_shadow_dispatches()

    # THEN the shadow version read the same input, and its answer is lineage only
    shadow_call = world.models.realtime_calls[1]
    assert shadow_call["endpoint"] == "repair-cost-v110" and shadow_call["body"] == b'{"damage": "bumper"}'
    primary = record(world, prediction_id)
    assert json.loads(world.objects.read(primary.output_uri or "")) == {"eur": 900}
    (outcome,) = primary.shadow_outcomes.values()
    assert outcome.output == {"eur": 1100} and outcome.status is COMPLETED
    assert webhook_events(world) == [(prediction_id, "prediction.completed")]


def test_duplicates_start_dispatch_and_record_each_shadow_once(world: World) -> None:
    # GIVEN a dispatched prediction with a shadow
    prediction_id = submit(world)
    shadow_id = shadow_prediction_id(prediction_id, "1.1.0")
    primary = record(world, prediction_id)
    targets = [versioned_model().at_version("1.1.0")]

    # WHEN the upload event is redelivered and the shadows are started again
    world.gateway.input_uploaded(world.objects.bucket, f"uploads/{prediction_id}")
    world.use_cases.shadows.start(primary, [t for t in targets if t is not None])

    # THEN there is one shadow, and its dispatch is claimed once whatever the messages
    assert [p for p in world.store.records if p.startswith(prediction_id[:40] + "-h")] == [shadow_id]
    jobs = world.shadow_queue.take()
    assert jobs and all(job == {"shadow_id": shadow_id} for job in jobs)
    for job in [*jobs, *jobs]:
        world.use_cases.shadows.dispatch(job["shadow_id"])
    assert [call["endpoint"] for call in world.models.async_calls] == ["fraud-score-endpoint", "fraud-score-v110"]
    assert record(world, prediction_id).shadow_versions == ["1.1.0"]

    # WHEN the shadow's notification comes twice
    async_answers(world, shadow_id, b'{"score": 0.9}')
    async_answers(world, shadow_id, b'{"score": 0.9}')

    # THEN one outcome is kept, and the prediction's record is otherwise as before
    after = record(world, prediction_id)
    assert list(after.shadow_outcomes) == [shadow_id]
    assert after.status is RUNNING and after.updated_at == primary.updated_at


def test_a_shadow_queue_that_refuses_fails_the_shadow_never_the_prediction(world: World) -> None:
    # GIVEN a shadow queue that refuses the next job, and the gateway's log kept
    world.shadow_queue.fail_next = 1
    logger = FakeLogger()
    world.gateway.logger = logger

    # WHEN a prediction is uploaded
    prediction_id = submit(world)

    # THEN it is dispatched as ever
    primary = record(world, prediction_id)
    assert primary.status is RUNNING and primary.dispatched_at is not None
    # AND its shadow failed, saying why, in its lineage
    outcome = primary.shadow_outcomes[shadow_prediction_id(prediction_id, "1.1.0")]
    assert outcome.status is FAILED and outcome.error is not None and outcome.error.code == "ShadowNotStarted"
    assert logger.fields_of("shadow not started")


def test_a_shadow_whose_version_is_gone_by_its_dispatch_fails_alone(world: World) -> None:
    # GIVEN a queued shadow, and its version removed from the catalog meanwhile
    prediction_id = submit(world)
    world.catalog.put(apply_entry(None, model_service("fraud-score"), T0))

    # WHEN the shadow-dispatch function takes it
    world.run_shadow_dispatches()

    # THEN no endpoint got it, and it failed naming the version; the prediction runs on
    assert [call["endpoint"] for call in world.models.async_calls] == ["fraud-score-endpoint"]
    outcome = record(world, prediction_id).shadow_outcomes[shadow_prediction_id(prediction_id, "1.1.0")]
    assert outcome.error is not None and outcome.error.code == "ShadowVersionGone" and "1.1.0" in outcome.error.message
    assert record(world, prediction_id).status is RUNNING


def test_a_shadow_starts_no_shadows_of_its_own(world: World) -> None:
    # GIVEN a prediction's shadow
    prediction_id = submit(world)
    shadow = record(world, shadow_prediction_id(prediction_id, "1.1.0"))
    target = versioned_model().at_version("1.1.0")
    assert target is not None
    world.shadow_queue.take()

    # WHEN shadows of it are asked for
    world.use_cases.shadows.start(shadow, [target])

    # THEN nothing is created or queued
    assert world.shadow_queue.jobs == []
    assert not any(pid.startswith(shadow.prediction_id[:40] + "-h") for pid in world.store.records)


# ------------------------------------------------------------------------------------------------
# ensembles
# ------------------------------------------------------------------------------------------------
def test_a_shadow_of_an_ensemble_version_runs_that_versions_state_machine_and_records_its_result() -> None:
    # GIVEN the ensemble score serving 1.0.0 with 1.1.0 (its own state machine) as its shadow
    world = make_world(services=[model_service("fraud-score"), versioned_ensemble()], clients=[new_client("c_owner")])

    # WHEN a prediction of it is uploaded and its shadow dispatched
    prediction_id = submit(world, "score")
    shadow_id = shadow_prediction_id(prediction_id, "1.1.0")
    world.run_shadow_dispatches()

    # THEN the served version's execution runs the prediction, the shadow version's the shadow
    (primary_arn, primary_name, _), (shadow_arn, shadow_name, execution) = world.workflows.started
    assert (primary_arn, primary_name) == (PRIMARY_ARN, prediction_id)
    assert (shadow_arn, shadow_name) == (SHADOW_ARN, shadow_id)
    context = EnsembleContext.model_validate(execution["context"])
    assert context.prediction_id == shadow_id and context.shadow is True

    # WHEN the shadow's execution runs its step, and that step's model answers
    execution = json.loads(json.dumps(execution))
    world.steps().call(shadow_id, "fraud", "token-shadow", execution=execution)
    step_id = child_prediction_id(shadow_id, "fraud")
    step = record(world, step_id)
    assert step.parent_id == shadow_id and step.in_shadow
    async_answers(world, step_id, b'{"score": 0.7}')

    # THEN the shadow ensemble completed, its outcome left on the prediction, which still runs
    assert record(world, shadow_id).status is COMPLETED
    primary = record(world, prediction_id)
    assert primary.status is RUNNING and primary.step_outputs == {}
    outcome = primary.shadow_outcomes[shadow_id]
    assert outcome.status is COMPLETED and outcome.output == {
        "result": {"score": 0.7},
        "steps": {"fraud": {"score": 0.7}},
    }
    # AND the prediction's own steps do not include the shadow (nor the shadow's step)
    document = world.gateway.document(primary)
    assert document.steps == []
    assert [s.version for s in document.shadows or []] == ["1.1.0"]


def test_a_step_with_a_shadow_version_shadows_the_steps_input_and_later_steps_never_see_it() -> None:
    # GIVEN an ensemble whose step calls fraud-score, which has 1.1.0 as its shadow
    ensemble = apply_entry(None, score_ensemble("1.0.0", PRIMARY_ARN), T0)
    world = make_world(services=[versioned_model(), ensemble], clients=[new_client("c_owner")])
    prediction_id = submit(world, "score", b'{"amount": 42}')
    (_, _, execution) = world.workflows.started[-1]
    assert world.shadow_queue.jobs == []  # the ensemble itself has no shadow

    # WHEN the state machine starts the step
    world.steps().call(prediction_id, "fraud", "token-1", execution=json.loads(json.dumps(execution)))

    # THEN the step's own model and, once dispatched, its shadow version get the same step input
    step_id = child_prediction_id(prediction_id, "fraud")
    shadow_id = shadow_prediction_id(step_id, "1.1.0")
    assert record(world, step_id).shadow_versions == ["1.1.0"]
    world.run_shadow_dispatches()
    step_call, shadow_call = world.models.async_calls
    assert (step_call["endpoint"], shadow_call["endpoint"]) == ("fraud-score-endpoint", "fraud-score-v110")
    assert shadow_call["input_uri"] == step_call["input_uri"] == f"s3://gw-data/steps/{step_id}"
    assert shadow_call["inference_id"] == shadow_id

    # WHEN the shadow answers first, then the step's model
    async_answers(world, shadow_id, b'{"score": 0.99}')
    async_answers(world, step_id, b'{"score": 0.2}')

    # THEN the ensemble's result and the step's task carry the step's own output only
    ensemble_record = record(world, prediction_id)
    assert ensemble_record.status is COMPLETED
    assert list(ensemble_record.step_outputs) == [step_id]
    assert json.loads(world.objects.read(ensemble_record.output_uri or ""))["result"] == {"score": 0.2}
    (answer,) = world.workflows.answers
    assert answer[0] == "token-1" and answer[2]["output"] == {"score": 0.2}
    # AND the shadow's outcome is on the step's record, shown with the step in the lineage
    assert record(world, step_id).shadow_outcomes[shadow_id].output == {"score": 0.99}
    document = world.gateway.document(ensemble_record)
    assert document.steps is not None
    (step_document,) = document.steps
    assert step_document.prediction_id == step_id
    assert [(s.version, s.output) for s in step_document.shadows or []] == [("1.1.0", {"score": 0.99})]
    assert document.shadows is None


def test_a_real_time_step_with_a_shadow_keeps_its_input_in_s3_for_the_shadow() -> None:
    # GIVEN an ensemble whose step calls a real-time service with a shadow version
    ensemble = Service.model_validate(
        {
            "name": "cost",
            "kind": "ensemble",
            "ensemble": {
                "definition": "cost.asl.json",
                "steps": {"cost": {"service": "repair-cost", "mapping": {"claim": "$.input"}}},
                "state_machine_arn": "arn:aws:states:us-east-1:123456789012:stateMachine:gw-cost",
                "final_step": "cost",
            },
        }
    )
    world = make_world(services=[versioned_model("repair-cost", "realtime"), ensemble], clients=[new_client("c_owner")])
    prediction_id = submit(world, "cost", b'{"damage": "door"}')
    (_, _, execution) = world.workflows.started[-1]

    # WHEN the step runs (answered at once) and its shadow is dispatched
    world.steps().call(prediction_id, "cost", "token-1", execution=json.loads(json.dumps(execution)))
    step_id = child_prediction_id(prediction_id, "cost")
    world.run_shadow_dispatches()

    # THEN the step's input was written where the shadow read it, and both models got it
    stored = world.objects.read(f"s3://gw-data/steps/{step_id}")
    assert json.loads(stored) == {"claim": {"damage": "door"}}
    assert [call["body"] for call in world.models.realtime_calls] == [stored, stored]
    assert record(world, prediction_id).status is COMPLETED
    assert record(world, step_id).shadow_outcomes[shadow_prediction_id(step_id, "1.1.0")].status is COMPLETED


def test_an_ensembles_shadows_are_never_its_steps() -> None:
    # GIVEN a running ensemble prediction whose shadow failed at once (a refused queue)
    world = make_world(services=[model_service("fraud-score"), versioned_ensemble()], clients=[new_client("c_owner")])
    world.shadow_queue.fail_next = 1
    prediction_id = submit(world, "score")
    shadow_id = shadow_prediction_id(prediction_id, "1.1.0")
    assert record(world, shadow_id).status is FAILED
    primary = record(world, prediction_id)

    # WHEN its lineage is read while it runs
    document = world.gateway.document(primary)

    # THEN its steps leave the failed shadow out; the shadow is in shadows
    assert document.steps == []
    assert [(s.prediction_id, s.status) for s in document.shadows or []] == [(shadow_id, FAILED)]

    # WHEN its state machine reports an error with no step to blame
    world.steps().fail(prediction_id, {"Error": "States.Runtime", "Cause": "boom"})

    # THEN the failure names no shadow as the failed step
    failed = record(world, prediction_id)
    assert failed.status is FAILED and failed.error is not None
    assert failed.error.code == "States.Runtime" and failed.error.step is None


def test_cancelling_a_prediction_leaves_its_shadows_to_end_on_their_own() -> None:
    # GIVEN a running ensemble prediction with a running shadow
    world = make_world(services=[model_service("fraud-score"), versioned_ensemble()], clients=[new_client("c_owner")])
    prediction_id = submit(world, "score")
    shadow_id = shadow_prediction_id(prediction_id, "1.1.0")
    world.run_shadow_dispatches()
    owner = world.clients.get("c_owner")
    assert owner is not None

    # WHEN its owner cancels it
    world.use_cases.cancellation.cancel(owner, prediction_id)

    # THEN it is cancelled, and its shadow is not one of its steps: it runs on
    assert record(world, prediction_id).status is PredictionStatus.CANCELLED
    assert record(world, shadow_id).status is RUNNING
    assert record(world, prediction_id).step_outputs == {}


def test_a_page_of_predictions_shows_shadows_without_reading_them(world: World) -> None:
    # GIVEN a prediction whose shadow is running, then one whose shadow has answered
    running_id = submit(world)
    ended_id = submit(world)
    world.run_shadow_dispatches()
    async_answers(world, shadow_prediction_id(ended_id, "1.1.0"), b'{"score": 0.9}')
    page = [record(world, running_id), record(world, ended_id)]
    reads = world.store.reads

    # WHEN a page of GET /predictions is rendered
    running, ended = world.use_cases.read_model.documents(page)

    # THEN the running shadow is shown by its version, the ended one by its outcome, and no record was read
    assert world.store.reads == reads
    assert [(s.prediction_id, s.version, s.status) for s in running.shadows or []] == [
        (shadow_prediction_id(running_id, "1.1.0"), "1.1.0", RUNNING)
    ]
    assert [(s.status, s.output) for s in ended.shadows or []] == [(COMPLETED, {"score": 0.9})]

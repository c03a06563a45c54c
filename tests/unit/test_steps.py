"""Ensemble steps (get-transform-call and the step half of notifications) against in-memory fakes.

The tests play the state machine: they start the ensemble through process-input's use case, take
the execution input it was started with, and invoke the steps with the payload the registered
definition passes (``execution.$ = $$.Execution.Input``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from gateway_fakes import World, make_world, model_service, new_client
from pydantic import ValidationError

from ensemble_gateway.domain.api import NewPredictionRequest, step_document
from ensemble_gateway.domain.lifecycle import INLINE_OUTPUT_LIMIT
from ensemble_gateway.domain.models import ModelTarget, Prediction, PredictionStatus, Service
from ensemble_gateway.domain.notifications import InferenceResult
from ensemble_gateway.domain.ports import RealtimeResponse
from ensemble_gateway.domain.steps import child_prediction_id

COMPLETED = PredictionStatus.COMPLETED
FAILED = PredictionStatus.FAILED
RUNNING = PredictionStatus.RUNNING
CLAIM = {"claim": {"amount": 1200, "vehicle_value": 9000}}


def claim_ensemble(**steps: Any) -> Service:
    default_steps = {
        "fraud": {"service": "fraud-score", "mapping": {"claim": "$.input.claim"}},
        "cost": {"service": "repair-cost", "mapping": {"claim": "$.input.claim"}},
        "decision": {
            "service": "claim-decision",
            "mapping": {
                "fraud": "$.steps.fraud.p",
                "cost": "$.steps.cost.eur",
                "value": "$.input.claim.vehicle_value",
            },
        },
    }
    return Service.model_validate(
        {
            "name": "claim",
            "kind": "ensemble",
            "ensemble": {
                "definition": "claim.asl.json",
                "steps": {**default_steps, **steps},
                "state_machine_arn": "arn:aws:states:us-east-1:123456789012:stateMachine:gw-claim",
                "final_step": "decision",
            },
        }
    )


@pytest.fixture
def world() -> World:
    return make_world(
        services=[
            model_service("fraud-score"),
            model_service("repair-cost", invocation="realtime"),
            model_service("claim-decision", invocation="realtime"),
            model_service("always-fails"),
            claim_ensemble(),
        ],
        clients=[new_client("c_owner")],
    )


def start_ensemble(
    world: World, request: dict[str, Any] = CLAIM, service: str = "claim", accept: str | None = None
) -> tuple[str, dict[str, Any]]:
    """Submit and upload; return the ensemble's prediction ID and its execution input."""
    client = world.clients.get("c_owner")
    assert client is not None
    body: dict[str, Any] = {"service": service, "metadata": {"case": "c-17"}}
    if accept is not None:
        body["accept"] = accept
    prediction_id = world.gateway.submit(client, NewPredictionRequest.model_validate(body), raw_body=body).prediction_id
    raw = json.dumps(request).encode()
    world.objects.put_upload(f"uploads/{prediction_id}", raw)
    world.gateway.input_uploaded(world.objects.bucket, f"uploads/{prediction_id}", len(raw))
    (_, name, execution) = world.workflows.started[-1]
    assert name == prediction_id
    # Through JSON, as Step Functions carries it.
    return prediction_id, json.loads(json.dumps(execution))


def realtime_answers(world: World, *answers: dict[str, Any]) -> None:
    queue = [RealtimeResponse(body=json.dumps(a).encode(), content_type="application/json") for a in answers]

    def answer(endpoint: str, body: bytes, content_type: str, inference_id: str, *, accept: str) -> RealtimeResponse:
        world.models.realtime_calls.append(
            {"endpoint": endpoint, "body": body, "inference_id": inference_id, "accept": accept}
        )
        return queue.pop(0)

    world.models.invoke_realtime = answer  # type: ignore[method-assign]


def async_succeeds(world: World, child_id: str, output: bytes) -> None:
    """SageMaker async writes the output and publishes its success notification."""
    uri = world.objects.write(f"outputs/{child_id}.out", output, "application/json")
    world.gateway.inference_finished(
        InferenceResult.model_validate(
            {
                "inferenceId": child_id,
                "invocationStatus": "Completed",
                "responseParameters": {"contentType": "application/json", "outputLocation": uri},
            }
        )
    )


def record(world: World, prediction_id: str) -> Prediction:
    found = world.store._load(prediction_id)
    assert found is not None
    return found


def answers_for(world: World, token: str) -> list[tuple[str, Any]]:
    return [(kind, output) for t, kind, output in world.workflows.answers if t == token]


def test_a_step_starts_from_the_execution_input_without_reading_the_catalog_or_the_ensemble(world: World) -> None:
    # GIVEN a started ensemble, and its fraud model moved to another endpoint after the start
    parent_id, execution = start_ensemble(world)
    world.catalog.put(model_service("fraud-score").model_copy(update={"model": ModelTarget(endpoint_name="fraud-v2")}))
    reads_before = (world.store.reads, world.catalog.reads)
    # WHEN the state machine runs the fraud step
    result = world.steps().call(parent_id, "fraud", "token-fraud", execution=execution)
    # THEN nothing was read: the request, the owner and the targets came in the execution input
    assert (world.store.reads, world.catalog.reads) == reads_before
    # AND the step ran against the catalog as it was when the execution started
    (call,) = world.models.async_calls
    assert call["endpoint"] == "fraud-score-endpoint"
    assert call["inference_id"] == result["prediction_id"] == child_prediction_id(parent_id, "fraud")
    assert json.loads(world.objects.read(call["input_uri"])) == {"claim": CLAIM["claim"]}
    child = record(world, result["prediction_id"])
    assert (child.status, child.owner, child.metadata, child.parent_id) == (
        RUNNING,
        "c_owner",
        {"case": "c-17"},
        parent_id,
    )
    assert child.final_step is False


def test_a_realtime_step_finishes_inline_and_leaves_its_output_on_the_ensemble(world: World) -> None:
    # GIVEN a started ensemble whose repair-cost model answers in real time
    parent_id, execution = start_ensemble(world)
    realtime_answers(world, {"eur": 900})
    # WHEN the state machine runs the cost step
    result = world.steps().call(parent_id, "cost", "token-cost", execution=execution)
    # THEN the model got the mapped input from memory and the child is COMPLETED right away
    (call,) = world.models.realtime_calls
    assert json.loads(call["body"]) == {"claim": CLAIM["claim"]}
    child = record(world, result["prediction_id"])
    assert child.status is COMPLETED and child.input_uri is None
    # AND its outcome is on the ensemble's record, the token answered with the output inline,
    # and nothing went through SNS
    outcome = record(world, parent_id).step_outputs[child.prediction_id]
    assert (outcome.step, outcome.status, outcome.output, outcome.inline) == ("cost", COMPLETED, {"eur": 900}, True)
    ((kind, output),) = answers_for(world, "token-cost")
    assert kind == "success" and output["output"] == {"eur": 900}


def test_the_final_step_finishes_the_ensemble_before_the_complete_task_runs(world: World) -> None:
    # GIVEN an ensemble whose fraud (async) and cost (real-time) steps have finished
    parent_id, execution = start_ensemble(world)
    steps = world.steps()
    realtime_answers(world, {"eur": 900}, {"decision": "repair"})
    fraud = steps.call(parent_id, "fraud", "token-fraud", execution=execution)["prediction_id"]
    world.clock.advance(seconds=1)
    async_succeeds(world, fraud, b'{"p": 0.1}')
    steps.call(parent_id, "cost", "token-cost", execution=execution)
    assert record(world, parent_id).status is RUNNING
    # WHEN the decision step runs
    world.clock.advance(seconds=1)
    steps.call(parent_id, "decision", "token-decision", execution=execution)
    # THEN its mapping saw the earlier outputs ...
    decision_call = world.models.realtime_calls[-1]
    assert json.loads(decision_call["body"]) == {"fraud": 0.1, "cost": 900, "value": 9000}
    # ... and the ensemble is COMPLETED with its output document and one webhook-less finish
    parent = record(world, parent_id)
    assert parent.status is COMPLETED
    assert parent.output_uri is not None
    document = json.loads(world.objects.read(parent.output_uri))
    assert document == {
        "result": {"decision": "repair"},
        "steps": {"fraud": {"p": 0.1}, "cost": {"eur": 900}, "decision": {"decision": "repair"}},
    }
    # AND its lineage comes from the outcomes on its record, the same as from its children
    reads = (world.store.reads, world.catalog.reads)
    lineage = world.gateway.document(parent).steps
    assert (world.store.reads, world.catalog.reads) == reads
    children = sorted(world.store.children(parent_id), key=lambda c: (c.created_at, c.step or ""))
    assert lineage == [step_document(child) for child in children]
    assert [step.name for step in lineage or []] == ["fraud", "cost", "decision"]
    # WHEN the state machine's Complete task runs afterwards
    writes = len(world.objects.objects)
    finished_at = parent.finished_at
    assert steps.complete(parent_id, "decision") == {"prediction_id": parent_id, "status": "COMPLETED"}
    # THEN it only confirms: nothing rewritten
    assert len(world.objects.objects) == writes
    assert record(world, parent_id).finished_at == finished_at


def test_a_large_step_output_is_read_from_s3_by_the_step_that_maps_it(world: World) -> None:
    # GIVEN a fraud step whose output is too large to travel inline
    parent_id, execution = start_ensemble(world)
    steps = world.steps()
    realtime_answers(world, {"eur": 900}, {"decision": "refer"})
    large = json.dumps({"p": 0.9, "explanation": "x" * INLINE_OUTPUT_LIMIT}).encode()
    fraud = steps.call(parent_id, "fraud", "token-fraud", execution=execution)["prediction_id"]
    async_succeeds(world, fraud, large)
    outcome = record(world, parent_id).step_outputs[fraud]
    assert not outcome.inline and outcome.output is None
    ((_, fraud_answer),) = answers_for(world, "token-fraud")
    assert "output" not in fraud_answer
    steps.call(parent_id, "cost", "token-cost", execution=execution)
    # WHEN the decision step maps it
    steps.call(parent_id, "decision", "token-decision", execution=execution)
    # THEN the value came from the stored output
    assert json.loads(world.models.realtime_calls[-1]["body"])["fraud"] == 0.9


def test_a_failed_optional_step_contributes_its_default(world: World) -> None:
    # GIVEN an ensemble with an optional step whose model fails
    world.catalog.put(
        claim_ensemble(
            fraud={"service": "always-fails", "mapping": "$.input", "optional": True, "default": {"p": None}},
            decision={"service": "claim-decision", "mapping": {"fraud": "$.steps.fraud"}},
        )
    )
    parent_id, execution = start_ensemble(world)
    steps = world.steps()
    realtime_answers(world, {"decision": "refer"})
    fraud = steps.call(parent_id, "fraud", "token-fraud", execution=execution)["prediction_id"]
    world.gateway.inference_finished(
        InferenceResult.model_validate(
            {"inferenceId": fraud, "invocationStatus": "Failed", "failureReason": "ModelError: boom"}
        )
    )
    # THEN the ensemble goes on: the token is answered as a skipped success
    ((kind, output),) = answers_for(world, "token-fraud")
    assert kind == "success" and output["skipped"] is True
    # WHEN a later step maps the optional step
    steps.call(parent_id, "decision", "token-decision", execution=execution)
    # THEN it sees the declared default, null included
    assert json.loads(world.models.realtime_calls[-1]["body"]) == {"fraud": {"p": None}}


def test_a_mapping_error_fails_the_step_once_and_a_retried_invocation_only_answers_again(world: World) -> None:
    # GIVEN a request without the field the cost step maps
    parent_id, execution = start_ensemble(world, request={"not_a_claim": 1})
    steps = world.steps()
    # WHEN the cost step runs, and Step Functions invokes it again with the same token
    first = steps.call(parent_id, "cost", "token-cost", execution=execution)
    again = steps.call(parent_id, "cost", "token-cost", execution=execution)
    # THEN one child, FAILED with the key and path, the token failed (answered twice, the second
    # answer stale), and the model never called
    assert first == again == {"prediction_id": first["prediction_id"], "status": "FAILED"}
    child = record(world, first["prediction_id"])
    assert child.status is FAILED and child.error is not None
    assert child.error.step == "cost" and "$.input.claim" in child.error.message
    assert [kind for kind, _ in answers_for(world, "token-cost")] == ["failure", "failure"]
    assert world.models.realtime_calls == []
    assert len(world.store.children(parent_id)) == 1


def test_without_the_execution_input_a_step_reads_the_ensemble_and_the_catalog(world: World) -> None:
    # GIVEN a state machine registered before the execution input was passed to steps
    parent_id, _ = start_ensemble(world)
    reads_before = world.store.reads
    # WHEN the fraud step is invoked with the old payload
    world.steps().call(parent_id, "fraud", "token-fraud")
    # THEN it read the ensemble's record and still dispatched the step
    assert world.store.reads > reads_before
    assert [c["endpoint"] for c in world.models.async_calls] == ["fraud-score-endpoint"]


def test_a_small_json_request_travels_in_the_execution_input_and_a_large_one_does_not(world: World) -> None:
    # GIVEN a small request and a request above the inline limit
    _, small = start_ensemble(world)
    _, large = start_ensemble(world, request={"claim": {"amount": 1, "notes": "x" * 40_000}})
    # THEN only the small one is carried; the large one is read from S3 by the steps that need it
    assert small["context"]["request"] == CLAIM and small["context"]["request_inline"] is True
    assert "request" not in large["context"]
    assert set(small["context"]["targets"]) == {"fraud-score", "repair-cost", "claim-decision"}


def test_a_final_fan_out_finishes_the_ensemble_when_its_last_member_succeeds(world: World) -> None:
    # GIVEN an ensemble ending with a fan-out over two async classifiers
    for name in ("classifier-a", "classifier-b"):
        world.catalog.put(model_service(name, tasks=["classification"]))
    world.catalog.put(
        Service.model_validate(
            {
                "name": "triage",
                "kind": "ensemble",
                "ensemble": {
                    "definition": "triage.asl.json",
                    "steps": {"classify": {"fan_out": {"task": "classification"}, "mapping": "$.input"}},
                    "state_machine_arn": "arn:aws:states:us-east-1:123456789012:stateMachine:gw-triage",
                    "final_step": "classify",
                },
            }
        )
    )
    parent_id, execution = start_ensemble(world, request={"text": "my card was stolen"}, service="triage")
    assert execution["fanout"] == {"classify": [{"service": "classifier-a"}, {"service": "classifier-b"}]}
    steps = world.steps()
    a = steps.call(parent_id, "classify", "token-a", "classifier-a", execution=execution)["prediction_id"]
    b = steps.call(parent_id, "classify", "token-b", "classifier-b", execution=execution)["prediction_id"]
    # WHEN the first member succeeds, and its notification is delivered twice
    async_succeeds(world, a, b'{"label": "fraud"}')
    async_succeeds(world, a, b'{"label": "fraud"}')
    # THEN the ensemble is still running: the other member has not answered
    assert record(world, parent_id).status is RUNNING
    # WHEN the last member succeeds
    async_succeeds(world, b, b'{"label": "cards"}')
    # THEN the ensemble is COMPLETED with both members' outputs, keyed by service
    parent = record(world, parent_id)
    assert parent.status is COMPLETED and parent.output_uri is not None
    expected = {"classifier-a": {"label": "fraud"}, "classifier-b": {"label": "cards"}}
    assert json.loads(world.objects.read(parent.output_uri)) == {"result": expected, "steps": {"classify": expected}}


# ------------------------------------------------------------------------------------------------
# accept: what each step's model is asked to answer with
# ------------------------------------------------------------------------------------------------
def run_claim_steps(world: World, parent_id: str, execution: dict[str, Any] | None) -> dict[str, str]:
    """Run fraud (async), cost and decision (real-time) in order; return each step's child ID."""
    steps = world.steps()
    realtime_answers(world, {"eur": 900}, {"decision": "repair"})
    children = {"fraud": steps.call(parent_id, "fraud", "token-fraud", execution=execution)["prediction_id"]}
    async_succeeds(world, children["fraud"], b'{"p": 0.1}')
    for name in ("cost", "decision"):
        children[name] = steps.call(parent_id, name, f"token-{name}", execution=execution)["prediction_id"]
    return children


def test_the_final_step_is_asked_for_what_the_ensemble_request_accepts_and_the_others_for_json(
    world: World,
) -> None:
    # GIVEN an ensemble request asking for CSV; decision is the ensemble's final step
    parent_id, execution = start_ensemble(world, accept="text/csv")
    # THEN the execution carries it: no step reads the ensemble's record for it
    assert execution["context"]["accept"] == "text/csv"
    # WHEN the state machine runs fraud (async), cost and decision (real-time)
    children = run_claim_steps(world, parent_id, execution)
    # THEN the steps whose outputs later mappings read were asked for JSON, the final one for CSV
    assert [c["accept"] for c in world.models.async_calls] == ["application/json"]
    assert [c["accept"] for c in world.models.realtime_calls] == ["application/json", "text/csv"]
    assert {name: record(world, child).accept for name, child in children.items()} == {
        "fraud": "application/json",
        "cost": "application/json",
        "decision": "text/csv",
    }


def test_an_ensemble_request_without_accept_asks_every_step_for_json(world: World) -> None:
    # GIVEN an ensemble request that does not say what it wants back
    parent_id, execution = start_ensemble(world)
    # WHEN its steps run
    run_claim_steps(world, parent_id, execution)
    # THEN every model, the final one included, was asked for JSON
    assert {c["accept"] for c in world.models.async_calls + world.models.realtime_calls} == {"application/json"}


def test_a_step_declaring_its_own_accept_is_asked_for_it_final_step_or_not(world: World) -> None:
    # GIVEN an ensemble whose fraud step and final decision step declare what they want back
    world.catalog.put(
        claim_ensemble(
            fraud={"service": "fraud-score", "mapping": {"claim": "$.input.claim"}, "accept": "application/jsonlines"},
            decision={
                "service": "claim-decision",
                "mapping": {"fraud": "$.steps.fraud", "cost": "$.steps.cost.eur"},
                "accept": "application/x-decision+json",
            },
        )
    )
    # AND a request asking for CSV
    parent_id, execution = start_ensemble(world, accept="text/csv")
    # WHEN its steps run
    run_claim_steps(world, parent_id, execution)
    # THEN each declared accept wins, over JSON and over the request's accept alike
    assert [c["accept"] for c in world.models.async_calls] == ["application/jsonlines"]
    assert [c["accept"] for c in world.models.realtime_calls] == ["application/json", "application/x-decision+json"]


def test_without_the_execution_input_the_final_step_still_gets_the_ensemble_requests_accept(world: World) -> None:
    # GIVEN a started ensemble asking for CSV, whose steps are invoked with the old payload
    parent_id, _ = start_ensemble(world, accept="text/csv")
    # WHEN its steps run without the execution input
    run_claim_steps(world, parent_id, None)
    # THEN the final step was asked for CSV all the same (read from the ensemble's record)
    assert [c["accept"] for c in world.models.realtime_calls] == ["application/json", "text/csv"]


def test_a_final_fan_out_asks_every_member_for_the_ensemble_requests_accept(world: World) -> None:
    # GIVEN an ensemble ending with a fan-out over two classifiers, asked for CSV
    for name in ("classifier-a", "classifier-b"):
        world.catalog.put(model_service(name, tasks=["classification"]))
    world.catalog.put(
        Service.model_validate(
            {
                "name": "triage",
                "kind": "ensemble",
                "ensemble": {
                    "definition": "triage.asl.json",
                    "steps": {"classify": {"fan_out": {"task": "classification"}, "mapping": "$.input"}},
                    "state_machine_arn": "arn:aws:states:us-east-1:123456789012:stateMachine:gw-triage",
                    "final_step": "classify",
                },
            }
        )
    )
    parent_id, execution = start_ensemble(world, request={"text": "stolen card"}, service="triage", accept="text/csv")
    # WHEN the state machine runs both members
    steps = world.steps()
    for member in ("classifier-a", "classifier-b"):
        steps.call(parent_id, "classify", f"token-{member}", member, execution=execution)
    # THEN both were asked for CSV
    assert [(c["endpoint"], c["accept"]) for c in world.models.async_calls] == [
        ("classifier-a-endpoint", "text/csv"),
        ("classifier-b-endpoint", "text/csv"),
    ]


@pytest.mark.parametrize("accept", ["json", "text/csv;", "a/b,"])
def test_a_catalog_step_with_a_malformed_accept_is_refused(accept: str) -> None:
    # GIVEN / WHEN an ensemble whose step declares an accept that is not a media range
    with pytest.raises(ValidationError, match="HTTP Accept header"):
        claim_ensemble(fraud={"service": "fraud-score", "accept": accept})


# -- declarative ensembles: when, retries after transient Lambda errors, output mappings ----------


def declarative_world(**steps: Any) -> World:
    """A world whose 'claim' ensemble is declarative (no definition) with ``steps`` added."""
    base = claim_ensemble(**steps).model_dump()
    base["ensemble"].update(definition=None, final_step=None, output="decision")
    return make_world(
        services=[
            model_service("fraud-score"),
            model_service("repair-cost", invocation="realtime"),
            model_service("claim-decision", invocation="realtime"),
            Service.model_validate(base),
        ],
        clients=[new_client("c_owner")],
    )


def test_a_step_whose_when_is_false_is_skipped_without_calling_its_model() -> None:
    # GIVEN a review step that runs only for a high fraud probability, and a fraud step that said 0.1
    world = declarative_world(
        review={
            "service": "fraud-score",
            "when": {"path": "$.steps.fraud.p", "greater_than": 0.8},
            "mapping": {"p": "$.steps.fraud.p"},
            "default": {"reviewed": False},
        }
    )
    parent_id, execution = start_ensemble(world)
    steps = world.steps()
    fraud = steps.call(parent_id, "fraud", "token-fraud", execution=execution)
    async_succeeds(world, fraud["prediction_id"], json.dumps({"p": 0.1}).encode())
    calls_before = len(world.models.async_calls)

    # WHEN the state machine runs the review step
    result = steps.call(parent_id, "review", "token-review", execution=execution)

    # THEN no model was called, the child is SKIPPED, and the task is answered at once as skipped
    assert result["status"] == "SKIPPED"
    assert len(world.models.async_calls) == calls_before
    assert record(world, result["prediction_id"]).status is PredictionStatus.SKIPPED
    (answer,) = answers_for(world, "token-review")
    assert answer[0] == "success" and answer[1]["skipped"] is True
    # AND later steps see the step's default
    assert world.gateway.ensemble_outputs(record(world, parent_id))["review"] == {"reviewed": False}


def test_a_when_on_a_missing_value_is_false_and_a_true_one_runs_the_step() -> None:
    world = declarative_world(
        missing={"service": "fraud-score", "when": {"path": "$.input.claim.nope", "equals": 1}, "mapping": "$.input"},
        present={
            "service": "fraud-score",
            "when": {"path": "$.input.claim.amount", "equals": 1200},
            "mapping": "$.input",
        },
    )
    parent_id, execution = start_ensemble(world)
    steps = world.steps()
    assert steps.call(parent_id, "missing", "t1", execution=execution)["status"] == "SKIPPED"
    assert steps.call(parent_id, "present", "t2", execution=execution)["status"] == "RUNNING"
    assert len(world.models.async_calls) == 1


def test_a_retried_task_binds_the_running_child_to_its_new_token_and_calls_no_model_again() -> None:
    # GIVEN a step whose first attempt dispatched its model, then lost its answer (a transient
    # Lambda error: Step Functions retries the task with a new token)
    world = declarative_world()
    parent_id, execution = start_ensemble(world)
    steps = world.steps()
    first = steps.call(parent_id, "fraud", "token-attempt-1", execution=execution)

    # WHEN the second attempt arrives
    second = steps.call(parent_id, "fraud", "token-attempt-2", execution=execution)

    # THEN it is the same child, the model was called once, and its answer goes to the new token
    assert second["prediction_id"] == first["prediction_id"]
    assert len(world.models.async_calls) == 1
    async_succeeds(world, first["prediction_id"], json.dumps({"p": 0.3}).encode())
    assert [kind for kind, _ in answers_for(world, "token-attempt-2")] == ["success"]
    assert answers_for(world, "token-attempt-1") == []


def test_a_retry_after_the_child_finished_answers_the_new_token_at_once() -> None:
    # GIVEN a step whose model finished while its task was being retried
    world = declarative_world()
    parent_id, execution = start_ensemble(world)
    steps = world.steps()
    first = steps.call(parent_id, "fraud", "token-attempt-1", execution=execution)
    async_succeeds(world, first["prediction_id"], json.dumps({"p": 0.3}).encode())

    # WHEN the retry arrives with a new token
    steps.call(parent_id, "fraud", "token-attempt-2", execution=execution)

    # THEN the new token is answered with the finished outcome; no second model call
    assert [kind for kind, _ in answers_for(world, "token-attempt-2")] == ["success"]
    assert len(world.models.async_calls) == 1


def test_an_output_mapping_builds_the_ensembles_result_from_several_steps() -> None:
    # GIVEN a declarative ensemble whose output combines two steps and the request
    world = declarative_world()
    base = world.catalog.get("claim")
    assert base is not None and base.ensemble is not None
    output = {"fraud": "$.steps.fraud.p", "cost": "$.steps.cost.eur", "value": "$.input.claim.vehicle_value"}
    world.catalog.put(base.model_copy(update={"ensemble": base.ensemble.model_copy(update={"output": output})}))
    parent_id, execution = start_ensemble(world)
    steps = world.steps()
    realtime_answers(world, {"eur": 800})
    fraud = steps.call(parent_id, "fraud", "t-fraud", execution=execution)
    async_succeeds(world, fraud["prediction_id"], json.dumps({"p": 0.2}).encode())
    steps.call(parent_id, "cost", "t-cost", execution=execution)

    # WHEN the state machine completes
    result = steps.complete(parent_id, None, execution)

    # THEN the result is the mapping's value over the steps' outputs and the request
    assert result["status"] == "COMPLETED"
    parent = record(world, parent_id)
    assert parent.output_uri is not None
    document = json.loads(world.objects.read(parent.output_uri))
    assert document["result"] == {"fraud": 0.2, "cost": 800, "value": 9000}


def test_an_output_mapping_that_cannot_apply_fails_the_ensemble_naming_the_output() -> None:
    world = declarative_world()
    base = world.catalog.get("claim")
    assert base is not None and base.ensemble is not None
    output = {"missing": "$.steps.fraud.not_there"}
    world.catalog.put(base.model_copy(update={"ensemble": base.ensemble.model_copy(update={"output": output})}))
    parent_id, execution = start_ensemble(world)
    steps = world.steps()
    fraud = steps.call(parent_id, "fraud", "t-fraud", execution=execution)
    async_succeeds(world, fraud["prediction_id"], json.dumps({"p": 0.2}).encode())

    assert steps.complete(parent_id, None, execution)["status"] == "FAILED"
    error = record(world, parent_id).error
    assert error is not None and error.step == "output" and "not_there" in error.message


def test_a_timeout_named_as_data_fails_only_that_steps_child() -> None:
    # GIVEN a running step, and a generated state machine's timeout naming 'fraud' as data
    world = declarative_world()
    parent_id, execution = start_ensemble(world)
    steps = world.steps()
    fraud = steps.call(parent_id, "fraud", "t-fraud", execution=execution)

    # WHEN the state machine fails the ensemble with the structured cause
    steps.fail(parent_id, {"Error": "StepTimedOut", "Cause": json.dumps({"step": "fraud"}), "Caught": {}})

    # THEN the ensemble failed naming the step, and its child is no longer RUNNING
    parent = record(world, parent_id)
    assert parent.status is FAILED and parent.error is not None and parent.error.step == "fraud"
    assert record(world, fraud["prediction_id"]).status is FAILED


def test_a_failure_no_record_explains_is_named_from_the_structured_cause() -> None:
    # GIVEN an ensemble whose step failed before any child was recorded (its Lambda call failed
    # past its attempts), as a generated state machine reports it: the step as data, the error caught
    world = declarative_world()
    parent_id, _ = start_ensemble(world)

    # WHEN the state machine fails the ensemble
    world.steps().fail(
        parent_id,
        {
            "Error": "StepFailed",
            "Cause": json.dumps({"step": "fraud"}),
            "Caught": {"Error": "Lambda.ServiceException", "Cause": "Rate exceeded"},
        },
    )

    # THEN the error names the step and what was caught, not the JSON cause
    error = record(world, parent_id).error
    assert error is not None
    assert (error.code, error.step, error.message) == ("StepFailed", "fraud", "Lambda.ServiceException: Rate exceeded")

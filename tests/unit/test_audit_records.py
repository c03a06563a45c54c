"""Decision records (issue 18): one record per terminal prediction, step and shadow, through an
outbox on the prediction's record, never delaying or failing the prediction, never lost.

The tests play the lifecycle against the in-memory fakes (``make_world(audit=True)``: the audit
sink is ``FakeAuditSink``) and read the records the sink took.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

import pytest
from gateway_fakes import World, make_world, model_service, new_client
from test_shadows import versioned_model
from test_steps import CLAIM, claim_ensemble, realtime_answers

from ensemble_gateway.domain.api import NewPredictionRequest
from ensemble_gateway.domain.auditing import REPLAY_GRACE_SECONDS
from ensemble_gateway.domain.models import Client, Prediction, PredictionStatus, Service
from ensemble_gateway.domain.notifications import InferenceResult
from ensemble_gateway.domain.records import DEADLINE_MARGIN_SECONDS, shadow_prediction_id

HOOK = "https://hooks.example.com/ml?token=secret"
#: A step run only for a high fraud probability (declarative ``when``).
REVIEW = {"service": "fraud-score", "when": {"path": "$.steps.fraud.p", "greater_than": 0.8}, "mapping": "$.input"}
INPUT = b'{"claim": {"amount": 1200}}'
OUTPUT = b'{"p": 0.91}'


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def owner(world: World) -> Client:
    client = world.clients.get("c_owner")
    assert client is not None
    return client


def submit(world: World, service: str = "fraud-score", **body: Any) -> str:
    request = {"service": service, "metadata": {"claim": "c-17"}, **body}
    return world.use_cases.intake.submit(
        owner(world), NewPredictionRequest.model_validate(request), raw_body=request
    ).prediction_id


def upload(world: World, prediction_id: str, body: bytes = INPUT) -> None:
    world.objects.put_upload(f"uploads/{prediction_id}", body)
    world.use_cases.dispatch.input_uploaded(world.objects.bucket, f"uploads/{prediction_id}", len(body))


def answer(world: World, prediction_id: str, output: bytes = OUTPUT, *, failed: bool = False) -> None:
    """SageMaker async: the output written, then its notification (receipt 1 s after the start,
    answer 3 s later)."""
    started = world.clock()
    notification: dict[str, Any] = {
        "inferenceId": prediction_id,
        "invocationStatus": "Failed" if failed else "Completed",
        "receivedTime": (started + timedelta(seconds=1)).isoformat().replace("+00:00", "Z"),
        "eventTime": (started + timedelta(seconds=4)).isoformat().replace("+00:00", "Z"),
    }
    if failed:
        notification["failureReason"] = 'ClientError: Received server error (500) from model with message "boom".'
    else:
        uri = world.objects.write(f"outputs/{prediction_id}.out", output, "application/json")
        notification["responseParameters"] = {"contentType": "application/json", "outputLocation": uri}
    world.clock.advance(seconds=5)
    world.use_cases.completion.inference_finished(InferenceResult.model_validate(notification))


def record(world: World, prediction_id: str) -> Prediction:
    found = world.store._load(prediction_id)
    assert found is not None
    return found


def only_record(world: World, prediction_id: str) -> dict[str, Any]:
    assert world.audit is not None
    (found,) = world.audit.of(prediction_id)
    return found


@pytest.fixture
def world() -> World:
    return make_world(
        services=[model_service("fraud-score"), model_service("scorer-rt", invocation="realtime")],
        clients=[new_client("c_owner")],
        audit=True,
    )


# -- the record of each end -------------------------------------------------------------------
def test_a_completed_prediction_records_its_version_input_and_output_by_hash(world: World) -> None:
    # GIVEN a prediction uploaded and answered by its model
    prediction_id = submit(world, notification={"webhook": {"url": HOOK}})
    upload(world, prediction_id)

    # WHEN SageMaker's notification finishes it
    answer(world, prediction_id)

    # THEN one record says who decided, on which input and with which output, by hash
    found = only_record(world, prediction_id)
    assert found["record_id"] == f"{prediction_id}:COMPLETED"
    assert (found["kind"], found["service"], found["service_kind"]) == ("prediction", "fraud-score", "model")
    assert (found["version"], found["endpoint"], found["client_id"]) == ("1.0.0", "fraud-score-endpoint", "c_owner")
    assert found["input"]["sha256"] == sha(INPUT) and found["input"]["size"] == len(INPUT)
    assert found["input"]["uri"] == f"s3://gw-data/inputs/{prediction_id}"
    assert found["output"]["sha256"] == sha(OUTPUT) and found["output"]["size"] == len(OUTPUT)
    assert found["metadata"] == {"claim": "c-17"}
    # AND the time is split between the queue, the model and the gateway
    assert found["timing"] == {"total_ms": 5000, "queue_ms": 1000, "model_ms": 3000, "overhead_ms": 1000}
    # AND the webhook's URL is named without its query (it may hold a secret)
    assert found["callback"] == {"kind": "webhook", "target": "https://hooks.example.com/ml"}
    # AND the SageMaker Data Capture fields reference the payloads, never carry them
    capture = found["captureData"]
    assert capture["endpointInput"] == {
        "observedContentType": "application/json",
        "mode": "INPUT",
        "data": f"s3://gw-data/inputs/{prediction_id}",
        "encoding": "S3_URI",
    }
    assert capture["endpointOutput"]["mode"] == "OUTPUT"
    assert found["eventMetadata"]["inferenceId"] == prediction_id
    assert found["eventMetadata"]["eventId"] == found["record_id"]
    assert found["eventVersion"] == "0"
    assert json.dumps(found).count("0.91") == 0
    # AND the outbox is empty
    assert record(world, prediction_id).audit_pending is None


def test_a_failed_prediction_records_its_error_and_no_output(world: World) -> None:
    prediction_id = submit(world)
    upload(world, prediction_id)

    answer(world, prediction_id, failed=True)

    found = only_record(world, prediction_id)
    assert found["status"] == "FAILED"
    assert found["error"] == {"code": "ModelError", "message": "boom", "step": None}
    assert found["output"] is None and found["captureData"]["endpointOutput"] is None
    assert found["input"]["sha256"] == sha(INPUT)


def test_an_expired_prediction_records_that_no_input_came(world: World) -> None:
    # GIVEN a prediction whose upload never came
    prediction_id = submit(world)

    # WHEN the sweeper runs past its upload window
    world.clock.advance(seconds=900 + DEADLINE_MARGIN_SECONDS + 1)
    world.use_cases.sweeping.sweep()

    # THEN its record says EXPIRED, without an input or a model time
    found = only_record(world, prediction_id)
    assert (found["status"], found["error"]["code"]) == ("EXPIRED", "UploadExpired")
    assert found["input"] is None and found["output"] is None
    assert found["timing"]["model_ms"] is None


def test_a_cancelled_prediction_records_who_ended_it(world: World) -> None:
    prediction_id = submit(world)
    upload(world, prediction_id)

    world.use_cases.cancellation.cancel(owner(world), prediction_id)

    found = only_record(world, prediction_id)
    assert (found["status"], found["error"]["code"], found["client_id"]) == ("CANCELLED", "Cancelled", "c_owner")
    assert found["input"]["sha256"] == sha(INPUT)


def test_a_realtime_answer_is_hashed_in_memory_and_its_call_is_the_model_time(world: World) -> None:
    # GIVEN a real-time model answering
    realtime_answers(world, {"p": 0.5})
    prediction_id = submit(world, "scorer-rt")

    # WHEN its upload is processed (the call finishes it inline)
    upload(world, prediction_id)

    # THEN its output's hash is that of the answer, with no object read back
    found = only_record(world, prediction_id)
    assert found["output"]["sha256"] == sha(json.dumps({"p": 0.5}).encode())
    assert found["timing"]["model_ms"] == 0  # the fake clock does not move during the call


def test_a_service_that_opts_in_keeps_its_payloads_in_the_capture_fields() -> None:
    # GIVEN a service with audit_payloads
    world = make_world(
        services=[model_service("fraud-score", audit_payloads=True)], clients=[new_client("c_owner")], audit=True
    )
    prediction_id = submit(world)
    upload(world, prediction_id)

    answer(world, prediction_id)

    # THEN the capture holds the JSON itself, as Data Capture does
    capture = only_record(world, prediction_id)["captureData"]
    assert capture["endpointInput"]["data"] == INPUT.decode() and capture["endpointInput"]["encoding"] == "JSON"
    assert capture["endpointOutput"]["data"] == OUTPUT.decode()


# -- ensembles, skipped steps, shadows ----------------------------------------------------------
def ensemble_world(**steps: Any) -> World:
    return make_world(
        services=[
            model_service("fraud-score"),
            model_service("repair-cost", invocation="realtime"),
            model_service("claim-decision", invocation="realtime"),
            claim_ensemble(**steps),
        ],
        clients=[new_client("c_owner")],
        audit=True,
    )


def start(world: World, service: str = "claim") -> tuple[str, dict[str, Any]]:
    prediction_id = submit(world, service)
    upload(world, prediction_id, json.dumps(CLAIM).encode())
    (_, _, execution) = world.workflows.started[-1]
    return prediction_id, json.loads(json.dumps(execution))


def test_an_ensemble_records_each_step_and_itself_with_the_steps_versions_and_timing() -> None:
    # GIVEN a claim ensemble whose three steps answer
    world = ensemble_world()
    parent_id, execution = start(world)
    steps = world.steps()
    fraud = steps.call(parent_id, "fraud", "t-fraud", execution=execution)["prediction_id"]
    answer(world, fraud, b'{"p": 0.2}')
    realtime_answers(world, {"eur": 800}, {"approve": True})
    steps.call(parent_id, "cost", "t-cost", execution=execution)

    # WHEN the final step finishes the ensemble
    steps.call(parent_id, "decision", "t-decision", execution=execution)

    # THEN each step has its own record, linked to the ensemble, with its input and output hashes
    assert world.audit is not None
    step_records = [r for r in world.audit.records if r["kind"] == "step"]
    assert {r["step"] for r in step_records} == {"fraud", "cost", "decision"}
    assert all(r["parent_id"] == parent_id for r in step_records)
    fraud_record = next(r for r in step_records if r["step"] == "fraud")
    stored_input = world.objects.read(fraud_record["input"]["uri"])
    assert fraud_record["input"]["sha256"] == sha(stored_input)
    assert fraud_record["output"]["sha256"] == sha(b'{"p": 0.2}')
    assert fraud_record["timing"]["model_ms"] == 3000
    # AND a real-time step's input, passed from memory and never stored, is named by its hash
    cost_record = next(r for r in step_records if r["step"] == "cost")
    (cost_call,) = [c for c in world.models.realtime_calls if c["inference_id"] == cost_record["prediction_id"]]
    assert cost_record["input"]["uri"] is None
    assert cost_record["input"]["sha256"] == sha(cost_call["body"]) and cost_record["input"]["size"] == len(
        cost_call["body"]
    )
    # AND the ensemble's record names its steps, their versions and where their time went
    ensemble = only_record(world, parent_id)
    assert (ensemble["kind"], ensemble["service_kind"], ensemble["status"]) == ("prediction", "ensemble", "COMPLETED")
    assert ensemble["captureData"] is None
    assert {s["name"]: (s["status"], s["version"]) for s in ensemble["steps"]} == {
        "fraud": ("COMPLETED", "1.0.0"),
        "cost": ("COMPLETED", "1.0.0"),
        "decision": ("COMPLETED", "1.0.0"),
    }
    assert next(s for s in ensemble["steps"] if s["name"] == "fraud")["model_ms"] == 3000
    # AND the lineage of GET /predictions/{id} shows the same attribution per step
    document = world.gateway.document(record(world, parent_id))
    assert document.steps is not None
    timing = {step.name: step.timing for step in document.steps}
    assert timing["fraud"] is not None and timing["fraud"].model_ms == 3000
    assert timing["fraud"].queue_ms == 1000 and timing["fraud"].overhead_ms == 1000


def test_a_skipped_step_records_that_it_never_ran() -> None:
    # GIVEN a declarative ensemble whose review step runs only for a high fraud probability
    base = claim_ensemble(
        review={
            "service": "fraud-score",
            "when": {"path": "$.steps.fraud.p", "greater_than": 0.8},
            "mapping": "$.input",
        }
    ).model_dump()
    base["ensemble"].update(definition=None, final_step=None, output="decision")
    world = make_world(
        services=[model_service("fraud-score"), Service.model_validate(base)],
        clients=[new_client("c_owner")],
        audit=True,
    )
    parent_id, execution = start(world)
    steps = world.steps()
    fraud = steps.call(parent_id, "fraud", "t-fraud", execution=execution)["prediction_id"]
    answer(world, fraud, b'{"p": 0.1}')

    # WHEN the review step's condition is false
    skipped = steps.call(parent_id, "review", "t-review", execution=execution)["prediction_id"]

    # THEN its record is SKIPPED, of the ensemble, without input, output or model time
    found = only_record(world, skipped)
    assert (found["kind"], found["status"], found["parent_id"], found["step"]) == (
        "step",
        "SKIPPED",
        parent_id,
        "review",
    )
    assert found["output"] is None
    assert found["timing"] == {"total_ms": 0, "queue_ms": None, "model_ms": None, "overhead_ms": None}


def test_a_shadow_has_its_own_record_linked_to_the_prediction_it_shadowed() -> None:
    # GIVEN fraud-score 1.0.0 serving with 1.1.0 as its shadow
    world = make_world(services=[versioned_model()], clients=[new_client("c_owner")], audit=True)
    prediction_id = submit(world)
    upload(world, prediction_id)
    world.run_shadow_dispatches()
    shadow_id = shadow_prediction_id(prediction_id, "1.1.0")
    assert record(world, shadow_id).status is PredictionStatus.RUNNING

    # WHEN both answer (the shadow after the primary)
    answer(world, prediction_id)
    answer(world, shadow_id, b'{"p": 0.95}')

    # THEN the primary's record is the decision, naming its shadow version (still running then)
    primary = only_record(world, prediction_id)
    assert primary["version"] == "1.0.0"
    assert primary["shadows"] == [{"prediction_id": None, "service": "fraud-score", "version": "1.1.0", "status": None}]
    # AND the shadow's own record says which version answered what, on the same input
    shadow = only_record(world, shadow_id)
    assert (shadow["kind"], shadow["parent_id"], shadow["version"]) == ("shadow", prediction_id, "1.1.0")
    assert shadow["endpoint"] == "fraud-score-v110"
    assert shadow["input"]["sha256"] == sha(INPUT)
    assert shadow["output"]["sha256"] == sha(b'{"p": 0.95}')


# -- the outbox: never delaying, never failing, never losing -----------------------------------
class CrashError(BaseException):
    """The process dies (a Lambda timeout, an out-of-memory kill) right after the terminal write."""


def test_a_crash_after_the_terminal_write_is_replayed_by_the_sweeper_exactly_once(world: World) -> None:
    # GIVEN a prediction whose invocation dies right after it is recorded COMPLETED
    prediction_id = submit(world)
    upload(world, prediction_id)
    notifiers = world.use_cases.notifiers

    def crash(prediction: Prediction, output: bytes | None = None) -> None:
        raise CrashError

    notifiers.notify = crash  # type: ignore[method-assign]
    with pytest.raises(CrashError):
        answer(world, prediction_id)
    del notifiers.notify  # the next invocation runs the real code again
    assert world.audit is not None and world.audit.of(prediction_id) == []
    assert record(world, prediction_id).audit_pending == "COMPLETED"

    # WHEN the sweeper runs within the grace period, then after it, then again
    world.use_cases.sweeping.sweep()
    assert world.audit.of(prediction_id) == []
    world.clock.advance(seconds=REPLAY_GRACE_SECONDS + 1)
    world.use_cases.sweeping.sweep()
    world.use_cases.sweeping.sweep()
    # AND SageMaker's notification is redelivered late
    world.use_cases.completion.finish(prediction_id, succeeded=True, output_uri="s3://gw-data/x")

    # THEN exactly one record was delivered, with its output's hash
    found = only_record(world, prediction_id)
    assert found["output"]["sha256"] == sha(OUTPUT)
    assert record(world, prediction_id).audit_pending is None


def test_an_audit_store_that_fails_neither_fails_nor_delays_the_prediction(world: World) -> None:
    # GIVEN an audit stream that refuses the next put
    assert world.audit is not None
    world.audit.fail_next = 1
    prediction_id = submit(world, notification={"webhook": {"url": HOOK}})
    upload(world, prediction_id)

    # WHEN the model answers
    answer(world, prediction_id)

    # THEN the prediction is COMPLETED and its webhook queued, its record left pending
    assert record(world, prediction_id).status is PredictionStatus.COMPLETED
    assert [job["prediction_id"] for job, _ in world.webhooks.jobs] == [prediction_id]
    assert world.audit.of(prediction_id) == []
    assert record(world, prediction_id).audit_pending == "COMPLETED"
    # AND the sweeper delivers it once the stream is back
    world.clock.advance(seconds=REPLAY_GRACE_SECONDS + 1)
    assert world.use_cases.auditing.replay() == 1
    assert only_record(world, prediction_id)["status"] == "COMPLETED"


def test_a_delivered_record_is_never_sent_again_for_a_duplicate_notification(world: World) -> None:
    prediction_id = submit(world)
    upload(world, prediction_id)
    answer(world, prediction_id)

    # WHEN the notification comes again
    world.use_cases.completion.finish(prediction_id, succeeded=True, output_uri="s3://gw-data/x")

    # THEN there is still one record
    assert len(world.audit.of(prediction_id) if world.audit else []) == 1

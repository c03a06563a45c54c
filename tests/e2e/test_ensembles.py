"""Ensembles end to end: the real state machine files on moto's Step Functions engine.

Everything goes through the HTTP API (submit, presigned POST upload, polling) of the session
runtime (tests/conftest.py): real handlers, real template wiring, real example models. Ensembles
of tests/fixtures/ensembles.json (ASL under tests/fixtures/statemachines/) cover the failure
paths; they are deactivated when the module ends so that other tests see the example catalog.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest

from conftest import ROOT, sample
from ensemble_gateway.domain.records import shadow_prediction_id

FIXTURES = ROOT / "tests" / "fixtures"
WAIT = 60.0
# always-fails' ValueError, as SageMaker reports it.
ALWAYS_FAILS_REASON = "this model always fails: it exists to test error handling"


# -- helpers -------------------------------------------------------------------------------------


def registrar(runtime: Any) -> Any:
    from ensemble_gateway.local.catalog import local_registrar

    return local_registrar(runtime)


def deployed_definition(runtime: Any, service: str) -> dict[str, Any]:
    """The definition of an ensemble's state machine as registration deployed it."""
    machine_arn = gateway().catalog.get(service).ensemble.state_machine_arn
    described = runtime.client("stepfunctions").describe_state_machine(stateMachineArn=machine_arn)
    definition: dict[str, Any] = json.loads(described["definition"])
    return definition


def gateway() -> Any:
    """The runtime's own gateway (the handlers' objects, same process)."""
    from ensemble_gateway import bootstrap

    return bootstrap.gateway()


def predict(api: Any, service: str, data: bytes | dict[str, Any]) -> dict[str, Any]:
    """Submit, upload through the presigned POST and poll until terminal."""
    body = json.dumps(data).encode() if isinstance(data, dict) else data
    document: dict[str, Any] = api.predict(service, body, "application/json", timeout=WAIT)
    return document


def steps_by_name(document: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for step in document.get("steps") or []:
        found.setdefault(step["name"], []).append(step)
    return found


def only_step(document: dict[str, Any], name: str) -> dict[str, Any]:
    steps = steps_by_name(document).get(name, [])
    assert len(steps) == 1, f"expected one child for step '{name}': {document.get('steps')}"
    return steps[0]


def moment(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def eventually(check: Callable[[], Any], timeout: float = WAIT, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy (generous timeout; no timing asserted)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            assert value, f"{what} did not happen within {timeout} s"
            return value
        time.sleep(0.2)


@pytest.fixture(scope="module")
def test_ensembles(runtime: Any) -> Iterator[dict[str, Any]]:
    """Register the test ensembles for this module, deactivate them afterwards."""
    from ensemble_gateway.admin import load_services
    from ensemble_gateway.local.catalog import apply_catalog

    # The fixture's one model service names no model_data: it reuses the hosted slow-noop endpoint.
    services = apply_catalog(runtime, FIXTURES / "ensembles.json")
    try:
        yield {s.name: s for s in services}
    finally:
        registrar(runtime).apply(
            [s.model_copy(update={"active": False}) for s in load_services(FIXTURES / "ensembles.json")]
        )


# -- the parallel DAG ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sample_name", "decision"),
    [
        ("routine-repair.json", "repair"),
        ("write-off.json", "write-off"),
        ("suspicious-refer.json", "refer"),
    ],
)
def test_vehicle_claim_runs_the_parallel_dag_and_decides(api: Any, sample_name: str, decision: str) -> None:
    # GIVEN a vehicle claim with its photo
    claim = sample("vehicle-claim", sample_name)

    # WHEN it is predicted by the vehicle-claim ensemble
    document = predict(api, "vehicle-claim", claim)

    # THEN it completes with the decision the sample was written for
    assert document["status"] == "COMPLETED", document
    output = json.loads(api.download(document))
    assert output["result"]["decision"] == decision, output["result"]
    assert set(output["steps"]) == {"damage", "cost", "fraud", "decision"}
    assert output["steps"]["decision"] == output["result"]
    # AND the lineage lists each step once: its service, child prediction, status, times, model
    expected = {
        "damage": "damage-severity",
        "cost": "repair-cost",
        "fraud": "fraud-score",
        "decision": "claim-decision",
    }
    lineage = {name: only_step(document, name) for name in expected}
    assert len(document["steps"]) == 4
    for name, service in expected.items():
        step = lineage[name]
        assert step["service"] == service
        assert step["status"] == "COMPLETED"
        assert step["prediction_id"] and step["prediction_id"] != document["prediction_id"]
        assert step["started_at"] and step["finished_at"]
        assert moment(step["started_at"]) <= moment(step["finished_at"])
        assert step["model"]["endpoint"] == service
        assert step["model"]["version"].startswith("1.0.0")
        assert step["error"] is None
    # AND decision started only after the three parallel steps had finished
    decided = moment(lineage["decision"]["started_at"])
    for name in ("damage", "cost", "fraud"):
        assert moment(lineage[name]["started_at"]) < decided
        assert moment(lineage[name]["finished_at"]) <= decided


# -- dynamic fan-out -----------------------------------------------------------------------------


def test_complaint_fan_out_follows_the_catalog_without_a_redeploy(api: Any, runtime: Any) -> None:
    # GIVEN complaint-triage with the default catalog (two active classifiers of its task)
    from ensemble_gateway.domain.models import Service

    complaint = sample("complaint-triage", "card-fraud.json")
    machines = runtime.client("stepfunctions")
    arn = gateway().catalog.get("complaint-triage").ensemble.state_machine_arn
    deployed = machines.describe_state_machine(stateMachineArn=arn)["definition"]

    # WHEN a complaint is triaged
    before = predict(api, "complaint-triage", complaint)

    # THEN the classify step ran both classifiers
    assert before["status"] == "COMPLETED", before
    assert sorted(s["service"] for s in steps_by_name(before)["classify"]) == ["triage-issue", "triage-product"]

    # WHEN a third classifier of the task is added to the catalog (an existing endpoint, new service)
    extra = Service.model_validate(
        {
            "name": "triage-product-v2",
            "kind": "model",
            "version": "2.0.0",
            "content_types": ["application/json", "text/plain"],
            "tasks": ["complaint-classification"],
            "model": {"endpoint_name": "triage-product", "invocation_timeout_seconds": 300},
        }
    )
    registrar(runtime).apply([extra])
    try:
        after = predict(api, "complaint-triage", complaint)
    finally:
        registrar(runtime).apply([extra.model_copy(update={"active": False})])

    # THEN the next prediction fans out to three classifiers, its output has all three...
    assert after["status"] == "COMPLETED", after
    classify = steps_by_name(after)["classify"]
    assert sorted(s["service"] for s in classify) == ["triage-issue", "triage-product", "triage-product-v2"]
    assert all(s["status"] == "COMPLETED" for s in classify)
    assert len({s["prediction_id"] for s in classify}) == 3
    v2 = next(s for s in classify if s["service"] == "triage-product-v2")
    assert v2["model"] == {"endpoint": "triage-product", "version": "2.0.0"}
    result = json.loads(api.download(after))["result"]
    assert set(result) == {"triage-issue", "triage-product", "triage-product-v2"}
    assert result["triage-product-v2"]["label"] == result["triage-product"]["label"] == "credit-card"
    # ... and the state machine was not touched
    assert machines.describe_state_machine(stateMachineArn=arn)["definition"] == deployed


# -- conditional step ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sample_name", "escalated"),
    [("bereaved-mortgage-fees.json", True), ("card-fraud.json", False)],
)
def test_complaint_escalation_runs_only_for_vulnerable_customers(api: Any, sample_name: str, escalated: bool) -> None:
    # GIVEN a complaint from a vulnerable (bereaved) customer, or from one who is not
    complaint = sample("complaint-triage", sample_name)

    # WHEN it is triaged
    document = predict(api, "complaint-triage", complaint)

    # THEN the escalate step ran exactly when the vulnerability step said so
    assert document["status"] == "COMPLETED", document
    output = json.loads(api.download(document))
    label = output["steps"]["vulnerability"]["label"]
    assert label == ("vulnerable" if escalated else "not-vulnerable"), output["steps"]["vulnerability"]
    names = steps_by_name(document)
    if escalated:
        assert only_step(document, "escalate")["status"] == "COMPLETED"
        assert only_step(document, "escalate")["service"] == "triage-escalation"
        assert "escalate" in output["steps"]
    else:
        # A `when` that is false: the step is SKIPPED in the lineage, and contributes null
        assert only_step(document, "escalate")["status"] == "SKIPPED"
        assert output["steps"]["escalate"] is None
    assert only_step(document, "vulnerability")["status"] == "COMPLETED"
    assert len(names["classify"]) == 2


def test_the_shipped_ensembles_are_declarative_and_generated(runtime: Any) -> None:
    # GIVEN the example catalog: vehicle-claim and complaint-triage name no ASL file
    catalog = json.loads((ROOT / "examples" / "catalog.json").read_text())
    ensembles = {s["name"]: s["ensemble"] for s in catalog if s["kind"] == "ensemble"}
    assert set(ensembles) == {"vehicle-claim", "complaint-triage"}
    assert all("definition" not in spec for spec in ensembles.values())

    # WHEN their deployed state machines are read
    claim = deployed_definition(runtime, "vehicle-claim")

    # THEN vehicle-claim runs damage, cost and fraud in one Parallel, then decision, with no
    # Retry on any callback task and a bounded wait on each
    parallel = next(state for state in claim["States"].values() if state["Type"] == "Parallel")
    first_steps = {
        state["Parameters"]["Payload"]["step"]
        for branch in parallel["Branches"]
        for state in branch["States"].values()
        if state["Type"] == "Task"
    }
    assert first_steps == {"damage", "cost", "fraud"}

    def tasks(machine: dict[str, Any]) -> Iterator[dict[str, Any]]:
        for state in machine["States"].values():
            if state["Type"] == "Task" and state["Resource"].endswith("waitForTaskToken"):
                yield state
            for branch in state.get("Branches", []):
                yield from tasks(branch)
            if "ItemProcessor" in state:
                yield from tasks(state["ItemProcessor"])

    for machine in (claim, deployed_definition(runtime, "complaint-triage")):
        for task in tasks(machine):
            assert "Retry" not in task and task["TimeoutSeconds"] > 0


def test_a_declarative_diamond_skips_on_a_missing_value_and_maps_its_output(
    api: Any, test_ensembles: dict[str, Any]
) -> None:
    # GIVEN a declarative ensemble: first → left, right → join; 'missing' reads a value first never
    # returns, 'big' runs only for values over 10; the output combines steps and the request
    # WHEN it runs on a small value
    document = predict(api, "test-declarative-when", {"value": 3})

    # THEN it completes (a missing value makes the condition false, never a runtime error)
    assert document["status"] == "COMPLETED", document
    statuses = {name: [s["status"] for s in found] for name, found in steps_by_name(document).items()}
    assert statuses == {
        "first": ["COMPLETED"],
        "left": ["COMPLETED"],
        "right": ["COMPLETED"],
        "missing": ["SKIPPED"],
        "big": ["SKIPPED"],
        "join": ["COMPLETED"],
    }
    # AND join saw both branches and the skipped step's default; the output mapping built the result
    output = json.loads(api.download(document))
    assert output["result"]["joined"]["left"] == "left" and output["result"]["joined"]["right"] == "right"
    assert output["result"]["joined"]["missing"] == {"skipped": True}
    assert output["result"]["big"] is None
    assert output["result"]["value"] == 3
    # AND join started only after left and right finished
    steps = {s["name"]: s for s in document["steps"]}
    assert moment(steps["join"]["started_at"]) >= moment(steps["left"]["finished_at"])
    assert moment(steps["join"]["started_at"]) >= moment(steps["right"]["finished_at"])

    # WHEN it runs on a big value THEN 'big' runs
    document = predict(api, "test-declarative-when", {"value": 42})
    assert only_step(document, "big")["status"] == "COMPLETED"
    assert json.loads(api.download(document))["result"]["big"]["echo"] == {"big": 42}


def test_the_hand_written_escape_hatch_still_runs(api: Any, test_ensembles: dict[str, Any]) -> None:
    # GIVEN the hand-written complaint-triage ASL (guarded Choice, ItemProcessor Map)
    complaint = sample("complaint-triage", "bereaved-mortgage-fees.json")

    # WHEN a vulnerable customer's complaint is triaged by it
    document = predict(api, "test-triage-asl", complaint)

    # THEN the Choice escalates and the fan-out runs both classifiers
    assert document["status"] == "COMPLETED", document
    assert only_step(document, "escalate")["status"] == "COMPLETED"
    assert len(steps_by_name(document)["classify"]) == 2


def test_a_transient_lambda_error_is_retried_and_each_model_is_called_once(
    runtime: Any, api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN get-transform-call failing with Lambda's own errors: the 'fraud' step's first call is
    # refused before it runs, the 'damage' step's first call runs but its answer is lost
    injected: list[tuple[str, str]] = []

    def fault(function_name: str, event: Any) -> tuple[str, bool] | None:
        if not isinstance(event, dict) or event.get("action") != "call" or event.get("attempt") != 1:
            return None
        if event.get("step") == "fraud":
            injected.append(("fraud", "ServiceException"))
            return ("ServiceException", False)
        if event.get("step") == "damage":
            injected.append(("damage", "TooManyRequestsException"))
            return ("TooManyRequestsException", True)
        return None

    calls: list[str] = []
    submit = runtime.sagemaker._submit

    def counting_submit(pool: Any, job: Any) -> None:
        calls.append(job.inference_id)
        submit(pool, job)

    monkeypatch.setattr(runtime.lambda_invoke, "fault", fault)
    monkeypatch.setattr(runtime.sagemaker, "_submit", counting_submit)

    # WHEN a vehicle claim is predicted
    document = predict(api, "vehicle-claim", sample("vehicle-claim", "write-off.json"))

    # THEN both faults were injected, the ensemble still decided, one child per step
    assert sorted(injected) == [("damage", "TooManyRequestsException"), ("fraud", "ServiceException")]
    assert document["status"] == "COMPLETED", document
    assert json.loads(api.download(document))["result"]["decision"] == "write-off"
    children = {s["name"]: s["prediction_id"] for s in document["steps"]}
    assert sorted(children) == ["cost", "damage", "decision", "fraud"]
    # AND every model was called exactly once (beside the fraud step's shadow: the example
    # catalog's fraud-score 1.1.0 gets a copy of every fraud-score input, on its own)
    shadows = {shadow_prediction_id(children["fraud"], "1.1.0")}
    assert sorted(call for call in calls if call not in shadows) == sorted(children.values())
    assert len(calls) - len(children) <= len(shadows)


# -- nested ensemble -----------------------------------------------------------------------------


def test_an_ensemble_can_call_an_ensemble(api: Any, test_ensembles: dict[str, Any]) -> None:
    # GIVEN test-nested-claim: step 'claim' runs vehicle-claim on the raw request, 'notify' echoes
    # the nested decision
    claim = sample("vehicle-claim", "write-off.json")

    # WHEN a claim is predicted by it
    document = predict(api, "test-nested-claim", claim)

    # THEN it completes with the nested ensemble's decision passed on to the second step
    assert document["status"] == "COMPLETED", document
    output = json.loads(api.download(document))
    assert output["result"]["echo"] == {"decision": "write-off"}
    assert output["steps"]["claim"]["result"]["decision"] == "write-off"
    # AND the parent's lineage shows both steps, the first being a vehicle-claim prediction
    nested = only_step(document, "claim")
    assert nested["service"] == "vehicle-claim" and nested["status"] == "COMPLETED"
    assert only_step(document, "notify")["status"] == "COMPLETED"
    assert [s["name"] for s in document["steps"]] == ["claim", "notify"]
    # AND the nested prediction has its own steps
    child = gateway().predictions.get(nested["prediction_id"])
    assert child is not None and child.parent_id == document["prediction_id"] and child.step == "claim"
    inner = gateway().document(child)
    assert inner.status.value == "COMPLETED"
    assert inner.steps is not None
    assert sorted(s.name for s in inner.steps) == ["cost", "damage", "decision", "fraud"]
    assert all(s.status.value == "COMPLETED" for s in inner.steps)


# -- failures ------------------------------------------------------------------------------------


def test_a_failing_step_fails_the_ensemble_naming_the_step(api: Any, test_ensembles: dict[str, Any]) -> None:
    # GIVEN test-step-fails, whose first step calls always-fails
    # WHEN a request is predicted
    document = predict(api, "test-step-fails", {"anything": 1})

    # THEN the ensemble FAILED naming the step and the model's reason
    assert document["status"] == "FAILED", document
    assert document["error"]["step"] == "first"
    assert document["error"]["code"] == "ModelError"
    assert ALWAYS_FAILS_REASON in document["error"]["message"]
    # AND the failed step is in the lineage, the second never ran, and no child is left RUNNING
    first = only_step(document, "first")
    assert first["status"] == "FAILED" and ALWAYS_FAILS_REASON in first["error"]["message"]
    assert "second" not in steps_by_name(document)
    assert all(s["status"] != "RUNNING" for s in document["steps"])


def test_an_optional_failing_step_lets_the_ensemble_complete_with_its_default(
    api: Any, test_ensembles: dict[str, Any]
) -> None:
    # GIVEN test-optional-step: an optional always-fails step with a default, then echo of it
    # WHEN a request is predicted
    document = predict(api, "test-optional-step", {"anything": 1})

    # THEN the ensemble completes, and the next step received the declared default
    assert document["status"] == "COMPLETED", document
    output = json.loads(api.download(document))
    assert output["result"]["echo"] == {"seen": {"label": "unknown"}}
    assert output["steps"]["first"] == {"label": "unknown"}
    # AND the lineage still reports the optional step as FAILED with its reason
    first = only_step(document, "first")
    assert first["status"] == "FAILED" and ALWAYS_FAILS_REASON in first["error"]["message"]
    assert only_step(document, "second")["status"] == "COMPLETED"
    assert document["error"] is None


def test_a_mapping_that_finds_nothing_fails_the_ensemble_naming_step_key_and_path(
    api: Any, test_ensembles: dict[str, Any]
) -> None:
    # GIVEN test-mapping-error, whose first step maps {"amount": "$.input.claim.amount"}
    # WHEN a request without that field is predicted
    document = predict(api, "test-mapping-error", {"claim": {"currency": "EUR"}})

    # THEN the ensemble FAILED with a mapping error naming the step, the key and the path
    assert document["status"] == "FAILED", document
    error = document["error"]
    assert error["step"] == "first"
    assert error["code"] == "MappingError"
    assert "key 'amount'" in error["message"]
    assert "path '$.input.claim.amount'" in error["message"]
    assert "no value" in error["message"]
    # AND no model ran: the failed step has no input, the second never started
    assert only_step(document, "first")["status"] == "FAILED"
    assert "second" not in steps_by_name(document)


def test_a_step_timeout_fails_the_ensemble_naming_the_step(
    api: Any, runtime: Any, test_ensembles: dict[str, Any]
) -> None:
    # GIVEN test-parallel-timeout: in one Parallel, 'slow' (slow-noop for 5 s, callback task
    # TimeoutSeconds 2 in its ASL) beside 'steady' (slow-noop for 3.5 s, the registered timeout)
    definition = deployed_definition(runtime, "test-parallel-timeout")
    branches = definition["States"]["Both"]["Branches"]
    assert branches[0]["States"]["Slow"]["TimeoutSeconds"] == 2  # explicit: kept at registration
    assert (
        branches[1]["States"]["Steady"]["TimeoutSeconds"] == 600 + 300 + 60
    )  # slow-noop: queue time + timeout + margin

    # WHEN a request is predicted
    document = predict(api, "test-parallel-timeout", {})

    # THEN the ensemble FAILED with a Timeout naming the step that timed out
    assert document["status"] == "FAILED", document
    assert document["error"]["code"] == "Timeout"
    assert document["error"]["step"] == "slow"
    slow = only_step(document, "slow")
    assert slow["status"] == "FAILED" and slow["error"]["code"] == "Timeout"
    # AND the step that did not time out is not blamed: it finishes on its own
    steady_id = only_step(document, "steady")["prediction_id"]
    steady = eventually(
        lambda: (c := gateway().predictions.get(steady_id)) and c.status.is_terminal and c,
        what="the steady step finishing",
    )
    assert steady.status.value == "COMPLETED" and steady.error is None
    # AND the late answer of the timed-out model changes nothing: no child left RUNNING
    assert runtime.sagemaker.wait_idle(WAIT)
    runtime.wait_idle(WAIT)
    final = api.status(document["prediction_id"])
    assert final["status"] == "FAILED" and final["updated_at"] == document["updated_at"]
    assert {s["name"]: s["status"] for s in final["steps"]} == {"slow": "FAILED", "steady": "COMPLETED"}


def test_a_step_timeout_inside_a_fan_out_fails_the_ensemble_naming_the_step(
    api: Any, runtime: Any, test_ensembles: dict[str, Any]
) -> None:
    # GIVEN test-fan-out-timeout: a Map over the catalog task 'test-slow-fan-out' (one member,
    # slow-noop asked to sleep 5 s) whose callback task has TimeoutSeconds 2 in its ASL
    definition = deployed_definition(runtime, "test-fan-out-timeout")
    assert definition["States"]["Spread"]["Iterator"]["States"]["SpreadOne"]["TimeoutSeconds"] == 2

    # WHEN a request is predicted
    document = predict(api, "test-fan-out-timeout", {})

    # THEN the ensemble FAILED with a Timeout naming the fan-out step (not a States.Runtime error)
    assert document["status"] == "FAILED", document
    assert document["error"]["code"] == "Timeout"
    assert document["error"]["step"] == "spread"
    member = only_step(document, "spread")
    assert member["service"] == "test-slow-member"
    assert member["status"] == "FAILED" and member["error"]["code"] == "Timeout"
    # AND the member's late answer changes nothing
    assert runtime.sagemaker.wait_idle(WAIT)
    runtime.wait_idle(WAIT)
    final = api.status(document["prediction_id"])
    assert final["status"] == "FAILED" and final["updated_at"] == document["updated_at"]
    assert [s["status"] for s in final["steps"]] == ["FAILED"]


# -- duplicate notifications ---------------------------------------------------------------------


@pytest.fixture
def success_messages(runtime: Any) -> Iterator[Callable[[str], dict[str, Any]]]:
    """A queue of the test's own subscribed to the SuccessTopic: every success notification."""
    sqs, sns = runtime.client("sqs"), runtime.client("sns")
    url = sqs.create_queue(QueueName="test-ensembles-success-capture")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    topic = runtime.stack.outputs["SuccessTopicArn"]
    subscription = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)["SubscriptionArn"]
    seen: dict[str, dict[str, Any]] = {}

    def find(inference_id: str) -> dict[str, Any]:
        def look() -> dict[str, Any] | None:
            for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
                notification = json.loads(json.loads(message["Body"])["Message"])
                seen[notification["inferenceId"]] = notification
            return seen.get(inference_id)

        found: dict[str, Any] = eventually(look, what=f"the notification of {inference_id}")
        return found

    try:
        yield find
    finally:
        sns.unsubscribe(SubscriptionArn=subscription)
        sqs.delete_queue(QueueUrl=url)


def queue_depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def test_a_duplicate_step_notification_changes_nothing(
    api: Any, runtime: Any, test_ensembles: dict[str, Any], success_messages: Callable[[str], dict[str, Any]]
) -> None:
    # GIVEN a completed ensemble (an async model, then echo of its output) and the success
    # notification SageMaker async published for its first step
    document = predict(api, "test-async-then-echo", {"hello": "world"})
    assert document["status"] == "COMPLETED", document
    first = only_step(document, "first")
    notification = success_messages(first["prediction_id"])
    assert notification["invocationStatus"] == "Completed"
    child_before = gateway().predictions.get(first["prediction_id"])
    assert child_before is not None and child_before.callback.kind.value == "task_token"
    sqs = runtime.client("sqs")
    notifications = runtime.stack.functions["NotificationsFunction"]
    deliveries = sqs.get_queue_url(QueueName=f"{notifications.function_name}-sns-deliveries")["QueueUrl"]
    dead_letters = sqs.get_queue_url(QueueName=notifications.dead_letter_arn.rsplit(":", 1)[-1])["QueueUrl"]
    dead_before = queue_depth(sqs, dead_letters)

    # WHEN the same notification is published again (SNS and SageMaker deliver at least once)
    runtime.client("sns").publish(TopicArn=runtime.stack.outputs["SuccessTopicArn"], Message=json.dumps(notification))
    # ... and the notifications function has taken it off its queue (a failure would put it back)
    eventually(lambda: queue_depth(sqs, deliveries) == 0, what="the duplicate being handled")

    # THEN it was handled without error (nothing dead-lettered) ...
    assert queue_depth(sqs, dead_letters) == dead_before
    # ... the parent and the child are unchanged ...
    again = api.status(document["prediction_id"])
    assert again["status"] == "COMPLETED"
    assert again["updated_at"] == document["updated_at"]
    assert again["steps"] == document["steps"]
    child_after = gateway().predictions.get(first["prediction_id"])
    assert child_after is not None
    assert child_after.status == child_before.status
    assert child_after.updated_at == child_before.updated_at
    assert child_after.output_uri == child_before.output_uri
    # ... and answering the step's task token again is a stale answer, ignored (not an error)
    assert gateway().workflows.succeed_task(child_before.callback.target, {"duplicate": True}) is False


@pytest.mark.parametrize(("request_body", "flagged"), [({"other": 1}, False), ({"flagged": True}, True)])
def test_a_guarded_choice_takes_the_default_on_a_missing_value(
    api: Any, test_ensembles: dict[str, Any], request_body: dict[str, Any], flagged: bool
) -> None:
    # GIVEN a hand-written Choice on $.steps.first.output.echo.flagged, guarded by IsPresent
    # WHEN the first step's output has no such value, or has it true
    document = predict(api, "test-guarded-choice", request_body)

    # THEN a missing value takes the Default (no States.Runtime, no prediction left RUNNING), and a
    # present one the matching branch
    assert document["status"] == "COMPLETED", document
    assert ("flagged" in steps_by_name(document)) is flagged

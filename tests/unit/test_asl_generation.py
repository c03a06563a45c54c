"""The state machine generated for a declarative ensemble: its contract with get-transform-call,
its layout, and that the ASL rules, the gateway's rules, ``asl.analyse`` and moto all accept it.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator
from typing import Any

import pytest

from ensemble_gateway.domain.asl import analyse, completing_output_steps, final_step, substitute
from ensemble_gateway.domain.asl_generation import (
    TRANSIENT_LAMBDA_ERRORS,
    Run,
    Together,
    generate_definition,
    schedule,
)
from ensemble_gateway.domain.asl_rules import check_definition, check_gateway_rules
from ensemble_gateway.domain.ensemble_dag import EnsembleDag, infer_dag
from ensemble_gateway.domain.errors import CatalogValidationError
from ensemble_gateway.domain.models import EnsembleSpec

FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:get-transform-call"
PLACEHOLDER = "${GetTransformCallFunctionArn}"


def call(service: str, mapping: Any = "$.input", **extra: Any) -> dict[str, Any]:
    return {"service": service, "mapping": mapping, **extra}


VEHICLE = {
    "damage": call("damage-severity", {"$bytes": "$.input.photo", "content_type": "image/png"}),
    "cost": call("repair-cost", {"claim": "$.input.claim"}),
    "fraud": call("fraud-score", {"claim": "$.input.claim"}),
    "decision": call(
        "claim-decision",
        {"severity": "$.steps.damage.severity", "cost": "$.steps.cost.c", "fraud": "$.steps.fraud.p"},
    ),
}
TRIAGE = {
    "vulnerability": call("triage-vulnerable", {"text": "$.input.text"}),
    "escalate": call(
        "triage-escalation",
        {"text": "$.input.text"},
        when={"path": "$.steps.vulnerability.label", "equals": "vulnerable"},
    ),
    "classify": {"fan_out": {"task": "complaint-classification"}, "mapping": {"text": "$.input.text"}},
}
TRIAGE_OUTPUT = {"vulnerable": "$.steps.vulnerability", "escalation": "$.steps.escalate", "labels": "$.steps.classify"}

# name: (steps, output, the final step asl.final_step must find)
SHAPES: dict[str, tuple[dict[str, Any], Any, str | None]] = {
    "vehicle-claim": (VEHICLE, "decision", "decision"),
    "complaint-triage": (TRIAGE, TRIAGE_OUTPUT, None),
    "chain": ({"a": call("s"), "b": call("s", {"x": "$.steps.a"}), "c": call("s", {"x": "$.steps.b"})}, None, "c"),
    "diamond": (
        {
            "a": call("s"),
            "b": call("s", {"x": "$.steps.a"}),
            "c": call("s", {"x": "$.steps.a"}),
            "d": call("s", {"b": "$.steps.b", "c": "$.steps.c"}),
        },
        None,
        "d",
    ),
    "fan-out-last": (
        {"prepare": call("s"), "classify": {"fan_out": {"task": "t"}, "mapping": {"p": "$.steps.prepare"}}},
        None,
        "classify",
    ),
    "fan-out-alone": ({"classify": {"fan_out": {"task": "t"}}}, None, "classify"),
    "fan-out-in-a-branch": (
        {
            "classify": {"fan_out": {"task": "t"}},
            "a": call("s"),
            "b": call("s", {"x": "$.steps.a"}),
            "summary": call("s", {"c": "$.steps.classify", "b": "$.steps.b"}),
        },
        None,
        "summary",
    ),
    "when-and-optional": (
        {
            **VEHICLE,
            "fraud": call("fraud-score", {"claim": "$.input.claim"}, optional=True, default={"p": 0}),
            "review": call("claim-review", when={"path": "$.steps.decision.decision", "equals": "refer"}),
        },
        None,
        "review",
    ),
    "nested-ensemble-step": (
        {"claim": call("vehicle-claim", {"claim": "$.input.claim"}), "notify": call("s", after=["claim"])},
        "claim",
        None,
    ),
    "output-step-beside-another-sink": (
        {**VEHICLE, "audit": call("audit", after=["decision"])},
        "decision",
        None,
    ),
    "single-step": ({"only": call("s")}, None, "only"),
    "n-shape": (
        {
            "a": call("s"),
            "b": call("s"),
            "c": call("s", {"a": "$.steps.a", "b": "$.steps.b"}),
            "d": call("s", {"b": "$.steps.b"}),
        },
        {"c": "$.steps.c", "d": "$.steps.d"},
        None,
    ),
}


def build(steps: dict[str, Any], output: Any = None, name: str = "claims") -> tuple[EnsembleSpec, EnsembleDag, dict]:
    spec = EnsembleSpec.model_validate({"steps": steps, "output": output})
    dag = infer_dag(name, spec)
    timeouts = {step: 100 + index for index, step in enumerate(spec.steps)}
    return spec, dag, generate_definition(name, spec, dag, lambda step: timeouts[step])


def states_of(machine: dict[str, Any], scope: str = "top") -> Iterator[tuple[str, dict[str, Any], str]]:
    """Every state with the kind of scope it is in: top, branch or map."""
    for name, state in machine["States"].items():
        yield name, state, scope
        for branch in state.get("Branches", []):
            yield from states_of(branch, "map" if scope == "map" else "branch")
        if "ItemProcessor" in state:
            yield from states_of(state["ItemProcessor"], "map")


def step_tasks(definition: dict[str, Any], step: str) -> list[tuple[str, dict[str, Any], str]]:
    return [
        (name, state, scope)
        for name, state, scope in states_of(definition)
        if state.get("Type") == "Task" and state["Parameters"]["Payload"].get("step") == step
    ]


def deployable(definition: dict[str, Any]) -> str:
    return substitute(json.dumps(definition), {"GetTransformCallFunctionArn": FUNCTION_ARN})


# -- every shape is valid ------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_generated_definitions_pass_the_asl_and_gateway_rules_and_analyse(shape: str):
    # GIVEN a declarative ensemble of that shape
    steps, output, expected_final = SHAPES[shape]

    # WHEN its state machine is generated
    _, dag, definition = build(steps, output)

    # THEN the specification's rules and the gateway's find nothing
    assert check_definition(definition) == []
    assert check_gateway_rules(definition) == []
    # ... asl.analyse accepts it (attempt copies included) and sees every step after its dependencies
    analysis = analyse(definition)
    assert set(analysis.steps) == set(steps)
    for step in steps:
        assert analysis.upstream[step] >= dag.ancestors[step], step
        assert analysis.steps[step].in_map == (steps[step].get("fan_out") is not None)
    # ... and the final step is found exactly where the output step's success ends the ensemble
    assert final_step(definition) == expected_final


@pytest.mark.parametrize("shape", SHAPES)
def test_moto_s_asl_parser_accepts_every_generated_definition(shape: str):
    # GIVEN a generated definition with the function ARN substituted
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    steps, output, _ = SHAPES[shape]
    text = deployable(build(steps, output)[2])

    # WHEN / THEN moto's parser (the engine of the local runtime) builds its program without error
    program, _tree = AmazonStateLanguageParser.parse(text)
    assert program is not None


# -- the explicit shapes ---------------------------------------------------------------------------------


def test_vehicle_claim_runs_three_branches_then_the_decision_which_ends_the_execution():
    # GIVEN the vehicle claim
    # WHEN its machine is generated
    _, _, definition = build(VEHICLE, "decision")
    states = definition["States"]

    # THEN a Parallel with one branch per independent step comes first ...
    parallel = states[definition["StartAt"]]
    assert parallel["Type"] == "Parallel"
    assert parallel["ResultPath"] is None
    assert parallel["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "FailEnsemble"}]
    assert [branch["StartAt"] for branch in parallel["Branches"]] == ["cost", "damage", "fraud"]
    # ... then the decision's task, which ends the execution (its success finishes the ensemble):
    # no Complete task, in every attempt
    decision = states[parallel["Next"]]
    assert decision["Parameters"]["Payload"]["step"] == "decision"
    assert decision["Parameters"]["Payload"]["finishes_ensemble"] is True
    attempts = [state for _, state, _ in states_of(definition) if _step_of(state) == "decision"]
    assert len(attempts) == 3 and all(state["End"] is True and "Next" not in state for state in attempts)
    assert "Complete" not in states and "CompleteFailed" not in states
    assert final_step(definition) == "decision"
    # ... four steps in five state transitions: the Parallel, its three tasks, the decision
    entered = 1 + len(parallel["Branches"]) + 1
    assert entered / len(VEHICLE) == 1.25


@pytest.mark.parametrize(
    "extra", [{"optional": True, "default": {}}, {"when": {"path": "$.steps.fraud.p", "greater_than": 0.1}}]
)
def test_an_output_step_that_may_end_without_output_keeps_the_complete_task(extra: dict[str, Any]) -> None:
    # GIVEN the vehicle claim whose decision is optional, or runs only on a condition
    steps = {**VEHICLE, "decision": {**VEHICLE["decision"], **extra}}
    # WHEN its machine is generated
    _, _, definition = build(steps, "decision")
    states = definition["States"]
    # THEN the decision goes on to Complete (its success is not the only way on)
    decision = states[states[definition["StartAt"]]["Next"]]
    assert decision["Next"] == "Complete"
    assert "finishes_ensemble" not in decision["Parameters"]["Payload"]
    assert states["Complete"]["Parameters"]["Payload"]["output_step"] == "decision"


def _step_of(state: dict[str, Any]) -> str | None:
    payload = (state.get("Parameters") or {}).get("Payload") or {}
    return payload.get("step") if payload.get("action") == "call" else None


def test_complaint_triage_runs_the_chain_beside_the_fan_out_without_a_choice():
    # GIVEN the complaint triage (escalate when vulnerable; classify over a task; output mapping)
    # WHEN its machine is generated
    _, _, definition = build(TRIAGE, TRIAGE_OUTPUT)
    states = definition["States"]

    # THEN the independent groups are branches of one Parallel: the fan-out, and vulnerability → escalate
    parallel = states[definition["StartAt"]]
    assert parallel["Type"] == "Parallel"
    assert parallel["Next"] == "Complete"
    fan_out_branch, chain_branch = parallel["Branches"]
    fan_out = fan_out_branch["States"][fan_out_branch["StartAt"]]
    assert fan_out["Type"] == "Map"
    assert fan_out["ItemsPath"] == "$.fanout.classify"
    vulnerability = chain_branch["States"][chain_branch["StartAt"]]
    assert vulnerability["Parameters"]["Payload"]["step"] == "vulnerability"
    assert chain_branch["States"][vulnerability["Next"]]["Parameters"]["Payload"]["step"] == "escalate"
    # ... the condition is get-transform-call's: no Choice can fail on a missing path
    assert not [name for name, state, _ in states_of(definition) if state["Type"] == "Choice"]
    # ... and Complete names no output step: the output is a mapping
    assert "output_step" not in states["Complete"]["Parameters"]["Payload"]
    assert final_step(definition) is None


# -- the contract with get-transform-call -----------------------------------------------------------------


def test_a_step_task_calls_get_transform_call_with_exactly_the_agreed_payload():
    # GIVEN the vehicle claim, cost's timeout being 101 s
    # WHEN its machine is generated
    _, _, definition = build(VEHICLE, "decision")
    (name, task, _scope), *_copies = step_tasks(definition, "cost")

    # THEN the first attempt is a callback task bounded by its timeout, its result not kept in the state
    assert name == "cost"
    assert task["Resource"] == "arn:aws:states:::lambda:invoke.waitForTaskToken"
    assert task["Parameters"] == {
        "FunctionName": PLACEHOLDER,
        "Payload": {
            "action": "call",
            "step": "cost",
            "attempt": 1,
            "ensemble_prediction_id.$": "$.prediction_id",
            "task_token.$": "$$.Task.Token",
            "execution.$": "$$.Execution.Input",
        },
    }
    assert task["TimeoutSeconds"] == 101
    assert task["ResultPath"] is None
    assert "Retry" not in task
    assert task["Comment"]


@pytest.mark.parametrize("step", ["cost", "decision"])
def test_transient_lambda_errors_are_retried_by_copies_of_the_task(step: str):
    # GIVEN a step in a branch (cost) and one at the top level (decision)
    _, _, definition = build(VEHICLE, "decision")

    # WHEN the tasks of that step are listed
    tasks = step_tasks(definition, step)

    # THEN there are three attempts, none with a Retry, in one scope, differing only by attempt
    assert [state["Parameters"]["Payload"]["attempt"] for _, state, _ in tasks] == [1, 2, 3]
    assert len({scope for _, _, scope in tasks}) == 1
    scope_states = {name: state for name, state, _ in states_of(definition)}
    for index, (_name, state, _) in enumerate(tasks):
        assert "Retry" not in state
        catchers = state["Catch"]
        if index < 2:
            # Catch the transient errors → Wait (2 s, then 4 s) → the next attempt
            assert catchers[0] == {
                "ErrorEquals": list(TRANSIENT_LAMBDA_ERRORS),
                "ResultPath": "$.error",
                "Next": catchers[0]["Next"],
            }
            wait = scope_states[catchers[0]["Next"]]
            assert wait["Type"] == "Wait"
            assert wait["Seconds"] == (2, 4)[index]
            assert wait["Next"] == tasks[index + 1][0]
            catchers = catchers[1:]
        # ... and every attempt sends timeouts and other failures to the step's handlers
        assert [catcher["ErrorEquals"] for catcher in catchers] == [["States.Timeout"], ["States.ALL"]]
        assert all(catcher["ResultPath"] == "$.error" for catcher in catchers)
        # ... and every attempt goes on to the same state on success
        assert state.get("Next") == tasks[0][1].get("Next")
        assert state.get("End") == tasks[0][1].get("End")


def test_a_top_level_failure_is_shaped_by_a_pass_state_for_fail_ensemble():
    # GIVEN the vehicle claim's decision step, at the top level
    _, _, definition = build(VEHICLE, "decision")
    states = definition["States"]
    (_, task, _), *_ = step_tasks(definition, "decision")
    timed_out, failed = (catcher["Next"] for catcher in task["Catch"][1:])

    # WHEN / THEN a Pass puts structured data in $.error and goes to FailEnsemble
    for name, error in ((timed_out, "StepTimedOut"), (failed, "StepFailed")):
        assert states[name]["Type"] == "Pass"
        assert states[name]["Parameters"] == {"Error": error, "Cause": '{"step": "decision"}', "Caught.$": "$.error"}
        assert json.loads(states[name]["Parameters"]["Cause"]) == {"step": "decision"}
        assert states[name]["ResultPath"] == "$.error"
        assert states[name]["Next"] == "FailEnsemble"


@pytest.mark.parametrize(("shape", "step"), [("vehicle-claim", "cost"), ("complaint-triage", "classify")])
def test_a_failure_inside_a_branch_or_a_map_is_a_fail_state_with_static_json_cause(shape: str, step: str):
    # GIVEN a step inside a Parallel branch or a Map processor
    steps, output, _ = SHAPES[shape]
    _, _, definition = build(steps, output)
    scope_states = {name: state for name, state, _ in states_of(definition)}
    (_, task, scope), *_ = step_tasks(definition, step)
    assert scope in ("branch", "map")
    timed_out, failed = (catcher["Next"] for catcher in task["Catch"][-2:])

    # WHEN / THEN a Fail raises a custom error the top-level Parallel/Map catches into $.error
    assert scope_states[timed_out] == {
        "Type": "Fail",
        "Comment": scope_states[timed_out]["Comment"],
        "Error": "StepTimedOut",
        "Cause": json.dumps({"step": step}),
    }
    assert scope_states[failed]["Error"] == "StepFailed"
    assert scope_states[failed]["Cause"] == '{"step": "' + step + '"}'
    top = [state for state in definition["States"].values() if state["Type"] in ("Parallel", "Map")]
    assert all(
        state["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "FailEnsemble"}]
        for state in top
    )


def test_nested_parallels_and_maps_in_a_branch_have_no_catch_of_their_own():
    # GIVEN a fan-out inside a branch (its Map is not at the top level)
    steps, output, _ = SHAPES["fan-out-in-a-branch"]
    _, _, definition = build(steps, output)

    # WHEN / THEN only top-level Parallel/Map states catch: inner ones let the custom error through
    for _, state, scope in states_of(definition):
        if state["Type"] in ("Parallel", "Map"):
            assert ("Catch" in state) == (scope == "top")


def test_a_fan_out_step_is_a_map_over_its_members_in_the_current_form():
    # GIVEN the complaint triage's classify step (timeout 102 s)
    _, _, definition = build(TRIAGE, TRIAGE_OUTPUT)
    maps = [state for _, state, _ in states_of(definition) if state["Type"] == "Map"]

    # WHEN / THEN
    (fan_out,) = maps
    assert fan_out["ItemsPath"] == "$.fanout.classify"
    assert fan_out["ItemSelector"] == {"service.$": "$$.Map.Item.Value.service", "prediction_id.$": "$.prediction_id"}
    assert fan_out["ItemProcessor"]["ProcessorConfig"] == {"Mode": "INLINE"}
    assert "Iterator" not in fan_out
    assert "Parameters" not in fan_out
    assert fan_out["MaxConcurrency"] == 0
    assert fan_out["ResultPath"] is None
    member = fan_out["ItemProcessor"]["States"][fan_out["ItemProcessor"]["StartAt"]]
    assert member["Parameters"]["Payload"] == {
        "action": "call",
        "step": "classify",
        "attempt": 1,
        "ensemble_prediction_id.$": "$.prediction_id",
        "task_token.$": "$$.Task.Token",
        "execution.$": "$$.Execution.Input",
        "service.$": "$.service",
    }
    assert member["TimeoutSeconds"] == 102


def test_complete_fail_ensemble_and_failed_end_every_machine():
    # GIVEN a chain whose output is a mapping (so Complete computes it)
    chain = {"a": call("s"), "b": call("s", {"x": "$.steps.a"})}
    _, _, definition = build(chain, {"first": "$.steps.a", "second": "$.steps.b"})
    states = definition["States"]
    retry = [{"ErrorEquals": list(TRANSIENT_LAMBDA_ERRORS), "IntervalSeconds": 1, "MaxAttempts": 3, "BackoffRate": 2.0}]

    # WHEN / THEN Complete is a plain invoke, retried (idempotent), its failure shaped and sent on
    complete = states["Complete"]
    assert complete["Resource"] == "arn:aws:states:::lambda:invoke"
    assert complete["Parameters"] == {
        "FunctionName": PLACEHOLDER,
        "Payload": {
            "action": "complete",
            "ensemble_prediction_id.$": "$.prediction_id",
            "execution.$": "$$.Execution.Input",
        },
    }
    assert complete["ResultPath"] is None
    assert complete["Retry"] == retry
    assert complete["End"] is True
    (catcher,) = complete["Catch"]
    assert catcher["ErrorEquals"] == ["States.ALL"]
    assert catcher["ResultPath"] == "$.error"
    shaped = states[catcher["Next"]]
    assert shaped["Type"] == "Pass"
    assert shaped["Parameters"] == {"Error": "CompleteFailed", "Cause": "{}", "Caught.$": "$.error"}
    assert shaped["ResultPath"] == "$.error"
    assert shaped["Next"] == "FailEnsemble"
    # ... FailEnsemble reports the structured error, retried, then Failed ends the execution
    fail = states["FailEnsemble"]
    assert fail["Resource"] == "arn:aws:states:::lambda:invoke"
    assert fail["Parameters"]["Payload"] == {
        "action": "fail",
        "ensemble_prediction_id.$": "$.prediction_id",
        "error.$": "$.error",
        "execution.$": "$$.Execution.Input",
    }
    assert fail["ResultPath"] is None
    assert fail["Retry"] == retry
    assert fail["Catch"] == [{"ErrorEquals": ["States.ALL"], "Next": "Failed"}]
    assert fail["Next"] == "Failed"
    assert {key: value for key, value in states["Failed"].items() if key != "Comment"} == {
        "Type": "Fail",
        "Error": "EnsembleFailed",
        "Cause": "a step of the ensemble failed; see the prediction's error",
    }


def test_every_generated_state_says_why_in_a_comment():
    # GIVEN every shape's machine
    for steps, output, _ in SHAPES.values():
        _, _, definition = build(steps, output)
        # WHEN / THEN
        assert definition["Comment"]
        assert all(state.get("Comment") for _, state, _ in states_of(definition))


def test_state_names_stay_unique_and_short_with_long_or_reserved_step_names():
    # GIVEN step names of 80 characters, sharing their first 70, and steps named like reserved states
    long_a, long_b = "a" * 70 + "x" * 10, "a" * 70 + "y" * 10
    steps = {
        long_a: call("s"),
        long_b: call("s"),
        "Complete": call("s", {"a": f"$.steps['{long_a}']", "b": f"$.steps['{long_b}']"}),
        "FailEnsemble": {"fan_out": {"task": "t"}, "mapping": {"c": "$.steps.Complete"}},
    }

    # WHEN the machine is generated
    _, _, definition = build(steps)
    names = [name for name, _, _ in states_of(definition)]

    # THEN names are unique, at most 80 characters, and the reserved states keep their names
    assert len(names) == len(set(names))
    assert max(len(name) for name in names) <= 80
    assert definition["States"]["Complete"]["Parameters"]["Payload"]["action"] == "complete"
    assert definition["States"]["FailEnsemble"]["Parameters"]["Payload"]["action"] == "fail"
    assert check_definition(definition) == []
    assert final_step(definition) == "FailEnsemble"
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    AmazonStateLanguageParser.parse(deployable(definition))


# -- the layout -------------------------------------------------------------------------------------------


def test_schedule_lays_independent_groups_side_by_side_and_connected_ones_by_levels():
    # GIVEN the triage, the vehicle claim and the N shape (a → c, b → c, b → d)
    triage = build(TRIAGE, TRIAGE_OUTPUT)[1]
    vehicle = build(VEHICLE, "decision")[1]
    n_shape = build(*SHAPES["n-shape"][:2])[1]

    # WHEN / THEN
    assert schedule(triage) == (Together(((Run("classify"),), (Run("vulnerability"), Run("escalate")))),)
    assert schedule(vehicle) == (Together(((Run("cost"),), (Run("damage"),), (Run("fraud"),))), Run("decision"))
    # In a connected group with two first steps, d waits for a too: the documented cost.
    assert schedule(n_shape) == (Together(((Run("a"),), (Run("b"),))), Together(((Run("c"),), (Run("d"),))))


def random_dag(rng: random.Random, size: int) -> dict[str, Any]:
    names = [f"s{index}" for index in range(size)]
    steps: dict[str, Any] = {}
    for index, name in enumerate(names):
        earlier = rng.sample(names[:index], k=rng.randint(0, min(index, 3)))
        mapping = {dependency: f"$.steps.{dependency}.v" for dependency in earlier}
        steps[name] = (
            {"fan_out": {"task": "t"}, "mapping": mapping or "$.input"}
            if rng.random() < 0.15
            else call("s", mapping or "$.input")
        )
    return steps


@pytest.mark.parametrize("seed", range(40))
def test_the_layout_keeps_every_dependency_and_never_waits_more_than_strict_levels(seed: int):
    # GIVEN a random DAG (and an output mapping, so that several sinks are fine)
    rng = random.Random(seed)
    steps = random_dag(rng, rng.randint(1, 12))
    _, dag, definition = build(steps, {"all": "$.steps"})

    # WHEN the generated machine is analysed
    analysis = analyse(definition)

    # THEN each step starts after all of its ancestors, and only after steps of earlier levels
    for step in steps:
        earlier_levels = {other for other in steps if dag.level_of(other) < dag.level_of(step)}
        assert dag.ancestors[step] <= analysis.upstream[step] <= earlier_levels, step
    assert check_definition(definition) == []
    assert check_gateway_rules(definition) == []


# -- asl.analyse and attempt copies -------------------------------------------------------------------------


def task(step: str, attempt: int | None, **fields: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"action": "call", "step": step, "ensemble_prediction_id.$": "$.prediction_id"}
    if attempt is not None:
        payload["attempt"] = attempt
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "Parameters": {"FunctionName": FUNCTION_ARN, "Payload": payload},
        **fields,
    }


def test_analyse_accepts_attempt_copies_reached_through_catch_and_wait():
    # GIVEN a task, a Wait on its transient errors and a copy with attempt 2
    definition = {
        "StartAt": "A",
        "States": {
            "A": task("a", 1, Catch=[{"ErrorEquals": ["Lambda.ServiceException"], "Next": "W"}], Next="B"),
            "W": {"Type": "Wait", "Seconds": 2, "Next": "A2"},
            "A2": task("a", 2, Next="B"),
            "B": task("b", 1, End=True),
        },
    }

    # WHEN / THEN the step has one state of record, and b follows a through either attempt
    analysis = analyse(definition)
    assert analysis.steps["a"].state_name == "A"
    assert analysis.upstream["b"] == {"a"}


@pytest.mark.parametrize(
    ("states", "message"),
    [
        pytest.param(
            {
                "C": {
                    "Type": "Choice",
                    "Choices": [{"Variable": "$.x", "IsPresent": True, "Next": "A"}],
                    "Default": "A2",
                },
                "A": task("a", 1, End=True),
                "A2": task("a", 1, End=True),
            },
            "step 'a' is used by two states: 'A' and 'A2'",
            id="same-attempt",
        ),
        pytest.param(
            {
                "C": {
                    "Type": "Choice",
                    "Choices": [{"Variable": "$.x", "IsPresent": True, "Next": "A"}],
                    "Default": "A2",
                },
                "A": task("a", None, End=True),
                "A2": task("a", None, End=True),
            },
            "step 'a' is used by two states",
            id="no-attempt",
        ),
        pytest.param(
            {
                "C": {
                    "Type": "Choice",
                    "Choices": [{"Variable": "$.x", "IsPresent": True, "Next": "A"}],
                    "Default": "A2",
                },
                "A": task("a", 1, End=True),
                "A2": {**task("a", 2, End=True), "Parameters": {"FunctionName": "other", "Payload": {"step": "a"}}},
            },
            "step 'a' is used by two states",
            id="other-payload",
        ),
        pytest.param(
            {
                "C": {
                    "Type": "Parallel",
                    "Branches": [
                        {"StartAt": "A", "States": {"A": task("a", 1, End=True)}},
                        {"StartAt": "A2", "States": {"A2": task("a", 2, End=True)}},
                    ],
                    "End": True,
                }
            },
            "step 'a' is used by two states: 'A' and 'A2'",
            id="other-scope",
        ),
        pytest.param(
            {"C": {"Type": "Pass", "Next": "A"}, "A": task("a", 1, Next="A2"), "A2": task("a", 2, End=True)},
            r"step 'a' can run after itself \(a cycle\)",
            id="copy-after-success",
        ),
    ],
)
def test_analyse_still_refuses_real_duplicates(states: dict[str, Any], message: str):
    # GIVEN the same step in two states that are not attempt copies of one task
    definition = {"StartAt": "C", "States": copy.deepcopy(states)}

    # WHEN / THEN
    with pytest.raises(CatalogValidationError, match=message):
        analyse(definition)


def test_completing_output_steps_lists_what_every_complete_task_names():
    # GIVEN a generated machine naming its output step, one with an output mapping, and a hand-written
    # machine with a completing task inside a branch too
    named = build(VEHICLE, "decision")[2]
    mapped = build(TRIAGE, TRIAGE_OUTPUT)[2]
    complete = {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": True}
    hand_written = {
        "StartAt": "P",
        "States": {
            "P": {
                "Type": "Parallel",
                "Branches": [
                    {
                        "StartAt": "C1",
                        "States": {
                            "C1": {**complete, "Parameters": {"Payload": {"action": "complete", "output_step": "b"}}}
                        },
                    }
                ],
                "Next": "C2",
            },
            "C2": {**complete, "Parameters": {"Payload": {"action": "complete", "output_step": "a"}}},
        },
    }

    # WHEN / THEN (the vehicle claim's decision ends the execution itself: no completing task)
    assert completing_output_steps(named) == []
    assert completing_output_steps(mapped) == []
    assert completing_output_steps(hand_written) == ["a", "b"]

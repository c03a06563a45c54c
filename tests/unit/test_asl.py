"""Reading an ensemble's ASL: its callback steps, what runs before each, and malformed definitions."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from ensemble_gateway.domain.asl import analyse, final_step, prepare_definition, substitute
from ensemble_gateway.domain.errors import CatalogValidationError

ROOT = Path(__file__).resolve().parents[2]
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:get-transform-call"


def real_definition(name: str) -> dict[str, Any]:
    """A hand-written state machine file (``statemachines/`` or the test fixtures), filled in.

    vehicle-claim ships declaratively now; its former hand-written ASL stays a fixture.
    """
    path = ROOT / "statemachines" / f"{name}.asl.json"
    if not path.exists():
        path = ROOT / "tests" / "fixtures" / "statemachines" / f"{name}.asl.json"
    text = path.read_text(encoding="utf-8")
    return json.loads(substitute(text, {"GetTransformCallFunctionArn": FUNCTION_ARN}))


def call(step: str, *, next_: str | None = None, catch: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A gateway callback task running ``step``."""
    state: dict[str, Any] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "Parameters": {
            "FunctionName": FUNCTION_ARN,
            "Payload": {
                "action": "call",
                "step": step,
                "ensemble_prediction_id.$": "$.prediction_id",
                "task_token.$": "$$.Task.Token",
            },
        },
        "ResultPath": f"$.steps.{step}",
    }
    if next_ is None:
        state["End"] = True
    else:
        state["Next"] = next_
    if catch is not None:
        state["Catch"] = catch
    return state


def machine(start: str, **states: dict[str, Any]) -> dict[str, Any]:
    return {"StartAt": start, "States": states}


def branch(step: str) -> dict[str, Any]:
    """A Parallel branch running one step (state names are unique in the whole machine)."""
    return machine(f"Run-{step}", **{f"Run-{step}": call(step)})


def callback_states(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every callback task of a definition (in branches and Map processors too), by step name."""
    found: dict[str, dict[str, Any]] = {}

    def visit(states: dict[str, Any]) -> None:
        for state in states.values():
            if str(state.get("Resource", "")).endswith("waitForTaskToken"):
                found[state["Parameters"]["Payload"]["step"]] = state
            for inner in state.get("Branches", []):
                visit(inner["States"])
            processor = state.get("ItemProcessor") or state.get("Iterator")
            if processor:
                visit(processor["States"])

    visit(definition["States"])
    return found


# -- the DAG -------------------------------------------------------------------------------------


def test_vehicle_claim_parallel_steps_are_not_upstream_of_each_other():
    # GIVEN the real vehicle-claim definition: damage, cost and fraud in one Parallel, then decision
    definition = real_definition("vehicle-claim")

    # WHEN it is analysed
    analysis = analyse(definition)

    # THEN the parallel siblings see nothing before them and decision sees all three
    assert set(analysis.steps) == {"damage", "cost", "fraud", "decision"}
    assert analysis.upstream["damage"] == set()
    assert analysis.upstream["cost"] == set()
    assert analysis.upstream["fraud"] == set()
    assert analysis.upstream["decision"] == {"damage", "cost", "fraud"}
    assert analysis.steps["decision"].state_name == "Decide"
    assert not any(state.in_map for state in analysis.steps.values())


def test_complaint_triage_choice_and_map():
    # GIVEN the real complaint-triage definition: vulnerability, Choice → escalate, then a Map
    definition = real_definition("complaint-triage")

    # WHEN it is analysed
    analysis = analyse(definition)

    # THEN the fan-out step runs in a Map and may follow either branch of the Choice
    assert analysis.steps["classify"].in_map
    assert not analysis.steps["escalate"].in_map
    assert analysis.upstream["vulnerability"] == set()
    assert analysis.upstream["escalate"] == {"vulnerability"}
    assert analysis.upstream["classify"] == {"vulnerability", "escalate"}


def test_a_step_reached_through_a_catch_does_not_see_the_failed_step_upstream():
    # GIVEN first → second, and first's Catch going to recover
    definition = machine(
        "First",
        First=call("first", next_="Second", catch=[{"ErrorEquals": ["States.ALL"], "Next": "Recover"}]),
        Second=call("second"),
        Recover=call("recover"),
    )

    # WHEN it is analysed
    analysis = analyse(definition)

    # THEN second follows first, but recover runs only when first did not finish
    assert analysis.upstream["second"] == {"first"}
    assert analysis.upstream["recover"] == set()


def test_steps_after_a_nested_parallel_see_every_branch():
    # GIVEN a Parallel whose second branch holds another Parallel, then a final step
    inner = {
        "Type": "Parallel",
        "Branches": [branch("b1"), branch("b2")],
        "Next": "After",
    }
    definition = machine(
        "Outer",
        Outer={
            "Type": "Parallel",
            "Branches": [branch("a"), machine("Inner", Inner=inner, After=call("b3"))],
            "Next": "Final",
        },
        Final=call("final"),
    )

    # WHEN it is analysed
    analysis = analyse(definition)

    # THEN siblings never see each other, later states see what ran before them
    assert analysis.upstream["a"] == set()
    assert analysis.upstream["b1"] == set()
    assert analysis.upstream["b2"] == set()
    assert analysis.upstream["b3"] == {"b1", "b2"}
    assert analysis.upstream["final"] == {"a", "b1", "b2", "b3"}


# -- rejected definitions --------------------------------------------------------------------------


def test_a_step_that_can_run_after_itself_is_a_cycle():
    # GIVEN decision going back to the start
    definition = machine("A", A=call("a", next_="B"), B=call("b", next_="A"))

    # WHEN / THEN it is rejected as a cycle naming the step
    with pytest.raises(CatalogValidationError, match=r"step 'a' can run after itself \(a cycle\)"):
        analyse(definition)


def test_a_cycle_through_a_choice_is_rejected():
    # GIVEN a Choice that can send the flow back to an earlier step
    definition = machine(
        "A",
        A=call("a", next_="Again"),
        Again={
            "Type": "Choice",
            "Choices": [{"Variable": "$.x", "IsPresent": True, "Next": "A"}],
            "Default": "B",
        },
        B=call("b"),
    )

    # WHEN / THEN
    with pytest.raises(CatalogValidationError, match="step 'a' can run after itself"):
        analyse(definition)


def test_a_catch_retry_loop_is_not_a_cycle():
    # GIVEN the retry pattern for callback tasks (moto breaks Retry): Catch → Wait → the task again
    definition = machine(
        "A",
        A=call("a", catch=[{"ErrorEquals": ["StepFailed"], "Next": "Pause"}]),
        Pause={"Type": "Wait", "Seconds": 1, "Next": "A"},
    )

    # WHEN it is analysed
    analysis = analyse(definition)

    # THEN it is accepted: the step runs again only when it did not finish
    assert analysis.upstream["a"] == set()


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        pytest.param({"States": {"A": call("a")}}, "StartAt 'None' is not a state", id="missing-StartAt"),
        pytest.param(machine("Nope", A=call("a")), "StartAt 'Nope' is not a state", id="unknown-StartAt"),
        pytest.param({"StartAt": "A", "States": {}}, "'States' must be a non-empty object", id="no-states"),
        pytest.param(
            machine("A", A=call("a", next_="Missing")),
            "state 'A' goes to unknown state 'Missing'",
            id="unknown-Next",
        ),
        pytest.param(
            machine("A", A={"Type": "Pass"}),
            "state 'A' has neither Next nor End",
            id="neither-Next-nor-End",
        ),
        pytest.param(machine("A", A={"Type": "Lambda", "End": True}), "state 'A' has no valid Type", id="bad-Type"),
        pytest.param(
            machine(
                "C",
                C={
                    "Type": "Choice",
                    "Choices": [{"Variable": "$.x", "IsNull": True, "Next": "A"}],
                    "Default": "Z",
                },
                A=call("a"),
            ),
            "state 'C' goes to unknown state 'Z'",
            id="unknown-Choice-Default",
        ),
        pytest.param(
            machine("A", A=call("a", catch=[{"ErrorEquals": ["States.ALL"], "Next": "Gone"}])),
            "state 'A' goes to unknown state 'Gone'",
            id="unknown-Catch-Next",
        ),
        pytest.param(
            machine("A", A=call("a", catch=[{"ErrorEquals": ["States.ALL"]}])),
            "state 'A' has a Catch without Next",
            id="Catch-without-Next",
        ),
        pytest.param(
            machine("P", P={"Type": "Parallel", "Branches": [machine("X", X=call("x", next_="Y"))], "End": True}),
            r"definition/P\[0\]: state 'X' goes to unknown state 'Y'",
            id="unknown-Next-in-a-branch",
        ),
        pytest.param(
            machine("P", P={"Type": "Parallel", "Branches": [], "End": True}),
            "Parallel state 'P' has no Branches",
            id="Parallel-without-branches",
        ),
        pytest.param(
            machine("M", M={"Type": "Map", "End": True}),
            "Map state 'M' has no ItemProcessor",
            id="Map-without-processor",
        ),
        pytest.param(
            machine("A", A={**call("a"), "Parameters": {"FunctionName": FUNCTION_ARN, "Payload": {}}}),
            "callback state 'A' must pass a 'step' name in its Payload",
            id="callback-without-step",
        ),
        pytest.param(
            machine(
                "P",
                P={
                    "Type": "Parallel",
                    "Branches": [machine("A", A=call("same")), machine("B", B=call("same"))],
                    "End": True,
                },
            ),
            "step 'same' is used by two states: 'A' and 'B'",
            id="step-used-twice",
        ),
        pytest.param(
            machine(
                "P",
                P={
                    "Type": "Parallel",
                    "Branches": [machine("Run", Run=call("x")), machine("Run", Run=call("y"))],
                    "End": True,
                },
            ),
            "state name 'Run' is used twice",
            id="state-name-used-twice",
        ),
    ],
)
def test_malformed_definitions_are_rejected_naming_the_state(definition: dict[str, Any], message: str):
    # GIVEN a malformed definition
    # WHEN it is analysed
    # THEN a CatalogValidationError (never a KeyError or TypeError) names what is wrong
    with pytest.raises(CatalogValidationError, match=message):
        analyse(definition)


def test_non_object_parts_are_validation_errors_not_crashes():
    # GIVEN definitions whose parts have the wrong JSON types
    broken = [
        [],
        machine("A", A=[]),
        machine("A", A={**call("a"), "Catch": {"ErrorEquals": ["States.ALL"], "Next": "A"}}),
        machine("C", C={"Type": "Choice", "Choices": "A"}),
        machine("P", P={"Type": "Parallel", "Branches": [None], "End": True}),
        machine("A", A={**call("a"), "Parameters": ["not", "an", "object"]}),
    ]
    for definition in broken:
        # WHEN each is analysed / THEN the error is a validation error
        with pytest.raises(CatalogValidationError):
            analyse(definition)  # type: ignore[arg-type]


# -- prepared for deployment -----------------------------------------------------------------------


def test_prepare_definition_sets_timeouts_on_every_callback_task_and_keeps_explicit_ones():
    # GIVEN complaint-triage (a Map) and a Parallel with one explicit TimeoutSeconds
    triage = real_definition("complaint-triage")
    explicit = call("b")
    explicit["TimeoutSeconds"] = 7
    parallel = machine(
        "P",
        P={"Type": "Parallel", "Branches": [branch("a"), machine("B", B=explicit)], "End": True},
    )
    originals = copy.deepcopy((triage, parallel))
    timeouts = {"vulnerability": 360, "escalate": 120, "classify": 361, "a": 42, "b": 999}

    # WHEN they are prepared
    prepared_triage = prepare_definition(triage, timeouts.__getitem__)
    prepared_parallel = prepare_definition(parallel, timeouts.__getitem__)

    # THEN every callback task has its step's timeout, wherever it sits, and explicit ones are kept
    assert {step: s["TimeoutSeconds"] for step, s in callback_states(prepared_triage).items()} == {
        "vulnerability": 360,
        "escalate": 120,
        "classify": 361,
    }
    assert {step: s["TimeoutSeconds"] for step, s in callback_states(prepared_parallel).items()} == {
        "a": 42,
        "b": 7,
    }
    # AND the input definitions are not modified
    assert (triage, parallel) == originals
    assert all("TimeoutSeconds" not in state for state in callback_states(triage).values())


def test_prepare_definition_passes_the_execution_input_to_every_callback_task():
    # GIVEN complaint-triage (its fan-out step sits in a Map) and one task passing its own value
    triage = real_definition("complaint-triage")
    own = call("a")
    own["Parameters"]["Payload"]["execution.$"] = "$.something_else"
    custom = machine("A", A=own)
    # WHEN they are prepared
    prepared_triage = prepare_definition(triage, lambda step: 60)
    prepared_custom = prepare_definition(custom, lambda step: 60)
    # THEN every callback payload carries $$.Execution.Input, and an explicit value is kept
    assert {
        step: s["Parameters"]["Payload"]["execution.$"] for step, s in callback_states(prepared_triage).items()
    } == {
        "vulnerability": "$$.Execution.Input",
        "escalate": "$$.Execution.Input",
        "classify": "$$.Execution.Input",
    }
    assert callback_states(prepared_custom)["a"]["Parameters"]["Payload"]["execution.$"] == "$.something_else"
    # AND the complete and fail tasks are left as they are
    assert "execution.$" not in prepared_triage["States"]["Complete"]["Parameters"]["Payload"]


def complete_task(output_step: str | None) -> dict[str, Any]:
    payload: dict[str, Any] = {"action": "complete", "ensemble_prediction_id.$": "$.prediction_id"}
    if output_step is not None:
        payload["output_step"] = output_step
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": FUNCTION_ARN, "Payload": payload},
        "End": True,
    }


def test_the_final_step_is_the_one_whose_task_goes_straight_to_the_complete_task():
    # GIVEN the examples, and machines where the output step is not the last thing to run
    vehicle = real_definition("vehicle-claim")
    triage = real_definition("complaint-triage")
    straight = machine("A", A=call("a", next_="B"), B=call("b", next_="Done"), Done=complete_task("b"))
    other_output = machine("A", A=call("a", next_="B"), B=call("b", next_="Done"), Done=complete_task("a"))
    detour = machine(
        "A",
        A=call("a", next_="Wait"),
        Wait={"Type": "Wait", "Seconds": 1, "Next": "Done"},
        Done=complete_task("a"),
    )
    no_output = machine("A", A=call("a", next_="Done"), Done=complete_task(None))

    def fan_out(items_path: str, *steps: str) -> dict[str, Any]:
        chain = {
            f"Run-{s}": call(s, next_=f"Run-{steps[i + 1]}" if i + 1 < len(steps) else None)
            for i, s in enumerate(steps)
        }
        return {
            "Type": "Map",
            "ItemsPath": items_path,
            "ItemProcessor": machine(f"Run-{steps[0]}", **chain),
            "Next": "Done",
        }

    fan_out_last = machine("M", M=fan_out("$.fanout.f", "f"), Done=complete_task("f"))
    fan_out_then_more = machine("M", M=fan_out("$.fanout.f", "f", "g"), Done=complete_task("f"))
    fan_out_elsewhere = machine("M", M=fan_out("$.members", "f"), Done=complete_task("f"))
    # THEN only a step that the Complete task directly follows, and names, ends the ensemble ...
    assert final_step(vehicle) == "decision"
    assert final_step(straight) == "b"
    assert final_step(other_output) is None
    assert final_step(detour) is None
    assert final_step(no_output) is None
    # ... or a fan-out whose Map over the gateway's member list runs that step and nothing else
    assert final_step(triage) == "classify"
    assert final_step(fan_out_last) == "f"
    assert final_step(fan_out_then_more) is None
    assert final_step(fan_out_elsewhere) is None


def test_substitute_fills_placeholders_and_rejects_unknown_ones():
    # GIVEN a text with a known and an unknown placeholder
    # WHEN / THEN the known one is filled, the unknown one is an error naming it
    assert substitute('{"f": "${Fn}"}', {"Fn": "arn:x"}) == '{"f": "arn:x"}'
    with pytest.raises(CatalogValidationError, match=r"\$\{Other\}"):
        substitute('{"f": "${Fn}", "g": "${Other}"}', {"Fn": "arn:x"})

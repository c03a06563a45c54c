"""The Amazon States Language's rules (one test per rule, each on a small broken machine) and the
gateway's own rules for hand-written ensembles.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from ensemble_gateway.domain.asl_rules import check_definition, check_gateway_rules

ROOT = Path(__file__).resolve().parents[2]
CALLBACK = "arn:aws:states:::lambda:invoke.waitForTaskToken"
INVOKE = "arn:aws:states:::lambda:invoke"


def task(resource: str = INVOKE, **fields: Any) -> dict[str, Any]:
    state = {"Type": "Task", "Resource": resource, "Parameters": {"FunctionName": "f", "Payload": {"a.$": "$.a"}}}
    state.update(fields)
    if "Next" not in fields and "End" not in fields:
        state["End"] = True
    return state


def machine(start: str = "A", **states: dict[str, Any]) -> dict[str, Any]:
    return {"StartAt": start, "States": states or {"A": task()}}


def valid() -> dict[str, Any]:
    """A small machine using every state type, valid by the specification."""
    return {
        "Comment": "valid",
        "StartAt": "Start",
        "States": {
            "Start": task(
                TimeoutSeconds=60,
                HeartbeatSeconds=30,
                ResultPath="$.start",
                Retry=[
                    {"ErrorEquals": ["Lambda.ServiceException"], "IntervalSeconds": 1, "MaxAttempts": 2},
                    {"ErrorEquals": ["States.ALL"], "BackoffRate": 1.5, "MaxAttempts": 0},
                ],
                Catch=[
                    {"ErrorEquals": ["States.Timeout"], "ResultPath": None, "Next": "Oops"},
                    {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Oops"},
                ],
                Next="Together",
            ),
            "Together": {
                "Type": "Parallel",
                "Branches": [
                    {"StartAt": "Left", "States": {"Left": {"Type": "Pass", "Result": 1, "End": True}}},
                    {
                        "StartAt": "Right",
                        "States": {
                            "Right": {"Type": "Wait", "Seconds": 0, "Next": "RightDone"},
                            "RightDone": {"Type": "Succeed"},
                        },
                    },
                ],
                "ResultPath": None,
                "Next": "Each",
            },
            "Each": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemSelector": {"v.$": "$$.Map.Item.Value", "f.$": "States.Format('x{}', $.a)"},
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    "StartAt": "One",
                    "States": {"One": {"Type": "Pass", "End": True}},
                },
                "MaxConcurrency": 0,
                "Next": "Decide",
            },
            "Decide": {
                "Type": "Choice",
                "Choices": [
                    {
                        "And": [
                            {"Variable": "$.x", "IsPresent": True},
                            {"Variable": "$.x", "StringEquals": "y"},
                        ],
                        "Next": "Done",
                    },
                    {"Not": {"Variable": "$.z", "IsPresent": True}, "Next": "Done"},
                ],
                "Default": "Oops",
            },
            "Done": {"Type": "Succeed"},
            "Oops": {"Type": "Fail", "Error": "Oops", "Cause": "it failed"},
        },
    }


def broken(change: Any) -> dict[str, Any]:
    """The valid machine after ``change(definition)``."""
    definition = valid()
    change(definition)
    return definition


def one_problem(definition: Any) -> str:
    problems = check_definition(definition)
    assert len(problems) == 1, problems
    return problems[0]


# -- the specification's rules ------------------------------------------------------------------------


def test_a_valid_machine_using_every_state_type_has_no_problem():
    # GIVEN / WHEN / THEN
    assert check_definition(valid()) == []


def test_the_shipped_hand_written_ensemble_is_valid():
    # GIVEN the complaint-triage ASL of statemachines/ (the escape hatch's example)
    definition = json.loads((ROOT / "statemachines" / "complaint-triage.asl.json").read_text(encoding="utf-8"))

    # WHEN / THEN
    assert check_definition(definition) == []


def test_the_definition_must_be_an_object():
    assert check_definition([]) == ["the definition must be a JSON object"]


def test_a_state_name_is_at_most_80_characters():
    name = "N" * 81
    problem = one_problem(machine(name, **{name: task()}))
    assert problem == f"state '{name}': the name is 81 characters long, at most 80 are allowed"


def test_state_names_are_unique_across_branches():
    definition = valid()
    definition["States"]["Together"]["Branches"][0] = {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}
    assert one_problem(definition) == (
        "state 'Done': the name is used twice in the state machine (also in branch 1 of Parallel 'Together')"
    )


@pytest.mark.parametrize("start", [None, "Nowhere"])
def test_start_at_names_a_state(start: Any):
    definition = broken(lambda d: d.update(StartAt=start))
    problems = check_definition(definition)
    assert problems[0] == f"the state machine: StartAt {repr(start) if start else '(missing)'} is not one of its states"


def test_states_must_be_a_non_empty_object():
    assert one_problem({"StartAt": "A", "States": {}}) == "the state machine: 'States' must be a non-empty object"


def test_every_state_is_reachable():
    definition = broken(lambda d: d["States"].update(Orphan={"Type": "Succeed"}))
    assert one_problem(definition) == "state 'Orphan' cannot be reached from StartAt 'Start'"


def test_a_state_has_next_or_end_not_both():
    definition = broken(lambda d: d["States"]["Each"].update(End=True))
    assert one_problem(definition) == "state 'Each': a state has Next or End, not both"


def test_a_state_needs_next_or_end():
    definition = broken(lambda d: d["States"]["Each"].pop("Next"))
    problems = check_definition(definition)
    assert "state 'Each': a Map state needs Next or End" in problems


def test_end_must_be_true():
    definition = machine("A", A={"Type": "Pass", "End": False})
    assert one_problem(definition) == "state 'A': End must be true (or be left out for a Next)"


def test_a_choice_has_no_next_or_end():
    definition = broken(lambda d: d["States"]["Decide"].update(Next="Done"))
    assert one_problem(definition) == "state 'Decide': a Choice state cannot have Next or End"


@pytest.mark.parametrize("kind", ["Succeed", "Fail"])
def test_succeed_and_fail_have_no_next_or_end(kind: str):
    name = "Done" if kind == "Succeed" else "Oops"
    definition = broken(lambda d: d["States"][name].update(End=True))
    assert one_problem(definition) == f"state '{name}': a {kind} state cannot have Next or End"


def test_next_names_a_state():
    definition = broken(lambda d: d["States"]["Each"].update(Next="Missing"))
    problems = check_definition(definition)
    assert problems[0].startswith("state 'Each': Next 'Missing' is not a state of its machine")
    # ... which leaves the states after it unreachable, as said too
    assert problems[1:] == [
        "state 'Decide' cannot be reached from StartAt 'Start'",
        "state 'Done' cannot be reached from StartAt 'Start'",
    ]


def test_an_unknown_type_is_a_problem():
    definition = machine("A", A={"Type": "Lambda", "End": True})
    assert one_problem(definition) == (
        "state 'A': Type 'Lambda' is not one of Task, Parallel, Map, Choice, Pass, Wait, Succeed, Fail"
    )


def test_a_task_needs_a_resource():
    definition = broken(lambda d: d["States"]["Start"].pop("Resource"))
    assert one_problem(definition) == "state 'Start': a Task needs a Resource (an ARN)"


@pytest.mark.parametrize("value", [0, -5, "60", True, 1.5])
def test_timeout_seconds_is_a_positive_integer(value: Any):
    definition = broken(lambda d: d["States"]["Start"].update(TimeoutSeconds=value, HeartbeatSeconds=None))
    definition["States"]["Start"].pop("HeartbeatSeconds")
    assert one_problem(definition) == f"state 'Start': TimeoutSeconds must be a positive integer, not {value!r}"


def test_heartbeat_seconds_is_a_positive_integer():
    definition = broken(lambda d: d["States"]["Start"].update(HeartbeatSeconds=0))
    assert one_problem(definition) == "state 'Start': HeartbeatSeconds must be a positive integer, not 0"


def test_the_heartbeat_is_shorter_than_the_timeout():
    definition = broken(lambda d: d["States"]["Start"].update(HeartbeatSeconds=60))
    assert one_problem(definition) == "state 'Start': HeartbeatSeconds (60) must be smaller than TimeoutSeconds (60)"


@pytest.mark.parametrize("errors", [[], "States.ALL", [1], None])
def test_error_equals_is_a_non_empty_list_of_names(errors: Any):
    definition = broken(lambda d: d["States"]["Start"]["Retry"][0].update(ErrorEquals=errors))
    assert one_problem(definition) == (
        "state 'Start': Retry entry 1 needs ErrorEquals, a non-empty list of error names"
    )


def test_states_all_is_alone_in_its_error_equals():
    definition = broken(lambda d: d["States"]["Start"]["Catch"][1].update(ErrorEquals=["States.ALL", "X"]))
    assert one_problem(definition) == "state 'Start': Catch entry 2: States.ALL must be alone in its ErrorEquals"


@pytest.mark.parametrize("field", ["Retry", "Catch"])
def test_states_all_is_in_the_last_entry(field: str):
    definition = broken(lambda d: d["States"]["Start"][field].reverse())
    assert one_problem(definition) == f"state 'Start': {field} entry 1: States.ALL must be in the last entry"


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("IntervalSeconds", 0, "IntervalSeconds must be an integer of at least 1, not 0"),
        ("MaxAttempts", -1, "MaxAttempts must be a non-negative integer, not -1"),
        ("BackoffRate", 0.5, "BackoffRate must be a number of at least 1.0, not 0.5"),
    ],
)
def test_retry_numbers_are_in_range(field: str, value: Any, rule: str):
    definition = broken(lambda d: d["States"]["Start"]["Retry"][0].update({field: value}))
    assert one_problem(definition) == f"state 'Start': Retry entry 1: {rule}"


def test_a_catch_needs_a_next():
    definition = broken(lambda d: d["States"]["Start"]["Catch"][0].pop("Next"))
    assert one_problem(definition) == "state 'Start': Catch entry 1 needs a Next"


def test_a_catch_inside_a_branch_cannot_leave_it():
    def change(definition: dict[str, Any]) -> None:
        left = definition["States"]["Together"]["Branches"][0]["States"]["Left"]
        left.update(Type="Task", Resource=INVOKE, Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Oops"}])
        left.pop("Result")

    problem = one_problem(broken(change))
    assert problem.startswith(
        "state 'Left' (branch 1 of Parallel 'Together'): Catch entry 1's Next 'Oops' is not a state of its machine"
    )


def test_a_next_inside_a_branch_cannot_leave_it():
    def change(definition: dict[str, Any]) -> None:
        left = definition["States"]["Together"]["Branches"][0]["States"]["Left"]
        left.pop("End")
        left["Next"] = "Done"

    assert one_problem(broken(change)) == (
        "state 'Left' (branch 1 of Parallel 'Together'): Next 'Done' is not a state of its machine "
        "(a branch or a Map processor cannot go to a state outside it)"
    )


@pytest.mark.parametrize("branches", [[], None, "x"])
def test_a_parallel_has_branches(branches: Any):
    definition = broken(lambda d: d["States"]["Together"].update(Branches=branches))
    assert one_problem(definition) == "state 'Together': a Parallel state needs a non-empty list of Branches"


def test_each_branch_is_a_valid_machine():
    definition = broken(lambda d: d["States"]["Together"]["Branches"][1].update(StartAt="Elsewhere"))
    problems = check_definition(definition)
    assert problems[0] == "branch 2 of Parallel 'Together': StartAt 'Elsewhere' is not one of its states"


def test_a_map_has_an_item_processor():
    definition = broken(lambda d: d["States"]["Each"].pop("ItemProcessor"))
    assert one_problem(definition) == "state 'Each': a Map state needs an ItemProcessor"


def test_a_map_has_item_processor_or_iterator_not_both():
    definition = broken(lambda d: d["States"]["Each"].update(Iterator=d["States"]["Each"]["ItemProcessor"]))
    problems = check_definition(definition)
    assert problems[0] == "state 'Each': a Map state has ItemProcessor or the legacy Iterator, not both"


def test_the_legacy_iterator_is_accepted():
    def change(definition: dict[str, Any]) -> None:
        each = definition["States"]["Each"]
        each["Iterator"] = {"StartAt": "One", "States": {"One": {"Type": "Pass", "End": True}}}
        each.pop("ItemProcessor")

    assert check_definition(broken(change)) == []


def test_the_map_processor_mode_is_inline_or_distributed():
    definition = broken(lambda d: d["States"]["Each"]["ItemProcessor"]["ProcessorConfig"].update(Mode="FAST"))
    assert one_problem(definition) == "state 'Each': ProcessorConfig Mode 'FAST' is not INLINE or DISTRIBUTED"


def test_the_map_processor_is_a_valid_machine():
    definition = broken(lambda d: d["States"]["Each"]["ItemProcessor"]["States"]["One"].pop("End"))
    assert one_problem(definition) == "state 'One' (the processor of Map 'Each'): a Pass state needs Next or End"


def test_max_concurrency_is_a_non_negative_integer():
    definition = broken(lambda d: d["States"]["Each"].update(MaxConcurrency=-1))
    assert one_problem(definition) == "state 'Each': MaxConcurrency must be a non-negative integer, not -1"


@pytest.mark.parametrize(
    "fields", [{}, {"Seconds": 1, "Timestamp": "2030-01-01T00:00:00Z"}, {"SecondsPath": "$.s", "TimestampPath": "$.t"}]
)
def test_a_wait_has_exactly_one_duration(fields: dict[str, Any]):
    def change(definition: dict[str, Any]) -> None:
        right = definition["States"]["Together"]["Branches"][1]["States"]["Right"]
        right.pop("Seconds")
        right.update(fields)

    problem = one_problem(broken(change))
    assert problem.startswith(
        "state 'Right' (branch 2 of Parallel 'Together'): a Wait state needs exactly one of Seconds, Timestamp, "
        "SecondsPath or TimestampPath"
    )


def test_wait_seconds_is_a_non_negative_integer():
    definition = broken(lambda d: d["States"]["Together"]["Branches"][1]["States"]["Right"].update(Seconds=-1))
    assert one_problem(definition).endswith("Seconds must be a non-negative integer, not -1")


def test_a_fail_has_error_or_error_path_not_both():
    definition = broken(lambda d: d["States"]["Oops"].update(ErrorPath="$.e"))
    assert one_problem(definition) == "state 'Oops': a Fail state has Error or ErrorPath, not both"


@pytest.mark.parametrize("field", ["InputPath", "OutputPath", "ResultPath"])
def test_paths_start_with_a_dollar_and_may_be_null(field: str):
    assert check_definition(broken(lambda d: d["States"]["Start"].update({field: None}))) == []
    definition = broken(lambda d: d["States"]["Start"].update({field: "result"}))
    assert one_problem(definition) == f"state 'Start': {field} must be a path starting with '$', not 'result'"


def test_items_path_starts_with_a_dollar_and_is_not_null():
    definition = broken(lambda d: d["States"]["Each"].update(ItemsPath=None))
    assert one_problem(definition) == "state 'Each': ItemsPath must be a path starting with '$', not (missing)"


def test_a_result_path_cannot_write_to_the_context_object():
    definition = broken(lambda d: d["States"]["Start"].update(ResultPath="$$.Task"))
    assert one_problem(definition) == "state 'Start': ResultPath must be a path starting with '$', not '$$.Task'"


def test_a_catch_result_path_is_a_path_or_null():
    definition = broken(lambda d: d["States"]["Start"]["Catch"][1].update(ResultPath="error"))
    assert (
        one_problem(definition) == "state 'Start': Catch entry 2: ResultPath must be a path starting with '$' or null"
    )


def test_dollar_keys_hold_paths_or_intrinsic_functions():
    definition = broken(lambda d: d["States"]["Start"]["Parameters"]["Payload"].update({"b.$": "plain"}))
    assert one_problem(definition) == (
        "state 'Start': Parameters key 'b.$' must be a path starting with '$' or an intrinsic function such as "
        "States.Format(...), not 'plain'"
    )


def test_a_choice_rule_uses_a_known_comparison_operator():
    definition = broken(lambda d: d["States"]["Decide"]["Choices"][0]["And"][1].update(StringIs="y"))
    assert one_problem(definition) == "state 'Decide': Choice rule 1 And[1]: StringIs is not a comparison operator"


def test_a_choice_rule_has_exactly_one_comparison():
    definition = broken(lambda d: d["States"]["Decide"]["Choices"][0]["And"][1].update(StringMatches="y*"))
    assert one_problem(definition) == "state 'Decide': Choice rule 1 And[1] needs exactly one comparison operator"


def test_a_choice_variable_is_a_path():
    definition = broken(lambda d: d["States"]["Decide"]["Choices"][1]["Not"].update(Variable="z"))
    assert one_problem(definition) == "state 'Decide': Choice rule 2 Not: Variable must be a path starting with '$'"


def test_only_top_level_choice_rules_have_a_next():
    definition = broken(lambda d: d["States"]["Decide"]["Choices"][1]["Not"].update(Next="Done"))
    assert one_problem(definition) == "state 'Decide': Choice rule 2 Not: only a top-level Choice rule has a Next"


def test_a_choice_rule_needs_a_next_and_choices_are_non_empty():
    assert one_problem(broken(lambda d: d["States"]["Decide"]["Choices"][0].pop("Next"))) == (
        "state 'Decide': Choice rule 1 needs a Next"
    )
    problems = check_definition(broken(lambda d: d["States"]["Decide"].update(Choices=[])))
    assert problems[0] == "state 'Decide': a Choice state needs a non-empty list of Choices"


def test_a_choice_default_names_a_state():
    definition = broken(lambda d: d["States"]["Decide"].update(Default="Nope"))
    assert one_problem(definition).startswith("state 'Decide': Default 'Nope' is not a state of its machine")


def test_only_task_parallel_and_map_states_retry_or_catch():
    definition = broken(lambda d: d["States"]["Done"].update(Retry=[{"ErrorEquals": ["States.ALL"]}]))
    assert one_problem(definition) == "state 'Done': a Succeed state cannot have Retry or Catch"


# -- the gateway's rules -------------------------------------------------------------------------------------


def shipped_triage() -> dict[str, Any]:
    return json.loads((ROOT / "statemachines" / "complaint-triage.asl.json").read_text(encoding="utf-8"))


UNGUARDED_CHOICE = {
    "Type": "Choice",
    "Choices": [{"Variable": "$.steps.vulnerability.output.label", "StringEquals": "vulnerable", "Next": "Escalate"}],
    "Default": "Classify",
}


def test_the_shipped_complaint_triage_follows_the_gateway_rules():
    # GIVEN the hand-written complaint triage as shipped (its Choice guarded by IsPresent)
    # WHEN / THEN
    assert check_gateway_rules(shipped_triage()) == []


def test_an_unguarded_choice_is_flagged():
    # GIVEN the complaint triage with its Choice as it was first written, comparing without a guard
    definition = shipped_triage()
    definition["States"]["IsVulnerable"] = copy.deepcopy(UNGUARDED_CHOICE)

    # WHEN / THEN
    assert check_gateway_rules(definition) == [
        "Choice 'IsVulnerable' reads $.steps.vulnerability.output.label without an IsPresent guard: on AWS a "
        "missing path fails the execution (States.Runtime), which a Choice cannot catch"
    ]
    assert check_definition(definition) == []  # valid ASL all the same


def test_a_retry_on_a_callback_task_is_flagged():
    # GIVEN the complaint triage with a Retry on its vulnerability task and on the Complete task
    definition = shipped_triage()
    retry = [{"ErrorEquals": ["Lambda.ServiceException"], "MaxAttempts": 2}]
    definition["States"]["Vulnerability"]["Retry"] = retry
    definition["States"]["Complete"]["Retry"] = retry

    # WHEN / THEN only the callback task is flagged (a plain invoke may retry)
    assert check_gateway_rules(definition) == [
        "state 'Vulnerability' retries a callback task: in moto a Retry of a .waitForTaskToken task reuses the token "
        "and replays the previous outcome; catch the errors and go through a Wait to a copy of the task instead"
    ]


def test_a_retry_on_a_callback_task_inside_a_map_is_flagged():
    # GIVEN a callback task in a Map processor with a Retry
    definition = machine(
        "M",
        M={
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemProcessor": {"StartAt": "T", "States": {"T": task(CALLBACK, Retry=[{"ErrorEquals": ["X"]}])}},
            "End": True,
        },
    )

    # WHEN / THEN
    assert [problem.split(":")[0] for problem in check_gateway_rules(definition)] == [
        "state 'T' retries a callback task"
    ]


def choice(*rules: dict[str, Any]) -> dict[str, Any]:
    return machine(
        "C",
        C={"Type": "Choice", "Choices": [{**rule, "Next": "D"} for rule in rules], "Default": "D"},
        D={"Type": "Succeed"},
    )


def guarded_paths(*rules: dict[str, Any]) -> list[str]:
    return [problem.split(" reads ")[1].split(" without")[0] for problem in check_gateway_rules(choice(*rules))]


def present(path: str) -> dict[str, Any]:
    return {"Variable": path, "IsPresent": True}


def test_a_guard_must_come_first_in_the_same_and_on_the_same_path():
    compare = {"Variable": "$.a", "NumericGreaterThan": 1}
    assert guarded_paths({"And": [present("$.a"), compare]}) == []
    assert guarded_paths(present("$.a")) == []
    assert guarded_paths({"Not": present("$.a")}) == []
    assert guarded_paths(compare) == ["$.a"]
    assert guarded_paths({"And": [compare, present("$.a")]}) == ["$.a"]
    assert guarded_paths({"And": [present("$.b"), compare]}) == ["$.a"]
    assert guarded_paths({"And": [present("$.a"), {"Or": [compare, {"Not": compare}]}]}) == []
    assert guarded_paths({"Or": [present("$.a"), compare]}) == ["$.a"]
    assert guarded_paths({"Not": compare}) == ["$.a"]
    # ... and a type test reads the path too
    assert guarded_paths({"Variable": "$.a", "IsNull": False}) == ["$.a"]


def test_a_path_compared_against_must_be_guarded_too():
    compare = {"Variable": "$.a", "NumericLessThanPath": "$.limit"}
    assert guarded_paths({"And": [present("$.a"), compare]}) == ["$.limit"]
    assert guarded_paths({"And": [present("$.a"), present("$.limit"), compare]}) == []


def test_choices_inside_branches_are_checked():
    inner = choice({"Variable": "$.a", "StringEquals": "x"})
    definition = machine("P", P={"Type": "Parallel", "Branches": [inner], "End": True})
    assert len(check_gateway_rules(definition)) == 1

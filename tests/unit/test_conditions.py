"""The ``when`` language: parsing with clear errors, and evaluation that never fails on missing data."""

from __future__ import annotations

from typing import Any

import pytest

from ensemble_gateway.domain.conditions import (
    AllOf,
    AnyOf,
    Comparison,
    Not,
    condition_paths,
    describe_condition,
    evaluate,
    parse_condition,
)
from ensemble_gateway.domain.errors import CatalogValidationError
from ensemble_gateway.domain.mapping import referenced_roots

SCOPE: dict[str, Any] = {
    "input": {"claim": {"amount": 1200.5, "kind": "glass"}, "tags": ["a", "b"]},
    "steps": {
        "decision": {"decision": "refer", "score": 0.7, "flag": True, "parts": {"a": 1, "b": [1, 2]}},
        "vulnerability": {"label": "vulnerable"},
        "skipped": None,
        "classify": {"model-a": {"label": "billing"}, "model-b": {"label": "fraud"}},
    },
    "metadata": {"channel": "web", "priority": "2"},
}


def holds(raw: dict[str, Any], scope: dict[str, Any] = SCOPE) -> bool:
    return evaluate(parse_condition(raw, step="review"), scope)


# -- parsing -----------------------------------------------------------------------------------------


def test_a_test_and_the_combinators_parse_into_their_nodes():
    # GIVEN a condition using every combinator
    raw = {
        "all": [
            {"path": "$.steps.decision.decision", "equals": "refer"},
            {
                "any": [
                    {"path": "$.input.claim.amount", "greater_than": 1000},
                    {"not": {"path": "$.metadata.x", "exists": True}},
                ]
            },
        ]
    }

    # WHEN it is parsed
    condition = parse_condition(raw, step="review")

    # THEN the tree mirrors the JSON
    assert condition == AllOf(
        (
            Comparison("$.steps.decision.decision", "equals", "refer"),
            AnyOf(
                (
                    Comparison("$.input.claim.amount", "greater_than", 1000),
                    Not(Comparison("$.metadata.x", "exists", True)),
                )
            ),
        )
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param(
            "yes",
            "step 'review': when: a condition is an object such as "
            '{"path": "$.steps.<name>.<field>", "equals": <value>}, not "yes"',
            id="not-an-object",
        ),
        pytest.param(
            {"path": "$.steps.decision.decision", "equal": "refer"},
            "step 'review': when: unknown operator 'equal'; operators are: equals, not_equals, in, greater_than, "
            "greater_or_equal, less_than, less_or_equal, exists (and all, any, not to combine tests)",
            id="unknown-operator",
        ),
        pytest.param(
            {"path": "$.steps.decision.score", "greater_than": 0.5, "less_than": 0.9},
            "step 'review': when: two operators in one test ('greater_than' and 'less_than'); "
            'combine tests with {"all": [...]} or {"any": [...]}',
            id="two-operators",
        ),
        pytest.param(
            {"path": "$.steps.decision.score"},
            "step 'review': when: a test needs an operator, one of: equals, not_equals, in, greater_than, "
            "greater_or_equal, less_than, less_or_equal, exists",
            id="no-operator",
        ),
        pytest.param(
            {"equals": "refer"},
            "step 'review': when: a test needs a 'path', e.g. "
            '{"path": "$.steps.<name>.<field>", "equals": <value>}',
            id="no-path",
        ),
        pytest.param(
            {"path": "$.steps.decision.decision", "in": "refer"},
            "step 'review': when: 'in' needs a list of values, not \"refer\"",
            id="in-without-a-list",
        ),
        pytest.param(
            {"path": "$.steps.decision.score", "greater_than": True},
            "step 'review': when: 'greater_than' compares with a number or a string, not true",
            id="ordering-against-a-boolean",
        ),
        pytest.param(
            {"path": "$.steps.decision.score", "less_or_equal": [1]},
            "step 'review': when: 'less_or_equal' compares with a number or a string, not [1]",
            id="ordering-against-a-list",
        ),
        pytest.param(
            {"path": "$.steps.decision.score", "exists": "yes"},
            "step 'review': when: 'exists' needs true or false, not \"yes\"",
            id="exists-without-a-boolean",
        ),
        pytest.param({"all": []}, "step 'review': when: 'all' needs a non-empty list of conditions", id="empty-all"),
        pytest.param({"any": {}}, "step 'review': when: 'any' needs a non-empty list of conditions", id="any-not-list"),
        pytest.param(
            {"all": [{"path": "$.input.a", "exists": True}], "path": "$.input.b"},
            "step 'review': when: 'all' must be alone in its object (found also 'path'); "
            'nest the other tests inside it, e.g. {"all": [...]}',
            id="combinator-not-alone",
        ),
        pytest.param(
            {"path": "$.request.x", "equals": 1},
            "step 'review': when: path '$.request.x': a path must start with $.input, $.steps or $.metadata",
            id="path-outside-the-scope",
        ),
        pytest.param(
            {"path": "$.steps.*.label", "equals": "x"},
            "step 'review': when: path '$.steps.*.label' must name the step it reads ($.steps.<name>...)",
            id="path-not-naming-a-step",
        ),
        pytest.param(
            {"path": "steps.decision", "equals": "x"},
            "step 'review': when: 'path' must be a JSONPath string starting with '$', not \"steps.decision\"",
            id="path-without-dollar",
        ),
        pytest.param(
            {"path": "$.steps.decision[", "equals": "x"},
            "step 'review': when: path '$.steps.decision[': invalid JSONPath syntax",
            id="path-that-does-not-parse",
        ),
        pytest.param(
            {"not": {"all": [{"path": "$.input.a", "exists": True}, {"path": "$.input.b", "bigger": 1}]}},
            "step 'review': when.not.all[1]: unknown operator 'bigger'",
            id="nested-error-names-where",
        ),
    ],
)
def test_invalid_conditions_are_refused_naming_the_step_and_the_problem(raw: Any, message: str):
    # GIVEN an invalid when
    # WHEN it is parsed
    # THEN the error names the step and what is wrong
    with pytest.raises(CatalogValidationError) as caught:
        parse_condition(raw, step="review")
    assert caught.value.message.startswith(message)


def test_condition_paths_lists_every_path_once_and_feeds_referenced_roots():
    # GIVEN a condition reading two steps and the metadata, one path twice
    condition = parse_condition(
        {
            "any": [
                {"path": "$.steps.decision.decision", "equals": "refer"},
                {"path": "$.steps.decision.decision", "equals": "review"},
                {"all": [{"path": "$.metadata.channel", "in": ["web"]}, {"path": "$.steps.fraud.p", "exists": True}]},
            ]
        },
        step="review",
    )

    # WHEN its paths are listed
    paths = condition_paths(condition)

    # THEN each appears once, in order, and the mapping module finds the steps they read
    assert paths == ["$.steps.decision.decision", "$.metadata.channel", "$.steps.fraud.p"]
    assert referenced_roots(paths) == {("steps", "decision"), ("metadata", None), ("steps", "fraud")}


def test_describe_condition_is_one_readable_line():
    # GIVEN a condition with a combinator, a negation and several operators
    condition = parse_condition(
        {
            "all": [
                {"path": "$.steps.decision.decision", "equals": "refer"},
                {"not": {"path": "$.metadata.channel", "in": ["web", "app"]}},
                {"path": "$.input.claim.amount", "less_or_equal": 100},
                {"path": "$.input.x", "exists": False},
            ]
        },
        step="review",
    )

    # WHEN / THEN
    assert describe_condition(condition) == (
        '($.steps.decision.decision == "refer" and not ($.metadata.channel in ["web", "app"]) '
        "and $.input.claim.amount <= 100 and $.input.x is missing)"
    )


# -- evaluation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param({"path": "$.steps.decision.decision", "equals": "refer"}, True, id="equals-string"),
        pytest.param({"path": "$.steps.decision.decision", "equals": "repair"}, False, id="equals-other-string"),
        pytest.param({"path": "$.steps.vulnerability.label", "equals": "vulnerable"}, True, id="equals-triage"),
        pytest.param({"path": "$.steps.decision.parts", "equals": {"b": [1, 2.0], "a": 1.0}}, True, id="deep-equal"),
        pytest.param({"path": "$.steps.decision.flag", "equals": 1}, False, id="true-is-not-1"),
        pytest.param({"path": "$.steps.decision.parts.a", "equals": True}, False, id="1-is-not-true"),
        pytest.param({"path": "$.steps.decision.flag", "equals": True}, True, id="boolean-equals"),
        pytest.param({"path": "$.steps.skipped", "equals": None}, True, id="equals-null"),
        pytest.param({"path": "$.steps.decision.decision", "not_equals": "repair"}, True, id="not-equals"),
        pytest.param({"path": "$.steps.decision.decision", "not_equals": "refer"}, False, id="not-equals-same"),
        pytest.param({"path": "$.steps.decision.decision", "in": ["refer", "review"]}, True, id="in"),
        pytest.param({"path": "$.steps.decision.decision", "in": []}, False, id="in-empty"),
        pytest.param({"path": "$.steps.decision.parts.a", "in": [True]}, False, id="in-no-bool-number-mixing"),
        pytest.param({"path": "$.steps.decision.score", "greater_than": 0.5}, True, id="greater-than"),
        pytest.param({"path": "$.steps.decision.score", "greater_than": 0.7}, False, id="greater-than-equal"),
        pytest.param({"path": "$.steps.decision.score", "greater_or_equal": 0.7}, True, id="greater-or-equal"),
        pytest.param({"path": "$.input.claim.amount", "less_than": 2000}, True, id="less-than"),
        pytest.param({"path": "$.input.claim.amount", "less_or_equal": 1200}, False, id="less-or-equal"),
        pytest.param({"path": "$.metadata.channel", "greater_than": "app"}, True, id="strings-ordered"),
        pytest.param({"path": "$.metadata.priority", "greater_than": 1}, False, id="string-vs-number-is-false"),
        pytest.param({"path": "$.steps.decision.decision", "less_than": 5}, False, id="number-vs-string-is-false"),
        pytest.param({"path": "$.steps.decision.flag", "greater_than": 0}, False, id="boolean-is-not-a-number"),
        pytest.param({"path": "$.steps.decision.parts", "greater_than": 0}, False, id="object-is-not-ordered"),
        pytest.param({"path": "$.steps.decision.decision", "exists": True}, True, id="exists"),
        pytest.param({"path": "$.steps.decision.nothing", "exists": False}, True, id="exists-false"),
        pytest.param({"path": "$.steps.decision.nothing", "exists": True}, False, id="missing-does-not-exist"),
        pytest.param({"path": "$.steps.skipped", "exists": True}, True, id="null-exists"),
    ],
)
def test_each_operator_compares_values_of_the_same_json_type(raw: dict[str, Any], expected: bool):
    # GIVEN a test over the scope
    # WHEN it is evaluated
    # THEN it holds as the module docstring says (numbers with numbers, strings with strings)
    assert holds(raw) is expected


@pytest.mark.parametrize(
    "operator_and_value",
    [
        {"equals": "x"},
        {"not_equals": "x"},
        {"in": ["x"]},
        {"greater_than": 0},
        {"greater_or_equal": 0},
        {"less_than": 0},
        {"less_or_equal": 0},
    ],
    ids=lambda value: next(iter(value)),
)
@pytest.mark.parametrize(
    "path",
    ["$.steps.decision.nothing", "$.steps.unknown.label", "$.steps.skipped.label", "$.input.claim.amount.deeper"],
)
def test_a_missing_path_makes_every_comparison_false_not_equals_included(operator_and_value: dict[str, Any], path: str):
    # GIVEN a comparison on a path that selects nothing (missing key, step not run, skipped step)
    raw = {"path": path, **operator_and_value}

    # WHEN it is evaluated / THEN it is false and nothing is raised
    assert holds(raw) is False


def test_not_of_equals_is_how_to_say_missing_or_different():
    # GIVEN "not equals" written as a negation
    raw = {"not": {"path": "$.steps.decision.nothing", "equals": "x"}}

    # WHEN / THEN it holds for a missing path, where not_equals does not
    assert holds(raw) is True
    assert holds({"path": "$.steps.decision.nothing", "not_equals": "x"}) is False


def test_a_path_selecting_several_values_makes_comparisons_false_but_exists_true():
    # GIVEN a wildcard over a fan-out's members (two values)
    path = "$.steps.classify.*.label"

    # WHEN / THEN comparisons need exactly one value; exists needs at least one
    assert holds({"path": path, "equals": "billing"}) is False
    assert holds({"path": path, "in": ["billing", "fraud"]}) is False
    assert holds({"path": path, "exists": True}) is True
    assert holds({"path": "$.steps.classify['model-a'].label", "equals": "billing"}) is True


def test_a_filter_over_unexpected_types_is_false_not_an_error():
    # GIVEN a filter comparing a number with strings inside jsonpath_ng
    raw = {"path": "$.input.tags[?(@ > 3)]", "exists": True}

    # WHEN / THEN nothing is raised: the path selects nothing
    assert holds(raw) is False


def test_combinators_evaluate_all_any_and_not():
    # GIVEN conditions combining a true and a false test
    true = {"path": "$.steps.decision.decision", "equals": "refer"}
    false = {"path": "$.steps.decision.decision", "equals": "repair"}

    # WHEN / THEN
    assert holds({"all": [true, true]}) is True
    assert holds({"all": [true, false]}) is False
    assert holds({"any": [false, true]}) is True
    assert holds({"any": [false, false]}) is False
    assert holds({"not": false}) is True
    assert holds({"not": {"all": [true, false]}}) is True


def test_an_empty_or_partial_scope_never_raises():
    # GIVEN scopes without steps, with null input, or nothing at all
    raw = {"all": [{"path": "$.steps.decision.decision", "equals": "refer"}, {"path": "$.input.x", "exists": True}]}

    # WHEN / THEN every evaluation is simply false
    assert holds(raw, {}) is False
    assert holds(raw, {"input": None, "steps": {}, "metadata": {}}) is False
    assert holds(raw, {"input": "not an object", "steps": {"decision": [1, 2]}}) is False

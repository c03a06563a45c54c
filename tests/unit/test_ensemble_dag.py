"""Inferring a declarative ensemble's DAG from its mappings, conditions and ``after``, and its errors."""

from __future__ import annotations

from typing import Any

import pytest

from ensemble_gateway.domain.conditions import Comparison
from ensemble_gateway.domain.ensemble_dag import check_step_references, infer_dag, unknown_step_message
from ensemble_gateway.domain.errors import CatalogValidationError
from ensemble_gateway.domain.models import EnsembleSpec

VEHICLE_STEPS: dict[str, Any] = {
    "damage": {"service": "damage-severity", "mapping": {"$bytes": "$.input.photo", "content_type": "image/png"}},
    "cost": {"service": "repair-cost", "mapping": {"claim": "$.input.claim"}},
    "fraud": {"service": "fraud-score", "mapping": {"claim": "$.input.claim"}},
    "decision": {
        "service": "claim-decision",
        "mapping": {
            "fraud_probability": "$.steps.fraud.fraud_probability",
            "estimated_repair_cost": "$.steps.cost.estimated_repair_cost",
            "severity": "$.steps.damage.severity",
            "vehicle_value": "$.input.claim.vehicle_value",
        },
    },
}
TRIAGE_STEPS: dict[str, Any] = {
    "vulnerability": {"service": "triage-vulnerable", "mapping": {"text": "$.input.text"}},
    "escalate": {
        "service": "triage-escalation",
        "mapping": {"text": "$.input.text"},
        "when": {"path": "$.steps.vulnerability.label", "equals": "vulnerable"},
    },
    "classify": {"fan_out": {"task": "complaint-classification"}, "mapping": {"text": "$.input.text"}},
}
TRIAGE_OUTPUT = {
    "vulnerable": {"$path": "$.steps.vulnerability.label", "default": None},
    "escalation": "$.steps.escalate",
    "labels": "$.steps.classify",
}


def spec(steps: dict[str, Any], output: Any = None) -> EnsembleSpec:
    return EnsembleSpec.model_validate({"steps": steps, "output": output})


def call(service: str, mapping: Any = "$.input", **extra: Any) -> dict[str, Any]:
    return {"service": service, "mapping": mapping, **extra}


def refused(steps: dict[str, Any], output: Any = None) -> str:
    with pytest.raises(CatalogValidationError) as caught:
        infer_dag("claims", spec(steps, output))
    return caught.value.message


# -- shapes ------------------------------------------------------------------------------------------


def test_vehicle_claim_three_parallel_steps_then_a_decision():
    # GIVEN damage, cost and fraud reading only the request, and decision reading all three
    # WHEN the DAG is inferred
    dag = infer_dag("vehicle-claim", spec(VEHICLE_STEPS, "decision"))

    # THEN the three run first, together, and decision after them
    assert dag.upstream == {
        "damage": frozenset(),
        "cost": frozenset(),
        "fraud": frozenset(),
        "decision": frozenset({"damage", "cost", "fraud"}),
    }
    assert dag.ancestors["decision"] == {"damage", "cost", "fraud"}
    assert dag.levels == [["cost", "damage", "fraud"], ["decision"]]
    assert dag.sinks == ["decision"]
    assert (dag.output_step, dag.output_mapping) == ("decision", None)


def test_the_output_defaults_to_the_only_last_step():
    # GIVEN the vehicle claim without an output
    # WHEN the DAG is inferred
    dag = infer_dag("vehicle-claim", spec(VEHICLE_STEPS))

    # THEN the only sink is the output
    assert dag.output_step == "decision"


def test_a_chain_has_one_step_per_level_and_transitive_ancestors():
    # GIVEN a → b → c through mappings
    steps = {
        "c": call("svc-c", {"x": "$.steps.b.y"}),
        "b": call("svc-b", {"x": "$.steps.a.y"}),
        "a": call("svc-a"),
    }

    # WHEN the DAG is inferred
    dag = infer_dag("chain", spec(steps))

    # THEN each step waits for the one before, and c for both
    assert dag.levels == [["a"], ["b"], ["c"]]
    assert dag.upstream["c"] == {"b"}
    assert dag.ancestors["c"] == {"a", "b"}
    assert dag.output_step == "c"


def test_a_diamond_runs_its_middle_steps_together():
    # GIVEN a → (b, c) → d
    steps = {
        "a": call("svc-a"),
        "b": call("svc-b", {"x": "$.steps.a.v"}),
        "c": call("svc-c", {"x": "$.steps.a.v"}),
        "d": call("svc-d", {"b": "$.steps.b", "c": "$.steps.c"}),
    }

    # WHEN the DAG is inferred
    dag = infer_dag("diamond", spec(steps))

    # THEN
    assert dag.levels == [["a"], ["b", "c"], ["d"]]
    assert dag.ancestors["d"] == {"a", "b", "c"}
    assert dag.level_of("d") == 3


def test_reading_a_fan_out_step_output_is_a_dependency_like_any_other():
    # GIVEN a fan-out step and a summary reading one member of it and all of it
    steps = {
        "classify": {"fan_out": {"task": "complaint-classification"}, "mapping": {"text": "$.input.text"}},
        "summary": call("summarise", {"a": "$.steps.classify['model-a'].label", "all": "$.steps.classify"}),
    }

    # WHEN the DAG is inferred
    dag = infer_dag("triage", spec(steps))

    # THEN summary follows the fan-out
    assert dag.upstream["summary"] == {"classify"}
    assert dag.output_step == "summary"


def test_a_when_is_a_dependency_even_when_the_mapping_reads_nothing_of_that_step():
    # GIVEN review running only when decision says refer, its mapping reading the request only
    steps = {
        **VEHICLE_STEPS,
        "review": call(
            "claim-review", {"claim": "$.input.claim"}, when={"path": "$.steps.decision.decision", "equals": "refer"}
        ),
    }

    # WHEN the DAG is inferred
    dag = infer_dag("vehicle-claim", spec(steps, "decision"))

    # THEN review runs after decision, and its parsed condition is kept
    assert dag.upstream["review"] == {"decision"}
    assert dag.levels[-1] == ["review"]
    assert dag.conditions == {"review": Comparison("$.steps.decision.decision", "equals", "refer")}


def test_after_orders_steps_without_data():
    # GIVEN audit reading only the request but listed after decision
    steps = {**VEHICLE_STEPS, "audit": call("audit-log", {"claim": "$.input.claim"}, after=["decision"])}

    # WHEN the DAG is inferred
    dag = infer_dag("vehicle-claim", spec(steps, "decision"))

    # THEN audit follows decision and is the only sink; the output stays decision
    assert dag.upstream["audit"] == {"decision"}
    assert dag.sinks == ["audit"]
    assert dag.output_step == "decision"


def test_an_optional_step_with_a_default_and_a_nested_ensemble_are_plain_steps():
    # GIVEN an optional fraud check with a default, and a step whose service is itself an ensemble
    steps = {
        "fraud": call("fraud-score", {"claim": "$.input.claim"}, optional=True, default={"fraud_probability": 0}),
        "claim": call("vehicle-claim", {"claim": "$.input.claim", "fraud": "$.steps.fraud.fraud_probability"}),
    }

    # WHEN the DAG is inferred
    dag = infer_dag("outer", spec(steps))

    # THEN they are ordered like any other steps
    assert dag.levels == [["fraud"], ["claim"]]
    assert dag.output_step == "claim"


def test_complaint_triage_with_an_output_mapping_combining_steps():
    # GIVEN the triage: vulnerability → escalate (when), classify beside them, output combining all
    # WHEN the DAG is inferred
    dag = infer_dag("complaint-triage", spec(TRIAGE_STEPS, TRIAGE_OUTPUT))

    # THEN there are two sinks, which an output mapping allows, and no output step
    assert dag.upstream == {
        "vulnerability": frozenset(),
        "escalate": frozenset({"vulnerability"}),
        "classify": frozenset(),
    }
    assert dag.levels == [["classify", "vulnerability"], ["escalate"]]
    assert dag.sinks == ["classify", "escalate"]
    assert dag.output_step is None
    assert dag.output_mapping == TRIAGE_OUTPUT


def test_an_output_mapping_may_read_every_step():
    # GIVEN an output reading $.steps as a whole
    # WHEN / THEN it is accepted: every step has finished when the output is built
    dag = infer_dag("vehicle-claim", spec(VEHICLE_STEPS, {"all": "$.steps", "input": "$.input.claim"}))
    assert dag.output_mapping == {"all": "$.steps", "input": "$.input.claim"}


# -- errors ------------------------------------------------------------------------------------------


def test_a_path_naming_an_unknown_step_lists_the_steps():
    # GIVEN decision reading a misspelt step
    steps = {**VEHICLE_STEPS, "decision": call("claim-decision", {"p": "$.steps.frad.fraud_probability"})}

    # WHEN / THEN
    assert refused(steps) == (
        "ensemble 'claims': step 'decision' reads $.steps.frad.fraud_probability: no step 'frad'; "
        "steps are: cost, damage, decision, fraud"
    )


def test_a_when_naming_an_unknown_step_lists_the_steps():
    # GIVEN a condition on a misspelt step
    steps = {**VEHICLE_STEPS, "review": call("r", when={"path": "$.steps.decison.decision", "equals": "refer"})}

    # WHEN / THEN
    assert refused(steps, "decision") == (
        "ensemble 'claims': step 'review' reads $.steps.decison.decision: no step 'decison'; "
        "steps are: cost, damage, decision, fraud, review"
    )


def test_a_step_reading_its_own_output_is_refused():
    # GIVEN cost reading itself, through its mapping or its when
    by_mapping = {"cost": call("repair-cost", {"previous": "$.steps.cost.estimated_repair_cost"})}
    by_when = {"cost": call("repair-cost", when={"path": "$.steps.cost.x", "exists": True})}

    # WHEN / THEN
    assert refused(by_mapping) == (
        "ensemble 'claims': step 'cost' reads $.steps.cost.estimated_repair_cost: a step cannot read its own output"
    )
    assert refused(by_when) == "ensemble 'claims': step 'cost' reads $.steps.cost.x: a step cannot read its own output"


def test_a_step_reading_every_step_is_refused():
    # GIVEN a step mapping $.steps.* (whatever happens to have finished)
    steps = {**VEHICLE_STEPS, "decision": call("claim-decision", {"all": "$.steps.*"})}

    # WHEN / THEN it must name what it reads, or the gateway cannot order it
    assert refused(steps) == (
        "ensemble 'claims': step 'decision' reads $.steps.*: a step names the steps it reads ($.steps.<name>), "
        "so that the gateway knows what to run first"
    )


@pytest.mark.parametrize(
    ("steps", "cycle"),
    [
        pytest.param(
            {"a": call("s", {"x": "$.steps.b.v"}), "b": call("s", {"x": "$.steps.a.v"})}, "a → b → a", id="mappings"
        ),
        pytest.param(
            {
                "b": call("s", {"x": "$.steps.c.v"}),
                "c": call("s", {"x": "$.steps.a.v"}),
                "a": call("s", when={"path": "$.steps.b.v", "equals": 1}),
            },
            "a → c → b → a",
            id="through-a-when",
        ),
        pytest.param(
            {"a": call("s", after=["b"]), "b": call("s", {"x": "$.steps.a.v"}), "c": call("s")},
            "a → b → a",
            id="through-after",
        ),
    ],
)
def test_cycles_are_refused_naming_the_cycle(steps: dict[str, Any], cycle: str):
    # GIVEN steps that wait for each other
    # WHEN / THEN the cycle is named in running order, from its first name
    assert refused(steps) == (
        f"ensemble 'claims': the steps wait for each other in a cycle: {cycle} (each runs after the one before it)"
    )


def test_after_naming_an_unknown_step_or_the_step_itself_is_refused():
    # GIVEN after lists that name no step, or the step itself
    unknown = {**VEHICLE_STEPS, "audit": call("audit", after=["decison"])}
    itself = {"audit": call("audit", after=["audit"])}

    # WHEN / THEN
    assert refused(unknown) == (
        "ensemble 'claims': step 'audit' runs after 'decison': no step 'decison'; "
        "steps are: audit, cost, damage, decision, fraud"
    )
    assert refused(itself) == "ensemble 'claims': step 'audit' lists itself in 'after'"


def test_an_output_naming_no_step_is_refused():
    # GIVEN an output that is no step (and one that looks like a path)
    # WHEN / THEN
    assert refused(VEHICLE_STEPS, "decisions") == (
        "ensemble 'claims': output names no step 'decisions'; steps are: cost, damage, decision, fraud"
    )
    assert refused(VEHICLE_STEPS, "$.steps.decision") == (
        "ensemble 'claims': output names no step '$.steps.decision'; steps are: cost, damage, decision, fraud "
        '(a mapping is an object, e.g. {"result": "$.steps.<name>"})'
    )


def test_no_output_with_several_last_steps_is_refused():
    # GIVEN two (then three) steps that nothing reads, and no output
    two = {**VEHICLE_STEPS, "review": call("r", {"d": "$.steps.decision"}), "audit": call("a", after=["decision"])}
    three = {"x": call("s"), "y": call("s"), "z": call("s")}

    # WHEN / THEN
    assert refused(two) == ("ensemble 'claims': give 'output': steps audit and review are both last")
    assert refused(three) == ("ensemble 'claims': give 'output': steps x, y and z are all last")


def test_mapping_errors_are_reported_with_step_key_and_path():
    # GIVEN a mapping path that does not parse
    steps = {"a": call("s", {"claim": "$.input.claim["})}

    # WHEN / THEN mapping.validate_mapping's message comes with the ensemble's name
    assert refused(steps).startswith(
        "ensemble 'claims': step 'a', key 'claim', path '$.input.claim[': invalid JSONPath syntax"
    )


def test_output_mapping_errors_name_the_output_not_a_step():
    # GIVEN output mappings reading an unknown step, or with a bad path
    # WHEN / THEN
    assert refused(VEHICLE_STEPS, {"result": "$.steps.decison"}) == (
        "ensemble 'claims': output reads $.steps.decison: no step 'decison'; steps are: cost, damage, decision, fraud"
    )
    assert refused(VEHICLE_STEPS, {"result": "$.steps.decision["}).startswith(
        "ensemble 'claims': output, key 'result', path '$.steps.decision[': invalid JSONPath syntax"
    )
    assert refused(VEHICLE_STEPS, {"result": "$.request"}) == (
        "ensemble 'claims': output, key 'result', path '$.request': a path must start with $.input, $.steps or "
        "$.metadata"
    )


def test_an_invalid_when_is_refused_with_the_ensemble_and_step():
    # GIVEN a when with an unknown operator
    steps = {"a": call("s", when={"path": "$.input.x", "is": 1})}

    # WHEN / THEN
    assert refused(steps).startswith("ensemble 'claims': step 'a': when: unknown operator 'is'; operators are: ")


# -- the hand-written path's helper ---------------------------------------------------------------


def test_check_step_references_gives_the_clear_message_for_a_misspelt_step():
    # GIVEN a hand-written ensemble's mapping reading a step that does not exist at all
    mapping = {"nested": [{"$path": "$.steps.frad.p", "default": 0}], "ok": "$.steps.cost.c", "lit": "$$.steps.x"}

    # WHEN / THEN the message lists the steps (registration adds the ensemble prefix)
    with pytest.raises(CatalogValidationError) as caught:
        check_step_references("decision", mapping, ["fraud", "cost", "damage", "decision"])
    assert caught.value.message == (
        "step 'decision' reads $.steps.frad.p: no step 'frad'; steps are: cost, damage, decision, fraud"
    )
    assert (
        unknown_step_message(None, "$.steps.x", "x", ["b", "a"])
        == "output reads $.steps.x: no step 'x'; steps are: a, b"
    )


def test_check_step_references_leaves_known_steps_bad_paths_and_raw_mappings_alone():
    # GIVEN mappings reading known steps, an unparseable path, a raw passthrough and a $bytes
    # WHEN / THEN nothing is raised (validate_mapping reports syntax errors with their key)
    for mapping in (
        {"a": "$.steps.cost.c"},
        {"a": "$.steps.cost["},
        {"$raw": "input"},
        {"$bytes": "$.steps.cost.image", "content_type": "image/png"},
        "$.steps",
    ):
        check_step_references("decision", mapping, {"cost", "decision"})

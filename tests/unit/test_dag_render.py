"""Pictures of a declarative ensemble's DAG: text lines per level and a Mermaid flowchart."""

from __future__ import annotations

from typing import Any

from ensemble_gateway.domain.dag_render import render_mermaid, render_text
from ensemble_gateway.domain.ensemble_dag import infer_dag
from ensemble_gateway.domain.models import EnsembleSpec

VEHICLE: dict[str, Any] = {
    "damage": {"service": "damage-severity", "mapping": {"$bytes": "$.input.photo", "content_type": "image/png"}},
    "cost": {"service": "repair-cost", "mapping": {"claim": "$.input.claim"}},
    "fraud": {"service": "fraud-score", "mapping": {"claim": "$.input.claim"}, "optional": True, "default": 0},
    "decision": {
        "service": "claim-decision",
        "mapping": {"s": "$.steps.damage.severity", "c": "$.steps.cost.c", "f": "$.steps.fraud.p"},
    },
    "review": {
        "service": "claim-review",
        "mapping": {"d": "$.steps.decision"},
        "when": {"path": "$.steps.decision.decision", "equals": "refer"},
    },
    "audit": {"service": "audit-log", "after": ["decision"]},
}
TRIAGE: dict[str, Any] = {
    "vulnerability": {"service": "triage-vulnerable", "mapping": {"text": "$.input.text"}},
    "escalate": {"service": "triage-escalation", "when": {"path": "$.steps.vulnerability.label", "less_than": "x"}},
    "classify": {"fan_out": {"task": "complaint-classification"}},
}


def rendered(steps: dict[str, Any], output: Any) -> tuple[str, str]:
    spec = EnsembleSpec.model_validate({"steps": steps, "output": output})
    dag = infer_dag("claims", spec)
    return render_text("claims", spec, dag), render_mermaid("claims", spec, dag)


def test_the_text_has_one_line_per_level_with_targets_dependencies_conditions_and_optional_steps():
    # GIVEN the vehicle claim with an optional step, a conditional review and an ordered audit
    # WHEN it is rendered as text
    text, _ = rendered(VEHICLE, "decision")

    # THEN each level is a line, in the catalog's order of steps
    assert text.splitlines() == [
        "ensemble 'claims': 6 steps in 3 levels",
        "level 1: damage (damage-severity); cost (repair-cost); fraud (fraud-score) [optional, default 0]",
        "level 2: decision (claim-decision) ← damage, cost, fraud",
        'level 3: review (claim-review) ← decision when $.steps.decision.decision == "refer"; '
        "audit (audit-log) ← decision",
        "output: decision",
    ]


def test_plain_levels_are_comma_separated_and_fan_outs_and_output_mappings_are_shown():
    # GIVEN the triage with an output mapping, and the plain vehicle claim
    text, _ = rendered(TRIAGE, {"labels": "$.steps.classify"})
    plain, _ = rendered({name: VEHICLE[name] for name in ("damage", "cost")} | {"only": {"service": "s"}}, "only")

    # WHEN / THEN
    assert (
        text.splitlines()[1]
        == "level 1: vulnerability (triage-vulnerable), classify (fan_out task complaint-classification)"
    )
    assert text.splitlines()[-1] == 'output: {"labels": "$.steps.classify"}'
    assert plain.splitlines()[:2] == [
        "ensemble 'claims': 3 steps in 1 level",
        "level 1: damage (damage-severity), cost (repair-cost), only (s)",
    ]


def test_mermaid_has_a_node_per_step_edges_from_dependencies_and_an_output_node():
    # GIVEN the vehicle claim
    # WHEN it is rendered as Mermaid
    _, mermaid = rendered(VEHICLE, "decision")
    lines = mermaid.splitlines()

    # THEN it is a fenced flowchart with safe ids, data edges solid, after edges dotted
    assert lines[:2] == ["```mermaid", "graph TD"]
    assert lines[-1] == "```"
    assert '  step1["damage<br/>damage-severity"]' in lines
    assert '  step3["fraud<br/>fraud-score<br/>optional"]' in lines
    assert '  step5["review<br/>claim-review<br/>when $.steps.decision.decision == #quot;refer#quot;"]' in lines
    assert {"  step1 --> step4", "  step2 --> step4", "  step3 --> step4", "  step4 --> step5"} <= set(lines)
    assert "  step4 -.-> step6" in lines
    assert '  output(["output"])' in lines
    assert lines[-2] == "  step4 --> output"


def test_mermaid_escapes_labels_and_feeds_the_output_from_what_its_mapping_reads():
    # GIVEN the triage (a fan-out, a condition with '<') and an output mapping reading two steps
    _, mermaid = rendered(TRIAGE, {"labels": "$.steps.classify", "v": "$.steps.vulnerability"})
    lines = mermaid.splitlines()

    # WHEN / THEN the fan-out is a subroutine node, '<' and '"' are entities, output edges follow the mapping
    assert '  step3[["classify<br/>fan_out task complaint-classification"]]' in lines
    assert '  step2["escalate<br/>triage-escalation<br/>when $.steps.vulnerability.label #lt; #quot;x#quot;"]' in lines
    assert [line for line in lines if line.endswith("--> output")] == ["  step1 --> output", "  step3 --> output"]


def test_an_output_mapping_reading_every_step_is_fed_by_the_last_steps():
    # GIVEN an output reading $.steps as a whole
    _, mermaid = rendered(TRIAGE, {"all": "$.steps"})

    # WHEN / THEN the steps nothing else reads feed it
    assert [line for line in mermaid.splitlines() if line.endswith("--> output")] == [
        "  step2 --> output",
        "  step3 --> output",
    ]

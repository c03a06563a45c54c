"""``ensemble-gateway services plan``: validates like apply, registers nothing, shows the DAG."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ensemble_gateway.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No local runtime and no stack: plan checks a file against itself."""
    monkeypatch.setenv("ENSEMBLE_GATEWAY_STATE", str(tmp_path / "no-runtime.json"))
    monkeypatch.chdir(ROOT)


def plan(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["services", "plan", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write(tmp_path: Path, services: list[dict[str, Any]]) -> Path:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(services))
    return path


ECHO = {"name": "echo", "kind": "model", "model": {"endpoint_name": "echo"}}


def test_plan_prints_the_dag_as_text_and_mermaid(offline: None, capsys: pytest.CaptureFixture[str]) -> None:
    # WHEN the example catalog is planned
    code, out, err = plan(capsys, str(EXAMPLES / "catalog.json"))

    # THEN it is valid, and each ensemble's levels and a Mermaid graph are printed
    assert code == 0, err
    assert "level 1: damage (damage-severity), cost (repair-cost), fraud (fraud-score)" in out
    assert "level 2: decision (claim-decision) ← damage, cost, fraud" in out
    assert "```mermaid\ngraph TD" in out
    assert 'when $.steps.vulnerability.label == "vulnerable"' in out
    assert "no local runtime" in err


def test_plan_asl_prints_the_generated_state_machine(offline: None, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = plan(capsys, str(EXAMPLES / "catalog.json"), "--asl", "--service", "vehicle-claim")
    assert code == 0
    definition = json.loads(out[out.index("\n{") + 1 :])
    # (vehicle-claim's decision ends the execution: the machine has no Complete task)
    assert definition["StartAt"] and "FailEnsemble" in definition["States"]
    assert definition["States"]["decision"]["End"] is True
    assert "${" not in json.dumps(definition)


def test_plan_input_shows_what_each_model_would_receive(
    offline: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # GIVEN a sample claim and the outputs of the steps the decision reads
    for name, output in {"damage": {"severity": "severe"}, "cost": {"estimated_repair_cost": 7000}}.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(output))
    (tmp_path / "fraud.json").write_text(json.dumps({"fraud_probability": 0.25}))
    sample = EXAMPLES / "vehicle-claim" / "samples" / "write-off.json"
    claim = json.loads(sample.read_text())["claim"]

    # WHEN the plan is asked for the inputs
    code, out, _ = plan(
        capsys,
        str(EXAMPLES / "catalog.json"),
        "--service",
        "vehicle-claim",
        "--input",
        str(sample),
        *(f"--step-output={name}={tmp_path / name}.json" for name in ("damage", "cost", "fraud")),
    )

    # THEN each step's mapped input is printed: the claim for cost, the decoded photo for damage,
    # and the decision's fields from the given outputs and the request
    assert code == 0
    lines = {line.split(" → ")[0].strip(): line for line in out.splitlines() if " → " in line}
    assert json.loads(lines["cost"].split(": ", 1)[1]) == {"claim": claim}
    assert "(image/png):" in lines["damage"] and "bytes" in lines["damage"]
    decision = json.loads(lines["decision"].split(": ", 1)[1])
    assert decision == {
        "fraud_probability": 0.25,
        "estimated_repair_cost": 7000,
        "severity": "severe",
        "vehicle_value": claim["vehicle_value"],
    }


def test_plan_says_which_step_outputs_it_needs(offline: None, capsys: pytest.CaptureFixture[str]) -> None:
    sample = EXAMPLES / "vehicle-claim" / "samples" / "write-off.json"
    code, out, _ = plan(capsys, str(EXAMPLES / "catalog.json"), "--service", "vehicle-claim", "--input", str(sample))
    assert code == 0
    assert "decision → claim-decision: needs the output of cost, damage, fraud" in out


@pytest.mark.parametrize(
    ("ensemble", "message"),
    [
        (
            {"steps": {"cost": {"service": "echo"}, "decision": {"service": "echo", "mapping": "$.steps.frad"}}},
            "step 'decision' reads $.steps.frad: no step 'frad'; steps are: cost, decision",
        ),
        (
            {"steps": {"a": {"service": "echo"}}, "output": "b"},
            "output names no step 'b'; steps are: a",
        ),
        (
            {"steps": {"a": {"service": "echo", "after": ["b"]}, "b": {"service": "echo", "after": ["a"]}}},
            "cycle",
        ),
        (
            {"steps": {"a": {"service": "echo", "when": {"path": "$.input.x", "equal": 1}}}},
            "unknown operator 'equal'",
        ),
        (
            {"steps": {"a": {"service": "echo"}, "b": {"service": "echo"}}},
            "give 'output'",
        ),
    ],
)
def test_plan_refuses_what_apply_refuses_with_the_same_message(
    offline: None, capsys: pytest.CaptureFixture[str], tmp_path: Path, ensemble: dict[str, Any], message: str
) -> None:
    # GIVEN a catalog file with a broken declarative ensemble
    path = write(tmp_path, [ECHO, {"name": "broken", "kind": "ensemble", "ensemble": ensemble}])

    # WHEN it is planned THEN it exits 2 with the message, and no traceback
    code, _, err = plan(capsys, str(path))
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def hand_written_triage(tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    """A catalog file: the example models and complaint-triage on the escape-hatch ASL, changed."""
    definition = json.loads((ROOT / "statemachines" / "complaint-triage.asl.json").read_text())
    change(definition)
    (tmp_path / "triage.asl.json").write_text(json.dumps(definition))
    catalog = json.loads((EXAMPLES / "catalog.json").read_text())
    triage = next(s for s in catalog if s["name"] == "complaint-triage")
    triage["ensemble"]["definition"] = "triage.asl.json"
    triage["ensemble"].pop("output")
    triage["ensemble"]["steps"]["escalate"].pop("when")
    models = [s for s in catalog if s["kind"] == "model"]
    for model in models:
        model["model"].pop("model_data", None)
    return write(tmp_path, [*models, triage])


def test_plan_refuses_a_retry_on_a_hand_written_callback_task(
    offline: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # GIVEN the escape-hatch ASL with a Retry added to a callback task
    def add_retry(definition: dict[str, Any]) -> None:
        definition["States"]["Vulnerability"]["Retry"] = [{"ErrorEquals": ["States.ALL"]}]

    # WHEN it is planned THEN it is refused naming the state
    code, _, err = plan(capsys, str(hand_written_triage(tmp_path, add_retry)), "--root", str(tmp_path))
    assert code == 2
    assert "state 'Vulnerability' retries a callback task" in err


def test_plan_refuses_an_unguarded_choice_in_hand_written_asl(
    offline: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # GIVEN the escape-hatch ASL with its Choice as first written: no IsPresent guard (moto takes the
    # Default on a missing value; AWS fails the execution with States.Runtime, which nothing catches)
    def unguard(definition: dict[str, Any]) -> None:
        definition["States"]["IsVulnerable"]["Choices"] = [
            {"Variable": "$.steps.vulnerability.output.label", "StringEquals": "vulnerable", "Next": "Escalate"}
        ]

    # WHEN it is planned THEN it is refused, saying why
    code, _, err = plan(capsys, str(hand_written_triage(tmp_path, unguard)), "--root", str(tmp_path))
    assert code == 2
    assert "Choice 'IsVulnerable' reads $.steps.vulnerability.output.label without an IsPresent guard" in err

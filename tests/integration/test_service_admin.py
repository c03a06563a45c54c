"""``services delete`` and ``services orphans`` through the CLI, and the sweeper's StopExecution,
against the stack deployed from template.yaml on moto. The CLI finds the stack as it finds the
local runtime (its state file); every AWS call a command makes is recorded and must be one the
operator policy grants for that command (tests/operator_permissions.py)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ensemble_gateway import cli
from ensemble_gateway.adapters.dynamodb import DynamoServiceCatalog
from ensemble_gateway.adapters.stepfunctions import StepFunctionsEngine, StepFunctionsMachines
from ensemble_gateway.domain.models import Service
from operator_permissions import IAM_ACTION, IAM_PREFIX, OPERATOR_COMMANDS

WAITING = json.dumps({"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 3600, "End": True}}})


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def operator(stack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Runs CLI commands against the stack; records the AWS calls each makes as IAM actions."""
    state = tmp_path / "state.json"
    state.write_text(
        json.dumps({"aws_url": stack.endpoint, "outputs": stack.stack.outputs, "stack_name": stack.stack.stack_name})
    )
    monkeypatch.setenv("ENSEMBLE_GATEWAY_STATE", str(state))
    original = cli._aws_target

    class Operator:
        actions: set[str] = set()

        def run(self, *argv: str) -> tuple[int, set[str]]:
            """The command's exit status and the IAM actions of the calls it made."""
            self.actions = set()
            code = cli.main(list(argv))
            return code, self.actions

    recorder = Operator()

    def recording_target(args: Any) -> Any:
        outputs, factory, stack_name = original(args)

        def recording_factory(service: str) -> Any:
            client = factory(service)
            prefix = IAM_PREFIX.get(service, service)

            def record(model: Any, **_: Any) -> None:
                recorder.actions.add(f"{prefix}:{model.name}")

            client.meta.events.register("before-call", record)
            return client

        return outputs, recording_factory, stack_name

    monkeypatch.setattr(cli, "_aws_target", recording_target)
    yield recorder


def catalog(stack: Any) -> DynamoServiceCatalog:
    return DynamoServiceCatalog(stack.stack.outputs["ServicesTableName"], stack.client("dynamodb"))


def machines(stack: Any) -> StepFunctionsMachines:
    return StepFunctionsMachines(stack.client("stepfunctions"))


def register(stack: Any, operator: Any, tmp_path: Path, model: str, ensemble: str) -> Service:
    """``services apply`` of a real-time model and an ensemble of one step calling it."""
    entries = [
        {"name": model, "kind": "model", "model": {"endpoint_name": model, "invocation": "realtime"}},
        {
            "name": ensemble,
            "kind": "ensemble",
            "ensemble": {"steps": {"only": {"service": model, "mapping": {"x": "$.input.x"}}}, "output": "only"},
        },
    ]
    path = tmp_path / f"{ensemble}.json"
    path.write_text(json.dumps(entries))
    code, actions = operator.run("services", "apply", str(path))
    assert code == 0
    assert actions <= OPERATOR_COMMANDS["services apply"], actions - OPERATOR_COMMANDS["services apply"]
    registered = catalog(stack).get(ensemble)
    assert registered is not None and registered.ensemble is not None
    return registered


def test_deleting_an_ensemble_removes_its_entry_and_its_state_machine(
    stack: Any, operator: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an ensemble registered by services apply
    model, ensemble = unique("echo"), unique("pair")
    arn = register(stack, operator, tmp_path, model, ensemble).ensemble.state_machine_arn  # type: ignore[union-attr]
    assert arn is not None and machines(stack).role_of(arn) is not None
    capsys.readouterr()

    # WHEN the operator deletes it
    code, actions = operator.run("services", "delete", ensemble)

    # THEN its entry and its state machine are gone
    assert code == 0
    assert f"deleted service {ensemble}: catalog entry removed, state machine {arn} deleted" in capsys.readouterr().out
    assert catalog(stack).get(ensemble) is None
    assert machines(stack).role_of(arn) is None
    # AND every call it made is one the operator policy grants it
    assert actions <= OPERATOR_COMMANDS["services delete"], actions - OPERATOR_COMMANDS["services delete"]
    # AND deleting it again says there is nothing of that name
    assert operator.run("services", "delete", ensemble)[0] == 2


def test_a_service_an_ensemble_uses_is_not_deleted_without_force(
    stack: Any, operator: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a model that an ensemble's step calls
    model, ensemble = unique("echo"), unique("pair")
    register(stack, operator, tmp_path, model, ensemble)
    capsys.readouterr()

    # WHEN the operator deletes the model
    code, _ = operator.run("services", "delete", model)

    # THEN it is refused, naming the ensemble, and nothing changed
    assert code == 2
    assert f"service '{model}' is a step of {ensemble}" in capsys.readouterr().err
    found = catalog(stack).get(model)
    assert found is not None and found.active

    # WHEN forced
    assert operator.run("services", "delete", model, "--force")[0] == 0
    # THEN it is gone
    assert catalog(stack).get(model) is None


def test_an_ensemble_with_running_executions_is_not_deleted_without_force(
    stack: Any, operator: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an ensemble whose state machine has an execution running
    name = unique("busy")
    role = stack.stack.outputs["EnsembleStateMachineRoleArn"]
    arn = machines(stack).create_or_update(f"{stack.stack.stack_name}-{name}", WAITING, role)
    stack.client("stepfunctions").start_execution(stateMachineArn=arn, name="p-running")
    catalog(stack).put(
        Service.model_validate(
            {
                "name": name,
                "kind": "ensemble",
                "ensemble": {
                    "definition": "x.asl.json",
                    "steps": {"a": {"service": "echo", "mapping": {}}},
                    "state_machine_arn": arn,
                },
            }
        )
    )
    assert machines(stack).running_executions(arn) == ["p-running"]

    # WHEN the operator deletes it
    code, _ = operator.run("services", "delete", name)

    # THEN it is refused, naming the execution; the entry stays active
    assert code == 2
    assert "has running executions (p-running)" in capsys.readouterr().err
    found = catalog(stack).get(name)
    assert found is not None and found.active
    # WHEN forced, THEN it goes
    assert operator.run("services", "delete", name, "--force")[0] == 0
    assert catalog(stack).get(name) is None and machines(stack).role_of(arn) is None


def test_orphans_are_the_stacks_state_machines_and_endpoint_stacks_no_entry_accounts_for(
    stack: Any, operator: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a registered ensemble (not an orphan) ...
    model, ensemble = unique("echo"), unique("pair")
    register(stack, operator, tmp_path, model, ensemble)
    prefix = stack.stack.stack_name
    role = stack.stack.outputs["EnsembleStateMachineRoleArn"]
    sfn = machines(stack)
    # ... a state machine of the stack whose entry was removed by hand (an orphan) ...
    ghost = sfn.create_or_update(f"{prefix}-{unique('ghost')}", WAITING, role)
    # ... one with the stack's prefix but another role (another stack "<stack>-prod"'s) ...
    other_role = stack.client("iam").create_role(RoleName=unique("other"), AssumeRolePolicyDocument="{}")["Role"]
    sfn.create_or_update(f"{prefix}-prod-{unique('theirs')}", WAITING, other_role["Arn"])
    # ... and endpoint stacks: one of a service that is gone, one of the registered model
    cloudformation = stack.client("cloudformation")
    body = json.dumps({"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}})
    gone = f"{prefix}-model-{unique('retired')}"
    cloudformation.create_stack(StackName=gone, TemplateBody=body)
    cloudformation.create_stack(StackName=f"{prefix}-model-{model}", TemplateBody=body)
    capsys.readouterr()

    # WHEN the operator lists the orphans
    code, actions = operator.run("services", "orphans", "--json")

    # THEN exactly the ghost state machine and the endpoint stack of the gone service are listed
    assert code == 0
    found = json.loads(capsys.readouterr().out)
    assert [m["arn"] for m in found["state_machines"]] == [ghost]
    assert [s["name"] for s in found["endpoint_stacks"]] == [gone]
    assert found["endpoint_stacks"][0]["service"] == gone.removeprefix(f"{prefix}-model-")
    assert actions <= OPERATOR_COMMANDS["services orphans"], actions - OPERATOR_COMMANDS["services orphans"]

    # WHEN the operator deletes the orphan state machine by its service name (no entry)
    ghost_name = ghost.rsplit(":", 1)[1].removeprefix(f"{prefix}-")
    assert operator.run("services", "delete", ghost_name)[0] == 0
    assert "state machine" in capsys.readouterr().out
    # THEN it is gone from the list
    operator.run("services", "orphans", "--json")
    assert json.loads(capsys.readouterr().out)["state_machines"] == []


def test_client_commands_call_only_what_the_operator_policy_grants(
    operator: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # WHEN the operator creates a client and rotates its webhook secret
    code, created = operator.run("clients", "create", unique("acme"), "--json")
    client_id = json.loads(capsys.readouterr().out)["client_id"]
    rotate_code, rotated = operator.run("clients", "rotate-secret", client_id)

    # THEN both worked with the calls the policy grants them
    assert code == rotate_code == 0
    assert created <= OPERATOR_COMMANDS["clients create"], created
    assert rotated <= OPERATOR_COMMANDS["clients rotate-secret"], rotated


def test_stopping_an_execution_and_one_that_does_not_exist(stack: Any) -> None:
    # GIVEN an ensemble state machine with a running execution named after its prediction
    role = stack.stack.outputs["EnsembleStateMachineRoleArn"]
    arn = machines(stack).create_or_update(f"{stack.stack.stack_name}-{unique('slow')}", WAITING, role)
    engine = StepFunctionsEngine(stack.client("stepfunctions"))
    execution = engine.start(arn, "p-timed-out", {})

    # WHEN the sweeper's adapter stops it, THEN it is stopped with the reason
    assert engine.stop(arn, "p-timed-out", "Timeout", "no result within 600 s") is True
    # (AWS answers ABORTED at once; moto's executor, when another test enabled it, may take a
    # moment to see the stop.)
    deadline = time.monotonic() + 10
    described = stack.client("stepfunctions").describe_execution(executionArn=execution)
    while described["status"] == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.1)
        described = stack.client("stepfunctions").describe_execution(executionArn=execution)
    assert described["status"] == "ABORTED"
    # AND an execution that was never started is no error: there is nothing to stop
    assert engine.stop(arn, "p-never-started", "Timeout", "no result") is False


def test_audit_export_and_show_read_the_trail_with_only_what_the_operator_policy_grants(
    stack: Any, operator: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a decision record in the stack's bucket, in the audit layout
    from datetime import UTC, datetime

    from ensemble_gateway.adapters.s3 import S3AuditSink

    prediction_id = "p" + datetime.now(UTC).strftime("%Y%m%d%H%M%S") + uuid.uuid4().hex[:12]
    finished = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    record = {
        "record_id": f"{prediction_id}:COMPLETED",
        "prediction_id": prediction_id,
        "kind": "prediction",
        "service": "fraud-score",
        "version": "1.0.0",
        "status": "COMPLETED",
        "finished_at": finished,
        "recorded_at": finished,
        "input": {"uri": f"s3://{stack.bucket}/inputs/{prediction_id}", "sha256": "ab" * 32, "size": 3},
    }
    S3AuditSink(stack.bucket, client=stack.client("s3")).put([record])
    out = tmp_path / "audit.jsonl"

    # WHEN an operator exports the last hour and shows the prediction
    exported, export_actions = operator.run("audit", "export", "--since", "1h", "-o", str(out))
    shown, show_actions = operator.run("audit", "show", prediction_id, "--json")
    stats, stats_actions = operator.run("stats", "--since", "1h", "--json")

    # THEN both find it
    assert exported == 0 and shown == 0 and stats == 0
    assert f"{prediction_id}:COMPLETED" in out.read_text()
    printed = capsys.readouterr().out
    assert '"sha256": "' + "ab" * 32 in printed
    # AND every call they made is one the operator policy grants them
    commands = (("audit export", export_actions), ("audit show", show_actions), ("stats", stats_actions))
    for command, actions in commands:
        granted = {IAM_ACTION.get(action, action) for action in actions}
        assert granted <= OPERATOR_COMMANDS[command], granted - OPERATOR_COMMANDS[command]

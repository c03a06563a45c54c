"""Step Functions adapter: start executions and answer task tokens."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .aws import LazyClient, error_code

# A token that timed out, was answered already or belongs to a finished execution: the answer is
# late or a duplicate, which is normal under at-least-once delivery.
STALE_TOKEN_ERRORS = frozenset({"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"})


class StepFunctionsEngine(LazyClient):
    service_name = "stepfunctions"

    def start(self, state_machine_arn: str, name: str, payload: Mapping[str, Any]) -> str:
        try:
            response = self.client.start_execution(
                stateMachineArn=state_machine_arn, name=name, input=json.dumps(payload)
            )
        except Exception as error:
            if error_code(error) == "ExecutionAlreadyExists":
                # Same name = same prediction: the execution was started by an earlier delivery.
                return f"{state_machine_arn.replace(':stateMachine:', ':execution:')}:{name}"
            raise
        return str(response["executionArn"])

    def succeed_task(self, token: str, output: Mapping[str, Any]) -> bool:
        try:
            self.client.send_task_success(taskToken=token, output=json.dumps(output))
        except Exception as error:
            if error_code(error) in STALE_TOKEN_ERRORS:
                return False
            raise
        return True

    def fail_task(self, token: str, error: str, cause: str) -> bool:
        try:
            self.client.send_task_failure(taskToken=token, error=error[:256], cause=cause[:32768])
        except Exception as failure:
            if error_code(failure) in STALE_TOKEN_ERRORS:
                return False
            raise
        return True


class StepFunctionsMachines(LazyClient):
    """Creates and updates the ensembles' Standard state machines."""

    service_name = "stepfunctions"

    def create_or_update(self, name: str, definition: str, role_arn: str) -> str:
        try:
            response = self.client.create_state_machine(
                name=name, definition=definition, roleArn=role_arn, type="STANDARD"
            )
            return str(response["stateMachineArn"])
        except Exception as error:
            if error_code(error) != "StateMachineAlreadyExists":
                raise
        arn = self._arn_of(name)
        self.client.update_state_machine(stateMachineArn=arn, definition=definition, roleArn=role_arn)
        return arn

    def _arn_of(self, name: str) -> str:
        paginator = self.client.get_paginator("list_state_machines")
        for page in paginator.paginate():
            for machine in page["stateMachines"]:
                if machine["name"] == name:
                    return str(machine["stateMachineArn"])
        raise LookupError(f"state machine {name} exists but was not listed")

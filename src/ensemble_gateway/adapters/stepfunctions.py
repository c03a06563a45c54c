"""Step Functions adapter: start and stop executions, answer task tokens, manage the ensembles'
state machines."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .aws import LazyClient, error_code

# A token that timed out, was answered already or belongs to a finished execution: the answer is
# late or a duplicate, which is normal under at-least-once delivery.
STALE_TOKEN_ERRORS = frozenset({"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"})
# Stopping an execution that was never started (or whose history has expired): nothing to stop.
NO_SUCH_EXECUTION_ERRORS = frozenset({"ExecutionDoesNotExist"})


def execution_arn(state_machine_arn: str, name: str) -> str:
    """The ARN of the execution ``name`` of a Standard state machine (as ``start`` names them)."""
    return f"{state_machine_arn.replace(':stateMachine:', ':execution:', 1)}:{name}"


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
                return execution_arn(state_machine_arn, name)
            raise
        return str(response["executionArn"])

    def stop(self, state_machine_arn: str, name: str, error: str, cause: str) -> bool:
        """Stop the execution ``name`` (a prediction ID) of a state machine.

        An execution that has already finished is not an error; one that was never started (or
        whose history has expired) returns False.
        """
        try:
            self.client.stop_execution(
                executionArn=execution_arn(state_machine_arn, name), error=error[:256], cause=cause[:32768]
            )
        except Exception as failure:
            if error_code(failure) in NO_SUCH_EXECUTION_ERRORS:
                return False
            raise
        return True

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
        found = self.find(name)
        if found is None:
            raise LookupError(f"state machine {name} exists but was not listed")
        return found

    def find(self, name: str) -> str | None:
        """The ARN of the state machine ``name``, or None."""
        for machine in self.listed():
            if machine.name == name:
                return machine.arn
        return None

    def listed(self, prefix: str = "") -> Iterator[StateMachine]:
        """The account's state machines in this region whose names start with ``prefix``."""
        paginator = self.client.get_paginator("list_state_machines")
        for page in paginator.paginate():
            for machine in page["stateMachines"]:
                if str(machine["name"]).startswith(prefix):
                    yield StateMachine(
                        name=str(machine["name"]),
                        arn=str(machine["stateMachineArn"]),
                        created=machine.get("creationDate"),
                    )

    def role_of(self, arn: str) -> str | None:
        """The role a state machine runs as (None: it does not exist)."""
        try:
            return str(self.client.describe_state_machine(stateMachineArn=arn)["roleArn"])
        except Exception as error:
            if error_code(error) == "StateMachineDoesNotExist":
                return None
            raise

    def running_executions(self, arn: str, limit: int = 10) -> list[str]:
        """Names of up to ``limit`` running executions of a state machine."""
        response = self.client.list_executions(stateMachineArn=arn, statusFilter="RUNNING", maxResults=limit)
        return [str(execution["name"]) for execution in response.get("executions", [])]

    def delete(self, arn: str) -> bool:
        """Delete a state machine (its running executions stop at their next transition).

        False if it did not exist.
        """
        try:
            self.client.delete_state_machine(stateMachineArn=arn)
        except Exception as error:
            if error_code(error) == "StateMachineDoesNotExist":
                return False
            raise
        return True


@dataclass(frozen=True)
class StateMachine:
    name: str
    arn: str
    created: datetime | None = None

"""The CloudFormation adapter of endpoint stacks: create or update, events as they come, AWS's reasons."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from ensemble_gateway.adapters.cloudformation import CloudFormationStacks
from ensemble_gateway.endpoint_stack import EndpointStackError, StackEvent

_ids = itertools.count(1)


def client_error(code: str, message: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


def event(logical_id: str, resource_type: str, status: str, reason: str = "") -> dict[str, Any]:
    return {
        "EventId": f"e{next(_ids)}",
        "LogicalResourceId": logical_id,
        "ResourceType": resource_type,
        "ResourceStatus": status,
        "ResourceStatusReason": reason,
        "Timestamp": datetime.now(UTC),
    }


class FakeCloudFormation:
    """A CloudFormation client whose stacks go through a scripted list of events to a final status."""

    def __init__(self) -> None:
        self.stacks: dict[str, dict[str, Any]] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}  # newest first, as AWS answers
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.outcome: tuple[list[dict[str, Any]], str, list[dict[str, str]]] = ([], "CREATE_COMPLETE", [])
        self.refuse: ClientError | None = None

    def _stack(self, name: str) -> dict[str, Any]:
        for stack in self.stacks.values():
            if name in (stack["StackName"], stack["StackId"]):
                return stack
        raise client_error("ValidationError", f"Stack with id {name} does not exist", "DescribeStacks")

    def describe_stacks(self, StackName: str) -> dict[str, Any]:  # noqa: N803 (boto3's names)
        return {"Stacks": [dict(self._stack(StackName))]}

    def describe_stack_events(self, StackName: str, NextToken: str | None = None) -> dict[str, Any]:  # noqa: N803
        return {"StackEvents": list(self.events[self._stack(StackName)["StackId"]])}

    def _run(self, operation: str, arguments: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((operation, arguments))
        if self.refuse is not None:
            raise self.refuse
        name = arguments["StackName"]
        stack = self.stacks.get(name) or {"StackName": name, "StackId": f"arn:aws:cloudformation:stack/{name}/1"}
        self.stacks[name] = stack
        events, status, outputs = self.outcome
        self.events.setdefault(stack["StackId"], [])
        for new in events:
            self.events.setdefault(stack["StackId"], []).insert(0, new)
        stack.update(StackStatus=status, Outputs=outputs)
        return {"StackId": stack["StackId"]}

    def create_stack(self, **arguments: Any) -> dict[str, Any]:
        return self._run("create_stack", arguments)

    def update_stack(self, **arguments: Any) -> dict[str, Any]:
        return self._run("update_stack", arguments)

    def delete_stack(self, StackName: str) -> None:  # noqa: N803
        self.calls.append(("delete_stack", {"StackName": StackName}))
        stack = self._stack(StackName)
        self.events[stack["StackId"]].insert(
            0, event(stack["StackName"], "AWS::CloudFormation::Stack", "DELETE_COMPLETE")
        )
        stack["StackStatus"] = "DELETE_COMPLETE"


def stacks_of(client: FakeCloudFormation) -> CloudFormationStacks:
    return CloudFormationStacks(client, poll_seconds=0, sleep=lambda seconds: None)


def test_a_new_stack_is_created_with_iam_capability_and_its_events_reported_oldest_first() -> None:
    # GIVEN no stack yet, and a creation that goes well
    client = FakeCloudFormation()
    client.outcome = (
        [
            event("gw-model-iris", "AWS::CloudFormation::Stack", "CREATE_IN_PROGRESS", "User Initiated"),
            event("Endpoint", "AWS::SageMaker::Endpoint", "CREATE_COMPLETE"),
            event("gw-model-iris", "AWS::CloudFormation::Stack", "CREATE_COMPLETE"),
        ],
        "CREATE_COMPLETE",
        [{"OutputKey": "EndpointName", "OutputValue": "iris"}],
    )
    seen: list[StackEvent] = []

    # WHEN it is deployed
    outputs = stacks_of(client).deploy("gw-model-iris", "template", {"EndpointName": "iris"}, seen.append)

    # THEN CreateStack got the template, the parameters and CAPABILITY_IAM (the execution role)
    [(operation, arguments)] = client.calls
    assert operation == "create_stack"
    assert arguments["Parameters"] == [{"ParameterKey": "EndpointName", "ParameterValue": "iris"}]
    assert (arguments["TemplateBody"], arguments["Capabilities"]) == ("template", ["CAPABILITY_IAM"])
    # AND the events came in the order they happened, then the outputs
    assert [(e.logical_id, e.status) for e in seen] == [
        ("gw-model-iris", "CREATE_IN_PROGRESS"),
        ("Endpoint", "CREATE_COMPLETE"),
        ("gw-model-iris", "CREATE_COMPLETE"),
    ]
    assert outputs == {"EndpointName": "iris"}


def test_a_failed_stack_reports_the_first_resource_failure_and_its_reason() -> None:
    # GIVEN a creation in which the endpoint fails and CloudFormation cancels the rest
    client = FakeCloudFormation()
    client.outcome = (
        [
            event(
                "Endpoint",
                "AWS::SageMaker::Endpoint",
                "CREATE_FAILED",
                "The primary container did not pass the ping health check.",
            ),
            event(
                "ScalableTarget",
                "AWS::ApplicationAutoScaling::ScalableTarget",
                "CREATE_FAILED",
                "Resource creation cancelled",
            ),
            event("gw-model-iris", "AWS::CloudFormation::Stack", "ROLLBACK_COMPLETE"),
        ],
        "ROLLBACK_COMPLETE",
        [],
    )

    # WHEN it is deployed THEN the error names the stack's status, the endpoint and its reason
    with pytest.raises(EndpointStackError) as raised:
        stacks_of(client).deploy("gw-model-iris", "template", {})
    assert raised.value.message == (
        "stack gw-model-iris ROLLBACK_COMPLETE: Endpoint (AWS::SageMaker::Endpoint): "
        "The primary container did not pass the ping health check."
    )
    assert raised.value.resource == "Endpoint"
    assert raised.value.reason == "The primary container did not pass the ping health check."


def test_an_update_reports_its_own_failure_not_an_older_one() -> None:
    # GIVEN a stack whose history holds a failure of an earlier update
    client = FakeCloudFormation()
    client.outcome = (
        [event("Model", "AWS::SageMaker::Model", "UPDATE_FAILED", "old failure")],
        "UPDATE_ROLLBACK_COMPLETE",
        [],
    )
    with pytest.raises(EndpointStackError):
        stacks_of(client).deploy("gw-model-iris", "template", {})
    client.outcome = (
        [event("Endpoint", "AWS::SageMaker::Endpoint", "UPDATE_FAILED", "new failure")],
        "UPDATE_ROLLBACK_COMPLETE",
        [],
    )

    # WHEN it is updated again and fails THEN the reason is this update's
    with pytest.raises(EndpointStackError, match=r"Endpoint .*: new failure"):
        stacks_of(client).deploy("gw-model-iris", "template", {})
    assert client.calls[-1][0] == "update_stack"


def test_access_denied_is_reported_with_awss_message_naming_the_permission() -> None:
    client = FakeCloudFormation()
    client.refuse = client_error(
        "AccessDenied",
        "User: arn:aws:iam::123456789012:user/dev is not authorized to perform: cloudformation:CreateStack "
        "on resource: arn:aws:cloudformation:eu-west-1:123456789012:stack/gw-model-iris/*",
        "CreateStack",
    )
    with pytest.raises(EndpointStackError) as raised:
        stacks_of(client).deploy("gw-model-iris", "template", {})
    assert raised.value.message.startswith("access denied (create_stack): User: arn:aws:iam::123456789012:user/dev")
    assert "cloudformation:CreateStack" in raised.value.message


def test_an_unchanged_stack_is_not_an_error_and_gives_its_outputs() -> None:
    # GIVEN a complete stack
    client = FakeCloudFormation()
    client.outcome = ([], "CREATE_COMPLETE", [{"OutputKey": "EndpointName", "OutputValue": "iris"}])
    stacks_of(client).deploy("gw-model-iris", "template", {})
    client.refuse = client_error("ValidationError", "No updates are to be performed.", "UpdateStack")

    # WHEN the same template is deployed again THEN its outputs come back
    assert stacks_of(client).deploy("gw-model-iris", "template", {}) == {"EndpointName": "iris"}


def test_a_stack_whose_creation_failed_is_deleted_and_created_again() -> None:
    # GIVEN a stack left ROLLBACK_COMPLETE (CloudFormation can only delete it)
    client = FakeCloudFormation()
    client.outcome = ([], "ROLLBACK_COMPLETE", [])
    with pytest.raises(EndpointStackError):
        stacks_of(client).deploy("gw-model-iris", "template", {})
    client.outcome = ([], "CREATE_COMPLETE", [])

    # WHEN it is deployed again
    stacks_of(client).deploy("gw-model-iris", "template", {})

    # THEN it was deleted, then created
    assert [operation for operation, _ in client.calls] == ["create_stack", "delete_stack", "create_stack"]

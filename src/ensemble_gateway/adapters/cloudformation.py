"""CloudFormation adapter: deploys and deletes endpoint stacks, reporting their events as they come."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from ..endpoint_stack import EndpointStackError, StackEvent
from .aws import LazyClient, error_code

_SUCCEEDED = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "DELETE_COMPLETE", "IMPORT_COMPLETE"}
_FAILED = {
    "CREATE_FAILED",
    "ROLLBACK_COMPLETE",
    "ROLLBACK_FAILED",
    "UPDATE_FAILED",
    "UPDATE_ROLLBACK_COMPLETE",
    "UPDATE_ROLLBACK_FAILED",
    "DELETE_FAILED",
}
_RESOURCE_FAILURES = ("CREATE_FAILED", "UPDATE_FAILED", "DELETE_FAILED")
_ACCESS_DENIED = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation")
_NO_UPDATES = "No updates are to be performed"


class CloudFormationStacks(LazyClient):
    """Creates or updates a stack from a template body and waits, one callback per stack event.

    Parameters
    ----------
    client
        A ``cloudformation`` client (created on first use when None).
    poll_seconds
        Seconds between two looks at the stack's events while it changes.
    timeout_seconds
        How long to wait for a stack before giving up on it (it goes on in AWS).
    """

    service_name = "cloudformation"

    def __init__(
        self,
        client: Any = None,
        *,
        poll_seconds: float = 5.0,
        timeout_seconds: float = 3 * 3600,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(client)
        self.poll_seconds = poll_seconds
        self.timeout_seconds = timeout_seconds
        self._sleep = sleep

    def deploy(
        self,
        stack_name: str,
        template_body: str,
        parameters: Mapping[str, str],
        on_event: Callable[[StackEvent], None] | None = None,
    ) -> dict[str, str]:
        """Create the stack, or update it when it exists; return its outputs when it is complete.

        Raises
        ------
        EndpointStackError
            The stack failed (naming the first resource that did, with CloudFormation's reason),
            is busy with another operation, or the caller may not do this (AWS's message, naming
            the permission).
        """
        stack = self._describe(stack_name)
        if stack is not None and stack["StackStatus"] == "ROLLBACK_COMPLETE":
            # A stack whose creation failed can only be deleted (then created again).
            self.delete(stack_name, on_event)
            stack = None
        if stack is not None and stack["StackStatus"].endswith("_IN_PROGRESS"):
            raise EndpointStackError(f"stack {stack_name} is {stack['StackStatus']}: wait until it is done")
        arguments: dict[str, Any] = {
            "StackName": stack_name,
            "TemplateBody": template_body,
            "Parameters": [{"ParameterKey": key, "ParameterValue": value} for key, value in parameters.items()],
            # The template creates the model's execution role (with a generated name).
            "Capabilities": ["CAPABILITY_IAM"],
        }
        seen = self._event_ids(stack["StackId"]) if stack is not None else set()
        try:
            if stack is None:
                stack_id = self._call("create_stack", **arguments, OnFailure="ROLLBACK")["StackId"]
            else:
                stack_id = self._call("update_stack", **arguments)["StackId"]
        except EndpointStackError as error:
            if stack is not None and _NO_UPDATES in error.message:
                return _outputs(stack)
            raise
        final = self._wait(stack_id, seen, on_event)
        return _outputs(final)

    def delete(self, stack_name: str, on_event: Callable[[StackEvent], None] | None = None) -> None:
        """Delete the stack and wait until it is gone.

        Raises
        ------
        EndpointStackError
            There is no such stack, or the deletion failed (with the first reason).
        """
        stack = self._describe(stack_name)
        if stack is None:
            raise EndpointStackError(f"there is no stack {stack_name}")
        seen = self._event_ids(stack["StackId"])
        self._call("delete_stack", StackName=stack["StackId"])
        self._wait(stack["StackId"], seen, on_event)

    def outputs(self, stack_name: str) -> dict[str, str] | None:
        """The outputs of a stack, or None when there is none of that name."""
        stack = self._describe(stack_name)
        return _outputs(stack) if stack is not None else None

    # -- plumbing ------------------------------------------------------------------------------
    def _call(self, operation: str, **arguments: Any) -> Any:
        try:
            return getattr(self.client, operation)(**arguments)
        except Exception as error:
            raise _stack_error(operation, error) from None

    def _describe(self, stack_name: str) -> dict[str, Any] | None:
        try:
            stacks = self.client.describe_stacks(StackName=stack_name)["Stacks"]
        except Exception as error:
            if error_code(error) == "ValidationError" and "does not exist" in str(error):
                return None
            raise _stack_error("describe_stacks", error) from None
        return dict(stacks[0]) if stacks else None

    def _event_ids(self, stack_id: str) -> set[str]:
        """The events a stack has already (the first page is enough: newer ones come first)."""
        events = self._call("describe_stack_events", StackName=stack_id).get("StackEvents", [])
        return {str(event["EventId"]) for event in events}

    def _new_events(self, stack_id: str, seen: set[str]) -> list[dict[str, Any]]:
        fresh: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = self._call("describe_stack_events", StackName=stack_id, **({"NextToken": token} if token else {}))
            events = page.get("StackEvents", [])
            unseen = [event for event in events if event["EventId"] not in seen]
            fresh.extend(unseen)
            token = page.get("NextToken")
            if len(unseen) < len(events) or not token:
                break
        fresh.reverse()  # oldest first, as they happened
        seen.update(str(event["EventId"]) for event in fresh)
        return fresh

    def _wait(self, stack_id: str, seen: set[str], on_event: Callable[[StackEvent], None] | None) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout_seconds
        first_failure: dict[str, Any] | None = None
        while True:
            for event in self._new_events(stack_id, seen):
                if on_event is not None:
                    on_event(
                        StackEvent(
                            logical_id=str(event.get("LogicalResourceId", "")),
                            resource_type=str(event.get("ResourceType", "")),
                            status=str(event.get("ResourceStatus", "")),
                            reason=str(event.get("ResourceStatusReason") or ""),
                            timestamp=event["Timestamp"],
                        )
                    )
                if (
                    first_failure is None
                    and event.get("ResourceStatus") in _RESOURCE_FAILURES
                    and event.get("ResourceStatusReason")
                ):
                    first_failure = event
            stack = self._call("describe_stacks", StackName=stack_id)["Stacks"][0]
            status = str(stack["StackStatus"])
            if status in _SUCCEEDED:
                return dict(stack)
            if status in _FAILED:
                if first_failure is None:
                    reason = str(stack.get("StackStatusReason") or "no reason given")
                    raise EndpointStackError(f"stack {stack['StackName']} {status}: {reason}")
                resource, reason = str(first_failure["LogicalResourceId"]), str(first_failure["ResourceStatusReason"])
                raise EndpointStackError(
                    f"stack {stack['StackName']} {status}: {resource} ({first_failure['ResourceType']}): {reason}",
                    resource=resource,
                    reason=reason,
                )
            if time.monotonic() > deadline:
                raise EndpointStackError(
                    f"stack {stack['StackName']} was still {status} after {self.timeout_seconds:.0f} s "
                    "(it goes on in CloudFormation)"
                )
            self._sleep(self.poll_seconds)


def _outputs(stack: Mapping[str, Any]) -> dict[str, str]:
    return {str(o["OutputKey"]): str(o["OutputValue"]) for o in stack.get("Outputs", [])}


def _stack_error(operation: str, error: Exception) -> EndpointStackError:
    """An error the user can act on: AWS's own message (for AccessDenied it names the permission)."""
    code = error_code(error)
    response = getattr(error, "response", None)
    message = str(response.get("Error", {}).get("Message", "")) if isinstance(response, dict) else ""
    message = message or str(error)
    if code in _ACCESS_DENIED:
        return EndpointStackError(f"access denied ({operation}): {message}")
    if code:
        return EndpointStackError(f"{operation}: {code}: {message}")
    return EndpointStackError(f"{operation}: {message}")

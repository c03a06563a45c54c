"""The local deployer: creates the resources of a CloudFormation template with boto3 calls against moto.

moto's CloudFormation skips ``AWS::Serverless::*`` and ignores several properties, so the template
is read here and each resource is created with the API calls CloudFormation would make, including
what moto would ignore: table TTL and indexes, bucket notifications, queue redrive. Functions are not
"created": each becomes a :class:`FunctionSpec` (its ``Handler`` as a Python callable path, its
resolved ``Environment`` and its event sources) that the local runtime runs in-process.

Two templates go through it: ``template.yaml`` (the gateway, created once per runtime) and
``templates/model-endpoint.yaml`` (one stack per model service), whose SageMaker resources are
created through the SageMaker API the local control plane answers, so the model is hosted in the
local SageMaker runtime from the stack's ``ModelDataUrl``. Endpoint stacks are also *updated* and
*deleted* as CloudFormation does it: given the previous deployment (a :class:`DeployedStack` with
its resource records), an unchanged resource is kept, a changed one is updated in place or, when a
property that is fixed at creation changed, replaced (created anew, the old one deleted once the
stack is complete); a failure rolls back what this deployment did and raises
:class:`StackRolledBackError` with the failing resource's reason. Progress is reported as stack
events (``on_event``), the same records ``DescribeStackEvents`` gives on AWS.

Like CloudFormation, parameters are checked against ``AllowedValues``, ``AllowedPattern``,
``MinLength``/``MaxLength`` and ``MinValue``/``MaxValue`` before anything is created, and property
values are converted to the types the API takes (a ``Number`` parameter is a string until then).
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import secrets
import string
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..endpoint_stack import StackEvent
from .template import Resolver, TemplateError, load_template, parse_template

ACCOUNT_ID = "123456789012"

#: Properties whose change replaces a resource (CloudFormation's "Update requires: Replacement");
#: None: all of them. Types missing here have no update method and are always replaced.
_REPLACED_WHEN_CHANGED: dict[str, frozenset[str] | None] = {
    "AWS::SageMaker::Model": None,
    "AWS::SageMaker::EndpointConfig": None,
    "AWS::SageMaker::Endpoint": frozenset({"EndpointName"}),
    "AWS::ApplicationAutoScaling::ScalableTarget": frozenset({"ResourceId", "ScalableDimension", "ServiceNamespace"}),
    "AWS::ApplicationAutoScaling::ScalingPolicy": frozenset(
        {"PolicyName", "ServiceNamespace", "ResourceId", "ScalableDimension", "ScalingTargetId"}
    ),
    "AWS::CloudWatch::Alarm": frozenset({"AlarmName"}),
    "AWS::IAM::Role": frozenset({"RoleName", "Path"}),
}
_ENDPOINT_IN_PROGRESS = ("Creating", "Updating", "SystemUpdating", "RollingBack")


class StackRolledBackError(RuntimeError):
    """A resource failed; what this deployment had done was undone (CloudFormation's rollback).

    Attributes
    ----------
    stack_status
        ``ROLLBACK_COMPLETE`` (a new stack: nothing of it is left) or ``UPDATE_ROLLBACK_COMPLETE``
        (an update: the stack is as it was before).
    logical_id, resource_type, reason
        The first resource that failed and why (its ``ResourceStatusReason``).
    """

    def __init__(self, stack_status: str, logical_id: str, resource_type: str, reason: str) -> None:
        super().__init__(f"{stack_status}: {logical_id} ({resource_type}): {reason}")
        self.stack_status = stack_status
        self.logical_id = logical_id
        self.resource_type = resource_type
        self.reason = reason


class _OperationFailedError(Exception):
    """A resource operation failed for a reason that is no API error (an endpoint went ``Failed``)."""


class _ResourceFailureError(Exception):
    """A resource failed (its ``*_FAILED`` event is out): the deployment rolls back."""

    def __init__(self, logical_id: str, resource_type: str, reason: str) -> None:
        super().__init__(reason)
        self.logical_id = logical_id
        self.resource_type = resource_type
        self.reason = reason


@dataclass
class EventSource:
    """One entry of a function's ``Events``: what triggers it."""

    name: str
    kind: str  # SQS | SNS | Schedule | Api
    properties: dict[str, Any]


@dataclass
class FunctionSpec:
    logical_id: str
    function_name: str
    handler: str
    environment: dict[str, str]
    timeout: int
    events: list[EventSource]
    dead_letter_arn: str | None = None


@dataclass
class ResourceRecord:
    """What a deployed resource is: its physical ID, its attributes and the properties it has."""

    logical_id: str
    resource_type: str
    physical_id: Any
    attributes: dict[str, Any]
    properties: dict[str, Any]


@dataclass
class DeployedStack:
    stack_name: str
    region: str
    parameters: dict[str, str]
    # The UUID CloudFormation puts at the end of a stack's ID: unique per stack, kept by updates
    # (the template derives the bucket's name from it).
    stack_uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    physical: dict[str, Any] = field(default_factory=dict)
    attributes: dict[tuple[str, str], Any] = field(default_factory=dict)
    functions: dict[str, FunctionSpec] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    queue_urls_by_arn: dict[str, str] = field(default_factory=dict)
    buckets: set[str] = field(default_factory=set)
    # In creation order: what an update compares with and a deletion undoes, last first.
    resources: dict[str, ResourceRecord] = field(default_factory=dict)
    template_body: str | None = None

    @property
    def stack_id(self) -> str:
        """``AWS::StackId``: ``arn:aws:cloudformation:<region>:<account>:stack/<name>/<uuid>``."""
        return f"arn:aws:cloudformation:{self.region}:{ACCOUNT_ID}:stack/{self.stack_name}/{self.stack_uuid}"

    def to_json(self) -> str:
        """The stack's record (parameters, template, resources, outputs) as JSON."""
        return json.dumps(
            {
                "stack_name": self.stack_name,
                "region": self.region,
                "stack_uuid": self.stack_uuid,
                "parameters": self.parameters,
                "outputs": self.outputs,
                "template_body": self.template_body,
                "resources": [record.__dict__ for record in self.resources.values()],
            }
        )

    @classmethod
    def from_json(cls, text: str) -> DeployedStack:
        document = json.loads(text)
        stack = cls(document["stack_name"], document["region"], dict(document["parameters"]))
        stack.stack_uuid = document.get("stack_uuid") or stack.stack_uuid
        stack.outputs = dict(document.get("outputs") or {})
        stack.template_body = document.get("template_body")
        for entry in document.get("resources", []):
            record = ResourceRecord(**entry)
            stack.resources[record.logical_id] = record
            stack.physical[record.logical_id] = record.physical_id
            for attribute, value in record.attributes.items():
                stack.attributes[(record.logical_id, attribute)] = value
        return stack


class LocalDeployer:
    """Deploys a CloudFormation (or SAM) template to the local (moto) endpoint.

    Parameters
    ----------
    template_path
        The template file (``template.yaml``, ``templates/model-endpoint.yaml``); None when
        ``template_body`` is given.
    client_factory
        Returns a boto3 client for a service name, pointed at the local endpoint.
    stack_name, region
        As ``AWS::StackName`` and ``AWS::Region`` resolve.
    parameter_overrides
        Parameter values (the others take their defaults).
    template_body
        The template's text, when it is not read from ``template_path`` (a rendered template).
    previous
        The stack as deployed before: :meth:`deploy` updates it instead of creating a stack.
    on_event
        Receives each stack event (``CREATE_IN_PROGRESS``, ``UPDATE_COMPLETE``, ...).
    endpoint_timeout_seconds
        How long a SageMaker endpoint may stay ``Creating`` or ``Updating``.
    """

    # Creation order: what others reference comes first.
    ORDER = (
        "AWS::KMS::Key",
        "AWS::KMS::Alias",
        "AWS::DynamoDB::Table",
        "AWS::SQS::Queue",
        "AWS::SNS::Topic",
        "AWS::Events::EventBus",
        "AWS::IAM::Role",
        "AWS::IAM::ManagedPolicy",
        "AWS::Logs::LogGroup",
        "AWS::ApiGateway::Account",
        "AWS::Serverless::Function",
        "AWS::Serverless::Api",
        "AWS::S3::Bucket",
        "AWS::S3::BucketPolicy",
        "AWS::Logs::LogStream",
        "AWS::KinesisFirehose::DeliveryStream",
        "AWS::Glue::Database",
        "AWS::Glue::Table",
        "AWS::SQS::QueuePolicy",
        "AWS::SNS::TopicPolicy",
        "AWS::SNS::Subscription",
        "AWS::SageMaker::Model",
        "AWS::SageMaker::EndpointConfig",
        "AWS::SageMaker::Endpoint",
        "AWS::ApplicationAutoScaling::ScalableTarget",
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        "AWS::CloudWatch::Alarm",
        "AWS::CloudWatch::Dashboard",
    )

    def __init__(
        self,
        template_path: Path | None,
        client_factory: Callable[[str], Any],
        *,
        stack_name: str = "ensemble-gateway",
        region: str = "us-east-1",
        parameter_overrides: dict[str, str] | None = None,
        template_body: str | None = None,
        previous: DeployedStack | None = None,
        on_event: Callable[[StackEvent], None] | None = None,
        endpoint_timeout_seconds: float = 600.0,
    ) -> None:
        if template_body is not None:
            self.template = parse_template(template_body)
        elif template_path is not None:
            self.template = load_template(template_path)
        else:
            raise TemplateError("the local deployer needs a template path or a template body")
        self.client = client_factory
        self.previous = previous
        self.on_event = on_event
        self.endpoint_timeout_seconds = endpoint_timeout_seconds
        self.stack = DeployedStack(stack_name=stack_name, region=region, parameters={}, template_body=template_body)
        if previous is not None:
            self.stack.stack_uuid = previous.stack_uuid
        parameters = self.template.get("Parameters", {})
        unknown = sorted(set(parameter_overrides or {}) - set(parameters))
        if unknown:
            raise TemplateError(f"Parameters: {unknown} do not exist in the template")
        for name, definition in parameters.items():
            value = (parameter_overrides or {}).get(name, definition.get("Default"))
            if value is None:
                raise TemplateError(f"parameter {name} has no default and no override")
            _check_parameter(name, definition, str(value))
            self.stack.parameters[name] = str(value)
        self.resolver = Resolver(self._ref, self._get_att, self.template.get("Conditions"))

    # -- intrinsic functions -------------------------------------------------------------
    def _ref(self, name: str) -> Any:
        pseudo = {
            "AWS::Region": self.stack.region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::StackName": self.stack.stack_name,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": None,
            "AWS::StackId": self.stack.stack_id,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.stack.parameters:
            return self.stack.parameters[name]
        if name in self.stack.physical:
            return self.stack.physical[name]
        raise TemplateError(f"Ref to {name}, which is not deployed (yet)")

    def _get_att(self, logical_id: str, attribute: str) -> Any:
        try:
            return self.stack.attributes[(logical_id, attribute)]
        except KeyError:
            raise TemplateError(f"Fn::GetAtt {logical_id}.{attribute} is not available locally") from None

    def _name(self, logical_id: str) -> str:
        return f"{self.stack.stack_name}-{logical_id}"

    # -- deployment -------------------------------------------------------------------------
    def deploy(self) -> DeployedStack:
        """Create the stack, or update ``previous`` to this template and these parameters.

        Raises
        ------
        StackRolledBackError
            A resource failed; what this deployment did was undone (the previous stack stands).
        TemplateError
            The template uses what the local deployer cannot create, or a parameter is invalid.
        """
        resources: dict[str, Any] = self.template["Resources"]
        globals_function = self.template.get("Globals", {}).get("Function", {})
        by_type: dict[str, list[str]] = {}
        for logical_id, resource in resources.items():
            condition = resource.get("Condition")
            if condition and not self.resolver.condition(condition):
                continue
            by_type.setdefault(resource["Type"], []).append(logical_id)
        unknown = set(by_type) - set(self.ORDER)
        if unknown:
            raise TemplateError(f"the local deployer cannot create: {', '.join(sorted(unknown))}")
        if self.previous is not None and "AWS::Serverless::Function" in by_type:
            raise TemplateError("the local deployer does not update stacks with functions: deploy them anew")
        updating = self.previous is not None
        self._stack_event("UPDATE_IN_PROGRESS" if updating else "CREATE_IN_PROGRESS", "User Initiated")
        # What this deployment did, to undo on failure: (logical ID, the record it replaced or updated).
        created: list[tuple[str, ResourceRecord | None]] = []
        updated: list[ResourceRecord] = []
        try:
            for logical_id in self._creation_order(resources, by_type):
                resource = resources[logical_id]
                before = self.previous.resources.get(logical_id) if self.previous else None
                if before is not None and before.resource_type != resource["Type"]:
                    before = None  # another type under the same name: a new resource (the old one goes)
                self._deploy_resource(logical_id, resource, globals_function, before, created, updated)
        except _ResourceFailureError as failure:
            self._roll_back(created, updated, updating)
            status = "UPDATE_ROLLBACK_COMPLETE" if updating else "ROLLBACK_COMPLETE"
            self._stack_event(status)
            raise StackRolledBackError(status, failure.logical_id, failure.resource_type, failure.reason) from None
        # Environments may reference anything (the bucket is created after the functions).
        self._finish_functions()
        for name, output in self.template.get("Outputs", {}).items():
            condition = output.get("Condition")
            if condition and not self.resolver.condition(condition):
                continue
            try:
                self.stack.outputs[name] = self.resolver.resolve(output["Value"])
            except TemplateError:
                self.stack.outputs[name] = None
        if updating:
            assert self.previous is not None
            self._stack_event("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")
            superseded = {before.logical_id for _, before in created if before is not None}
            gone = set(self.previous.resources) - set(self.stack.resources)
            # Dependents first: the reverse of the order they were created in.
            for record in reversed(list(self.previous.resources.values())):
                if record.logical_id in superseded | gone:
                    self._delete_quietly(record)
        self._stack_event("UPDATE_COMPLETE" if updating else "CREATE_COMPLETE")
        return self.stack

    def delete_stack(self, stack: DeployedStack) -> None:
        """Delete ``stack``'s resources, last created first, as ``DeleteStack`` does."""
        self._stack_event("DELETE_IN_PROGRESS", "User Initiated")
        for record in reversed(list(stack.resources.values())):
            self._delete_quietly(record)
        self._stack_event("DELETE_COMPLETE")

    def _deploy_resource(
        self,
        logical_id: str,
        resource: dict[str, Any],
        globals_function: dict[str, Any],
        before: ResourceRecord | None,
        created: list[tuple[str, ResourceRecord | None]],
        updated: list[ResourceRecord],
    ) -> None:
        resource_type = resource["Type"]
        properties = resource.get("Properties", {})
        suffix = _method_suffix(resource_type)
        if resource_type == "AWS::Serverless::Function":
            self._create_serverless_function(logical_id, properties, globals_function)
            self._record(logical_id, resource_type, {})
            return
        wanted = self._props(properties)
        if before is not None and wanted == before.properties:
            self._keep(before)
            return
        replaced_when = _REPLACED_WHEN_CHANGED.get(resource_type)
        fixed = set(wanted) | set(before.properties if before else {}) if replaced_when is None else replaced_when
        replace = before is not None and (
            not hasattr(self, "_update_" + suffix)
            or any(wanted.get(name) != before.properties.get(name) for name in fixed)
        )
        if before is None or replace:
            try:
                self._attempt(
                    logical_id,
                    resource_type,
                    "UPDATE" if replace else "CREATE",
                    lambda: getattr(self, "_create_" + suffix)(logical_id, properties),
                    "Requested update requires the creation of a new physical resource; hence creating one."
                    if replace
                    else "",
                )
            finally:
                # Recorded even when it failed half-way (an endpoint that went Failed): the
                # rollback deletes what exists.
                if self.stack.physical.get(logical_id) is not None:
                    self._record(logical_id, resource_type, wanted)
                    created.append((logical_id, before))
        else:
            self._keep(before)  # the same physical resource, changed in place
            self._attempt(
                logical_id,
                resource_type,
                "UPDATE",
                lambda: getattr(self, "_update_" + suffix)(logical_id, wanted, before),
            )
            self._record(logical_id, resource_type, wanted)
            updated.append(before)

    def _roll_back(
        self, created: list[tuple[str, ResourceRecord | None]], updated: list[ResourceRecord], updating: bool
    ) -> None:
        """Undo a failed deployment: delete what it created, put back what it changed in place."""
        self._stack_event("UPDATE_ROLLBACK_IN_PROGRESS" if updating else "ROLLBACK_IN_PROGRESS")
        for logical_id, _ in reversed(created):
            record = self.stack.resources.get(logical_id)
            if record is not None:
                self._delete_quietly(record)
        for before in reversed(updated):
            # Reported as UPDATE_FAILED when it fails; the rollback goes on, as CloudFormation's does.
            with contextlib.suppress(_ResourceFailureError):
                self._attempt(
                    before.logical_id, before.resource_type, "UPDATE", functools.partial(self._restore, before)
                )

    def _restore(self, before: ResourceRecord) -> None:
        getattr(self, "_update_" + _method_suffix(before.resource_type))(before.logical_id, before.properties, before)

    def _attempt(
        self, logical_id: str, resource_type: str, action: str, call: Callable[[], Any], reason: str = ""
    ) -> None:
        """Run one resource operation between its ``*_IN_PROGRESS`` and ``*_COMPLETE``/``*_FAILED`` events."""
        self._event(logical_id, resource_type, f"{action}_IN_PROGRESS", reason)
        try:
            call()
        except Exception as error:
            failure = _failure_reason(error)
            self._event(logical_id, resource_type, f"{action}_FAILED", failure)
            raise _ResourceFailureError(logical_id, resource_type, failure) from error
        self._event(logical_id, resource_type, f"{action}_COMPLETE")

    def _delete_quietly(self, record: ResourceRecord) -> None:
        """Delete one resource; a failure is an event, not an error (CloudFormation goes on too)."""
        delete = getattr(self, "_delete_" + _method_suffix(record.resource_type), None)
        if delete is None:
            return  # nothing to undo in the local AWS (functions, the API)
        with contextlib.suppress(_ResourceFailureError):
            self._attempt(record.logical_id, record.resource_type, "DELETE", functools.partial(delete, record))

    def _record(self, logical_id: str, resource_type: str, properties: dict[str, Any]) -> None:
        self.stack.resources[logical_id] = ResourceRecord(
            logical_id=logical_id,
            resource_type=resource_type,
            physical_id=self.stack.physical.get(logical_id),
            attributes={
                attribute: value for (owner, attribute), value in self.stack.attributes.items() if owner == logical_id
            },
            properties=properties,
        )

    def _keep(self, record: ResourceRecord) -> None:
        """An existing resource stays: its physical ID and attributes are this stack's again."""
        self.stack.physical[record.logical_id] = record.physical_id
        for attribute, value in record.attributes.items():
            self.stack.attributes[(record.logical_id, attribute)] = value
        self.stack.resources[record.logical_id] = record

    def _event(self, logical_id: str, resource_type: str, status: str, reason: str = "") -> None:
        if self.on_event is not None:
            self.on_event(StackEvent(logical_id=logical_id, resource_type=resource_type, status=status, reason=reason))

    def _stack_event(self, status: str, reason: str = "") -> None:
        self._event(self.stack.stack_name, "AWS::CloudFormation::Stack", status, reason)

    def _creation_order(self, resources: dict[str, Any], by_type: dict[str, list[str]]) -> list[str]:
        """Type order first, then references: a resource waits for those it names (DependsOn too)."""
        wanted = [logical_id for t in self.ORDER for logical_id in by_type.get(t, [])]
        rank = {logical_id: index for index, logical_id in enumerate(wanted)}
        # Functions are only named at creation (resolved at the end), so they wait for nobody.
        deps = {
            logical_id: set()
            if resources[logical_id]["Type"] == "AWS::Serverless::Function"
            else (_references(resources[logical_id]) & set(rank)) - {logical_id}
            for logical_id in wanted
        }
        order: list[str] = []
        done: set[str] = set()
        while len(order) < len(wanted):
            ready = [r for r in wanted if r not in done and deps[r] <= done]
            if not ready:
                raise TemplateError(f"circular references among: {sorted(set(wanted) - done)}")
            chosen = min(ready, key=rank.__getitem__)
            order.append(chosen)
            done.add(chosen)
        return order

    def _props(self, properties: dict[str, Any]) -> dict[str, Any]:
        """Resolved properties, without the values ``AWS::NoValue`` removed (at any depth)."""
        resolved = _without_no_value(self.resolver.resolve(properties))
        return resolved if isinstance(resolved, dict) else {}

    def _api(self, service: str, operation: str, **parameters: Any) -> Any:
        """Call ``operation`` with property values converted to the types its input takes.

        CloudFormation does this conversion: a ``Number`` parameter is a string in the template
        and an integer in ``CreateEndpointConfig``.
        """
        client = self.client(service)
        model = client.meta.service_model.operation_model(client.meta.method_to_api_mapping[operation])
        return getattr(client, operation)(**_to_shape(model.input_shape, parameters))

    def _generated_name(self, logical_id: str, limit: int = 63) -> str:
        """A unique physical name, as CloudFormation generates one: ``<stack>-<logical ID>-<random>``."""
        token = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(12))
        prefix = f"{self.stack.stack_name}-{logical_id}"[: limit - len(token) - 1].rstrip("-")
        return f"{prefix}-{token}"

    def _create_kms_key(self, logical_id: str, properties: dict[str, Any]) -> None:
        key = self.client("kms").create_key(Description=f"{self.stack.stack_name} {logical_id}")
        metadata = key["KeyMetadata"]
        self.stack.physical[logical_id] = metadata["KeyId"]
        self.stack.attributes[(logical_id, "Arn")] = metadata["Arn"]
        self.stack.attributes[(logical_id, "KeyId")] = metadata["KeyId"]

    def _create_kms_alias(self, logical_id: str, properties: dict[str, Any]) -> None:
        props = self._props(properties)
        self.client("kms").create_alias(AliasName=props["AliasName"], TargetKeyId=props["TargetKeyId"])
        self.stack.physical[logical_id] = props["AliasName"]

    def _create_dynamodb_table(self, logical_id: str, properties: dict[str, Any]) -> None:
        props = self._props(properties)
        name = props.get("TableName") or self._name(logical_id)
        kwargs: dict[str, Any] = {
            "TableName": name,
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if props.get("GlobalSecondaryIndexes"):
            kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        dynamodb = self.client("dynamodb")
        table = dynamodb.create_table(**kwargs)["TableDescription"]
        ttl = props.get("TimeToLiveSpecification")
        if ttl and str(ttl.get("Enabled")).lower() == "true":
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
            )
        self.stack.physical[logical_id] = name
        self.stack.attributes[(logical_id, "Arn")] = table["TableArn"]

    def _create_sqs_queue(self, logical_id: str, properties: dict[str, Any]) -> None:
        props = self._props(properties)
        name = props.get("QueueName") or self._name(logical_id)
        attributes: dict[str, str] = {}
        for key in (
            "VisibilityTimeout",
            "MessageRetentionPeriod",
            "DelaySeconds",
            "ReceiveMessageWaitTimeSeconds",
            "MaximumMessageSize",
        ):
            if key in props:
                attributes[key] = str(props[key])
        if "RedrivePolicy" in props:
            redrive = props["RedrivePolicy"]
            attributes["RedrivePolicy"] = json.dumps(
                {
                    "deadLetterTargetArn": redrive["deadLetterTargetArn"],
                    "maxReceiveCount": str(redrive["maxReceiveCount"]),
                }
            )
        sqs = self.client("sqs")
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.stack.physical[logical_id] = url
        self.stack.attributes[(logical_id, "Arn")] = arn
        self.stack.attributes[(logical_id, "QueueName")] = name
        self.stack.attributes[(logical_id, "QueueUrl")] = url
        self.stack.queue_urls_by_arn[arn] = url

    def _create_sns_topic(self, logical_id: str, properties: dict[str, Any]) -> None:
        props = self._props(properties)
        name = props.get("TopicName") or self._name(logical_id)
        arn = self.client("sns").create_topic(Name=name)["TopicArn"]
        self.stack.physical[logical_id] = arn
        self.stack.attributes[(logical_id, "TopicArn")] = arn
        self.stack.attributes[(logical_id, "TopicName")] = name
        for subscription in props.get("Subscription", []):
            self.client("sns").subscribe(
                TopicArn=arn, Protocol=subscription["Protocol"], Endpoint=subscription["Endpoint"]
            )

    def _create_iam_role(self, logical_id: str, properties: dict[str, Any]) -> None:
        props = self._props(properties)
        name = props.get("RoleName") or self._name(logical_id)[:64]
        iam = self.client("iam")
        extra = {
            key: props[key]
            for key in ("Description", "Path", "MaxSessionDuration", "PermissionsBoundary")
            if key in props
        }
        role = self._api(
            "iam",
            "create_role",
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(props.get("AssumeRolePolicyDocument", {})),
            **extra,
        )
        self.stack.physical[logical_id] = name
        self.stack.attributes[(logical_id, "Arn")] = role["Role"]["Arn"]
        self.stack.attributes[(logical_id, "RoleId")] = role["Role"]["RoleId"]
        for policy in props.get("Policies", []):
            iam.put_role_policy(
                RoleName=name, PolicyName=policy["PolicyName"], PolicyDocument=json.dumps(policy["PolicyDocument"])
            )
        for arn in props.get("ManagedPolicyArns", []):
            iam.attach_role_policy(RoleName=name, PolicyArn=arn)

    def _update_iam_role(self, logical_id: str, props: dict[str, Any], before: ResourceRecord) -> None:
        iam = self.client("iam")
        name = before.physical_id
        if props.get("AssumeRolePolicyDocument") != before.properties.get("AssumeRolePolicyDocument"):
            iam.update_assume_role_policy(
                RoleName=name, PolicyDocument=json.dumps(props.get("AssumeRolePolicyDocument", {}))
            )
        boundary = props.get("PermissionsBoundary")
        if boundary != before.properties.get("PermissionsBoundary"):
            if boundary:
                iam.put_role_permissions_boundary(RoleName=name, PermissionsBoundary=boundary)
            else:
                iam.delete_role_permissions_boundary(RoleName=name)
        wanted = {policy["PolicyName"]: policy["PolicyDocument"] for policy in props.get("Policies", [])}
        for policy_name, document in wanted.items():
            iam.put_role_policy(RoleName=name, PolicyName=policy_name, PolicyDocument=json.dumps(document))
        for policy in before.properties.get("Policies", []):
            if policy["PolicyName"] not in wanted:
                iam.delete_role_policy(RoleName=name, PolicyName=policy["PolicyName"])
        attached, previously = (
            set(props.get("ManagedPolicyArns", [])),
            set(before.properties.get("ManagedPolicyArns", [])),
        )
        for arn in attached - previously:
            iam.attach_role_policy(RoleName=name, PolicyArn=arn)
        for arn in previously - attached:
            iam.detach_role_policy(RoleName=name, PolicyArn=arn)

    def _delete_iam_role(self, record: ResourceRecord) -> None:
        iam = self.client("iam")
        for policy in record.properties.get("Policies", []):
            _ignore_missing(iam.delete_role_policy, RoleName=record.physical_id, PolicyName=policy["PolicyName"])
        for arn in record.properties.get("ManagedPolicyArns", []):
            _ignore_missing(iam.detach_role_policy, RoleName=record.physical_id, PolicyArn=arn)
        _ignore_missing(iam.delete_role, RoleName=record.physical_id)

    def _create_events_event_bus(self, logical_id: str, properties: dict[str, Any]) -> None:
        props = self._props(properties)
        name = props.get("Name") or self._generated_name(logical_id, limit=256)
        extra = {"Description": props["Description"]} if props.get("Description") else {}
        bus = self._api("events", "create_event_bus", Name=name, **extra)
        if props.get("Policy"):
            # CreateEventBus takes no policy; PutPermission sets the bus's whole resource policy.
            self.client("events").put_permission(EventBusName=name, Policy=json.dumps(props["Policy"]))
        self.stack.physical[logical_id] = name  # Ref: the bus's name
        self.stack.attributes[(logical_id, "Name")] = name
        self.stack.attributes[(logical_id, "Arn")] = bus["EventBusArn"]

    def _delete_events_event_bus(self, record: ResourceRecord) -> None:
        _ignore_missing(self.client("events").delete_event_bus, Name=record.physical_id)

    def _create_iam_managed_policy(self, logical_id: str, properties: dict[str, Any]) -> None:
        props = self._props(properties)
        extra = {key: props[key] for key in ("Description", "Path") if key in props}
        policy = self._api(
            "iam",
            "create_policy",
            PolicyName=props.get("ManagedPolicyName") or self._generated_name(logical_id, limit=128),
            PolicyDocument=json.dumps(props["PolicyDocument"]),
            **extra,
        )
        arn = policy["Policy"]["Arn"]
        self.stack.physical[logical_id] = arn  # Ref: the policy's ARN
        self.stack.attributes[(logical_id, "PolicyArn")] = arn
        iam = self.client("iam")
        for role in props.get("Roles", []):
            iam.attach_role_policy(RoleName=role, PolicyArn=arn)

    def _delete_iam_managed_policy(self, record: ResourceRecord) -> None:
        iam = self.client("iam")
        for role in record.properties.get("Roles", []):
            _ignore_missing(iam.detach_role_policy, RoleName=role, PolicyArn=record.physical_id)
        _ignore_missing(iam.delete_policy, PolicyArn=record.physical_id)

    def _create_logs_log_group(self, logical_id: str, properties: dict[str, Any]) -> None:
        props = self._props(properties)
        name = props.get("LogGroupName") or self._generated_name(logical_id, limit=512)
        logs = self.client("logs")
        extra = {"kmsKeyId": props["KmsKeyId"]} if props.get("KmsKeyId") else {}
        logs.create_log_group(logGroupName=name, **extra)
        if props.get("RetentionInDays") is not None:
            logs.put_retention_policy(logGroupName=name, retentionInDays=int(props["RetentionInDays"]))
        self.stack.physical[logical_id] = name
        self.stack.attributes[(logical_id, "Arn")] = f"arn:aws:logs:{self.stack.region}:{ACCOUNT_ID}:log-group:{name}:*"

    def _create_logs_log_stream(self, logical_id: str, properties: dict[str, Any]) -> None:
        props = self._props(properties)
        name = props.get("LogStreamName") or self._generated_name(logical_id, limit=512)
        self.client("logs").create_log_stream(logGroupName=props["LogGroupName"], logStreamName=name)
        self.stack.physical[logical_id] = name

    # The audit trail's stream and Glue catalog are recorded, not created in moto: moto's
    # Firehose writes YYYY/MM/DD/HH/ objects whatever the stream's partitioning says, so the
    # local functions write the decision records to the bucket themselves, in the stream's
    # layout (AUDIT_SINK=s3, adapters/s3.py); and nothing local queries Glue (no Athena).
    def _create_kinesisfirehose_delivery_stream(self, logical_id: str, properties: dict[str, Any]) -> None:
        props = self._props(properties)
        name = str(props.get("DeliveryStreamName") or self._generated_name(logical_id, limit=64))
        self.stack.physical[logical_id] = name
        self.stack.attributes[(logical_id, "Arn")] = (
            f"arn:aws:firehose:{self.stack.region}:{ACCOUNT_ID}:deliverystream/{name}"
        )

    def _create_glue_database(self, logical_id: str, properties: dict[str, Any]) -> None:
        props = self._props(properties)
        self.stack.physical[logical_id] = str(props["DatabaseInput"]["Name"]).lower()

    def _create_glue_table(self, logical_id: str, properties: dict[str, Any]) -> None:
        props = self._props(properties)
        self.stack.physical[logical_id] = str(props["TableInput"]["Name"]).lower()

    def _delete_logs_log_group(self, record: ResourceRecord) -> None:
        _ignore_missing(self.client("logs").delete_log_group, logGroupName=record.physical_id)

    def _create_apigateway_account(self, logical_id: str, properties: dict[str, Any]) -> None:
        # The account's API Gateway setting (the CloudWatch Logs role): the local runtime has no
        # API Gateway to log, so there is nothing to set; the resource exists so that what
        # depends on it (the stage's access log) deploys in the same order as on AWS.
        self._props(properties)
        self.stack.physical[logical_id] = f"{self.stack.stack_name}-{logical_id}"

    def _create_serverless_function(
        self, logical_id: str, properties: dict[str, Any], defaults: dict[str, Any]
    ) -> None:
        # Names and ARNs first: events and environments may reference other functions.
        name = properties.get("FunctionName") or self._name(logical_id)
        arn = f"arn:aws:lambda:{self.stack.region}:{ACCOUNT_ID}:function:{name}"
        self.stack.physical[logical_id] = name
        self.stack.attributes[(logical_id, "Arn")] = arn
        self.stack.attributes[(f"{logical_id}Role", "Arn")] = f"arn:aws:iam::{ACCOUNT_ID}:role/{name}-role"
        self._pending_functions.append((logical_id, properties, defaults))

    @property
    def _pending_functions(self) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
        if not hasattr(self, "_pending"):
            self._pending: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        return self._pending

    def _finish_functions(self) -> None:
        for logical_id, properties, defaults in self._pending_functions:
            environment = {
                **self.resolver.resolve(defaults.get("Environment", {}).get("Variables", {})),
                **self.resolver.resolve(properties.get("Environment", {}).get("Variables", {})),
            }
            events = [
                EventSource(
                    name=event_name,
                    kind=event["Type"],
                    properties=self.resolver.resolve(event.get("Properties", {})),
                )
                for event_name, event in properties.get("Events", {}).items()
            ]
            dead_letter = properties.get("DeadLetterQueue")
            self.stack.functions[logical_id] = FunctionSpec(
                logical_id=logical_id,
                function_name=self.stack.physical[logical_id],
                handler=str(properties.get("Handler") or defaults.get("Handler")),
                environment={k: str(v) for k, v in environment.items() if v is not None},
                timeout=int(properties.get("Timeout") or defaults.get("Timeout") or 3),
                events=events,
                dead_letter_arn=self.resolver.resolve(dead_letter["TargetArn"]) if dead_letter else None,
            )
        self._pending_functions.clear()

    def _create_serverless_api(self, logical_id: str, properties: dict[str, Any]) -> None:
        self.stack.physical[logical_id] = "local"
        self.stack.attributes[(logical_id, "RootResourceId")] = "local"

    def _create_s3_bucket(self, logical_id: str, properties: dict[str, Any]) -> None:
        props = self._props(properties)
        name = str(props.get("BucketName") or self._name(logical_id)).lower()
        s3 = self.client("s3")
        if self.stack.region == "us-east-1":
            s3.create_bucket(Bucket=name)
        else:
            s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": self.stack.region})
        self.stack.physical[logical_id] = name
        self.stack.buckets.add(name)
        self.stack.attributes[(logical_id, "Arn")] = f"arn:aws:s3:::{name}"
        self.stack.attributes[(logical_id, "DomainName")] = f"{name}.s3.amazonaws.com"
        if "BucketEncryption" in props:
            # CloudFormation and the S3 API spell the default-encryption rule differently.
            rules = [
                {
                    ("ApplyServerSideEncryptionByDefault" if k == "ServerSideEncryptionByDefault" else k): v
                    for k, v in rule.items()
                }
                for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
            ]
            s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
        if "PublicAccessBlockConfiguration" in props:
            s3.put_public_access_block(
                Bucket=name,
                PublicAccessBlockConfiguration={k: bool(v) for k, v in props["PublicAccessBlockConfiguration"].items()},
            )
        if "LifecycleConfiguration" in props:
            s3.put_bucket_lifecycle_configuration(
                Bucket=name,
                LifecycleConfiguration={
                    "Rules": [_lifecycle_rule(rule) for rule in props["LifecycleConfiguration"]["Rules"]]
                },
            )
        notifications = props.get("NotificationConfiguration", {})
        queues = []
        for config in notifications.get("QueueConfigurations", []):
            entry: dict[str, Any] = {"QueueArn": config["Queue"], "Events": [config["Event"]]}
            rules = config.get("Filter", {}).get("S3Key", {}).get("Rules")
            if rules:
                entry["Filter"] = {"Key": {"FilterRules": rules}}
            queues.append(entry)
        if queues:
            s3.put_bucket_notification_configuration(
                Bucket=name, NotificationConfiguration={"QueueConfigurations": queues}
            )

    def _create_s3_bucket_policy(self, logical_id: str, properties: dict[str, Any]) -> None:
        props = self._props(properties)
        document = dict(props["PolicyDocument"])
        # The local endpoint is plain HTTP on loopback: a TLS-only statement would deny every
        # request there. It is kept on AWS; locally it is the one statement left out.
        document["Statement"] = [
            statement
            for statement in document.get("Statement", [])
            if "aws:SecureTransport" not in json.dumps(statement.get("Condition", {}))
        ]
        if document["Statement"]:
            self.client("s3").put_bucket_policy(Bucket=props["Bucket"], Policy=json.dumps(document))

    def _create_sqs_queue_policy(self, logical_id: str, properties: dict[str, Any]) -> None:
        props = self._props(properties)
        for url in props.get("Queues", []):
            self.client("sqs").set_queue_attributes(
                QueueUrl=url, Attributes={"Policy": json.dumps(props["PolicyDocument"])}
            )

    def _create_sns_topic_policy(self, logical_id: str, properties: dict[str, Any]) -> None:
        props = self._props(properties)
        for arn in props.get("Topics", []):
            self.client("sns").set_topic_attributes(
                TopicArn=arn, AttributeName="Policy", AttributeValue=json.dumps(props["PolicyDocument"])
            )

    def _create_sns_subscription(self, logical_id: str, properties: dict[str, Any]) -> None:
        props = self._props(properties)
        self.client("sns").subscribe(TopicArn=props["TopicArn"], Protocol=props["Protocol"], Endpoint=props["Endpoint"])

    def _create_cloudwatch_alarm(self, logical_id: str, properties: dict[str, Any]) -> None:
        props = self._props(properties)
        allowed = {
            "AlarmName",
            "AlarmDescription",
            "ActionsEnabled",
            "AlarmActions",
            "MetricName",
            "Namespace",
            "Statistic",
            "Dimensions",
            "Period",
            "EvaluationPeriods",
            "Threshold",
            "ComparisonOperator",
            "TreatMissingData",
            "DatapointsToAlarm",
            "OKActions",
            "InsufficientDataActions",
            "Unit",
            "ExtendedStatistic",
        }
        kwargs = {k: v for k, v in props.items() if k in allowed}
        kwargs.setdefault("AlarmName", self._name(logical_id))
        self._api("cloudwatch", "put_metric_alarm", **kwargs)
        self.stack.physical[logical_id] = kwargs["AlarmName"]
        self.stack.attributes[(logical_id, "Arn")] = (
            f"arn:aws:cloudwatch:{self.stack.region}:{ACCOUNT_ID}:alarm:{kwargs['AlarmName']}"
        )

    def _create_cloudwatch_dashboard(self, logical_id: str, properties: dict[str, Any]) -> None:
        props = self._props(properties)
        name = str(props.get("DashboardName") or self._name(logical_id))
        self._api("cloudwatch", "put_dashboard", DashboardName=name, DashboardBody=str(props["DashboardBody"]))
        self.stack.physical[logical_id] = name

    def _delete_cloudwatch_dashboard(self, record: ResourceRecord) -> None:
        _ignore_missing(self.client("cloudwatch").delete_dashboards, DashboardNames=[record.physical_id])

    def _update_cloudwatch_alarm(self, logical_id: str, props: dict[str, Any], before: ResourceRecord) -> None:
        # PutMetricAlarm replaces the alarm of that name: an update in place.
        self._create_cloudwatch_alarm(logical_id, props)

    def _delete_cloudwatch_alarm(self, record: ResourceRecord) -> None:
        self.client("cloudwatch").delete_alarms(AlarmNames=[record.physical_id])

    # -- SageMaker: the control-plane calls the local runtime answers by hosting the model ------
    def _create_sagemaker_model(self, logical_id: str, properties: dict[str, Any]) -> None:
        props = self._props(properties)
        name = props.pop("ModelName", None) or self._generated_name(logical_id)
        arn = self._api("sagemaker", "create_model", ModelName=name, **props)["ModelArn"]
        self.stack.physical[logical_id] = arn  # Ref gives the ARN
        self.stack.attributes[(logical_id, "ModelName")] = name
        self.stack.attributes[(logical_id, "ModelArn")] = arn

    def _delete_sagemaker_model(self, record: ResourceRecord) -> None:
        _ignore_missing(self.client("sagemaker").delete_model, ModelName=record.attributes["ModelName"])

    def _create_sagemaker_endpoint_config(self, logical_id: str, properties: dict[str, Any]) -> None:
        props = self._props(properties)
        name = props.pop("EndpointConfigName", None) or self._generated_name(logical_id)
        arn = self._api("sagemaker", "create_endpoint_config", EndpointConfigName=name, **props)["EndpointConfigArn"]
        self.stack.physical[logical_id] = arn
        self.stack.attributes[(logical_id, "EndpointConfigName")] = name
        self.stack.attributes[(logical_id, "EndpointConfigArn")] = arn

    def _delete_sagemaker_endpoint_config(self, record: ResourceRecord) -> None:
        _ignore_missing(
            self.client("sagemaker").delete_endpoint_config, EndpointConfigName=record.attributes["EndpointConfigName"]
        )

    def _create_sagemaker_endpoint(self, logical_id: str, properties: dict[str, Any]) -> None:
        props = self._props(properties)
        name = props.get("EndpointName") or self._generated_name(logical_id)
        # The Retain* properties are UpdateEndpoint's; CreateEndpoint has none of them.
        create = {key: props[key] for key in ("EndpointConfigName", "DeploymentConfig", "Tags") if key in props}
        arn = self._api("sagemaker", "create_endpoint", EndpointName=name, **create)["EndpointArn"]
        self.stack.physical[logical_id] = arn
        self.stack.attributes[(logical_id, "EndpointName")] = name
        self.stack.attributes[(logical_id, "EndpointArn")] = arn
        # CloudFormation completes an endpoint when it is InService (the model loaded).
        self._wait_for_endpoint(name, props["EndpointConfigName"])

    def _update_sagemaker_endpoint(self, logical_id: str, props: dict[str, Any], before: ResourceRecord) -> None:
        name = before.attributes["EndpointName"]
        described = self.client("sagemaker").describe_endpoint(EndpointName=name)
        if (
            described["EndpointStatus"] == "InService"
            and described["EndpointConfigName"] == props["EndpointConfigName"]
        ):
            return  # serving it already (a rollback after SageMaker rolled the endpoint back itself)
        update = {
            key: props[key]
            for key in (
                "RetainAllVariantProperties",
                "ExcludeRetainedVariantProperties",
                "DeploymentConfig",
                "RetainDeploymentConfig",
            )
            if key in props
        }
        self._api(
            "sagemaker", "update_endpoint", EndpointName=name, EndpointConfigName=props["EndpointConfigName"], **update
        )
        self._wait_for_endpoint(name, props["EndpointConfigName"])

    def _delete_sagemaker_endpoint(self, record: ResourceRecord) -> None:
        _ignore_missing(self.client("sagemaker").delete_endpoint, EndpointName=record.attributes["EndpointName"])

    def _wait_for_endpoint(self, name: str, config_name: str) -> None:
        """Wait for ``name`` to serve ``config_name``, or fail with the endpoint's ``FailureReason``."""
        sagemaker = self.client("sagemaker")
        deadline = time.monotonic() + self.endpoint_timeout_seconds
        # Soon at first (most local models load in milliseconds), then less often: the runtime
        # loads one model at a time, and many stacks may be waiting at once.
        pause = 0.02
        while True:
            described = sagemaker.describe_endpoint(EndpointName=name)
            status = described["EndpointStatus"]
            if status not in _ENDPOINT_IN_PROGRESS:
                if status == "InService" and described["EndpointConfigName"] == config_name:
                    return
                raise _OperationFailedError(str(described.get("FailureReason") or f"the endpoint {name} is {status}"))
            if time.monotonic() > deadline:
                raise _OperationFailedError(
                    f"the endpoint {name} was still {status} after {self.endpoint_timeout_seconds:.0f} s"
                )
            time.sleep(pause)
            pause = min(pause * 1.5, 0.5)

    # -- Application Auto Scaling ---------------------------------------------------------------
    def _create_applicationautoscaling_scalable_target(self, logical_id: str, properties: dict[str, Any]) -> None:
        props = self._props(properties)
        self._register_scalable_target(props)
        # Ref of a scalable target: "<resource ID>|<scalable dimension>|<service namespace>".
        self.stack.physical[logical_id] = (
            f"{props['ResourceId']}|{props['ScalableDimension']}|{props['ServiceNamespace']}"
        )

    def _update_applicationautoscaling_scalable_target(
        self, logical_id: str, props: dict[str, Any], before: ResourceRecord
    ) -> None:
        self._register_scalable_target(props)  # registering again updates the capacities

    def _register_scalable_target(self, props: dict[str, Any]) -> None:
        if int(props["MinCapacity"]) > int(props["MaxCapacity"]):
            raise _OperationFailedError("Minimum capacity cannot be greater than maximum capacity")
        if props["ServiceNamespace"] == "sagemaker":
            self._require_variant(str(props["ResourceId"]))
        keys = (
            "ServiceNamespace",
            "ResourceId",
            "ScalableDimension",
            "MinCapacity",
            "MaxCapacity",
            "RoleARN",
            "SuspendedState",
        )
        self._api("application-autoscaling", "register_scalable_target", **{k: props[k] for k in keys if k in props})

    def _require_variant(self, resource_id: str) -> None:
        """AWS registers a variant of an existing endpoint only (moto registers any name)."""
        match = re.fullmatch(r"endpoint/([^/]+)/variant/([^/]+)", resource_id)
        if match is None:
            raise _OperationFailedError(f"{resource_id} is not a SageMaker variant (endpoint/<name>/variant/<variant>)")
        endpoint, variant = match.groups()
        try:
            described = self.client("sagemaker").describe_endpoint(EndpointName=endpoint)
        except Exception as error:
            raise _OperationFailedError(
                f"the endpoint of {resource_id} does not exist: {_failure_reason(error)}"
            ) from None
        names = [v.get("VariantName") for v in described.get("ProductionVariants", [])]
        if variant not in names:
            raise _OperationFailedError(
                f"the endpoint {endpoint} has no variant {variant} (it has {', '.join(map(str, names))})"
            )

    def _delete_applicationautoscaling_scalable_target(self, record: ResourceRecord) -> None:
        props = record.properties
        _ignore_missing(
            self.client("application-autoscaling").deregister_scalable_target,
            ServiceNamespace=props["ServiceNamespace"],
            ResourceId=props["ResourceId"],
            ScalableDimension=props["ScalableDimension"],
        )

    def _create_applicationautoscaling_scaling_policy(self, logical_id: str, properties: dict[str, Any]) -> None:
        props = self._props(properties)
        arn = self._put_scaling_policy(props)
        self.stack.physical[logical_id] = arn
        self.stack.attributes[(logical_id, "Arn")] = arn

    def _update_applicationautoscaling_scaling_policy(
        self, logical_id: str, props: dict[str, Any], before: ResourceRecord
    ) -> None:
        arn = self._put_scaling_policy(props)  # PutScalingPolicy of the same name updates it
        self.stack.physical[logical_id] = arn
        self.stack.attributes[(logical_id, "Arn")] = arn

    def _put_scaling_policy(self, props: dict[str, Any]) -> str:
        target = _scaling_target(props)
        configuration = {
            key: props[key]
            for key in (
                "PolicyType",
                "StepScalingPolicyConfiguration",
                "TargetTrackingScalingPolicyConfiguration",
                "PredictiveScalingPolicyConfiguration",
            )
            if key in props
        }
        answer = self._api(
            "application-autoscaling", "put_scaling_policy", PolicyName=props["PolicyName"], **target, **configuration
        )
        return str(answer["PolicyARN"])

    def _delete_applicationautoscaling_scaling_policy(self, record: ResourceRecord) -> None:
        _ignore_missing(
            self.client("application-autoscaling").delete_scaling_policy,
            PolicyName=record.properties["PolicyName"],
            **_scaling_target(record.properties),
        )


def _check_parameter(name: str, definition: dict[str, Any], value: str) -> None:
    """Refuse a value as CloudFormation does (its constraints, checked before anything is created)."""
    constraint = definition.get("ConstraintDescription")

    def refuse(problem: str) -> None:
        raise TemplateError(f"Parameter '{name}' failed to satisfy constraint: {constraint or problem}")

    allowed = definition.get("AllowedValues")
    if allowed is not None and value not in [str(v) for v in allowed]:
        refuse(f"'{value}' is not one of {', '.join(str(v) for v in allowed)}")
    pattern = definition.get("AllowedPattern")
    if pattern is not None and re.fullmatch(str(pattern), value) is None:
        refuse(f"Malformed input-Parameter {name} must match pattern {pattern}")
    if "MinLength" in definition and len(value) < int(definition["MinLength"]):
        refuse(f"'{value}' is shorter than {definition['MinLength']} characters")
    if "MaxLength" in definition and len(value) > int(definition["MaxLength"]):
        refuse(f"'{value}' is longer than {definition['MaxLength']} characters")
    if definition.get("Type") == "Number":
        try:
            number = float(value)
        except ValueError:
            refuse(f"'{value}' is not a number")
            return
        if "MinValue" in definition and number < float(definition["MinValue"]):
            refuse(f"{value} is less than {definition['MinValue']}")
        if "MaxValue" in definition and number > float(definition["MaxValue"]):
            refuse(f"{value} is greater than {definition['MaxValue']}")


def _without_no_value(value: Any) -> Any:
    """``value`` without the ``None`` that ``AWS::NoValue`` resolves to, in maps and lists alike."""
    if isinstance(value, dict):
        return {key: _without_no_value(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_no_value(item) for item in value if item is not None]
    return value


def _to_shape(shape: Any, value: Any) -> Any:
    """``value`` converted to the botocore input ``shape`` (strings to numbers and booleans, and back)."""
    if shape is None or value is None:
        return value
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        return {key: _to_shape(shape.members.get(key), item) for key, item in value.items()}
    if kind == "list" and isinstance(value, list):
        return [_to_shape(shape.member, item) for item in value]
    if kind == "map" and isinstance(value, dict):
        return {str(key): _to_shape(shape.value, item) for key, item in value.items()}
    if kind in ("integer", "long") and isinstance(value, str | float) and not isinstance(value, bool):
        return int(float(value))
    if kind in ("float", "double") and isinstance(value, str | int) and not isinstance(value, bool):
        return float(value)
    if kind == "boolean" and isinstance(value, str):
        return value.strip().lower() == "true"
    if kind == "string" and isinstance(value, bool):
        return "true" if value else "false"
    if kind == "string" and isinstance(value, int | float):
        return str(value)
    return value


def _scaling_target(props: dict[str, Any]) -> dict[str, str]:
    """A scaling policy's target: from ``ScalingTargetId`` (a scalable target's Ref) or its own properties."""
    if props.get("ScalingTargetId"):
        resource_id, dimension, namespace = str(props["ScalingTargetId"]).split("|")
        return {"ServiceNamespace": namespace, "ResourceId": resource_id, "ScalableDimension": dimension}
    return {key: str(props[key]) for key in ("ServiceNamespace", "ResourceId", "ScalableDimension")}


def _failure_reason(error: BaseException) -> str:
    """A resource's status reason: the API's own message (with its error code), or ours."""
    response = getattr(error, "response", None)
    if isinstance(response, dict) and "Error" in response:
        code = response["Error"].get("Code", "")
        message = response["Error"].get("Message", "") or str(error)
        return f"{message} (Error Code: {code})" if code else message
    return str(error)


def _ignore_missing(call: Callable[..., Any], **arguments: Any) -> None:
    """Delete something that may be gone already (deleting twice is not a failure)."""
    try:
        call(**arguments)
    except Exception as error:
        text = str(error)
        if not any(
            marker in text
            for marker in ("Could not find", "NoSuchEntity", "not found", "No scalable target", "does not exist")
        ):
            raise


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    converted: dict[str, Any] = {"ID": rule.get("Id", "rule"), "Status": rule.get("Status", "Enabled")}
    converted["Filter"] = {"Prefix": rule.get("Prefix", "")}
    if "ExpirationInDays" in rule:
        converted["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if "AbortIncompleteMultipartUpload" in rule:
        converted["AbortIncompleteMultipartUpload"] = {
            "DaysAfterInitiation": int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
        }
    return converted


def _references(value: Any) -> set[str]:
    """Logical IDs a resource definition names through Ref, GetAtt, Sub or DependsOn."""
    import re

    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= _references(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key == "Ref":
                found.add(str(item))
            elif key == "Fn::GetAtt":
                found.add(str(item[0] if isinstance(item, list) else str(item).split(".")[0]))
            elif key == "Fn::Sub":
                text = item[0] if isinstance(item, list) else item
                found |= {m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", str(text))}
                if isinstance(item, list):
                    found |= _references(item[1])
            elif key == "DependsOn":
                found |= set(item if isinstance(item, list) else [item])
            else:
                found |= _references(item)
    return found


def _method_suffix(resource_type: str) -> str:
    """``AWS::SQS::QueuePolicy`` → ``sqs_queue_policy`` (the name of the method creating it)."""
    import re

    service, kind = resource_type.split("::")[1:]
    return f"{service.lower()}_{re.sub(r'(?<=[a-z0-9])(?=[A-Z])', '_', kind).lower()}"

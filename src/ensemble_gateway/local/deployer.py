"""The local deployer: creates the resources of ``template.yaml`` with boto3 calls against moto.

moto's CloudFormation skips ``AWS::Serverless::*`` and ignores several properties, so the template
is read here and each resource is created with the API calls CloudFormation would make, including
what moto would ignore: table TTL and indexes, bucket notifications, queue redrive. Functions are not
"created": each becomes a :class:`FunctionSpec` (its ``Handler`` as a Python callable path, its
resolved ``Environment`` and its event sources) that the local runtime runs in-process.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .template import Resolver, TemplateError, load_template

ACCOUNT_ID = "123456789012"


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
class DeployedStack:
    stack_name: str
    region: str
    parameters: dict[str, str]
    physical: dict[str, Any] = field(default_factory=dict)
    attributes: dict[tuple[str, str], Any] = field(default_factory=dict)
    functions: dict[str, FunctionSpec] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    queue_urls_by_arn: dict[str, str] = field(default_factory=dict)
    buckets: set[str] = field(default_factory=set)


class LocalDeployer:
    """Deploys a SAM template to the local (moto) endpoint.

    Parameters
    ----------
    template_path
        The project's ``template.yaml``.
    client_factory
        Returns a boto3 client for a service name, pointed at the local endpoint.
    """

    # Creation order: what others reference comes first.
    ORDER = (
        "AWS::KMS::Key",
        "AWS::KMS::Alias",
        "AWS::DynamoDB::Table",
        "AWS::SQS::Queue",
        "AWS::SNS::Topic",
        "AWS::IAM::Role",
        "AWS::Serverless::Function",
        "AWS::Serverless::Api",
        "AWS::S3::Bucket",
        "AWS::S3::BucketPolicy",
        "AWS::SQS::QueuePolicy",
        "AWS::SNS::TopicPolicy",
        "AWS::SNS::Subscription",
        "AWS::CloudWatch::Alarm",
    )

    def __init__(
        self,
        template_path: Path,
        client_factory: Callable[[str], Any],
        *,
        stack_name: str = "ensemble-gateway",
        region: str = "us-east-1",
        parameter_overrides: dict[str, str] | None = None,
    ) -> None:
        self.template = load_template(template_path)
        self.client = client_factory
        self.stack = DeployedStack(stack_name=stack_name, region=region, parameters={})
        parameters = self.template.get("Parameters", {})
        for name, definition in parameters.items():
            value = (parameter_overrides or {}).get(name, definition.get("Default"))
            if value is None:
                raise TemplateError(f"parameter {name} has no default and no override")
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
            "AWS::StackId": f"arn:aws:cloudformation:{self.stack.region}:{ACCOUNT_ID}:stack/"
            f"{self.stack.stack_name}/local",
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
        for logical_id in self._creation_order(resources, by_type):
            resource = resources[logical_id]
            resource_type = resource["Type"]
            properties = resource.get("Properties", {})
            create = getattr(self, "_create_" + _method_suffix(resource_type))
            if resource_type == "AWS::Serverless::Function":
                create(logical_id, properties, globals_function)
            else:
                create(logical_id, properties)
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
        return self.stack

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
        resolved = self.resolver.resolve(properties)
        return {k: v for k, v in resolved.items() if v is not None}

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
        role = self.client("iam").create_role(
            RoleName=name, AssumeRolePolicyDocument=json.dumps(props.get("AssumeRolePolicyDocument", {}))
        )
        self.stack.physical[logical_id] = name
        self.stack.attributes[(logical_id, "Arn")] = role["Role"]["Arn"]

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
        }
        kwargs = {k: v for k, v in props.items() if k in allowed}
        kwargs.setdefault("AlarmName", self._name(logical_id))
        for key in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
            if key in kwargs:
                kwargs[key] = int(kwargs[key])
        if "Threshold" in kwargs:
            kwargs["Threshold"] = float(kwargs["Threshold"])
        self.client("cloudwatch").put_metric_alarm(**kwargs)
        self.stack.physical[logical_id] = kwargs["AlarmName"]


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

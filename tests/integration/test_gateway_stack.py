"""The gateway stack as the local deployer creates it from ``template.yaml``: what AWS would have
after ``sam deploy``, including the parts that only matter on AWS (operator policy, model role
boundary, API access log)."""

from __future__ import annotations

import re

from .conftest import Harness


def test_the_bucket_name_is_unique_per_stack_and_valid_for_s3(stack: Harness) -> None:
    # GIVEN the deployed gateway stack (its ID ends in a UUID, as CloudFormation's do)
    name = stack.bucket

    # THEN the bucket is named from the account, the region and the stack ID's first UUID part,
    # not from the stack name (which may be long or have capitals)
    assert re.fullmatch(r"ensemble-gateway-data-123456789012-us-east-1-[0-9a-f]{8}", name), name
    assert name.split("-")[-1] == stack.stack.stack_uuid.split("-")[0]
    assert len(name) <= 63
    # AND the bucket exists
    stack.client("s3").head_bucket(Bucket=name)


def test_the_operator_policy_and_the_model_role_boundary_exist_as_managed_policies(stack: Harness) -> None:
    # GIVEN the stack's outputs
    iam = stack.client("iam")

    # WHEN the policies they name are read
    documents = {}
    for output in ("OperatorPolicyArn", "ModelRoleBoundaryArn"):
        arn = stack.stack.outputs[output]
        version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
        documents[output] = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]

    # THEN they are the template's documents, on this stack's bucket
    boundary_resources = [
        resource
        for statement in documents["ModelRoleBoundaryArn"]["Statement"]
        for resource in ([statement["Resource"]] if isinstance(statement["Resource"], str) else statement["Resource"])
    ]
    assert f"arn:aws:s3:::{stack.bucket}/models/*" in boundary_resources
    sids = {statement.get("Sid") for statement in documents["OperatorPolicyArn"]["Statement"]}
    assert {"ReadGatewayStack", "ManageClients"} <= sids


def test_the_api_access_log_group_exists_with_its_retention(stack: Harness) -> None:
    # GIVEN the access log group the stack outputs
    name = stack.stack.outputs["ApiAccessLogGroupName"]

    # WHEN the local CloudWatch Logs describes it
    (group,) = [
        g
        for g in stack.client("logs").describe_log_groups(logGroupNamePrefix=name)["logGroups"]
        if g["logGroupName"] == name
    ]

    # THEN it keeps AccessLogRetentionDays (the parameter's default)
    assert name == f"/aws/apigateway/{stack.stack.stack_name}/access"
    assert group["retentionInDays"] == int(stack.stack.parameters["AccessLogRetentionDays"])


def test_the_event_bus_exists_without_a_policy_by_default(stack: Harness) -> None:
    # GIVEN the stack's event bus output
    name = stack.stack.outputs["EventBusName"]
    # WHEN the local EventBridge describes it
    bus = stack.client("events").describe_event_bus(Name=name)
    # THEN it is the stack's, shared with no other account
    assert name == f"{stack.stack.stack_name}-predictions"
    assert bus["Arn"] == stack.stack.outputs["EventBusArn"]
    assert not bus.get("Policy")


def test_the_audit_trail_is_wired_and_its_outbox_index_exists(stack: Harness) -> None:
    # GIVEN the stack's outputs and the functions' environment
    outputs = stack.stack.outputs

    # THEN the audit stream, database and table are named after the stack (recorded locally: the
    # records go straight to the bucket there, see adapters/s3.py:S3AuditSink)
    assert outputs["AuditStreamName"] == f"{stack.stack.stack_name}-audit"
    assert outputs["AuditDatabaseName"] == f"{stack.stack.stack_name}_audit".replace("-", "_").lower()
    assert outputs["AuditTableName"] == "decisions"
    assert stack.environment["AUDIT_STREAM_NAME"] == outputs["AuditStreamName"]
    # AND the predictions table has the audit outbox's sparse index
    table = stack.client("dynamodb").describe_table(TableName=stack.environment["PREDICTIONS_TABLE"])["Table"]
    indexes = {i["IndexName"]: i for i in table["GlobalSecondaryIndexes"]}
    assert [k["AttributeName"] for k in indexes["by-audit-pending"]["KeySchema"]] == ["audit_pending", "finished_at"]
    # AND the stream's error log stream exists for Firehose to write to
    group = f"/aws/kinesisfirehose/{stack.stack.stack_name}-audit"
    streams = stack.client("logs").describe_log_streams(logGroupName=group)["logStreams"]
    assert [s["logStreamName"] for s in streams] == ["DestinationDelivery"]

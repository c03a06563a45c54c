"""``models render|deploy --stack-name``: the AWS path, with boto3 answered by fakes of AWS's APIs.

The CLI runs in-process with ``boto3.session.Session`` replaced: the gateway stack's outputs come
from DescribeStacks, the archive goes to S3, the endpoint stack to CloudFormation and the catalog
entry to DynamoDB, as on AWS; nothing leaves the process.
"""

from __future__ import annotations

import json
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from ensemble_gateway import cli
from ensemble_gateway.framework_images import framework_image_uri
from ensemble_gateway.local.template import parse_template

REGION = "eu-west-1"
OUTPUTS = {
    "BucketName": "ensemble-gateway-data-123456789012-eu-west-1-1a2b3c4d",
    "ServicesTableName": "gw-ServicesTable-1",
    "GetTransformCallFunctionArn": "arn:aws:lambda:eu-west-1:123456789012:function:gw-GetTransformCall",
    "EnsembleStateMachineRoleArn": "arn:aws:iam::123456789012:role/gw-EnsembleStateMachineRole-1",
    "SuccessTopicArn": "arn:aws:sns:eu-west-1:123456789012:gw-SuccessTopic-1",
    "ErrorTopicArn": "arn:aws:sns:eu-west-1:123456789012:gw-ErrorTopic-1",
    "DataKeyArn": "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    "ModelRoleBoundaryArn": "arn:aws:iam::123456789012:policy/gw-ModelRoleBoundary-1",
}


def client_error(code: str, message: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


class FakeAws:
    """The AWS APIs the commands call, recording what they were asked."""

    def __init__(self) -> None:
        self.uploads: list[tuple[str, str, list[str]]] = []
        self.created: list[dict[str, Any]] = []
        self.items: list[dict[str, Any]] = []
        self.create_failure: ClientError | None = None
        self.upload_failure: Exception | None = None
        self.stack_events: list[dict[str, Any]] = []
        self.final_status = "CREATE_COMPLETE"

    # cloudformation
    def describe_stacks(self, StackName: str) -> dict[str, Any]:  # noqa: N803 (boto3's names)
        if StackName == "gw":
            outputs = [{"OutputKey": k, "OutputValue": v} for k, v in OUTPUTS.items()]
            return {
                "Stacks": [
                    {"StackName": "gw", "StackId": "gw-id", "StackStatus": "UPDATE_COMPLETE", "Outputs": outputs}
                ]
            }
        if self.created:
            return {
                "Stacks": [
                    {
                        "StackName": "gw-model-iris",
                        "StackId": "iris-id",
                        "StackStatus": self.final_status,
                        "Outputs": [{"OutputKey": "EndpointName", "OutputValue": "iris"}],
                    }
                ]
            }
        raise client_error("ValidationError", f"Stack with id {StackName} does not exist", "DescribeStacks")

    def describe_stack_events(self, StackName: str, **_: Any) -> dict[str, Any]:  # noqa: N803
        return {"StackEvents": list(reversed(self.stack_events))}

    def create_stack(self, **arguments: Any) -> dict[str, Any]:
        if self.create_failure is not None:
            raise self.create_failure
        self.created.append(arguments)
        return {"StackId": "iris-id"}

    # s3
    def head_object(self, Bucket: str, Key: str) -> None:  # noqa: N803
        raise client_error("404", "Not Found", "HeadObject")

    def upload_file(self, filename: str, bucket: str, key: str, ExtraArgs: Any = None) -> None:  # noqa: N803
        if self.upload_failure is not None:
            raise self.upload_failure
        with tarfile.open(filename) as archive:
            self.uploads.append((bucket, key, sorted(archive.getnames())))

    # dynamodb (the catalog)
    def get_item(self, **_: Any) -> dict[str, Any]:
        return {}

    def put_item(self, TableName: str, Item: dict[str, Any]) -> None:  # noqa: N803
        self.items.append({"table": TableName, "document": json.loads(Item["document"]["S"])})


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> FakeAws:
    fake = FakeAws()

    class Session:
        def __init__(self, **_: Any) -> None:
            pass

        def client(self, service: str, **_: Any) -> FakeAws:
            return fake

    monkeypatch.setattr("boto3.session.Session", Session)
    return fake


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    model = tmp_path / "iris"
    (model / "code").mkdir(parents=True)
    (model / "code" / "inference.py").write_text("def model_fn(model_dir):\n    return None\n")
    (model / "model.joblib").write_bytes(b"weights")
    path = tmp_path / "catalog.json"
    path.write_text(
        json.dumps(
            [
                {
                    "name": "iris",
                    "kind": "model",
                    "version": "1.0.0",
                    "model": {"endpoint_name": "iris", "model_data": "iris", "framework": "sklearn"},
                }
            ]
        )
    )
    return path


def run(*arguments: str) -> int:
    return cli.main(list(arguments))


def event(logical_id: str, resource_type: str, status: str, reason: str = "") -> dict[str, Any]:
    return {
        "EventId": f"{logical_id}-{status}",
        "LogicalResourceId": logical_id,
        "ResourceType": resource_type,
        "ResourceStatus": status,
        "ResourceStatusReason": reason,
        "Timestamp": datetime.now(UTC),
    }


def test_render_fills_the_template_from_the_stacks_outputs_and_uploads_nothing(
    aws: FakeAws, catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # WHEN the endpoint stack of a catalog entry is rendered for a deployed gateway
    code = run("models", "render", "iris", "--catalog", str(catalog), "--stack-name", "gw", "--region", REGION)

    # THEN its parameters default to the entry's and the gateway stack's outputs, in its region
    assert code == 0
    parameters = parse_template(capsys.readouterr().out)["Parameters"]
    assert parameters["ImageUri"]["Default"] == framework_image_uri("sklearn", REGION)
    assert parameters["BucketName"]["Default"] == OUTPUTS["BucketName"]
    assert parameters["DataKeyArn"]["Default"] == OUTPUTS["DataKeyArn"]
    assert parameters["PermissionsBoundaryArn"]["Default"] == OUTPUTS["ModelRoleBoundaryArn"]
    assert parameters["ModelDataUrl"]["Default"].startswith(f"s3://{OUTPUTS['BucketName']}/models/iris/1.0.0/")
    # AND nothing was uploaded or deployed
    assert aws.uploads == [] and aws.created == []


def test_deploy_uploads_the_archive_creates_the_stack_and_registers_the_entry(
    aws: FakeAws, catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a stack creation that goes well
    aws.stack_events = [
        event("gw-model-iris", "AWS::CloudFormation::Stack", "CREATE_IN_PROGRESS", "User Initiated"),
        event("Endpoint", "AWS::SageMaker::Endpoint", "CREATE_COMPLETE"),
        event("gw-model-iris", "AWS::CloudFormation::Stack", "CREATE_COMPLETE"),
    ]

    # WHEN the model is deployed to the gateway
    code = run("models", "deploy", "iris", "--catalog", str(catalog), "--stack-name", "gw", "--region", REGION)

    # THEN the directory was packed and uploaded under models/<service>/<version>/
    captured = capsys.readouterr()
    assert code == 0, captured.err
    [(bucket, key, members)] = aws.uploads
    assert bucket == OUTPUTS["BucketName"] and key.startswith("models/iris/1.0.0/") and key.endswith("/model.tar.gz")
    assert members == ["code/inference.py", "model.joblib"]
    # AND the stack gw-model-iris was created from the rendered template, bounded role and all
    [created] = aws.created
    assert created["StackName"] == "gw-model-iris" and created["Capabilities"] == ["CAPABILITY_IAM"]
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in created["Parameters"]}
    assert parameters["ModelDataUrl"] == f"s3://{bucket}/{key}"
    assert parameters["PermissionsBoundaryArn"] == OUTPUTS["ModelRoleBoundaryArn"]
    assert parse_template(created["TemplateBody"])["Parameters"]["ModelDataUrl"]["Default"] == f"s3://{bucket}/{key}"
    # AND its events were shown one line each, then the entry was registered with the archive
    assert "CREATE_COMPLETE" in captured.err and "AWS::SageMaker::Endpoint" in captured.err
    [item] = aws.items
    assert item["table"] == OUTPUTS["ServicesTableName"]
    assert item["document"]["model"]["model_data"] == f"s3://{bucket}/{key}"


def test_access_denied_names_the_missing_permission_as_aws_reports_it(
    aws: FakeAws, catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an operator who may not create stacks
    aws.create_failure = client_error(
        "AccessDenied",
        "User: arn:aws:iam::123456789012:user/dev is not authorized to perform: cloudformation:CreateStack on "
        "resource: arn:aws:cloudformation:eu-west-1:123456789012:stack/gw-model-iris/* because no identity-based "
        "policy allows the cloudformation:CreateStack action",
        "CreateStack",
    )

    # WHEN they deploy THEN the CLI says so in AWS's words, without a traceback, and registers nothing
    code = run("models", "deploy", "iris", "--catalog", str(catalog), "--stack-name", "gw", "--region", REGION)
    err = capsys.readouterr().err
    assert code == 2
    assert "error: access denied (create_stack): User: arn:aws:iam::123456789012:user/dev" in err
    assert "cloudformation:CreateStack" in err and "Traceback" not in err
    assert aws.items == []


def test_an_upload_the_operator_may_not_make_is_reported_with_the_permission_and_nothing_deployed(
    aws: FakeAws, catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from boto3.exceptions import S3UploadFailedError

    # GIVEN an operator who may not write under models/ (boto3 wraps S3's AccessDenied)
    aws.upload_failure = S3UploadFailedError(
        "Failed to upload model.tar.gz: An error occurred (AccessDenied) when calling the PutObject operation: "
        "User: arn:aws:iam::123456789012:user/dev is not authorized to perform: s3:PutObject"
    )

    # WHEN they deploy THEN the error names the permission; no stack was created
    code = run("models", "deploy", "iris", "--catalog", str(catalog), "--stack-name", "gw", "--region", REGION)
    err = capsys.readouterr().err
    assert code == 2 and "is not authorized to perform: s3:PutObject" in err and "Traceback" not in err
    assert aws.created == [] and aws.items == []


def test_a_failed_stack_reports_its_first_failure_and_registers_nothing(
    aws: FakeAws, catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a creation whose endpoint fails, the rest cancelled, the stack rolled back
    aws.stack_events = [
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
    ]
    aws.final_status = "ROLLBACK_COMPLETE"

    # WHEN the model is deployed
    code = run("models", "deploy", "iris", "--catalog", str(catalog), "--stack-name", "gw", "--region", REGION)

    # THEN the error is the first failure, with its resource and reason
    err = capsys.readouterr().err
    assert code == 2
    assert (
        "error: stack gw-model-iris ROLLBACK_COMPLETE: Endpoint (AWS::SageMaker::Endpoint): "
        "The primary container did not pass the ping health check." in err
    )
    assert aws.items == []

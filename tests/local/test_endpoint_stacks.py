"""Endpoint stacks on the local runtime: the local deployer creating, updating and deleting them.

moto (IAM, S3, Application Auto Scaling, CloudWatch) and the local SageMaker control plane over
real HTTP, as in the local runtime; the SageMaker runtime is a fake that records what it hosts (a
model directory holding a file named FAIL does not load). Names are unique per test: moto's state
is the process's.
"""

from __future__ import annotations

import io
import tarfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from werkzeug.serving import make_server

from ensemble_gateway.endpoint_stack import EndpointStackError, StackEvent, endpoint_template_path
from ensemble_gateway.framework_images import framework_image_uri
from ensemble_gateway.local.sagemaker import ModelLoadError
from ensemble_gateway.local.sagemaker_control import LocalSageMakerControlPlane
from ensemble_gateway.local.stacks import LocalEndpointStacks


class FakeSageMakerRuntime:
    def __init__(self) -> None:
        self.endpoints: dict[str, Any] = {}

    def add_endpoint(self, endpoint: Any) -> None:
        marker = Path(endpoint.model_dir) / "FAIL"
        if marker.exists():
            raise ModelLoadError(f"{endpoint.model_dir}/code/inference.py: {marker.read_text()}")
        self.endpoints[endpoint.name] = endpoint

    def remove_endpoint(self, name: str) -> None:
        self.endpoints.pop(name, None)


class Harness:
    def __init__(self, factory: Any, runtime: FakeSageMakerRuntime, plane: LocalSageMakerControlPlane) -> None:
        self.client = factory
        self.runtime = runtime
        self.plane = plane
        self.stacks = LocalEndpointStacks(factory, endpoint_timeout_seconds=10)
        self.bucket = f"models-{uuid.uuid4().hex[:12]}"
        factory("s3").create_bucket(Bucket=self.bucket)
        self.name = f"ep-{uuid.uuid4().hex[:8]}"
        self.events: list[StackEvent] = []

    def archive(self, version: str, fail: str | None = None) -> str:
        """A model.tar.gz in the bucket; its URI."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            for name, text in {"code/inference.py": f"# {version}\n", **({"FAIL": fail} if fail else {})}.items():
                data = text.encode()
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        key = f"models/{self.name}/{version}/model.tar.gz"
        self.client("s3").put_object(Bucket=self.bucket, Key=key, Body=buffer.getvalue())
        return f"s3://{self.bucket}/{key}"

    def deploy(self, model_data_url: str, **parameters: str) -> dict[str, str]:
        values = {
            "EndpointName": self.name,
            "ImageUri": framework_image_uri("sklearn", "us-east-1"),
            "ModelDataUrl": model_data_url,
            "BucketName": self.bucket,
            "SuccessTopicArn": "arn:aws:sns:us-east-1:123456789012:ok",
            "ErrorTopicArn": "arn:aws:sns:us-east-1:123456789012:error",
            "DataKeyArn": "arn:aws:kms:us-east-1:123456789012:key/abcd",
            **parameters,
        }
        self.events.clear()
        return self.stacks.deploy(
            f"{self.name}-stack", endpoint_template_path().read_text(), values, self.events.append
        )

    def statuses(self, logical_id: str) -> list[str]:
        return [event.status for event in self.events if event.logical_id == logical_id]

    def scalable_targets(self) -> list[dict[str, Any]]:
        return list(
            self.client("application-autoscaling").describe_scalable_targets(
                ServiceNamespace="sagemaker", ResourceIds=[f"endpoint/{self.name}/variant/AllTraffic"]
            )["ScalableTargets"]
        )

    def alarms(self) -> list[dict[str, Any]]:
        return list(self.client("cloudwatch").describe_alarms(AlarmNamePrefix=f"{self.name}-stack")["MetricAlarms"])


@pytest.fixture
def harness() -> Iterator[Harness]:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    clients: dict[str, Any] = {}
    address: dict[str, str] = {}

    def factory(service: str) -> Any:
        if service not in clients:
            clients[service] = boto3.session.Session().client(
                service,
                region_name="us-east-1",
                endpoint_url=address["url"],
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
                config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
            )
        return clients[service]

    runtime = FakeSageMakerRuntime()
    plane = LocalSageMakerControlPlane(runtime, factory)
    server = make_server(
        "127.0.0.1", 0, plane.middleware(DomainDispatcherApplication(create_backend_app)), threaded=True
    )
    address["url"] = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Harness(factory, runtime, plane)
    finally:
        server.shutdown()
        plane.shutdown()


def test_a_stack_is_created_then_updated_in_place_or_by_replacement_then_deleted(harness: Harness) -> None:
    # GIVEN an async endpoint stack
    first = harness.deploy(harness.archive("v1"))
    sagemaker, iam = harness.client("sagemaker"), harness.client("iam")
    assert sagemaker.describe_endpoint(EndpointName=harness.name)["EndpointStatus"] == "InService"
    [target] = harness.scalable_targets()
    assert (target["MinCapacity"], target["MaxCapacity"]) == (0, 2)
    [alarm] = harness.alarms()
    policies = harness.client("application-autoscaling").describe_scaling_policies(
        ServiceNamespace="sagemaker", ResourceId=f"endpoint/{harness.name}/variant/AllTraffic"
    )["ScalingPolicies"]
    step = next(p for p in policies if p["PolicyType"] == "StepScaling")
    assert alarm["AlarmActions"] == [step["PolicyARN"]]
    role = first["RoleArn"].rsplit("/", 1)[1]
    assert iam.list_role_policies(RoleName=role)["PolicyNames"] == ["serve-model"]

    # WHEN it is deployed again unchanged THEN nothing happens
    assert harness.deploy(harness.archive("v1")) == first
    assert harness.events == []

    # WHEN the model data changes
    second = harness.deploy(harness.archive("v2"))

    # THEN the model and its configuration are replaced, the endpoint updated in place, the role's
    # policy follows the new archive, and the superseded model and configuration are deleted
    assert harness.statuses("Model")[0] == "UPDATE_IN_PROGRESS" and second["ModelName"] != first["ModelName"]
    assert second["EndpointConfigName"] != first["EndpointConfigName"]
    assert harness.statuses("Endpoint") == ["UPDATE_IN_PROGRESS", "UPDATE_COMPLETE"]
    assert second["RoleArn"] == first["RoleArn"]
    document = iam.get_role_policy(RoleName=role, PolicyName="serve-model")["PolicyDocument"]
    assert f"{harness.name}/v2/model.tar.gz" in str(document)
    with pytest.raises(ClientError, match="Could not find model"):
        sagemaker.describe_model(ModelName=first["ModelName"])
    with pytest.raises(ClientError, match="Could not find endpoint configuration"):
        sagemaker.describe_endpoint_config(EndpointConfigName=first["EndpointConfigName"])
    assert Path(harness.runtime.endpoints[harness.name].model_dir, "code", "inference.py").read_text() == "# v2\n"

    # WHEN it becomes a real-time endpoint
    harness.deploy(harness.archive("v2"), EndpointType="realtime")

    # THEN its autoscaling and alarm are gone and it serves in real time
    assert harness.scalable_targets() == [] and harness.alarms() == []
    assert harness.runtime.endpoints[harness.name].mode == "realtime"

    # WHEN the stack is deleted THEN the endpoint, model, configuration and role are gone
    harness.stacks.delete(f"{harness.name}-stack", harness.events.append)
    with pytest.raises(ClientError, match="Could not find endpoint"):
        sagemaker.describe_endpoint(EndpointName=harness.name)
    with pytest.raises(ClientError):
        iam.get_role(RoleName=role)
    assert harness.stacks.outputs(f"{harness.name}-stack") is None


def test_a_failed_update_rolls_back_and_the_previous_model_serves_on(harness: Harness) -> None:
    # GIVEN a stack serving v1
    first = harness.deploy(harness.archive("v1"), EndpointType="realtime")

    # WHEN it is updated to a model that does not load
    with pytest.raises(EndpointStackError) as raised:
        harness.deploy(harness.archive("v2", fail="ImportError: nope"), EndpointType="realtime")

    # THEN the error is the endpoint's failure reason, in the container's /opt/ml/model
    assert raised.value.resource == "Endpoint"
    assert raised.value.reason == "/opt/ml/model/code/inference.py: ImportError: nope"
    assert "UPDATE_ROLLBACK_COMPLETE" in raised.value.message
    # AND the stack is as it was: v1 serves, the new model and configuration are deleted
    assert harness.stacks.outputs(f"{harness.name}-stack") == first
    described = harness.client("sagemaker").describe_endpoint(EndpointName=harness.name)
    assert described["EndpointConfigName"] == first["EndpointConfigName"]
    assert [n for n in harness.plane._models if n.startswith(f"{harness.name}-stack")] == [first["ModelName"]]
    assert [n for n in harness.plane._configs if n.startswith(f"{harness.name}-stack")] == [first["EndpointConfigName"]]
    assert Path(harness.runtime.endpoints[harness.name].model_dir, "code", "inference.py").read_text() == "# v1\n"


def test_a_new_stack_that_fails_leaves_nothing_behind(harness: Harness) -> None:
    # WHEN a stack is created with a model that does not load
    with pytest.raises(EndpointStackError, match=r"ROLLBACK_COMPLETE: Endpoint \(AWS::SageMaker::Endpoint\)"):
        harness.deploy(harness.archive("v1", fail="ValueError: weights missing"))

    # THEN CloudFormation's rollback deleted what was created: no endpoint, model, role or record
    assert harness.statuses(f"{harness.name}-stack")[-1] == "ROLLBACK_COMPLETE"
    assert "DELETE_COMPLETE" in harness.statuses("ExecutionRole")
    with pytest.raises(ClientError, match="Could not find endpoint"):
        harness.client("sagemaker").describe_endpoint(EndpointName=harness.name)
    assert [n for n in harness.plane._models if n.startswith(f"{harness.name}-stack")] == []
    assert harness.stacks.outputs(f"{harness.name}-stack") is None
    assert harness.scalable_targets() == []

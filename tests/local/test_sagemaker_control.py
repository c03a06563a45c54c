"""The local SageMaker control plane through boto3's sagemaker client over real HTTP."""

from __future__ import annotations

import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from werkzeug.serving import make_server
from werkzeug.wrappers import Response

from ensemble_gateway.local.sagemaker import ModelLoadError
from ensemble_gateway.local.sagemaker_control import LocalSageMakerControlPlane

ROLE = "arn:aws:iam::123456789012:role/r"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"


class FakeSageMakerRuntime:
    """Records hosted endpoints; a model directory holding a file named FAIL fails to load."""

    def __init__(self) -> None:
        self.endpoints: dict[str, Any] = {}
        self.removed: list[str] = []

    def add_endpoint(self, endpoint: Any) -> None:
        marker = Path(endpoint.model_dir) / "FAIL"
        if marker.exists():
            raise ModelLoadError(f"{endpoint.model_dir}/code/inference.py: {marker.read_text()}")
        self.endpoints[endpoint.name] = endpoint

    def remove_endpoint(self, name: str) -> None:
        self.removed.append(name)
        self.endpoints.pop(name, None)


@pytest.fixture
def control() -> Iterator[tuple[Any, FakeSageMakerRuntime, LocalSageMakerControlPlane]]:
    runtime = FakeSageMakerRuntime()
    plane = LocalSageMakerControlPlane(runtime, client_factory=lambda service: None)

    def not_ours(environ: Any, start_response: Any) -> Any:
        return Response("moto", status=418)(environ, start_response)

    server = make_server("127.0.0.1", 0, plane.middleware(not_ours), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = boto3.client(
        "sagemaker",
        region_name="us-east-1",
        endpoint_url=f"http://127.0.0.1:{server.server_port}",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}),
    )
    try:
        yield client, runtime, plane
    finally:
        server.shutdown()
        plane.shutdown()


def model_directory(root: Path, name: str, fail: str | None = None) -> Path:
    directory = root / name
    (directory / "code").mkdir(parents=True)
    (directory / "code" / "inference.py").write_text("def model_fn(d):\n    return 1\n")
    if fail:
        (directory / "FAIL").write_text(fail)
    return directory


def deploy(client: Any, name: str, directory: Path, *, update: bool = False, asynchronous: bool = True) -> None:
    client.create_model(
        ModelName=name,
        ExecutionRoleArn="arn:aws:iam::123456789012:role/r",
        PrimaryContainer={
            "Image": IMAGE,
            "ModelDataSource": {
                "S3DataSource": {"S3Uri": directory.as_uri() + "/", "S3DataType": "S3Prefix", "CompressionType": "None"}
            },
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py", "THRESHOLD": "0.7"},
        },
    )
    config: dict[str, Any] = {
        "EndpointConfigName": name,
        "ProductionVariants": [
            {"VariantName": "blue", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}
        ],
    }
    if asynchronous:
        config["AsyncInferenceConfig"] = {
            "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 3},
            "OutputConfig": {
                "S3OutputPath": "s3://bucket/outputs",
                "S3FailurePath": "s3://bucket/failures",
                "NotificationConfig": {"SuccessTopic": "arn:ok", "ErrorTopic": "arn:error"},
            },
        }
    client.create_endpoint_config(**config)
    if update:
        client.update_endpoint(EndpointName="scorer", EndpointConfigName=name)
    else:
        client.create_endpoint(EndpointName="scorer", EndpointConfigName=name)


def settled(client: Any, name: str = "scorer") -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        described: dict[str, Any] = client.describe_endpoint(EndpointName=name)
        if described["EndpointStatus"] not in ("Creating", "Updating") or time.monotonic() > deadline:
            return described
        time.sleep(0.02)


def test_creating_an_endpoint_hosts_its_model_as_the_configuration_says(control: Any, tmp_path: Path) -> None:
    client, runtime, _ = control
    # GIVEN a model directory on disk
    directory = model_directory(tmp_path, "v1")

    # WHEN a model, an async endpoint configuration and an endpoint are created
    deploy(client, "v1", directory)

    # THEN the endpoint comes InService, hosted with the image's framework, paths, topics and environment
    described = settled(client)
    assert described["EndpointStatus"] == "InService"
    assert described["EndpointConfigName"] == "v1"
    hosted = runtime.endpoints["scorer"]
    assert (hosted.framework, hosted.mode, hosted.variant) == ("sklearn", "async", "blue")
    assert Path(hosted.model_dir) == directory
    assert (hosted.output_path, hosted.failure_path) == ("s3://bucket/outputs", "s3://bucket/failures")
    assert (hosted.success_topic_arn, hosted.error_topic_arn, hosted.max_concurrency) == ("arn:ok", "arn:error", 3)
    assert hosted.environment["THRESHOLD"] == "0.7" and hosted.program == "inference.py"


def test_a_model_that_cannot_load_leaves_the_endpoint_failed_with_the_reason(control: Any, tmp_path: Path) -> None:
    client, runtime, _ = control
    # GIVEN a model whose code fails to import
    directory = model_directory(tmp_path, "bad", fail="ImportError: No module named 'nope'")

    # WHEN its endpoint is created
    deploy(client, "bad", directory)

    # THEN the endpoint is Failed, the reason naming the file and the exception; nothing is hosted
    described = settled(client)
    assert described["EndpointStatus"] == "Failed"
    assert "code/inference.py: ImportError: No module named 'nope'" in described["FailureReason"]
    assert "scorer" not in runtime.endpoints
    # AND a failed endpoint cannot be updated, only deleted
    with pytest.raises(ClientError, match="Cannot update failed endpoint"):
        client.update_endpoint(EndpointName="scorer", EndpointConfigName="bad")
    client.delete_endpoint(EndpointName="scorer")
    with pytest.raises(ClientError, match="Could not find endpoint"):
        client.describe_endpoint(EndpointName="scorer")


def test_a_failed_update_rolls_back_to_the_serving_model(control: Any, tmp_path: Path) -> None:
    client, runtime, _ = control
    # GIVEN an endpoint serving v1
    deploy(client, "v1", model_directory(tmp_path, "v1"))
    assert settled(client)["EndpointStatus"] == "InService"

    # WHEN it is updated to a v2 whose model_fn fails
    deploy(client, "v2", model_directory(tmp_path, "v2", fail="ValueError: weights missing"), update=True)

    # THEN the endpoint stays InService on v1, with the update's failure reason
    described = settled(client)
    assert (described["EndpointStatus"], described["EndpointConfigName"]) == ("InService", "v1")
    assert "ValueError: weights missing" in described["FailureReason"]
    assert Path(runtime.endpoints["scorer"].model_dir).name == "v1"

    # AND a good v3 replaces v1
    deploy(client, "v3", model_directory(tmp_path, "v3"), update=True, asynchronous=False)
    described = settled(client)
    assert (described["EndpointStatus"], described["EndpointConfigName"]) == ("InService", "v3")
    assert "FailureReason" not in described
    assert runtime.endpoints["scorer"].mode == "realtime"


def test_a_model_tar_gz_is_unpacked_and_served(control: Any, tmp_path: Path) -> None:
    client, runtime, _ = control
    # GIVEN a model.tar.gz with code/inference.py at its root
    directory = model_directory(tmp_path, "packed")
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(directory / "code", arcname="code")

    # WHEN a model names it as its ModelDataUrl and an endpoint is created
    client.create_model(
        ModelName="packed",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": "my/image", "ModelDataUrl": archive.as_uri()},
    )
    client.create_endpoint_config(
        EndpointConfigName="packed", ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "packed"}]
    )
    client.create_endpoint(EndpointName="scorer", EndpointConfigName="packed")

    # THEN the unpacked copy is served (custom image: the toolkit's defaults), and removed with the endpoint
    assert settled(client)["EndpointStatus"] == "InService"
    hosted = runtime.endpoints["scorer"]
    assert hosted.framework == "custom"
    assert (Path(hosted.model_dir) / "code" / "inference.py").is_file()
    assert Path(hosted.model_dir) != directory
    client.delete_endpoint(EndpointName="scorer")
    assert runtime.removed == ["scorer"] and not Path(hosted.model_dir).exists()


def test_names_taken_and_unknown_names_are_validation_errors(control: Any, tmp_path: Path) -> None:
    client, _, _ = control
    deploy(client, "v1", model_directory(tmp_path, "v1"))
    with pytest.raises(ClientError, match="Cannot create already existing model") as taken:
        client.create_model(
            ModelName="v1", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": IMAGE, "ModelDataUrl": "s3://b/k"}
        )
    assert taken.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError, match="Could not find model"):
        client.create_endpoint_config(
            EndpointConfigName="x", ProductionVariants=[{"VariantName": "a", "ModelName": "missing"}]
        )
    with pytest.raises(ClientError, match="must be an s3:// URI"):
        client.create_model(
            ModelName="http",
            ExecutionRoleArn=ROLE,
            PrimaryContainer={"Image": IMAGE, "ModelDataUrl": "http://x/m.tar.gz"},
        )


def test_other_sagemaker_operations_go_to_the_wrapped_app(control: Any) -> None:
    client, _, _ = control
    with pytest.raises(ClientError) as passed_on:
        client.list_training_jobs()
    assert passed_on.value.response["ResponseMetadata"]["HTTPStatusCode"] == 418

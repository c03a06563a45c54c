"""``ensemble-gateway models render|deploy|delete`` against the running local runtime, end to end.

Each test writes a model directory in the SageMaker layout outside the repository, runs the CLI
in its own process (as a user does, through ``ENSEMBLE_GATEWAY_STATE``) and checks what the local
AWS holds afterwards and what the public API answers. The endpoint stack is the project's
``templates/model-endpoint.yaml``: what these tests see deployed is what AWS would get.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from botocore.exceptions import ClientError
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from ensemble_gateway.framework_images import framework_image_uri
from ensemble_gateway.local.template import parse_template
from ensemble_gateway.model_package import package_model

MODEL_FN_ONLY = """
import os

import joblib


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))
"""

PROBABILITIES = (
    MODEL_FN_ONLY
    + """

def predict_fn(input_data, model):
    return model.predict_proba(input_data)
"""
)

BROKEN = """
import a_package_nobody_installed  # noqa: F401


def model_fn(model_dir):
    return None
"""

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


@pytest.fixture(scope="module")
def iris_model() -> LogisticRegression:
    data = load_iris()
    return LogisticRegression(max_iter=500).fit(data.data, data.target)


@pytest.fixture(scope="module")
def state_file(runtime: Any, client_credentials: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The local runtime's state file, as ``ensemble-gateway local`` writes it, for the CLI."""
    path = tmp_path_factory.mktemp("state") / "state.json"
    path.write_text(
        json.dumps(
            {
                "api_url": runtime.api_url,
                "aws_url": runtime.aws_url,
                "stack_name": runtime.stack.stack_name,
                "outputs": runtime.stack.outputs,
                "api_key": client_credentials["api_key"],
                "root": str(runtime.root),
            }
        )
    )
    return path


def write_model(root: Path, script: str, model: Any) -> Path:
    (root / "code").mkdir(parents=True)
    (root / "code" / "inference.py").write_text(textwrap.dedent(script))
    joblib.dump(model, root / "model.joblib")
    return root


def write_catalog(path: Path, name: str, model_data: str | None, **model: Any) -> Path:
    entry: dict[str, Any] = {
        "name": name,
        "kind": "model",
        "version": model.pop("version", "1.0.0"),
        "content_types": ["application/json", "text/csv"],
        "model": {"endpoint_name": name, "framework": "sklearn", **model},
    }
    if model_data is not None:
        entry["model"]["model_data"] = model_data
    path.write_text(json.dumps([entry]))
    return path


def cli(state_file: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """``ensemble-gateway ARGUMENTS`` in its own process, against the running local runtime."""
    return subprocess.run(
        [sys.executable, "-m", "ensemble_gateway.cli", *arguments],
        env={**os.environ, "ENSEMBLE_GATEWAY_STATE": str(state_file)},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def has_event(output: str, status: str, resource_type: str) -> bool:
    """Whether the CLI's progress shows a stack event of ``resource_type`` with ``status``."""
    return re.search(rf"^\S+\s+{status}\s+{re.escape(resource_type)}\s", output, re.MULTILINE) is not None


def stack_name(runtime: Any, service: str) -> str:
    return f"{runtime.stack.stack_name}-model-{service}"


def data_key_arn(runtime: Any) -> str:
    encryption = runtime.client("s3").get_bucket_encryption(Bucket=runtime.stack.outputs["BucketName"])
    return str(
        encryption["ServerSideEncryptionConfiguration"]["Rules"][0]["ApplyServerSideEncryptionByDefault"][
            "KMSMasterKeyID"
        ]
    )


def test_render_prints_the_endpoint_template_with_the_catalog_entry_and_gateway_outputs(
    runtime: Any, state_file: Path, tmp_path: Path, iris_model: LogisticRegression
) -> None:
    from cfnlint.api import ManualArgs, lint

    # GIVEN a model directory and a catalog entry with an environment variable
    directory = write_model(tmp_path / "iris", MODEL_FN_ONLY, iris_model)
    catalog = write_catalog(tmp_path / "catalog.json", "render-iris", "iris", environment={"THRESHOLD": "0.7"})

    # WHEN the endpoint stack is rendered
    result = cli(state_file, "models", "render", "render-iris", "--catalog", str(catalog))

    # THEN the template's parameters default to the entry's and the gateway's values
    assert result.returncode == 0, result.stderr
    template = parse_template(result.stdout)
    defaults = {name: str(p.get("Default")) for name, p in template["Parameters"].items()}
    outputs = runtime.stack.outputs
    digest = package_model(directory, tmp_path / "expected").digest
    bucket = outputs["BucketName"]
    assert defaults["ModelDataUrl"] == f"s3://{bucket}/models/render-iris/1.0.0/{digest}/model.tar.gz"
    assert defaults["EndpointName"] == "render-iris" and defaults["EndpointType"] == "async"
    assert defaults["ImageUri"] == framework_image_uri("sklearn", "us-east-1")
    assert (defaults["BucketName"], defaults["SuccessTopicArn"], defaults["ErrorTopicArn"]) == (
        bucket,
        outputs["SuccessTopicArn"],
        outputs["ErrorTopicArn"],
    )
    assert defaults["DataKeyArn"] == data_key_arn(runtime)
    environment = template["Resources"]["Model"]["Properties"]["PrimaryContainer"]["Environment"]
    assert environment["THRESHOLD"] == "0.7" and "SAGEMAKER_PROGRAM" in environment
    # AND it is a valid template as it is (cfn-lint, the rules CloudFormation applies)
    problems = lint(result.stdout, config=ManualArgs(regions=["us-east-1"]))
    assert not problems, [str(p) for p in problems]
    # AND rendering uploaded nothing
    with pytest.raises(ClientError):
        runtime.client("s3").head_object(Bucket=bucket, Key=defaults["ModelDataUrl"].split("/", 3)[3])


def test_deploy_packages_uploads_deploys_the_stack_and_registers_the_model(
    runtime: Any, api: Any, state_file: Path, tmp_path: Path, iris_model: LogisticRegression
) -> None:
    # GIVEN an async scikit-learn model directory and its catalog entry
    directory = write_model(tmp_path / "iris", MODEL_FN_ONLY, iris_model)
    catalog = write_catalog(tmp_path / "catalog.json", "deploy-iris", str(directory))

    # WHEN it is deployed
    result = cli(state_file, "models", "deploy", "deploy-iris", "--catalog", str(catalog))

    # THEN the CLI showed the stack's events, one line each, and registered the model
    assert result.returncode == 0, result.stderr
    assert has_event(result.stderr, "CREATE_COMPLETE", "AWS::SageMaker::Endpoint")
    assert has_event(result.stderr, "CREATE_COMPLETE", "AWS::CloudFormation::Stack")
    assert "registered model deploy-iris v1.0.0" in result.stdout
    # AND the archive is in the data bucket, with the model's files at its root
    bucket = runtime.stack.outputs["BucketName"]
    digest = package_model(directory, tmp_path / "expected").digest
    key = f"models/deploy-iris/1.0.0/{digest}/model.tar.gz"
    archive = tmp_path / "downloaded.tar.gz"
    runtime.client("s3").download_file(bucket, key, str(archive))
    with tarfile.open(archive) as opened:
        assert sorted(opened.getnames()) == ["code/inference.py", "model.joblib"]
    # AND the endpoint serves that archive, autoscaled to zero as the template says
    sagemaker = runtime.client("sagemaker")
    endpoint = sagemaker.describe_endpoint(EndpointName="deploy-iris")
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    model = sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    assert model["PrimaryContainer"]["ModelDataUrl"] == f"s3://{bucket}/{key}"
    [target] = runtime.client("application-autoscaling").describe_scalable_targets(
        ServiceNamespace="sagemaker", ResourceIds=["endpoint/deploy-iris/variant/AllTraffic"]
    )["ScalableTargets"]
    assert target["MinCapacity"] == 0
    alarms = runtime.client("cloudwatch").describe_alarms(AlarmNamePrefix=stack_name(runtime, "deploy-iris"))
    assert [a["MetricName"] for a in alarms["MetricAlarms"]] == ["HasBacklogWithoutCapacity"]
    # AND a prediction through the API is the model's own answer
    document = api.predict("deploy-iris", json.dumps(ROWS).encode(), "application/json", timeout=60)
    assert document["status"] == "COMPLETED", document
    assert json.loads(api.download(document)) == iris_model.predict(np.array(ROWS, dtype=np.float32)).tolist()
    services = {s["name"]: s for s in api.services()}
    assert services["deploy-iris"]["version"] == "1.0.0"


def test_the_local_endpoint_writes_and_notifies_where_the_template_says(
    runtime: Any, api: Any, state_file: Path, tmp_path: Path, iris_model: LogisticRegression
) -> None:
    # GIVEN an async model deployed from the endpoint template
    write_model(tmp_path / "iris", MODEL_FN_ONLY, iris_model)
    catalog = write_catalog(tmp_path / "catalog.json", "paths-iris", "iris")
    rendered = parse_template(cli(state_file, "models", "render", "paths-iris", "--catalog", str(catalog)).stdout)
    assert cli(state_file, "models", "deploy", "paths-iris", "--catalog", str(catalog)).returncode == 0
    defaults = {name: str(p.get("Default")) for name, p in rendered["Parameters"].items()}
    template_output = rendered["Resources"]["EndpointConfig"]["Properties"]["AsyncInferenceConfig"]["Fn::If"][1]

    # WHEN the local runtime hosts it
    hosted = runtime.sagemaker._endpoints["paths-iris"].endpoint
    config = runtime.client("sagemaker").describe_endpoint_config(
        EndpointConfigName=runtime.client("sagemaker").describe_endpoint(EndpointName="paths-iris")[
            "EndpointConfigName"
        ]
    )

    # THEN its output and failure paths, topics and key are the ones the template names ...
    assert template_output["OutputConfig"]["S3OutputPath"] == {"Fn::Sub": "s3://${BucketName}/outputs"}
    bucket = defaults["BucketName"]
    output = config["AsyncInferenceConfig"]["OutputConfig"]
    assert (output["S3OutputPath"], output["S3FailurePath"]) == (f"s3://{bucket}/outputs", f"s3://{bucket}/failures")
    assert output["NotificationConfig"] == {
        "SuccessTopic": defaults["SuccessTopicArn"],
        "ErrorTopic": defaults["ErrorTopicArn"],
    }
    assert output["KmsKeyId"] == defaults["DataKeyArn"]
    assert (hosted.output_path, hosted.failure_path) == (f"s3://{bucket}/outputs", f"s3://{bucket}/failures")
    assert (hosted.success_topic_arn, hosted.error_topic_arn) == (
        defaults["SuccessTopicArn"],
        defaults["ErrorTopicArn"],
    )
    assert hosted.max_concurrency == int(rendered["Parameters"]["MaxConcurrentInvocationsPerInstance"]["Default"])
    # ... and a prediction's output is written there and its notification finishes it
    document = api.predict("paths-iris", json.dumps(ROWS).encode(), "application/json", timeout=60)
    assert document["status"] == "COMPLETED", document
    assert f"/{bucket}/outputs/" in document["result"]["url"]


def test_re_deploying_replaces_the_model_and_a_failing_one_is_reported_and_rolled_back(
    runtime: Any, api: Any, state_file: Path, tmp_path: Path, iris_model: LogisticRegression
) -> None:
    # GIVEN a deployed real-time model answering labels
    write_model(tmp_path / "v1", MODEL_FN_ONLY, iris_model)
    catalog = tmp_path / "catalog.json"
    write_catalog(catalog, "swap-iris", "v1", invocation="realtime")
    assert cli(state_file, "models", "deploy", "swap-iris", "--catalog", str(catalog)).returncode == 0
    sagemaker = runtime.client("sagemaker")
    first = sagemaker.describe_endpoint(EndpointName="swap-iris")["EndpointConfigName"]
    first_model = sagemaker.describe_endpoint_config(EndpointConfigName=first)["ProductionVariants"][0]["ModelName"]

    # WHEN a model answering probabilities is deployed for the same version (a stack update in place)
    write_model(tmp_path / "v2", PROBABILITIES, iris_model)
    write_catalog(catalog, "swap-iris", "v2", invocation="realtime")
    updated = cli(state_file, "models", "deploy", "swap-iris", "--catalog", str(catalog))

    # THEN the new model answers and the superseded model and configuration are gone
    assert updated.returncode == 0, updated.stderr
    assert has_event(updated.stderr, "UPDATE_COMPLETE", "AWS::SageMaker::Endpoint")
    document = api.predict("swap-iris", json.dumps(ROWS).encode(), "application/json", timeout=60)
    assert len(json.loads(api.download(document))[0]) == 3
    with pytest.raises(ClientError, match="Could not find"):
        sagemaker.describe_endpoint_config(EndpointConfigName=first)
    with pytest.raises(ClientError, match="Could not find"):
        sagemaker.describe_model(ModelName=first_model)
    serving = sagemaker.describe_endpoint(EndpointName="swap-iris")["EndpointConfigName"]

    # WHEN a model whose inference.py cannot import is deployed for it
    broken = tmp_path / "broken"
    (broken / "code").mkdir(parents=True)
    (broken / "code" / "inference.py").write_text(textwrap.dedent(BROKEN))
    write_catalog(catalog, "swap-iris", "broken", invocation="realtime")
    refused = cli(state_file, "models", "deploy", "swap-iris", "--catalog", str(catalog))

    # THEN the CLI reports the endpoint's failure: the user's file and the exception, no traceback
    assert refused.returncode == 2
    assert has_event(refused.stderr, "UPDATE_FAILED", "AWS::SageMaker::Endpoint")
    assert has_event(refused.stderr, "UPDATE_ROLLBACK_COMPLETE", "AWS::CloudFormation::Stack")
    assert f"{broken}/code/inference.py" in refused.stderr and "a_package_nobody_installed" in refused.stderr
    assert "Traceback" not in refused.stderr
    # AND the update rolled back: the previous model serves on and stays registered
    assert sagemaker.describe_endpoint(EndpointName="swap-iris")["EndpointConfigName"] == serving
    assert {s["name"]: s for s in api.services()}["swap-iris"]["version"] == "1.0.0"
    document = api.predict("swap-iris", json.dumps(ROWS).encode(), "application/json", timeout=60)
    assert len(json.loads(api.download(document))[0]) == 3


def test_a_new_model_that_fails_leaves_nothing_behind(runtime: Any, state_file: Path, tmp_path: Path) -> None:
    # GIVEN a model whose inference.py cannot import, never deployed
    broken = tmp_path / "broken"
    (broken / "code").mkdir(parents=True)
    (broken / "code" / "inference.py").write_text(textwrap.dedent(BROKEN))
    catalog = write_catalog(tmp_path / "catalog.json", "never-iris", "broken")

    # WHEN it is deployed
    refused = cli(state_file, "models", "deploy", "never-iris", "--catalog", str(catalog))

    # THEN the first failure is reported and the stack rolled back: no endpoint, no scaling target
    assert refused.returncode == 2
    assert "ROLLBACK_COMPLETE: Endpoint (AWS::SageMaker::Endpoint)" in refused.stderr
    assert "a_package_nobody_installed" in refused.stderr
    with pytest.raises(ClientError, match="Could not find endpoint"):
        runtime.client("sagemaker").describe_endpoint(EndpointName="never-iris")
    targets = runtime.client("application-autoscaling").describe_scalable_targets(
        ServiceNamespace="sagemaker", ResourceIds=["endpoint/never-iris/variant/AllTraffic"]
    )
    assert targets["ScalableTargets"] == []
    # AND deploying a fixed model then creates the stack afresh
    (broken / "code" / "inference.py").write_text("def model_fn(model_dir):\n    return None\n")
    fixed = cli(state_file, "models", "deploy", "never-iris", "--catalog", str(catalog))
    assert fixed.returncode == 0, fixed.stderr


def test_a_serverless_variant_serves_a_real_time_model_and_delete_removes_the_stack(
    runtime: Any, api: Any, state_file: Path, tmp_path: Path, iris_model: LogisticRegression
) -> None:
    # GIVEN a real-time model deployed as a serverless endpoint
    write_model(tmp_path / "iris", MODEL_FN_ONLY, iris_model)
    catalog = write_catalog(tmp_path / "catalog.json", "serverless-iris", "iris", invocation="realtime")
    deployed = cli(
        state_file,
        "models",
        "deploy",
        "serverless-iris",
        "--catalog",
        str(catalog),
        "--parameter",
        "EndpointType=serverless",
        "--parameter",
        "ServerlessMemorySizeInMB=3072",
    )
    assert deployed.returncode == 0, deployed.stderr
    sagemaker = runtime.client("sagemaker")
    config = sagemaker.describe_endpoint_config(
        EndpointConfigName=sagemaker.describe_endpoint(EndpointName="serverless-iris")["EndpointConfigName"]
    )
    [variant] = config["ProductionVariants"]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 3072, "MaxConcurrency": 5}
    assert "InstanceType" not in variant and "AsyncInferenceConfig" not in config
    document = api.predict("serverless-iris", json.dumps(ROWS).encode(), "application/json", timeout=60)
    assert document["status"] == "COMPLETED", document

    # WHEN its stack is deleted
    deleted = cli(state_file, "models", "delete", "serverless-iris")

    # THEN the endpoint, its configuration and model are gone
    assert deleted.returncode == 0, deleted.stderr
    assert has_event(deleted.stderr, "DELETE_COMPLETE", "AWS::CloudFormation::Stack")
    with pytest.raises(ClientError, match="Could not find endpoint"):
        sagemaker.describe_endpoint(EndpointName="serverless-iris")
    # AND deleting it again says there is no such stack
    again = cli(state_file, "models", "delete", "serverless-iris")
    assert again.returncode == 2 and f"there is no stack {stack_name(runtime, 'serverless-iris')}" in again.stderr


def test_errors_a_user_can_act_on(state_file: Path, tmp_path: Path, iris_model: LogisticRegression) -> None:
    write_model(tmp_path / "iris", MODEL_FN_ONLY, iris_model)
    catalog = write_catalog(tmp_path / "catalog.json", "errors-iris", "iris")

    unknown = cli(state_file, "models", "deploy", "nope", "--catalog", str(catalog))
    assert unknown.returncode == 2 and "has no service 'nope' (it has: errors-iris)" in unknown.stderr

    no_data = write_catalog(tmp_path / "no-data.json", "errors-iris", None)
    missing = cli(state_file, "models", "deploy", "errors-iris", "--catalog", str(no_data))
    assert missing.returncode == 2 and "names no model.model_data" in missing.stderr

    wrong = cli(state_file, "models", "render", "errors-iris", "--catalog", str(catalog), "--parameter", "Nope=1")
    assert wrong.returncode == 2 and "has no parameter Nope" in wrong.stderr

    async_serverless = cli(
        state_file,
        "models",
        "deploy",
        "errors-iris",
        "--catalog",
        str(catalog),
        "--parameter",
        "EndpointType=serverless",
    )
    assert async_serverless.returncode == 2 and "cannot serve model.invocation 'async'" in async_serverless.stderr

    invalid = cli(
        state_file, "models", "deploy", "errors-iris", "--catalog", str(catalog), "--parameter", "InstanceType=big"
    )
    assert invalid.returncode == 2 and "Parameter 'InstanceType' failed to satisfy constraint" in invalid.stderr
    for result in (unknown, missing, wrong, async_serverless, invalid):
        assert "Traceback" not in result.stderr

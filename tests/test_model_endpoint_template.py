"""The endpoint stack template (``templates/model-endpoint.yaml``): it lints, and says what AWS needs.

The template is what ``models deploy`` gives CloudFormation and what the local runtime deploys, so
these tests check its resources as CloudFormation resolves them, for each variant (async,
real-time, serverless): the execution role's statements scoped to the gateway's S3 prefixes, key
and topics; the async configuration's paths, topics and key; autoscaling to zero and out of it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from ensemble_gateway.domain.models import ModelTarget, Service
from ensemble_gateway.endpoint_stack import (
    EndpointStackError,
    GatewayWiring,
    endpoint_parameters,
    endpoint_template_path,
    render_endpoint_template,
)
from ensemble_gateway.framework_images import _IMAGES, DEFAULT_VERSIONS, framework_image_uri
from ensemble_gateway.local.deployer import LocalDeployer
from ensemble_gateway.local.template import Resolver, TemplateError, parse_template

TEMPLATE = Path(__file__).resolve().parents[1] / "templates" / "model-endpoint.yaml"
BUCKET = "gw-data-123456789012-eu-west-1"
MODEL_DATA = f"s3://{BUCKET}/models/iris/1.0.0/0123456789abcdef/model.tar.gz"
WIRING = {
    "EndpointName": "iris",
    "ImageUri": framework_image_uri("sklearn", "eu-west-1"),
    "ModelDataUrl": MODEL_DATA,
    "BucketName": BUCKET,
    "SuccessTopicArn": "arn:aws:sns:eu-west-1:123456789012:gw-SuccessTopic-1",
    "ErrorTopicArn": "arn:aws:sns:eu-west-1:123456789012:gw-ErrorTopic-1",
    "DataKeyArn": "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
}
# Actions AWS gives no resource-level permissions: "*" is their only Resource.
ACTIONS_WITHOUT_RESOURCES = {"ecr:GetAuthorizationToken", "cloudwatch:PutMetricData"}


def lint(text: str) -> list[str]:
    from cfnlint.api import ManualArgs, lint

    return [str(match) for match in lint(text, config=ManualArgs(regions=["eu-west-1", "us-east-1"]))]


def without_no_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_no_value(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_no_value(v) for v in value if v is not None]
    return value


def deployed(**parameters: str) -> dict[str, dict[str, Any]]:
    """The template's resources as CloudFormation creates them with these parameters.

    Resources whose condition is false are left out; attributes of other resources stay
    ``<Logical.Attribute>`` placeholders.
    """
    template = parse_template(TEMPLATE.read_text())
    values = {name: str(p["Default"]) for name, p in template["Parameters"].items() if "Default" in p}
    values.update(WIRING)
    values.update(parameters)
    pseudo = {
        "AWS::Region": "eu-west-1",
        "AWS::AccountId": "123456789012",
        "AWS::Partition": "aws",
        "AWS::NoValue": None,
    }

    def ref(name: str) -> Any:
        if name in pseudo:
            return pseudo[name]
        return values.get(name, f"<{name}>")

    resolver = Resolver(ref, lambda logical_id, attribute: f"<{logical_id}.{attribute}>", template["Conditions"])
    return {
        logical_id: {
            "Type": resource["Type"],
            **without_no_value(resolver.resolve(resource.get("Properties", {}))),
        }
        for logical_id, resource in template["Resources"].items()
        if "Condition" not in resource or resolver.condition(resource["Condition"])
    }


def statements(resources: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    [policy] = resources["ExecutionRole"]["Policies"]
    return {statement["Sid"]: statement for statement in policy["PolicyDocument"]["Statement"]}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# -- lint ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variant",
    [{}, {"EndpointType": "async"}, {"EndpointType": "realtime"}, {"EndpointType": "serverless"}],
    ids=["as-is", "async", "realtime", "serverless"],
)
def test_the_template_lints_clean_as_it_is_and_rendered_for_each_variant(variant: dict[str, str]) -> None:
    # GIVEN the template, as it is or rendered with a catalog entry's values for one variant
    text = TEMPLATE.read_text()
    if variant:
        text = render_endpoint_template(text, {**WIRING, **variant}, {"THRESHOLD": "0.5"})

    # WHEN cfn-lint checks it (the resource schemas CloudFormation validates against)
    problems = lint(text)

    # THEN nothing is reported
    assert problems == []


def test_the_wiring_and_the_model_are_the_only_parameters_without_a_default() -> None:
    template = parse_template(TEMPLATE.read_text())
    required = {name for name, parameter in template["Parameters"].items() if "Default" not in parameter}
    assert required == set(WIRING)


def test_every_framework_image_is_one_the_image_parameter_accepts() -> None:
    # The template's ImageUri pattern must take every image framework_images.py gives.
    pattern = parse_template(TEMPLATE.read_text())["Parameters"]["ImageUri"]["AllowedPattern"]
    for framework, (registries, _, _) in _IMAGES.items():
        for region in registries:
            image = framework_image_uri(framework, region, DEFAULT_VERSIONS[framework])
            assert re.fullmatch(pattern, image), image


# -- async ---------------------------------------------------------------------------------------


def test_an_async_model_role_reaches_only_the_gateways_prefixes_its_model_the_key_and_the_topics() -> None:
    # GIVEN the async variant
    role = statements(deployed(EndpointType="async"))

    # THEN it reads the request (uploads and step inputs) and this model's archive only ...
    assert role["ReadPredictionInputs"]["Action"] == "s3:GetObject"
    assert role["ReadPredictionInputs"]["Resource"] == [
        f"arn:aws:s3:::{BUCKET}/inputs/*",
        f"arn:aws:s3:::{BUCKET}/steps/*",
    ]
    assert role["ReadModelData"]["Resource"] == f"arn:aws:s3:::{BUCKET}/models/iris/1.0.0/0123456789abcdef/model.tar.gz"
    # ... writes answers and failures where the gateway reads them ...
    assert role["WritePredictionOutputs"]["Action"] == "s3:PutObject"
    assert role["WritePredictionOutputs"]["Resource"] == [
        f"arn:aws:s3:::{BUCKET}/outputs/*",
        f"arn:aws:s3:::{BUCKET}/failures/*",
    ]
    # ... uses the data key to read and write, and publishes to the two topics only
    assert role["UseDataKey"]["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert role["UseDataKey"]["Resource"] == WIRING["DataKeyArn"]
    assert role["PublishCompletions"]["Resource"] == [WIRING["SuccessTopicArn"], WIRING["ErrorTopicArn"]]
    # AND it pulls its own image's repository and logs to its own endpoint's log group
    assert role["PullImage"]["Resource"] == "arn:aws:ecr:eu-west-1:141502667606:repository/sagemaker-scikit-learn"
    assert all(
        re.fullmatch(r"arn:aws:logs:eu-west-1:123456789012:log-group:/aws/sagemaker/Endpoints/iris(:\*)?", arn)
        for arn in role["WriteEndpointLogs"]["Resource"]
    )
    # AND "*" is the resource of the actions without resource-level permissions only
    for statement in role.values():
        if "*" in as_list(statement["Resource"]):
            assert set(as_list(statement["Action"])) <= ACTIONS_WITHOUT_RESOURCES, statement
    assert role["PublishEndpointMetrics"]["Condition"] == {"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}}
    # AND only SageMaker may assume it
    [trust] = deployed(EndpointType="async")["ExecutionRole"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"} and trust["Action"] == "sts:AssumeRole"


def test_an_async_endpoint_writes_to_the_gateways_paths_with_its_key_and_notifies_its_topics() -> None:
    resources = deployed(EndpointType="async", MaxConcurrentInvocationsPerInstance="4")
    config = resources["EndpointConfig"]
    assert config["AsyncInferenceConfig"] == {
        "ClientConfig": {"MaxConcurrentInvocationsPerInstance": "4"},
        "OutputConfig": {
            "S3OutputPath": f"s3://{BUCKET}/outputs",
            "S3FailurePath": f"s3://{BUCKET}/failures",
            "KmsKeyId": WIRING["DataKeyArn"],
            "NotificationConfig": {"SuccessTopic": WIRING["SuccessTopicArn"], "ErrorTopic": WIRING["ErrorTopicArn"]},
        },
    }
    [variant] = config["ProductionVariants"]
    assert variant["ModelName"] == "<Model.ModelName>" and variant["InstanceType"] == "ml.m5.large"
    assert resources["Endpoint"]["EndpointName"] == "iris"
    assert resources["Endpoint"]["EndpointConfigName"] == "<EndpointConfig.EndpointConfigName>"
    # An autoscaled endpoint keeps autoscaling's instance count when a new model rolls out.
    assert resources["Endpoint"]["RetainAllVariantProperties"] is True


def test_an_async_endpoint_scales_to_zero_and_out_of_zero_on_a_backlog_without_capacity() -> None:
    resources = deployed(EndpointType="async")
    # GIVEN its scalable target: the variant's instance count, down to zero
    target = resources["ScalableTarget"]
    assert (target["ServiceNamespace"], target["ScalableDimension"]) == (
        "sagemaker",
        "sagemaker:variant:DesiredInstanceCount",
    )
    assert target["ResourceId"] == "endpoint/<Endpoint.EndpointName>/variant/AllTraffic"
    assert target["MinCapacity"] == "0"
    # THEN target tracking follows the backlog per instance (a customized SageMaker metric) ...
    tracking = resources["BacklogTrackingPolicy"]
    assert (tracking["PolicyType"], tracking["ScalingTargetId"]) == ("TargetTrackingScaling", "<ScalableTarget>")
    metric = tracking["TargetTrackingScalingPolicyConfiguration"]["CustomizedMetricSpecification"]
    assert metric == {
        "Namespace": "AWS/SageMaker",
        "MetricName": "ApproximateBacklogSizePerInstance",
        "Dimensions": [{"Name": "EndpointName", "Value": "<Endpoint.EndpointName>"}],
        "Statistic": "Average",
    }
    # ... and an alarm on a backlog with no instance drives a step policy that adds the first one
    step = resources["ScaleOutFromZeroPolicy"]
    assert step["PolicyType"] == "StepScaling"
    assert step["StepScalingPolicyConfiguration"]["AdjustmentType"] == "ChangeInCapacity"
    assert step["StepScalingPolicyConfiguration"]["StepAdjustments"] == [
        {"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}
    ]
    alarm = resources["BacklogWithoutCapacityAlarm"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/SageMaker", "HasBacklogWithoutCapacity")
    assert alarm["Dimensions"] == [{"Name": "EndpointName", "Value": "<Endpoint.EndpointName>"}]
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    assert alarm["AlarmActions"] == ["<ScaleOutFromZeroPolicy.Arn>"]


def test_the_model_role_carries_the_gateways_permissions_boundary_when_it_has_one() -> None:
    # GIVEN a gateway whose operators may create model roles only with its ModelRoleBoundary
    outputs = {
        "BucketName": BUCKET,
        "SuccessTopicArn": WIRING["SuccessTopicArn"],
        "ErrorTopicArn": WIRING["ErrorTopicArn"],
        "ModelRoleBoundaryArn": "arn:aws:iam::123456789012:policy/gw-ModelRoleBoundary-1",
    }
    wiring = GatewayWiring.from_outputs("gw", "eu-west-1", outputs, WIRING["DataKeyArn"])
    service = Service(name="iris", kind="model", model=ModelTarget(endpoint_name="iris", framework="sklearn"))

    # WHEN the endpoint stack's parameters are filled and it is deployed
    parameters = endpoint_parameters(service, wiring, MODEL_DATA)
    role = deployed(**parameters)["ExecutionRole"]

    # THEN the role has that boundary; a gateway without one (the local runtime) gives none
    assert role["PermissionsBoundary"] == "arn:aws:iam::123456789012:policy/gw-ModelRoleBoundary-1"
    assert "PermissionsBoundary" not in deployed()["ExecutionRole"]


# -- real-time and serverless ----------------------------------------------------------------------


def test_a_realtime_endpoint_has_instances_and_no_async_config_autoscaling_or_s3_and_sns_access() -> None:
    resources = deployed(EndpointType="realtime", InstanceType="ml.c5.xlarge", InstanceCount="2")
    config = resources["EndpointConfig"]
    assert "AsyncInferenceConfig" not in config
    [variant] = config["ProductionVariants"]
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.c5.xlarge", "2")
    assert "ServerlessConfig" not in variant
    assert not {
        "ScalableTarget",
        "BacklogTrackingPolicy",
        "ScaleOutFromZeroPolicy",
        "BacklogWithoutCapacityAlarm",
    } & set(resources)
    # The payload comes in the request and the answer goes back in the response.
    role = statements(resources)
    assert not {"ReadPredictionInputs", "WritePredictionOutputs", "PublishCompletions"} & set(role)
    assert role["UseDataKey"]["Action"] == ["kms:Decrypt"]
    assert resources["Endpoint"]["RetainAllVariantProperties"] is False


def test_a_serverless_endpoint_has_memory_and_concurrency_and_no_instances() -> None:
    resources = deployed(EndpointType="serverless", ServerlessMemorySizeInMB="4096", ServerlessMaxConcurrency="10")
    [variant] = resources["EndpointConfig"]["ProductionVariants"]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": "4096", "MaxConcurrency": "10"}
    assert "InstanceType" not in variant and "InitialInstanceCount" not in variant
    assert "AsyncInferenceConfig" not in resources["EndpointConfig"]
    assert "ScalableTarget" not in resources


# -- model data and image ----------------------------------------------------------------------------


def test_an_archive_is_a_model_data_url_and_a_prefix_an_uncompressed_source_listed_by_prefix() -> None:
    archive = deployed()
    assert archive["Model"]["PrimaryContainer"]["ModelDataUrl"] == MODEL_DATA
    assert "ModelDataSource" not in archive["Model"]["PrimaryContainer"]
    assert "ListModelData" not in statements(archive)

    prefix = deployed(ModelDataUrl="s3://models-bucket/iris/v1/", ModelDataCompression="None")
    container = prefix["Model"]["PrimaryContainer"]
    assert container["ModelDataSource"] == {
        "S3DataSource": {"S3Uri": "s3://models-bucket/iris/v1/", "S3DataType": "S3Prefix", "CompressionType": "None"}
    }
    role = statements(prefix)
    assert role["ReadModelData"]["Resource"] == "arn:aws:s3:::models-bucket/iris/v1/*"
    assert role["ListModelData"]["Resource"] == "arn:aws:s3:::models-bucket"
    # Listing is bounded by the key's first segment (all CloudFormation can cut out of the URI).
    assert role["ListModelData"]["Condition"] == {"StringLike": {"s3:prefix": "iris*"}}


@pytest.mark.parametrize(
    ("image", "repository"),
    [
        ("763104351884.dkr.ecr.eu-west-1.amazonaws.com/pytorch-inference:2.1-cpu-py310", "pytorch-inference"),
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/scorer@sha256:" + "a" * 64, "team/scorer"),
    ],
)
def test_the_image_pull_permission_names_the_images_own_registry_and_repository(image: str, repository: str) -> None:
    account = image.split(".")[0]
    role = statements(deployed(ImageUri=image))
    assert role["PullImage"]["Resource"] == f"arn:aws:ecr:eu-west-1:{account}:repository/{repository}"


def test_the_model_environment_has_the_entry_point_and_the_catalog_entrys_variables() -> None:
    text = render_endpoint_template(
        TEMPLATE.read_text(), {**WIRING, "EntryPoint": "serve.py"}, {"THRESHOLD": "0.5", "SAGEMAKER_REGION": "x"}
    )
    environment = parse_template(text)["Resources"]["Model"]["Properties"]["PrimaryContainer"]["Environment"]
    assert environment["SAGEMAKER_PROGRAM"] == {"Ref": "EntryPoint"}
    assert environment["THRESHOLD"] == "0.5"
    assert environment["SAGEMAKER_REGION"] == "x"  # the catalog entry's value wins over the template's
    assert parse_template(text)["Parameters"]["EntryPoint"]["Default"] == "serve.py"


def test_rendering_refuses_a_parameter_the_template_does_not_declare() -> None:
    with pytest.raises(EndpointStackError, match=r"no parameter Instances"):
        render_endpoint_template(TEMPLATE.read_text(), {"Instances": "3"})


def test_the_outputs_name_the_endpoint_model_configuration_and_role() -> None:
    outputs = parse_template(TEMPLATE.read_text())["Outputs"]
    assert {"EndpointName", "ModelName", "EndpointConfigName", "RoleArn"} <= set(outputs)


def test_the_template_path_is_the_projects() -> None:
    assert endpoint_template_path() == TEMPLATE


# -- the local deployer refuses what CloudFormation refuses ------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("EndpointType", "batch", r"'batch' is not one of async, realtime, serverless"),
        ("ModelDataUrl", "file:///tmp/model", r"ModelDataUrl must match pattern"),
        ("MinInstanceCount", "-1", r"-1 is less than 0"),
        ("ServerlessMemorySizeInMB", "1000", r"'1000' is not one of 1024"),
    ],
)
def test_the_local_deployer_checks_parameters_as_cloudformation_does(name: str, value: str, message: str) -> None:
    def no_aws(service: str) -> Any:
        raise AssertionError("nothing may be called before the parameters are valid")

    with pytest.raises(TemplateError, match=rf"Parameter '{name}' failed to satisfy constraint: .*{message}"):
        LocalDeployer(None, no_aws, template_body=TEMPLATE.read_text(), parameter_overrides={**WIRING, name: value})

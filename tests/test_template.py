"""The SAM template: it lints, it transforms, and its wiring matches the code and AWS's rules.

The template is the single source of wiring for AWS and for the local deployer, so these tests
check behaviour that both rely on: handlers that import, routes of the public contract, event
sources with partial batch failures, queues that cannot redeliver under a running batch, and
policies that stay least-privilege.
"""

from __future__ import annotations

import copy
import fnmatch
import importlib
import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
EVENTS = ROOT / "events"

# SAM would default a function to 3 s; the template's Globals override it.
SAM_DEFAULT_TIMEOUT = 3
# Actions that have no resource-level permissions: "*" is the only valid Resource for them.
ACTIONS_WITHOUT_RESOURCES = {
    "states:SendTaskSuccess",
    "states:SendTaskFailure",
    "states:SendTaskHeartbeat",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "ecr:GetAuthorizationToken",
    "cloudwatch:PutMetricData",
    "states:ListStateMachines",
    "cloudformation:ListStacks",
    "application-autoscaling:RegisterScalableTarget",
    "application-autoscaling:DeregisterScalableTarget",
    "application-autoscaling:DescribeScalableTargets",
    "application-autoscaling:PutScalingPolicy",
    "application-autoscaling:DeleteScalingPolicy",
    "application-autoscaling:DescribeScalingPolicies",
    "application-autoscaling:DescribeScalingActivities",
}
# The S3 layout of the design (section 4): every object the functions touch is under one of these.
S3_PREFIXES = ("uploads/", "inputs/", "steps/", "outputs/", "failures/", "batches/")


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
def load_template() -> dict[str, Any]:
    """The template as CloudFormation sees it (short-form tags like !Ref in long form)."""
    from cfnlint.decode import decode

    template, problems = decode(str(TEMPLATE))
    assert not problems, [str(p) for p in problems]
    assert template is not None
    return template


class FakeManagedPolicyLoader:
    """Stands in for SAM's loader, which would call IAM to list AWS managed policies.

    The template names no managed policy by bare name (only inline statements), so an empty
    map is all the translator may ask for.
    """

    def load(self) -> dict[str, str]:
        return {}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]


@pytest.fixture(scope="module")
def transformed(template: dict[str, Any]) -> dict[str, Any]:
    """The template after the SAM transform, as CloudFormation would deploy it."""
    from samtranslator.translator.transform import transform

    fragment = copy.deepcopy(template)
    # `sam package` replaces the local CodeUri with an S3 URI; the translator requires one.
    fragment["Globals"]["Function"]["CodeUri"] = "s3://packaged-artifacts/ensemble-gateway/src.zip"
    previous = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"  # the translator resolves AWS::Region/Partition
    try:
        return transform(fragment, {}, FakeManagedPolicyLoader())
    finally:
        if previous is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)
        else:
            os.environ["AWS_DEFAULT_REGION"] = previous


def of_type(resources: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in resources.items() if r["Type"] == kind}


def functions(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return of_type(resources, "AWS::Serverless::Function")


def function_setting(template: dict[str, Any], function: dict[str, Any], name: str, default: Any) -> Any:
    """A function property, falling back to Globals.Function, then to SAM's default."""
    if name in function["Properties"]:
        return function["Properties"][name]
    return template.get("Globals", {}).get("Function", {}).get(name, default)


def ref_name(value: Any) -> str | None:
    """The logical ID named by {"Ref": X} or {"Fn::GetAtt": [X, ...]}."""
    if isinstance(value, dict):
        if "Ref" in value:
            return str(value["Ref"])
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            return str(target[0] if isinstance(target, list) else target.split(".")[0])
    return None


def statements(function: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for policy in function["Properties"].get("Policies", []):
        if isinstance(policy, dict) and "Statement" in policy:
            found.extend(policy["Statement"])
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def queue_consumers(template: dict[str, Any]) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Queue logical ID → the functions with an SQS event on it."""
    consumers: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for name, function in functions(template["Resources"]).items():
        for event in function["Properties"].get("Events", {}).values():
            if event["Type"] == "SQS":
                queue = ref_name(event["Properties"]["Queue"])
                assert queue is not None
                consumers.setdefault(queue, []).append((name, function))
    return consumers


def handler_cases() -> list[Any]:
    return [
        pytest.param(name, f["Properties"]["Handler"], id=name)
        for name, f in functions(load_template()["Resources"]).items()
    ]


# ----------------------------------------------------------------------------------------------
# the template is valid
# ----------------------------------------------------------------------------------------------
def test_cfn_lint_reports_nothing() -> None:
    # GIVEN the template
    from cfnlint.api import ManualArgs, lint_file

    # WHEN cfn-lint checks it with its default rules (what `cfn-lint template.yaml` runs)
    findings = lint_file(TEMPLATE, config=ManualArgs(regions=["us-east-1"]))

    # THEN there is no error and no warning
    assert [str(f) for f in findings] == []


def test_sam_transform_produces_the_functions(transformed: dict[str, Any], resources: dict[str, Any]) -> None:
    # GIVEN the SAM template transformed to CloudFormation
    lambdas = of_type(transformed["Resources"], "AWS::Lambda::Function")

    # THEN every serverless function became a Lambda function on python3.12 / arm64 with tracing
    assert set(lambdas) == set(functions(resources))
    for name, function in lambdas.items():
        properties = function["Properties"]
        assert properties["Runtime"] == "python3.12", name
        assert properties["Architectures"] == ["arm64"], name
        assert properties["TracingConfig"] == {"Mode": "Active"}, name
    # AND the seven handlers of the design are all there
    assert set(lambdas) >= {
        "NewPredictionFunction",
        "ResultsFunction",
        "ProcessInputFunction",
        "GetTransformCallFunction",
        "NotificationsFunction",
        "WebhookDeliveryFunction",
        "SweeperFunction",
    }


def test_api_requires_iam_on_every_route_of_the_contract(transformed: dict[str, Any]) -> None:
    # GIVEN the transformed REST API
    api = transformed["Resources"]["GatewayApi"]
    paths = api["Properties"]["Body"]["paths"]

    # THEN it exposes exactly the public routes of the contract
    routes = {(method.upper(), path) for path, methods in paths.items() for method in methods}
    assert routes == {
        ("POST", "/predictions"),
        ("GET", "/predictions"),
        ("GET", "/services"),
        ("GET", "/predictions/{prediction_id}"),
        ("POST", "/predictions/{prediction_id}/cancel"),
        ("POST", "/predictions/{prediction_id}/upload"),
        ("POST", "/batches"),
        ("GET", "/batches/{batch_id}"),
        ("POST", "/batches/{batch_id}/cancel"),
    }
    for path, methods in paths.items():
        for method, operation in methods.items():
            # AND each one is SigV4 (AWS_IAM) authenticated
            assert operation["security"] == [{"AWS_IAM": []}], (method, path)
            # AND API Gateway invokes the function itself, not with the caller's credentials
            # (which would demand lambda:InvokeFunction from every client)
            assert "credentials" not in operation["x-amazon-apigateway-integration"], (method, path)
    schemes = api["Properties"]["Body"]["components"]["securitySchemes"]
    assert schemes["AWS_IAM"]["x-amazon-apigateway-authtype"] == "awsSigv4"


def test_api_stage_is_throttled_and_traced(transformed: dict[str, Any]) -> None:
    # GIVEN the stage of the API
    stage = transformed["Resources"]["GatewayApiStage"]["Properties"]

    # THEN it is traced and every method is throttled
    assert stage["TracingEnabled"] is True
    settings = {(s["ResourcePath"], s["HttpMethod"]): s for s in stage["MethodSettings"]}
    assert settings[("/*", "*")]["ThrottlingBurstLimit"] == 200
    assert settings[("/*", "*")]["ThrottlingRateLimit"] == 100


API_FUNCTIONS = {"NewPredictionFunction", "ResultsFunction", "CancelPredictionFunction", "BatchesFunction"}


def test_snapstart_is_a_parameter_of_the_api_functions_which_api_gateway_invokes_through_an_alias(
    template: dict[str, Any], transformed: dict[str, Any]
) -> None:
    # GIVEN the SnapStart parameter, off by default
    parameter = template["Parameters"]["SnapStart"]
    assert parameter["Default"] == "None"
    assert set(parameter["AllowedValues"]) == {"None", "PublishedVersions"}
    resources = transformed["Resources"]
    lambdas = of_type(resources, "AWS::Lambda::Function")
    # THEN exactly the API functions apply it
    applying = {name for name, f in lambdas.items() if "SnapStart" in f["Properties"]}
    assert applying == API_FUNCTIONS
    aliases = {
        a["Properties"]["FunctionName"]["Ref"]: name for name, a in of_type(resources, "AWS::Lambda::Alias").items()
    }
    for name in API_FUNCTIONS:
        assert lambdas[name]["Properties"]["SnapStart"] == {"ApplyOn": {"Ref": "SnapStart"}}, name
        # AND each has an alias on a published version, replaced versions deleted (no snapshots pile up)
        version = resources[aliases[name]]["Properties"]["FunctionVersion"]["Fn::GetAtt"][0]
        assert resources[version]["Type"] == "AWS::Lambda::Version"
        assert resources[version]["DeletionPolicy"] == "Delete"
    # AND API Gateway invokes the aliases (SnapStart never applies to $LATEST), with permission on them
    paths = resources["GatewayApi"]["Properties"]["Body"]["paths"]
    for path, methods in paths.items():
        for method, operation in methods.items():
            uri = operation["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
            assert any("${" + alias + "}" in uri for alias in aliases.values()), (method, path, uri)
    permissions = of_type(resources, "AWS::Lambda::Permission")
    from_api = [
        p["Properties"] for p in permissions.values() if p["Properties"]["Principal"] == "apigateway.amazonaws.com"
    ]
    assert from_api and all(ref_name(p["FunctionName"]) in aliases.values() for p in from_api)


def test_sqs_event_sources_report_partial_batch_failures(transformed: dict[str, Any]) -> None:
    # GIVEN the event source mappings after the transform
    mappings = of_type(transformed["Resources"], "AWS::Lambda::EventSourceMapping")
    by_function = {m["Properties"]["FunctionName"]["Ref"]: m["Properties"] for m in mappings.values()}

    # THEN the upload and webhook queues feed their functions in batches of 10
    assert ref_name(by_function["ProcessInputFunction"]["EventSourceArn"]) == "InputQueue"
    assert ref_name(by_function["WebhookDeliveryFunction"]["EventSourceArn"]) == "WebhookQueue"
    assert ref_name(by_function["ShadowDispatchFunction"]["EventSourceArn"]) == "ShadowQueue"
    for name, mapping in by_function.items():
        assert mapping["BatchSize"] == 10, name
        # AND one failing record never makes a whole batch retry
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"], name


def test_uploads_notify_the_input_queue_and_manifests_the_batch_queue(transformed: dict[str, Any]) -> None:
    # GIVEN the data bucket
    bucket = transformed["Resources"]["DataBucket"]
    configurations = bucket["Properties"]["NotificationConfiguration"]["QueueConfigurations"]

    # THEN only objects created under uploads/ are sent to InputQueue (not the accepted copies
    # the gateway writes to inputs/)
    by_queue = {ref_name(config["Queue"]): config for config in configurations}
    assert set(by_queue) == {"InputQueue", "BatchQueue"} and len(configurations) == 2
    uploads = by_queue["InputQueue"]
    assert uploads["Event"] == "s3:ObjectCreated:*"
    assert uploads["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": "uploads/"}]
    # AND only batch manifests (batches/{id}/manifest.jsonl) to BatchQueue: not the accepted copy
    # nor the result the driver writes beside it
    manifests = by_queue["BatchQueue"]
    assert manifests["Event"] == "s3:ObjectCreated:*"
    assert manifests["Filter"]["S3Key"]["Rules"] == [
        {"Name": "prefix", "Value": "batches/"},
        {"Name": "suffix", "Value": "/manifest.jsonl"},
    ]
    # AND the queue policies letting S3 send exist before S3 validates the destinations
    assert {"InputQueuePolicy", "BatchQueuePolicy"} <= set(as_list(bucket["DependsOn"]))


def test_the_batch_queue_policy_admits_only_this_bucket_as_the_input_queues_does(resources: dict[str, Any]) -> None:
    # GIVEN both queue policies S3 needs (AWS refuses a notification to a queue S3 may not send to)
    (inputs,) = resources["InputQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    (batches,) = resources["BatchQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]

    # THEN the batch queue's admits S3, for this bucket of this account only, as the input queue's
    assert resources["BatchQueuePolicy"]["Properties"]["Queues"] == [{"Ref": "BatchQueue"}]
    assert batches["Principal"] == {"Service": "s3.amazonaws.com"} and batches["Action"] == "sqs:SendMessage"
    assert ref_name(batches["Resource"]) == "BatchQueue"
    assert batches["Condition"] == inputs["Condition"]


def test_the_batch_driver_is_capped_so_batches_never_starve_single_predictions(resources: dict[str, Any]) -> None:
    # GIVEN the batch driver
    driver = resources["BatchDriverFunction"]["Properties"]
    (event,) = driver["Events"].values()

    # THEN its reserved concurrency caps it, and its event source never invokes past that cap
    reserved = driver["ReservedConcurrentExecutions"]
    assert 1 <= reserved <= 10
    assert event["Properties"]["ScalingConfig"]["MaximumConcurrency"] <= reserved
    # AND it may read client buckets only through the conditional statement of the listed ones
    conditional = [p for p in driver["Policies"] if isinstance(p, dict) and "Fn::If" in p]
    assert [p["Fn::If"][0] for p in conditional] == ["HasBatchSourceBuckets"]


def test_input_queue_policy_admits_only_this_bucket(resources: dict[str, Any]) -> None:
    # GIVEN the input queue's policy and the bucket's explicit name
    (statement,) = resources["InputQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    name_template, name_variables = resources["DataBucket"]["Properties"]["BucketName"]["Fn::Sub"]

    # THEN S3 may send only on behalf of this account and this bucket
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    arn_template, arn_variables = statement["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Sub"]
    assert arn_template == "arn:${AWS::Partition}:s3:::" + name_template
    assert arn_variables == name_variables


# The longest region codes (14 characters), a short one, and the partitions' odd ones.
REGIONS = ["us-east-1", "ap-southeast-1", "ap-northeast-3", "us-gov-west-1", "us-isob-east-1", "eu-central-2"]
STACK_NAMES = [
    "a",
    "ensemble-gateway",
    "Ensemble-Gateway-PROD",
    "x" * 40,
    ("My-" + "Very-Long-Stack-Name-" * 6)[:127] + "Z",
]


def resolve_with(template: dict[str, Any], value: Any, stack_name: str, region: str, stack_uuid: str) -> Any:
    """``value`` resolved as CloudFormation would for a stack of that name and ID (local resolver)."""
    from ensemble_gateway.local.template import Resolver

    pseudo = {
        "AWS::StackName": stack_name,
        "AWS::Region": region,
        "AWS::AccountId": "123456789012",
        "AWS::Partition": "aws-us-gov" if "gov" in region else "aws",
        "AWS::StackId": f"arn:aws:cloudformation:{region}:123456789012:stack/{stack_name}/{stack_uuid}",
    }

    def ref(name: str) -> Any:
        return pseudo[name]

    def get_att(logical_id: str, attribute: str) -> Any:
        raise AssertionError(f"{logical_id}.{attribute} is not known before deployment")

    return Resolver(ref, get_att, template.get("Conditions")).resolve(value)


@pytest.mark.parametrize("region", REGIONS)
@pytest.mark.parametrize("stack_name", STACK_NAMES, ids=lambda n: f"{len(n)}-chars")
def test_the_bucket_name_is_valid_for_any_stack_name(
    template: dict[str, Any], resources: dict[str, Any], stack_name: str, region: str
) -> None:
    # GIVEN any valid stack name (1-128 characters, letters of either case, digits, hyphens) and region
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,127}", stack_name)
    stack_uuid = "1c2fa620-982a-11e3-aff7-50e2416294e0"

    # WHEN CloudFormation resolves the bucket's name
    name = resolve_with(template, resources["DataBucket"]["Properties"]["BucketName"], stack_name, region, stack_uuid)

    # THEN it is a valid S3 bucket name: 3-63 lowercase letters, digits, hyphens, alphanumeric ends
    assert 3 <= len(name) <= 63, name
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]*[a-z0-9]", name), name
    assert not name.startswith(("xn--", "sthree-")) and not name.endswith(("-s3alias", "--ol-s3", "--x-s3"))
    # AND the input queue's policy names exactly that bucket
    (statement,) = resources["InputQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    arn = resolve_with(template, statement["Condition"]["ArnLike"]["aws:SourceArn"], stack_name, region, stack_uuid)
    assert arn.endswith(f":s3:::{name}")


def test_two_stacks_of_one_account_and_region_get_different_buckets(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    # GIVEN two stacks (their IDs differ: CloudFormation gives each a new UUID, a re-created stack too)
    name = resources["DataBucket"]["Properties"]["BucketName"]
    first = resolve_with(template, name, "gw", "us-east-1", "1c2fa620-982a-11e3-aff7-50e2416294e0")
    second = resolve_with(template, name, "gw", "us-east-1", "8d3c2b10-11aa-4e3f-9c1d-0e2f3a4b5c6d")

    # THEN their buckets differ, and neither is derived from the (case-sensitive) stack name
    assert first != second
    assert "gw" not in first.removeprefix("ensemble-gateway-data-")


def test_bucket_is_private_encrypted_tls_only_and_expires_objects(resources: dict[str, Any]) -> None:
    # GIVEN the data bucket and its policy
    bucket = resources["DataBucket"]["Properties"]
    policy = resources["DataBucketPolicy"]["Properties"]["PolicyDocument"]

    # THEN public access is blocked and ACLs are off
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    # AND objects are encrypted with the stack's KMS key (bucket keys on)
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert ref_name(rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"]) == "DataKey"
    assert rule["BucketKeyEnabled"] is True
    # AND plain-HTTP requests are denied
    denies = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
    assert any(s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in denies)
    # AND every prefix of the layout expires after RetentionDays, uploads (copied to inputs/ when
    # accepted) after a day, the audit trail after AuditRetentionDays; stale multipart uploads go
    rules = bucket["LifecycleConfiguration"]["Rules"]
    expiring = {r["Prefix"]: r["ExpirationInDays"] for r in rules if "ExpirationInDays" in r}
    assert expiring == {
        **{prefix: 1 if prefix == "uploads/" else {"Ref": "RetentionDays"} for prefix in S3_PREFIXES},
        "audit/": {"Ref": "AuditRetentionDays"},
        "audit-errors/": {"Ref": "AuditRetentionDays"},
    }
    assert any(r.get("AbortIncompleteMultipartUpload") == {"DaysAfterInitiation": 1} for r in rules)


def test_predictions_table_has_the_indexes_the_code_queries(resources: dict[str, Any]) -> None:
    # GIVEN the predictions table
    table = resources["PredictionsTable"]["Properties"]
    indexes = {i["IndexName"]: i for i in table["GlobalSecondaryIndexes"]}

    # THEN its key, indexes (keys only) and TTL attribute are the ones the adapter uses
    assert table["KeySchema"] == [{"AttributeName": "prediction_id", "KeyType": "HASH"}]
    assert [k["AttributeName"] for k in indexes["by-parent"]["KeySchema"]] == ["parent_id", "created_at"]
    assert [k["AttributeName"] for k in indexes["by-status-deadline"]["KeySchema"]] == [
        "status",
        "deadline_at",
    ]
    assert (
        indexes["by-parent"]["Projection"]
        == indexes["by-status-deadline"]["Projection"]
        == {"ProjectionType": "KEYS_ONLY"}
    )
    # AND the owner's list, newest first, projects exactly what its filter reads
    assert [(k["AttributeName"], k["KeyType"]) for k in indexes["by-owner"]["KeySchema"]] == [
        ("owner", "HASH"),
        ("created_at", "RANGE"),
    ]
    assert indexes["by-owner"]["Projection"] == {
        "ProjectionType": "INCLUDE",
        "NonKeyAttributes": ["status", "service", "parent_id", "expires_at"],
    }
    defined = {d["AttributeName"]: d["AttributeType"] for d in table["AttributeDefinitions"]}
    keys = {k["AttributeName"] for i in indexes.values() for k in i["KeySchema"]} | {"prediction_id"}
    assert defined == dict.fromkeys(keys, "S")
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    # AND every table is on-demand with point-in-time recovery
    for name in ("PredictionsTable", "ServicesTable", "ClientsTable"):
        properties = resources[name]["Properties"]
        assert properties["BillingMode"] == "PAY_PER_REQUEST", name
        assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}, name


# ----------------------------------------------------------------------------------------------
# the template matches the code
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("function_name", "handler"), handler_cases())
def test_handler_resolves_to_a_callable_in_the_package(
    function_name: str, handler: str, template: dict[str, Any]
) -> None:
    # GIVEN a function's Handler "module.attribute"
    module_name, _, attribute = handler.rpartition(".")
    assert module_name.startswith("ensemble_gateway.handlers."), function_name

    # WHEN its module is imported (as the Lambda runtime and the local deployer do)
    module = importlib.import_module(module_name)

    # THEN the attribute is a callable
    assert callable(getattr(module, attribute, None)), f"{handler} is not callable"
    # AND the module lives under CodeUri, so `sam build` packages it
    code_uri = ROOT / function_setting(template, template["Resources"][function_name], "CodeUri", "")
    assert module.__file__ is not None
    assert Path(module.__file__).resolve().is_relative_to(code_uri.resolve()), module.__file__


def test_environment_provides_every_required_setting(template: dict[str, Any]) -> None:
    # GIVEN the environment every function receives
    from ensemble_gateway.settings import Settings

    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    aliases = {field.alias: field for field in Settings.model_fields.values()}

    # THEN every setting without a default is provided
    required = {alias for alias, field in aliases.items() if field.is_required()}
    assert required <= set(variables), f"missing: {sorted(required - set(variables))}"
    # AND every variable is a setting or a Powertools/pydantic/logging variable (no typo goes unnoticed)
    libraries = {"LOG_LEVEL", "PYDANTIC_DISABLE_PLUGINS"}
    unknown = {v for v in variables if v not in aliases and not v.startswith("POWERTOOLS_") and v not in libraries}
    assert unknown == set()
    assert variables["AUTH_MODE"] == "iam"


def test_package_requirements_cover_the_runtime_dependencies(template: dict[str, Any]) -> None:
    # GIVEN the project's runtime dependencies and the Lambda package's requirements file
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    code_uri = ROOT / template["Globals"]["Function"]["CodeUri"]
    lines = [line.split("#")[0].strip() for line in (code_uri / "requirements.txt").read_text().splitlines()]
    requirements = [line for line in lines if line]

    def parse(spec: str) -> tuple[str, str]:
        """("name", "version constraint") of a requirement, extras and spaces dropped."""
        match = re.match(r"\s*([A-Za-z0-9._-]+)\s*(\[[^\]]*\])?\s*([^;]*)", spec)
        assert match is not None, spec
        return match.group(1).lower().replace("_", "-"), match.group(3).replace(" ", "")

    packaged = dict(parse(r) for r in requirements)

    # THEN `sam build` vendors every one of them, with the same version constraints
    for dependency in project["dependencies"]:
        package, constraint = parse(dependency)
        assert package in packaged, f"{package} is missing from src/requirements.txt"
        assert packaged[package] == constraint, (package, packaged[package], constraint)
    # AND with active tracing, Powertools comes with its X-Ray SDK (the Tracer needs it on Lambda)
    if template["Globals"]["Function"].get("Tracing") == "Active":
        assert any(r.startswith("aws-lambda-powertools[tracer]") for r in requirements), requirements


# ----------------------------------------------------------------------------------------------
# queues: AWS's rules for SQS → Lambda
# ----------------------------------------------------------------------------------------------
def test_input_queue_visibility_is_six_times_the_function_timeout(template: dict[str, Any]) -> None:
    # GIVEN the upload queue and the function that consumes it
    resources = template["Resources"]
    visibility = resources["InputQueue"]["Properties"]["VisibilityTimeout"]
    timeout = function_setting(template, resources["ProcessInputFunction"], "Timeout", SAM_DEFAULT_TIMEOUT)

    # THEN a message stays invisible while any batch holding it may still run
    assert visibility >= 6 * timeout


@pytest.mark.parametrize(
    "function_name", ["ProcessInputFunction", "GetTransformCallFunction", "ShadowDispatchFunction"]
)
def test_a_realtime_model_call_ends_well_before_its_function_times_out(
    template: dict[str, Any], function_name: str
) -> None:
    # GIVEN a function that calls real-time endpoints inline, and the adapter's bound on a call
    from ensemble_gateway.adapters import sagemaker

    timeout = function_setting(template, template["Resources"][function_name], "Timeout", SAM_DEFAULT_TIMEOUT)
    config = sagemaker.realtime_config()

    # THEN the client waits longer than SageMaker's 60 s real-time limit, never retries on its own
    assert 60 < config.read_timeout == sagemaker.REALTIME_READ_TIMEOUT_SECONDS
    assert config.connect_timeout <= 5
    assert config.retries["total_max_attempts"] == 1
    # AND one attempt fits the call's budget, which leaves the function time to read the input,
    # store the output and record the result (30 s) before Lambda kills it
    assert config.connect_timeout + config.read_timeout <= sagemaker.REALTIME_CALL_BUDGET_SECONDS
    assert timeout >= sagemaker.REALTIME_CALL_BUDGET_SECONDS + 30
    # AND async calls (retried: a duplicate is harmless) fit too
    async_config = sagemaker.async_config()
    attempts = async_config.retries["total_max_attempts"]
    assert attempts * (async_config.connect_timeout + async_config.read_timeout) + 20 <= timeout


def test_every_consumed_queue_outlasts_its_consumers(template: dict[str, Any]) -> None:
    # GIVEN every queue that a function consumes
    consumers = queue_consumers(template)
    assert set(consumers) >= {"InputQueue", "WebhookQueue"}

    for queue, readers in consumers.items():
        visibility = template["Resources"][queue]["Properties"].get("VisibilityTimeout", 30)
        for name, function in readers:
            timeout = function_setting(template, function, "Timeout", SAM_DEFAULT_TIMEOUT)
            # THEN its visibility timeout is at least six times each consumer's timeout
            assert visibility >= 6 * timeout, (queue, name)


def test_every_consumed_queue_dead_letters_after_five_receives(template: dict[str, Any]) -> None:
    # GIVEN every queue that a function consumes
    resources = template["Resources"]
    for queue in queue_consumers(template):
        redrive = resources[queue]["Properties"].get("RedrivePolicy")

        # THEN it has a redrive policy to a queue of this stack
        assert redrive is not None, f"{queue} has no dead-letter queue"
        dlq = ref_name(redrive["deadLetterTargetArn"])
        assert dlq in resources and resources[dlq]["Type"] == "AWS::SQS::Queue", queue
        # AND throttles or brief failures cannot dead-letter a message early
        assert int(redrive["maxReceiveCount"]) >= 5, queue


def test_every_dead_letter_queue_raises_an_alarm(template: dict[str, Any]) -> None:
    # GIVEN the dead-letter queues (redrive targets and the notifications function's DLQ)
    resources = template["Resources"]
    dlqs = {
        ref_name(r["Properties"]["RedrivePolicy"]["deadLetterTargetArn"])
        for r in of_type(resources, "AWS::SQS::Queue").values()
        if "RedrivePolicy" in r["Properties"]
    }
    dlqs |= {
        ref_name(f["Properties"]["DeadLetterQueue"]["TargetArn"])
        for f in functions(resources).values()
        if "DeadLetterQueue" in f["Properties"]
    }
    assert dlqs == {"InputDLQ", "WebhookDLQ", "ShadowDLQ", "NotificationsDLQ", "SweeperDLQ", "BatchDLQ"}

    # THEN an alarm fires on the first visible message of each
    watched = {}
    for alarm in of_type(resources, "AWS::CloudWatch::Alarm").values():
        properties = alarm["Properties"]
        if properties["Namespace"] != "AWS/SQS":
            continue  # the metrics' alarms (see test_the_dashboard_and_alarms_watch_the_gateways_metrics)
        (dimension,) = properties["Dimensions"]
        watched[ref_name(dimension["Value"])] = properties
    for dlq in dlqs:
        alarm = watched[dlq]
        assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible", dlq
        assert alarm["Threshold"] == 1 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_the_sweepers_failed_runs_are_dead_lettered(transformed: dict[str, Any], resources: dict[str, Any]) -> None:
    # GIVEN the sweeper, which its schedule invokes asynchronously
    sweeper = transformed["Resources"]["SweeperFunction"]["Properties"]
    role = transformed["Resources"]["SweeperFunctionRole"]["Properties"]

    # THEN a run that fails after Lambda's retries goes to SweeperDLQ (alarmed: see the test above)
    assert ref_name(sweeper["DeadLetterConfig"]["TargetArn"]) == "SweeperDLQ"
    sends = [
        s
        for p in role["Policies"]
        for s in p["PolicyDocument"]["Statement"]
        if s["Action"] == "sqs:SendMessage" and ref_name(s["Resource"]) == "SweeperDLQ"
    ]
    assert sends, "the sweeper's role may not write to its dead-letter queue"
    assert resources["SweeperDLQ"]["Properties"]["MessageRetentionPeriod"] == 1209600


def test_notifications_function_is_fed_by_both_topics(resources: dict[str, Any]) -> None:
    # GIVEN the notifications function
    events = resources["NotificationsFunction"]["Properties"]["Events"].values()

    # THEN SageMaker's success and error topics both invoke it
    assert {ref_name(e["Properties"]["Topic"]) for e in events if e["Type"] == "SNS"} == {
        "SuccessTopic",
        "ErrorTopic",
    }


def test_the_api_writes_a_json_access_log_to_a_log_group_with_retention(
    transformed: dict[str, Any], resources: dict[str, Any]
) -> None:
    # GIVEN the API's stage after the transform
    setting = transformed["Resources"]["GatewayApiStage"]["Properties"]["AccessLogSetting"]

    # THEN each request is one JSON line with who called what, the answer and the latency
    sample = re.sub(r"\$context\.error\.messageString", '"an error"', setting["Format"])
    line = json.loads(re.sub(r"\$context\.[A-Za-z.]+", "value", sample))
    assert {"requestId", "ip", "caller", "userArn", "method", "path", "status", "latency"} <= set(line)
    assert setting["Format"].count("\n") == 0
    # AND it goes to the stack's log group, kept AccessLogRetentionDays (a parameter)
    arn = setting["DestinationArn"]["Fn::If"]
    assert arn[0] == "CreateApiGatewayCloudWatchRole"
    assert arn[1]["Fn::Select"][1] == [{"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}, {"Ref": "ApiGatewayAccount"}]
    assert arn[2] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    group = resources["ApiAccessLogGroup"]
    assert group["Properties"]["RetentionInDays"] == {"Ref": "AccessLogRetentionDays"}
    assert "Condition" not in group


def test_api_gateways_account_logging_role_is_set_once_and_outlives_the_stack(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    # GIVEN the account-level setting API Gateway needs before any stage may log
    account = resources["ApiGatewayAccount"]
    role = resources["ApiGatewayLogsRole"]

    # THEN it is made only when asked ("create", the default; "existing" leaves the region's alone)
    parameter = template["Parameters"]["ApiGatewayCloudWatchRole"]
    assert parameter["Default"] == "create" and parameter["AllowedValues"] == ["create", "existing"]
    assert account["Condition"] == role["Condition"] == "CreateApiGatewayCloudWatchRole"
    assert ref_name(account["Properties"]["CloudWatchRoleArn"]) == "ApiGatewayLogsRole"
    # AND deleting the stack keeps both: other APIs of the region log through that role
    for resource in (account, role):
        assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "Retain"
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "apigateway.amazonaws.com"}


def test_the_local_runtime_can_deploy_every_resource_type_of_the_template(template: dict[str, Any]) -> None:
    # GIVEN the types the local deployer creates
    from ensemble_gateway.local.deployer import LocalDeployer

    # THEN the gateway template has no resource the local runtime leaves out (no AWS-only part)
    assert {r["Type"] for r in template["Resources"].values()} <= set(LocalDeployer.ORDER)
    assert not any("OnAws" in name for name in template.get("Conditions", {}))


# ----------------------------------------------------------------------------------------------
# least privilege
# ----------------------------------------------------------------------------------------------
def test_wildcard_resources_only_for_actions_without_resource_permissions(resources: dict[str, Any]) -> None:
    # GIVEN every inline statement of the functions and the roles, and every managed policy
    all_statements = [(name, s) for name, f in functions(resources).items() for s in statements(f)]
    for name, role in of_type(resources, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            all_statements += [(name, s) for s in policy["PolicyDocument"]["Statement"]]
    for name, policy in of_type(resources, "AWS::IAM::ManagedPolicy").items():
        all_statements += [(name, s) for s in policy["Properties"]["PolicyDocument"]["Statement"]]
    assert {owner for owner, _ in all_statements} >= {"EnsembleStateMachineRole", "OperatorPolicy", "ModelRoleBoundary"}

    for owner, statement in all_statements:
        actions = as_list(statement["Action"])
        # THEN no action is a wildcard
        assert not any("*" in action for action in actions), (owner, actions)
        # AND Resource "*" appears only where AWS offers nothing narrower
        if "*" in as_list(statement["Resource"]):
            assert set(actions) <= ACTIONS_WITHOUT_RESOURCES, (owner, actions)


def test_functions_touch_only_the_bucket_layout(resources: dict[str, Any]) -> None:
    # GIVEN every S3 statement of the functions
    for name, function in functions(resources).items():
        for statement in statements(function):
            if not any(a.startswith("s3:") for a in as_list(statement["Action"])):
                continue
            # THEN it names objects under one of the layout's prefixes of the data bucket
            for resource in as_list(statement["Resource"]):
                arn = resource["Fn::Sub"]
                bucket_part = "arn:${AWS::Partition}:s3:::${DataBucket}/"
                assert arn.startswith(bucket_part), (name, arn)
                assert arn[len(bucket_part) :] in {p + "*" for p in S3_PREFIXES}, (name, arn)


def test_the_sweeper_may_stop_only_this_stacks_ensemble_executions(resources: dict[str, Any]) -> None:
    # GIVEN the sweeper's statement allowing StopExecution
    from ensemble_gateway.adapters.stepfunctions import execution_arn

    (statement,) = [
        s for s in statements(resources["SweeperFunction"]) if "states:StopExecution" in as_list(s["Action"])
    ]
    assert as_list(statement["Action"]) == ["states:StopExecution"]
    pattern = (
        statement["Resource"]["Fn::Sub"]
        .replace("${AWS::Partition}", "aws")
        .replace("${AWS::Region}", "us-east-1")
        .replace("${AWS::AccountId}", "123456789012")
        .replace("${AWS::StackName}", "gw")
    )

    # THEN it covers the executions the adapter stops (state machine "<stack>-<ensemble>", execution
    # named after the prediction) and no other state machine's
    machine = "arn:aws:states:us-east-1:123456789012:stateMachine:gw-vehicle-claim"
    assert fnmatch.fnmatchcase(execution_arn(machine, "p20261122000000abcdef012345"), pattern)
    assert not fnmatch.fnmatchcase(execution_arn(machine.replace(":gw-", ":other-"), "p1"), pattern)
    assert not fnmatch.fnmatchcase(machine, pattern)


def _grants(function: dict[str, Any]) -> dict[str, set[str]]:
    """Action → the resources a function's statements grant it on (as patterns, see ``_sub_arn``)."""
    granted: dict[str, set[str]] = {}
    for statement in statements(function):
        for action in as_list(statement["Action"]):
            granted.setdefault(action, set()).update(_sub_arn(r) for r in as_list(statement["Resource"]))
    return granted


def test_of_the_api_functions_results_only_reads_and_new_prediction_never_stops_executions(
    resources: dict[str, Any],
) -> None:
    # GIVEN what each API function may do
    results, submit, cancel = (
        _grants(resources[name]) for name in ("ResultsFunction", "NewPredictionFunction", "CancelPredictionFunction")
    )
    ending = {"states:StopExecution", "sqs:SendMessage", "events:PutEvents"}

    # THEN results only reads: GetItem and BatchGetItem, and Query of the lineage and list indexes
    assert not {a for a in results if a.startswith("dynamodb:")} - {
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:Query",
    }
    assert results["dynamodb:Query"] == {"*/index/by-parent", "*/index/by-owner"}
    assert not ending & set(results)
    # AND new-prediction creates and renews (UpdateItem); it ends only predictions whose input came
    # inline (their webhook, event, hand-over to process-input and shadows), and stops nothing
    assert "dynamodb:UpdateItem" in submit and "states:StopExecution" not in submit
    assert submit["sqs:SendMessage"] == {"<WebhookQueue>", "<WebhookDLQ>", "<InputQueue>", "<ShadowQueue>"}
    assert submit["events:PutEvents"] == {"<EventBus>"}
    assert {r.rsplit("/", 2)[-2] for r in submit["s3:PutObject"]} == {"uploads", "inputs", "outputs", "failures"}
    # AND cancel-prediction updates records, stops only this stack's ensemble executions, queues only
    # webhooks, puts events on the gateway's bus, only reads objects (the decision record's digests
    # of an input and output), and counts a cancelled batch item into its batch (its outcome entry
    # and count, one transaction)
    assert cancel["dynamodb:UpdateItem"] == {"<PredictionsTable>", "<BatchesTable>"}
    assert cancel["dynamodb:PutItem"] == {"<BatchesTable>"}
    assert {a for a in cancel if a.startswith(("s3:", "kms:"))} == {"s3:GetObject", "kms:Decrypt"}
    assert cancel["firehose:PutRecordBatch"] == {"<AuditStream>"}
    assert cancel["states:StopExecution"] == _grants(resources["SweeperFunction"])["states:StopExecution"]
    assert cancel["sqs:SendMessage"] == {"<WebhookQueue>", "<BatchQueue>"}
    assert cancel["events:PutEvents"] == {"<EventBus>"}
    assert cancel["dynamodb:Query"] == {"*/index/by-parent"}


def test_the_batches_api_function_records_batches_and_ticks_the_driver_but_runs_nothing(
    resources: dict[str, Any],
) -> None:
    # GIVEN what the batches function may do
    granted = _grants(resources["BatchesFunction"])

    # THEN it writes only the batches table, sends only ticks, and signs only batches/ objects
    assert {r for a, rs in granted.items() if a in ("dynamodb:PutItem", "dynamodb:UpdateItem") for r in rs} == {
        "<BatchesTable>"
    }
    assert granted["sqs:SendMessage"] == {"<BatchQueue>"}
    assert granted["s3:PutObject"] == granted["s3:GetObject"] == {"arn:*:s3:::*/batches/*"}
    # AND it invokes no model, starts or stops no execution, publishes nothing
    assert not {a for a in granted if a.startswith(("sagemaker:", "states:", "events:"))}


def test_shadows_are_queued_where_they_start_and_dispatched_by_a_function_that_ends_nothing_else(
    resources: dict[str, Any],
) -> None:
    # GIVEN every function's grants
    grants = {name: _grants(function) for name, function in functions(resources).items()}

    # WHEN the functions that may queue shadows are picked out
    queueing = {name for name, granted in grants.items() if "<ShadowQueue>" in granted.get("sqs:SendMessage", set())}

    # THEN they are those that dispatch predictions (new-prediction: inputs given inline), steps and
    # batch items, and each is told the queue's URL
    assert queueing == {
        "ProcessInputFunction",
        "GetTransformCallFunction",
        "BatchDriverFunction",
        "NewPredictionFunction",
    }
    for name in queueing:
        variables = resources[name]["Properties"]["Environment"]["Variables"]
        assert ref_name(variables["SHADOW_QUEUE_URL"]) == "ShadowQueue", name
    # AND process-input may create the shadows' records (get-transform-call creates steps already)
    assert "<PredictionsTable>" in grants["ProcessInputFunction"]["dynamodb:PutItem"]
    # AND the shadow-dispatch function dispatches (models, ensembles, records) but tells nobody:
    # no webhook, no event, no task token (a shadow's only callback is its primary's record)
    dispatching = grants["ShadowDispatchFunction"]
    assert {"sagemaker:InvokeEndpointAsync", "sagemaker:InvokeEndpoint", "states:StartExecution"} <= set(dispatching)
    assert (
        set(dispatching) & {"sqs:SendMessage", "events:PutEvents", "states:SendTaskSuccess", "dynamodb:PutItem"}
        == set()
    )
    assert dispatching["dynamodb:UpdateItem"] == {"<PredictionsTable>"}


def test_state_machine_role_only_invokes_get_transform_call(resources: dict[str, Any]) -> None:
    # GIVEN the role ensemble state machines are created with
    role = resources["EnsembleStateMachineRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]

    # THEN only Step Functions may assume it
    assert trust["Principal"] == {"Service": "states.amazonaws.com"}
    # AND the only function it may invoke is get-transform-call
    invoke = [
        s
        for p in role["Policies"]
        for s in p["PolicyDocument"]["Statement"]
        if "lambda:InvokeFunction" in as_list(s["Action"])
    ]
    targets = {ref_name(r) or r["Fn::Sub"] for s in invoke for r in as_list(s["Resource"])}
    assert targets == {"GetTransformCallFunction", "${GetTransformCallFunction.Arn}:*"}


def _sub_arn(value: Any) -> str:
    """A statement's resource as a pattern (``${...}`` of Fn::Sub and refs as ``*``)."""
    if isinstance(value, dict) and "Fn::Sub" in value:
        return re.sub(r"\$\{[^}]+\}", "*", value["Fn::Sub"])
    if value == "*":
        return "*"
    return f"<{ref_name(value)}>"


def test_the_operator_policy_grants_exactly_what_the_operator_commands_call(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    # GIVEN the operator policy (an output, so it can be attached) and what each command calls
    from operator_permissions import OPERATOR_COMMANDS

    policy = resources["OperatorPolicy"]
    assert template["Outputs"]["OperatorPolicyArn"]["Value"] == {"Ref": "OperatorPolicy"}
    granted = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    actions = {action for s in granted for action in as_list(s["Action"])}

    # THEN it allows every call of every command, and nothing no command calls
    needed = set().union(*OPERATOR_COMMANDS.values())
    assert needed - actions == set(), "missing"
    assert actions - needed == set(), "granted but never called"


def test_the_operator_policy_scopes_each_grant_to_this_stack(resources: dict[str, Any]) -> None:
    # GIVEN the operator policy's statements, by action
    statements_of: dict[str, list[dict[str, Any]]] = {}
    for statement in resources["OperatorPolicy"]["Properties"]["PolicyDocument"]["Statement"]:
        for action in as_list(statement["Action"]):
            statements_of.setdefault(action, []).append(statement)

    def resources_of(action: str) -> set[str]:
        return {_sub_arn(r) for s in statements_of[action] for r in as_list(s["Resource"])}

    # THEN the catalog and clients are this stack's tables, the stack itself its own ID
    assert resources_of("dynamodb:DeleteItem") == {"<ServicesTable>"}
    assert resources_of("dynamodb:PutItem") == {"<ServicesTable>", "<ClientsTable>"}
    assert resources_of("cloudformation:DescribeStacks") == {
        "<AWS::StackId>",
        "arn:*:cloudformation:*:*:stack/*-model-*/*",
    }
    # AND state machines and endpoint stacks are those named after the stack
    assert resources_of("states:DeleteStateMachine") == {"arn:*:states:*:*:stateMachine:*-*"}
    assert resources_of("cloudformation:DeleteStack") == {"arn:*:cloudformation:*:*:stack/*-model-*/*"}
    # AND a role is passed only to the service that runs it: the ensemble role to Step Functions,
    # the endpoint stacks' model roles to SageMaker
    passes = {
        (_sub_arn(s["Resource"]), s["Condition"]["StringEquals"]["iam:PassedToService"])
        for s in statements_of["iam:PassRole"]
    }
    assert passes == {
        ("<EnsembleStateMachineRole>", "states.amazonaws.com"),
        ("arn:*:iam::*:role/*-model-*", "sagemaker.amazonaws.com"),
    }
    # AND a model role can be created, or given a policy, only inside ModelRoleBoundary; nothing
    # may remove or replace a boundary
    for action in ("iam:CreateRole", "iam:PutRolePolicy"):
        for statement in statements_of[action]:
            assert statement["Condition"] == {"StringEquals": {"iam:PermissionsBoundary": {"Ref": "ModelRoleBoundary"}}}
    assert not {"iam:PutRolePermissionsBoundary", "iam:DeleteRolePermissionsBoundary", "iam:AttachRolePolicy"} & set(
        statements_of
    )
    # AND objects only under models/ of the bucket
    assert resources_of("s3:PutObject") == {"arn:*:s3:::*/models/*"}


def test_the_model_role_boundary_allows_no_more_than_the_gateway_layout(resources: dict[str, Any]) -> None:
    # GIVEN the boundary every endpoint stack's execution role must carry
    boundary = resources["ModelRoleBoundary"]["Properties"]["PolicyDocument"]["Statement"]
    s3 = {
        (action, _sub_arn(r))
        for s in boundary
        for action in as_list(s["Action"])
        if action.startswith("s3:")
        for r in as_list(s["Resource"])
    }

    # THEN a model reads its data and its requests, writes results, lists only models/
    assert s3 == {
        ("s3:GetObject", "arn:*:s3:::*/models/*"),
        ("s3:GetObject", "arn:*:s3:::*/inputs/*"),
        ("s3:GetObject", "arn:*:s3:::*/steps/*"),
        ("s3:ListBucket", "<DataBucket>"),
        ("s3:PutObject", "arn:*:s3:::*/outputs/*"),
        ("s3:PutObject", "arn:*:s3:::*/failures/*"),
    }
    # AND no IAM, no other service's data
    prefixes = {action.split(":")[0] for s in boundary for action in as_list(s["Action"])}
    assert prefixes == {"s3", "kms", "sns", "ecr", "logs", "cloudwatch"}


def test_outputs_name_what_clients_and_registration_need(template: dict[str, Any]) -> None:
    # GIVEN the stack outputs
    outputs = template["Outputs"]

    # THEN the API URL, the storage names and what ensemble registration needs are all exported
    assert set(outputs) >= {
        "ApiUrl",
        "BucketName",
        "PredictionsTableName",
        "ServicesTableName",
        "ClientsTableName",
        "GetTransformCallFunctionArn",
        "EnsembleStateMachineRoleArn",
        "SuccessTopicArn",
        "ErrorTopicArn",
        "WebhookQueueUrl",
    }
    assert outputs["ApiUrl"]["Value"] == {
        "Fn::Sub": "https://${GatewayApi}.execute-api.${AWS::Region}.amazonaws.com/${Stage}"
    }


# ----------------------------------------------------------------------------------------------
# sample events
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", sorted(EVENTS.glob("*.json")), ids=lambda p: p.name)
def test_sample_event_is_valid_json(path: Path) -> None:
    # GIVEN a sample event for `sam local invoke -e`
    # WHEN it is parsed
    event = json.loads(path.read_text())

    # THEN it is a JSON object
    assert isinstance(event, dict)


def test_every_handler_has_a_sample_event(resources: dict[str, Any]) -> None:
    # GIVEN the handler modules of the template
    modules = {f["Properties"]["Handler"].rsplit(".", 2)[-2] for f in functions(resources).values()}

    # THEN each has at least one sample event named after it (new_prediction also serves list_services)
    names = {p.stem for p in EVENTS.glob("*.json")}
    for module in modules:
        assert any(n == module or n.startswith(module + "_") for n in names), module


def test_sample_s3_upload_event_targets_an_upload_key() -> None:
    # GIVEN the sample SQS batch carrying an S3 notification
    record = json.loads((EVENTS / "process_input.json").read_text())["Records"][0]
    notification = json.loads(record["body"])

    # THEN it is an ObjectCreated event for an object under uploads/
    (s3_record,) = notification["Records"]
    assert s3_record["eventName"].startswith("ObjectCreated:")
    assert s3_record["s3"]["object"]["key"].startswith("uploads/")


@pytest.mark.parametrize(
    ("name", "status"),
    [("notifications_success.json", "Completed"), ("notifications_failure.json", "Failed")],
)
def test_sample_notifications_parse_as_inference_results(name: str, status: str) -> None:
    # GIVEN a sample SNS event carrying a SageMaker InferenceResult
    from ensemble_gateway.domain.notifications import InferenceResult

    record = json.loads((EVENTS / name).read_text())["Records"][0]

    # WHEN the message is parsed as the notifications handler does
    result = InferenceResult.model_validate(json.loads(record["Sns"]["Message"]))

    # THEN it has the expected outcome and names the prediction
    assert result.invocation_status == status
    assert result.succeeded is (status == "Completed")
    assert result.inference_id.startswith("p")
    assert (result.response_parameters.output_location is not None) is result.succeeded


# ----------------------------------------------------------------------------------------------
# prediction events (EventBridge)
# ----------------------------------------------------------------------------------------------
def test_the_event_bus_is_named_after_the_stack_and_shared_only_with_listed_accounts(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    # GIVEN the gateway's event bus
    bus = resources["EventBus"]
    assert bus["Type"] == "AWS::Events::EventBus"
    assert bus["Properties"]["Name"] == {"Fn::Sub": "${AWS::StackName}-predictions"}
    # THEN its policy exists only when consumer accounts are given
    condition, policy, otherwise = bus["Properties"]["Policy"]["Fn::If"]
    assert condition == "HasEventConsumers" and otherwise == {"Ref": "AWS::NoValue"}
    assert template["Parameters"]["EventConsumerAccountIds"]["Default"] == ""
    (statement,) = policy["Statement"]
    assert statement["Principal"] == {"AWS": {"Ref": "EventConsumerAccountIds"}}
    # AND those accounts may manage only rules they created, never put events on it
    assert "events:PutEvents" not in statement["Action"]
    assert statement["Condition"] == {"StringEqualsIfExists": {"events:creatorAccount": "${aws:PrincipalAccount}"}}
    # AND the functions learn its name from the environment
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["EVENT_BUS_NAME"] == {"Ref": "EventBus"}


def test_every_function_that_finishes_predictions_may_publish_their_events_and_no_other(
    resources: dict[str, Any],
) -> None:
    # GIVEN the functions whose statements queue webhooks (they finish predictions)
    finishing = {
        name
        for name, function in functions(resources).items()
        if any(s.get("Sid") == "QueueWebhooks" for s in statements(function))
    }
    publishing = {
        name
        for name, function in functions(resources).items()
        for s in statements(function)
        if "events:PutEvents" in as_list(s["Action"])
    }
    # THEN exactly they may put events, on the gateway's bus only
    assert (
        finishing
        == publishing
        == {
            "ProcessInputFunction",
            "GetTransformCallFunction",
            "NotificationsFunction",
            "SweeperFunction",
            "CancelPredictionFunction",
            "BatchDriverFunction",
            # A prediction with its input inline may end in the request (a real-time answer).
            "NewPredictionFunction",
        }
    )
    for name in publishing:
        (grant,) = [s for s in statements(functions(resources)[name]) if "events:PutEvents" in as_list(s["Action"])]
        assert grant["Resource"] == {"Fn::GetAtt": ["EventBus", "Arn"]}, name


# ----------------------------------------------------------------------------------------------
# the audit trail (issue 18)
# ----------------------------------------------------------------------------------------------
def test_the_audit_stream_writes_hive_partitions_of_the_decisions_hour_to_the_data_bucket(
    resources: dict[str, Any],
) -> None:
    # GIVEN the audit stream
    stream = resources["AuditStream"]["Properties"]
    destination = stream["ExtendedS3DestinationConfiguration"]

    # THEN the functions put records to it directly, and it delivers to the data bucket's audit/
    assert stream["DeliveryStreamType"] == "DirectPut"
    assert ref_name(destination["BucketARN"]) == "DataBucket"
    assert ref_name(destination["RoleARN"]) == "AuditStreamRole"
    assert destination["Prefix"] == "audit/date=!{partitionKeyFromQuery:date}/hour=!{partitionKeyFromQuery:hour}/"
    assert destination["ErrorOutputPrefix"].startswith("audit-errors/")
    # AND the partition keys are read from the record's finished_at, as domain/audit.partition does
    assert destination["DynamicPartitioningConfiguration"]["Enabled"] is True
    (processor,) = destination["ProcessingConfiguration"]["Processors"]
    parameters = {p["ParameterName"]: p["ParameterValue"] for p in processor["Parameters"]}
    assert processor["Type"] == "MetadataExtraction"
    assert parameters["MetadataExtractionQuery"] == "{date: .finished_at[0:10], hour: .finished_at[11:13]}"
    from ensemble_gateway.domain.audit import partition

    finished = "2026-11-22T09:15:00.123Z"
    assert partition({"finished_at": finished}) == (finished[0:10], finished[11:13]) == ("2026-11-22", "09")
    # AND the objects are encrypted with the data key
    assert ref_name(destination["EncryptionConfiguration"]["KMSEncryptionConfig"]["AWSKMSKeyARN"]) == "DataKey"


def test_the_audit_trail_is_kept_for_its_own_retention_parameter(template: dict[str, Any]) -> None:
    # GIVEN the parameter and the bucket's lifecycle rules
    parameter = template["Parameters"]["AuditRetentionDays"]
    rules = template["Resources"]["DataBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    by_prefix = {rule["Prefix"]: rule for rule in rules if "Prefix" in rule}

    # THEN audit/ (and the stream's error output) expire after AuditRetentionDays, not RetentionDays
    assert parameter["Type"] == "Number" and parameter["MinValue"] == 1 and parameter["Default"] >= 365
    for prefix in ("audit/", "audit-errors/"):
        assert by_prefix[prefix]["ExpirationInDays"] == {"Ref": "AuditRetentionDays"}, prefix
        assert by_prefix[prefix]["Status"] == "Enabled"
    # AND the functions know the stream
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["AUDIT_STREAM_NAME"] == {"Ref": "AuditStream"}
    assert {"AuditStreamName", "AuditDatabaseName", "AuditTableName"} <= set(template["Outputs"])


def test_athena_reads_the_audit_trail_through_a_projected_json_table(resources: dict[str, Any]) -> None:
    # GIVEN the Glue database and table
    database = resources["AuditDatabase"]["Properties"]
    table = resources["AuditTable"]["Properties"]
    table_input = table["TableInput"]
    storage = table_input["StorageDescriptor"]
    parameters = table_input["Parameters"]

    # THEN the table is in the stack's database and reads the stream's objects as JSON lines
    assert ref_name(table["DatabaseName"]) == "AuditDatabase"
    assert database["CatalogId"] == {"Ref": "AWS::AccountId"}
    assert storage["SerdeInfo"]["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"
    assert storage["Location"] == {"Fn::Sub": "s3://${DataBucket}/audit/"}
    # AND its partitions are projected from the stream's layout (no crawler, no repair)
    assert [(k["Name"], k["Type"]) for k in table_input["PartitionKeys"]] == [("day", "string"), ("hour", "string")]
    assert parameters["projection.enabled"] == "true"
    assert parameters["projection.day.type"] == "date" and parameters["projection.day.format"] == "yyyy-MM-dd"
    assert parameters["projection.hour.type"] == "integer" and parameters["projection.hour.digits"] == "2"
    assert parameters["storage.location.template"] == {
        "Fn::Sub": "s3://${DataBucket}/audit/date=${!day}/hour=${!hour}/"
    }
    # AND every column has a lowercase name (the SerDe matches JSON keys case-insensitively)
    names = [column["Name"] for column in storage["Columns"]]
    assert names == [name.lower() for name in names] and len(names) == len(set(names))
    assert {"record_id", "prediction_id", "version", "input", "output", "capturedata", "eventmetadata"} <= set(names)


def test_only_firehose_writes_the_audit_prefix_with_the_data_key(resources: dict[str, Any]) -> None:
    # GIVEN the role the stream acts as
    role = resources["AuditStreamRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    (policy,) = role["Policies"]
    granted = policy["PolicyDocument"]["Statement"]

    # THEN only Firehose, for this account, may assume it
    assert trust["Principal"] == {"Service": "firehose.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"sts:ExternalId": {"Ref": "AWS::AccountId"}}}
    # AND its objects are the audit prefixes only, its key the data key through S3 only
    by_sid = {s["Sid"]: s for s in granted}
    assert {r["Fn::Sub"] for r in by_sid["WriteAuditObjects"]["Resource"]} == {
        "arn:${AWS::Partition}:s3:::${DataBucket}/audit/*",
        "arn:${AWS::Partition}:s3:::${DataBucket}/audit-errors/*",
    }
    assert ref_name(by_sid["FindTheBucket"]["Resource"]) == "DataBucket"
    assert ref_name(by_sid["EncryptAuditObjects"]["Resource"]) == "DataKey"
    assert "kms:ViaService" in by_sid["EncryptAuditObjects"]["Condition"]["StringEquals"]
    assert by_sid["LogDeliveryErrors"]["Action"] == "logs:PutLogEvents"


def test_the_functions_that_end_predictions_may_put_decision_records_on_the_stream_only(
    resources: dict[str, Any],
) -> None:
    # GIVEN the functions' grants of PutRecordBatch
    putting = {
        name: [s for s in statements(function) if "firehose:PutRecordBatch" in as_list(s["Action"])]
        for name, function in functions(resources).items()
    }
    putting = {name: grants for name, grants in putting.items() if grants}

    # THEN exactly those that end predictions (and webhook delivery, for its delivery records)
    assert set(putting) == {
        "ProcessInputFunction",
        "GetTransformCallFunction",
        "NotificationsFunction",
        "SweeperFunction",
        "CancelPredictionFunction",
        "ShadowDispatchFunction",
        "WebhookDeliveryFunction",
        "NewPredictionFunction",
    }
    # AND only on the audit stream
    for name, grants in putting.items():
        assert [ref_name(g["Resource"]) for g in grants] == ["AuditStream"], name
    # AND the sweeper reads the outbox's index, which the predictions table has
    (outbox,) = [s for s in statements(resources["SweeperFunction"]) if s["Sid"] == "FindPendingDecisionRecords"]
    assert outbox["Action"] == "dynamodb:Query"
    assert outbox["Resource"] == {"Fn::Sub": "${PredictionsTable.Arn}/index/by-audit-pending"}
    indexes = {i["IndexName"]: i for i in resources["PredictionsTable"]["Properties"]["GlobalSecondaryIndexes"]}
    assert [(k["AttributeName"], k["KeyType"]) for k in indexes["by-audit-pending"]["KeySchema"]] == [
        ("audit_pending", "HASH"),
        ("finished_at", "RANGE"),
    ]
    assert indexes["by-audit-pending"]["Projection"] == {"ProjectionType": "KEYS_ONLY"}


def test_the_dashboard_and_alarms_watch_the_gateways_metrics(template: dict[str, Any]) -> None:
    # GIVEN the metrics the code puts (domain/metering.py) and the template's alarms and dashboard
    from ensemble_gateway.domain.metering import ALL_SERVICES

    resources = template["Resources"]
    alarms = {name: a["Properties"] for name, a in of_type(resources, "AWS::CloudWatch::Alarm").items()}
    (dashboard,) = of_type(resources, "AWS::CloudWatch::Dashboard").values()
    body = json.loads(re.sub(r"\$\{[^}]+\}", "X", dashboard["Properties"]["DashboardBody"]["Fn::Sub"]))

    # THEN failures, latency and webhook failures alarm across services, with parameters as thresholds
    def across(name: str, kind: str) -> dict[str, Any]:
        alarm = alarms[name]
        assert alarm["Namespace"] == "EnsembleGateway", name
        assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {"Service": ALL_SERVICES, "Kind": kind}, name
        assert alarm["TreatMissingData"] == "notBreaching", name
        return alarm

    assert across("PredictionFailuresAlarm", "prediction")["Threshold"] == {"Ref": "FailureAlarmThreshold"}
    latency = across("PredictionLatencyAlarm", "prediction")
    assert latency["MetricName"] == "LatencyMs" and latency["ExtendedStatistic"] == "p95"
    assert latency["Threshold"] == {"Fn::Sub": "${LatencyAlarmP95Seconds}000"}
    assert across("WebhookFailuresAlarm", "webhook")["MetricName"] == "WebhookFailures"
    assert ref_name(alarms["AuditDeliveryAlarm"]["Dimensions"][0]["Value"]) == "AuditStream"
    # AND the dashboard shows latency p50/p95 and failures per service, the time split, the DLQs and
    # the SageMaker backlog
    text = json.dumps(body)
    for needed in ("'p50'", "'p95'", "Failures", "ModelMs", "OverheadMs", "QueueMs", "WebhookFailures"):
        assert needed in text, needed
    assert text.count("ApproximateNumberOfMessagesVisible") == 6  # one per dead-letter queue
    assert "ApproximateBacklogSize" in text and "DeliveryToS3.DataFreshness" in text


def test_every_dead_letter_queue_is_on_the_dashboard_and_in_stats(template: dict[str, Any]) -> None:
    # GIVEN the dead-letter queues (every queue that is some queue's redrive target, or a function's DLQ)
    resources = template["Resources"]
    dlqs = {
        ref_name(r["Properties"]["RedrivePolicy"]["deadLetterTargetArn"])
        for r in of_type(resources, "AWS::SQS::Queue").values()
        if "RedrivePolicy" in r["Properties"]
    } | {
        ref_name(f["Properties"]["DeadLetterQueue"]["TargetArn"])
        for f in functions(resources).values()
        if "DeadLetterQueue" in f["Properties"]
    }

    # WHEN the dashboard, the stats output and the operator's read permission are read
    dashboard = json.dumps(resources["GatewayDashboard"]["Properties"]["DashboardBody"])
    listed = json.dumps(template["Outputs"]["DeadLetterQueueUrls"]["Value"])
    statement = next(
        s
        for s in resources["OperatorPolicy"]["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Sid") == "ReadDeadLetterDepths"
    )
    readable = {ref_name(arn) for arn in statement["Resource"]}

    # THEN each is graphed, listed for `stats` and readable by the operator
    assert {q for q in dlqs if f"${{{q}.QueueName}}" not in dashboard} == set()
    assert {q for q in dlqs if q not in listed} == set()
    assert dlqs - readable == set()

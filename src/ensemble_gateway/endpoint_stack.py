"""The endpoint stack: one model service of the catalog as a CloudFormation stack.

``templates/model-endpoint.yaml`` holds the SageMaker model, its execution role, the endpoint
configuration (async, real-time or serverless), the endpoint and, for async endpoints,
autoscaling to zero. This module fills its parameters from a catalog entry and the gateway
stack's outputs, and renders the template a stack is deployed from: the same text on AWS
(CloudFormation) and on the local runtime (the local deployer).

No AWS calls here: the stacks are deployed through an :class:`EndpointStacks` (the CloudFormation
adapter, or the local runtime's).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from .domain.errors import GatewayError
from .domain.models import Service
from .framework_images import UnknownImageError, framework_image_uri

__all__ = [
    "EndpointStackError",
    "EndpointStacks",
    "GatewayWiring",
    "StackEvent",
    "endpoint_parameters",
    "endpoint_stack_name",
    "endpoint_template_path",
    "local_custom_image",
    "model_data_key",
    "render_endpoint_template",
    "version_slug",
]

_TEMPLATE_RELATIVE = Path("templates") / "model-endpoint.yaml"
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_SLUG_UNSAFE = re.compile(r"[^A-Za-z0-9]")
#: CloudFormation: a stack name is at most 128 characters.
STACK_NAME_LIMIT = 128


class EndpointStackError(GatewayError):
    """An endpoint stack could not be deployed or deleted; the message says why, as AWS put it.

    Attributes
    ----------
    resource
        The logical ID of the first resource that failed, when one did.
    reason
        That resource's status reason (the endpoint's ``FailureReason`` for a model that did not
        load), else the message.
    """

    code = "EndpointStackFailed"

    def __init__(self, message: str, *, resource: str | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.resource = resource
        self.reason = reason or message


@dataclass(frozen=True)
class StackEvent:
    """One stack event, as CloudFormation reports it (``DescribeStackEvents``)."""

    logical_id: str
    resource_type: str
    status: str
    reason: str = ""
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))

    def line(self) -> str:
        """The event on one line, for progress output."""
        stamp = self.timestamp.astimezone().strftime("%H:%M:%S")
        text = f"{stamp}  {self.status:<28} {self.resource_type:<44} {self.logical_id}"
        return f"{text}  {self.reason}" if self.reason else text


class EndpointStacks(Protocol):
    """Deploys and deletes endpoint stacks (``adapters.cloudformation`` or the local runtime's)."""

    def deploy(
        self,
        stack_name: str,
        template_body: str,
        parameters: Mapping[str, str],
        on_event: Callable[[StackEvent], None] | None = None,
    ) -> dict[str, str]:
        """Create or update the stack; return its outputs once it is complete.

        Raises
        ------
        EndpointStackError
            With the first failure reason (the stack was rolled back).
        """
        ...

    def delete(self, stack_name: str, on_event: Callable[[StackEvent], None] | None = None) -> None:
        """Delete the stack and wait until it is gone."""
        ...

    def outputs(self, stack_name: str) -> dict[str, str] | None:
        """The stack's outputs (its ``EndpointName``...), None when there is no stack of that name."""
        ...


@dataclass(frozen=True)
class GatewayWiring:
    """What an endpoint stack needs of the gateway stack: its name, region, bucket, topics, key."""

    stack_name: str
    region: str
    bucket: str
    success_topic_arn: str
    error_topic_arn: str
    data_key_arn: str
    # The boundary operators must give model roles (the gateway's ModelRoleBoundaryArn output on
    # AWS; none locally).
    permissions_boundary_arn: str = ""

    @classmethod
    def from_outputs(cls, stack_name: str, region: str, outputs: Mapping[str, str], data_key_arn: str) -> GatewayWiring:
        """From the gateway stack's ``BucketName``, ``SuccessTopicArn``, ``ErrorTopicArn`` (and
        ``ModelRoleBoundaryArn``) outputs."""
        missing = [name for name in ("BucketName", "SuccessTopicArn", "ErrorTopicArn") if not outputs.get(name)]
        if missing:
            raise EndpointStackError(f"the gateway stack {stack_name} has no output {', '.join(missing)}")
        return cls(
            stack_name=stack_name,
            region=region,
            bucket=outputs["BucketName"],
            success_topic_arn=outputs["SuccessTopicArn"],
            error_topic_arn=outputs["ErrorTopicArn"],
            data_key_arn=data_key_arn,
            permissions_boundary_arn=outputs.get("ModelRoleBoundaryArn") or "",
        )


def endpoint_template_path() -> Path:
    """``templates/model-endpoint.yaml`` of the source checkout (beside ``template.yaml``)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / _TEMPLATE_RELATIVE
        if candidate.is_file():
            return candidate
    return Path.cwd() / _TEMPLATE_RELATIVE


def endpoint_stack_name(gateway_stack_name: str, service_name: str, version: str | None = None) -> str:
    """``<gateway stack>-model-<service>``, or ``<gateway stack>-model-<service>-v<version slug>``.

    The first name is the one a service's endpoint stack had before services had versions: the
    version that stack serves keeps it (see :func:`model_hosting.version_stack_name`). The others
    get the second. Service names are slugs, and :func:`version_slug` makes a version one, so
    both are valid CloudFormation stack names (letters, digits and ``-``, at most 128).
    """
    base = f"{gateway_stack_name}-model-{service_name}"
    if version is None:
        return base[:STACK_NAME_LIMIT]
    name = f"{base}-v{version_slug(version)}"
    if len(name) <= STACK_NAME_LIMIT:
        return name
    # Cutting the name short could make two versions' stacks one: a digest keeps them apart.
    digest = _digest(service_name, version)
    return f"{base[: STACK_NAME_LIMIT - len(digest) - 2]}-v{digest}"


def version_slug(version: str) -> str:
    """A version label as stack-name characters: ``1.1.0`` is ``1-1-0``.

    A label that has ``-`` or ``_`` of its own gets a short digest as well, so that ``1.1-0``
    and ``1-1.0`` (one slug without it) stay two stacks.
    """
    slug = _SLUG_UNSAFE.sub("-", version)
    if "-" in version or "_" in version:
        slug = f"{slug}-{_digest(version)[:6]}"
    return slug


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:10]


def model_data_key(service: Service, digest: str) -> str:
    """Where a model's archive goes in the data bucket: ``models/<service>/<version>/<digest>/model.tar.gz``.

    The digest of the archive is part of the key: an archive is never overwritten in place (an
    endpoint that scales out, or an update that rolls back, reads the model it was created
    with), and new content gives a new ``ModelDataUrl``, which is what replaces the model.
    """
    return f"models/{service.name}/{_KEY_UNSAFE.sub('-', service.version)}/{digest}/model.tar.gz"


def local_custom_image(region: str) -> str:
    """The image the local runtime records for a custom model that names none.

    ECR-shaped, as the template's ``ImageUri`` must be; its repository name is no framework's,
    so the local runtime serves the model with the toolkit's bare defaults.
    """
    return f"123456789012.dkr.ecr.{region}.amazonaws.com/ensemble-gateway-local-custom:latest"


def endpoint_parameters(
    service: Service,
    wiring: GatewayWiring,
    model_data_url: str,
    *,
    local: bool = False,
    overrides: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The endpoint stack's parameters for ``service``: its catalog entry, the gateway's wiring.

    Parameters
    ----------
    service
        A model service of the catalog.
    wiring
        The gateway stack's bucket, topics, key and (on AWS) the model roles' permissions boundary.
    model_data_url
        The ``s3://`` URI of the model's archive (``.tar.gz``) or of an uncompressed prefix.
    local
        For the local runtime: a custom model without ``image`` gets :func:`local_custom_image`.
    overrides
        Further template parameters (``InstanceType``, ``EndpointType=serverless``...).

    Raises
    ------
    EndpointStackError
        No image is known for the model, or the overrides contradict the catalog entry.
    """
    model = service.model
    if model is None:
        raise EndpointStackError(f"service '{service.name}' is an ensemble: it has no endpoint stack")
    try:
        image = model.image or framework_image_uri(model.framework, wiring.region, model.framework_version)
    except UnknownImageError as error:
        if not (local and model.framework == "custom"):
            raise EndpointStackError(f"service '{service.name}': {error}") from None
        image = local_custom_image(wiring.region)
    compressed = model_data_url.endswith((".tar.gz", ".tgz"))
    parameters = {
        "EndpointName": model.endpoint_name,
        "EndpointType": "async" if model.invocation == "async" else "realtime",
        "ImageUri": image,
        "ModelDataUrl": model_data_url if compressed else model_data_url.rstrip("/") + "/",
        "ModelDataCompression": "Gzip" if compressed else "None",
        "EntryPoint": model.entry_point,
        "BucketName": wiring.bucket,
        "SuccessTopicArn": wiring.success_topic_arn,
        "ErrorTopicArn": wiring.error_topic_arn,
        "DataKeyArn": wiring.data_key_arn,
    }
    if wiring.permissions_boundary_arn:
        parameters["PermissionsBoundaryArn"] = wiring.permissions_boundary_arn
    for name, value in (overrides or {}).items():
        parameters[name] = str(value)
    # The gateway invokes an async model with InvokeEndpointAsync and a real-time one with
    # InvokeEndpoint: the endpoint must answer the call the catalog entry implies.
    wanted = {"async": ("async",), "realtime": ("realtime", "serverless")}[model.invocation]
    if parameters["EndpointType"] not in wanted:
        raise EndpointStackError(
            f"service '{service.name}': EndpointType {parameters['EndpointType']} cannot serve "
            f"model.invocation '{model.invocation}' (use {' or '.join(wanted)})"
        )
    return parameters


def render_endpoint_template(
    template_text: str, parameters: Mapping[str, str], environment: Mapping[str, str] | None = None
) -> str:
    """The endpoint template with ``parameters`` as its parameters' defaults and ``environment`` in the model.

    The result deploys as it is (every parameter has the value the catalog entry gave it) and
    keeps the template's comments. The catalog entry's environment variables go into the
    model's ``Environment`` map (a map cannot be a template parameter); a variable the template
    sets already (``SAGEMAKER_PROGRAM``...) takes the catalog entry's value.

    Raises
    ------
    EndpointStackError
        A parameter the template does not declare.
    """
    lines = template_text.splitlines()
    declared = _parameter_blocks(lines)
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise EndpointStackError(
            f"the endpoint template has no parameter {', '.join(unknown)} (it takes: {', '.join(sorted(declared))})"
        )
    # Edit from the bottom up, so that earlier line numbers stay valid.
    edits: list[tuple[int, int, list[str]]] = []  # (start, end exclusive, replacement)
    if environment:
        edits.append(_environment_edit(lines, environment))
    for name, value in parameters.items():
        block = declared[name]
        default = f"    Default: {_yaml_scalar(value, numeric=block.numeric)}"
        if block.default_line is not None:
            edits.append((block.default_line, block.default_line + 1, [default]))
        else:
            edits.append((block.type_line + 1, block.type_line + 1, [default]))
    for start, end, replacement in sorted(edits, key=lambda edit: edit[0], reverse=True):
        lines[start:end] = replacement
    return "\n".join(lines) + "\n"


@dataclass
class _ParameterBlock:
    type_line: int
    default_line: int | None
    numeric: bool


def _parameter_blocks(lines: list[str]) -> dict[str, _ParameterBlock]:
    """Each parameter's ``Type:`` and ``Default:`` line numbers (the template's 2/4-space layout)."""
    blocks: dict[str, _ParameterBlock] = {}
    in_parameters = False
    current: str | None = None
    for number, line in enumerate(lines):
        if line and not line.startswith((" ", "#")):
            in_parameters = line.rstrip() == "Parameters:"
            current = None
            continue
        if not in_parameters:
            continue
        name = re.match(r"^  ([A-Za-z0-9]+):\s*$", line)
        if name:
            current = name.group(1)
            blocks[current] = _ParameterBlock(type_line=-1, default_line=None, numeric=False)
            continue
        attribute = re.match(r"^    (Type|Default):\s*(.*)$", line)
        if attribute and current is not None:
            if attribute.group(1) == "Type":
                blocks[current].type_line = number
                blocks[current].numeric = attribute.group(2).strip() == "Number"
            else:
                blocks[current].default_line = number
    return {name: block for name, block in blocks.items() if block.type_line >= 0}


def _environment_edit(lines: list[str], environment: Mapping[str, str]) -> tuple[int, int, list[str]]:
    """Replace the model's ``Environment:`` map by the template's entries merged with ``environment``."""
    starts = [number for number, line in enumerate(lines) if line.strip() == "Environment:"]
    if len(starts) != 1:
        raise EndpointStackError("the endpoint template must have exactly one Environment map (the model's)")
    start = starts[0]
    indent = len(lines[start]) - len(lines[start].lstrip()) + 2
    end = start + 1
    kept: list[str] = []
    while end < len(lines) and lines[end].strip() and len(lines[end]) - len(lines[end].lstrip()) >= indent:
        entry = re.match(r"^\s*([A-Za-z_][A-Za-z0-9_]*):", lines[end])
        if not (entry and entry.group(1) in environment):
            kept.append(lines[end])
        end += 1
    added = [f"{' ' * indent}{key}: {json.dumps(value)}" for key, value in environment.items()]
    return start + 1, end, kept + added


def _yaml_scalar(value: str, *, numeric: bool) -> str:
    if numeric and re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", value):
        return value
    return json.dumps(value)  # a JSON string is a YAML string, whatever it holds

"""Serving a catalog's models: one SageMaker model, endpoint configuration and endpoint each.

``services apply`` against the local runtime calls :func:`host_models` before it registers
anything: every model service that names ``model.model_data`` gets a new SageMaker model and
endpoint configuration, and its endpoint is created or updated to them. The calls are the
SageMaker API's own (the local runtime answers them), the roll-outs run side by side, and a
model whose ``inference.py`` does not import or whose ``model_fn`` fails is reported here, naming
the file and the exception, before the catalog is written.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from .domain.errors import ModelHostingError
from .domain.models import Service
from .framework_images import UnknownImageError, framework_image_uri
from .model_package import is_s3_uri

__all__ = ["LOCAL_EXECUTION_ROLE", "container_definition", "host_models"]

#: The role the local runtime records for its models (it assumes none).
LOCAL_EXECUTION_ROLE = "arn:aws:iam::123456789012:role/ensemble-gateway-local-sagemaker"
#: The image of a custom model that names none, on the local runtime (the toolkit's bare defaults).
_LOCAL_CUSTOM_IMAGE = "local/ensemble-gateway-custom-inference:latest"
_DEFAULT_WORKERS = 2


class EndpointManager(Protocol):
    """The SageMaker control-plane calls hosting needs (``adapters.sagemaker_endpoints``)."""

    def current_config(self, endpoint: str) -> tuple[str, str, str] | None: ...

    def delete_endpoint(self, endpoint: str) -> None: ...

    def create_model(self, name: str, container: dict[str, Any], role_arn: str) -> None: ...

    def create_endpoint_config(
        self, name: str, model_name: str, variant: dict[str, Any], async_config: dict[str, Any] | None
    ) -> None: ...

    def roll_out(self, endpoint: str, config_name: str, *, exists: bool) -> None: ...

    def wait(self, endpoint: str, config_name: str, timeout_seconds: float) -> str | None: ...

    def delete(self, config_name: str, model_name: str) -> None: ...


def container_definition(service: Service, region: str) -> dict[str, Any]:
    """The ``PrimaryContainer`` of ``service``'s SageMaker model (image, model data, environment).

    A local directory becomes a ``file://`` ``ModelDataSource`` (uncompressed), a local
    ``model.tar.gz`` a ``file://`` ``ModelDataUrl``: the local runtime serves both from where
    they are. ``SAGEMAKER_PROGRAM`` names the entry point, as the framework containers read it.
    """
    model = service.model
    assert model is not None and model.model_data is not None
    if model.image:
        image = model.image
    else:
        try:
            image = framework_image_uri(model.framework, region, model.framework_version)
        except UnknownImageError:
            if model.framework != "custom":
                raise
            image = _LOCAL_CUSTOM_IMAGE
    environment = {
        **model.environment,
        "SAGEMAKER_PROGRAM": model.entry_point,
        "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
    }
    container: dict[str, Any] = {"Image": image, "Environment": environment}
    data = model.model_data
    if is_s3_uri(data):
        if data.endswith((".tar.gz", ".tgz")):
            container["ModelDataUrl"] = data
        else:
            container["ModelDataSource"] = {
                "S3DataSource": {"S3Uri": data.rstrip("/") + "/", "S3DataType": "S3Prefix", "CompressionType": "None"}
            }
    elif Path(data).is_dir():
        container["ModelDataSource"] = {
            "S3DataSource": {"S3Uri": Path(data).as_uri() + "/", "S3DataType": "S3Prefix", "CompressionType": "None"}
        }
    else:
        container["ModelDataUrl"] = Path(data).as_uri()
    return container


@dataclass
class _RollOut:
    service: Service
    endpoint: str
    config_name: str
    model_name: str
    previous: tuple[str, str] | None


def _resource_name(endpoint: str) -> str:
    # SageMaker names: at most 63 characters, letters, digits and '-'; one per apply.
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    return f"{endpoint[:42]}-{stamp}-{secrets.token_hex(3)}"


def host_models(
    services: list[Service],
    endpoints: EndpointManager,
    *,
    stack_outputs: Mapping[str, str],
    region: str,
    role_arn: str = LOCAL_EXECUTION_ROLE,
    timeout_seconds: float = 600.0,
) -> list[str]:
    """Create or update the endpoint of every model service that names ``model.model_data``.

    Returns the endpoints now serving the new models.

    Raises
    ------
    ModelHostingError
        Naming each service whose model failed to load and why (the others were rolled out; a
        failed update leaves the endpoint serving its previous model).
    """
    bucket = stack_outputs["BucketName"]
    roll_outs: list[_RollOut] = []
    for service in services:
        model = service.model
        if model is None or model.model_data is None or not service.active:
            continue
        name = _resource_name(model.endpoint_name)
        try:
            container = container_definition(service, region)
        except UnknownImageError as error:
            raise ModelHostingError(f"service '{service.name}': {error}") from None
        endpoints.create_model(name, container, role_arn)
        async_config = None
        if model.invocation == "async":
            async_config = {
                "ClientConfig": {"MaxConcurrentInvocationsPerInstance": _DEFAULT_WORKERS},
                "OutputConfig": {
                    "S3OutputPath": f"s3://{bucket}/outputs",
                    "S3FailurePath": f"s3://{bucket}/failures",
                    "NotificationConfig": {
                        "SuccessTopic": stack_outputs["SuccessTopicArn"],
                        "ErrorTopic": stack_outputs["ErrorTopicArn"],
                    },
                },
            }
        endpoints.create_endpoint_config(
            name, name, {"InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}, async_config
        )
        current = endpoints.current_config(model.endpoint_name)
        previous = (current[1], current[2]) if current is not None else None
        if current is not None and current[0] == "Failed":
            # A failed endpoint cannot be updated, only deleted and created again (as on AWS).
            endpoints.delete_endpoint(model.endpoint_name)
            endpoints.delete(*current[1:])
            current = previous = None
        endpoints.roll_out(model.endpoint_name, name, exists=current is not None)
        roll_outs.append(_RollOut(service, model.endpoint_name, name, name, previous))
    failures = []
    hosted = []
    for roll_out in roll_outs:
        reason = endpoints.wait(roll_out.endpoint, roll_out.config_name, timeout_seconds)
        if reason is None:
            hosted.append(roll_out.endpoint)
            if roll_out.previous is not None:
                endpoints.delete(*roll_out.previous)
        else:
            failures.append(f"service '{roll_out.service.name}': {reason}")
            endpoints.delete(roll_out.config_name, roll_out.model_name)
    if failures:
        raise ModelHostingError("; ".join(failures))
    return hosted

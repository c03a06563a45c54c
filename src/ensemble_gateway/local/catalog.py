"""Registering the example catalog in the local runtime and hosting its models as endpoints."""

from __future__ import annotations

from pathlib import Path

from ..admin import build_registrar, load_services
from ..domain.models import Service
from ..domain.registration import Registrar
from .runtime import LocalRuntime


def host_endpoints(runtime: LocalRuntime, services: list[Service], models_dir: Path) -> list[str]:
    """Serve each model service whose endpoint has a model directory under ``models_dir``."""
    from .sagemaker_runtime import LocalEndpoint

    assert runtime.stack is not None and runtime.sagemaker is not None
    bucket = runtime.stack.outputs["BucketName"]
    hosted = []
    for service in services:
        if service.model is None:
            continue
        model_dir = models_dir / service.model.endpoint_name
        if not (model_dir / "code" / "inference.py").exists():
            continue
        runtime.sagemaker.add_endpoint(
            LocalEndpoint(
                name=service.model.endpoint_name,
                model_dir=model_dir,
                mode=service.model.invocation,
                output_path=f"s3://{bucket}/outputs",
                failure_path=f"s3://{bucket}/failures",
                success_topic_arn=runtime.stack.outputs["SuccessTopicArn"],
                error_topic_arn=runtime.stack.outputs["ErrorTopicArn"],
                default_timeout_seconds=service.model.invocation_timeout_seconds,
            )
        )
        hosted.append(service.model.endpoint_name)
    return hosted


def local_registrar(runtime: LocalRuntime) -> Registrar:
    """The registrar of the runtime's deployed stack."""
    assert runtime.stack is not None
    return build_registrar(
        stack_outputs=runtime.stack.outputs,
        name_prefix=runtime.stack.stack_name,
        root=runtime.root,
        client_factory=runtime.client,
    )


def apply_catalog(runtime: LocalRuntime, path: Path, models_dir: Path | None = None) -> list[Service]:
    """Validate and register a catalog file (state machines included), then host its models."""
    services = local_registrar(runtime).apply(load_services(path))
    if runtime.sagemaker is not None:
        host_endpoints(runtime, services, models_dir or runtime.root / "examples" / "models")
    return services

"""Serving a catalog's models: one endpoint stack per model, from ``templates/model-endpoint.yaml``.

A model service that names ``model.model_data`` is packaged as ``model.tar.gz`` (a directory is
packed, an archive or an ``s3://`` URI is taken as it is), uploaded to the data bucket under
``models/<service>/<version>/<digest>/``, and deployed as the endpoint stack rendered for it:
the SageMaker model, its execution role, the endpoint configuration and the endpoint (plus
autoscaling for async endpoints). ``models deploy`` does this for one service on AWS or on the
local runtime; ``services apply`` against the local runtime does it for every model of a
catalog file (:func:`host_models`) before it registers anything, so a model whose
``inference.py`` does not import or whose ``model_fn`` fails is reported, naming the file and the
exception, and the previous model goes on serving (the stack update rolls back).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .domain.errors import GatewayError, ModelHostingError
from .domain.models import Service
from .endpoint_stack import (
    EndpointStackError,
    EndpointStacks,
    GatewayWiring,
    StackEvent,
    endpoint_parameters,
    endpoint_stack_name,
    endpoint_template_path,
    model_data_key,
    render_endpoint_template,
)
from .model_package import is_s3_uri, package_model

__all__ = [
    "ModelArtifacts",
    "PreparedEndpoint",
    "gateway_wiring",
    "host_models",
    "name_source_files",
    "prepare_endpoint",
]

#: Where a SageMaker container finds the model (the local runtime names it so too).
CONTAINER_MODEL_DIR = "/opt/ml/model/"


class ModelArtifacts(Protocol):
    """Model archives in the data bucket (``adapters.model_artifacts.ModelArtifactStore``)."""

    def upload(self, archive: Path, bucket: str, key: str) -> str: ...

    def default_kms_key(self, bucket: str) -> str | None: ...


def gateway_wiring(
    stack_name: str, region: str, outputs: Mapping[str, str], artifacts: ModelArtifacts
) -> GatewayWiring:
    """The gateway stack's wiring for endpoint stacks; its data key is the bucket's default key.

    The key is read from a ``DataKeyArn`` output when the stack has one, else from the bucket's
    default encryption (which the gateway template sets to its data key).

    Raises
    ------
    EndpointStackError
        An output is missing, or the bucket names no KMS key ARN.
    """
    key = outputs.get("DataKeyArn") or artifacts.default_kms_key(outputs.get("BucketName", ""))
    if not key or not key.startswith("arn:"):
        raise EndpointStackError(
            f"the data bucket of {stack_name} names no KMS key ARN in its default encryption ({key or 'none'}): "
            "give --parameter DataKeyArn=<the gateway's data key ARN>"
        )
    return GatewayWiring.from_outputs(stack_name, region, outputs, key)


@dataclass(frozen=True)
class PreparedEndpoint:
    """A model service's endpoint stack, ready to deploy: its name, parameters and rendered template."""

    service: Service
    stack_name: str
    parameters: dict[str, str]
    template_body: str

    @property
    def model_data_url(self) -> str:
        return self.parameters["ModelDataUrl"]


def prepare_endpoint(
    service: Service,
    wiring: GatewayWiring,
    workdir: Path,
    *,
    artifacts: ModelArtifacts | None,
    local: bool,
    overrides: dict[str, str] | None = None,
    template_text: str | None = None,
) -> PreparedEndpoint:
    """Package ``service``'s model, upload it (unless ``artifacts`` is None) and render its endpoint stack.

    Parameters
    ----------
    workdir
        Where a directory's ``model.tar.gz`` is written.
    artifacts
        Uploads the archive; None computes where it would go without uploading (``models render``).
    local
        The stack is for the local runtime (see :func:`endpoint_stack.endpoint_parameters`).

    Raises
    ------
    EndpointStackError
        The service names no model data, or no image is known for it.
    CatalogValidationError
        The model data is neither a directory nor a ``model.tar.gz``.
    """
    model = service.model
    if model is None or model.model_data is None:
        raise EndpointStackError(
            f"service '{service.name}' names no model.model_data: there is no model to deploy "
            "(its endpoint is expected to exist already)"
        )
    if is_s3_uri(model.model_data):
        model_data_url = model.model_data
    else:
        packaged = package_model(Path(model.model_data), workdir)
        key = model_data_key(service, packaged.digest)
        model_data_url = (
            artifacts.upload(packaged.archive, wiring.bucket, key)
            if artifacts is not None
            else f"s3://{wiring.bucket}/{key}"
        )
    parameters = endpoint_parameters(service, wiring, model_data_url, local=local, overrides=overrides)
    text = template_text if template_text is not None else endpoint_template_path().read_text(encoding="utf-8")
    return PreparedEndpoint(
        service=service,
        stack_name=endpoint_stack_name(wiring.stack_name, service.name),
        parameters=parameters,
        template_body=render_endpoint_template(text, parameters, model.environment),
    )


def name_source_files(reason: str, service: Service) -> str:
    """``reason`` naming the user's files: a container's ``/opt/ml/model/`` is the model directory it came from."""
    source = service.model.model_data if service.model is not None else None
    if source and not is_s3_uri(source) and Path(source).is_dir():
        return reason.replace(CONTAINER_MODEL_DIR, source.rstrip("/") + "/")
    return reason


def host_models(
    services: list[Service],
    *,
    stacks: EndpointStacks,
    artifacts: ModelArtifacts,
    wiring: GatewayWiring,
    local: bool = True,
    max_parallel: int = 8,
    on_event: Callable[[StackEvent], None] | None = None,
) -> list[str]:
    """Deploy the endpoint stack of every active model service that names ``model.model_data``.

    The stacks are deployed side by side; each is created, or updated when it exists (a new
    model replaces the serving one only once it has loaded). Returns the endpoints now serving
    the new models.

    Raises
    ------
    ModelHostingError
        Naming each service whose model failed and why (the endpoint's ``FailureReason``: the
        file and the exception). The other services were deployed; a failed service's stack
        rolled back, so its previous model, if any, goes on serving.
    """
    chosen = [s for s in services if s.model is not None and s.model.model_data is not None and s.active]
    if not chosen:
        return []
    template_text = endpoint_template_path().read_text(encoding="utf-8")

    def deploy(service: Service, workdir: Path) -> str:
        prepared = prepare_endpoint(
            service, wiring, workdir, artifacts=artifacts, local=local, template_text=template_text
        )
        outputs = stacks.deploy(prepared.stack_name, prepared.template_body, prepared.parameters, on_event)
        return outputs.get("EndpointName") or prepared.parameters["EndpointName"]

    hosted: list[str] = []
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ensemble-gateway-package-") as scratch:
        with ThreadPoolExecutor(max_workers=min(max_parallel, len(chosen)), thread_name_prefix="host-model") as pool:
            futures = [(service, pool.submit(deploy, service, Path(scratch) / service.name)) for service in chosen]
        for service, future in futures:
            try:
                hosted.append(future.result())
            except EndpointStackError as error:
                failures.append(_about(service, name_source_files(error.reason, service)))
            except GatewayError as error:
                failures.append(_about(service, error.message))
    if failures:
        raise ModelHostingError("; ".join(failures))
    return hosted


def _about(service: Service, reason: str) -> str:
    prefix = f"service '{service.name}'"
    return reason if reason.startswith(prefix) else f"{prefix}: {reason}"

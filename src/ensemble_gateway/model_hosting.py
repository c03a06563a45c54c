"""Serving a catalog's models: one endpoint stack per model version, from ``templates/model-endpoint.yaml``.

A model service that names ``model.model_data`` is packaged as ``model.tar.gz`` (a directory is
packed, an archive or an ``s3://`` URI is taken as it is), uploaded to the data bucket under
``models/<service>/<version>/<digest>/``, and deployed as the endpoint stack rendered for it:
the SageMaker model, its execution role, the endpoint configuration and the endpoint (plus
autoscaling for async endpoints). ``models deploy`` does this for one service on AWS or on the
local runtime; ``services apply`` against the local runtime does it for every model of a
catalog file (:func:`host_models`) before it registers anything, so a model whose
``inference.py`` does not import or whose ``model_fn`` fails is reported, naming the file and the
exception, and the previous model goes on serving (the stack update rolls back).

Every version of a service that names ``model_data`` has its own endpoint and its own stack
(:func:`version_stack_name`): the versions of a canary or a shadow run side by side. Nothing
here deletes the stack of a version that was retired or rejected: ``models delete SERVICE
--version V`` does, when its endpoint is no longer wanted.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .domain.errors import GatewayError, ModelHostingError
from .domain.models import Service
from .domain.rollout import version_order
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
    "hosted_versions",
    "name_source_files",
    "prepare_endpoint",
    "version_stack_name",
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


#: A stack's outputs by its name, None when there is no such stack (``EndpointStacks.outputs``).
StackOutputs = Callable[[str], Mapping[str, str] | None]


def version_stack_name(
    gateway_stack_name: str,
    service: Service,
    *,
    versions: Iterable[str],
    outputs: StackOutputs | None = None,
) -> str:
    """The endpoint stack of ``service.version`` (``service`` as that version serves it).

    The stack ``{stack}-model-{service}`` is the one a service had before it had versions, so it
    stays with the version it serves; the others get ``{stack}-model-{service}-v{slug}``:

    1. the version's own stack exists: that one;
    2. else ``{stack}-model-{service}`` exists: that one if its endpoint is this version's, else
       the version's own;
    3. else (nothing deployed yet): ``{stack}-model-{service}`` for the first of ``versions``
       (the service's versions known to the caller, in version order), its own for the others.

    Parameters
    ----------
    versions
        Every version of the service the caller knows of (its catalog entries and the registered
        service's versions); ``service.version`` need not be among them.
    outputs
        Looks a stack up (None: nothing is looked up, only rule 3 applies).

    Raises
    ------
    EndpointStackError
        The version's own stack serves another endpoint (a service named like that stack, or
        the version's endpoint renamed): deploying would replace that endpoint.
    """
    assert service.model is not None
    endpoint = service.model.endpoint_name
    shared = endpoint_stack_name(gateway_stack_name, service.name)
    own = endpoint_stack_name(gateway_stack_name, service.name, service.version)
    if outputs is not None:
        mine = outputs(own)
        if mine is not None:
            served = mine.get("EndpointName")
            if served and served != endpoint:
                raise EndpointStackError(
                    f"service '{service.name}' version {service.version}: stack {own} serves endpoint "
                    f"'{served}', not '{endpoint}': delete it first (`ensemble-gateway models delete "
                    f"{service.name} --version {service.version}`) or keep the version's endpoint_name"
                )
            return own
        theirs = outputs(shared)
        served = theirs.get("EndpointName") if theirs is not None else None
        if served:
            # A stack that serves nothing (its creation failed) is anyone's: rule 3 decides.
            return shared if served == endpoint else own
    first = min({*versions, service.version}, key=version_order)
    return shared if service.version == first else own


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
    stack_name: str | None = None,
) -> PreparedEndpoint:
    """Package ``service``'s model, upload it (unless ``artifacts`` is None) and render its endpoint stack.

    Parameters
    ----------
    service
        A model service as one version serves it (``Service.at_version``): that version's model.
    workdir
        Where a directory's ``model.tar.gz`` is written.
    artifacts
        Uploads the archive; None computes where it would go without uploading (``models render``).
    local
        The stack is for the local runtime (see :func:`endpoint_stack.endpoint_parameters`).
    stack_name
        The stack to deploy (see :func:`version_stack_name`); None: ``{stack}-model-{service}``.

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
        stack_name=stack_name or endpoint_stack_name(wiring.stack_name, service.name),
        parameters=parameters,
        template_body=render_endpoint_template(text, parameters, model.environment),
    )


def name_source_files(reason: str, service: Service) -> str:
    """``reason`` naming the user's files: a container's ``/opt/ml/model/`` is the model directory it came from."""
    source = service.model.model_data if service.model is not None else None
    if source and not is_s3_uri(source) and Path(source).is_dir():
        return reason.replace(CONTAINER_MODEL_DIR, source.rstrip("/") + "/")
    return reason


def hosted_versions(services: Iterable[Service]) -> list[Service]:
    """Every version to host: of each active model service, each version whose model names
    ``model_data``, as that version serves it (``Service.at_version``), in the services' order.

    A catalog entry is one version; a registered service has all of its own. A version that
    appears twice is hosted once, as it appears last.
    """
    chosen: dict[tuple[str, str], Service] = {}
    for service in services:
        if not service.active or service.kind != "model":
            continue
        for version, record in service.versions().items():
            target = service.at_version(version)
            if record.model is not None and record.model.model_data is not None and target is not None:
                chosen.pop((service.name, version), None)
                chosen[(service.name, version)] = target
    return list(chosen.values())


def host_models(
    services: list[Service],
    *,
    stacks: EndpointStacks,
    artifacts: ModelArtifacts,
    wiring: GatewayWiring,
    local: bool = True,
    max_parallel: int = 8,
    on_event: Callable[[StackEvent], None] | None = None,
    registered: Callable[[str], Service | None] | None = None,
) -> list[str]:
    """Deploy the endpoint stack of every version of every active model service that names
    ``model.model_data`` (see :func:`hosted_versions`).

    Each version has its own stack and endpoint (:func:`version_stack_name`): a new version is
    deployed beside the ones serving, which go on serving. The stacks are deployed side by side;
    each is created, or updated when it exists (a new model replaces the serving one only once it
    has loaded). Returns the endpoints now serving the new models.

    Parameters
    ----------
    registered
        The catalog's entry of a service (``catalog.get``): its versions count when deciding which
        version keeps the stack ``{stack}-model-{service}``. None: only ``services``' versions.

    Raises
    ------
    ModelHostingError
        Naming each service whose model failed and why (the endpoint's ``FailureReason``: the
        file and the exception). The other services were deployed; a failed service's stack
        rolled back, so its previous model, if any, goes on serving.
    """
    chosen = hosted_versions(services)
    if not chosen:
        return []
    template_text = endpoint_template_path().read_text(encoding="utf-8")
    known: dict[str, set[str]] = {}
    for service in services:
        known.setdefault(service.name, set()).update(service.versions())
    if registered is not None:
        for name, versions in known.items():
            stored = registered(name)
            if stored is not None:
                versions.update(stored.versions())
    lookup: StackOutputs | None = getattr(stacks, "outputs", None)

    hosted: list[str] = []
    failures: list[str] = []
    # Named before any is deployed: which version keeps the service's first stack depends on the
    # stacks as they are, not as the others' deployments leave them.
    named: list[tuple[Service, str]] = []
    for service in chosen:
        try:
            named.append(
                (service, version_stack_name(wiring.stack_name, service, versions=known[service.name], outputs=lookup))
            )
        except EndpointStackError as error:
            failures.append(_about(service, error.message))
    claimed: dict[str, Service] = {}
    for service, stack_name in named:
        other = claimed.setdefault(stack_name, service)
        if other is not service:
            failures.append(
                _about(service, f"version {service.version} and version {other.version} would share stack {stack_name}")
            )
    if failures:
        raise ModelHostingError("; ".join(failures))

    def deploy(service: Service, stack_name: str, workdir: Path) -> str:
        prepared = prepare_endpoint(
            service,
            wiring,
            workdir,
            artifacts=artifacts,
            local=local,
            template_text=template_text,
            stack_name=stack_name,
        )
        outputs = stacks.deploy(prepared.stack_name, prepared.template_body, prepared.parameters, on_event)
        return outputs.get("EndpointName") or prepared.parameters["EndpointName"]

    with tempfile.TemporaryDirectory(prefix="ensemble-gateway-package-") as scratch:
        with ThreadPoolExecutor(max_workers=min(max_parallel, len(named)), thread_name_prefix="host-model") as pool:
            futures = [
                (service, pool.submit(deploy, service, stack_name, Path(scratch) / stack_name))
                for service, stack_name in named
            ]
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

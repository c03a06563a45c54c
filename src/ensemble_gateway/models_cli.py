"""``ensemble-gateway models render|deploy|delete``: a catalog model version's endpoint stack.

- ``render SERVICE --catalog FILE [--version V]`` prints ``templates/model-endpoint.yaml`` with
  its parameters filled from the catalog entry and the gateway stack's outputs (the model data's
  S3 URI is where ``deploy`` would upload it; nothing is uploaded).
- ``deploy SERVICE --catalog FILE [--version V]`` packages the model data as ``model.tar.gz``,
  uploads it to the data bucket, creates or updates the version's endpoint stack (one line per
  stack event while it waits), then registers the catalog entry (a new version is registered
  beside the others, pending approval unless its entry says ``"approval": "none"``).
- ``delete SERVICE [--version V]`` deletes that stack.

Each version has its own stack and endpoint: ``<gateway stack>-model-<service>`` for the version
that stack serves (the service's first), ``<gateway stack>-model-<service>-v<version>`` for the
others (see ``model_hosting.version_stack_name``). Without ``--version``: the primary version,
the one with the most traffic (of the file's entries for ``render`` and ``deploy``, the only one
when the file has one; of the registered service for ``delete``).

Against a deployed gateway (``--stack-name``) the stack goes through CloudFormation; against the
running local runtime, the local deployer deploys the same rendered template.
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the CLI builds its parser on every run: nothing heavy is imported for it
    from .endpoint_stack import EndpointStacks, GatewayWiring, StackEvent

__all__ = ["add_model_commands"]

_LOCAL_REGION = "us-east-1"


@dataclass(frozen=True)
class _Cli:
    """What the CLI module gives these commands: its target lookup and the error it prints.

    Given rather than imported: run as ``python -m ensemble_gateway.cli``, the CLI is the module
    ``__main__``, and an import would load a second copy whose ``CliError`` it does not catch.
    """

    aws_target: Callable[[argparse.Namespace], tuple[dict[str, Any], Any, str]]
    error: type[Exception]


def add_model_commands(
    sub: Any,
    common: argparse.ArgumentParser,
    *,
    aws_target: Callable[[argparse.Namespace], tuple[dict[str, Any], Any, str]],
    cli_error: type[Exception],
) -> None:
    """Add ``models render|deploy|delete`` to the CLI's subcommands.

    Parameters
    ----------
    sub
        The CLI's subparsers.
    common
        The parent parser of the target options (``--stack-name``, ``--region``...).
    aws_target
        The CLI's ``(stack outputs, client factory, stack name)`` of the local runtime or ``--stack-name``.
    cli_error
        The error the CLI prints without a traceback.
    """
    cli = _Cli(aws_target, cli_error)
    models = sub.add_parser("models", help="a catalog model's endpoint stack (SageMaker on AWS or locally)")
    actions = models.add_subparsers(dest="action", required=True)

    def with_version(parser: argparse.ArgumentParser, default: str) -> None:
        parser.add_argument(
            "--version", metavar="V", help=f"the version whose endpoint stack this is (default: {default})"
        )

    def with_catalog(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("service")
        parser.add_argument("--catalog", required=True, metavar="FILE", help="the catalog file naming the service")
        with_version(parser, "the primary version of the file's entries, the only one when it has one")
        parser.add_argument(
            "--parameter",
            action="append",
            metavar="KEY=VALUE",
            help="a template parameter (InstanceType, MaxInstanceCount, EndpointType=serverless...); repeatable",
        )

    render = actions.add_parser(
        "render", parents=[common], help="print the endpoint stack's template, parameters filled in"
    )
    with_catalog(render)
    render.set_defaults(func=functools.partial(cmd_models_render, cli=cli))

    deploy = actions.add_parser(
        "deploy", parents=[common], help="package and upload the model, deploy its endpoint stack, register it"
    )
    with_catalog(deploy)
    deploy.add_argument("--root", default=".", help="where ensemble definition paths are relative to")
    deploy.set_defaults(func=functools.partial(cmd_models_deploy, cli=cli))

    delete = actions.add_parser("delete", parents=[common], help="delete a model's endpoint stack")
    delete.add_argument("service")
    with_version(delete, "the registered service's primary version")
    delete.set_defaults(func=functools.partial(cmd_models_delete, cli=cli))


# -- commands --------------------------------------------------------------------------------
def _aws_errors(command: Callable[[argparse.Namespace, _Cli], int]) -> Callable[..., int]:
    """AWS's own error messages for the user (AccessDenied names the missing permission), no traceback."""

    @functools.wraps(command)
    def run(args: argparse.Namespace, cli: _Cli) -> int:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            return command(args, cli)
        except ClientError as error:
            raise cli.error(_client_error_message(error)) from None
        except NoCredentialsError:
            raise cli.error(
                "no AWS credentials for --stack-name (configure a profile or AWS_* variables), "
                "or leave --stack-name out to use the running local runtime"
            ) from None
        except BotoCoreError as error:
            raise cli.error(f"AWS: {error}") from None

    return run


@_aws_errors
def cmd_models_render(args: argparse.Namespace, cli: _Cli) -> int:
    from .adapters.model_artifacts import ModelArtifactStore
    from .model_hosting import prepare_endpoint

    target = _target(args, cli)
    service, versions = _catalog_service(Path(args.catalog), args.service, args.version, cli)
    overrides = _parameters(args.parameter, cli)
    wiring = target.wiring(ModelArtifactStore(target.factory("s3")), overrides)
    stack_name = _stack_name(target, service, versions, _registered(target, service.name))
    with tempfile.TemporaryDirectory(prefix="ensemble-gateway-render-") as workdir:
        prepared = prepare_endpoint(
            service,
            wiring,
            Path(workdir),
            artifacts=None,
            local=target.local,
            overrides=overrides,
            stack_name=stack_name,
        )
    sys.stdout.write(prepared.template_body)
    return 0


@_aws_errors
def cmd_models_deploy(args: argparse.Namespace, cli: _Cli) -> int:
    from .adapters.model_artifacts import ModelArtifactStore
    from .admin import build_registrar
    from .endpoint_stack import EndpointStackError
    from .model_hosting import name_source_files, prepare_endpoint

    target = _target(args, cli)
    service, versions = _catalog_service(Path(args.catalog), args.service, args.version, cli)
    assert service.model is not None
    overrides = _parameters(args.parameter, cli)
    artifacts = ModelArtifactStore(target.factory("s3"))
    wiring = target.wiring(artifacts, overrides)
    registrar = build_registrar(
        stack_outputs=target.outputs, name_prefix=target.stack_name, root=Path(args.root), client_factory=target.factory
    )
    registrar.plan([service])  # refused before anything is uploaded or deployed, as by services apply
    stack_name = _stack_name(target, service, versions, registrar.catalog.get(service.name))
    with tempfile.TemporaryDirectory(prefix="ensemble-gateway-package-") as workdir:
        _say(f"packaging {service.model.model_data}")
        prepared = prepare_endpoint(
            service,
            wiring,
            Path(workdir),
            artifacts=artifacts,
            local=target.local,
            overrides=overrides,
            stack_name=stack_name,
        )
    _say(f"model data {prepared.model_data_url}")
    _say(f"deploying stack {prepared.stack_name} ({'local runtime' if target.local else 'CloudFormation'})")
    try:
        outputs = target.stacks().deploy(prepared.stack_name, prepared.template_body, prepared.parameters, _progress)
    except EndpointStackError as error:
        raise EndpointStackError(name_source_files(error.message, service)) from None
    endpoint = outputs.get("EndpointName", service.model.endpoint_name)
    # The catalog names what the endpoint serves: the uploaded archive.
    registered_model = service.model.model_copy(update={"model_data": prepared.model_data_url})
    registered = service.model_copy(update={"model": registered_model})
    registrar.commit(registrar.plan([registered]))
    print(f"deployed model {service.name} v{service.version} -> endpoint {endpoint} (stack {prepared.stack_name})")
    print(f"registered model {service.name} v{service.version}")
    return 0


@_aws_errors
def cmd_models_delete(args: argparse.Namespace, cli: _Cli) -> int:
    target = _target(args, cli)
    stacks = target.stacks()
    registered = _registered(target, args.service)
    stack_name, version = _stack_to_delete(target, stacks, args.service, args.version, registered)
    stacks.delete(stack_name, _progress)
    print(f"deleted stack {stack_name}")
    if registered is not None and version is not None and len(registered.versions()) > 1:
        print(
            f"the catalog still lists version {version} of {args.service}, whose endpoint is gone: "
            "it must get no traffic and shadow nothing (`ensemble-gateway services history` shows its status)"
        )
    else:
        print(
            f"the catalog entry of {args.service} (if any) still names its endpoint: "
            f"`ensemble-gateway services delete {args.service}` removes it"
        )
    return 0


# -- helpers -----------------------------------------------------------------------------------
@dataclass
class _Target:
    """The gateway the command works on: the running local runtime or a deployed stack."""

    outputs: dict[str, str]
    factory: Callable[[str], Any]
    stack_name: str
    region: str
    local: bool

    def wiring(self, artifacts: Any, overrides: dict[str, str]) -> GatewayWiring:
        from .model_hosting import gateway_wiring

        outputs = dict(self.outputs)
        if overrides.get("DataKeyArn"):
            outputs["DataKeyArn"] = overrides["DataKeyArn"]
        return gateway_wiring(self.stack_name, self.region, outputs, artifacts)

    def stacks(self) -> EndpointStacks:
        if self.local:
            from .local.stacks import LocalEndpointStacks

            return LocalEndpointStacks(self.factory, region=self.region)
        from .adapters.cloudformation import CloudFormationStacks

        return CloudFormationStacks(self.factory("cloudformation"))


def _target(args: argparse.Namespace, cli: _Cli) -> _Target:
    outputs, factory, stack_name = cli.aws_target(args)
    local = not args.stack_name
    return _Target(
        outputs={k: str(v) for k, v in outputs.items() if v is not None},
        factory=factory,
        stack_name=stack_name,
        region=_LOCAL_REGION if local else args.region,
        local=local,
    )


def _catalog_service(catalog: Path, name: str, version: str | None, cli: _Cli) -> tuple[Any, set[str]]:
    """The entry of ``name`` at ``version`` in ``catalog`` (None: the primary of its entries),
    and the versions the file holds of it.

    A file may hold several entries of one service, one per version: applied in file order over
    nothing, they make one version primary (the one with the most traffic, see
    ``domain.rollout``), which is the default.
    """
    from .admin import load_services
    from .domain.models import Service, utcnow
    from .domain.rollout import VersionError, apply_entry, version_order

    services = load_services(catalog)
    entries = [service for service in services if service.name == name]
    if not entries:
        names = ", ".join(dict.fromkeys(service.name for service in services)) or "none"
        raise cli.error(f"{catalog} has no service '{name}' (it has: {names})")
    if entries[0].kind != "model":
        raise cli.error(f"service '{name}' is an ensemble: only model services have an endpoint stack")
    by_version = {entry.version: entry for entry in entries}
    if version is None:
        merged: Service | None = None
        try:
            for each in entries:
                merged = apply_entry(merged, each, utcnow())
        except VersionError as error:
            raise cli.error(f"{catalog}: {error.message}") from None
        assert merged is not None
        version = merged.version if merged.version in by_version else entries[-1].version
    chosen = by_version.get(version)
    if chosen is None:
        held = ", ".join(sorted(by_version, key=version_order))
        raise cli.error(f"{catalog} has no version {version} of service '{name}' (it has: {held})")
    return chosen, set(by_version)


def _registered(target: _Target, name: str) -> Any:
    """The gateway's catalog entry of ``name`` (every version it has), None when it has none."""
    from .adapters.dynamodb import DynamoServiceCatalog

    table = target.outputs.get("ServicesTableName")
    return DynamoServiceCatalog(table, target.factory("dynamodb")).get(name) if table else None


def _stack_name(target: _Target, service: Any, versions: set[str], registered: Any) -> str:
    """The endpoint stack of ``service``'s version, among the stacks the target has."""
    from .model_hosting import version_stack_name

    known = versions | set(registered.versions() if registered is not None else ())
    return version_stack_name(target.stack_name, service, versions=known, outputs=target.stacks().outputs)


def _stack_to_delete(
    target: _Target, stacks: Any, name: str, version: str | None, registered: Any
) -> tuple[str, str | None]:
    """The endpoint stack of ``name`` at ``version`` (None: the registered primary) and that version.

    A version's own stack if it has one, else the service's first stack when that serves the
    version's registered endpoint. A service the catalog does not have: its first stack (the
    name before versions), or the version's own when one is given.

    Raises
    ------
    EndpointStackError
        There is no such stack.
    """
    from .endpoint_stack import EndpointStackError, endpoint_stack_name

    shared = endpoint_stack_name(target.stack_name, name)
    if version is None and registered is None:
        return shared, None
    version = version or registered.version
    own = endpoint_stack_name(target.stack_name, name, version)
    if stacks.outputs(own) is not None:
        return own, version
    record = registered.versions().get(version) if registered is not None else None
    endpoint = record.model.endpoint_name if record is not None and record.model is not None else None
    theirs = stacks.outputs(shared)
    # A stack serving nothing (its creation failed) goes with the version that asks for it.
    if theirs is not None and endpoint is not None and theirs.get("EndpointName") in (endpoint, None):
        return shared, version
    raise EndpointStackError(f"there is no stack {shared} or {own} serving version {version} of {name}")


def _parameters(items: list[str] | None, cli: _Cli) -> dict[str, str]:
    parameters = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise cli.error(f"--parameter takes KEY=VALUE, got '{item}'")
        parameters[key] = value
    return parameters


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _progress(event: StackEvent) -> None:
    _say(event.line())


def _client_error_message(error: Any) -> str:
    details = error.response.get("Error", {})
    code, message = str(details.get("Code", "")), str(details.get("Message", "")) or str(error)
    operation = getattr(error, "operation_name", "")
    if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):
        return f"access denied ({operation}): {message}"
    return f"{operation}: {code}: {message}" if operation else f"{code}: {message}"

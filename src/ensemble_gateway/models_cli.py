"""``ensemble-gateway models render|deploy|delete``: a catalog model's endpoint stack.

- ``render SERVICE --catalog FILE`` prints ``templates/model-endpoint.yaml`` with its parameters
  filled from the catalog entry and the gateway stack's outputs (the model data's S3 URI is
  where ``deploy`` would upload it; nothing is uploaded).
- ``deploy SERVICE --catalog FILE`` packages the model data as ``model.tar.gz``, uploads it to
  the data bucket, creates or updates the stack ``<gateway stack>-model-<service>`` (one line
  per stack event while it waits), then registers the catalog entry.
- ``delete SERVICE`` deletes that stack.

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

    def with_catalog(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("service")
        parser.add_argument("--catalog", required=True, metavar="FILE", help="the catalog file naming the service")
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
    service = _catalog_service(Path(args.catalog), args.service, cli)
    overrides = _parameters(args.parameter, cli)
    wiring = target.wiring(ModelArtifactStore(target.factory("s3")), overrides)
    with tempfile.TemporaryDirectory(prefix="ensemble-gateway-render-") as workdir:
        prepared = prepare_endpoint(
            service, wiring, Path(workdir), artifacts=None, local=target.local, overrides=overrides
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
    service = _catalog_service(Path(args.catalog), args.service, cli)
    assert service.model is not None
    overrides = _parameters(args.parameter, cli)
    artifacts = ModelArtifactStore(target.factory("s3"))
    wiring = target.wiring(artifacts, overrides)
    registrar = build_registrar(
        stack_outputs=target.outputs, name_prefix=target.stack_name, root=Path(args.root), client_factory=target.factory
    )
    registrar.plan([service])  # refused before anything is uploaded or deployed, as by services apply
    with tempfile.TemporaryDirectory(prefix="ensemble-gateway-package-") as workdir:
        _say(f"packaging {service.model.model_data}")
        prepared = prepare_endpoint(
            service, wiring, Path(workdir), artifacts=artifacts, local=target.local, overrides=overrides
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
    from .endpoint_stack import endpoint_stack_name

    target = _target(args, cli)
    stack_name = endpoint_stack_name(target.stack_name, args.service)
    target.stacks().delete(stack_name, _progress)
    print(f"deleted stack {stack_name}")
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


def _catalog_service(catalog: Path, name: str, cli: _Cli) -> Any:
    from .admin import load_services

    services = load_services(catalog)
    by_name = {service.name: service for service in services}
    service = by_name.get(name)
    if service is None:
        raise cli.error(f"{catalog} has no service '{name}' (it has: {', '.join(by_name) or 'none'})")
    if service.kind != "model":
        raise cli.error(f"service '{name}' is an ensemble: only model services have an endpoint stack")
    return service


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

"""Operator actions shared by the CLI and the local runtime: clients and the service catalog."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .adapters.dynamodb import DynamoClientDirectory, DynamoServiceCatalog
from .adapters.stepfunctions import StepFunctionsMachines
from .domain.auth import hash_api_key
from .domain.errors import CatalogValidationError, GatewayError
from .domain.models import Client, Service
from .domain.registration import Registrar
from .domain.webhooks import new_webhook_secret

# The clients table's key of the item that reserves a client name (beside the client items and
# the API-key and principal alias items the directory writes).
_NAME_ALIAS = "name#"


class ClientNameTakenError(GatewayError):
    """Another client already has this name."""

    http_status = 409
    code = "ClientNameTaken"


def create_client(
    directory: DynamoClientDirectory,
    name: str,
    principal_arn: str | None = None,
    *,
    unique_name: bool = False,
) -> tuple[Client, str]:
    """Register a client; return it and its API key (shown once: only its hash is stored).

    Parameters
    ----------
    directory
        The clients table.
    name
        The client's name.
    principal_arn
        The IAM principal it calls the API as (deployed stacks).
    unique_name
        Refuse a name another client has (see :func:`reserve_client_name`).

    Raises
    ------
    ClientNameTakenError
        ``unique_name`` and the name is taken; nothing was registered.
    """
    api_key = "egk_" + secrets.token_urlsafe(32)
    client = Client(
        client_id="c_" + secrets.token_hex(8),
        name=name,
        api_key_hash=hash_api_key(api_key),
        principal_arn=principal_arn,
        webhook_secrets=[new_webhook_secret()],
    )
    if unique_name:
        reserve_client_name(directory, name, client.client_id)
    directory.put(client)
    return client, api_key


def reserve_client_name(directory: DynamoClientDirectory, name: str, client_id: str) -> None:
    """Claim ``name`` for ``client_id``, unless another client holds it.

    One conditional write (PutItem, the permission ``clients create`` already has), so two
    creations of the same name cannot both succeed; claiming a name again for the same client is
    no error. Clients registered before names were reserved hold none.

    Raises
    ------
    ClientNameTakenError
        Another client holds the name.
    """
    from botocore.exceptions import ClientError

    from .adapters.aws import error_code

    table = directory.table
    try:
        table.client.put_item(
            TableName=table.table_name,
            Item=table.serialize({"client_id": _NAME_ALIAS + name, "target": client_id}),
            ConditionExpression="attribute_not_exists(client_id) OR #target = :mine",
            ExpressionAttributeNames={"#target": "target"},
            ExpressionAttributeValues={":mine": {"S": client_id}},
        )
    except ClientError as error:
        if error_code(error) != "ConditionalCheckFailedException":
            raise
        raise ClientNameTakenError(
            f"a client named '{name}' already exists (`ensemble-gateway clients list` shows it): choose another name"
        ) from None


def list_clients(directory: DynamoClientDirectory) -> list[Client]:
    """Every client of the table, by name (a Scan: an operator's listing, not a request path)."""
    table = directory.table
    clients: list[Client] = []
    request: dict[str, Any] = {"TableName": table.table_name, "ConsistentRead": True}
    while True:
        response = table.client.scan(**request)
        for raw in response.get("Items", []):
            item = table.deserialize(raw)
            # Alias items (an API key's hash, a principal, a reserved name) point at a client (and
            # may carry a copy of its document: see DynamoClientDirectory._by_alias).
            if "document" in item and "target" not in item:
                clients.append(Client.model_validate_json(item["document"]))
        if "LastEvaluatedKey" not in response:
            return sorted(clients, key=lambda client: (client.name, client.client_id))
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def rotate_webhook_secret(directory: DynamoClientDirectory, client_id: str) -> Client:
    """Add a new secret; the previous one stays valid (webhooks carry both signatures) until retired."""
    client = directory.get(client_id)
    if client is None:
        raise LookupError(f"client '{client_id}' does not exist")
    rotated = client.model_copy(update={"webhook_secrets": [new_webhook_secret(), *client.webhook_secrets[:1]]})
    directory.put(rotated)
    return rotated


def retire_old_webhook_secrets(directory: DynamoClientDirectory, client_id: str) -> Client:
    """End a rotation: only the newest secret signs from now on."""
    client = directory.get(client_id)
    if client is None:
        raise LookupError(f"client '{client_id}' does not exist")
    retired = client.model_copy(update={"webhook_secrets": client.webhook_secrets[:1]})
    directory.put(retired)
    return retired


def load_services(path: Path) -> list[Service]:
    """Read a catalog file: one service or a list of them, JSON.

    A model's ``model_data`` that is a relative path is resolved against the catalog file's
    directory, and a local one is checked to be a model the framework container can load.

    Raises
    ------
    CatalogValidationError
        The file is unreadable or a service is malformed (naming the service and field).
    """
    from .model_package import check_model_data, resolve_model_data

    try:
        document: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CatalogValidationError(f"{path}: {error}") from None
    entries = document if isinstance(document, list) else [document]
    services = []
    for index, entry in enumerate(entries):
        name = entry.get("name", f"#{index}") if isinstance(entry, dict) else f"#{index}"
        try:
            service = Service.model_validate(entry)
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())
            raise CatalogValidationError(f"{path}: service '{name}': {problems}") from None
        if service.model is not None and service.model.model_data is not None:
            model = service.model.model_copy(
                update={"model_data": resolve_model_data(service.model.model_data, path.resolve().parent)}
            )
            try:
                check_model_data(service.name, model)
            except CatalogValidationError as error:
                raise CatalogValidationError(f"{path}: {error.message}") from None
            service = service.model_copy(update={"model": model})
        services.append(service)
    return services


def apply_catalog_file(
    path: Path,
    *,
    stack_outputs: Mapping[str, str],
    name_prefix: str,
    root: Path,
    client_factory: Any,
    region: str,
    host: bool,
) -> list[Service]:
    """``services apply``: validate ``path``, host its models (when ``host``), register it all.

    ``host`` is for the local runtime: each model service naming ``model.model_data`` is
    packaged, uploaded to the data bucket and deployed as its endpoint stack
    (``templates/model-endpoint.yaml``, the template ``models deploy`` gives CloudFormation), by
    the local deployer; each version of a service (a file may hold several) its own stack and
    endpoint, beside those of the versions registered already. Models are hosted first, so that
    a model that cannot load is reported (naming its file and the exception) before anything is
    written to the catalog, and the model that was serving goes on serving (the stack update
    rolls back).

    Raises
    ------
    CatalogValidationError
        The file or a service in it is invalid; nothing was registered.
    ModelHostingError
        A model failed to load; nothing was registered.
    """
    services = load_services(path)
    registrar = build_registrar(
        stack_outputs=stack_outputs, name_prefix=name_prefix, root=root, client_factory=client_factory
    )
    plan = registrar.plan(services)  # ensembles validated before any model is rolled out
    if host:
        # Each model that names model_data is deployed as its endpoint stack (the template AWS
        # gets), by the local deployer against the local runtime.
        from .adapters.model_artifacts import ModelArtifactStore
        from .local.stacks import LocalEndpointStacks
        from .model_hosting import gateway_wiring, host_models

        artifacts = ModelArtifactStore(client_factory("s3"))
        host_models(
            services,
            stacks=LocalEndpointStacks(client_factory, region=region),
            artifacts=artifacts,
            wiring=gateway_wiring(name_prefix, region, stack_outputs, artifacts),
            local=True,
            registered=registrar.catalog.get,
        )
    return registrar.commit(plan)


def build_registrar(
    *,
    stack_outputs: Mapping[str, str],
    name_prefix: str,
    root: Path,
    client_factory: Any = None,
) -> Registrar:
    """A registrar for a deployed stack (its ``ServicesTableName``, ``GetTransformCallFunctionArn``
    and ``EnsembleStateMachineRoleArn`` outputs), creating state machines named ``{prefix}-{service}``.
    """

    def read_definition(relative: str) -> str:
        return (root / relative).read_text(encoding="utf-8")

    return Registrar(
        catalog=DynamoServiceCatalog(
            stack_outputs["ServicesTableName"], client_factory("dynamodb") if client_factory else None
        ),
        machines=StepFunctionsMachines(client_factory("stepfunctions") if client_factory else None),
        read_definition=read_definition,
        substitutions={"GetTransformCallFunctionArn": stack_outputs["GetTransformCallFunctionArn"]},
        name_prefix=name_prefix,
        role_arn=stack_outputs["EnsembleStateMachineRoleArn"],
    )

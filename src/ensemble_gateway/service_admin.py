"""``services delete`` and ``services orphans``: what outlives a catalog entry or the gateway.

``services apply`` creates each ensemble's state machine, named ``{stack}-{service}`` and run as
the stack's ``EnsembleStateMachineRole``; ``models deploy`` creates an endpoint stack per model,
the CloudFormation stack ``{stack}-model-{service}``. Neither belongs to the gateway's stack, so
neither goes when a catalog entry is removed by hand or the gateway stack is deleted. Deleting a
service removes its entry and its state machine; the orphans report lists the state machines and
endpoint stacks that no catalog entry accounts for.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .adapters.aws import error_code
from .adapters.stepfunctions import StepFunctionsMachines
from .domain.errors import GatewayError
from .domain.models import Service
from .endpoint_stack import endpoint_stack_name

# CloudFormation stacks that still exist (ListStacks also returns deleted ones for 90 days).
LIVE_STACK_STATUSES = (
    "CREATE_IN_PROGRESS",
    "CREATE_FAILED",
    "CREATE_COMPLETE",
    "ROLLBACK_IN_PROGRESS",
    "ROLLBACK_FAILED",
    "ROLLBACK_COMPLETE",
    "DELETE_IN_PROGRESS",
    "DELETE_FAILED",
    "UPDATE_IN_PROGRESS",
    "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
    "UPDATE_COMPLETE",
    "UPDATE_FAILED",
    "UPDATE_ROLLBACK_IN_PROGRESS",
    "UPDATE_ROLLBACK_FAILED",
    "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS",
    "UPDATE_ROLLBACK_COMPLETE",
    "REVIEW_IN_PROGRESS",
    "IMPORT_IN_PROGRESS",
    "IMPORT_COMPLETE",
    "IMPORT_ROLLBACK_IN_PROGRESS",
    "IMPORT_ROLLBACK_FAILED",
    "IMPORT_ROLLBACK_COMPLETE",
)


class ServiceInUseError(GatewayError):
    """The service cannot be deleted now (the message says why and what ``--force`` would do)."""

    http_status = 409
    code = "ServiceInUse"


def state_machine_name(stack_name: str, service: str) -> str:
    """The name ``services apply`` gives an ensemble's state machine (Step Functions: 80 characters)."""
    return f"{stack_name}-{service}"[:80]


@dataclass
class DeletedService:
    name: str
    # The catalog entry existed and was removed.
    entry_removed: bool
    # The ARN of the state machine deleted, if any.
    state_machine_arn: str | None = None
    # An endpoint stack of this service that remains (delete it with CloudFormation).
    endpoint_stack: str | None = None


@dataclass
class OrphanStateMachine:
    name: str
    arn: str
    created: datetime | None = None


@dataclass
class OrphanStack:
    name: str
    service: str
    status: str
    created: datetime | None = None


@dataclass
class Orphans:
    state_machines: list[OrphanStateMachine] = field(default_factory=list)
    endpoint_stacks: list[OrphanStack] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.state_machines or self.endpoint_stacks)

    def document(self) -> dict[str, Any]:
        return {
            "state_machines": [
                {"name": m.name, "arn": m.arn, "created": m.created.isoformat() if m.created else None}
                for m in self.state_machines
            ],
            "endpoint_stacks": [
                {
                    "name": s.name,
                    "service": s.service,
                    "status": s.status,
                    "created": s.created.isoformat() if s.created else None,
                }
                for s in self.endpoint_stacks
            ],
        }


def referencing_ensembles(services: Iterable[Service], name: str) -> list[str]:
    """The ensembles (other than ``name``) with a step that names ``name`` as its target."""
    return sorted(
        service.name
        for service in services
        if service.name != name
        and service.ensemble is not None
        and any(step.service == name for step in service.ensemble.steps.values())
    )


def delete_service(
    catalog: Any,
    machines: StepFunctionsMachines,
    name: str,
    *,
    stack_name: str,
    role_arn: str,
    cloudformation: Any = None,
    force: bool = False,
) -> DeletedService:
    """``services delete NAME``: deactivate and remove the catalog entry, delete its state machine.

    Refused, unless ``force``, while an ensemble's step names the service (its predictions would
    fail at that step) or while the ensemble has running executions (deleting the state machine
    stops them at their next transition; their predictions then fail at their deadline). The entry
    is deactivated first (no new prediction starts), the state machine deleted next, the entry
    removed last: an interrupted delete is finished by running it again. With no entry, a state
    machine ``{stack}-{NAME}`` run by this stack's role (an orphan) is deleted.

    Raises
    ------
    LookupError
        Neither an entry nor a state machine of that name exists.
    ServiceInUseError
        See above.
    """
    entry: Service | None = catalog.get(name)
    if not force:
        users = referencing_ensembles(catalog.list(active_only=False), name)
        if users:
            raise ServiceInUseError(
                f"service '{name}' is a step of {', '.join(users)}: change or delete "
                f"{'that ensemble' if len(users) == 1 else 'those ensembles'} first, or give --force "
                "(their predictions would then fail at that step)"
            )
    arn = entry.ensemble.state_machine_arn if entry is not None and entry.ensemble is not None else None
    if arn is None and (entry is None or entry.kind == "ensemble"):
        # An entry removed by hand, or a delete interrupted after the entry went: the orphan.
        candidate = machines.find(state_machine_name(stack_name, name))
        if candidate is not None and machines.role_of(candidate) == role_arn:
            arn = candidate
    stack = _live_endpoint_stack(cloudformation, stack_name, name) if cloudformation is not None else None
    if entry is None and arn is None:
        remains = f" (its endpoint stack {stack} remains: `services orphans` lists it)" if stack else ""
        raise LookupError(
            f"no service '{name}' in the catalog and no state machine {state_machine_name(stack_name, name)} "
            f"of this stack{remains}"
        )
    # The other versions' state machines go with the service.
    version_arns = (
        sorted(
            {
                record.ensemble.state_machine_arn
                for record in entry.versions().values()
                if record.ensemble is not None and record.ensemble.state_machine_arn
            }
            - {arn}
        )
        if entry is not None
        else []
    )
    if not force:
        for candidate_arn in [a for a in [arn, *version_arns] if a is not None]:
            _refuse_if_running(machines, name, candidate_arn)
    if entry is not None and entry.active:
        catalog.put(entry.model_copy(update={"active": False}))
    deleted = machines.delete(arn) if arn is not None else False
    for version_arn in version_arns:
        machines.delete(version_arn)
    if entry is not None:
        catalog.delete(name)
    return DeletedService(
        name=name,
        entry_removed=entry is not None,
        state_machine_arn=arn if deleted else None,
        endpoint_stack=stack,
    )


def _refuse_if_running(machines: StepFunctionsMachines, name: str, arn: str) -> None:
    running = machines.running_executions(arn)
    if running:
        shown = ", ".join(running[:3]) + (", ..." if len(running) > 3 else "")
        raise ServiceInUseError(
            f"ensemble '{name}' has running executions ({shown}): wait for them to finish, or give "
            "--force (they stop at their next transition and their predictions fail at their deadline)"
        )


def find_orphans(
    catalog: Any,
    machines: StepFunctionsMachines,
    *,
    stack_name: str,
    role_arn: str,
    cloudformation: Any = None,
) -> Orphans:
    """``services orphans``: what no catalog entry of this stack accounts for.

    - state machines named ``{stack}-*`` that run as this stack's ensemble role (a longer stack
      name sharing the prefix has its own role) and that no entry references;
    - CloudFormation stacks ``{stack}-model-{service}`` whose service is not in the catalog
      (active or not) and names no entry's endpoint, nor the stack of any version of an entry
      (``{stack}-model-{service}-v{version}``) or its endpoint.
    """
    services = catalog.list(active_only=False)
    # Every version's state machine is referenced (its own, beside the primary's).
    referenced = {
        record.ensemble.state_machine_arn
        for s in services
        for record in s.versions().values()
        if record.ensemble is not None and record.ensemble.state_machine_arn
    }
    orphans = Orphans()
    for machine in machines.listed(f"{stack_name}-"):
        if machine.arn in referenced or machines.role_of(machine.arn) != role_arn:
            continue
        orphans.state_machines.append(OrphanStateMachine(machine.name, machine.arn, machine.created))
    if cloudformation is not None:
        prefix = endpoint_stack_name(stack_name, "")
        # Every version's endpoint and own stack count (``{service}-v{slug}``, see
        # endpoint_stack_name), retired and rejected ones too: the gateway never deletes those.
        accounted = {s.name for s in services} | {
            name
            for s in services
            for version, record in s.versions().items()
            if record.model is not None
            for name in (record.model.endpoint_name, endpoint_stack_name(stack_name, s.name, version)[len(prefix) :])
        }
        for summary in _live_stacks(cloudformation):
            stack = str(summary["StackName"])
            service = stack[len(prefix) :]
            if not stack.startswith(prefix) or not service or service in accounted:
                continue
            orphans.endpoint_stacks.append(
                OrphanStack(stack, service, str(summary["StackStatus"]), summary.get("CreationTime"))
            )
    return orphans


def _live_stacks(cloudformation: Any) -> Iterator[dict[str, Any]]:
    paginator = cloudformation.get_paginator("list_stacks")
    for page in paginator.paginate(StackStatusFilter=list(LIVE_STACK_STATUSES)):
        yield from page.get("StackSummaries", [])


def _live_endpoint_stack(cloudformation: Any, stack_name: str, service: str) -> str | None:
    name = endpoint_stack_name(stack_name, service)
    try:
        stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
    except Exception as error:
        # "Stack with id ... does not exist" is a ValidationError.
        if error_code(error) in ("ValidationError", "ValidationException"):
            return None
        raise
    return name if stacks and stacks[0].get("StackStatus") != "DELETE_COMPLETE" else None

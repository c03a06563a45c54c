"""Registering services in the catalog, ensembles validated before anything is written.

``apply`` validates every service of a batch first (services of one batch may reference each
other), then creates or updates the ensembles' state machines, then writes the catalog entries:
a bad ensemble is rejected with an error naming the step and path, and nothing is half-registered.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from .asl import analyse, completing_output_steps, final_step, prepare_definition, substitute
from .asl_generation import generate_definition
from .asl_rules import check_definition, check_gateway_rules
from .ensemble_dag import check_step_references, infer_dag
from .errors import CatalogValidationError, MappingError
from .mapping import validate_mapping
from .models import Service, VersionStatus, utcnow
from .rollout import VersionError, apply_entry

# Step Functions: a state machine name is 1-80 letters, digits, '-' and '_'.
STATE_MACHINE_NAME_LIMIT = 80

# A callback task waits for its target's own timeout plus this margin for queueing and notifying.
STEP_TIMEOUT_MARGIN_SECONDS = 60


class StateMachineRegistry(Protocol):
    def create_or_update(self, name: str, definition: str, role_arn: str) -> str:
        """Create or update a Standard state machine; return its ARN."""


@dataclass
class Registrar:
    """Validates and registers services.

    Parameters
    ----------
    catalog
        The service catalog.
    machines
        Creates the ensembles' Standard state machines.
    read_definition
        Returns the text of an ASL file named in a catalog entry.
    substitutions
        ``DefinitionSubstitutions`` for every ensemble (``GetTransformCallFunctionArn``...).
    name_prefix
        State machines are named ``{name_prefix}-{service}`` (the stack name, for IAM scoping).
    role_arn
        The role the state machines run as.
    """

    catalog: Any
    machines: StateMachineRegistry
    read_definition: Callable[[str], str]
    substitutions: Mapping[str, str]
    name_prefix: str
    role_arn: str
    clock: Callable[[], datetime] = field(default=utcnow)

    def apply(self, services: list[Service]) -> list[Service]:
        """Validate ``services`` as one batch, then register them (see :meth:`plan`)."""
        return self.commit(self.plan(services))

    def machine_name(self, existing: Service | None, entry: Service) -> str:
        """The state machine of version ``entry.version`` of an ensemble: the one it has already,
        ``{prefix}-{service}`` for a service's first version (the name before versions existed),
        ``{prefix}-{service}_v{version}`` for the others (``_`` is in no service name: no clash)."""
        if existing is not None:
            record = existing.versions().get(entry.version)
            if record is not None and record.ensemble is not None and record.ensemble.state_machine_arn:
                return record.ensemble.state_machine_arn.rsplit(":", 1)[-1]
        base = f"{self.name_prefix}-{entry.name}"
        if existing is None:
            return base[:STATE_MACHINE_NAME_LIMIT]
        slug = re.sub(r"[^A-Za-z0-9-]", "-", entry.version)
        name = f"{base}_v{slug}"
        if len(name) > STATE_MACHINE_NAME_LIMIT:
            # Truncating could make two versions' names equal: a digest keeps them apart.
            digest = hashlib.sha256(f"{entry.name}\x00{entry.version}".encode()).hexdigest()[:10]
            name = f"{base[: STATE_MACHINE_NAME_LIMIT - 13]}_v{digest}"
        return name

    def merged(self, services: list[Service]) -> list[tuple[Service | None, Service, Service]]:
        """Each entry of a batch with the service as it was before it and as it is after it.

        Entries of one service apply in file order (a file may hold several versions of one
        service); the catalog's entry is the start.

        Raises
        ------
        CatalogValidationError
            An entry cannot apply (see :func:`~.rollout.apply_entry`).
        """
        now = self.clock()
        current: dict[str, Service | None] = {}
        steps = []
        for entry in services:
            if entry.name not in current:
                current[entry.name] = self.catalog.get(entry.name)
            before = current[entry.name]
            try:
                after = apply_entry(before, entry, now)
            except VersionError as error:
                raise CatalogValidationError(error.message) from None
            current[entry.name] = after
            steps.append((before, entry, after))
        return steps

    def plan(self, services: list[Service]) -> list[tuple[Service, str | None]]:
        """Validate a batch; return each service with its ready state machine definition (ensembles).

        Nothing is written: :meth:`commit` registers the plan.

        Raises
        ------
        CatalogValidationError
            Naming the service, the step and, for mappings, the key and path.
        """
        seen: set[tuple[str, str]] = set()
        for service in services:
            if (service.name, service.version) in seen:
                raise CatalogValidationError(
                    f"service '{service.name}' version {service.version} appears twice in one batch"
                )
            seen.add((service.name, service.version))
        # The last entry of a service stands for it while validating the others.
        batch = {service.name: service for service in services}
        self.merged(services)  # version rules checked before anything is validated further or written

        def lookup(name: str) -> Service | None:
            return batch.get(name) or self.catalog.get(name)

        def members(task: str) -> list[Service]:
            # The batch wins over the catalog, deactivations included.
            known = {s.name: s for s in self.catalog.list(active_only=True)}
            known.update(batch)
            return [s for s in known.values() if s.active and task in s.tasks and s.kind == "model"]

        prepared: list[tuple[Service, str | None]] = []
        for service in services:
            definition = self.validate(service, lookup, members) if service.kind == "ensemble" else None
            prepared.append((service, definition))
        self._check_nesting(batch, lookup)
        return prepared

    def commit(self, prepared: list[tuple[Service, str | None]]) -> list[Service]:
        """Create or update the ensembles' state machines (one per version), then write the
        catalog entries: each service once, with every version the batch added or updated.

        Returns the entries as applied (each version's own ``model`` / ``ensemble``); the stored
        services are ``catalog.get`` of their names.
        """
        now = self.clock()
        current: dict[str, Service | None] = {}
        registered = []
        for service, definition in prepared:
            if service.name not in current:
                current[service.name] = self.catalog.get(service.name)
            before = current[service.name]
            if definition is not None and service.ensemble is not None:
                arn = self.machines.create_or_update(self.machine_name(before, service), definition, self.role_arn)
                service = service.model_copy(
                    update={
                        "ensemble": service.ensemble.model_copy(
                            update={"state_machine_arn": arn, "final_step": final_step(json.loads(definition))}
                        )
                    }
                )
            try:
                current[service.name] = apply_entry(before, service, now)
            except VersionError as error:  # checked by plan; the catalog changed in between
                raise CatalogValidationError(error.message) from None
            registered.append(service)
        for stored in current.values():
            if stored is not None:
                self.catalog.put(stored)
        return registered

    def validate(
        self,
        service: Service,
        lookup: Callable[[str], Service | None],
        members: Callable[[str], list[Service]],
    ) -> str:
        """Check an ensemble; return its state machine definition ready to deploy.

        Raises
        ------
        CatalogValidationError
            Naming the service, the step and, for mappings, the key and path.
        """
        spec = service.ensemble
        assert spec is not None
        where = f"ensemble '{service.name}'"
        timeouts = self._step_timeouts(service, lookup, members)
        if spec.definition is None:
            return self._generate(service, timeouts)
        for name, step in spec.steps.items():
            if step.when is not None or step.after:
                raise CatalogValidationError(
                    f"{where}: step '{name}' uses 'when'/'after', which need the declarative form "
                    "(no 'definition': the gateway generates the state machine)"
                )
        if spec.output is not None:
            raise CatalogValidationError(
                f"{where}: 'output' is for the declarative form; a hand-written state machine names its "
                "result in the Complete task's 'output_step'"
            )
        try:
            text = substitute(self.read_definition(spec.definition), self.substitutions)
            definition = json.loads(text)
        except OSError as error:
            raise CatalogValidationError(f"{where}: cannot read {spec.definition}: {error}") from None
        except json.JSONDecodeError as error:
            raise CatalogValidationError(f"{where}: {spec.definition} is not valid JSON: {error}") from None
        except CatalogValidationError as error:
            raise CatalogValidationError(f"{where}: {error.message}") from None
        try:
            analysis = analyse(definition)
        except CatalogValidationError as error:
            raise CatalogValidationError(f"{where}: {error.message}") from None
        problems = check_definition(definition) + check_gateway_rules(definition)
        if problems:
            raise CatalogValidationError(f"{where}: {spec.definition}: {'; '.join(problems)}")
        missing = set(analysis.steps) - set(spec.steps)
        if missing:
            raise CatalogValidationError(
                f"{where}: the state machine runs step(s) {sorted(missing)} that the catalog entry does not define"
            )
        unused = set(spec.steps) - set(analysis.steps)
        if unused:
            raise CatalogValidationError(f"{where}: step(s) {sorted(unused)} are defined but no state runs them")
        for output_step in completing_output_steps(definition):
            if output_step not in spec.steps:
                raise CatalogValidationError(
                    f"{where}: the Complete task's output_step names no step '{output_step}'; "
                    f"steps are: {', '.join(sorted(spec.steps))}"
                )
        for name, step in spec.steps.items():
            if step.fan_out is not None and not analysis.steps[name].in_map:
                raise CatalogValidationError(f"{where}: fan-out step '{name}' must run inside a Map state")
            try:
                check_step_references(name, step.mapping, set(spec.steps))
                validate_mapping(step.mapping, step=name, available_steps=set(analysis.upstream[name]))
            except (MappingError, CatalogValidationError) as error:
                raise CatalogValidationError(f"{where}: {error.message}") from None
        prepared = prepare_definition(definition, lambda step: timeouts[step])
        return json.dumps(prepared)

    def _step_timeouts(
        self,
        service: Service,
        lookup: Callable[[str], Service | None],
        members: Callable[[str], list[Service]],
    ) -> dict[str, int]:
        """How long each step's callback task waits: its target's own timeout plus a margin."""
        spec = service.ensemble
        assert spec is not None
        where = f"ensemble '{service.name}'"
        timeouts: dict[str, int] = {}
        for name, step in spec.steps.items():
            if step.service is not None:
                target = lookup(step.service)
                if target is None:
                    raise CatalogValidationError(f"{where}: step '{name}' targets unknown service '{step.service}'")
                if target.name == service.name:
                    raise CatalogValidationError(f"{where}: step '{name}' calls the ensemble itself")
                timeouts[name] = longest_timeout(target) + STEP_TIMEOUT_MARGIN_SECONDS
            else:
                assert step.fan_out is not None
                found = members(step.fan_out.task)
                longest = max((longest_timeout(m) for m in found), default=900)
                timeouts[name] = longest + STEP_TIMEOUT_MARGIN_SECONDS
        return timeouts

    def _generate(self, service: Service, timeouts: Mapping[str, int]) -> str:
        """The declarative form: infer the DAG, generate the state machine, check it by ASL's rules."""
        spec = service.ensemble
        assert spec is not None
        dag = infer_dag(service.name, spec)
        generated = generate_definition(service.name, spec, dag, lambda step: timeouts[step])
        text = substitute(json.dumps(generated), self.substitutions)
        definition = json.loads(text)
        problems = check_definition(definition) + check_gateway_rules(definition)
        if problems:  # a bug of the generator, never the user's: say so plainly
            raise CatalogValidationError(
                f"ensemble '{service.name}': the generated state machine breaks ASL rules: {'; '.join(problems)}"
            )
        analyse(definition)
        return json.dumps(prepare_definition(definition, lambda step: timeouts[step]))

    @staticmethod
    def _check_nesting(batch: Mapping[str, Service], lookup: Callable[[str], Service | None]) -> None:
        """An ensemble may contain ensembles, but never (indirectly) itself."""

        def targets(service: Service) -> list[str]:
            if service.ensemble is None:
                return []
            return [s.service for s in service.ensemble.steps.values() if s.service]

        for root in batch.values():
            path = [root.name]
            stack = [(name, [root.name]) for name in targets(root)]
            while stack:
                name, path = stack.pop()
                if name == root.name:
                    raise CatalogValidationError(f"ensemble '{root.name}' contains itself: {' → '.join([*path, name])}")
                if name in path:
                    continue
                nested = lookup(name)
                if nested is not None:
                    stack.extend((child, [*path, name]) for child in targets(nested))


def longest_timeout(service: Service) -> int:
    """The longest a prediction of ``service`` may take, whichever of its versions serves it (a step
    calling it may draw any version with traffic)."""
    live = [
        version
        for version, record in service.versions().items()
        if record.status not in (VersionStatus.REJECTED, VersionStatus.RETIRED)
    ]
    timeouts = [target.timeout_seconds() for v in live if (target := service.at_version(v)) is not None]
    return max([service.timeout_seconds(), *timeouts])

"""The DAG of a declarative ensemble, inferred from what each step reads.

A step runs after every step its mapping or its ``when`` reads through ``$.steps.<name>``, and
after the steps its ``after`` lists (an order without data). Steps that do not depend on each
other, directly or not, may run at the same time. The result is checked as registration must: a
path naming no step, a step reading itself, a cycle, an ``output`` naming no step, and mapping
paths that read a step which is not upstream are refused with messages naming the step.

The module is pure: no boto3, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .conditions import Condition, condition_paths, parse_condition
from .errors import CatalogValidationError, MappingError
from .mapping import BYTES_KEY, PATH_KEY, RAW_KEY, referenced_roots, validate_mapping
from .models import EnsembleSpec

__all__ = [
    "EnsembleDag",
    "check_step_references",
    "infer_dag",
    "unknown_step_message",
]


@dataclass(frozen=True)
class EnsembleDag:
    """The order of a declarative ensemble's steps.

    Attributes
    ----------
    upstream
        Each step's direct dependencies: the steps its mapping or ``when`` reads, and its ``after``.
    ancestors
        Each step's transitive dependencies: every step that always finishes before it starts.
    levels
        Topological levels, names sorted in each: a step's level is one more than the highest level
        of its dependencies (level 1 has none).
    output_step
        The step whose output is the ensemble's result, or None when ``output`` is a mapping.
    output_mapping
        The ``output`` mapping over input, steps and metadata, or None when the output is a step.
    sinks
        The steps no other step depends on (sorted).
    conditions
        The parsed ``when`` of each step that has one.
    """

    upstream: dict[str, frozenset[str]]
    ancestors: dict[str, frozenset[str]]
    levels: list[list[str]]
    output_step: str | None
    output_mapping: dict[str, Any] | None
    sinks: list[str]
    conditions: dict[str, Condition]

    def level_of(self, step: str) -> int:
        """The 1-based level of ``step``."""
        for number, level in enumerate(self.levels, start=1):
            if step in level:
                return number
        raise KeyError(step)


def unknown_step_message(step: str | None, path: str, missing: str, known: Iterable[str]) -> str:
    """The error for a path that names a step the ensemble does not have.

    Parameters
    ----------
    step
        The step whose mapping or ``when`` holds the path; None for the ensemble's ``output``.
    path
        The path as written.
    missing
        The step name the path reads.
    known
        Every step of the ensemble.

    Returns
    -------
    str
        e.g. ``step 'decision' reads $.steps.frad.score: no step 'frad'; steps are: cost, damage,
        decision, fraud``.
    """
    reader = f"step '{step}'" if step is not None else "output"
    return f"{reader} reads {path}: no step '{missing}'; steps are: {', '.join(sorted(known))}"


def check_step_references(step: str | None, mapping: Any, known_steps: Iterable[str]) -> None:
    """Refuse a mapping path that reads a step the ensemble does not have at all.

    ``mapping.validate_mapping`` says "not upstream" for any step outside the ancestors it is given;
    call this first so that a misspelt step name gets the clearer message. Paths that do not parse
    are left to ``validate_mapping``, which reports them with their key.

    Parameters
    ----------
    step
        The step the mapping belongs to; None for the ensemble's ``output`` mapping.
    mapping
        The mapping (any template; a list of paths, such as a condition's, works too).
    known_steps
        Every step of the ensemble.

    Raises
    ------
    CatalogValidationError
        With :func:`unknown_step_message` (no ensemble prefix: the caller adds it).
    """
    known = set(known_steps)
    for path in _mapping_paths(mapping):
        for name in sorted(_steps_read(path) - known):
            raise CatalogValidationError(unknown_step_message(step, path, name, known))


def _mapping_paths(template: Any) -> Iterator[str]:
    """Every path of a mapping template, as ``mapping`` reads them (structure is checked there)."""
    if isinstance(template, str):
        if template.startswith("$") and not template.startswith("$$"):
            yield template
    elif isinstance(template, Mapping):
        if RAW_KEY in template:
            return
        for key in (PATH_KEY, BYTES_KEY):
            if isinstance(template.get(key), str):
                yield template[key]
                return
        for value in template.values():
            yield from _mapping_paths(value)
    elif isinstance(template, list):
        for value in template:
            yield from _mapping_paths(value)


def _steps_read(path: str) -> set[str]:
    """The step names one path reads (None, "every step", is left out); nothing if it does not parse."""
    try:
        roots = referenced_roots(path)
    except MappingError:
        return set()
    return {name for root, name in roots if root == "steps" and name is not None}


def _reads_every_step(path: str) -> bool:
    try:
        return ("steps", None) in referenced_roots(path)
    except MappingError:
        return False


def infer_dag(service_name: str, spec: EnsembleSpec) -> EnsembleDag:
    """Infer and check the DAG of a declarative ensemble (``spec.definition`` is None).

    Parameters
    ----------
    service_name
        The ensemble's name (every error starts with ``ensemble '<name>': ``).
    spec
        The catalog entry's ``ensemble`` section.

    Returns
    -------
    EnsembleDag
        Dependencies, levels, sinks and the output.

    Raises
    ------
    CatalogValidationError
        A path naming no step (``step 'decision' reads $.steps.frad.score: no step 'frad'; steps
        are: ...``), a step reading its own output, a path reading every step (``$.steps.*``) in
        a step, an ``after`` naming no step or the step itself, a cycle (``a → b → a``), an
        ``output`` naming no step, no ``output`` while several steps are last, an invalid
        ``when``, and what ``mapping.validate_mapping`` refuses (a path that does not parse, a
        step that is not upstream), for each step and for the output mapping.
    """
    where = f"ensemble '{service_name}'"
    try:
        return _infer(spec)
    except (CatalogValidationError, MappingError) as error:
        raise CatalogValidationError(f"{where}: {error.message}") from None


def _infer(spec: EnsembleSpec) -> EnsembleDag:
    names = set(spec.steps)
    upstream: dict[str, frozenset[str]] = {}
    conditions: dict[str, Condition] = {}
    for name, step in spec.steps.items():
        check_step_references(name, step.mapping, names)
        paths = list(_mapping_paths(step.mapping))
        if step.when is not None:
            conditions[name] = parse_condition(step.when, step=name)
            when_paths = condition_paths(conditions[name])
            check_step_references(name, when_paths, names)
            paths += when_paths
        reads: set[str] = set()
        for path in paths:
            if _reads_every_step(path):
                raise CatalogValidationError(
                    f"step '{name}' reads {path}: a step names the steps it reads ($.steps.<name>), "
                    "so that the gateway knows what to run first"
                )
            read = _steps_read(path)
            if name in read:
                raise CatalogValidationError(f"step '{name}' reads {path}: a step cannot read its own output")
            reads |= read
        for other in step.after:
            if other == name:
                raise CatalogValidationError(f"step '{name}' lists itself in 'after'")
            if other not in names:
                raise CatalogValidationError(
                    f"step '{name}' runs after '{other}': no step '{other}'; steps are: {', '.join(sorted(names))}"
                )
        upstream[name] = frozenset(reads | set(step.after))

    _refuse_cycles(upstream)
    ancestors = _ancestors(upstream)
    levels = _levels(upstream)
    dependents = {dependency for dependencies in upstream.values() for dependency in dependencies}
    sinks = sorted(names - dependents)
    output_step, output_mapping = _output(spec, names, sinks)

    for name, step in spec.steps.items():
        validate_mapping(step.mapping, step=name, available_steps=set(ancestors[name]))
    if output_mapping is not None:
        check_step_references(None, output_mapping, names)
        _validate_output_mapping(output_mapping, names)
    return EnsembleDag(
        upstream=upstream,
        ancestors=ancestors,
        levels=levels,
        output_step=output_step,
        output_mapping=output_mapping,
        sinks=sinks,
        conditions=conditions,
    )


def _output(spec: EnsembleSpec, names: set[str], sinks: list[str]) -> tuple[str | None, dict[str, Any] | None]:
    if isinstance(spec.output, dict):
        return None, spec.output
    if isinstance(spec.output, str):
        if spec.output not in names:
            hint = ' (a mapping is an object, e.g. {"result": "$.steps.<name>"})' if spec.output.startswith("$") else ""
            raise CatalogValidationError(
                f"output names no step '{spec.output}'; steps are: {', '.join(sorted(names))}{hint}"
            )
        return spec.output, None
    if len(sinks) == 1:
        return sinks[0], None
    listed = " and ".join(sinks) if len(sinks) == 2 else ", ".join(sinks[:-1]) + f" and {sinks[-1]}"
    quantifier = "both" if len(sinks) == 2 else "all"
    raise CatalogValidationError(f"give 'output': steps {listed} are {quantifier} last")


def _validate_output_mapping(mapping: dict[str, Any], names: set[str]) -> None:
    """The output mapping may read every step: all of them have finished (or been skipped) by then."""
    try:
        validate_mapping(mapping, step="output", available_steps=names)
    except MappingError as error:
        # MappingError words its location "step 'output', key ..., path ...": the output is no step.
        location = MappingError("", step="output", key=error.key, path=error.path).message
        parts = [
            "output",
            *([f"key '{error.key}'"] if error.key else []),
            *([f"path '{error.path}'"] if error.path else []),
        ]
        raise CatalogValidationError(f"{', '.join(parts)}: {error.message.removeprefix(location)}") from None


def _refuse_cycles(upstream: Mapping[str, frozenset[str]]) -> None:
    """Depth-first search; a back edge is a cycle, reported from its smallest step name."""
    done: set[str] = set()
    for start in sorted(upstream):
        if start in done:
            continue
        path: list[str] = []
        on_path: set[str] = set()
        stack: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(upstream[start])))]
        path.append(start)
        on_path.add(start)
        while stack:
            node, pending = stack[-1]
            dependency = next(pending, None)
            if dependency is None:
                stack.pop()
                path.pop()
                on_path.discard(node)
                done.add(node)
                continue
            if dependency in on_path:
                # path runs from dependents to dependencies; the cycle in running order is reversed.
                loop = path[path.index(dependency) :]
                order = list(reversed(loop))
                first = order.index(min(order))
                order = order[first:] + order[:first]
                raise CatalogValidationError(
                    f"the steps wait for each other in a cycle: {' → '.join([*order, order[0]])} "
                    "(each runs after the one before it)"
                )
            if dependency not in done:
                stack.append((dependency, iter(sorted(upstream[dependency]))))
                path.append(dependency)
                on_path.add(dependency)


def _ancestors(upstream: Mapping[str, frozenset[str]]) -> dict[str, frozenset[str]]:
    found: dict[str, frozenset[str]] = {}

    def of(step: str) -> frozenset[str]:
        if step not in found:
            collected: set[str] = set()
            for dependency in upstream[step]:
                collected |= {dependency} | of(dependency)
            found[step] = frozenset(collected)
        return found[step]

    for step in upstream:
        of(step)
    return {step: found[step] for step in upstream}


def _levels(upstream: Mapping[str, frozenset[str]]) -> list[list[str]]:
    level: dict[str, int] = {}

    def of(step: str) -> int:
        if step not in level:
            level[step] = 1 + max((of(dependency) for dependency in upstream[step]), default=0)
        return level[step]

    for step in upstream:
        of(step)
    count = max(level.values(), default=0)
    return [sorted(step for step, number in level.items() if number == index) for index in range(1, count + 1)]

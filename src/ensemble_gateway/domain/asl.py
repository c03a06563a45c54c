"""Reading an ensemble's Amazon States Language definition: its callback steps and their order.

The gateway needs three facts from the ASL, all computed here without AWS:
which Task states are gateway steps (``lambda:invoke.waitForTaskToken`` with a ``step`` in the
payload), which steps can have run before each step (the DAG; branches of one Parallel are not
upstream of each other), and that the definition is well formed (every ``Next`` exists, no step
can run after itself).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import CatalogValidationError

CALLBACK_RESOURCE_SUFFIX = "lambda:invoke.waitForTaskToken"
STATE_TYPES = {"Task", "Parallel", "Map", "Choice", "Pass", "Wait", "Succeed", "Fail"}


@dataclass
class StepState:
    """A callback Task state that runs one gateway step."""

    state_name: str
    step: str
    in_map: bool


@dataclass
class AslAnalysis:
    steps: dict[str, StepState] = field(default_factory=dict)
    upstream: dict[str, set[str]] = field(default_factory=dict)


def _payload(state: Mapping[str, Any]) -> Mapping[str, Any]:
    parameters = state.get("Parameters") or state.get("Arguments") or {}
    payload = parameters.get("Payload") if isinstance(parameters, Mapping) else None
    return payload if isinstance(payload, Mapping) else {}


def is_callback_task(state: Mapping[str, Any]) -> bool:
    return state.get("Type") == "Task" and str(state.get("Resource", "")).endswith(CALLBACK_RESOURCE_SUFFIX)


def _objects(state: Mapping[str, Any], key: str, name: str, where: str) -> list[Mapping[str, Any]]:
    """A list-of-objects field of a state (``Choices``, ``Catch``, ``Branches``), checked."""
    value = state.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
        raise CatalogValidationError(f"{where}: state '{name}' has a '{key}' that is not a list of objects")
    return value


def _machine_states(machine: Mapping[str, Any], where: str) -> tuple[str, Mapping[str, Any]]:
    if not isinstance(machine, Mapping):
        raise CatalogValidationError(f"{where}: a state machine must be a JSON object")
    states = machine.get("States")
    start = machine.get("StartAt")
    if not isinstance(states, Mapping) or not states:
        raise CatalogValidationError(f"{where}: 'States' must be a non-empty object")
    if start not in states:
        raise CatalogValidationError(f"{where}: StartAt '{start}' is not a state")
    for name, state in states.items():
        if not isinstance(state, Mapping) or state.get("Type") not in STATE_TYPES:
            raise CatalogValidationError(f"{where}: state '{name}' has no valid Type")
        catchers = _objects(state, "Catch", name, where)
        if any("Next" not in catcher for catcher in catchers):
            raise CatalogValidationError(f"{where}: state '{name}' has a Catch without Next")
        if state["Type"] == "Parallel" and not _objects(state, "Branches", name, where):
            raise CatalogValidationError(f"{where}: Parallel state '{name}' has no Branches")
        targets = [
            state.get("Next"),
            state.get("Default"),
            *[c.get("Next") for c in _objects(state, "Choices", name, where)],
            *[c.get("Next") for c in catchers],
        ]
        for target in targets:
            if target is not None and target not in states:
                raise CatalogValidationError(f"{where}: state '{name}' goes to unknown state '{target}'")
        terminal = state["Type"] in ("Succeed", "Fail", "Choice") or state.get("End") is True
        if not terminal and "Next" not in state:
            raise CatalogValidationError(f"{where}: state '{name}' has neither Next nor End")
    return str(start), states


def _check_unique_names(machine: Mapping[str, Any], seen: set[str], where: str) -> None:
    """State names are unique in the whole state machine, branches and Map processors included."""
    _, states = _machine_states(machine, where)
    for name, state in states.items():
        if name in seen:
            raise CatalogValidationError(f"{where}: state name '{name}' is used twice")
        seen.add(name)
        for index, branch in enumerate(_objects(state, "Branches", name, where)):
            _check_unique_names(branch, seen, f"{where}/{name}[{index}]")
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if state["Type"] == "Map" and isinstance(processor, Mapping):
            _check_unique_names(processor, seen, f"{where}/{name}")


def analyse(definition: Mapping[str, Any]) -> AslAnalysis:
    """Find the gateway steps of a state machine and what can run before each.

    Raises
    ------
    CatalogValidationError
        The definition is malformed, a step appears in two states that are not attempt copies of
        one task (same scope and payload, distinct ``attempt`` numbers), or a step can run after
        itself.
    """
    analysis = AslAnalysis()
    _check_unique_names(definition, set(), "definition")
    # The states running each step, with their scope: attempt copies of one task are allowed.
    copies: dict[str, dict[str, tuple[str, Mapping[str, Any]]]] = {}

    def walk(machine: Mapping[str, Any], done_before: frozenset[str], in_map: bool, where: str) -> set[str]:
        start, states = _machine_states(machine, where)
        finished: set[str] = set()
        seen: set[tuple[str, frozenset[str]]] = set()
        stack: list[tuple[str, frozenset[str]]] = [(start, done_before)]
        while stack:
            name, before = stack.pop()
            if (name, before) in seen:
                continue
            seen.add((name, before))
            state = states[name]
            after = before
            if is_callback_task(state):
                step = _payload(state).get("step")
                if not isinstance(step, str) or not step:
                    raise CatalogValidationError(
                        f"{where}: callback state '{name}' must pass a 'step' name in its Payload"
                    )
                if step in before:
                    raise CatalogValidationError(f"step '{step}' can run after itself (a cycle)")
                known = analysis.steps.get(step)
                if known is not None and known.state_name != name:
                    if not _is_attempt_copy(copies[step], (where, state), name):
                        raise CatalogValidationError(
                            f"step '{step}' is used by two states: '{known.state_name}' and '{name}'"
                        )
                else:
                    analysis.steps[step] = StepState(name, step, in_map)
                copies.setdefault(step, {})[name] = (where, state)
                analysis.upstream.setdefault(step, set()).update(before)
                after = before | {step}
            elif state["Type"] == "Parallel":
                completed: set[str] = set()
                for index, branch in enumerate(state.get("Branches", [])):
                    completed |= walk(branch, before, in_map, f"{where}/{name}[{index}]")
                after = before | completed
            elif state["Type"] == "Map":
                processor = state.get("ItemProcessor") or state.get("Iterator")
                if not isinstance(processor, Mapping):
                    raise CatalogValidationError(f"{where}: Map state '{name}' has no ItemProcessor")
                after = before | walk(processor, before, True, f"{where}/{name}")
            finished |= set(after)
            targets = [
                state.get("Next"),
                state.get("Default"),
                *[c.get("Next") for c in state.get("Choices", [])],
            ]
            for target in targets:
                if target is not None:
                    stack.append((target, after))
            for catcher in state.get("Catch", []):
                stack.append((catcher["Next"], before))
        return finished

    walk(definition, frozenset(), False, "definition")
    return analysis


def _is_attempt_copy(
    known: Mapping[str, tuple[str, Mapping[str, Any]]], candidate: tuple[str, Mapping[str, Any]], name: str
) -> bool:
    """Whether a state is another attempt of a step's task rather than a second use of the step.

    A callback task cannot carry a ``Retry`` (see ``asl_rules.check_gateway_rules``), so a retry is
    a copy of the task reached through Catch → Wait. A copy lives in the same (sub-)machine, has the
    same resource and the same payload except its ``attempt`` number, which differs from every
    other copy's. A copy that could run after the first one succeeded is still refused, as a cycle.
    """
    where, state = candidate
    attempt = _payload(state).get("attempt")
    for other_name, (other_where, other) in known.items():
        if other_name == name:
            continue
        other_attempt = _payload(other).get("attempt")
        if (
            other_where != where
            or other.get("Resource") != state.get("Resource")
            or _without_attempt(other) != _without_attempt(state)
            or attempt is None
            or other_attempt is None
            or attempt == other_attempt
        ):
            return False
    return True


def _without_attempt(state: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in _payload(state).items() if key != "attempt"}


def prepare_definition(definition: Mapping[str, Any], timeouts: Callable[[str], int]) -> dict[str, Any]:
    """A copy of the definition ready to deploy: every callback task bounded and given its context.

    - ``TimeoutSeconds`` on every callback task that lacks one: a lost notification must end the
      step FAILED, never waiting forever, so each task waits at most its target's own timeout (from
      the catalog) plus a margin.
    - ``execution.$ = $$.Execution.Input`` in every callback task's payload: the execution input
      carries what get-transform-call needs to start a step (the request's owner and metadata, the
      step specs and targets, small requests inline), so a step starts without reading the catalog
      or the ensemble's record.
    """
    prepared = copy.deepcopy(dict(definition))

    def visit(machine: dict[str, Any]) -> None:
        for state in machine.get("States", {}).values():
            if is_callback_task(state):
                if "TimeoutSeconds" not in state and "TimeoutSecondsPath" not in state:
                    state["TimeoutSeconds"] = timeouts(str(_payload(state).get("step")))
                payload = (state.get("Parameters") or {}).get("Payload")
                # JSONPath states only (a JSONata state's "Arguments" would need its own syntax).
                if isinstance(payload, dict) and "execution" not in payload and "execution.$" not in payload:
                    payload["execution.$"] = "$$.Execution.Input"
            for branch in state.get("Branches", []):
                visit(branch)
            processor = state.get("ItemProcessor") or state.get("Iterator")
            if isinstance(processor, dict):
                visit(processor)

    visit(prepared)
    return prepared


def final_step(definition: Mapping[str, Any]) -> str | None:
    """The step whose success ends the ensemble, if the definition has one.

    That is a top-level callback task whose ``Next`` is the task completing the ensemble (payload
    ``action: complete``) with that step as its ``output_step``: once the step succeeds nothing else
    can run, so the gateway may finish the ensemble right away instead of a Lambda hop later. A
    fan-out qualifies too: a top-level Map over ``$.fanout.<step>`` running that step, followed by
    the completing task (the ensemble finishes when every member has succeeded). Or a top-level
    callback task that ends the execution with ``finishes_ensemble`` in its payload (generated
    machines whose output step runs last: there is no completing task at all).
    """
    states = definition.get("States", {})
    for state in states.values():
        # A generated machine whose output step ends the execution (no Complete task after it).
        if isinstance(state, Mapping) and is_callback_task(state) and state.get("End") is True:
            payload = _payload(state)
            if payload.get("finishes_ensemble") is True and payload.get("step"):
                return str(payload["step"])
    completing = {
        name: _payload(state).get("output_step")
        for name, state in states.items()
        if isinstance(state, Mapping) and state.get("Type") == "Task" and _payload(state).get("action") == "complete"
    }
    for state in states.values():
        if not isinstance(state, Mapping) or state.get("Next") not in completing:
            continue
        output_step = completing[state["Next"]]
        if is_callback_task(state) and _payload(state).get("step") == output_step:
            return str(output_step)
        if state.get("Type") == "Map" and state.get("ItemsPath") == f"$.fanout.{output_step}":
            processor = state.get("ItemProcessor") or state.get("Iterator") or {}
            # Each iteration must run that step and no other: a later step would still be running.
            if isinstance(processor, Mapping) and _steps_in(processor) == {output_step}:
                return str(output_step)
    return None


def completing_output_steps(definition: Mapping[str, Any]) -> list[str]:
    """The ``output_step`` of every task completing the ensemble (payload ``action: complete``).

    Registration checks that each names a step of the catalog entry: a misspelt one would only
    fail when the first execution completes.

    Parameters
    ----------
    definition
        A state machine definition (branches and Map processors are searched too).

    Returns
    -------
    list of str
        Sorted and without repeats; a completing task without ``output_step`` adds nothing.
    """
    found: set[str] = set()

    def visit(machine: Any) -> None:
        states = machine.get("States") if isinstance(machine, Mapping) else None
        if not isinstance(states, Mapping):
            return
        for state in states.values():
            if not isinstance(state, Mapping):
                continue
            payload = _payload(state)
            if state.get("Type") == "Task" and payload.get("action") == "complete" and "output_step" in payload:
                found.add(str(payload["output_step"]))
            branches = state.get("Branches")
            for branch in branches if isinstance(branches, list) else []:
                visit(branch)
            visit(state.get("ItemProcessor") or state.get("Iterator"))

    visit(definition)
    return sorted(found)


def _steps_in(machine: Mapping[str, Any]) -> set[str]:
    """Every step a (sub-)machine runs, in its branches and Map processors too."""
    found: set[str] = set()
    for state in machine.get("States", {}).values():
        if not isinstance(state, Mapping):
            continue
        if is_callback_task(state):
            found.add(str(_payload(state).get("step")))
        for branch in state.get("Branches", []):
            if isinstance(branch, Mapping):
                found |= _steps_in(branch)
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if isinstance(processor, Mapping):
            found |= _steps_in(processor)
    return found


def substitute(text: str, values: Mapping[str, str]) -> str:
    """Fill ``${Name}`` placeholders as ``DefinitionSubstitutions`` does; unknown ones are errors."""
    import re

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise CatalogValidationError(f"definition uses ${{{name}}}, which has no substitution")
        return values[name]

    return re.sub(r"\$\{([A-Za-z0-9_]+)\}", replace, text)

"""The state machine of a declarative ensemble, generated from its DAG.

What the generated Amazon States Language (JSONPath) carries, so that nobody has to remember it:

- **Structure.** The steps are laid out by :func:`schedule`: steps that do not depend on each
  other, directly or not, run in the branches of a ``Parallel``; a step starts once what it
  depends on has finished. Groups of steps that share no dependency at all run in separate
  branches, each at its own pace (a chain ``vulnerability → escalate`` beside an independent
  ``classify`` is one branch of each). Inside one connected group the layout is by levels: the
  group's first steps (those with no dependency inside it) run together, then the rest of the
  group is laid out again. *What that costs*: in a connected group with several first steps, a
  later step waits for all of them, also for those it does not need (in ``a → c, b → c, b → d``,
  ``d`` waits for ``a``). It never waits longer than strict topological levels, where every step
  waits for the whole previous level (tested on random DAGs). Some waiting cannot be avoided:
  nested ``Parallel`` states only express series-parallel graphs, and the N shape is not one.
- **A step is a callback task** ``lambda:invoke.waitForTaskToken`` calling get-transform-call with
  ``{"action": "call", "step", "attempt", "ensemble_prediction_id.$", "task_token.$",
  "execution.$"}`` (plus ``"service.$"`` inside a fan-out ``Map``), bounded by ``TimeoutSeconds``
  and with ``ResultPath: null``: outputs are read by the gateway from the ensemble's record, never
  carried in the state (256 KiB cap). A ``when`` is evaluated by get-transform-call (a false one
  settles the step as SKIPPED at once), so the machine has no ``Choice``: nothing can fail on a
  missing path.
- **No Retry on callback tasks** (moto replays the previous outcome). Transient Lambda errors are
  retried by copies of the task: Catch → ``Wait`` (2 s, then 4 s) → the same task with the next
  ``attempt``, three attempts in all. The child prediction ID does not depend on the attempt, so a
  retry never calls a model twice.
- **Errors are caught on the task itself** (a ``States.*`` error escaping a Map or a Parallel is
  not reliably catchable) and carried as data: ``StepTimedOut`` or ``StepFailed`` with the cause
  ``{"step": "<name>"}`` (JSON text). At the top level a ``Pass`` shapes ``$.error`` as
  ``{"Error", "Cause", "Caught"}``; inside a branch or a Map a ``Fail`` raises that error and the
  top-level ``Parallel``/``Map`` catches it into ``$.error`` as ``{"Error", "Cause"}``. Either way
  ``FailEnsemble`` gets the step's name without parsing prose.
- **The end.** ``Complete`` (a plain ``lambda:invoke``, idempotent, so its transient errors are
  retried) stores the output; with the output step's task going straight to it, that step's
  success already finishes the ensemble (``asl.final_step``). When the output step runs last and
  alone and can only succeed with output (no fan-out, not optional, no ``when``), its task ends the
  execution itself (``End``, payload ``finishes_ensemble``) and there is no ``Complete``: its
  notification finishes the ensemble before answering the token, so the execution cannot succeed
  before the prediction has. ``FailEnsemble`` fails the
  ensemble's prediction, then ``Failed`` fails the execution.

``${GetTransformCallFunctionArn}`` is left for registration to substitute. The module is pure.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .ensemble_dag import EnsembleDag
from .models import EnsembleSpec

__all__ = [
    "ATTEMPTS",
    "FUNCTION_ARN_PLACEHOLDER",
    "TRANSIENT_LAMBDA_ERRORS",
    "Run",
    "Together",
    "generate_definition",
    "schedule",
]

FUNCTION_ARN_PLACEHOLDER = "${GetTransformCallFunctionArn}"
CALLBACK_RESOURCE = "arn:aws:states:::lambda:invoke.waitForTaskToken"
INVOKE_RESOURCE = "arn:aws:states:::lambda:invoke"
# The Lambda service's own errors, worth another try; a function error is not among them.
TRANSIENT_LAMBDA_ERRORS = (
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
)
ATTEMPTS = 3
# Seconds to wait before attempt 2, 3, ...
BACKOFF_SECONDS = (2, 4)
MAX_STATE_NAME = 80

COMPLETE = "Complete"
COMPLETE_FAILED = "CompleteFailed"
FAIL_ENSEMBLE = "FailEnsemble"
FAILED = "Failed"


# --- layout ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """Run one step (a task, or a Map for a fan-out step)."""

    step: str


@dataclass(frozen=True)
class Together:
    """Run sequences side by side (a Parallel state, one branch per sequence)."""

    branches: tuple[tuple[Run | Together, ...], ...]


Sequence = tuple[Run | Together, ...]


def schedule(dag: EnsembleDag) -> Sequence:
    """Lay the steps of a DAG out as a sequence of runs and parallel groups.

    Parameters
    ----------
    dag
        The inferred DAG.

    Returns
    -------
    tuple of Run and Together
        Run in order; each ``Together`` holds sequences that run side by side. A step comes after
        every one of its dependencies (see the module docstring for the layout and its cost).
    """
    return _sequence(frozenset(dag.upstream), dag.upstream)


def _sequence(steps: frozenset[str], upstream: dict[str, frozenset[str]]) -> Sequence:
    """Lay out ``steps``, whose dependencies outside the set have finished before it starts."""
    items: list[Run | Together] = []
    remaining = set(steps)
    while remaining:
        groups = _connected_groups(remaining, upstream)
        if len(groups) > 1:
            # No step of one group depends on a step of another: each group runs at its own pace.
            items.append(Together(tuple(_sequence(group, upstream) for group in groups)))
            break
        first = sorted(step for step in remaining if not upstream[step] & remaining)
        items.append(Run(first[0]) if len(first) == 1 else Together(tuple((Run(step),) for step in first)))
        remaining -= set(first)
    return tuple(items)


def _connected_groups(steps: set[str], upstream: dict[str, frozenset[str]]) -> list[frozenset[str]]:
    """The weakly connected components of the DAG restricted to ``steps``, sorted by their names."""
    neighbours: dict[str, set[str]] = {step: set() for step in steps}
    for step in steps:
        for dependency in upstream[step] & steps:
            neighbours[step].add(dependency)
            neighbours[dependency].add(step)
    groups: list[frozenset[str]] = []
    unseen = set(steps)
    while unseen:
        pending = [min(unseen)]
        group: set[str] = set()
        while pending:
            step = pending.pop()
            if step in group:
                continue
            group.add(step)
            pending.extend(neighbours[step] - group)
        unseen -= group
        groups.append(frozenset(group))
    return sorted(groups, key=sorted)


def _steps_of(items: Iterable[Run | Together]) -> list[str]:
    found: list[str] = []
    for item in items:
        if isinstance(item, Run):
            found.append(item.step)
        else:
            for branch in item.branches:
                found.extend(_steps_of(branch))
    return found


# --- emission ---------------------------------------------------------------------------------------


class _Names:
    """State names unique in the whole machine and at most 80 characters (the ASL's rules)."""

    def __init__(self, reserved: Iterable[str]) -> None:
        self.used = set(reserved)

    def new(self, base: str, suffix: str = "") -> str:
        number = 1
        while True:
            tail = suffix if number == 1 else f"{suffix} #{number}"
            room = MAX_STATE_NAME - len(tail)
            head = base if len(base) <= room else base[: room - 3] + "..."
            name = head + tail
            if name not in self.used:
                self.used.add(name)
                return name
            number += 1


@dataclass
class _Scope:
    """One (sub-)machine being written: the top level, a Parallel branch or a Map processor."""

    states: dict[str, dict[str, Any]]
    top_level: bool
    in_map: bool


class _Writer:
    def __init__(self, spec: EnsembleSpec, timeouts: Callable[[str], int]) -> None:
        self.spec = spec
        self.timeouts = timeouts
        self.names = _Names([COMPLETE, COMPLETE_FAILED, FAIL_ENSEMBLE, FAILED])
        # The step whose success ends the ensemble without a Complete task (None: Complete follows).
        self.finishing: str | None = None

    # A sequence is written front to back: each item's entry state is named before the item before
    # it is written, so that the states appear in the JSON in running order.
    def sequence(self, items: Sequence, scope: _Scope, after: str | None) -> str:
        entries = [self.entry_name(item) for item in items]
        for index, item in enumerate(items):
            following = entries[index + 1] if index + 1 < len(items) else after
            self.item(item, entries[index], scope, following)
        return entries[0]

    def entry_name(self, item: Run | Together) -> str:
        if isinstance(item, Together):
            return self.names.new("Run " + ", ".join(_steps_of([item])), " in parallel")
        if self.spec.steps[item.step].fan_out is not None:
            return self.names.new(item.step, " fan-out")
        return self.names.new(item.step)

    def item(self, item: Run | Together, name: str, scope: _Scope, following: str | None) -> None:
        if isinstance(item, Together):
            self.parallel(item, name, scope, following)
        elif self.spec.steps[item.step].fan_out is not None:
            self.fan_out(item.step, name, scope, following)
        else:
            self.task_chain(item.step, name, scope, following)

    def parallel(self, item: Together, name: str, scope: _Scope, following: str | None) -> None:
        state: dict[str, Any] = {"Type": "Parallel"}
        scope.states[name] = state  # first, so that the branches' states come after it
        heads = [", ".join(_steps_of(branch)) for branch in item.branches]
        state["Comment"] = (
            f"{'; '.join(heads)}: no step of one branch reads or waits for a step of another, so they run side by side."
        )
        branches = []
        for branch in item.branches:
            inner = _Scope(states={}, top_level=False, in_map=scope.in_map)
            start = self.sequence(branch, inner, None)
            branches.append({"StartAt": start, "States": inner.states})
        state["Branches"] = branches
        state["ResultPath"] = None
        if scope.top_level:
            state["Catch"] = [_catch_to_fail_ensemble()]
        _link(state, following)

    def fan_out(self, step: str, name: str, scope: _Scope, following: str | None) -> None:
        fan_out = self.spec.steps[step].fan_out
        assert fan_out is not None
        state: dict[str, Any] = {
            "Type": "Map",
            "Comment": (
                f"Step '{step}': one child per active model of task '{fan_out.task}', listed in "
                f"$.fanout.{step} when the execution starts."
            ),
        }
        scope.states[name] = state
        processor = _Scope(states={}, top_level=False, in_map=True)
        member = self.names.new(step, " member")
        self.task_chain(step, member, processor, None)
        state.update(
            {
                "ItemsPath": f"$.fanout.{step}",
                "ItemSelector": {"service.$": "$$.Map.Item.Value.service", "prediction_id.$": "$.prediction_id"},
                "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": member, "States": processor.states},
                "MaxConcurrency": 0,
                "ResultPath": None,
            }
        )
        if scope.top_level:
            state["Catch"] = [_catch_to_fail_ensemble()]
        _link(state, following)

    def task_chain(self, step: str, first: str, scope: _Scope, following: str | None) -> None:
        """The task, its attempt copies behind Catch → Wait, and where its failures go."""
        target = self.spec.steps[step].service or "its members"
        tasks = [first] + [self.names.new(first, f" attempt {n}") for n in range(2, ATTEMPTS + 1)]
        waits = [self.names.new(first, f" wait before attempt {n}") for n in range(2, ATTEMPTS + 1)]
        timed_out = self.names.new(first, " timed out")
        failed = self.names.new(first, " failed")
        for index, name in enumerate(tasks):
            attempt = index + 1
            catchers: list[dict[str, Any]] = []
            if attempt < ATTEMPTS:
                catchers.append(
                    {"ErrorEquals": list(TRANSIENT_LAMBDA_ERRORS), "ResultPath": "$.error", "Next": waits[index]}
                )
            catchers += [
                {"ErrorEquals": ["States.Timeout"], "ResultPath": "$.error", "Next": timed_out},
                {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": failed},
            ]
            if attempt == 1:
                comment = (
                    f"Step '{step}' ({target}): get-transform-call starts its child prediction and the child's "
                    "notification answers the task token. No Retry on a callback task: transient Lambda errors "
                    "go through a Wait to a copy of this task."
                )
            else:
                comment = (
                    f"Attempt {attempt} of step '{step}' after a transient Lambda error: the child prediction ID "
                    "does not depend on the attempt, so the model is not called twice."
                )
            state: dict[str, Any] = {
                "Type": "Task",
                "Comment": comment,
                "Resource": CALLBACK_RESOURCE,
                "Parameters": {
                    "FunctionName": FUNCTION_ARN_PLACEHOLDER,
                    "Payload": self.call_payload(step, attempt, scope.in_map),
                },
                "TimeoutSeconds": self.timeouts(step),
                "ResultPath": None,
                "Catch": catchers,
            }
            _link(state, following)
            scope.states[name] = state
            if attempt < ATTEMPTS:
                scope.states[waits[index]] = {
                    "Type": "Wait",
                    "Comment": f"Back off before attempt {attempt + 1} of step '{step}'.",
                    "Seconds": BACKOFF_SECONDS[index],
                    "Next": tasks[index + 1],
                }
        for name, error in ((timed_out, "StepTimedOut"), (failed, "StepFailed")):
            scope.states[name] = _failure(step, error, top_level=scope.top_level)

    def call_payload(self, step: str, attempt: int, in_map: bool) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "action": "call",
            "step": step,
            "attempt": attempt,
            "ensemble_prediction_id.$": "$.prediction_id",
            "task_token.$": "$$.Task.Token",
            "execution.$": "$$.Execution.Input",
        }
        if in_map:
            payload["service.$"] = "$.service"
        if step == self.finishing:
            # asl.final_step reads it: this step's success finishes the ensemble (no Complete task).
            payload["finishes_ensemble"] = True
        return payload


def _link(state: dict[str, Any], following: str | None) -> None:
    if following is None:
        state["End"] = True
    else:
        state["Next"] = following


def _catch_to_fail_ensemble() -> dict[str, Any]:
    return {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": FAIL_ENSEMBLE}


def _cause(step: str) -> str:
    return json.dumps({"step": step})


def _failure(step: str, error: str, *, top_level: bool) -> dict[str, Any]:
    """Where a step's failure goes: structured data for FailEnsemble, whatever the scope."""
    what = "timed out" if error == "StepTimedOut" else "failed"
    if top_level:
        return {
            "Type": "Pass",
            "Comment": f"Step '{step}' {what}: name it in $.error (no prose to parse), with what was caught.",
            "Parameters": {"Error": error, "Cause": _cause(step), "Caught.$": "$.error"},
            "ResultPath": "$.error",
            "Next": FAIL_ENSEMBLE,
        }
    return {
        "Type": "Fail",
        "Comment": (
            f"Step '{step}' {what}: a custom error the enclosing Parallel or Map catches (a States.* error "
            "escaping them cannot be caught reliably)."
        ),
        "Error": error,
        "Cause": _cause(step),
    }


def _lambda_retry() -> list[dict[str, Any]]:
    return [{"ErrorEquals": list(TRANSIENT_LAMBDA_ERRORS), "IntervalSeconds": 1, "MaxAttempts": 3, "BackoffRate": 2.0}]


def _ending_states(dag: EnsembleDag) -> dict[str, dict[str, Any]]:
    complete_payload: dict[str, Any] = {
        "action": "complete",
        "ensemble_prediction_id.$": "$.prediction_id",
        "execution.$": "$$.Execution.Input",
    }
    if dag.output_step is not None:
        complete_payload["output_step"] = dag.output_step
    return {
        COMPLETE: {
            "Type": "Task",
            "Comment": (
                "Store the ensemble's output and finish its prediction. Idempotent, so transient Lambda errors "
                "are retried (it only confirms when the output step's success has finished the ensemble)."
            ),
            "Resource": INVOKE_RESOURCE,
            "Parameters": {"FunctionName": FUNCTION_ARN_PLACEHOLDER, "Payload": complete_payload},
            "ResultPath": None,
            "Retry": _lambda_retry(),
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": COMPLETE_FAILED}],
            "End": True,
        },
        COMPLETE_FAILED: {
            "Type": "Pass",
            "Comment": "Completing failed: say so in $.error, with what was caught.",
            "Parameters": {"Error": "CompleteFailed", "Cause": "{}", "Caught.$": "$.error"},
            "ResultPath": "$.error",
            "Next": FAIL_ENSEMBLE,
        },
        FAIL_ENSEMBLE: {
            "Type": "Task",
            "Comment": "Fail the ensemble's prediction with the structured error in $.error (idempotent: retried).",
            "Resource": INVOKE_RESOURCE,
            "Parameters": {
                "FunctionName": FUNCTION_ARN_PLACEHOLDER,
                "Payload": {
                    "action": "fail",
                    "ensemble_prediction_id.$": "$.prediction_id",
                    "error.$": "$.error",
                    "execution.$": "$$.Execution.Input",
                },
            },
            "ResultPath": None,
            "Retry": _lambda_retry(),
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": FAILED}],
            "Next": FAILED,
        },
        FAILED: {
            "Type": "Fail",
            "Comment": "The execution fails too, after the prediction did.",
            "Error": "EnsembleFailed",
            "Cause": "a step of the ensemble failed; see the prediction's error",
        },
    }


def _finishing_step(spec: EnsembleSpec, dag: EnsembleDag, layout: Sequence) -> str | None:
    """The output step, when it runs last and alone and its success is the only way on: the
    ensemble then ends with it (``End``), without a ``Complete`` task (one state transition and one
    Lambda invocation fewer per prediction). A fan-out, an optional step or one with ``when`` may
    end without output, so those keep ``Complete``; so does an output mapping."""
    if dag.output_step is None or not layout:
        return None
    last = layout[-1]
    if not isinstance(last, Run) or last.step != dag.output_step:
        return None
    step = spec.steps[last.step]
    if step.fan_out is not None or step.optional or step.when is not None:
        return None
    return last.step


def generate_definition(
    service_name: str, spec: EnsembleSpec, dag: EnsembleDag, timeouts: Callable[[str], int]
) -> dict[str, Any]:
    """The Standard state machine of a declarative ensemble (ASL, JSONPath query language).

    Parameters
    ----------
    service_name
        The ensemble's name (in the machine's Comment).
    spec
        The catalog entry's ``ensemble`` section (steps' targets and fan-outs).
    dag
        Its DAG, from ``ensemble_dag.infer_dag``.
    timeouts
        Each step's ``TimeoutSeconds`` (its target's queue time plus invocation timeout plus margin;
        a fan-out step's slowest member's), by step name.

    Returns
    -------
    dict
        The definition, ``${GetTransformCallFunctionArn}`` left in place for registration to
        substitute. State names are unique machine-wide and at most 80 characters.
    """
    writer = _Writer(spec, timeouts)
    top = _Scope(states={}, top_level=True, in_map=False)
    layout = schedule(dag)
    finishing = _finishing_step(spec, dag, layout)
    writer.finishing = finishing
    start = writer.sequence(layout, top, None if finishing else COMPLETE)
    ending = _ending_states(dag)
    if finishing:
        # Nothing completes after the finishing step: its success has finished the ensemble.
        del ending[COMPLETE], ending[COMPLETE_FAILED]
    top.states.update(ending)
    return {
        "Comment": (
            f"Ensemble '{service_name}', generated by the gateway from its catalog entry (declarative): "
            "edit the entry, not this definition."
        ),
        "StartAt": start,
        "States": top.states,
    }

"""Ensemble steps (get-transform-call): build each step's input and run it as a child prediction."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .audit import outbox
from .conditions import condition_paths, evaluate, parse_condition
from .errors import MappingError
from .mapping import RAW_KEY, evaluate_mapping, referenced_roots
from .media_types import DEFAULT_ACCEPT, is_json_type
from .models import (
    Callback,
    CallbackKind,
    EnsembleContext,
    EnsembleStep,
    InputInfo,
    ModelInfo,
    Prediction,
    PredictionError,
    PredictionStatus,
    Service,
)
from .records import DEADLINE_MARGIN_SECONDS, step_input_key
from .rollout import draw

if TYPE_CHECKING:
    from .completion import Completion
    from .dispatch import Dispatch
    from .ensembles import Ensembles
    from .ports import GatewayPorts
    from .shadows import Shadows

# The cause a state machine gives a step timeout (see statemachines/*.asl.json).
TIMED_OUT_CAUSE = re.compile(r"^step '(?P<step>[^']+)' timed out")


def child_prediction_id(parent_id: str, step: str, member: str | None = None) -> str:
    """One child per step (per member of a fan-out) of an execution, whatever the attempt.

    Not derived from the task token: a task retried after a transient Lambda error (a new attempt,
    a new token) finds the child its first attempt created and never calls the model twice.
    """
    digest = hashlib.sha256(f"{parent_id}\x00{step}\x00{member or ''}".encode()).hexdigest()[:20]
    return f"{parent_id[:40]}-s{digest}"


def step_accept(context: EnsembleContext, step_name: str, step: EnsembleStep) -> str:
    """What a step's model is asked to answer with (SageMaker's ``Accept``).

    The step's own ``accept`` when the catalog declares one; else, for the step whose output is the
    ensemble's result (its final step), what the ensemble's request asked for; else JSON, since the
    mappings of the steps after it read JSON.
    """
    if step.accept is not None:
        return step.accept
    if step_name == context.final_step:
        return context.accept
    return DEFAULT_ACCEPT


@dataclass
class EnsembleSteps:
    """The use cases behind get-transform-call: start a step, complete or fail the ensemble.

    Parameters
    ----------
    ports
        The gateway's shared ports.
    dispatch
        Dispatches a step's child prediction (whose dispatch it creates claimed).
    completion
        Finishes the ensemble, and re-drives the callback of a step settled without running.
    ensembles
        The outputs of earlier steps, and the ensemble's completion.
    shadows
        Starts the shadows of a step whose target has shadow versions (None: no shadows).
    """

    ports: GatewayPorts
    dispatch: Dispatch
    completion: Completion
    ensembles: Ensembles
    shadows: Shadows | None = None

    def call(
        self,
        parent_id: str,
        step_name: str,
        task_token: str,
        member: str | None = None,
        execution: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Start one step: map its input, record the child holding the task token, dispatch it.

        ``execution`` is the execution input (``$$.Execution.Input``, added to every callback
        task's payload at registration): its ``context`` spares reading the ensemble's record and
        the catalog. Without it both are read.

        A mapping that cannot be applied fails the step (and so the ensemble, unless the step is
        optional) with an error naming the step, the key and the path.
        """
        ports = self.ports
        context = self._context(parent_id, execution)
        step = context.steps.get(step_name)
        if step is None:
            raise LookupError(f"service '{context.service}' has no step '{step_name}'")
        target_name, target = self._target(context, step_name, step, member)
        child_id = child_prediction_id(parent_id, step_name, target_name if step.fan_out is not None else None)
        timeout = target.timeout_seconds() if target else 900
        now = ports.clock()
        deadline = now + timedelta(seconds=timeout + DEADLINE_MARGIN_SECONDS)
        child = Prediction(
            prediction_id=child_id,
            service=target_name,
            owner=context.owner,
            status=PredictionStatus.RUNNING,
            created_at=now,
            updated_at=now,
            metadata=context.metadata,
            accept=step_accept(context, step_name, step),
            parent_id=parent_id,
            step=step_name,
            callback=Callback(kind=CallbackKind.TASK_TOKEN, target=task_token),
            model=ModelInfo(
                endpoint=target.model.endpoint_name if target and target.model else None,
                version=target.version if target else None,
                assignment=context.assignments.get(target_name),
            ),
            started_at=now,
            deadline_at=deadline,
            expires_at=context.expires_at,
            in_shadow=context.shadow,
            optional=step.optional,
            final_step=step_name == context.final_step,
            fan_out=step.fan_out is not None,
            fan_out_size=context.final_fan_out_size(step_name) if step.fan_out is not None else None,
            # What later steps see instead of an output: an optional step that failed, a skipped one.
            step_default=json.dumps(step.default) if step.optional or step.when is not None else None,
        )
        if step.when is not None:
            runs: bool | MappingError
            try:
                runs = self._condition_holds(context, step_name, step.when)
            except MappingError as error:
                runs = error
            if runs is not True:
                return self._settle_without_running(child, task_token, runs)
        try:
            mapped = self._map_input(context, step_name, step)
        except MappingError as error:
            failed = child.model_copy(
                update={
                    "status": PredictionStatus.FAILED,
                    "finished_at": now,
                    "dispatched_at": now,
                    "error": PredictionError(code=error.code, message=error.message, step=step_name),
                }
            )
            if ports.predictions.create(failed):
                self.completion.notify(failed)
            else:
                self._resume(child_id, task_token)
            return {"prediction_id": child_id, "status": "FAILED"}

        realtime = target is not None and target.model is not None and target.model.invocation == "realtime"
        # The target's shadow versions (none under a shadow), recorded on the child from the start
        # so that its outcome names them; they read its input from S3.
        shadow_targets = [] if context.shadow else context.shadow_targets.get(target_name, [])
        # What the model reads, by hash: the decision record names it even when it is never stored.
        accepted = InputInfo(
            sha256=hashlib.sha256(mapped.body).hexdigest(), size=len(mapped.body), content_type=mapped.content_type
        )
        if realtime and not shadow_targets:
            # The model gets the body from memory: nothing to read back from S3.
            running = child.model_copy(update={"content_type": mapped.content_type, "input": accepted})
        else:
            input_uri = ports.objects.write(step_input_key(child_id), mapped.body, mapped.content_type)
            running = child.model_copy(
                update={"input_uri": input_uri, "content_type": mapped.content_type, "input": accepted}
            )
        if shadow_targets:
            running = running.model_copy(update={"shadow_versions": [t.version for t in shadow_targets]})
        # The child is created holding its dispatch until its deadline: a retried invocation (same
        # task token) finds it and leaves the first attempt's call alone.
        if not ports.predictions.create(running, claim_dispatch_until=deadline):
            self._resume(child_id, task_token)
            return {"prediction_id": child_id, "status": "RUNNING"}
        dispatched = self.dispatch.dispatch_claimed(
            running, target, input_size=len(mapped.body), body=mapped.body if realtime else None
        )
        if dispatched and shadow_targets and self.shadows is not None:
            # After the step's own dispatch, never holding it (``start`` never raises).
            self.shadows.start(running, shadow_targets)
        return {"prediction_id": child_id, "status": "RUNNING"}

    def _settle_without_running(
        self, child: Prediction, task_token: str, condition: bool | MappingError
    ) -> dict[str, Any]:
        """A step whose ``when`` is false is SKIPPED (a condition that cannot be read fails it)."""
        now = self.ports.clock()
        changes: dict[str, Any] = {"finished_at": now, "dispatched_at": now}
        if isinstance(condition, MappingError):
            status = PredictionStatus.FAILED
            changes["error"] = PredictionError(code=condition.code, message=condition.message, step=child.step)
        else:
            status = PredictionStatus.SKIPPED
        settled = child.model_copy(update={"status": status, **changes, "audit_pending": status.value})
        if self.ports.predictions.create(settled):
            self.completion.notify(settled)
        else:
            self._resume(child.prediction_id, task_token)
        return {"prediction_id": child.prediction_id, "status": status.value}

    def _resume(self, child_id: str, task_token: str) -> None:
        """The step's child exists already: a duplicate delivery, or a retry after a transient error.

        A retry comes with a new task token: the child is bound to it (the old task is gone), so
        the model that is still running answers the task waiting now. A finished child's answer
        is driven again. The model is never called a second time.
        """
        predictions = self.ports.predictions
        existing = predictions.get(child_id)
        if existing is None:
            return
        rebound = Callback(kind=CallbackKind.TASK_TOKEN, target=task_token)
        if existing.callback.target != task_token and existing.callback.kind is CallbackKind.TASK_TOKEN:
            moved = predictions.transition(
                child_id, [PredictionStatus.RUNNING], PredictionStatus.RUNNING, {"callback": rebound}
            )
            if moved is not None:
                return  # its notification will answer the new token
            existing = predictions.get(child_id) or existing
            if existing.status.is_terminal:
                predictions.update(child_id, {"callback": rebound})
                existing = existing.model_copy(update={"callback": rebound})
        if existing.status.is_terminal:
            self.completion.notify(existing)

    def _condition_holds(self, context: EnsembleContext, step_name: str, when: Mapping[str, Any]) -> bool:
        """Evaluate a step's ``when`` over the request, the earlier steps' outputs and the metadata."""
        condition = parse_condition(dict(when), step=step_name)
        scope, _ = self._scope(context, step_name, referenced_roots(condition_paths(condition)), needs_raw=False)
        return evaluate(condition, scope)

    def _context(self, parent_id: str, execution: Mapping[str, Any] | None) -> EnsembleContext:
        """The step context from the execution input, or else from the records (one read each)."""
        carried = (execution or {}).get("context")
        if isinstance(carried, Mapping) and carried.get("prediction_id") == parent_id:
            return EnsembleContext.model_validate(carried)
        ports = self.ports
        parent = ports.predictions.get(parent_id)
        if parent is None:
            raise LookupError(f"ensemble prediction '{parent_id}' does not exist")
        ensemble = ports.catalog.get(parent.service)
        if ensemble is None or ensemble.ensemble is None:
            raise LookupError(f"service '{parent.service}' is not an ensemble")
        # The same draw as process-input's (a hash of the ensemble prediction's ID or sticky key).
        fanout, targets, assignments, shadow_targets = self.dispatch.step_targets(parent, ensemble)
        members = {step: [m["service"] for m in listed] for step, listed in fanout.items()}
        return EnsembleContext.of(parent, ensemble, targets, members, assignments, shadow_targets)

    def _target(
        self, context: EnsembleContext, step_name: str, step: EnsembleStep, member: str | None
    ) -> tuple[str, Service | None]:
        """The service a step calls and its catalog entry: its registered target, or a member of its
        fan-out task (None for a target missing from the catalog: dispatch then fails the step).

        The state machine names the member of a fan-out; anything else it passes is not trusted.
        """
        if step.service is not None:
            if member not in (None, step.service):
                raise LookupError(f"step '{step_name}' calls '{step.service}', not '{member}'")
            return step.service, context.targets.get(step.service)
        assert step.fan_out is not None
        if member is None:
            raise LookupError(f"fan-out step '{step_name}' was invoked without a member service")
        target = context.targets.get(member)
        if target is None:
            entry = self.ports.catalog.get(member)
            # The version this ensemble prediction draws for it, as process-input would have drawn.
            target = (
                entry.at_version(draw(entry, metadata=context.metadata, draw_id=context.prediction_id).version)
                if entry
                else None
            )
        if target is None or step.fan_out.task not in target.tasks:
            raise LookupError(f"'{member}' is not a model of task '{step.fan_out.task}' (step '{step_name}')")
        return member, target

    def _map_input(self, context: EnsembleContext, step_name: str, step: EnsembleStep) -> Any:
        needs_raw = isinstance(step.mapping, dict) and RAW_KEY in step.mapping
        scope, raw = self._scope(context, step_name, referenced_roots(step.mapping), needs_raw=needs_raw)
        return evaluate_mapping(
            step.mapping, scope, step=step_name, raw_input=raw, raw_content_type=context.content_type
        )

    def _scope(
        self, context: EnsembleContext, step_name: str, roots: set[Any], *, needs_raw: bool
    ) -> tuple[dict[str, Any], bytes | None]:
        """``{"input", "steps", "metadata"}`` with what ``roots`` read (and the raw upload if needed)."""
        raw: bytes | None = None
        request: Any = context.request
        if any(root == "input" for root, _ in roots) and (needs_raw or not context.request_inline):
            assert context.input_uri is not None
            raw = self.ports.objects.read(context.input_uri)
            if not needs_raw and is_json_type(context.content_type):
                try:
                    request = json.loads(raw)
                except ValueError:
                    raise MappingError("the uploaded input is not valid JSON", step=step_name) from None
        wanted = {name for root, name in roots if root == "steps"}
        outputs: dict[str, Any] = {}
        if wanted:
            # One consistent read: every finished step left its outcome on the ensemble's record.
            parent = self.ports.predictions.get(context.prediction_id)
            if parent is None:
                raise LookupError(f"ensemble prediction '{context.prediction_id}' does not exist")
            outputs = self.ensembles.ensemble_outputs(parent, None if None in wanted else {n for n in wanted if n})
        return {"input": request, "steps": outputs, "metadata": context.metadata}, raw

    def complete(
        self, parent_id: str, output_step: str | None, execution: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The state machine reached its end: store the ensemble's output and finish the parent.

        Usually the final step's notification has finished it already, and this only confirms. A
        declarative ensemble whose ``output`` is a mapping gets its result built here, over the
        request, every step's output and the metadata; a mapping that cannot be applied fails the
        ensemble with an error naming the output's key and path.
        """
        parent = self.ports.predictions.get(parent_id)
        if parent is None:
            raise LookupError(f"ensemble prediction '{parent_id}' does not exist")
        result: Any = None
        has_result = False
        if not parent.status.is_terminal and isinstance((execution or {}).get("context"), Mapping):
            context = self._context(parent_id, execution)
            if isinstance(context.output, dict):
                try:
                    scope, _ = self._scope(context, "output", referenced_roots(context.output), needs_raw=False)
                    mapped = evaluate_mapping(context.output, scope, step="output")
                    result, has_result = json.loads(mapped.body), True
                except (MappingError, ValueError) as error:
                    message = error.message if isinstance(error, MappingError) else f"the output is not JSON: {error}"
                    self.completion.finish(
                        parent_id,
                        succeeded=False,
                        error=PredictionError(code="MappingError", message=message, step="output"),
                    )
                    return {"prediction_id": parent_id, "status": "FAILED"}
        if has_result:
            finished = self.ensembles.complete_ensemble(parent, None, result=result)
        else:
            finished = self.ensembles.complete_ensemble(parent, output_step)
        return {"prediction_id": parent_id, "status": finished.status.value if finished else "UNKNOWN"}

    def fail(self, parent_id: str, error: Mapping[str, Any] | None) -> dict[str, Any]:
        """The state machine caught an error: fail the parent naming the step that failed.

        The failed step is found from the children records, not from the error's cause: Step
        Functions (and moto) may drop or truncate ``SendTaskFailure``'s cause.
        """
        predictions = self.ports.predictions
        parent = predictions.get(parent_id)
        if parent is None:
            raise LookupError(f"ensemble prediction '{parent_id}' does not exist")
        error_name = str((error or {}).get("Error", "States.Runtime"))
        cause = str((error or {}).get("Cause", ""))
        # The ensemble's steps: its shadows (children too) are no steps and never fail it.
        children = [child for child in predictions.children(parent_id) if not child.is_shadow]
        now = self.ports.clock()
        timed_out_step: str | None = None
        if error_name.startswith("States.Timeout") or error_name == "StepTimedOut":
            # The step's callback never came: fail the waiting child too, so nothing stays RUNNING.
            # The state machines name the step in the cause ("step 'x' timed out"); only that
            # step's children are failed: a sibling in another Parallel branch did not time out.
            timed_out_step = _step_of(cause)
            for child in children:
                if child.status is PredictionStatus.RUNNING and timed_out_step in (None, child.step):
                    timed_out = predictions.transition(
                        child.prediction_id,
                        [PredictionStatus.RUNNING],
                        PredictionStatus.FAILED,
                        {
                            "finished_at": now,
                            "callback": Callback(),
                            "error": PredictionError(
                                code="Timeout",
                                step=child.step,
                                message="the step's model did not answer within the step's timeout",
                            ),
                            # Nobody is told (the ensemble fails), but its end is on the record.
                            **outbox(PredictionStatus.FAILED),
                        },
                    )
                    if timed_out is not None:
                        self.completion.notifiers.audit(timed_out)
            children = [child for child in predictions.children(parent_id) if not child.is_shadow]
        failed = [
            c
            for c in children
            if c.status is PredictionStatus.FAILED and not c.optional and timed_out_step in (None, c.step)
        ]
        if failed:
            first = min(failed, key=lambda c: c.finished_at or now)
            reason = first.error or PredictionError(code="StepFailed", message="the step failed")
            detail = PredictionError(code=reason.code, message=reason.message, step=first.step)
        elif timed_out_step is not None:
            # Its model answered between the timeout and now: the step still timed out.
            detail = PredictionError(
                code="Timeout",
                message="the step's model did not answer within the step's timeout",
                step=timed_out_step,
            )
        else:
            # Nothing on the records says why (get-transform-call itself failed, say): say what
            # the state machine caught, naming the step when the cause carries it as data.
            named = _step_of(cause)
            caught = (error or {}).get("Caught")
            if isinstance(caught, Mapping) and caught.get("Error"):
                message = f"{caught.get('Error')}: {caught.get('Cause') or 'no cause given'}"
            elif named is not None:
                message = f"step '{named}' failed ({error_name})"
            else:
                message = cause or f"the ensemble failed: {error_name}"
            detail = PredictionError(code=error_name, message=message, step=named)
        self.completion.finish(parent_id, succeeded=False, error=detail)
        return {"prediction_id": parent_id, "status": "FAILED"}


def _step_of(cause: str) -> str | None:
    """The step a state machine names in an error's cause.

    Generated state machines carry it as data (``{"step": "fraud"}``); hand-written ones as the
    documented convention ``step 'fraud' timed out``.
    """
    try:
        carried = json.loads(cause)
    except ValueError:
        carried = None
    if isinstance(carried, dict) and isinstance(carried.get("step"), str):
        return str(carried["step"])
    match = TIMED_OUT_CAUSE.match(cause)
    return match.group("step") if match else None

"""Ensemble steps (get-transform-call): build each step's input and run it as a child prediction."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from .errors import MappingError
from .lifecycle import DEADLINE_MARGIN_SECONDS, Gateway, output_key, step_input_key
from .mapping import evaluate_mapping, referenced_roots
from .models import (
    Callback,
    CallbackKind,
    EnsembleStep,
    ModelInfo,
    Prediction,
    PredictionError,
    PredictionStatus,
    Service,
)

JSON_TYPES = ("application/json", "text/json")
# The cause a state machine gives a step timeout (see statemachines/*.asl.json).
TIMED_OUT_CAUSE = re.compile(r"^step '(?P<step>[^']+)' timed out")


def child_prediction_id(parent_id: str, step: str, task_token: str) -> str:
    """The same task always gets the same child: a retried invocation finds its earlier child."""
    digest = hashlib.sha256(f"{parent_id}\x00{step}\x00{task_token}".encode()).hexdigest()[:20]
    return f"{parent_id[:40]}-s{digest}"


@dataclass
class EnsembleSteps:
    """The use cases behind get-transform-call."""

    gateway: Gateway

    def call(self, parent_id: str, step_name: str, task_token: str, member: str | None = None) -> dict[str, Any]:
        """Start one step: map its input, record the child holding the task token, dispatch it.

        A mapping that cannot be applied fails the step (and so the ensemble, unless the step is
        optional) with an error naming the step, the key and the path.
        """
        gateway = self.gateway
        parent = gateway.predictions.get(parent_id)
        if parent is None:
            raise LookupError(f"ensemble prediction '{parent_id}' does not exist")
        ensemble = gateway.catalog.get(parent.service)
        if ensemble is None or ensemble.ensemble is None or step_name not in ensemble.ensemble.steps:
            raise LookupError(f"service '{parent.service}' has no step '{step_name}'")
        step = ensemble.ensemble.steps[step_name]
        target_name, target = self._target(step_name, step, member)
        child_id = child_prediction_id(parent_id, step_name, task_token)
        timeout = target.timeout_seconds() if target else 900
        now = gateway.clock()
        child = Prediction(
            prediction_id=child_id,
            service=target_name,
            owner=parent.owner,
            status=PredictionStatus.RUNNING,
            created_at=now,
            updated_at=now,
            metadata=parent.metadata,
            parent_id=parent_id,
            step=step_name,
            callback=Callback(kind=CallbackKind.TASK_TOKEN, target=task_token),
            model=ModelInfo(
                endpoint=target.model.endpoint_name if target and target.model else None,
                version=target.version if target else None,
            ),
            started_at=now,
            deadline_at=now + timedelta(seconds=timeout + DEADLINE_MARGIN_SECONDS),
            expires_at=parent.expires_at,
        )
        # A retried invocation (same task token) finds its child already created: create() says so,
        # and dispatch() goes on from wherever the first attempt stopped.
        try:
            mapped = self._map_input(parent, ensemble, step_name, step)
        except MappingError as error:
            if gateway.predictions.create(child):
                gateway.predictions.update(child_id, {"dispatched_at": now})
                gateway.finish(
                    child_id,
                    succeeded=False,
                    error=PredictionError(code=error.code, message=error.message, step=step_name),
                )
            return {"prediction_id": child_id, "status": "FAILED"}
        input_uri = gateway.objects.write(step_input_key(child_id), mapped.body, mapped.content_type)
        gateway.predictions.create(
            child.model_copy(update={"input_uri": input_uri, "content_type": mapped.content_type})
        )
        gateway.dispatch(child_id, target)
        return {"prediction_id": child_id, "status": "RUNNING"}

    def _target(self, step_name: str, step: EnsembleStep, member: str | None) -> tuple[str, Service | None]:
        """The service a step calls and its catalog entry: its registered target, or a member of its
        fan-out task (None for a target deleted since registration: dispatch then fails the step).

        The state machine names the member of a fan-out; anything else it passes is not trusted.
        """
        if step.service is not None:
            if member not in (None, step.service):
                raise LookupError(f"step '{step_name}' calls '{step.service}', not '{member}'")
            return step.service, self.gateway.catalog.get(step.service)
        assert step.fan_out is not None
        if member is None:
            raise LookupError(f"fan-out step '{step_name}' was invoked without a member service")
        target = self.gateway.catalog.get(member)
        if target is None or step.fan_out.task not in target.tasks:
            raise LookupError(f"'{member}' is not a model of task '{step.fan_out.task}' (step '{step_name}')")
        return member, target

    def _map_input(self, parent: Prediction, ensemble: Service, step_name: str, step: EnsembleStep) -> Any:
        roots = referenced_roots(step.mapping)
        raw: bytes | None = None
        request: Any = None
        if any(root == "input" for root, _ in roots):
            assert parent.input_uri is not None
            raw = self.gateway.objects.read(parent.input_uri)
            if parent.content_type.split(";")[0].strip() in JSON_TYPES:
                try:
                    request = json.loads(raw)
                except ValueError:
                    raise MappingError("the uploaded input is not valid JSON", step=step_name) from None
        wanted = {name for root, name in roots if root == "steps"}
        every_step = None in wanted
        outputs = self.step_outputs(parent, ensemble, None if every_step else wanted)
        context = {"input": request, "steps": outputs, "metadata": parent.metadata}
        return evaluate_mapping(
            step.mapping, context, step=step_name, raw_input=raw, raw_content_type=parent.content_type
        )

    def step_outputs(self, parent: Prediction, ensemble: Service, names: set[str | None] | None) -> dict[str, Any]:
        """Outputs of the finished steps of ``parent`` (all, or only ``names``), parsed as JSON.

        A fan-out step's output is a dict keyed by member service. A failed optional step
        contributes its declared default.
        """
        assert ensemble.ensemble is not None
        outputs: dict[str, Any] = {}
        children = sorted(self.gateway.predictions.children(parent.prediction_id), key=lambda c: c.created_at)
        for child in children:
            name = child.step or ""
            if names is not None and name not in names:
                continue
            spec = ensemble.ensemble.steps.get(name)
            if spec is None:
                continue
            if child.status is PredictionStatus.COMPLETED and child.output_uri:
                value = self._read_json(child.output_uri)
            elif child.status is PredictionStatus.FAILED and spec.optional:
                value = spec.default
            else:
                continue
            if spec.fan_out is not None:
                outputs.setdefault(name, {})[child.service] = value
            else:
                outputs[name] = value
        return outputs

    def _read_json(self, uri: str) -> Any:
        raw = self.gateway.objects.read(uri)
        try:
            return json.loads(raw)
        except ValueError:
            # Not JSON (an image, say): later steps can only pass it on as a reference.
            return {"output_uri": uri}

    def complete(self, parent_id: str, output_step: str | None) -> dict[str, Any]:
        """The state machine reached its end: store the ensemble's output and finish the parent."""
        gateway = self.gateway
        parent = gateway.predictions.get(parent_id)
        if parent is None:
            raise LookupError(f"ensemble prediction '{parent_id}' does not exist")
        if parent.status.is_terminal:
            return {"prediction_id": parent_id, "status": parent.status.value}
        ensemble = gateway.catalog.get(parent.service)
        assert ensemble is not None and ensemble.ensemble is not None
        outputs = self.step_outputs(parent, ensemble, None)
        document = {"result": outputs.get(output_step) if output_step else None, "steps": outputs}
        uri = gateway.objects.write(output_key(parent_id), json.dumps(document).encode(), "application/json")
        finished = gateway.finish(parent_id, succeeded=True, output_uri=uri, output_content_type="application/json")
        return {"prediction_id": parent_id, "status": finished.status.value if finished else "UNKNOWN"}

    def fail(self, parent_id: str, error: Mapping[str, Any] | None) -> dict[str, Any]:
        """The state machine caught an error: fail the parent naming the step that failed.

        The failed step is found from the children records, not from the error's cause: Step
        Functions (and moto) may drop or truncate ``SendTaskFailure``'s cause.
        """
        gateway = self.gateway
        parent = gateway.predictions.get(parent_id)
        if parent is None:
            raise LookupError(f"ensemble prediction '{parent_id}' does not exist")
        error_name = str((error or {}).get("Error", "States.Runtime"))
        cause = str((error or {}).get("Cause", ""))
        children = gateway.predictions.children(parent_id)
        ensemble = gateway.catalog.get(parent.service)
        steps = ensemble.ensemble.steps if ensemble and ensemble.ensemble else {}
        now = gateway.clock()
        timed_out_step: str | None = None
        if error_name.startswith("States.Timeout") or error_name == "StepTimedOut":
            # The step's callback never came: fail the waiting child too, so nothing stays RUNNING.
            # The state machines name the step in the cause ("step 'x' timed out"); only that
            # step's children are failed: a sibling in another Parallel branch did not time out.
            match = TIMED_OUT_CAUSE.match(cause)
            timed_out_step = match.group("step") if match else None
            for child in children:
                if child.status is PredictionStatus.RUNNING and timed_out_step in (None, child.step):
                    gateway.predictions.transition(
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
                        },
                    )
            children = gateway.predictions.children(parent_id)
        failed = [
            c
            for c in children
            if c.status is PredictionStatus.FAILED
            and not (c.step in steps and steps[c.step].optional)
            and timed_out_step in (None, c.step)
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
            detail = PredictionError(code=error_name, message=cause or f"the ensemble failed: {error_name}")
        gateway.finish(parent_id, succeeded=False, error=detail)
        return {"prediction_id": parent_id, "status": "FAILED"}

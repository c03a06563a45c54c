"""Ensemble outcomes: what a finished step leaves for the steps after it, and the ensemble's result.

Starting steps (get-transform-call, with the mapping DSL) is ``steps.py``; this module is what the
notifications of steps need, and it loads no mapping code.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .media_types import is_json_type
from .models import Prediction, PredictionStatus, StepOutcome
from .records import output_key

if TYPE_CHECKING:
    from .completion import Completion
    from .ports import GatewayPorts

COMPLETED = PredictionStatus.COMPLETED
RUNNING = PredictionStatus.RUNNING
# Small JSON outputs travel inline in the Step Functions state so that Choice states can read them
# (and on the ensemble's record, so that later steps read no S3 object).
INLINE_OUTPUT_LIMIT = 4096


@dataclass
class Ensembles:
    """The outcomes of an ensemble's steps, kept on its record, and its completion.

    Parameters
    ----------
    ports
        The gateway's shared ports.
    completion
        Finishes the ensemble's own prediction (and so tells whoever waits for it).
    """

    ports: GatewayPorts
    completion: Completion

    def step_finished(self, step: Prediction, output: bytes | None = None) -> StepOutcome:
        """Leave a finished step's outcome on its ensemble's record; finish the ensemble when the
        step's success ends it (``final_step``). Returns the outcome.

        The outcome is recorded before the caller resumes the workflow, so the steps the state
        machine runs next find it; the Complete task that follows an early finish finds it done.
        """
        outcome = self.step_outcome(step, output)
        parent = None
        if step.parent_id is not None:
            parent = self.ports.predictions.record_step_outcome(step.parent_id, step.prediction_id, outcome)
        if (
            step.status is COMPLETED
            and step.final_step
            and parent is not None
            and parent.status is RUNNING
            and _ends_ensemble(step, parent)
        ):
            self.complete_ensemble(parent, step.step)
        return outcome

    def step_outcome(self, step: Prediction, output: bytes | None = None) -> StepOutcome:
        """What a finished step leaves for the steps after it: small JSON output inline.

        ``output`` is the step's output when the caller has it; otherwise it is read from S3.
        """
        outcome = StepOutcome(
            step=step.step or "",
            service=step.service,
            fan_out=step.fan_out,
            status=step.status,
            started_at=step.started_at,
            finished_at=step.finished_at,
            model=step.model,
            error=step.error,
            optional=step.optional,
            default=json.loads(step.step_default) if step.step_default else None,
            output_uri=step.output_uri,
            content_type=step.output_content_type,
            shadow_versions=step.shadow_versions,
            model_started_at=step.model_started_at,
            model_finished_at=step.model_finished_at,
        )
        if step.status is COMPLETED and step.output_uri and is_json_type(step.output_content_type or ""):
            raw = output
            if raw is None:
                try:
                    raw = self.ports.objects.read(step.output_uri)
                except Exception:  # the reference still travels; readers fetch it themselves
                    raw = b""
            if 0 < len(raw) <= INLINE_OUTPUT_LIMIT:
                with contextlib.suppress(ValueError):
                    outcome.output = json.loads(raw)
                    outcome.inline = True
        return outcome

    def ensemble_outputs(self, parent: Prediction, names: set[str] | None = None) -> dict[str, Any]:
        """The outputs of the finished steps of ``parent`` (all, or only ``names``), parsed as JSON.

        A fan-out step's output is a dict keyed by member service. A failed optional step
        contributes its declared default. An output that is not JSON is passed on as
        ``{"output_uri": ...}``.
        """
        outputs: dict[str, Any] = {}
        ordered = sorted(parent.step_outputs.values(), key=lambda o: (o.finished_at or parent.created_at, o.service))
        for outcome in ordered:
            if names is not None and outcome.step not in names:
                continue
            if outcome.status is COMPLETED:
                value = outcome.output if outcome.inline else self._read_output(outcome)
            elif outcome.optional or outcome.status is PredictionStatus.SKIPPED:
                value = outcome.default
            else:
                continue
            if outcome.fan_out:
                outputs.setdefault(outcome.step, {})[outcome.service] = value
            else:
                outputs[outcome.step] = value
        return outputs

    def _read_output(self, outcome: StepOutcome) -> Any:
        if not outcome.output_uri:
            return None
        # An output without a content type may still be JSON: try it.
        if outcome.content_type is None or is_json_type(outcome.content_type):
            with contextlib.suppress(ValueError):
                return json.loads(self.ports.objects.read(outcome.output_uri))
        # Not JSON (an image, say): later steps can only pass it on as a reference.
        return {"output_uri": outcome.output_uri}

    def complete_ensemble(
        self, parent: Prediction, output_step: str | None, *, result: Any = None
    ) -> Prediction | None:
        """Store an ensemble's output document and finish it (a no-op once it is terminal).

        The document's ``result`` is ``output_step``'s output, or ``result`` when given (an
        output mapping's value).
        """
        if parent.status.is_terminal:
            return parent
        outputs = self.ensemble_outputs(parent)
        if output_step:
            result = outputs.get(output_step)
        document = {"result": result, "steps": outputs}
        uri = self.ports.objects.write(
            output_key(parent.prediction_id), json.dumps(document).encode(), "application/json"
        )
        return self.completion.finish(
            parent.prediction_id, succeeded=True, output_uri=uri, output_content_type="application/json"
        )


def _ends_ensemble(step: Prediction, parent: Prediction) -> bool:
    """Whether the success of ``step`` (a final step) leaves nothing else to run in ``parent``.

    A single step: yes. A member of a fan-out: once every member has succeeded (counted by service,
    so a retried member counts once).
    """
    if not step.fan_out:
        return True
    if not step.fan_out_size:
        return False
    succeeded = {
        outcome.service
        for outcome in parent.step_outputs.values()
        if outcome.step == step.step and outcome.status is COMPLETED
    }
    return len(succeeded) >= step.fan_out_size


def task_result(step: Prediction, outcome: StepOutcome) -> dict[str, Any]:
    """What a finished step passes on in the Step Functions state: a reference, small output inline
    (so that Choice states can read it)."""
    result: dict[str, Any] = {
        "prediction_id": step.prediction_id,
        "status": step.status.value,
        "output_uri": step.output_uri,
        "content_type": step.output_content_type,
    }
    if outcome.inline:
        result["output"] = outcome.output
    return result

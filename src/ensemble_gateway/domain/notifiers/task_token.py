"""``CallbackKind.TASK_TOKEN``: an ensemble step ended; its state machine waits on the token."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..ensembles import task_result
from ..models import Prediction, PredictionError, PredictionStatus

if TYPE_CHECKING:
    from ..ensembles import Ensembles
    from ..ports import GatewayPorts


@dataclass
class TaskTokenNotifier:
    """Leaves the step's outcome on its ensemble (finishing the ensemble when the step ends it),
    then answers the waiting task: success, a skipped success, or ``StepFailed`` naming the step.

    Step Functions takes one answer per token; a duplicate's answer is refused as stale, harmlessly.

    Parameters
    ----------
    ports
        The gateway's shared ports (the workflow engine answers the token).
    ensembles
        Records the step's outcome and completes the ensemble.
    """

    ports: GatewayPorts
    ensembles: Ensembles

    def notify(self, prediction: Prediction, output: bytes | None) -> None:
        """Record the outcome of the step ``prediction``, then answer its task token."""
        token = prediction.callback.target
        if not token:
            return
        step = prediction
        outcome = self.ensembles.step_finished(step, output)
        workflows = self.ports.workflows
        if step.status is PredictionStatus.COMPLETED:
            workflows.succeed_task(token, task_result(step, outcome))
            return
        if step.optional or step.status is PredictionStatus.SKIPPED:
            # The ensemble goes on without it (failed but optional, or its ``when`` was false);
            # later mappings see the step's declared default.
            workflows.succeed_task(token, {**task_result(step, outcome), "skipped": True})
            return
        error = step.error or PredictionError(code="StepFailed", message="the step failed")
        workflows.fail_task(
            token,
            "StepFailed",
            json.dumps(
                {
                    "step": step.step,
                    "prediction_id": step.prediction_id,
                    "code": error.code,
                    "message": error.message,
                }
            ),
        )

"""Completion: a running prediction becomes COMPLETED or FAILED once, and whoever waits is told.

Every finish (a model's notification, a real-time answer, a refused dispatch, an ensemble's end)
comes through :meth:`Completion.finish`, written for at-least-once delivery: the transition is a
conditional write, and a duplicate finds the record terminal and only re-drives the callback.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .audit import outbox
from .models import Prediction, PredictionError, PredictionStatus
from .notifications import InferenceResult, model_failure_message

if TYPE_CHECKING:
    from .notifiers import Notifiers
    from .ports import GatewayPorts

RUNNING = PredictionStatus.RUNNING


@dataclass
class Completion:
    """Finishes predictions and hands each terminal record to the notifier of its callback kind.

    Parameters
    ----------
    ports
        The gateway's shared ports.
    notifiers
        The notifier of each callback kind (see ``domain/notifiers``).
    """

    ports: GatewayPorts
    notifiers: Notifiers

    def inference_finished(self, result: InferenceResult) -> None:
        """Handle one SageMaker (or gateway) ``InferenceResult`` notification."""
        # SageMaker's receipt of the request and its answer: the model's share of the time.
        timing = result.model_times()
        if result.succeeded:
            self.finish(
                result.inference_id,
                succeeded=True,
                output_uri=result.response_parameters.output_location,
                output_content_type=result.response_parameters.content_type,
                extra=timing,
            )
        else:
            reason = result.failure_reason or "the model failed"
            # The user reads the model's own message; SageMaker's whole reason stays in the log (and
            # the failure object SageMaker wrote, at failure_uri).
            self.ports.log("model failed", prediction_id=result.inference_id, failure_reason=reason)
            self.finish(
                result.inference_id,
                succeeded=False,
                failure_uri=result.failure_location,
                error=PredictionError(code="ModelError", message=model_failure_message(reason)),
                extra=timing,
            )

    def finish(
        self,
        prediction_id: str,
        *,
        succeeded: bool,
        output_uri: str | None = None,
        output_content_type: str | None = None,
        failure_uri: str | None = None,
        error: PredictionError | None = None,
        extra: Mapping[str, Any] | None = None,
        output_body: bytes | None = None,
    ) -> Prediction | None:
        """Move a RUNNING prediction to COMPLETED or FAILED once, then notify.

        ``extra`` are further fields written in the same conditional update. ``output_body`` is the
        output when the caller has it in memory (a real-time answer): a step's outcome then reads
        nothing back from S3.

        A duplicate finds the record terminal and only re-drives the callback: task tokens answer
        once, webhooks are delivered once per terminal status, events carry an ``event_id``. A
        cancelled record is left alone: the answer came too late, and nothing waits for it.

        Returns
        -------
        Prediction or None
            The record as it is now; None for an unknown prediction.
        """
        ports = self.ports
        now = ports.clock()
        changes: dict[str, Any] = {**(extra or {}), "finished_at": now}
        if succeeded:
            changes.update(output_uri=output_uri, output_content_type=output_content_type)
        else:
            changes.update(error=error, failure_uri=failure_uri)
        target = PredictionStatus.COMPLETED if succeeded else PredictionStatus.FAILED
        changes.update(outbox(target))
        moved = ports.predictions.transition(prediction_id, [RUNNING], target, changes)
        if moved is None:
            current = ports.predictions.get(prediction_id)
            if current is None:
                ports.log("notification for unknown prediction", prediction_id=prediction_id)
                return None
            if not current.status.is_terminal:
                # PENDING_UPLOAD: a notification cannot precede the upload; refuse to guess.
                ports.log(
                    "notification for a prediction that is not running",
                    prediction_id=prediction_id,
                    status=current.status,
                )
                return current
            if current.status is PredictionStatus.CANCELLED:
                # The model's late answer to a prediction its owner cancelled: the cancel told whoever
                # waits (and a step's execution is stopped): nothing to re-drive, nothing to record.
                ports.log("notification for a cancelled prediction ignored", prediction_id=prediction_id)
                return current
            ports.log(
                "duplicate or late notification: re-driving callback only",
                prediction_id=prediction_id,
                status=current.status,
            )
            self.notify(current)
            return current
        ports.log("prediction finished", prediction_id=prediction_id, status=moved.status)
        self.notify(moved, output=output_body)
        return moved

    def notify(self, prediction: Prediction, output: bytes | None = None) -> None:
        """Tell whoever waits that ``prediction`` is terminal (``output``: its output, if in memory)."""
        self.notifiers.notify(prediction, output)

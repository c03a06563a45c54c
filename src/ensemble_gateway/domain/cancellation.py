"""Cancellation: the owner ends a prediction that has not ended (``POST /predictions/{id}/cancel``).

``PENDING_UPLOAD`` or ``RUNNING`` becomes ``CANCELLED`` (terminal) with one conditional write, and
whoever waits is told once (webhook or event type ``prediction.cancelled``). The record keeps the
reason in ``error`` (``{"code": "Cancelled", ...}``), as an expired one keeps ``UploadExpired``.

What was already under way is stopped, or its late answer ignored:

- a model cannot be called back (SageMaker has no cancel for an async inference): its answer,
  when it comes, finds the record terminal and changes nothing (``completion.finish`` moves only
  RUNNING records, and re-drives no callback of a cancelled one);
- an ensemble's Step Functions execution is stopped *before* the terminal write (as the sweeper
  does on a timeout): no step starts after the prediction is declared cancelled, and an error
  stopping it leaves the record RUNNING for the client to retry; its running steps become
  ``CANCELLED`` too (recorded on the ensemble's record), nested ensembles stopped likewise, and
  a step's task is never answered: the execution is gone.

Cancelling a cancelled prediction again answers it as it is and re-does the steps and the
notification (a retry after a failure past the terminal write); any other ended prediction is a
409 naming its status.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .audit import outbox
from .errors import ConflictError, NotFoundError
from .models import Client, Prediction, PredictionError, PredictionStatus, Service
from .read_model import owned_prediction

if TYPE_CHECKING:
    from .ensembles import Ensembles
    from .notifiers import Notifiers
    from .ports import GatewayPorts

CANCELLED = PredictionStatus.CANCELLED
RUNNING = PredictionStatus.RUNNING
PENDING = PredictionStatus.PENDING_UPLOAD
CANCELLABLE = (PENDING, RUNNING)
#: What a cancelled prediction says in ``error``.
CANCELLED_BY_CLIENT = "cancelled by the client"
# Nested ensembles deeper than this keep their running steps (the sweeper times them out).
MAX_NESTING = 5
# The status may move under a cancel (the upload arrives): decide again at most this often.
ATTEMPTS = 3


@dataclass
class Cancellation:
    """Ends predictions on their owner's request.

    Parameters
    ----------
    ports
        The gateway's shared ports (records, catalog, workflows).
    notifiers
        Tells whoever waits, as completion does.
    ensembles
        The outcome a cancelled step leaves on its ensemble's record.
    """

    ports: GatewayPorts
    notifiers: Notifiers
    ensembles: Ensembles

    def cancel(self, client: Client, prediction_id: str) -> Prediction:
        """Cancel the prediction ``prediction_id`` of ``client``; the record as it is now.

        Raises
        ------
        NotFoundError
            Unknown, another client's, a step, or past its retention (as ``GET``).
        ConflictError
            It had ended already (COMPLETED, FAILED or EXPIRED), or its status kept moving.
        """
        ports = self.ports
        prediction = owned_prediction(ports, client, prediction_id)
        for _ in range(ATTEMPTS):
            if prediction.status is CANCELLED:
                ports.log("prediction already cancelled: finishing the cancel", prediction_id=prediction_id)
                self._finish(prediction, self._service(prediction))
                return prediction
            if prediction.status not in CANCELLABLE:
                raise ConflictError(
                    f"prediction '{prediction_id}' has already ended {prediction.status.value}: "
                    "only a PENDING_UPLOAD or RUNNING prediction can be cancelled"
                )
            service = self._service(prediction)
            if prediction.status is RUNNING and service is not None and service.ensemble is not None:
                self._stop(prediction, service)
            cancelled = ports.predictions.transition(
                prediction_id,
                [prediction.status],
                CANCELLED,
                {
                    "finished_at": ports.clock(),
                    "error": PredictionError(code="Cancelled", message=CANCELLED_BY_CLIENT),
                    **outbox(CANCELLED),
                },
            )
            if cancelled is not None:
                ports.log("prediction cancelled", prediction_id=prediction_id, was=prediction.status)
                self._finish(cancelled, service)
                return cancelled
            # Its upload was accepted, it finished or expired, meanwhile: decide on what it is now.
            current = ports.predictions.get(prediction_id)
            if current is None:
                raise NotFoundError(f"prediction '{prediction_id}' does not exist")
            prediction = current
        raise ConflictError(f"prediction '{prediction_id}' kept changing while it was being cancelled; retry")

    def _finish(self, cancelled: Prediction, service: Service | None) -> None:
        """End the steps of a cancelled ensemble, then tell whoever waits (the document then
        shows the steps as they ended)."""
        if service is not None and service.ensemble is not None:
            self._cancel_steps(cancelled, depth=1)
        self.notifiers.notify(cancelled)

    def _cancel_steps(self, ensemble: Prediction, depth: int) -> None:
        """Cancel the running steps of ``ensemble``, and theirs when a step is itself an ensemble.

        Each step's outcome is left on the ensemble's record (its lineage without a query). No
        task is answered: the execution waiting on them was stopped. A step that finished just
        before keeps its outcome.
        """
        ports = self.ports
        # Its steps only: a shadow is no step, and runs on to its own end (nothing waits for it).
        running = [
            child
            for child in ports.predictions.children(ensemble.prediction_id)
            if child.status is RUNNING and not child.is_shadow
        ]
        if not running:
            return
        services = ports.catalog.get_many(sorted({child.service for child in running}))
        for child in running:
            service = services.get(child.service)
            nested = service is not None and service.ensemble is not None
            if nested:
                assert service is not None
                self._stop(child, service)
            ended = ports.predictions.transition(
                child.prediction_id,
                [RUNNING],
                CANCELLED,
                {
                    "finished_at": ports.clock(),
                    "error": PredictionError(
                        code="Cancelled", message=f"its ensemble was {CANCELLED_BY_CLIENT}", step=child.step
                    ),
                    **outbox(CANCELLED),
                },
            )
            if ended is None:
                continue
            ports.predictions.record_step_outcome(
                ensemble.prediction_id, ended.prediction_id, self.ensembles.step_outcome(ended)
            )
            # Nobody is told of the step (its execution is stopped), but its end is on the record.
            self.notifiers.audit(ended)
            if nested and depth < MAX_NESTING:
                self._cancel_steps(ended, depth + 1)

    def _stop(self, prediction: Prediction, service: Service) -> None:
        """Stop the execution of an ensemble prediction (named after it); none is not an error."""
        version = prediction.model.version
        # A prediction of another version than the primary one runs that version's state machine.
        served = service.at_version(version.split("/", 1)[0]) if version else None
        spec = (served or service).ensemble
        assert spec is not None
        arn = spec.state_machine_arn
        if not arn:
            return
        stopped = self.ports.workflows.stop(arn, prediction.prediction_id, "Cancelled", CANCELLED_BY_CLIENT)
        self.ports.log(
            "stopped the execution of a cancelled ensemble" if stopped else "cancelled ensemble had no execution",
            prediction_id=prediction.prediction_id,
            service=service.name,
        )

    def _service(self, prediction: Prediction) -> Service | None:
        return self.ports.catalog.get(prediction.service)

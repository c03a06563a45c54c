"""Sweeping: every accepted prediction ends, even when the event that would end it never comes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from .audit import outbox
from .models import BatchStatus, Prediction, PredictionError, PredictionStatus, Service
from .records import DEADLINE_MARGIN_SECONDS

if TYPE_CHECKING:
    from .auditing import Auditing
    from .notifiers import Notifiers
    from .ports import BatchQueue, BatchStore, GatewayPorts

RUNNING = PredictionStatus.RUNNING
PENDING = PredictionStatus.PENDING_UPLOAD


@dataclass
class Sweeping:
    """Expires predictions never uploaded and fails those whose model never answered.

    Parameters
    ----------
    ports
        The gateway's shared ports.
    notifiers
        Tells whoever waits, as completion does.
    auditing
        Delivers the decision records left pending (a crash after a terminal write).
    """

    ports: GatewayPorts
    notifiers: Notifiers
    auditing: Auditing | None = None
    # The batches and their queue (None: the gateway has none).
    batches: BatchStore | None = None
    batch_queue: BatchQueue | None = None

    def sweep(self, limit: int = 100) -> int:
        """Expire or time out the overdue predictions (at most ``limit`` of each status), and
        move stalled batches; how many predictions and batches."""
        now = self.ports.clock()
        swept = 0
        for status in (PENDING, RUNNING):
            for prediction in self.ports.predictions.overdue(status, now, limit):
                if self.expire_or_timeout(prediction) is not None:
                    swept += 1
        if self.auditing is not None:
            try:
                self.auditing.replay(limit)
            except Exception as error:
                # The outbox keeps them: the next sweep tries again; expiry must not stop for it.
                self.ports.log("pending decision records not replayed", error=f"{type(error).__name__}: {error}")
        return swept + self.sweep_batches(limit)

    def sweep_batches(self, limit: int = 100) -> int:
        """Every batch ends, even when the tick that would move it is lost.

        A batch still awaiting its manifest after its upload form expired is FAILED (the driver
        then writes its empty result and tells its owner); a batch with no progress for two
        minutes (RUNNING, or FAILED / CANCELLED with items still running) gets a reconciling tick:
        the driver counts the items that ended without being counted, and goes on.
        """
        if self.batches is None or self.batch_queue is None:
            return 0
        now = self.ports.clock()
        moved = 0
        for batch in self.batches.due(BatchStatus.PENDING_UPLOAD, now, limit):
            if batch.manifest_uri is not None:
                # Given by URI: no form to expire; its first tick was lost, queue it again.
                self.batches.update(batch.batch_id, {"due_at": now + timedelta(minutes=2)})
                self.batch_queue.enqueue({"batch_id": batch.batch_id})
                moved += 1
                continue
            expired = self.batches.transition(
                batch.batch_id,
                [BatchStatus.PENDING_UPLOAD],
                BatchStatus.FAILED,
                {
                    "error": PredictionError(
                        code="UploadExpired", message="no manifest was uploaded before the upload URL expired"
                    ),
                    "due_at": now,
                },
            )
            if expired is not None:
                self.batch_queue.enqueue({"batch_id": batch.batch_id})
                moved += 1
        for status in (BatchStatus.RUNNING, BatchStatus.FAILED, BatchStatus.CANCELLED):
            for batch in self.batches.due(status, now, limit):
                if batch.finished_at is not None:
                    continue
                # Looked at again in two minutes unless the tick makes progress first.
                self.batches.update(batch.batch_id, {"due_at": now + timedelta(minutes=2)})
                self.batch_queue.enqueue({"batch_id": batch.batch_id, "reconcile": True})
                self.ports.log("stalled batch ticked", batch_id=batch.batch_id, status=batch.status)
                moved += 1
        return moved

    def expire_or_timeout(self, prediction: Prediction) -> Prediction | None:
        """End one record past its deadline: PENDING_UPLOAD → EXPIRED, RUNNING → FAILED (Timeout).

        Returns the ended record, or None when it is no longer in either status.
        """
        ports = self.ports
        if prediction.status is PENDING:
            moved = ports.predictions.transition(
                prediction.prediction_id,
                [PENDING],
                PredictionStatus.EXPIRED,
                {
                    "finished_at": ports.clock(),
                    "error": PredictionError(
                        code="UploadExpired", message="no input was uploaded before the upload URL expired"
                    ),
                    **outbox(PredictionStatus.EXPIRED),
                },
            )
        elif prediction.status is RUNNING:
            service = ports.catalog.get(prediction.service)
            version = prediction.model.version
            if service is not None and version is not None and version != service.version:
                # Another version than the primary one (a canary, a shadow): its own state machine.
                service = service.at_version(version) or service
            limit = service.timeout_seconds() if service else 0
            if service is not None and service.ensemble is not None:
                message = (
                    f"no result within {limit} s (the ensemble's timeout) plus {DEADLINE_MARGIN_SECONDS} s; "
                    "the ensemble never finished and its execution was stopped"
                )
                # Stopped before the terminal write: no step of it starts after the prediction is
                # declared failed, and a transient error leaves the record RUNNING for the next sweep.
                self._stop_execution(prediction, service, message)
            else:
                message = (
                    f"no result within {limit} s (the service's queue time and invocation timeout) "
                    f"plus {DEADLINE_MARGIN_SECONDS} s; the model never answered"
                )
            moved = ports.predictions.transition(
                prediction.prediction_id,
                [RUNNING],
                PredictionStatus.FAILED,
                {
                    "finished_at": ports.clock(),
                    "error": PredictionError(code="Timeout", message=message),
                    **outbox(PredictionStatus.FAILED),
                },
            )
        else:
            return None
        if moved is not None:
            self.notifiers.notify(moved)
        return moved

    def _stop_execution(self, prediction: Prediction, service: Service, message: str) -> None:
        """Stop the Step Functions execution of an ensemble prediction (named after it).

        An execution that has already finished, or was never started, is not an error.
        """
        assert service.ensemble is not None
        arn = service.ensemble.state_machine_arn
        if not arn:
            return
        stopped = self.ports.workflows.stop(arn, prediction.prediction_id, "Timeout", message)
        self.ports.log(
            "stopped the execution of a timed-out ensemble" if stopped else "timed-out ensemble had no execution",
            prediction_id=prediction.prediction_id,
            service=service.name,
        )

"""The read model: a prediction as its owner sees it (``GET /predictions/{id}``, webhooks, events)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from .api import PredictionDocument, ResultDocument, StepDocument, step_document
from .errors import NotFoundError
from .models import PREDICTION_ID_PATTERN, Client, Prediction, PredictionStatus, Service

if TYPE_CHECKING:
    from .ports import GatewayPorts


def owned_prediction(ports: GatewayPorts, client: Client, prediction_id: str) -> Prediction:
    """The prediction ``prediction_id``, if ``client`` owns it (every route on one prediction).

    Raises
    ------
    NotFoundError
        Unknown, another client's, a step of an ensemble, or past its retention: all the same
        404 (no existence leak).
    """
    prediction = ports.predictions.get(prediction_id) if PREDICTION_ID_PATTERN.match(prediction_id) else None
    if prediction is None or prediction.owner != client.client_id or prediction.is_step:
        raise NotFoundError(f"prediction '{prediction_id[:64]}' does not exist")
    if prediction.expires_at is not None and prediction.expires_at < ports.clock().timestamp():
        raise NotFoundError(f"prediction '{prediction_id[:64]}' does not exist")
    return prediction


@dataclass
class ReadModel:
    """Documents of predictions, and the owner check in front of them."""

    ports: GatewayPorts

    def document(self, prediction: Prediction) -> PredictionDocument:
        """The public document of a prediction, with a fresh download URL when completed.

        An ensemble's ``steps`` are its children as they are now (one query of the ``by-parent``
        index), unless it has completed: every step has then left its outcome on its record.
        """
        steps = None
        if prediction.status is PredictionStatus.COMPLETED and prediction.step_outputs:
            # A completed ensemble: the lineage needs no query of the children.
            steps = _recorded_steps(prediction)
        else:
            service = self.ports.catalog.get(prediction.service)
            if service is not None and service.kind == "ensemble":
                children = sorted(
                    self.ports.predictions.children(prediction.prediction_id),
                    key=lambda child: (child.created_at, child.step or ""),
                )
                steps = [step_document(child) for child in children]
        return self._document(prediction, steps)

    def documents(self, predictions: Iterable[Prediction]) -> list[PredictionDocument]:
        """The documents of a page of ``GET /predictions``, in the same order.

        The same fields as :meth:`document`, for a bounded cost: one catalog read for the page
        (is each service an ensemble?), and an ensemble's ``steps`` from its own record (the steps
        that have finished, or were cancelled with it), never a query of its children per item.
        """
        listed = list(predictions)
        services: dict[str, Service] = (
            self.ports.catalog.get_many(sorted({p.service for p in listed})) if listed else {}
        )
        documents = []
        for prediction in listed:
            service = services.get(prediction.service)
            ensemble = (service is not None and service.kind == "ensemble") or bool(prediction.step_outputs)
            documents.append(self._document(prediction, _recorded_steps(prediction) if ensemble else None))
        return documents

    def _document(self, prediction: Prediction, steps: list[StepDocument] | None) -> PredictionDocument:
        ports = self.ports
        result = None
        if prediction.status is PredictionStatus.COMPLETED and prediction.output_uri:
            expiry = ports.config.result_url_expiry_seconds
            result = ResultDocument(
                url=ports.objects.presign_download(prediction.output_uri, expiry),
                content_type=prediction.output_content_type or "application/octet-stream",
                expires_at=ports.clock() + timedelta(seconds=expiry),
            )
        return PredictionDocument(
            prediction_id=prediction.prediction_id,
            service=prediction.service,
            status=prediction.status,
            created_at=prediction.created_at,
            updated_at=prediction.updated_at,
            metadata=prediction.metadata,
            model=prediction.model,
            input=prediction.input,
            result=result,
            error=prediction.error,
            steps=steps,
        )

    def get_owned(self, client: Client, prediction_id: str) -> Prediction:
        """See :func:`owned_prediction`."""
        return owned_prediction(self.ports, client, prediction_id)


def _recorded_steps(prediction: Prediction) -> list[StepDocument]:
    """The lineage an ensemble's record holds: one step per outcome, in the order they started."""
    outcomes = sorted(
        prediction.step_outputs.items(),
        key=lambda item: (item[1].started_at or prediction.created_at, item[1].step),
    )
    return [
        StepDocument(
            name=outcome.step,
            service=outcome.service,
            prediction_id=child_id,
            status=outcome.status,
            started_at=outcome.started_at,
            finished_at=outcome.finished_at,
            model=outcome.model,
            error=outcome.error,
        )
        for child_id, outcome in outcomes
    ]

"""The read model: a prediction as its owner sees it (``GET /predictions/{id}``, webhooks, events)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from .api import PredictionDocument, ResultDocument, ShadowDocument, StepDocument, step_document
from .audit import step_timing
from .errors import NotFoundError
from .models import (
    PREDICTION_ID_PATTERN,
    Client,
    ModelInfo,
    Prediction,
    PredictionStatus,
    Service,
    ShadowOutcome,
    StepOutcome,
)
from .notifiers.shadow import shadow_outcome
from .records import shadow_prediction_id
from .rollout import version_order

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
        ``shadows`` come from the record's shadow outcomes; a shadow that has not ended yet is
        read (one read per such shadow), and so is a finished ensemble's step that had shadows.
        """
        steps = None
        if prediction.status is PredictionStatus.COMPLETED and prediction.step_outputs:
            # A completed ensemble: the lineage needs no query of the children, only a read of
            # each step that had shadows (their outcomes are on the step's record).
            steps = _recorded_steps(prediction)
            for index, (child_id, outcome) in enumerate(_ordered_outcomes(prediction)):
                if outcome.shadow_versions:
                    child = self.ports.predictions.get(child_id)
                    if child is not None:
                        steps[index] = steps[index].model_copy(update={"shadows": self._shadows(child)})
        else:
            service = self.ports.catalog.get(prediction.service)
            if service is not None and service.kind == "ensemble":
                children = sorted(
                    # Its shadows are children too, but no steps.
                    (
                        child
                        for child in self.ports.predictions.children(prediction.prediction_id)
                        if not child.is_shadow
                    ),
                    key=lambda child: (child.created_at, child.step or ""),
                )
                steps = [
                    step_document(child).model_copy(update={"shadows": self._shadows(child)}) for child in children
                ]
        return self._document(prediction, steps, self._shadows(prediction))

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
            steps = _recorded_steps(prediction) if ensemble else None
            documents.append(self._document(prediction, steps, self._shadows(prediction, read_running=False)))
        return documents

    def _document(
        self, prediction: Prediction, steps: list[StepDocument] | None, shadows: list[ShadowDocument] | None = None
    ) -> PredictionDocument:
        result = None
        if prediction.status is PredictionStatus.COMPLETED and prediction.output_uri:
            result = self._result(prediction.output_uri, prediction.output_content_type)
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
            shadows=shadows,
        )

    def _result(self, uri: str, content_type: str | None) -> ResultDocument:
        ports = self.ports
        expiry = ports.config.result_url_expiry_seconds
        return ResultDocument(
            url=ports.objects.presign_download(uri, expiry),
            content_type=content_type or "application/octet-stream",
            expires_at=ports.clock() + timedelta(seconds=expiry),
        )

    def _shadows(self, prediction: Prediction, *, read_running: bool = True) -> list[ShadowDocument] | None:
        """The shadows of ``prediction``, in version order (None: it has none).

        An ended shadow is its recorded outcome. One that has not ended (no outcome yet) is read
        when ``read_running`` (else shown RUNNING from its version alone: a page of a list reads
        nothing per item); a shadow that was never created is left out.
        """
        if not prediction.shadow_versions and not prediction.shadow_outcomes:
            return None
        outcomes = {outcome.version: outcome for outcome in prediction.shadow_outcomes.values()}
        documents = []
        for version in sorted({*prediction.shadow_versions, *outcomes}, key=version_order):
            outcome = outcomes.get(version)
            if outcome is None:
                shadow_id = shadow_prediction_id(prediction.prediction_id, version)
                if not read_running:
                    documents.append(
                        ShadowDocument(
                            prediction_id=shadow_id,
                            service=prediction.service,
                            version=version,
                            status=PredictionStatus.RUNNING,
                            # Its endpoint is on its own record, which a page does not read.
                            model=ModelInfo(version=version),
                        )
                    )
                    continue
                shadow = self.ports.predictions.get(shadow_id)
                if shadow is None or not shadow.is_shadow:
                    continue
                # Running, or ended and its outcome not recorded (yet): the record as it is, its
                # output by reference (nothing is read from S3 for a document).
                outcome = shadow_outcome(shadow, None)
            documents.append(self._shadow_document(outcome))
        return documents or None

    def _shadow_document(self, outcome: ShadowOutcome) -> ShadowDocument:
        result = None
        if outcome.status is PredictionStatus.COMPLETED and outcome.output_uri and not outcome.inline:
            result = self._result(outcome.output_uri, outcome.content_type)
        return ShadowDocument(
            prediction_id=outcome.prediction_id,
            service=outcome.service,
            version=outcome.version,
            status=outcome.status,
            started_at=outcome.started_at,
            finished_at=outcome.finished_at,
            model=outcome.model,
            error=outcome.error,
            output=outcome.output if outcome.inline else None,
            result=result,
        )

    def get_owned(self, client: Client, prediction_id: str) -> Prediction:
        """See :func:`owned_prediction`."""
        return owned_prediction(self.ports, client, prediction_id)


def _ordered_outcomes(prediction: Prediction) -> list[tuple[str, StepOutcome]]:
    """An ensemble's step outcomes by child ID, in the order the steps started."""
    return sorted(
        prediction.step_outputs.items(),
        key=lambda item: (item[1].started_at or prediction.created_at, item[1].step),
    )


def _recorded_steps(prediction: Prediction) -> list[StepDocument]:
    """The lineage an ensemble's record holds: one step per outcome, in the order they started."""
    outcomes = _ordered_outcomes(prediction)
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
            timing=step_timing(
                outcome.started_at, outcome.model_started_at, outcome.model_finished_at, outcome.finished_at
            ),
        )
        for child_id, outcome in outcomes
    ]

"""``CallbackKind.EVENTBRIDGE``: an event on the gateway's EventBridge bus when a prediction ends."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import InvalidRequestError
from ..models import Callback, CallbackKind, Prediction
from . import event_type

if TYPE_CHECKING:
    from ..api import NotificationRequest
    from ..ports import EventPublisher, GatewayPorts
    from ..read_model import ReadModel

#: What ``callback_for`` answers when the gateway was deployed without a bus.
NO_BUS = "this gateway has no event bus configured; ask for a webhook or poll GET /predictions/{prediction_id}"


@dataclass
class EventBridgeNotifier:
    """Puts one event on the bus per terminal prediction: ``DetailType`` ``prediction.completed``,
    ``prediction.failed``, ``prediction.expired`` or ``prediction.cancelled``, ``Detail`` ``{"type", "timestamp",
    "event_id", "data"}`` where ``data`` is the ``GET /predictions/{id}`` document (a webhook's
    ``data``).

    Delivery is at least once: a duplicate of the event that ended the prediction (an SNS
    notification delivered twice, a redelivered S3 event, a retry after a crash past the terminal
    write) publishes the event again, and nothing is recorded on the prediction to prevent it.
    Every copy has the same ``event_id`` (``{prediction_id}:{type}``): consumers deduplicate on
    it. A failed publish raises, so the invocation fails and its event source retries it.

    Parameters
    ----------
    ports
        The gateway's shared ports (clock, logger).
    documents
        Renders the ``data`` document.
    publisher
        The bus; None when the gateway has none (requests for this channel are then refused).
    """

    ports: GatewayPorts
    documents: ReadModel
    publisher: EventPublisher | None = None

    def callback_for(self, notification: NotificationRequest) -> Callback | None:
        """``CallbackKind.EVENTBRIDGE`` for ``{"eventbridge": {}}``; None when not asked for.

        Raises
        ------
        InvalidRequestError
            The gateway has no event bus.
        """
        if notification.eventbridge is None:
            return None
        if self.publisher is None:
            raise InvalidRequestError(NO_BUS)
        return Callback(kind=CallbackKind.EVENTBRIDGE)

    def notify(self, prediction: Prediction, output: bytes | None) -> None:
        """Publish the prediction's terminal event (see the class for the at-least-once contract)."""
        if self.publisher is None:
            # Recorded while a bus was configured, finished after it was removed: nowhere to put it.
            self.ports.log(
                "no event bus configured: prediction event not published", prediction_id=prediction.prediction_id
            )
            return
        kind = event_type(prediction)
        detail = {
            "type": kind,
            "timestamp": self.ports.clock().isoformat().replace("+00:00", "Z"),
            "event_id": f"{prediction.prediction_id}:{kind}",
            "data": self.documents.document(prediction).model_dump(mode="json"),
        }
        self.publisher.publish(kind, detail)
        self.ports.log("prediction event published", prediction_id=prediction.prediction_id, event_type=kind)

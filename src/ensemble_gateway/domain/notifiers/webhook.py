"""``CallbackKind.WEBHOOK``: a signed POST to the client's URL, queued (``delivery.py`` sends it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..models import Callback, CallbackKind, Prediction
from ..webhooks import check_webhook_url
from . import event_type

if TYPE_CHECKING:
    from ..api import NotificationRequest
    from ..ports import GatewayPorts


def prediction_delivered_events(prediction: Prediction) -> set[str]:
    """The event types already delivered for ``prediction`` (from its recorded attempts)."""
    return {attempt.get("event_type", "") for attempt in prediction.webhook_attempts if attempt.get("delivered")}


@dataclass
class WebhookNotifier:
    """Checks a requested webhook URL at submission, and queues one webhook per terminal status.

    A duplicate of the event that ended the prediction queues the job again until it is
    delivered; delivery sends each event type once (``WebhookDelivery``).
    """

    ports: GatewayPorts

    def callback_for(self, notification: NotificationRequest) -> Callback | None:
        """``notification.webhook``'s URL, checked by the URL policy (SSRF); None without one.

        Raises
        ------
        InvalidRequestError
            The URL is refused (scheme, host, or an address that is not public).
        """
        if notification.webhook is None:
            return None
        target = check_webhook_url(
            notification.webhook.url,
            self.ports.resolve,
            allow_loopback_http=self.ports.config.allow_loopback_http_webhooks,
        )
        return Callback(kind=CallbackKind.WEBHOOK, target=target.url)

    def notify(self, prediction: Prediction, output: bytes | None) -> None:
        """Queue the webhook of the prediction's status, unless it was delivered already."""
        if not prediction.callback.target:
            return
        kind = event_type(prediction)
        if kind in prediction_delivered_events(prediction):
            return
        self.ports.webhooks.enqueue(
            {"prediction_id": prediction.prediction_id, "event_type": kind, "attempt": 0}, delay_seconds=0
        )

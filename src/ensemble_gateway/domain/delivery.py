"""Durable webhook delivery: one attempt per queue message, retried on the Standard Webhooks schedule."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from .errors import InvalidRequestError, WebhookTransportError
from .models import CallbackKind, Prediction, utcnow
from .notifiers.webhook import prediction_delivered_events
from .webhooks import CheckedWebhookTarget, check_webhook_url, event_body, retry_delay, signed_headers

if TYPE_CHECKING:
    from .auditing import Auditing
    from .batches import Batches
    from .metering import Metering
    from .models import Batch
    from .ports import ClientDirectory, GatewayPorts
    from .read_model import ReadModel

# How long one attempt may hold a webhook: well above the sender's total deadline per attempt
# (10 s, adapters/webhook_http.py), so that the attempt is over before a duplicate job may send.
SEND_LEASE_SECONDS = 30


@dataclass(frozen=True)
class WebhookResponse:
    status: int
    retry_after_seconds: int | None = None


class WebhookSender(Protocol):
    def post(self, target: CheckedWebhookTarget, headers: Mapping[str, str], body: str) -> WebhookResponse:
        """POST to the checked address (never re-resolving the host), within one total deadline.

        Raises
        ------
        WebhookTransportError
            No answer within the deadline (a slow receiver is retried like an unreachable one).
        """


def jitter() -> float:
    """A random fraction in [0, 1), to spread retries."""
    return random.random()


@dataclass
class WebhookDelivery:
    """Deliver one webhook job; schedule the next attempt or dead-letter it.

    Parameters
    ----------
    ports
        The gateway's shared ports (the predictions, the webhook queue, the URL policy).
    documents
        Renders the webhook's ``data`` (the ``GET /predictions/{id}`` document).
    clients
        The owners' webhook secrets.
    sender
        POSTs to the checked address.
    clock, random
        The time of each attempt, and the retry jitter.
    auditing
        Records each delivery that ended (delivered, gone, given up on) in the audit trail.
    metering
        Counts the webhooks given up on (``WebhookFailures``).
    batches
        The batches (a job ``{"batch_id", "event_type"}``: the batch's one webhook, its ``data``
        the ``GET /batches/{id}`` document); None: such jobs are dropped.
    """

    ports: GatewayPorts
    documents: ReadModel
    clients: ClientDirectory
    sender: WebhookSender
    clock: Callable[[], datetime] = field(default=utcnow)
    random: Callable[[], float] = field(default=jitter)
    auditing: Auditing | None = None
    metering: Metering | None = None
    batches: Batches | None = None

    def deliver(self, job: Mapping[str, Any]) -> str:
        """Run one attempt of ``job``; return what happened (for logs and tests)."""
        if "batch_id" in job:
            return self.deliver_batch(job)
        prediction_id = str(job["prediction_id"])
        event_type = str(job["event_type"])
        attempt = int(job.get("attempt", 0)) + 1
        not_before = job.get("not_before")
        now = self.clock()
        if not_before and datetime.fromisoformat(str(not_before)) > now:
            # SQS delays at most 15 minutes: longer waits are served in hops.
            remaining = int((datetime.fromisoformat(str(not_before)) - now).total_seconds()) + 1
            self.ports.webhooks.enqueue(dict(job), delay_seconds=remaining)
            return "waiting"
        prediction = self.ports.predictions.get(prediction_id)
        if prediction is None or prediction.callback.kind is not CallbackKind.WEBHOOK:
            return "dropped"
        if event_type in prediction_delivered_events(prediction):
            return "already-delivered"
        client = self.clients.get(prediction.owner)
        if client is None or not client.webhook_secrets:
            self._record(prediction_id, event_type, attempt, error="client has no webhook secret")
            self.ports.webhooks.dead_letter({**job, "reason": "client has no webhook secret"})
            return "dead-lettered"
        url = prediction.callback.target or ""
        try:
            target = check_webhook_url(
                url,
                self.ports.resolve,
                allow_loopback_http=self.ports.config.allow_loopback_http_webhooks,
            )
        except InvalidRequestError as refused:
            # Checked again at delivery: DNS may now point somewhere it must not.
            self._record(prediction_id, event_type, attempt, error=refused.message)
            self.ports.webhooks.dead_letter({**job, "reason": refused.message})
            return "refused"
        if not self.ports.predictions.claim_webhook(prediction_id, event_type, now, SEND_LEASE_SECONDS):
            # Another worker is sending this webhook right now (a duplicate job): look again once its
            # attempt is over; by then it is delivered (and this job ends) or its retry is scheduled.
            self.ports.webhooks.enqueue(dict(job), delay_seconds=SEND_LEASE_SECONDS)
            return "in-flight-elsewhere"
        try:
            return self._attempt(job, prediction, client.webhook_secrets, target, attempt, now)
        finally:
            self.ports.predictions.release_webhook(prediction_id, event_type)

    def _attempt(
        self,
        job: Mapping[str, Any],
        prediction: Prediction,
        secrets: list[str],
        target: CheckedWebhookTarget,
        attempt: int,
        now: datetime,
    ) -> str:
        prediction_id = prediction.prediction_id
        event_type = str(job["event_type"])
        document = self.documents.document(prediction).model_dump(mode="json")
        body = event_body(event_type, now.isoformat().replace("+00:00", "Z"), document)
        # The same id on every retry lets receivers deduplicate, as the spec asks.
        msg_id = f"msg_{prediction_id}_{prediction.status.value.lower()}"
        headers = signed_headers(secrets, msg_id, int(now.timestamp()), body)
        status: int | None = None
        retry_after: int | None = None
        error: str | None = None
        try:
            response = self.sender.post(target, headers, body)
            status, retry_after = response.status, response.retry_after_seconds
        except WebhookTransportError as failure:
            error = str(failure) or failure.__class__.__name__
        delivered = status is not None and 200 <= status < 300
        recorded = self._record(prediction_id, event_type, attempt, status=status, error=error, delivered=delivered)
        if delivered:
            self._audit(prediction, recorded)
            return "delivered"
        if status == 410:
            # Gone: the receiver asks us to stop; the result stays pollable.
            self._audit(prediction, recorded)
            return "gone"
        delay = retry_delay(attempt, self.random())
        if delay is None:
            self.ports.webhooks.dead_letter({**job, "attempt": attempt, "reason": f"gave up after {attempt} attempts"})
            if self.metering is not None:
                self.metering.webhook_failed(prediction)
            self._audit(prediction, recorded)
            return "dead-lettered"
        if retry_after is not None:
            delay = max(delay, min(retry_after, 86400))
        due = now + timedelta(seconds=delay)
        self.ports.webhooks.enqueue({**job, "attempt": attempt, "not_before": due.isoformat()}, delay_seconds=delay)
        return "retry-scheduled"

    def _record(
        self,
        prediction_id: str,
        event_type: str,
        attempt: int,
        *,
        status: int | None = None,
        error: str | None = None,
        delivered: bool = False,
    ) -> dict[str, Any]:
        recorded = {
            "event_type": event_type,
            "attempt": attempt,
            "at": self.clock().isoformat(),
            "status_code": status,
            "error": error,
            "delivered": delivered,
        }
        self.ports.predictions.append_webhook_attempt(prediction_id, recorded)
        return recorded

    def _audit(self, prediction: Prediction, attempt: Mapping[str, Any]) -> None:
        """The delivery's end in the audit trail: who was told, and when (never raises)."""
        if self.auditing is not None:
            self.auditing.delivery(prediction, attempt)

    def deliver_batch(self, job: Mapping[str, Any]) -> str:
        """One attempt of a batch's webhook (the same schedule, signature and dead-lettering as a
        prediction's; attempts are recorded on the batch, each event type delivered once)."""
        batch_id = str(job["batch_id"])
        event_type = str(job["event_type"])
        attempt = int(job.get("attempt", 0)) + 1
        now = self.clock()
        not_before = job.get("not_before")
        if not_before and datetime.fromisoformat(str(not_before)) > now:
            remaining = int((datetime.fromisoformat(str(not_before)) - now).total_seconds()) + 1
            self.ports.webhooks.enqueue(dict(job), delay_seconds=remaining)
            return "waiting"
        if self.batches is None:
            return "dropped"
        store = self.batches.store
        batch = store.get(batch_id)
        if batch is None or batch.callback.kind is not CallbackKind.WEBHOOK:
            return "dropped"
        if any(a.get("delivered") and a.get("event_type") == event_type for a in batch.webhook_attempts):
            return "already-delivered"

        def record(**outcome: Any) -> None:
            store.append_webhook_attempt(
                batch_id,
                {"event_type": event_type, "attempt": attempt, "at": self.clock().isoformat(), **outcome},
            )

        client = self.clients.get(batch.owner)
        if client is None or not client.webhook_secrets:
            record(status_code=None, error="client has no webhook secret", delivered=False)
            self.ports.webhooks.dead_letter({**job, "reason": "client has no webhook secret"})
            return "dead-lettered"
        try:
            target = check_webhook_url(
                batch.callback.target or "",
                self.ports.resolve,
                allow_loopback_http=self.ports.config.allow_loopback_http_webhooks,
            )
        except InvalidRequestError as refused:
            record(status_code=None, error=refused.message, delivered=False)
            self.ports.webhooks.dead_letter({**job, "reason": refused.message})
            return "refused"
        if not store.claim_webhook(batch_id, event_type, now, SEND_LEASE_SECONDS):
            self.ports.webhooks.enqueue(dict(job), delay_seconds=SEND_LEASE_SECONDS)
            return "in-flight-elsewhere"
        try:
            return self._attempt_batch(job, batch, client.webhook_secrets, target, attempt, now, record)
        finally:
            store.release_webhook(batch_id, event_type)

    def _attempt_batch(
        self,
        job: Mapping[str, Any],
        batch: Batch,
        secrets: list[str],
        target: CheckedWebhookTarget,
        attempt: int,
        now: datetime,
        record: Callable[..., None],
    ) -> str:
        assert self.batches is not None
        event_type = str(job["event_type"])
        document = self.batches.document(batch).model_dump(mode="json")
        body = event_body(event_type, now.isoformat().replace("+00:00", "Z"), document)
        msg_id = f"msg_{batch.batch_id}_{batch.status.value.lower()}"
        headers = signed_headers(secrets, msg_id, int(now.timestamp()), body)
        status: int | None = None
        retry_after: int | None = None
        error: str | None = None
        try:
            response = self.sender.post(target, headers, body)
            status, retry_after = response.status, response.retry_after_seconds
        except WebhookTransportError as failure:
            error = str(failure) or failure.__class__.__name__
        delivered = status is not None and 200 <= status < 300
        record(status_code=status, error=error, delivered=delivered)
        if delivered:
            return "delivered"
        if status == 410:
            return "gone"
        delay = retry_delay(attempt, self.random())
        if delay is None:
            self.ports.webhooks.dead_letter({**job, "attempt": attempt, "reason": f"gave up after {attempt} attempts"})
            return "dead-lettered"
        if retry_after is not None:
            delay = max(delay, min(retry_after, 86400))
        due = now + timedelta(seconds=delay)
        self.ports.webhooks.enqueue({**job, "attempt": attempt, "not_before": due.isoformat()}, delay_seconds=delay)
        return "retry-scheduled"

"""Auditing: every terminal prediction leaves one decision record in the audit store, exactly once
as far as its readers can tell.

The outbox is on the prediction's own record: the conditional write that ends a prediction also
sets ``audit_pending`` (``domain/audit.outbox``). :meth:`Auditing.record` (called by
``Notifiers.notify``, after the callback) builds the record, hands it to the :class:`AuditSink`
and removes the mark. Nothing of it may delay or fail the prediction: a failure is logged and the
mark stays; :meth:`Auditing.replay` (the sweeper, every minute) delivers what is still marked.

A crash between the delivery and the removal of the mark delivers the record twice, with the same
``record_id``: the audit readers deduplicate on it (``audit export`` does; an Athena query may
``GROUP BY record_id``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .audit import PAYLOAD_LIMIT, ObjectDigest, decision_record, delivery_record
from .models import TERMINAL_STATUSES, Prediction, Service

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .ports import AuditSink, GatewayPorts

#: The sweeper delivers only records that ended at least this long ago: younger ones are most
#: likely being delivered by the invocation that ended them.
REPLAY_GRACE_SECONDS = 60


@dataclass
class Auditing:
    """Builds and delivers decision records; re-delivers those left pending.

    Parameters
    ----------
    ports
        The gateway's shared ports (records, catalog, objects for digests, clock, logger).
    sink
        The audit store; None when the gateway has none (records then stay pending).
    """

    ports: GatewayPorts
    sink: AuditSink | None = None

    def record(self, prediction: Prediction, output: bytes | None = None) -> bool:
        """Deliver the decision record of a terminal ``prediction`` if it is still pending.

        ``output`` is its output when the caller has it in memory (no read from S3 to hash it).
        Never raises: a failure leaves the record pending for :meth:`replay`.

        Returns
        -------
        bool
            Whether a record was delivered now.
        """
        if self.sink is None or not prediction.audit_pending or not prediction.status.is_terminal:
            return False
        ports = self.ports
        try:
            record = self.build(prediction, output)
            self.sink.put([record])
        except Exception as error:
            ports.log(
                "decision record not delivered: the sweeper delivers it later",
                prediction_id=prediction.prediction_id,
                error=f"{type(error).__name__}: {error}",
            )
            return False
        try:
            ports.predictions.update(prediction.prediction_id, {"audit_pending": None})
        except Exception as error:
            # Delivered, but still marked: the sweeper delivers it again, with the same record_id.
            ports.log(
                "decision record delivered but still marked pending",
                prediction_id=prediction.prediction_id,
                error=f"{type(error).__name__}: {error}",
            )
        return True

    def build(self, prediction: Prediction, output: bytes | None = None) -> dict[str, Any]:
        """The decision record of ``prediction``, with the digests of its input and output."""
        ports = self.ports
        service = ports.catalog.get(prediction.service)
        payloads = service is not None and service.audit_payloads
        input_digest = self._input(prediction)
        output_digest = self._output(prediction, output)
        kept: dict[str, bytes] = {}
        if payloads:
            kept = self._payloads(input_digest, output_digest, output)
        return decision_record(
            prediction,
            service=self._served(service, prediction),
            input_digest=input_digest,
            output_digest=output_digest,
            recorded_at=ports.clock(),
            payloads=kept,
        )

    def replay(self, limit: int = 100) -> int:
        """Deliver the records still pending that ended before the grace period; how many."""
        if self.sink is None:
            return 0
        before = self.ports.clock() - timedelta(seconds=REPLAY_GRACE_SECONDS)
        delivered = 0
        for status in sorted(TERMINAL_STATUSES):
            for prediction in self.ports.predictions.audit_pending(status, before, limit):
                if self.record(prediction):
                    delivered += 1
        if delivered:
            self.ports.log("pending decision records delivered", count=delivered)
        return delivered

    def delivery(self, prediction: Prediction, attempt: Mapping[str, Any]) -> None:
        """Record a webhook delivery that ended (delivered, or given up on); never raises.

        Best effort: unlike a decision record it has no outbox (the attempts stay on the
        prediction record until its TTL).
        """
        if self.sink is None:
            return
        try:
            self.sink.put([delivery_record(prediction, attempt, self.ports.clock())])
        except Exception as error:
            self.ports.log(
                "webhook delivery record not delivered",
                prediction_id=prediction.prediction_id,
                error=f"{type(error).__name__}: {error}",
            )

    # -- digests ------------------------------------------------------------------------------
    def _input(self, prediction: Prediction) -> ObjectDigest | None:
        accepted = prediction.input
        if accepted is not None:
            # Fixed when the upload was accepted (a step: when its input was built), from the very
            # bytes the model read.
            return ObjectDigest(prediction.input_uri, accepted.sha256, accepted.size, accepted.content_type)
        if prediction.input_uri is None:
            return None
        return self._describe(prediction.input_uri, prediction.content_type)

    def _output(self, prediction: Prediction, output: bytes | None) -> ObjectDigest | None:
        if prediction.output_uri is None:
            return None
        if output is not None:
            return ObjectDigest(
                prediction.output_uri, hashlib.sha256(output).hexdigest(), len(output), prediction.output_content_type
            )
        return self._describe(prediction.output_uri, prediction.output_content_type)

    def _describe(self, uri: str, content_type: str | None) -> ObjectDigest:
        try:
            stored = self.ports.objects.describe(uri)
        except Exception as error:
            self.ports.log("object not described for the audit", uri=uri, error=f"{type(error).__name__}: {error}")
            stored = None
        if stored is None:
            return ObjectDigest(uri, None, None, content_type)
        return ObjectDigest(uri, stored.sha256, stored.size, content_type)

    def _payloads(
        self, input_digest: ObjectDigest | None, output_digest: ObjectDigest | None, output: bytes | None
    ) -> dict[str, bytes]:
        kept: dict[str, bytes] = {}
        for name, digest, body in (("input", input_digest, None), ("output", output_digest, output)):
            if digest is None or digest.uri is None or digest.size is None or digest.size > PAYLOAD_LIMIT:
                continue
            try:
                kept[name] = body if body is not None else self.ports.objects.read(digest.uri)
            except Exception:  # the reference and hash still stand
                continue
        return kept

    @staticmethod
    def _served(service: Service | None, prediction: Prediction) -> Service | None:
        """The catalog entry as the prediction's version serves it (its kind is the same)."""
        version = (prediction.model.version or "").split("/", 1)[0]
        if service is None or not version or version == service.version:
            return service
        return service.at_version(version) or service

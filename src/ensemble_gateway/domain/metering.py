"""Metering: the figures of every prediction that ends, for the dashboard and the alarms.

Each terminal prediction, step and shadow is measured once, where its decision record is written
(``Notifiers.notify``): a count, a failure count, its latency and, when a model answered, the
model's time against the gateway's (queue and overhead). Each set is put twice: with the service
as ``Service`` dimension, and with ``Service`` ``ALL`` (what the alarms watch: CloudWatch alarms
cannot aggregate across dimension values). Webhook deliveries that give up are counted too.

The figures come from the same fields as the decision record (``domain/audit.step_timing``), so
the dashboard and ``ensemble-gateway stats`` (which reads the records) agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .audit import record_kind, step_timing
from .models import Prediction, PredictionStatus

if TYPE_CHECKING:
    from .ports import GatewayPorts, MetricsSink

#: The ``Service`` dimension of the sets across all services.
ALL_SERVICES = "ALL"
#: The statuses counted as failures (a cancel is the client's choice, a skip the ensemble's).
FAILURES = frozenset({PredictionStatus.FAILED, PredictionStatus.EXPIRED})


def figures(prediction: Prediction) -> dict[str, tuple[float, str]]:
    """What a terminal prediction adds to the metrics: ``name → (value, unit)``."""
    finished = prediction.finished_at or prediction.updated_at
    started = prediction.started_at or prediction.created_at
    if prediction.status is PredictionStatus.SKIPPED:
        started = finished
    values: dict[str, tuple[float, str]] = {
        "Predictions": (1, "Count"),
        "Failures": (1 if prediction.status in FAILURES else 0, "Count"),
    }
    timing = step_timing(started, prediction.model_started_at, prediction.model_finished_at, finished)
    if timing is not None and prediction.status is not PredictionStatus.SKIPPED:
        values["LatencyMs"] = (timing.total_ms, "Milliseconds")
        for name, part in (
            ("QueueMs", timing.queue_ms),
            ("ModelMs", timing.model_ms),
            ("OverheadMs", timing.overhead_ms),
        ):
            if part is not None:
                values[name] = (part, "Milliseconds")
    return values


@dataclass
class Metering:
    """Puts the figures of ended predictions and failed webhooks on the metrics sink.

    Parameters
    ----------
    ports
        The gateway's shared ports (the logger).
    sink
        CloudWatch (EMF) on AWS; None: nothing is measured.
    """

    ports: GatewayPorts
    sink: MetricsSink | None = None

    def ended(self, prediction: Prediction) -> None:
        """Measure a terminal prediction; never raises (a metric must not fail a prediction)."""
        if self.sink is None or not prediction.status.is_terminal:
            return
        kind = record_kind(prediction)
        values = figures(prediction)
        self._put(values, {"Service": prediction.service, "Kind": kind})
        self._put(values, {"Service": ALL_SERVICES, "Kind": kind})

    def webhook_failed(self, prediction: Prediction) -> None:
        """Count a webhook given up on (dead-lettered after its schedule, or refused)."""
        if self.sink is None:
            return
        for service in (prediction.service, ALL_SERVICES):
            self._put({"WebhookFailures": (1, "Count")}, {"Service": service, "Kind": "webhook"})

    def _put(self, values: dict[str, tuple[float, str]], dimensions: dict[str, str]) -> None:
        assert self.sink is not None
        try:
            self.sink.put(values, dimensions)
        except Exception as error:
            self.ports.log("metrics not put", error=f"{type(error).__name__}: {error}", **dimensions)

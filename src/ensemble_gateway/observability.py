"""Powertools Logger and Metrics shared by the handlers, and opt-in X-Ray SDK tracing.

Why tracing is opt-in: the functions run with Lambda active tracing (``Tracing: Active``), which
records every invocation without any SDK. Powertools' Tracer adds subsegments per AWS call, but it
imports the X-Ray SDK (and botocore with it) at cold start: about 0.6 s here, more than boto3
itself. Set ``XRAY_SDK_TRACING=true`` on a function to get the subsegments anyway.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics

logger = Logger(service="ensemble-gateway")
metrics = Metrics(namespace="EnsembleGateway", service="ensemble-gateway")


def count(name: str, value: float = 1) -> None:
    """Add to a CloudWatch metric, unless metrics are disabled (as in the local runtime).

    Why not ``metrics.add_metric`` directly: with metrics disabled Powertools skips the flush at the
    end of each invocation but still prints the set once it holds 100 values, so a disabled metric
    would surface as EMF blobs on stdout every 100 predictions.
    """
    from aws_lambda_powertools.metrics.functions import is_metrics_disabled

    if not is_metrics_disabled():
        metrics.add_metric(name=name, unit="Count", value=value)


class EmfMetrics:
    """The metrics sink of the use cases (``domain/metering.py``): each set is one EMF document
    with its own dimensions, flushed at once (Powertools' ``EphemeralMetrics``: the handlers'
    shared ``metrics`` holds one dimension set per invocation, and a batch spans services)."""

    def put(self, values: Any, dimensions: Any) -> None:
        """Print ``values`` (``name → (value, unit)``) with ``dimensions`` as one EMF blob."""
        from aws_lambda_powertools.metrics import EphemeralMetrics
        from aws_lambda_powertools.metrics.functions import is_metrics_disabled

        if is_metrics_disabled():
            return
        one = EphemeralMetrics(namespace="EnsembleGateway")
        for name, value in dimensions.items():
            one.add_dimension(name=name, value=value)
        for name, (value, unit) in values.items():
            one.add_metric(name=name, unit=unit, value=value)
        one.flush_metrics()


def traced(handler: Callable[..., Any]) -> Callable[..., Any]:
    """``handler``, wrapped with Powertools' Tracer when the settings ask for X-Ray SDK tracing.

    Decided at the first invocation (cold start), from the settings model, so that importing a
    handler never imports the X-Ray SDK.
    """
    chosen: list[Callable[..., Any]] = []

    @functools.wraps(handler)
    def run(event: Any, context: Any, **kwargs: Any) -> Any:
        if not chosen:
            from .settings import get_settings

            if get_settings().xray_sdk_tracing:
                from aws_lambda_powertools import Tracer

                chosen.append(Tracer(service="ensemble-gateway").capture_lambda_handler(handler))
            else:
                chosen.append(handler)
        # Keyword arguments are the handler's injected dependencies (tests).
        return chosen[0](event, context, **kwargs)

    return run

"""Shadows: the same input also sent to a service's shadow versions, never answering it.

A shadow is a prediction record of its own (``callback`` ``CallbackKind.SHADOW``, ``parent_id``
the prediction it shadows, the *primary*), started after the primary was dispatched and
dispatched by the shadow-dispatch function from the shadow queue: the primary's path only
creates the record and queues one message per shadow version. From there a shadow runs as any
prediction does (an async endpoint's SNS notification finishes it through the notifications
function, a real-time answer finishes it at once, an ensemble version runs its own state
machine with the shadow as its ensemble prediction) with its own deadline (its version's own
timeout: the sweeper fails it when it never answers). When it ends, its notifier
(``notifiers/shadow.py``) leaves a :class:`~.models.ShadowOutcome` on the primary's record.

What a shadow can never do: be the result, feed a later step, fail or delay the primary.
:meth:`Shadows.start` never raises (anything that goes wrong is logged, and the shadow, if
created, marked FAILED), the primary waits for nothing of it, and a shadow (or a step of a
shadow ensemble) never starts shadows of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from .dispatch import DISPATCH_LEASE_SECONDS
from .models import (
    Callback,
    CallbackKind,
    ModelInfo,
    Prediction,
    PredictionError,
    PredictionStatus,
    Service,
)
from .records import DEADLINE_MARGIN_SECONDS, shadow_prediction_id

if TYPE_CHECKING:
    from .completion import Completion
    from .dispatch import Dispatch
    from .ports import GatewayPorts, ShadowQueue

RUNNING = PredictionStatus.RUNNING

__all__ = ["Shadows", "shadow_prediction_id"]


@dataclass
class Shadows:
    """Starts the shadows of a prediction and dispatches each one (the shadow-dispatch function).

    Parameters
    ----------
    ports
        The gateway's shared ports.
    dispatching
        Sends a shadow to its version's endpoint or state machine, as any prediction.
    completion
        Fails a shadow that cannot be started or dispatched (its notifier records that).
    queue
        The shadow queue; None when the gateway has none (shadows are then not started).
    """

    ports: GatewayPorts
    dispatching: Dispatch
    completion: Completion
    queue: ShadowQueue | None = None

    def start(self, primary: Prediction, targets: Sequence[Service]) -> None:
        """Send ``primary``'s input to each of ``targets`` as well (version entries, rollout
        stripped: ``service.at_version(v)``), once.

        Creates one RUNNING shadow record per target and queues its dispatch, then records the
        versions on the primary (``shadow_versions``). A duplicate call creates nothing twice (a
        shadow created but never dispatched is queued again: its dispatch is claimed once).
        Never raises: the primary is already on its way and nothing here may fail or hold it.
        """
        if not targets:
            return
        try:
            self._start(primary, targets)
        except Exception as error:  # the primary must never see a shadow's problem
            self.ports.log(
                "shadows not started", prediction_id=primary.prediction_id, error=f"{type(error).__name__}: {error}"
            )

    def _start(self, primary: Prediction, targets: Sequence[Service]) -> None:
        ports = self.ports
        if primary.under_shadow:
            ports.log("a shadow starts no shadows", prediction_id=primary.prediction_id)
            return
        if self.queue is None:
            ports.log("no shadow queue configured: shadows not started", prediction_id=primary.prediction_id)
            return
        if primary.input_uri is None:
            ports.log("shadows need the input in S3: not started", prediction_id=primary.prediction_id)
            return
        started: list[str] = []
        for target in targets:
            if target.name != primary.service:
                ports.log(
                    "shadow target of another service ignored",
                    prediction_id=primary.prediction_id,
                    target=target.name,
                )
                continue
            if self._start_one(primary, target):
                started.append(target.version)
        versions = list(dict.fromkeys([*primary.shadow_versions, *started]))
        if versions != primary.shadow_versions:
            # One write; the read model then knows which shadows to look for.
            ports.predictions.update(primary.prediction_id, {"shadow_versions": versions})

    def _start_one(self, primary: Prediction, target: Service) -> bool:
        """Create and queue the shadow of ``primary`` for ``target``; whether it exists now."""
        ports = self.ports
        shadow_id = shadow_prediction_id(primary.prediction_id, target.version)
        created = False
        try:
            now = ports.clock()
            shadow = Prediction(
                prediction_id=shadow_id,
                service=primary.service,
                owner=primary.owner,
                status=RUNNING,
                created_at=now,
                updated_at=now,
                content_type=primary.content_type,
                accept=primary.accept,
                metadata=primary.metadata,
                callback=Callback(kind=CallbackKind.SHADOW, target=primary.prediction_id),
                parent_id=primary.prediction_id,
                input_uri=primary.input_uri,
                input=primary.input,
                model=ModelInfo(
                    endpoint=target.model.endpoint_name if target.model is not None else None,
                    version=target.version,
                ),
                started_at=now,
                # Its own version's timeout: the sweeper ends a shadow that never answers, and
                # nothing of the primary waits for it meanwhile.
                deadline_at=now + timedelta(seconds=target.timeout_seconds() + DEADLINE_MARGIN_SECONDS),
                expires_at=primary.expires_at,
            )
            # Created without a dispatch claim: the shadow-dispatch function takes it.
            created = ports.predictions.create(shadow)
            if not created:
                existing = ports.predictions.get(shadow_id)
                if existing is None or not existing.is_shadow:
                    return False
                if existing.status is not RUNNING or existing.dispatched_at is not None:
                    return True  # started by an earlier attempt
                # Created by an attempt that may have stopped before queueing it: queue it again
                # (its dispatch is claimed once, a second message changes nothing).
            self.queue_dispatch(shadow_id)
            ports.log(
                "shadow started", prediction_id=primary.prediction_id, shadow_id=shadow_id, version=target.version
            )
            return True
        except Exception as error:
            ports.log(
                "shadow not started",
                prediction_id=primary.prediction_id,
                shadow_id=shadow_id,
                version=target.version,
                error=f"{type(error).__name__}: {error}",
            )
            if created:
                self._fail(shadow_id, "ShadowNotStarted", f"the shadow could not be queued: {type(error).__name__}")
            # Created now or before, it exists (a RUNNING one is failed by the sweeper if nobody
            # dispatches it); otherwise there is nothing to record.
            return created or ports.predictions.get(shadow_id) is not None

    def queue_dispatch(self, shadow_id: str) -> None:
        """Queue the dispatch of an existing shadow (the shadow-dispatch function takes it)."""
        assert self.queue is not None
        self.queue.enqueue({"shadow_id": shadow_id})

    def dispatch(self, shadow_id: str) -> None:
        """Send one shadow to its version (the shadow-dispatch function's one call), once.

        The dispatch is claimed with a lease as any prediction's: a duplicate message, or one for
        a shadow already dispatched or ended, changes nothing. An async endpoint is invoked with
        the shadow's ID as ``InferenceId`` (its notification finishes it); a real-time endpoint
        answers at once; an ensemble version starts its state machine with the shadow as the
        ensemble prediction. A version that is gone, or a refused dispatch, fails the shadow.

        Raises
        ------
        Exception
            An unexpected error (throttling, say): the message is retried once the lease ends.
        """
        ports = self.ports
        claimed = ports.predictions.claim_dispatch(shadow_id, ports.clock(), lease_seconds=DISPATCH_LEASE_SECONDS)
        if claimed is None:
            ports.log("shadow dispatch skipped: already dispatched, claimed or ended", shadow_id=shadow_id)
            return
        if not claimed.is_shadow:
            ports.log("not a shadow: left alone", prediction_id=shadow_id)
            return
        entry = ports.catalog.get(claimed.service)
        version = claimed.model.version
        served = entry.at_version(version) if entry is not None and version is not None else None
        if served is None:
            self._fail(
                shadow_id,
                "ShadowVersionGone",
                f"service '{claimed.service}' has no version '{version}' any more",
                dispatched=True,
            )
            return
        input_size = claimed.input.size if claimed.input is not None else None
        dispatched = self.dispatching.dispatch_claimed(claimed, served, input_size=input_size)
        # A real-time answer finished the shadow, marking it dispatched in the same write.
        realtime = served.model is not None and served.model.invocation == "realtime"
        if dispatched and not realtime:
            ports.predictions.update(shadow_id, {"dispatched_at": ports.clock()})
        ports.log("shadow dispatched", shadow_id=shadow_id, version=version, dispatched=dispatched)

    def _fail(self, shadow_id: str, code: str, message: str, *, dispatched: bool = False) -> None:
        extra = {"dispatched_at": self.ports.clock()} if dispatched else None
        try:
            self.completion.finish(
                shadow_id, succeeded=False, error=PredictionError(code=code, message=message), extra=extra
            )
        except Exception as error:  # left RUNNING: the sweeper fails it at its deadline
            self.ports.log("shadow not failed", shadow_id=shadow_id, error=f"{type(error).__name__}: {error}")

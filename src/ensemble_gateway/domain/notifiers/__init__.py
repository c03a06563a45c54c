"""Telling whoever waits that a prediction ended: one notifier per callback kind, one module each.

A notifier module owns its channel end to end: how a request asks for it (``callback_for``, for the
channels a client chooses in ``notification``) and what is done when a prediction recorded with
that callback ends (``notify``). Intake only calls :meth:`Notifiers.callback_for`; completion and
sweeping only call :meth:`Notifiers.notify`. To add a channel: a ``CallbackKind``, a field of
``NotificationRequest``, the notifier module, its adapter (behind a port), and the wiring
(``lifecycle.compose`` and bootstrap); intake and completion do not change.

- ``none``: nobody is told; the client polls.
- ``task_token``: an ensemble step; records its outcome on the ensemble and answers the task.
- ``webhook``: queues the Standard Webhooks delivery (``domain/delivery.py`` sends it).
- ``eventbridge``: puts an event on the gateway's bus.
- ``shadow``: a copy sent to a shadow version; leaves its outcome on the prediction it shadowed.
- ``batch``: an item of a batch; counts its outcome into the batch once and ticks the driver.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..errors import InvalidRequestError
from ..models import Callback, CallbackKind, Prediction

if TYPE_CHECKING:
    from ..api import NotificationRequest


class Notifier(Protocol):
    def notify(self, prediction: Prediction, output: bytes | None) -> None:
        """Tell whoever waits that ``prediction`` (as just recorded) is terminal.

        ``output`` is its output when the caller has it in memory (a real-time answer), else None.
        Called again for every duplicate of the event that ended it: a notifier is idempotent, or
        says in its docstring how a consumer tells a repeat.
        """


class Auditor(Protocol):
    def record(self, prediction: Prediction, output: bytes | None = None) -> bool:
        """Deliver the prediction's decision record if it is pending; never raises."""


class Meter(Protocol):
    def ended(self, prediction: Prediction) -> None:
        """Measure a terminal prediction; never raises."""


@runtime_checkable
class Channel(Notifier, Protocol):
    """A notifier a client may ask for in a request's ``notification``."""

    def callback_for(self, notification: NotificationRequest) -> Callback | None:
        """The callback to record when ``notification`` asks for this channel; None when it does not.

        Raises
        ------
        InvalidRequestError
            It asks for this channel, but in a way this gateway cannot serve (HTTP 400).
        """


def event_type(prediction: Prediction) -> str:
    """The event a terminal prediction announces: ``prediction.completed|failed|expired|cancelled``."""
    return f"prediction.{prediction.status.value.lower()}"


@dataclass
class Notifiers:
    """The notifier of each callback kind.

    Filled by the wiring after the use cases are built and read at each call, so a notifier that
    depends on a use case which itself notifies (the task token's: it finishes the ensemble) is
    registered last, without a cycle at construction.
    """

    by_kind: dict[CallbackKind, Notifier] = field(default_factory=dict)
    # Every terminal prediction passes through :meth:`notify`: its decision record is written
    # there, after the callback (see domain/auditing.py). None: no audit trail.
    auditor: Auditor | None = None
    # Measured there too: the dashboard's and the alarms' figures (domain/metering.py).
    meter: Meter | None = None

    def register(self, kind: CallbackKind, notifier: Notifier) -> None:
        """Make ``notifier`` the one of ``kind`` (replacing any before it)."""
        self.by_kind[kind] = notifier

    def notify(self, prediction: Prediction, output: bytes | None = None) -> None:
        """Hand a terminal ``prediction`` to the notifier of its callback kind.

        Raises
        ------
        LookupError
            No notifier is registered for the kind (a wiring error).
        """
        try:
            notifier = self.by_kind.get(prediction.callback.kind)
            if notifier is None:
                raise LookupError(f"no notifier is registered for callback kind '{prediction.callback.kind}'")
            notifier.notify(prediction, output)
        finally:
            # After the callback (the audit never delays whoever waits), and even when it failed:
            # the decision stands whether or not the callback went out.
            self.audit(prediction, output)

    def audit(self, prediction: Prediction, output: bytes | None = None) -> None:
        """Deliver the decision record of a terminal ``prediction`` that nobody is told about
        (a step ended with its cancelled ensemble); ``notify`` does it for the others.

        Measured once: on the pass that finds its record pending (a duplicate of the event that
        ended it finds the record delivered and the mark gone).
        """
        first = prediction.audit_pending is not None
        if self.auditor is not None:
            self.auditor.record(prediction, output)
        if self.meter is not None and first:
            self.meter.ended(prediction)

    def callback_for(self, notification: NotificationRequest | None) -> Callback:
        """The callback a request's ``notification`` asks for (none given: ``CallbackKind.NONE``).

        Raises
        ------
        InvalidRequestError
            A channel refused it, or it names a channel no notifier here serves.
        """
        if notification is None:
            return Callback()
        chosen = [
            callback
            for notifier in self.by_kind.values()
            if isinstance(notifier, Channel) and (callback := notifier.callback_for(notification)) is not None
        ]
        if len(chosen) > 1:
            # The request model already allows one channel; two notifiers claiming one is a wiring error.
            raise InvalidRequestError("choose one notification channel")
        if chosen:
            return chosen[0]
        asked = [name for name in type(notification).model_fields if getattr(notification, name) is not None]
        if asked:
            raise InvalidRequestError(f"notification '{asked[0]}' is not available on this gateway")
        return Callback()

"""``CallbackKind.NONE``: nobody is told; the client polls ``GET /predictions/{id}``."""

from __future__ import annotations

from ..models import Prediction


class PollingOnly:
    """The notifier of a prediction submitted without ``notification``: it does nothing."""

    def notify(self, prediction: Prediction, output: bytes | None) -> None:
        """Nothing to do: the record itself is the answer."""

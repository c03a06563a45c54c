"""``CallbackKind.SHADOW``: a shadow ended; its outcome is left on the prediction it shadowed."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..ensembles import INLINE_OUTPUT_LIMIT
from ..media_types import is_json_type
from ..models import Prediction, PredictionStatus, ShadowOutcome

if TYPE_CHECKING:
    from ..ports import GatewayPorts


def shadow_outcome(
    shadow: Prediction, output: bytes | None, read: Callable[[str], bytes] | None = None
) -> ShadowOutcome:
    """The outcome of a terminal ``shadow``: small JSON output inline, else a reference.

    ``output`` is its output when the caller has it in memory; ``read`` (``uri -> bytes``) reads
    it from S3 otherwise (None: the outcome keeps the reference only).
    """
    outcome = ShadowOutcome(
        prediction_id=shadow.prediction_id,
        service=shadow.service,
        # The version label alone: a real-time answer's model.version also names the variant.
        version=(shadow.model.version or "").split("/", 1)[0],
        status=shadow.status,
        started_at=shadow.started_at,
        finished_at=shadow.finished_at,
        model=shadow.model,
        error=shadow.error,
        output_uri=shadow.output_uri,
        content_type=shadow.output_content_type,
    )
    if shadow.status is PredictionStatus.COMPLETED and shadow.output_uri and is_json_type(outcome.content_type or ""):
        raw = output
        if raw is None and read is not None:
            try:
                raw = read(shadow.output_uri)
            except Exception:  # the reference still stands; readers fetch it themselves
                raw = None
        if raw is not None and 0 < len(raw) <= INLINE_OUTPUT_LIMIT:
            with contextlib.suppress(ValueError):
                outcome.output = json.loads(raw)
                outcome.inline = True
    return outcome


@dataclass
class ShadowNotifier:
    """Records a terminal shadow's outcome (``ShadowOutcome``: status, timings, model, error,
    output) on its primary's record, and nothing else: the primary's status, callback (webhook,
    task token, event), step outcomes and ``updated_at`` stay as they are.

    Idempotent: a duplicate of the event that ended the shadow records the same outcome again.
    Never raises: a shadow is ended by the sweeper among other predictions, and a failure here
    must not stop the sweep (the shadow's own record keeps its end; the read model falls back to
    it when no outcome was recorded).

    Parameters
    ----------
    ports
        The gateway's shared ports (the prediction store; S3 for an output not in memory).
    """

    ports: GatewayPorts

    def notify(self, prediction: Prediction, output: bytes | None) -> None:
        """Leave the outcome of the shadow ``prediction`` on the prediction it shadowed."""
        primary_id = prediction.callback.target or prediction.parent_id
        if not primary_id:
            return
        try:
            outcome = shadow_outcome(prediction, output, self.ports.objects.read)
            recorded = self.ports.predictions.record_shadow_outcome(primary_id, prediction.prediction_id, outcome)
        except Exception as error:
            self.ports.log(
                "shadow outcome not recorded",
                prediction_id=primary_id,
                shadow_id=prediction.prediction_id,
                error=f"{type(error).__name__}: {error}",
            )
            return
        self.ports.log(
            "shadow outcome recorded" if recorded else "shadowed prediction is gone: outcome not recorded",
            prediction_id=primary_id,
            shadow_id=prediction.prediction_id,
            version=outcome.version,
            status=outcome.status,
        )

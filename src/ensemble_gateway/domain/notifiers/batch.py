"""``CallbackKind.BATCH``: an item of a batch ended; its outcome is counted into the batch, once.

The item notifies nobody itself: the batch tells its owner once, when it ends
(``batch_driver.py``). The count is what moves the batch on, so a tick is queued after it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..media_types import is_json_type
from ..models import BatchOutcome, Prediction, PredictionStatus

if TYPE_CHECKING:
    from ..ports import BatchQueue, BatchStore, GatewayPorts

#: An item's JSON output up to this size is kept in its outcome (the result file reads no S3 object
#: for it); larger, or not JSON: the result line has a download URL instead.
INLINE_ITEM_OUTPUT_LIMIT = 32 * 1024


def batch_outcome(item: Prediction, output: bytes | None, read: Callable[[str], bytes] | None = None) -> BatchOutcome:
    """The outcome of a terminal ``item``: its JSON output inline when small, else a reference."""
    line = int(item.metadata.get("line") or item.prediction_id.rsplit("-", 1)[-1])
    outcome = BatchOutcome(
        line=line,
        prediction_id=item.prediction_id,
        status=item.status,
        output_uri=item.output_uri,
        content_type=item.output_content_type,
        error=item.error,
    )
    if item.status is PredictionStatus.COMPLETED and item.output_uri and is_json_type(item.output_content_type or ""):
        raw = output
        if raw is None and read is not None:
            try:
                raw = read(item.output_uri)
            except Exception:  # the reference still stands: the result line gets a URL
                raw = None
        if raw is not None and len(raw) <= INLINE_ITEM_OUTPUT_LIMIT:
            with contextlib.suppress(ValueError):
                outcome.output = json.loads(raw)
                outcome.inline = True
    return outcome


@dataclass
class BatchNotifier:
    """Records a terminal item's outcome beside its batch and counts it (``completed``, ``failed``
    or ``cancelled``) in the same write, then queues a tick of the batch.

    Idempotent: a duplicate of the event that ended the item finds its line recorded and counts
    nothing (the tick is queued again, harmlessly). Never raises: items are ended by the sweeper
    among other predictions, and a failure here must not stop the sweep; a count that was lost
    is made by the sweeper's next tick of the stalled batch (it looks at every started item not
    yet counted).

    Parameters
    ----------
    ports
        The gateway's shared ports (S3 for an output not in memory, the clock).
    store, queue
        The batches, and the queue of their ticks (None: the gateway has no batches; an item can
        then not exist, and nothing is done).
    """

    ports: GatewayPorts
    store: BatchStore | None
    queue: BatchQueue | None

    def notify(self, prediction: Prediction, output: bytes | None) -> None:
        """Count the item ``prediction`` into its batch and queue a tick of the batch."""
        batch_id = prediction.callback.target
        if not batch_id or self.store is None or self.queue is None:
            return
        try:
            outcome = batch_outcome(prediction, output, self.ports.objects.read)
            counted = self.store.record_outcome(batch_id, outcome, self.ports.clock())
            self.queue.enqueue({"batch_id": batch_id})
        except Exception as error:
            self.ports.log(
                "batch item outcome not recorded",
                batch_id=batch_id,
                prediction_id=prediction.prediction_id,
                error=f"{type(error).__name__}: {error}",
            )
            return
        self.ports.log(
            "batch item counted" if counted else "batch item already counted",
            batch_id=batch_id,
            prediction_id=prediction.prediction_id,
            status=prediction.status,
        )

"""batch-driver: one message of the batch queue per tick of a batch, or an S3 event of a
manifest's upload (which S3 sends to the same queue); each moves its batch as far as it goes."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from ..bootstrap import batch_driver
from ..observability import logger, traced
from .process_input import uploaded_objects

if TYPE_CHECKING:
    # Only type annotations: nothing to import at cold start.
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from ..domain.batch_driver import BatchDriver

processor = BatchProcessor(event_type=EventType.SQS)


def default_dependencies() -> BatchDriver:
    """This process's batch driver (built once, at the first event)."""
    return batch_driver()


def record_handler(record: SQSRecord, driving: BatchDriver | None = None) -> None:
    """Tick the batch named in ``record``: ``{"batch_id", "reconcile"?}``, or an S3 notification."""
    driving = driving or default_dependencies()
    message = json.loads(record.body)
    if isinstance(message, dict) and "batch_id" in message:
        driving.tick(str(message["batch_id"]), reconcile=bool(message.get("reconcile")))
        return
    for bucket, key, _ in uploaded_objects(record.body):
        driving.manifest_uploaded(bucket, key)


@logger.inject_lambda_context
@traced
def handler(event: dict[str, Any], context: LambdaContext, dependencies: BatchDriver | None = None) -> dict[str, Any]:
    """``dependencies`` replaces this process's batch driver (tests inject fakes)."""
    driving = dependencies or default_dependencies()

    def handle(record: SQSRecord) -> None:
        record_handler(record, driving)

    return process_partial_response(  # type: ignore[return-value]
        event=event, record_handler=handle, processor=processor, context=context
    )

"""process-input: S3 ``ObjectCreated`` → SQS batches; start each uploaded prediction once."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from ..bootstrap import gateway
from ..observability import logger, traced

if TYPE_CHECKING:
    # Only a type annotation: nothing to import at cold start.
    from aws_lambda_powertools.utilities.typing import LambdaContext

processor = BatchProcessor(event_type=EventType.SQS)


def uploaded_objects(body: str) -> list[tuple[str, str, int | None]]:
    """(bucket, key, size) of every ``ObjectCreated`` record in an S3 notification message body."""
    message = json.loads(body)
    if message.get("Event") == "s3:TestEvent":
        return []
    objects = []
    for record in message.get("Records", []):
        if not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        s3 = record["s3"]
        # Keys arrive URL-encoded ('+' for spaces).
        size = s3["object"].get("size")
        objects.append(
            (s3["bucket"]["name"], unquote_plus(s3["object"]["key"]), int(size) if size is not None else None)
        )
    return objects


def record_handler(record: SQSRecord) -> None:
    for bucket, key, size in uploaded_objects(record.body):
        gateway().input_uploaded(bucket, key, size)


@logger.inject_lambda_context
@traced
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(  # type: ignore[return-value]
        event=event, record_handler=record_handler, processor=processor, context=context
    )

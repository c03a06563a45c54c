"""process-input: S3 ``ObjectCreated`` → SQS batches; start each uploaded prediction once."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from ..bootstrap import gateway
from ..observability import logger, traced

processor = BatchProcessor(event_type=EventType.SQS)


def uploaded_objects(body: str) -> list[tuple[str, str]]:
    """(bucket, key) of every ``ObjectCreated`` record in an S3 notification message body."""
    message = json.loads(body)
    if message.get("Event") == "s3:TestEvent":
        return []
    objects = []
    for record in message.get("Records", []):
        if not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        s3 = record["s3"]
        # Keys arrive URL-encoded ('+' for spaces).
        objects.append((s3["bucket"]["name"], unquote_plus(s3["object"]["key"])))
    return objects


def record_handler(record: SQSRecord) -> None:
    for bucket, key in uploaded_objects(record.body):
        gateway().input_uploaded(bucket, key)


@logger.inject_lambda_context
@traced
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(  # type: ignore[return-value]
        event=event, record_handler=record_handler, processor=processor, context=context
    )

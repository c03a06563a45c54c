"""process-input: S3 ``ObjectCreated`` → SQS batches; start each uploaded prediction once.

The same queue carries ``{"dispatch": {"prediction_id": ...}}``: a prediction whose input came
inline and whose dispatch new-prediction could not complete, dispatched here (claimed, once).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from ..bootstrap import dispatch
from ..observability import logger, traced

if TYPE_CHECKING:
    # Only type annotations: nothing to import at cold start.
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from ..domain.dispatch import Dispatch

processor = BatchProcessor(event_type=EventType.SQS)


def handed_over(message: dict[str, Any]) -> str | None:
    """The prediction ID of a hand-over message (``{"dispatch": {"prediction_id": ...}}``), else None."""
    dispatch = message.get("dispatch")
    if isinstance(dispatch, dict) and isinstance(dispatch.get("prediction_id"), str):
        return dispatch["prediction_id"]
    return None


def uploaded_objects(body: str | dict[str, Any]) -> list[tuple[str, str, int | None]]:
    """(bucket, key, size) of every ``ObjectCreated`` record in an S3 notification message body."""
    message = json.loads(body) if isinstance(body, str) else body
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


def default_dependencies() -> Dispatch:
    """This process's dispatch use case (built once, at the first event)."""
    return dispatch()


def record_handler(record: SQSRecord, dispatching: Dispatch | None = None) -> None:
    """Start the prediction of every upload announced in ``record`` (``dispatching``: the use case)."""
    dispatching = dispatching or default_dependencies()
    message = json.loads(record.body)
    prediction_id = handed_over(message)
    if prediction_id is not None:
        dispatching.dispatch(prediction_id)
        return
    for bucket, key, size in uploaded_objects(message):
        dispatching.input_uploaded(bucket, key, size)


@logger.inject_lambda_context
@traced
def handler(event: dict[str, Any], context: LambdaContext, dependencies: Dispatch | None = None) -> dict[str, Any]:
    """``dependencies`` replaces this process's dispatch use case (tests inject fakes)."""
    dispatching = dependencies or default_dependencies()

    def handle(record: SQSRecord) -> None:
        record_handler(record, dispatching)

    return process_partial_response(  # type: ignore[return-value]
        event=event, record_handler=handle, processor=processor, context=context
    )

"""webhook-delivery: one attempt per message of the webhook queue; retries go back on the queue."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from ..bootstrap import webhook_delivery
from ..domain.api import PredictionDocument, ResultDocument, StepDocument, build
from ..observability import logger, traced

if TYPE_CHECKING:
    # Only a type annotation: nothing to import at cold start.
    from aws_lambda_powertools.utilities.typing import LambdaContext

# Built at cold start: every webhook carries the prediction's document (see domain/api.py).
build(PredictionDocument, ResultDocument, StepDocument)

processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord) -> str:
    job = json.loads(record.body)
    outcome = webhook_delivery().deliver(job)
    logger.info("webhook attempt", extra={"prediction_id": job.get("prediction_id"), "outcome": outcome})
    return outcome


@logger.inject_lambda_context
@traced
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(  # type: ignore[return-value]
        event=event, record_handler=record_handler, processor=processor, context=context
    )

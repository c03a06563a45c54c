"""webhook-delivery: one attempt per message of the webhook queue; retries go back on the queue.

The records of a batch are attempted side by side, one thread each: they are webhooks of
different predictions (and often of different clients), and one receiver that answers slowly
must not hold the others' webhooks for its whole deadline. Powertools' ``AsyncBatchProcessor``
gathers the records and builds the partial batch response (``batchItemFailures``) as the
synchronous processor does; each record's attempt, blocking I/O, runs in a thread of this
invocation's pool.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import AsyncBatchProcessor, EventType, async_process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from ..bootstrap import webhook_delivery
from ..domain.api import PredictionDocument, ResultDocument, ShadowDocument, StepDocument, build
from ..observability import logger, traced

if TYPE_CHECKING:
    # Only type annotations: nothing to import at cold start.
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from ..domain.delivery import WebhookDelivery

# Built at cold start: every webhook carries the prediction's document (see domain/api.py).
build(PredictionDocument, ResultDocument, StepDocument, ShadowDocument)

# Nothing of one invocation is kept at module level (the processor and the pool are made per
# invocation), so invocations may overlap in one process. On Lambda they never do (each
# concurrent invocation has an environment of its own); the local runtime reads this to let
# batches of this function run side by side, as Lambda's pollers run them. (Powertools' Logger
# keeps the Lambda context on the logger: lines of overlapping local invocations may carry each
# other's request ID; nothing else is shared.)
REENTRANT = True


def default_dependencies() -> WebhookDelivery:
    """This process's webhook delivery use case (built once, at the first event)."""
    return webhook_delivery()


def record_handler(record: SQSRecord, delivery: WebhookDelivery | None = None) -> str:
    """Make one delivery attempt for the job in ``record``; return its outcome."""
    job = json.loads(record.body)
    outcome = (delivery or default_dependencies()).deliver(job)
    logger.info("webhook attempt", extra={"prediction_id": job.get("prediction_id"), "outcome": outcome})
    return outcome


@logger.inject_lambda_context
@traced
def handler(
    event: dict[str, Any], context: LambdaContext, dependencies: WebhookDelivery | None = None
) -> dict[str, Any]:
    """``dependencies`` replaces this process's webhook delivery use case (tests inject fakes)."""
    records = event.get("Records") or []
    # Built once, here, rather than by the first of several threads at once.
    delivery = dependencies or default_dependencies()
    with ThreadPoolExecutor(max_workers=max(1, len(records)), thread_name_prefix="webhook") as pool:

        async def attempt(record: SQSRecord) -> str:
            return await asyncio.get_running_loop().run_in_executor(pool, record_handler, record, delivery)

        return async_process_partial_response(  # type: ignore[return-value]
            event=event,
            record_handler=attempt,
            processor=AsyncBatchProcessor(event_type=EventType.SQS),
            context=context,
        )

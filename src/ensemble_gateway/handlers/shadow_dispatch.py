"""shadow-dispatch: one message of the shadow queue per shadow; send it to its version once.

A shadow's dispatch never runs on its primary's path (process-input or get-transform-call only
queue it): a shadow version's slow endpoint or failing call can never hold or fail the primary.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from ..bootstrap import shadows
from ..observability import logger, traced

if TYPE_CHECKING:
    # Only type annotations: nothing to import at cold start.
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from ..domain.shadows import Shadows

processor = BatchProcessor(event_type=EventType.SQS)


def default_dependencies() -> Shadows:
    """This process's shadows use case (built once, at the first event)."""
    return shadows()


def record_handler(record: SQSRecord, dispatching: Shadows | None = None) -> None:
    """Dispatch the shadow named in ``record`` (``{"shadow_id": ...}``)."""
    job = json.loads(record.body)
    (dispatching or default_dependencies()).dispatch(str(job["shadow_id"]))


@logger.inject_lambda_context
@traced
def handler(event: dict[str, Any], context: LambdaContext, dependencies: Shadows | None = None) -> dict[str, Any]:
    """``dependencies`` replaces this process's shadows use case (tests inject fakes)."""
    dispatching = dependencies or default_dependencies()

    def handle(record: SQSRecord) -> None:
        record_handler(record, dispatching)

    return process_partial_response(  # type: ignore[return-value]
        event=event, record_handler=handle, processor=processor, context=context
    )

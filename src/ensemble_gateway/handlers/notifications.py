"""notifications: SageMaker (and gateway) ``InferenceResult`` messages from SNS finish predictions."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..bootstrap import gateway
from ..domain.notifications import InferenceResult
from ..observability import logger, traced

if TYPE_CHECKING:
    # Only a type annotation: nothing to import at cold start.
    from aws_lambda_powertools.utilities.typing import LambdaContext


@logger.inject_lambda_context
@traced
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # SNS invokes with one record; any exception makes Lambda retry and then dead-letter the event.
    finished = 0
    for record in event.get("Records", []):
        result = InferenceResult.model_validate(json.loads(record["Sns"]["Message"]))
        gateway().inference_finished(result)
        finished += 1
    return {"finished": finished}

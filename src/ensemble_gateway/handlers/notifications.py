"""notifications: SageMaker (and gateway) ``InferenceResult`` messages from SNS finish predictions."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..bootstrap import completion
from ..domain.api import build
from ..domain.notifications import InferenceResult, RequestParameters, ResponseParameters
from ..observability import logger, traced

if TYPE_CHECKING:
    # Only type annotations: nothing to import at cold start.
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from ..domain.completion import Completion


# Built at cold start: the models of every message this function parses (see domain/notifications.py).
build(InferenceResult, RequestParameters, ResponseParameters)


def default_dependencies() -> Completion:
    """This process's completion use case (built once, at the first event)."""
    return completion()


@logger.inject_lambda_context
@traced
def handler(event: dict[str, Any], context: LambdaContext, dependencies: Completion | None = None) -> dict[str, Any]:
    """``dependencies`` replaces this process's completion use case (tests inject fakes)."""
    finishing = dependencies or default_dependencies()
    # SNS invokes with one record; any exception makes Lambda retry and then dead-letter the event.
    finished = 0
    for record in event.get("Records", []):
        result = InferenceResult.model_validate(json.loads(record["Sns"]["Message"]))
        finishing.inference_finished(result)
        finished += 1
    return {"finished": finished}

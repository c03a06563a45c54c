"""sweeper: on a schedule, expire predictions never uploaded and fail those that never finished."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..bootstrap import gateway
from ..observability import logger

if TYPE_CHECKING:
    # Only a type annotation: nothing to import at cold start.
    from aws_lambda_powertools.utilities.typing import LambdaContext


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    swept = gateway().sweep()
    if swept:
        logger.info("swept overdue predictions", extra={"count": swept})
    return {"swept": swept}

"""sweeper: on a schedule, expire predictions never uploaded and fail those that never finished."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..bootstrap import sweeping
from ..observability import logger

if TYPE_CHECKING:
    # Only type annotations: nothing to import at cold start.
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from ..domain.sweeping import Sweeping


def default_dependencies() -> Sweeping:
    """This process's sweeping use case (built once, at the first event)."""
    return sweeping()


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext, dependencies: Sweeping | None = None) -> dict[str, Any]:
    """``dependencies`` replaces this process's sweeping use case (tests inject fakes)."""
    swept = (dependencies or default_dependencies()).sweep()
    if swept:
        logger.info("swept overdue predictions", extra={"count": swept})
    return {"swept": swept}

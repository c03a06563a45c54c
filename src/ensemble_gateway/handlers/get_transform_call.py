"""get-transform-call: invoked by an ensemble's state machine for each step and at its end.

Payloads (``action``):
- ``call``: ``step``, ``ensemble_prediction_id``, ``task_token``, ``execution`` (the execution
  input, added at registration), ``attempt`` (generated state machines: a retry after a transient
  Lambda error) and, in a fan-out, ``service``; runs as a ``lambda:invoke.waitForTaskToken`` task:
  the step's notification answers the token. A step whose ``when`` is false is answered at once.
- ``complete``: ``ensemble_prediction_id``, ``output_step`` (or the output mapping carried in
  ``execution``); the ensemble succeeded.
- ``fail``: ``ensemble_prediction_id``, ``error``; a step failed or timed out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..bootstrap import ensemble_steps
from ..observability import logger, traced

if TYPE_CHECKING:
    # Only type annotations: nothing to import at cold start.
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from ..domain.steps import EnsembleSteps


def default_dependencies() -> EnsembleSteps:
    """This process's ensemble steps use case (built once, at the first event)."""
    return ensemble_steps()


@logger.inject_lambda_context
@traced
def handler(event: dict[str, Any], context: LambdaContext, dependencies: EnsembleSteps | None = None) -> dict[str, Any]:
    """``dependencies`` replaces this process's ensemble steps use case (tests inject fakes)."""
    action = event.get("action")
    parent_id = str(event["ensemble_prediction_id"])
    steps = dependencies or default_dependencies()
    if action == "call":
        return steps.call(
            parent_id, str(event["step"]), str(event["task_token"]), event.get("service"), event.get("execution")
        )
    if action == "complete":
        return steps.complete(parent_id, event.get("output_step"), event.get("execution"))
    if action == "fail":
        return steps.fail(parent_id, event.get("error"))
    raise ValueError(f"unknown action {action!r}: expected call, complete or fail")

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
    # Only a type annotation: nothing to import at cold start.
    from aws_lambda_powertools.utilities.typing import LambdaContext


@logger.inject_lambda_context
@traced
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    action = event.get("action")
    parent_id = str(event["ensemble_prediction_id"])
    steps = ensemble_steps()
    if action == "call":
        return steps.call(
            parent_id, str(event["step"]), str(event["task_token"]), event.get("service"), event.get("execution")
        )
    if action == "complete":
        return steps.complete(parent_id, event.get("output_step"), event.get("execution"))
    if action == "fail":
        return steps.fail(parent_id, event.get("error"))
    raise ValueError(f"unknown action {action!r}: expected call, complete or fail")

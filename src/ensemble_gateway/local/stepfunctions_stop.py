"""Makes the local Step Functions end a stopped execution at once, ``ABORTED``, as AWS does.

moto (5.2.5) records a ``StopExecution`` but does not interrupt a task waiting for its task token:
the execution stays ``RUNNING`` until the wait ends (its ``TimeoutSeconds``, or an answer), and
the interrupted task's failure then makes it ``FAILED``. On AWS the execution is ``ABORTED`` from
the call on, no state runs after it and its task tokens are refused. The gateway stops executions
when a prediction is cancelled or times out, so after moto has taken a ``StopExecution`` this
middleware ends the execution's callback waits and pins its status to ``ABORTED`` with the
request's error and cause (moto evaluates no further state once an execution is stopped).
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

_STOP_EXECUTION = "AWSStepFunctions.StopExecution"
_log = logging.getLogger(__name__)


class StopExecutionMiddleware:
    """Passes every request to moto; after a successful ``StopExecution``, aborts the execution."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("HTTP_X_AMZ_TARGET") != _STOP_EXECUTION:
            passed: Iterable[bytes] = self.app(environ, start_response)
            return passed
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(raw)
        answered: list[str] = []

        def recording_start_response(status: str, headers: Any, *args: Any) -> Any:
            answered.append(status)
            return start_response(status, headers, *args)

        body = list(self.app(environ, recording_start_response))
        if answered and answered[0].startswith("200"):
            try:
                request = json.loads(raw or b"{}")
                abort(str(request.get("executionArn", "")), request.get("error"), request.get("cause"))
            except Exception:  # the stop itself succeeded: never fail it for the emulation
                _log.exception("could not end the stopped execution at once")
        return body


def abort(execution_arn: str, error: str | None, cause: str | None) -> bool:
    """End the running execution ``execution_arn`` as stopped; False when moto runs no such one."""
    from moto.stepfunctions.parser.api import ExecutionStatus
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    parts = execution_arn.split(":")
    if len(parts) < 8:
        return False
    region, account = parts[3], parts[4]
    backend = stepfunctions_parser_backends[account][region]
    for execution in backend._get_executions(ExecutionStatus.RUNNING):
        if execution.execution_arn != execution_arn:
            continue
        worker = execution.exec_worker
        if worker is None:
            return False
        # moto writes the status when the evaluation returns: after a stop, what the interrupted
        # task's error made of it. The status is decided here, as AWS decides it.
        worker._execution_communication.terminated = lambda: None
        execution.exec_status = ExecutionStatus.ABORTED
        execution.stop_date = datetime.now(UTC)
        execution.error = error
        execution.cause = cause
        for endpoint in list(worker.env.callback_pool_manager._pool.values()):
            endpoint.interrupt_all()
        return True
    return False

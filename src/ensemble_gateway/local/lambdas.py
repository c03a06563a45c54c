"""Running the template's functions in-process, as Lambda would, and the Lambda Invoke API."""

from __future__ import annotations

import importlib
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .deployer import ACCOUNT_ID, FunctionSpec


@dataclass
class FakeLambdaContext:
    """The attributes of Lambda's context object that handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    aws_request_id: str
    deadline: float
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


class FunctionRegistry:
    """Resolves each function's ``Handler`` to its Python callable and invokes it.

    Invocations of one function are serialised with a lock, unless its handler's module says
    ``REENTRANT = True``. On Lambda, concurrent invocations each have an execution environment,
    and so module state, of their own; here they share one process, and a handler that keeps an
    invocation's state at module level (a Powertools batch processor collecting the batch's
    failures, the API resolver's current event) would mix two invocations' state. A handler that
    keeps none declares itself reentrant, and its invocations overlap as they would on Lambda
    (webhook-delivery: one slow receiver's batch must not hold the next batch).
    """

    def __init__(
        self,
        functions: dict[str, FunctionSpec],
        region: str,
        on_invoke: Callable[[str, float, BaseException | None], None] | None = None,
    ) -> None:
        self.functions = functions
        self.region = region
        self._handlers: dict[str, Callable[[Any, Any], Any]] = {}
        self._reentrant: dict[str, bool] = {}
        self._locks: dict[str, threading.Lock] = {name: threading.Lock() for name in functions}
        self._import_lock = threading.RLock()
        self._on_invoke = on_invoke

    def find(self, name_or_arn: str) -> FunctionSpec | None:
        name = name_or_arn.split(":function:", 1)[-1].split(":", 1)[0]
        for spec in self.functions.values():
            if name in (spec.function_name, spec.logical_id):
                return spec
        return None

    def handler(self, spec: FunctionSpec) -> Callable[[Any, Any], Any]:
        if spec.logical_id not in self._handlers:
            # One import at a time: two threads importing modules that import each other can see
            # one of them partially initialised (an ImportError a request would answer with 502).
            with self._import_lock:
                if spec.logical_id not in self._handlers:
                    module_name, _, attribute = spec.handler.rpartition(".")
                    module = importlib.import_module(module_name)
                    self._reentrant[spec.logical_id] = getattr(module, "REENTRANT", False) is True
                    self._handlers[spec.logical_id] = getattr(module, attribute)
        return self._handlers[spec.logical_id]

    def preload(self) -> None:
        """Import every function's handler now, before any event source or request can invoke one
        (Lambda imports a handler at its cold start, before the first event reaches it)."""
        for spec in self.functions.values():
            self.handler(spec)

    def reentrant(self, spec: FunctionSpec) -> bool:
        """Whether invocations of ``spec`` may overlap (its handler module declares ``REENTRANT = True``)."""
        self.handler(spec)
        return self._reentrant[spec.logical_id]

    def invoke(self, spec: FunctionSpec, event: Any) -> Any:
        context = FakeLambdaContext(
            function_name=spec.function_name,
            memory_limit_in_mb=512,
            invoked_function_arn=f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{spec.function_name}",
            aws_request_id=str(uuid.uuid4()),
            deadline=time.monotonic() + spec.timeout,
        )
        started = time.monotonic()
        error: BaseException | None = None
        try:
            handler = self.handler(spec)
            if self._reentrant[spec.logical_id]:
                return handler(event, context)
            with self._locks[spec.logical_id]:
                return handler(event, context)
        except BaseException as failure:
            error = failure
            raise
        finally:
            if self._on_invoke is not None:
                self._on_invoke(spec.function_name, time.monotonic() - started, error)


class LambdaInvokeMiddleware:
    """Answers ``POST /2015-03-31/functions/{name}/invocations`` by calling our Python handlers.

    This is how moto's Step Functions engine really invokes get-transform-call.
    """

    PREFIX = "/2015-03-31/functions/"

    def __init__(self, app: Any, registry: FunctionRegistry) -> None:
        self.app = app
        self.registry = registry
        # Fault injection for tests: called with (function name, event) before each invocation;
        # returning (error code, after) answers Lambda's own error instead (HTTP 500, e.g.
        # "ServiceException"), before running the handler or, with ``after``, once it has run (the
        # answer lost on the way back). Step Functions reports it as ``Lambda.<code>``.
        self.fault: Callable[[str, Any], tuple[str, bool] | None] | None = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") == "POST" and path.startswith(self.PREFIX) and path.endswith("/invocations"):
            from urllib.parse import unquote

            name = unquote(path[len(self.PREFIX) : -len("/invocations")])
            spec = self.registry.find(name)
            if spec is not None:
                return self._invoke(spec, environ, start_response)
        return self.app(environ, start_response)

    def _invoke(self, spec: FunctionSpec, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        event = json.loads(raw) if raw else {}
        headers = [("Content-Type", "application/json"), ("X-Amz-Executed-Version", "$LATEST")]
        fault = self.fault(spec.function_name, event) if self.fault is not None else None
        if fault is not None and not fault[1]:
            return self._service_error(fault[0], start_response)
        try:
            result = self.registry.invoke(spec, event)
            body = json.dumps(result, default=str).encode()
        except Exception as error:
            body = json.dumps({"errorMessage": str(error), "errorType": type(error).__name__}).encode()
            headers.append(("X-Amz-Function-Error", "Unhandled"))
        if fault is not None:
            return self._service_error(fault[0], start_response)
        start_response("200 OK", [*headers, ("Content-Length", str(len(body)))])
        return [body]

    @staticmethod
    def _service_error(code: str, start_response: Callable[..., Any]) -> Any:
        body = json.dumps({"Type": "Service", "message": f"injected {code}"}).encode()
        start_response(
            "500 Internal Server Error",
            [
                ("Content-Type", "application/json"),
                ("x-amzn-ErrorType", code),
                ("x-amzn-RequestId", str(uuid.uuid4())),
                ("Content-Length", str(len(body))),
            ],
        )
        return [body]

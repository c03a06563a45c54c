"""The local SageMaker runtime: ``InvokeEndpoint`` and ``InvokeEndpointAsync`` for toolkit models.

A WSGI middleware placed in front of moto's server app. It answers
``POST /endpoints/{name}/invocations`` and ``POST /endpoints/{name}/async-invocations`` (the URIs
of botocore's ``sagemaker-runtime`` model) and passes every other request to the wrapped app, so
boto3 reaches it through ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME``.

Each endpoint hosts one model written to the SageMaker inference-toolkit convention:
``code/inference.py`` under the model directory with ``model_fn`` and optionally ``input_fn``,
``predict_fn``, ``output_fn`` (or ``transform_fn``), as the toolkit calls them. An unchanged
``inference.py`` runs here. Each endpoint has its own bounded pool of worker threads.

What the toolkit does and this runtime copies:

- ``model_fn(model_dir)`` runs once, on the first request (``pre_model_fn`` and
  ``model_warmup_fn`` around it when defined); a failed load is retried on the next request.
- The body reaches ``input_fn`` as ``str`` for exactly ``application/json`` and ``text/csv``,
  as ``bytes`` otherwise. ``Accept`` missing or ``*/*`` becomes ``application/json``
  (``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT`` overrides it).
- A handler that takes one parameter more than usual also receives a context object.
- ``transform_fn`` replaces input/predict/output and cannot be combined with them.
- An ``output_fn``/``transform_fn`` result is either ``(body, content_type)`` or a body, whose
  content type is then the ``Accept`` value.
- An exception becomes a 500 from the model (or its ``status_code`` attribute when it has one,
  as the toolkit's own errors do), with the exception text as the message.

Defaults where the toolkit defers to the framework containers: ``input_fn`` parses JSON for
``application/json``, gives ``str`` for ``text/plain`` and ``text/csv`` and the raw bytes
otherwise; ``predict_fn`` calls ``model(data)`` when the model is callable, else
``model.predict(data)``; ``output_fn`` encodes JSON as ``application/json``.

Local differences, on purpose: an endpoint's own modules (``code/*.py``) are importable while
``inference.py`` is imported and while ``model_fn`` runs (so pickled custom classes load), and are
then kept private to that endpoint so two endpoints may both have a ``utils.py``; an import of
them first made later, inside ``predict_fn`` say, is not supported. The model object is shared by
the endpoint's worker threads (the toolkit runs one per worker process), so a model with
``max_concurrency > 1`` must tolerate concurrent calls. An asynchronous invocation that times out
is failed and its late result discarded, but its worker stays busy until the model code returns,
as a container's worker would: concurrency stays bounded. A ``model_fn`` that never returns holds
its endpoint's load lock and the process-wide import lock, so first requests to other endpoints
then time out too.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import itertools
import json
import logging
import os
import queue
import re
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from werkzeug.wrappers import Request, Response

__all__ = ["REALTIME_TIMEOUT_SECONDS", "LocalEndpoint", "LocalSageMakerRuntime", "ModelContext"]

_log = logging.getLogger(__name__)

#: How long ``InvokeEndpoint`` waits for the model, as SageMaker real-time endpoints do (60 s).
REALTIME_TIMEOUT_SECONDS: float = 60.0
#: How long ``shutdown`` waits for workers before leaving stuck model code behind (daemon threads).
SHUTDOWN_GRACE_SECONDS: float = 2.0

_PATH = re.compile(r"^/endpoints/(?P<name>[^/]+)/(?P<operation>invocations|async-invocations)/?$")
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/[^/,\s]+/(?P<service>[^/,\s]+)/aws4_request")
_S3_URI = re.compile(r"^s3://(?P<bucket>[^/]+)/?(?P<key>.*)$")
_UTF8_TYPES = ("application/json", "text/csv")  # sagemaker_inference.content_types.UTF8_TYPES
_DEFAULT_CONTENT_TYPE = "application/octet-stream"
_MAX_INFERENCE_ID = 64
_MAX_INVOCATION_TIMEOUT = 3600
_DEFAULT_ACCOUNT_ID = "123456789012"  # moto's default account

# Importing model code changes process-wide state (sys.path, sys.modules): one at a time.
_IMPORT_LOCK = threading.RLock()
_module_counter = itertools.count(1)


@dataclass
class LocalEndpoint:
    """One hosted model, configured as a SageMaker endpoint would be."""

    name: str
    model_dir: Path  # contains code/inference.py and the model artefacts
    mode: Literal["async", "realtime"]
    output_path: str = ""  # async: S3OutputPath, e.g. "s3://bucket/outputs"
    failure_path: str = ""  # async: S3FailurePath, e.g. "s3://bucket/failures"
    success_topic_arn: str = ""
    error_topic_arn: str = ""
    max_concurrency: int = 2  # worker pool size per endpoint
    default_timeout_seconds: int = 900
    variant: str = "AllTraffic"


@dataclass
class ModelContext:
    """What a handler declared with one extra parameter receives (a small toolkit ``Context``)."""

    model_name: str
    system_properties: dict[str, Any]
    request_headers: dict[str, str] = field(default_factory=dict)

    def get_request_header(self, idx: int, key: str) -> str | None:
        for name, value in self.request_headers.items():
            if name.lower() == key.lower():
                return value
        return None


# -- errors in the rest-json shapes botocore parses ----------------------------------------------


class _ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields


def _validation(message: str) -> _ApiError:
    return _ApiError(400, "ValidationError", message)


class _ModelError(Exception):
    """The model answered with an error status (the toolkit's error response)."""

    def __init__(self, status: int, message: str, detail: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail  # message and traceback, as the toolkit's error body

    def phrase(self, source: str) -> str:
        kind = "client" if 400 <= self.status < 500 else "server"
        return f'Received {kind} error ({self.status}) from {source} with message "{self.message}"'


# -- hosting one model ---------------------------------------------------------------------------


@dataclass
class _Handlers:
    model_fn: Callable[..., Any]
    transform_fn: Callable[..., Any] | None
    input_fn: Callable[..., Any]
    predict_fn: Callable[..., Any]
    output_fn: Callable[..., Any]
    pre_model_fn: Callable[..., Any] | None
    model_warmup_fn: Callable[..., Any] | None


def _default_input_fn(data: bytes | str, content_type: str | None) -> Any:
    base = (content_type or "").split(";", 1)[0].strip().lower()
    if base == "application/json":
        return json.loads(data)
    if base in ("text/plain", "text/csv"):
        return data if isinstance(data, str) else data.decode("utf-8")
    return data


def _default_predict_fn(data: Any, model: Any) -> Any:
    if callable(model):
        return model(data)
    predict = getattr(model, "predict", None)
    if predict is None:
        raise TypeError("the model is neither callable nor has predict(); define predict_fn in inference.py")
    return predict(data)


def _json_default(value: Any) -> Any:
    for attribute in ("tolist", "item"):  # numpy arrays and scalars without importing numpy
        method = getattr(value, attribute, None)
        if callable(method):
            return method()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _default_output_fn(prediction: Any, accept: str) -> tuple[bytes, str]:
    return json.dumps(prediction, default=_json_default).encode("utf-8"), "application/json"


def _missing_model_fn(model_dir: str) -> Any:
    raise NotImplementedError("Please provide a model_fn implementation in code/inference.py.")


def _encode_body(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    return json.dumps(body, default=_json_default).encode("utf-8")


def _call_handler(func: Callable[..., Any], context: ModelContext, *args: Any) -> Any:
    """Call a handler as the toolkit does: with the context when it takes one parameter more."""
    try:
        count = len(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        return func(*args)
    if count == len(args) + 1:
        return func(*args, context)
    if count == len(args):
        return func(*args)
    name = getattr(func, "__name__", "handler")
    raise TypeError(f"{name} takes {count} arguments but {len(args)} were given.")


def _is_under(module: ModuleType, directory: Path) -> bool:
    origin = getattr(module, "__file__", None)
    if not origin:
        return False
    try:
        return Path(origin).resolve().is_relative_to(directory)
    except (OSError, ValueError):
        return False


class _ModelHost:
    """Imports ``code/inference.py`` and runs the toolkit's call sequence for one endpoint."""

    def __init__(self, endpoint: LocalEndpoint) -> None:
        self.endpoint = endpoint
        self.model_dir = Path(endpoint.model_dir).resolve()
        self.code_dir = self.model_dir / "code"
        safe_name = re.sub(r"\W", "_", endpoint.name)
        self.module_name = f"_sagemaker_local_{safe_name}_{next(_module_counter)}"
        self._lock = threading.Lock()
        self._private_modules: dict[str, ModuleType] = {}
        self._handlers: _Handlers | None = None
        self._model: Any = None
        self._loaded = False

    @contextlib.contextmanager
    def _own_code_importable(self) -> Iterator[None]:
        """Put ``code/`` on sys.path and this endpoint's own modules in sys.modules, then hide them."""
        with _IMPORT_LOCK:
            entry = str(self.code_dir)
            sys.path.insert(0, entry)
            shadowed = {name: sys.modules.get(name) for name in self._private_modules}
            sys.modules.update(self._private_modules)
            before = set(sys.modules)
            try:
                yield
            finally:
                with contextlib.suppress(ValueError):
                    sys.path.remove(entry)
                for name in set(sys.modules) - before:
                    module = sys.modules.get(name)
                    if module is not None and name != self.module_name and _is_under(module, self.code_dir):
                        self._private_modules[name] = sys.modules.pop(name)
                for name, previous in shadowed.items():
                    if previous is None:
                        sys.modules.pop(name, None)
                    else:
                        sys.modules[name] = previous
                importlib.invalidate_caches()

    def _import(self) -> _Handlers:
        path = self.code_dir / "inference.py"
        spec = importlib.util.spec_from_file_location(self.module_name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[self.module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(self.module_name, None)
            raise
        transform_fn = getattr(module, "transform_fn", None)
        input_fn = getattr(module, "input_fn", None)
        predict_fn = getattr(module, "predict_fn", None)
        output_fn = getattr(module, "output_fn", None)
        if transform_fn and (input_fn or predict_fn or output_fn):
            raise ValueError(
                "Cannot use transform_fn implementation in conjunction with "
                "input_fn, predict_fn, and/or output_fn implementation"
            )
        return _Handlers(
            model_fn=getattr(module, "model_fn", _missing_model_fn),
            transform_fn=transform_fn,
            input_fn=input_fn or _default_input_fn,
            predict_fn=predict_fn or _default_predict_fn,
            output_fn=output_fn or _default_output_fn,
            pre_model_fn=getattr(module, "pre_model_fn", None),
            model_warmup_fn=getattr(module, "model_warmup_fn", None),
        )

    def _ensure_loaded(self, context: ModelContext) -> tuple[_Handlers, Any]:
        with self._lock:
            if not self._loaded:
                model_dir = str(self.model_dir)
                with self._own_code_importable():
                    if self._handlers is None:
                        self._handlers = self._import()
                    handlers = self._handlers
                    if handlers.pre_model_fn is not None:
                        _call_handler(handlers.pre_model_fn, context, model_dir)
                    model = _call_handler(handlers.model_fn, context, model_dir)
                    if handlers.model_warmup_fn is not None:
                        _call_handler(handlers.model_warmup_fn, context, model_dir, model)
                self._model = model
                self._loaded = True
            assert self._handlers is not None
            return self._handlers, self._model

    def transform(
        self, body: bytes, content_type: str | None, accept: str | None, headers: dict[str, str]
    ) -> tuple[bytes, str]:
        """Run the model on one request; raise ``_ModelError`` as the toolkit answers errors."""
        context = ModelContext(
            model_name=self.endpoint.name,
            system_properties={
                "model_dir": str(self.model_dir),
                "gpu_id": None,
                "batch_size": 1,
                "server_name": "local-sagemaker-runtime",
            },
            request_headers=headers,
        )
        try:
            handlers, model = self._ensure_loaded(context)
            if not accept or accept == "*/*":
                accept = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "application/json")
            data: bytes | str = body.decode("utf-8") if content_type in _UTF8_TYPES else body
            if handlers.transform_fn is not None:
                result = _call_handler(handlers.transform_fn, context, model, data, content_type, accept)
            else:
                decoded = _call_handler(handlers.input_fn, context, data, content_type)
                prediction = _call_handler(handlers.predict_fn, context, decoded, model)
                result = _call_handler(handlers.output_fn, context, prediction, accept)
            response, response_type = result if isinstance(result, tuple) else (result, accept)
            return _encode_body(response), str(response_type or accept)
        except (Exception, SystemExit) as error:  # the model's own failure, whatever it is
            status = getattr(error, "status_code", None)
            if not isinstance(status, int) or not 400 <= status <= 599:
                status = 500
            message = str(getattr(error, "message", None) or error) or type(error).__name__
            detail = f"{message}\n{traceback.format_exc()}"
            _log.debug("model of endpoint %s failed", self.endpoint.name, exc_info=True)
            raise _ModelError(status, message, detail) from error


# -- jobs and worker pools -----------------------------------------------------------------------


@dataclass
class _Outcome:
    body: bytes = b""
    content_type: str = ""
    failure: _ModelError | None = None
    reason: str = ""  # async failureReason, or a real-time timeout
    timed_out: bool = False
    dropped: bool = False


class _Job:
    """One invocation. Whoever settles it first (worker, timeout, shutdown) decides its outcome."""

    def __init__(
        self,
        inference_id: str,
        body: bytes,
        content_type: str | None,
        accept: str | None,
        headers: dict[str, str],
    ) -> None:
        self.inference_id = inference_id
        self.body = body
        self.content_type = content_type
        self.accept = accept
        self.headers = headers
        self.received_at = datetime.now(UTC)
        self.received_monotonic = time.monotonic()
        self.outcome: _Outcome | None = None
        self.done = threading.Event()
        self._lock = threading.Lock()

    def settle(self, outcome: _Outcome) -> bool:
        with self._lock:
            if self.outcome is not None:
                return False
            self.outcome = outcome
        self.done.set()
        return True

    @property
    def settled(self) -> bool:
        with self._lock:
            return self.outcome is not None

    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self.received_monotonic) * 1000)


class _AsyncJob(_Job):
    def __init__(
        self,
        *,
        input_location: str,
        timeout_seconds: int,
        output_location: str,
        failure_location: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.input_location = input_location
        self.timeout_seconds = timeout_seconds
        self.output_location = output_location
        self.failure_location = failure_location


class _EndpointWorkers:
    """The bounded pool of one endpoint: ``max_concurrency`` threads taking jobs from a queue."""

    def __init__(self, endpoint: LocalEndpoint, run: Callable[[_EndpointWorkers, _Job], None]) -> None:
        self.endpoint = endpoint
        self.host = _ModelHost(endpoint)
        self.jobs: queue.Queue[_Job | None] = queue.Queue()
        self.closed = False
        self._closing = threading.Lock()
        self._run = run
        self._threads = [
            threading.Thread(target=self._work, name=f"sagemaker-{endpoint.name}-{index}", daemon=True)
            for index in range(endpoint.max_concurrency)
        ]
        for thread in self._threads:
            thread.start()

    def _work(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            try:
                self._run(self, job)
            except Exception:  # a worker must survive anything
                _log.exception("local SageMaker worker of %s failed", self.endpoint.name)

    def submit(self, job: _Job) -> bool:
        """Queue ``job``; False when this pool was closed (replaced or shut down) meanwhile."""
        with self._closing:
            if self.closed:
                return False
            self.jobs.put(job)
            return True

    def close(self, *, drop_queued: bool) -> list[_Job]:
        """Stop the workers once the queue is done, or at once with ``drop_queued`` (jobs returned)."""
        with self._closing:
            if self.closed:
                return []
            self.closed = True
            pending: list[_Job] = []
            while drop_queued:
                try:
                    job = self.jobs.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    pending.append(job)
            for _ in self._threads:
                self.jobs.put(None)
            return pending

    def join(self, deadline: float) -> None:
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))


# -- the runtime ---------------------------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _join_s3(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *(part.strip("/") for part in parts if part)])


def _parse_s3(uri: str) -> tuple[str, str]:
    match = _S3_URI.match(uri)
    if not match or not match["key"]:
        raise ValueError(f"not an s3://bucket/key URI: {uri!r}")
    return match["bucket"], match["key"]


def _error_code(error: BaseException) -> str:
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


class LocalSageMakerRuntime:
    """Hosts toolkit-convention models behind the SageMaker Runtime API (see the module docstring).

    ``client_factory("s3")`` and ``client_factory("sns")`` must return boto3 clients of the local
    AWS (the same moto server); they read async inputs, write outputs and publish notifications.
    """

    def __init__(
        self,
        client_factory: Callable[[str], Any],
        region: str = "us-east-1",
        logger: Callable[[str], None] | None = None,
    ) -> None:
        self._client_factory = client_factory
        self.region = region
        self._logger = logger or _log.info
        self.account_id = os.environ.get("MOTO_ACCOUNT_ID", _DEFAULT_ACCOUNT_ID)
        self._endpoints: dict[str, _EndpointWorkers] = {}
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()
        self._pending = 0  # async jobs accepted and not yet finished
        self._idle = threading.Condition()
        self._timers: set[threading.Timer] = set()
        self._closed = False

    # -- configuration ----------------------------------------------------------------------------
    def add_endpoint(self, endpoint: LocalEndpoint) -> None:
        """Host ``endpoint``, replacing one of the same name (its queued jobs still run)."""
        if endpoint.mode not in ("async", "realtime"):
            raise ValueError(f"endpoint {endpoint.name}: mode must be 'async' or 'realtime'")
        if not (Path(endpoint.model_dir) / "code" / "inference.py").is_file():
            raise FileNotFoundError(f"endpoint {endpoint.name}: no code/inference.py in {endpoint.model_dir}")
        if endpoint.max_concurrency < 1:
            raise ValueError(f"endpoint {endpoint.name}: max_concurrency must be at least 1")
        if not 1 <= endpoint.default_timeout_seconds <= _MAX_INVOCATION_TIMEOUT:
            raise ValueError(f"endpoint {endpoint.name}: default_timeout_seconds must be 1..3600")
        if endpoint.mode == "async":
            for label, uri in (
                ("output_path", endpoint.output_path),
                ("failure_path", endpoint.failure_path),
            ):
                if (uri or label == "output_path") and not _S3_URI.match(uri):
                    raise ValueError(f"endpoint {endpoint.name}: {label} must be an s3:// URI, got {uri!r}")
        with self._lock:
            if self._closed:
                raise RuntimeError("the local SageMaker runtime is shut down")
            previous = self._endpoints.get(endpoint.name)
            self._endpoints[endpoint.name] = _EndpointWorkers(endpoint, self._run_job)
        if previous is not None:
            previous.close(drop_queued=False)  # the old pool finishes what it accepted, then stops

    def endpoint_names(self) -> list[str]:
        with self._lock:
            return sorted(self._endpoints)

    # -- lifecycle --------------------------------------------------------------------------------
    def wait_idle(self, timeout: float) -> bool:
        """True when no asynchronous job is queued or running (waits up to ``timeout`` seconds).

        A job counts until its output or failure is written and its notification published; a job
        that timed out counts as finished even while its model code is still running.
        """
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def shutdown(self) -> None:
        """Stop the pools. Queued jobs are dropped; model code still running is left behind."""
        with self._lock:
            self._closed = True
            pools = list(self._endpoints.values())
        with self._idle:
            timers = list(self._timers)
            self._timers.clear()
        for timer in timers:
            timer.cancel()
        for pool in pools:
            for job in pool.close(drop_queued=True):
                if job.settle(_Outcome(dropped=True, reason="ServiceUnavailable: the runtime shut down")):
                    self._job_done(job)
        deadline = time.monotonic() + SHUTDOWN_GRACE_SECONDS
        for pool in pools:
            pool.join(deadline)
        with self._idle:
            self._pending = 0
            self._idle.notify_all()

    # -- WSGI -------------------------------------------------------------------------------------
    def middleware(self, app: WSGIApplication) -> WSGIApplication:
        """Wrap ``app``: SageMaker Runtime requests are answered here, all others go to ``app``."""

        def sagemaker_runtime_middleware(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
            match = _PATH.match(environ.get("PATH_INFO", ""))
            if match is None or environ.get("REQUEST_METHOD") != "POST" or not _signed_for_sagemaker(environ):
                return app(environ, start_response)
            from werkzeug.wrappers import Request

            request = Request(environ)
            try:
                if match["operation"] == "invocations":
                    response = self._invoke_endpoint(match["name"], request)
                else:
                    response = self._invoke_endpoint_async(match["name"], request)
            except _ApiError as error:
                response = _error_response(error)
            except Exception as error:  # never let a bug surface as a dropped connection
                _log.exception("local SageMaker runtime failed")
                response = _error_response(_ApiError(500, "InternalFailure", f"local runtime error: {error}"))
            return response(environ, start_response)

        return sagemaker_runtime_middleware

    # -- InvokeEndpoint ---------------------------------------------------------------------------
    def _pool(self, name: str) -> _EndpointWorkers:
        with self._lock:
            if self._closed:
                raise _ApiError(503, "ServiceUnavailable", "The local SageMaker runtime is shutting down.")
            pool = self._endpoints.get(name)
        if pool is None:
            raise _validation(f"Endpoint {name} of account {self.account_id} not found.")
        return pool

    def _invoke_endpoint(self, name: str, request: Request) -> Response:
        pool = self._pool(name)
        endpoint = pool.endpoint
        if endpoint.mode != "realtime":
            raise _validation(
                f"Endpoint {name} of account {self.account_id} is an asynchronous endpoint; use InvokeEndpointAsync."
            )
        inference_id = request.headers.get("X-Amzn-SageMaker-Inference-Id") or ""
        _check_inference_id(inference_id)
        job = _Job(
            inference_id=inference_id,
            body=request.get_data(),
            content_type=request.headers.get("Content-Type") or None,
            accept=request.headers.get("Accept") or None,
            headers=_model_headers(request),
        )
        self._submit(pool, job)
        if not job.done.wait(REALTIME_TIMEOUT_SECONDS):
            job.settle(_Outcome(timed_out=True))
        outcome = job.outcome
        assert outcome is not None
        label = f"sagemaker {name} (realtime) {inference_id or '-'}"
        if outcome.dropped:
            raise _ApiError(503, "ServiceUnavailable", "The local SageMaker runtime is shutting down.")
        if outcome.timed_out:
            self._logger(f"{label}: timed out after {job.elapsed_ms()} ms")
            raise _ApiError(
                424,
                "ModelError",
                "Your invocation timed out while waiting for a response from container primary. "
                "Review the latency metrics for each container in Amazon CloudWatch, resolve the "
                "issue, and try again.",
                LogStreamArn=self._log_stream_arn(name),
            )
        if outcome.failure is not None:
            failure = outcome.failure
            self._logger(f"{label}: ModelError ({failure.status}) after {job.elapsed_ms()} ms: {failure.message}")
            raise _ApiError(
                424,
                "ModelError",
                failure.phrase("primary"),
                OriginalStatusCode=failure.status,
                OriginalMessage=failure.message,
                LogStreamArn=self._log_stream_arn(name),
            )
        self._logger(f"{label}: OK {outcome.content_type} in {job.elapsed_ms()} ms")
        from werkzeug.wrappers import Response

        return Response(
            outcome.body,
            status=200,
            headers={
                "Content-Type": outcome.content_type,
                "x-Amzn-Invoked-Production-Variant": endpoint.variant,
                "x-amzn-RequestId": str(uuid.uuid4()),
            },
        )

    # -- InvokeEndpointAsync ----------------------------------------------------------------------
    def _invoke_endpoint_async(self, name: str, request: Request) -> Response:
        pool = self._pool(name)
        endpoint = pool.endpoint
        if endpoint.mode != "async":
            raise _validation(
                f"Endpoint {name} of account {self.account_id} is not an asynchronous "
                "inference endpoint; use InvokeEndpoint."
            )
        headers = request.headers
        input_location = headers.get("X-Amzn-SageMaker-InputLocation") or ""
        if not input_location:
            raise _validation("InputLocation is required (the local runtime does not take an inline Body).")
        try:
            _parse_s3(input_location)
        except ValueError:
            raise _validation(f"InputLocation must be an s3://bucket/key URI locally, got {input_location}.") from None
        inference_id = headers.get("X-Amzn-SageMaker-Inference-Id") or str(uuid.uuid4())
        _check_inference_id(inference_id)
        timeout_header = headers.get("X-Amzn-SageMaker-InvocationTimeoutSeconds")
        try:
            timeout = int(timeout_header) if timeout_header else endpoint.default_timeout_seconds
        except ValueError:
            raise _validation(f"InvocationTimeoutSeconds must be an integer, got {timeout_header}.") from None
        if not 1 <= timeout <= _MAX_INVOCATION_TIMEOUT:
            raise _validation(f"InvocationTimeoutSeconds must be between 1 and {_MAX_INVOCATION_TIMEOUT}.")
        extension = headers.get("X-Amzn-SageMaker-S3OutputPathExtension") or ""
        object_id = str(uuid.uuid4())
        output_location = _join_s3(
            endpoint.output_path, extension, headers.get("X-Amzn-SageMaker-Filename") or f"{object_id}.out"
        )
        failure_location = _join_s3(endpoint.failure_path or endpoint.output_path, extension, f"{object_id}-error.out")
        job = _AsyncJob(
            inference_id=inference_id,
            body=b"",
            content_type=headers.get("X-Amzn-SageMaker-Content-Type") or None,
            accept=headers.get("X-Amzn-SageMaker-Accept") or None,
            headers=_model_headers(request),
            input_location=input_location,
            timeout_seconds=timeout,
            output_location=output_location,
            failure_location=failure_location,
        )
        with self._idle:
            self._pending += 1
        self._submit(pool, job)
        from werkzeug.wrappers import Response

        response_headers = {
            "Content-Type": "application/json",
            "x-amzn-RequestId": str(uuid.uuid4()),
            "X-Amzn-SageMaker-OutputLocation": output_location,
        }
        if endpoint.failure_path:
            response_headers["X-Amzn-SageMaker-FailureLocation"] = failure_location
        return Response(json.dumps({"InferenceId": inference_id}), status=202, headers=response_headers)

    def _submit(self, pool: _EndpointWorkers, job: _Job) -> None:
        """Queue ``job`` on the endpoint's pool, or on its replacement if it was just replaced."""
        while not pool.submit(job):
            try:
                pool = self._pool(pool.endpoint.name)
            except _ApiError:
                if job.settle(_Outcome(dropped=True)):
                    self._job_done(job)
                raise

    # -- the workers' side ------------------------------------------------------------------------
    def _run_job(self, pool: _EndpointWorkers, job: _Job) -> None:
        if job.settled:  # a real-time caller gave up, or the runtime dropped it
            return
        if self._closed:
            if job.settle(_Outcome(dropped=True)):
                self._job_done(job)
            return
        if not isinstance(job, _AsyncJob):
            try:
                body, content_type = pool.host.transform(job.body, job.content_type, job.accept, job.headers)
                job.settle(_Outcome(body=body, content_type=content_type))
            except _ModelError as failure:
                job.settle(_Outcome(failure=failure))
            return
        self._run_async(pool, job)

    def _run_async(self, pool: _EndpointWorkers, job: _AsyncJob) -> None:
        endpoint = pool.endpoint
        timer = threading.Timer(job.timeout_seconds, self._time_out, (endpoint, job))
        timer.name = f"sagemaker-timeout-{job.inference_id}"
        timer.daemon = True
        with self._idle:
            self._timers.add(timer)
        timer.start()
        try:
            outcome = self._process(pool, job)
        finally:
            timer.cancel()
            with self._idle:
                self._timers.discard(timer)
        if job.settle(outcome):
            self._finish_async(endpoint, job)
        elif job.outcome is not None and job.outcome.timed_out:
            self._logger(
                f"sagemaker {endpoint.name} (async) {job.inference_id}: the model returned after "
                f"the {job.timeout_seconds} s timeout, {job.elapsed_ms()} ms; result discarded"
            )

    def _process(self, pool: _EndpointWorkers, job: _AsyncJob) -> _Outcome:
        try:
            bucket, key = _parse_s3(job.input_location)
            body = self._client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as error:
            code = _error_code(error) or type(error).__name__
            return _Outcome(
                reason=f"ClientError: Failed to download the input from {job.input_location}: {code}: {error}"
            )
        try:
            output, content_type = pool.host.transform(body, job.content_type, job.accept, job.headers)
        except _ModelError as failure:
            return _Outcome(failure=failure, reason=f"ClientError: {failure.phrase('model')}")
        return _Outcome(body=output, content_type=content_type)

    def _time_out(self, endpoint: LocalEndpoint, job: _AsyncJob) -> None:
        reason = (
            f"InvocationTimeout: The invocation did not complete within {job.timeout_seconds} seconds "
            "(InvocationTimeoutSeconds)."
        )
        if job.settle(_Outcome(timed_out=True, reason=reason)):
            self._finish_async(endpoint, job)

    def _finish_async(self, endpoint: LocalEndpoint, job: _AsyncJob) -> None:
        """Write the output or the failure to S3 and publish the notification (once per job)."""
        outcome = job.outcome
        assert outcome is not None
        try:
            if self._closed:
                return
            label = f"sagemaker {endpoint.name} (async) {job.inference_id}"
            if not outcome.reason:
                try:
                    self._put(job.output_location, outcome.body, outcome.content_type)
                except Exception as error:
                    outcome.reason = (
                        f"ClientError: Failed to upload the output to {job.output_location}: "
                        f"{_error_code(error) or type(error).__name__}: {error}"
                    )
                else:
                    self._publish(endpoint.success_topic_arn, self._notification(endpoint, job, outcome))
                    self._logger(f"{label}: Completed in {job.elapsed_ms()} ms -> {job.output_location}")
                    return
            failure_location: str | None = job.failure_location
            detail = outcome.failure.detail if outcome.failure is not None else outcome.reason
            try:
                self._put(job.failure_location, detail.encode("utf-8"), "text/plain")
            except Exception as error:
                _log.warning("cannot write %s: %s", job.failure_location, error)
                failure_location = None
            self._publish(
                endpoint.error_topic_arn,
                self._notification(endpoint, job, outcome, failure_location=failure_location),
            )
            self._logger(f"{label}: Failed in {job.elapsed_ms()} ms: {outcome.reason}")
        except Exception:
            _log.exception("finishing %s of %s failed", job.inference_id, endpoint.name)
        finally:
            self._job_done(job)

    def _job_done(self, job: _Job) -> None:
        if isinstance(job, _AsyncJob):
            with self._idle:
                self._pending = max(0, self._pending - 1)
                if self._pending == 0:
                    self._idle.notify_all()

    def _notification(
        self, endpoint: LocalEndpoint, job: _AsyncJob, outcome: _Outcome, failure_location: str | None = None
    ) -> dict[str, Any]:
        """The document SageMaker async publishes to the endpoint's success or error topic."""
        failed = bool(outcome.reason)
        message: dict[str, Any] = {
            "awsRegion": self.region,
            "eventTime": _iso(datetime.now(UTC)),
            "receivedTime": _iso(job.received_at),
            "invocationStatus": "Failed" if failed else "Completed",
        }
        if failed:
            message["failureReason"] = outcome.reason
            if failure_location:
                message["failureLocation"] = failure_location
        message["requestParameters"] = {
            "contentType": job.content_type or _DEFAULT_CONTENT_TYPE,
            "endpointName": endpoint.name,
            "inputLocation": job.input_location,
        }
        message["responseParameters"] = (
            {"contentType": "text/plain"}
            if failed
            else {"contentType": outcome.content_type, "outputLocation": job.output_location}
        )
        message.update(
            {
                "inferenceId": job.inference_id,
                "eventVersion": "1.0",
                "eventSource": "aws:sagemaker",
                "eventName": "InferenceResult",
            }
        )
        return message

    def _client(self, service: str) -> Any:
        with self._clients_lock:
            if service not in self._clients:
                self._clients[service] = self._client_factory(service)
            return self._clients[service]

    def _put(self, uri: str, body: bytes, content_type: str) -> None:
        bucket, key = _parse_s3(uri)
        self._client("s3").put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)

    def _publish(self, topic_arn: str, message: dict[str, Any]) -> None:
        if not topic_arn:
            return
        try:
            self._client("sns").publish(TopicArn=topic_arn, Message=json.dumps(message))
        except Exception as error:
            self._logger(f"sagemaker: cannot publish to {topic_arn}: {error}")

    def _log_stream_arn(self, name: str) -> str:
        return f"arn:aws:logs:{self.region}:{self.account_id}:log-group:/aws/sagemaker/Endpoints/{name}"


def _model_headers(request: Request) -> dict[str, str]:
    """The request headers a model may see (not the caller's credentials)."""
    hidden = ("authorization", "x-amz-security-token")
    return {key: value for key, value in request.headers.items() if key.lower() not in hidden}


def _check_inference_id(inference_id: str) -> None:
    if len(inference_id) > _MAX_INFERENCE_ID or (inference_id and not inference_id.isprintable()):
        raise _validation(f"InferenceId must be 1 to {_MAX_INFERENCE_ID} printable characters.")


def _signed_for_sagemaker(environ: WSGIEnvironment) -> bool:
    """A request signed for another service (an S3 bucket named ``endpoints``…) is not ours."""
    match = _CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    return match is None or match["service"] == "sagemaker"


def _error_response(error: _ApiError) -> Response:
    """A rest-json error: ``x-amzn-ErrorType`` names the shape, the body carries its members."""
    from werkzeug.wrappers import Response

    body = {"Message": error.message, "message": error.message, **error.fields}
    if error.code == "ModelError":
        body["ErrorCode"] = "CLIENT_ERROR_FROM_MODEL"
    return Response(
        json.dumps(body),
        status=error.status,
        headers={
            "Content-Type": "application/json",
            "x-amzn-ErrorType": error.code,
            "x-amzn-RequestId": str(uuid.uuid4()),
        },
    )

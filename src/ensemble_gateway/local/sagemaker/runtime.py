"""The local SageMaker runtime: ``InvokeEndpoint`` and ``InvokeEndpointAsync`` for toolkit models.

A WSGI middleware placed in front of moto's server app. It answers
``POST /endpoints/{name}/invocations`` and ``POST /endpoints/{name}/async-invocations`` (the URIs
of botocore's ``sagemaker-runtime`` model) and passes every other request to the wrapped app, so
boto3 reaches it through ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME``.

Each endpoint hosts one model directory in the SageMaker inference-toolkit layout, served with
the defaults of its framework's container (``hosting``, ``toolkit``, ``frameworks``), loaded when
the endpoint is added, with its own bounded pool of worker threads (``workers``), whose models run
on those threads or, with ``model_processes``, in a worker process each (``processes``).

What SageMaker does and this runtime copies: the rest-json errors botocore parses
(``ValidationError``; ``ModelError`` 424 with ``OriginalStatusCode``, ``OriginalMessage`` and
``LogStreamArn``; the 60 s real-time limit); for asynchronous invocations the input read from S3,
the output written to ``S3OutputPath`` (``X-Amzn-SageMaker-S3OutputPathExtension`` and
``-Filename`` honoured) or the failure to ``S3FailurePath``, ``InvocationTimeoutSeconds`` (1 to
3600, the endpoint's default otherwise), and the notification document SageMaker publishes to the
endpoint's success or error topic.

Local differences, on purpose: an asynchronous invocation needs ``InputLocation`` (no inline
body); one that times out is failed and its late result discarded, but its worker stays busy until
the model code returns, as a container's worker would, so concurrency stays bounded. Removing or
replacing an endpoint lets its pool finish the invocations it accepted.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .endpoint import FRAMEWORKS, LocalEndpoint
from .hosting import ModelHost
from .processes import ProcessModelHost
from .toolkit import ModelError
from .workers import AsyncJob, EndpointWorkers, Job, Outcome

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from werkzeug.wrappers import Request, Response

__all__ = ["REALTIME_TIMEOUT_SECONDS", "SHUTDOWN_GRACE_SECONDS", "LocalSageMakerRuntime"]

_log = logging.getLogger(__name__)

#: How long ``InvokeEndpoint`` waits for the model, as SageMaker real-time endpoints do (60 s).
REALTIME_TIMEOUT_SECONDS: float = 60.0
#: How long ``shutdown`` waits for workers before leaving stuck model code behind (daemon threads).
SHUTDOWN_GRACE_SECONDS: float = 2.0

_PATH = re.compile(r"^/endpoints/(?P<name>[^/]+)/(?P<operation>invocations|async-invocations)/?$")
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/[^/,\s]+/(?P<service>[^/,\s]+)/aws4_request")
_S3_URI = re.compile(r"^s3://(?P<bucket>[^/]+)/?(?P<key>.*)$")
_DEFAULT_CONTENT_TYPE = "application/octet-stream"
_MAX_INFERENCE_ID = 64
_MAX_INVOCATION_TIMEOUT = 3600
_DEFAULT_ACCOUNT_ID = "123456789012"  # moto's default account


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


def _check_settings(endpoint: LocalEndpoint) -> None:
    """Refuse the endpoint settings SageMaker would refuse (the model itself is checked by loading it)."""
    if endpoint.mode not in ("async", "realtime"):
        raise ValueError(f"endpoint {endpoint.name}: mode must be 'async' or 'realtime'")
    if endpoint.framework not in FRAMEWORKS:
        raise ValueError(f"endpoint {endpoint.name}: framework must be one of {', '.join(FRAMEWORKS)}")
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


class LocalSageMakerRuntime:
    """Hosts toolkit-convention models behind the SageMaker Runtime API (see the module docstring).

    Parameters
    ----------
    client_factory : callable
        ``client_factory("s3")`` and ``client_factory("sns")`` return boto3 clients of the local
        AWS (the same moto server): they read async inputs, write outputs and publish notifications.
    region : str
        The region reported in notifications and log stream ARNs.
    logger : callable, optional
        Receives one readable line per load and per invocation (default: this module's logger).
    model_processes : bool
        Run each endpoint's model in worker processes (``processes``), one per worker of its pool,
        as a container's workers are: a model that crashes its process fails the invocation with a
        ``ModelError``, not the runtime. False (the default here): on the pool's threads.
    """

    def __init__(
        self,
        client_factory: Callable[[str], Any],
        region: str = "us-east-1",
        logger: Callable[[str], None] | None = None,
        *,
        model_processes: bool = False,
    ) -> None:
        self._client_factory = client_factory
        self.model_processes = model_processes
        self.region = region
        self._logger = logger or _log.info
        self.account_id = os.environ.get("MOTO_ACCOUNT_ID", _DEFAULT_ACCOUNT_ID)
        self._endpoints: dict[str, EndpointWorkers] = {}
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()
        self._pending = 0  # async jobs accepted and not yet finished
        self._idle = threading.Condition()
        self._timers: set[threading.Timer] = set()
        self._closed = False

    # -- configuration ----------------------------------------------------------------------------
    def add_endpoint(self, endpoint: LocalEndpoint) -> None:
        """Load ``endpoint``'s model now and serve it, replacing an endpoint of the same name.

        The model is loaded before anything changes: when it fails, an endpoint of that name that
        was serving keeps serving, unchanged. A replaced endpoint's pool finishes the invocations
        it accepted, then stops.

        Parameters
        ----------
        endpoint : LocalEndpoint
            The endpoint and its model directory.

        Raises
        ------
        ValueError
            When the endpoint's settings are not what SageMaker accepts.
        ModelLoadError
            When the model cannot be loaded (its message says which file and what failed).
        RuntimeError
            When the runtime is shut down.
        """
        _check_settings(endpoint)
        with self._lock:
            if self._closed:
                raise RuntimeError("the local SageMaker runtime is shut down")
        started = time.monotonic()
        host = ModelHost(endpoint)
        host.load()
        # With worker processes this load only checks the model (its errors are reported here);
        # each worker process loads its own copy, and this one is dropped with ``host``.
        serving: ModelHost | ProcessModelHost = ProcessModelHost(endpoint) if self.model_processes else host
        with self._lock:
            if self._closed:
                raise RuntimeError("the local SageMaker runtime is shut down")
            previous = self._endpoints.get(endpoint.name)
            self._endpoints[endpoint.name] = EndpointWorkers(endpoint, serving, self._run_job)
        if previous is not None:
            previous.close(drop_queued=False)  # the old pool finishes what it accepted, then stops
        elapsed = int((time.monotonic() - started) * 1000)
        self._logger(f"sagemaker {endpoint.name} ({endpoint.mode}): {endpoint.framework} model loaded in {elapsed} ms")

    def remove_endpoint(self, name: str) -> bool:
        """Stop serving endpoint ``name``, as ``DeleteEndpoint`` does.

        Invocations it accepted still run to their end (outputs, failures and notifications
        included); new ones are refused as for an unknown endpoint.

        Parameters
        ----------
        name : str
            The endpoint's name.

        Returns
        -------
        bool
            True when an endpoint of that name was removed, False when there was none.
        """
        with self._lock:
            pool = self._endpoints.pop(name, None)
        if pool is None:
            return False
        pool.close(drop_queued=False)
        return True

    def endpoint_names(self) -> list[str]:
        """The names of the endpoints served, sorted."""
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
        """Stop the pools. Queued jobs are dropped; model code still running on a thread is left
        behind, in a worker process it is stopped."""
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
                if job.settle(Outcome(dropped=True, reason="ServiceUnavailable: the runtime shut down")):
                    self._job_done(job)
        deadline = time.monotonic() + SHUTDOWN_GRACE_SECONDS
        for pool in pools:
            pool.join(deadline)
        for pool in pools:
            pool.release()  # model code still running in a worker process is stopped, not left behind
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
    def _pool(self, name: str) -> EndpointWorkers:
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
        job = Job(
            inference_id=inference_id,
            body=request.get_data(),
            content_type=request.headers.get("Content-Type") or None,
            accept=request.headers.get("Accept") or None,
            headers=_model_headers(request),
        )
        self._submit(pool, job)
        if not job.done.wait(REALTIME_TIMEOUT_SECONDS):
            job.settle(Outcome(timed_out=True))
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
        job = AsyncJob(
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

    def _submit(self, pool: EndpointWorkers, job: Job) -> None:
        """Queue ``job`` on the endpoint's pool, or on its replacement if it was just replaced."""
        while not pool.submit(job):
            try:
                pool = self._pool(pool.endpoint.name)
            except _ApiError:
                if job.settle(Outcome(dropped=True)):
                    self._job_done(job)
                raise

    # -- the workers' side ------------------------------------------------------------------------
    def _run_job(self, pool: EndpointWorkers, job: Job) -> None:
        if job.settled:  # a real-time caller gave up, or the runtime dropped it
            return
        if self._closed:
            if job.settle(Outcome(dropped=True)):
                self._job_done(job)
            return
        if not isinstance(job, AsyncJob):
            try:
                body, content_type = pool.host.invoke(job.body, job.content_type, job.accept, job.headers)
                job.settle(Outcome(body=body, content_type=content_type))
            except ModelError as failure:
                job.settle(Outcome(failure=failure))
            return
        self._run_async(pool, job)

    def _run_async(self, pool: EndpointWorkers, job: AsyncJob) -> None:
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

    def _process(self, pool: EndpointWorkers, job: AsyncJob) -> Outcome:
        try:
            bucket, key = _parse_s3(job.input_location)
            body = self._client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as error:
            code = _error_code(error) or type(error).__name__
            return Outcome(
                reason=f"ClientError: Failed to download the input from {job.input_location}: {code}: {error}"
            )
        try:
            output, content_type = pool.host.invoke(body, job.content_type, job.accept, job.headers)
        except ModelError as failure:
            return Outcome(failure=failure, reason=f"ClientError: {failure.phrase('model')}")
        return Outcome(body=output, content_type=content_type)

    def _time_out(self, endpoint: LocalEndpoint, job: AsyncJob) -> None:
        reason = (
            f"InvocationTimeout: The invocation did not complete within {job.timeout_seconds} seconds "
            "(InvocationTimeoutSeconds)."
        )
        if job.settle(Outcome(timed_out=True, reason=reason)):
            self._finish_async(endpoint, job)

    def _finish_async(self, endpoint: LocalEndpoint, job: AsyncJob) -> None:
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

    def _job_done(self, job: Job) -> None:
        if isinstance(job, AsyncJob):
            with self._idle:
                self._pending = max(0, self._pending - 1)
                if self._pending == 0:
                    self._idle.notify_all()

    def _notification(
        self, endpoint: LocalEndpoint, job: AsyncJob, outcome: Outcome, failure_location: str | None = None
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

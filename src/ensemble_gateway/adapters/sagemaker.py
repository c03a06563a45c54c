"""SageMaker runtime adapter: asynchronous and real-time invocations.

A real-time call is bounded and never repeated once it may have reached the model: SageMaker
answers ``InvokeEndpoint`` within 60 s or fails the invocation, so the client waits a little
longer than that, and the only retries are of errors that prove the request never reached the
model (the connection was never made, or SageMaker throttled the call before routing it). A
retry of anything else could run the model twice; what is left to at-least-once redelivery is
handled idempotently by the lifecycle (and a real-time prediction that never answers is failed
by the sweeper at its deadline, before its upload message is redelivered).

``InvokeEndpointAsync`` only queues the request. AWS documents no deduplication by
``InferenceId``, so a retry after a lost answer may queue it twice; both results would be
published under the same inference ID (= prediction ID) and the gateway applies the first and
ignores the second (a conditional transition). A retry therefore costs at most a second model
run, never a second result, so async calls keep botocore's standard retries, with short timeouts.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from ..domain.errors import DispatchError, ModelInvocationError
from ..domain.notifications import model_failure_message
from ..domain.ports import RealtimeResponse
from .aws import LazyClient, error_code
from .aws import client as aws_client

# SageMaker real-time: the model has 60 s to answer; 5 s more for the network.
REALTIME_READ_TIMEOUT_SECONDS = 65
CONNECT_TIMEOUT_SECONDS = 3
# Attempts of one InvokeEndpoint, the later ones only after an error that proves the model did not run.
REALTIME_ATTEMPTS = 3
# No attempt starts unless it can finish (connect + read) within this many seconds of the first:
# the whole call is bounded below the invoking functions' timeout (tests/test_template.py).
REALTIME_CALL_BUDGET_SECONDS = 80
# InvokeEndpointAsync queues the request and answers at once.
ASYNC_READ_TIMEOUT_SECONDS = 10
ASYNC_ATTEMPTS = 3
# The answers to InvokeEndpoint that mean SageMaker refused the call before routing it to the model.
THROTTLING_ERRORS = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException"})


def realtime_config() -> Any:
    """botocore settings of the client that calls ``InvokeEndpoint``: bounded, no automatic retry."""
    from botocore.config import Config

    return Config(
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=REALTIME_READ_TIMEOUT_SECONDS,
        # botocore would retry read timeouts and 5xx answers: either may come after the model ran.
        retries={"mode": "standard", "total_max_attempts": 1},
    )


def async_config() -> Any:
    """botocore settings of the client that calls ``InvokeEndpointAsync`` (retries are harmless)."""
    from botocore.config import Config

    return Config(
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=ASYNC_READ_TIMEOUT_SECONDS,
        retries={"mode": "standard", "total_max_attempts": ASYNC_ATTEMPTS},
    )


def model_did_not_run(error: Exception) -> bool:
    """Whether an ``InvokeEndpoint`` failure proves the request never reached the model."""
    from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError

    # EndpointConnectionError: no connection (DNS, refused, proxy); nothing was sent. A read
    # timeout or a connection closed mid-request may come after the model ran: not retried.
    if isinstance(error, (EndpointConnectionError, ConnectTimeoutError)):
        return True
    return error_code(error) in THROTTLING_ERRORS


class SageMakerModelRuntime(LazyClient):
    """Invokes SageMaker endpoints.

    Parameters
    ----------
    client
        A ``sagemaker-runtime`` client for both kinds of call (tests); by default each kind gets
        its own client, configured as :func:`realtime_config` and :func:`async_config` say.
    async_client
        The client for ``InvokeEndpointAsync`` when ``client`` is given and should not serve it.
    """

    service_name = "sagemaker-runtime"

    def __init__(
        self,
        client: Any = None,
        *,
        async_client: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(client)
        self._async_client = async_client if async_client is not None else client
        self._sleep = sleep
        self._clock = clock

    @property
    def client(self) -> Any:
        """The real-time client."""
        if self._client is None:
            self._client = aws_client(self.service_name, config=realtime_config())
        return self._client

    @property
    def async_client(self) -> Any:
        if self._async_client is None:
            self._async_client = aws_client(self.service_name, config=async_config())
        return self._async_client

    def invoke_async(
        self,
        endpoint: str,
        input_uri: str,
        content_type: str,
        inference_id: str,
        timeout_seconds: int,
        request_ttl_seconds: int = 3600,
        *,
        accept: str,
    ) -> str:
        try:
            response = self.async_client.invoke_endpoint_async(
                EndpointName=endpoint,
                InputLocation=input_uri,
                ContentType=content_type,
                Accept=accept,
                InferenceId=inference_id,
                InvocationTimeoutSeconds=timeout_seconds,
                RequestTTLSeconds=request_ttl_seconds,
            )
        except Exception as error:
            if error_code(error) in ("ValidationError", "ValidationException"):
                # Unknown endpoint or refused input: retrying cannot help.
                raise DispatchError(f"endpoint '{endpoint}' refused the request: {error}") from error
            raise
        return str(response.get("OutputLocation", ""))

    def invoke_realtime(
        self, endpoint: str, body: bytes, content_type: str, inference_id: str, *, accept: str
    ) -> RealtimeResponse:
        try:
            response = self._invoke_endpoint(
                EndpointName=endpoint,
                Body=body,
                ContentType=content_type,
                Accept=accept,
                InferenceId=inference_id,
            )
        except Exception as error:
            code = error_code(error)
            if code == "ModelError":
                raise ModelInvocationError(_model_message(error), detail=_model_error_detail(error)) from error
            if code == "ModelNotReadyException":
                raise ModelInvocationError(f"{code}: {_message(error)}") from error
            if code in ("ValidationError", "ValidationException"):
                raise DispatchError(f"endpoint '{endpoint}' refused the request: {_message(error)}") from error
            raise
        return RealtimeResponse(
            body=response["Body"].read(),
            content_type=response.get("ContentType") or "application/octet-stream",
            invoked_variant=response.get("InvokedProductionVariant"),
        )

    def _invoke_endpoint(self, **request: Any) -> Any:
        """``InvokeEndpoint``, retried only while the model provably has not run and time remains."""
        started = self._clock()
        attempt_seconds = CONNECT_TIMEOUT_SECONDS + REALTIME_READ_TIMEOUT_SECONDS
        for attempt in range(1, REALTIME_ATTEMPTS + 1):
            try:
                return self.client.invoke_endpoint(**request)
            except Exception as error:
                if attempt == REALTIME_ATTEMPTS or not model_did_not_run(error):
                    raise
                # Full jitter, 0.1-0.4 s then 0.1-0.8 s: a throttled burst spreads out.
                delay = random.uniform(0.1, 0.2 * 2**attempt)
                if self._clock() - started + delay + attempt_seconds > REALTIME_CALL_BUDGET_SECONDS:
                    raise
                self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover


def _message(error: Exception) -> str:
    response: Any = getattr(error, "response", {}) or {}
    return str(response.get("Error", {}).get("Message") or error)


def _model_message(error: Exception) -> str:
    """What the model itself said: ``ModelError``'s ``OriginalMessage`` (botocore puts the error
    shape's members beside ``Error``), else the model's words inside SageMaker's message."""
    response: Any = getattr(error, "response", {}) or {}
    original = response.get("OriginalMessage")
    if isinstance(original, str) and original.strip():
        return original
    return model_failure_message(_message(error))


def _model_error_detail(error: Exception) -> str:
    """The whole answer, for the failure object: SageMaker's message and the model's status code."""
    response: Any = getattr(error, "response", {}) or {}
    status = response.get("OriginalStatusCode")
    detail = f"ModelError: {_message(error)}"
    if status is not None:
        detail += f" (the model answered with status {status})"
    log_stream = response.get("LogStreamArn")
    if log_stream:
        detail += f"; logs: {log_stream}"
    return detail

"""SageMaker runtime adapter: asynchronous and real-time invocations."""

from __future__ import annotations

from typing import Any

from ..domain.errors import DispatchError, ModelInvocationError
from ..domain.notifications import model_failure_message
from ..domain.ports import RealtimeResponse
from .aws import LazyClient, error_code


class SageMakerModelRuntime(LazyClient):
    service_name = "sagemaker-runtime"

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
            response = self.client.invoke_endpoint_async(
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
            response = self.client.invoke_endpoint(
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

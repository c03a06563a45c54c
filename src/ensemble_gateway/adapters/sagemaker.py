"""SageMaker runtime adapter: asynchronous and real-time invocations."""

from __future__ import annotations

from typing import Any

from ..domain.errors import DispatchError, ModelInvocationError
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
    ) -> str:
        try:
            response = self.client.invoke_endpoint_async(
                EndpointName=endpoint,
                InputLocation=input_uri,
                ContentType=content_type,
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

    def invoke_realtime(self, endpoint: str, body: bytes, content_type: str, inference_id: str) -> RealtimeResponse:
        try:
            response = self.client.invoke_endpoint(
                EndpointName=endpoint,
                Body=body,
                ContentType=content_type,
                InferenceId=inference_id,
            )
        except Exception as error:
            code = error_code(error)
            if code in ("ModelError", "ModelNotReadyException"):
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

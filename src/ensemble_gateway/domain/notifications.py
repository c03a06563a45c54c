"""The SageMaker asynchronous inference notification: parse it, and build it for real-time models.

SageMaker async publishes one JSON document to the endpoint's success or error SNS topic. The
gateway publishes the same shape for real-time endpoints so that one path finishes everything.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class RequestParameters(BaseModel):
    model_config = ConfigDict(extra="allow")

    content_type: str | None = Field(default=None, alias="contentType")
    endpoint_name: str | None = Field(default=None, alias="endpointName")
    input_location: str | None = Field(default=None, alias="inputLocation")


class ResponseParameters(BaseModel):
    model_config = ConfigDict(extra="allow")

    content_type: str | None = Field(default=None, alias="contentType")
    output_location: str | None = Field(default=None, alias="outputLocation")


class InferenceResult(BaseModel):
    """One SageMaker ``InferenceResult`` notification (``Completed`` or ``Failed``)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    inference_id: str = Field(alias="inferenceId")
    invocation_status: str = Field(alias="invocationStatus")
    failure_reason: str | None = Field(default=None, alias="failureReason")
    failure_location: str | None = Field(default=None, alias="failureLocation")
    request_parameters: RequestParameters = Field(default_factory=RequestParameters, alias="requestParameters")
    response_parameters: ResponseParameters = Field(default_factory=ResponseParameters, alias="responseParameters")

    @property
    def succeeded(self) -> bool:
        return self.invocation_status == "Completed"


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def inference_result_message(
    *,
    region: str,
    inference_id: str,
    endpoint_name: str,
    input_location: str,
    input_content_type: str,
    received_at: datetime,
    finished_at: datetime,
    output_location: str | None = None,
    output_content_type: str | None = None,
    failure_reason: str | None = None,
    failure_location: str | None = None,
) -> dict[str, Any]:
    """Build the notification SageMaker async publishes, field for field."""
    message: dict[str, Any] = {
        "awsRegion": region,
        "eventTime": _iso(finished_at),
        "receivedTime": _iso(received_at),
        "invocationStatus": "Failed" if failure_reason else "Completed",
        "requestParameters": {
            "contentType": input_content_type,
            "endpointName": endpoint_name,
            "inputLocation": input_location,
        },
        "responseParameters": {"contentType": output_content_type or "application/json"},
        "inferenceId": inference_id,
        "eventVersion": "1.0",
        "eventSource": "aws:sagemaker",
        "eventName": "InferenceResult",
    }
    if failure_reason:
        message["failureReason"] = failure_reason
        if failure_location:
            message["failureLocation"] = failure_location
    else:
        message["responseParameters"]["outputLocation"] = output_location
    return message

"""The SageMaker asynchronous inference notification.

SageMaker async publishes one JSON document to the endpoint's success or error SNS topic; the
notifications function parses it with :class:`InferenceResult`. (Real-time answers finish their
prediction where they are received: nothing is published for them.)
"""

from __future__ import annotations

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

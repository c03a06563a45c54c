"""The SageMaker asynchronous inference notification.

SageMaker async publishes one JSON document to the endpoint's success or error SNS topic; the
notifications function parses it with :class:`InferenceResult`. (Real-time answers finish their
prediction where they are received: nothing is published for them.) :func:`model_failure_message`
finds the model's own words in SageMaker's failure prose, for the prediction's ``error.message``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

# How SageMaker wraps what a model answered with an error status, in an async notification's
# failureReason ("ClientError: Received server error (500) from model with message "...". See
# https://... for more information.") and in a real-time ModelError's message ("... from primary
# ..."). The model's message is quoted as it is, quotes and newlines included: it runs to the last
# quote before the optional closing sentence.
_WRAPPED_MODEL_MESSAGE = re.compile(
    r"(?:[A-Za-z]+: )?Received (?:client|server) error \(\d{3}\) from \S+ with message "
    r'"(?P<message>.*)"(?:\. See .* for more information)?\.?',
    re.DOTALL,
)


def model_failure_message(reason: str) -> str:
    """The model's own message inside SageMaker's failure prose; ``reason`` itself otherwise.

    Parameters
    ----------
    reason
        An async notification's ``failureReason``, or a real-time ``ModelError``'s message.

    Returns
    -------
    str
        What the model said when ``reason`` has SageMaker's shape and the message is not blank;
        otherwise ``reason`` unchanged (a timeout, an input SageMaker could not read, ...).

    Examples
    --------
    >>> model_failure_message('ClientError: Received server error (500) from model with message '
    ...                       '"amount must be positive". See https://x for more information.')
    'amount must be positive'
    >>> model_failure_message("InvocationTimeout: the invocation did not complete")
    'InvocationTimeout: the invocation did not complete'
    """
    match = _WRAPPED_MODEL_MESSAGE.fullmatch(reason.strip())
    if match is None or not match.group("message").strip():
        return reason
    return match.group("message")


# Built on demand (defer_build): every function imports this module through the lifecycle, only
# notifications parses InferenceResult, and it builds the three models at its cold start.
class RequestParameters(BaseModel):
    model_config = ConfigDict(extra="allow", defer_build=True)

    content_type: str | None = Field(default=None, alias="contentType")
    endpoint_name: str | None = Field(default=None, alias="endpointName")
    input_location: str | None = Field(default=None, alias="inputLocation")


class ResponseParameters(BaseModel):
    model_config = ConfigDict(extra="allow", defer_build=True)

    content_type: str | None = Field(default=None, alias="contentType")
    output_location: str | None = Field(default=None, alias="outputLocation")


class InferenceResult(BaseModel):
    """One SageMaker ``InferenceResult`` notification (``Completed`` or ``Failed``)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, defer_build=True)

    inference_id: str = Field(alias="inferenceId")
    invocation_status: str = Field(alias="invocationStatus")
    failure_reason: str | None = Field(default=None, alias="failureReason")
    failure_location: str | None = Field(default=None, alias="failureLocation")
    request_parameters: RequestParameters = Field(default_factory=RequestParameters, alias="requestParameters")
    response_parameters: ResponseParameters = Field(default_factory=ResponseParameters, alias="responseParameters")
    # When SageMaker received the request and when it answered (absent from some notifications).
    # Kept as text: a time that does not parse must not fail the notification (only the timing).
    received_time: str | None = Field(default=None, alias="receivedTime")
    event_time: str | None = Field(default=None, alias="eventTime")

    @property
    def succeeded(self) -> bool:
        return self.invocation_status == "Completed"

    def model_times(self) -> dict[str, datetime]:
        """``model_started_at`` / ``model_finished_at`` for the record, from SageMaker's receipt and
        answer times; empty when the notification lacks either."""
        try:
            started = datetime.fromisoformat(str(self.received_time).replace("Z", "+00:00"))
            finished = datetime.fromisoformat(str(self.event_time).replace("Z", "+00:00"))
        except ValueError:
            return {}
        if started.tzinfo is None or finished.tzinfo is None:
            return {}
        return {"model_started_at": started.astimezone(UTC), "model_finished_at": finished.astimezone(UTC)}

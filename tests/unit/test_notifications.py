"""Reading SageMaker's failure prose: the model's own message is what a user can act on."""

from __future__ import annotations

import pytest

from ensemble_gateway.domain.notifications import model_failure_message

LOGS = (
    ". See https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#logEventViewer:"
    "group=/aws/sagemaker/Endpoints/fraud-score in account 123456789012 for more information."
)


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        (
            f'ClientError: Received server error (500) from model with message "amount must be positive"{LOGS}',
            "amount must be positive",
        ),
        (
            "ClientError: Received client error (400) from model with message \"missing field 'claim'\"",
            "missing field 'claim'",
        ),
        (
            f'Received server error (500) from primary with message "bad "vehicle" value: "x""{LOGS}',
            'bad "vehicle" value: "x"',
        ),
        (
            f'ClientError: Received server error (500) from model with message "Traceback:\n  line 3\nValueError: boom"'
            f"{LOGS}",
            "Traceback:\n  line 3\nValueError: boom",
        ),
        (
            'ClientError: Received server error (500) from model with message "the claim is incomplete.".',
            "the claim is incomplete.",
        ),
        (
            'ClientError: Received server error (500) from model with message "See the docs. for more information."',
            "See the docs. for more information.",
        ),
    ],
    ids=[
        "async-with-logs-link",
        "client-error-without-link",
        "realtime-with-quotes",
        "newlines",
        "message-ending-with-a-full-stop",
        "message-that-reads-like-the-link-sentence",
    ],
)
def test_the_models_message_is_taken_out_of_sagemakers_wrapper(reason: str, message: str) -> None:
    # GIVEN a failure reason in SageMaker's shape around the model's message
    # WHEN the message is extracted
    # THEN it is the model's message exactly, quotes and newlines included
    assert model_failure_message(reason) == message


@pytest.mark.parametrize(
    "reason",
    [
        "ClientError: Received server error (500) from model. See the SageMaker Endpoint logs in your account for "
        "more information.",
        "InvocationTimeout: The invocation did not complete within 300 seconds (InvocationTimeoutSeconds).",
        "ClientError: Failed to download the input from s3://bucket/inputs/p1: AccessDenied",
        f'ClientError: Received server error (500) from model with message ""{LOGS}',
        'ClientError: Received server error (500) from model with message "unterminated',
        "the model failed",
    ],
    ids=["no-model-message", "timeout", "input-unreadable", "blank-model-message", "unterminated-quote", "plain"],
)
def test_a_reason_of_another_shape_is_kept_as_it_is(reason: str) -> None:
    # GIVEN a failure reason that does not carry a model's message
    # WHEN the message is extracted
    # THEN the reason comes back unchanged (nothing is lost)
    assert model_failure_message(reason) == reason

"""The SageMaker runtime adapter on the wire: what it sends (``Accept``, ``ContentType``) and how
it reads a ``ModelError``, against a fake SageMaker runtime answering on 127.0.0.1 as the real one
does (rest-json errors whose members botocore parses)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ensemble_gateway.adapters.sagemaker import SageMakerModelRuntime
from ensemble_gateway.domain.errors import ModelInvocationError

LOGS = (
    "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#logEventViewer:"
    "group=/aws/sagemaker/Endpoints/repair-cost in account 123456789012"
)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeSageMakerRuntime:
    """Answers every request with ``answer`` and keeps what was sent (path and headers)."""

    answer: Answer = field(default_factory=lambda: Answer(200, {"Content-Type": "application/json"}, b"{}"))
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    def model_error(self, model_status: int, model_message: str) -> None:
        """The next answers are SageMaker's ModelError for a model that answered with an error."""
        kind = "client" if 400 <= model_status < 500 else "server"
        wrapped = f'Received {kind} error ({model_status}) from primary with message "{model_message}". See {LOGS}'
        body = {
            "ErrorCode": "CLIENT_ERROR_FROM_MODEL",
            "Message": f"{wrapped} for more information.",
            "OriginalStatusCode": model_status,
            "OriginalMessage": model_message,
            "LogStreamArn": "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/repair-cost",
        }
        self.answer = Answer(
            424, {"Content-Type": "application/json", "x-amzn-ErrorType": "ModelError"}, json.dumps(body).encode()
        )


@pytest.fixture
def sagemaker() -> Iterator[FakeSageMakerRuntime]:
    fake = FakeSageMakerRuntime()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            fake.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length)))
            self.send_response(fake.answer.status)
            for name, value in {**fake.answer.headers, "Content-Length": str(len(fake.answer.body))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(fake.answer.body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def runtime(sagemaker: FakeSageMakerRuntime) -> SageMakerModelRuntime:
    import boto3
    from botocore.config import Config

    client = boto3.session.Session().client(
        "sagemaker-runtime",
        region_name="us-east-1",
        endpoint_url=sagemaker.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}),
    )
    return SageMakerModelRuntime(client)


def test_an_async_invocation_sends_the_content_type_as_given_and_the_accept(
    sagemaker: FakeSageMakerRuntime, runtime: SageMakerModelRuntime
) -> None:
    # GIVEN an async endpoint that queues the request
    sagemaker.answer = Answer(
        202,
        {"Content-Type": "application/json", "X-Amzn-SageMaker-OutputLocation": "s3://b/outputs/x.out"},
        b'{"InferenceId": "p1"}',
    )
    # WHEN the adapter invokes it for JSON with a charset, asking for CSV
    location = runtime.invoke_async(
        "fraud-score", "s3://b/inputs/p1", "application/json; charset=utf-8", "p1", 300, accept="text/csv"
    )
    # THEN SageMaker got both as given, and the adapter returns where the output will be
    ((path, headers, _),) = sagemaker.requests
    assert path == "/endpoints/fraud-score/async-invocations"
    assert headers["x-amzn-sagemaker-content-type"] == "application/json; charset=utf-8"
    assert headers["x-amzn-sagemaker-accept"] == "text/csv"
    assert location == "s3://b/outputs/x.out"


def test_a_realtime_invocation_sends_the_accept_and_returns_the_models_content_type(
    sagemaker: FakeSageMakerRuntime, runtime: SageMakerModelRuntime
) -> None:
    # GIVEN a real-time endpoint whose model answers CSV
    sagemaker.answer = Answer(
        200, {"Content-Type": "text/csv", "x-Amzn-Invoked-Production-Variant": "blue"}, b"eur\n900\n"
    )
    # WHEN the adapter invokes it asking for CSV
    answer = runtime.invoke_realtime("repair-cost", b'{"claim": 1}', "application/json", "p2", accept="text/csv")
    # THEN SageMaker got the Accept, and the answer carries the model's content type
    ((path, headers, body),) = sagemaker.requests
    assert path == "/endpoints/repair-cost/invocations"
    assert headers["accept"] == "text/csv"
    assert body == b'{"claim": 1}'
    assert (answer.body, answer.content_type, answer.invoked_variant) == (b"eur\n900\n", "text/csv", "blue")


@pytest.mark.parametrize(
    "model_message",
    ["amount must be positive", 'field "claim" is missing\nsee the schema'],
    ids=["plain", "quotes-and-newline"],
)
def test_a_model_error_carries_the_models_own_message_and_keeps_sagemakers_answer(
    sagemaker: FakeSageMakerRuntime, runtime: SageMakerModelRuntime, model_message: str
) -> None:
    # GIVEN a real-time endpoint whose model answers 400 with its own message
    sagemaker.model_error(400, model_message)
    # WHEN the adapter invokes it
    with pytest.raises(ModelInvocationError) as failed:
        runtime.invoke_realtime("repair-cost", b"{}", "application/json", "p3", accept="application/json")
    # THEN the user's message is the model's own (OriginalMessage), not SageMaker's prose
    assert failed.value.message == model_message
    # AND the detail keeps SageMaker's whole answer and the model's status code
    assert failed.value.detail.startswith("ModelError: Received client error (400) from primary with message")
    assert "(the model answered with status 400)" in failed.value.detail
    assert "log-group:/aws/sagemaker/Endpoints/repair-cost" in failed.value.detail


def test_a_model_error_without_original_message_is_read_from_sagemakers_message(
    sagemaker: FakeSageMakerRuntime, runtime: SageMakerModelRuntime
) -> None:
    # GIVEN a ModelError that carries only SageMaker's message
    sagemaker.answer = Answer(
        424,
        {"Content-Type": "application/json", "x-amzn-ErrorType": "ModelError"},
        json.dumps(
            {
                "Message": f'Received server error (500) from primary with message "division by zero". See {LOGS} '
                "for more information."
            }
        ).encode(),
    )
    # WHEN the adapter invokes it
    with pytest.raises(ModelInvocationError) as failed:
        runtime.invoke_realtime("repair-cost", b"{}", "application/json", "p4", accept="application/json")
    # THEN the model's words are taken out of SageMaker's message
    assert failed.value.message == "division by zero"


def test_a_model_errors_original_message_wins_over_sagemakers_wording(
    sagemaker: FakeSageMakerRuntime, runtime: SageMakerModelRuntime
) -> None:
    # GIVEN a ModelError whose Message does not quote the model (OriginalMessage does)
    sagemaker.answer = Answer(
        424,
        {"Content-Type": "application/json", "x-amzn-ErrorType": "ModelError"},
        json.dumps(
            {
                "Message": f"Received server error (500) from primary. See {LOGS} for more information.",
                "OriginalStatusCode": 500,
                "OriginalMessage": "the model's own words",
            }
        ).encode(),
    )
    # WHEN the adapter invokes it
    with pytest.raises(ModelInvocationError) as failed:
        runtime.invoke_realtime("repair-cost", b"{}", "application/json", "p5", accept="application/json")
    # THEN the user reads OriginalMessage
    assert failed.value.message == "the model's own words"

"""The in-process transport: boto3 calls to a registered endpoint reach its WSGI app without HTTP."""

from __future__ import annotations

import json
import socket
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError

from ensemble_gateway.local import inprocess


def _free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class FakeAwsApp:
    """A WSGI app that records what it was given and answers one SQS JSON document."""

    def __init__(self) -> None:
        self.environ: dict[str, Any] = {}
        self.body = b""

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.environ = dict(environ)
        self.body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        payload = json.dumps({"QueueUrls": ["http://queue/one"]}).encode()
        start_response(
            "200 OK", [("Content-Type", "application/x-amz-json-1.0"), ("Content-Length", str(len(payload)))]
        )
        return [payload]


def _client(url: str) -> Any:
    # A session made after the transport is installed has it (as the runtime's and handlers' are).
    inprocess.install()
    return boto3.session.Session().client(
        "sqs",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )


def test_a_call_to_a_registered_endpoint_is_answered_by_its_app_without_a_server() -> None:
    # GIVEN an app registered for an URL where nothing listens
    url = f"http://127.0.0.1:{_free_port()}"
    app = FakeAwsApp()
    inprocess.register(url, app)
    try:
        # WHEN a boto3 client of that endpoint makes a call
        answer = _client(url).list_queues(QueueNamePrefix="one")
    finally:
        inprocess.unregister(url)

    # THEN the app got the signed request, in the environ a WSGI server would make, and botocore
    # parsed its answer
    assert answer["QueueUrls"] == ["http://queue/one"]
    assert app.environ["REQUEST_METHOD"] == "POST"
    assert app.environ["HTTP_HOST"] == url.removeprefix("http://")
    assert app.environ["HTTP_X_AMZ_TARGET"] == "AmazonSQS.ListQueues"
    assert app.environ["HTTP_AUTHORIZATION"].startswith("AWS4-HMAC-SHA256 Credential=testing/")
    assert app.environ["CONTENT_LENGTH"] == str(len(app.body))
    assert json.loads(app.body) == {"QueueNamePrefix": "one"}


def test_after_unregister_calls_go_over_the_network_again() -> None:
    # GIVEN an endpoint that was registered, then unregistered, where nothing listens
    url = f"http://127.0.0.1:{_free_port()}"
    app = FakeAwsApp()
    inprocess.register(url, app)
    inprocess.unregister(url)

    # WHEN a client calls it, THEN botocore tries the network (and finds no server)
    with pytest.raises(EndpointConnectionError):
        _client(url).list_queues()
    assert app.environ == {}

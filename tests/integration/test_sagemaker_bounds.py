"""A real-time model call is bounded and never repeated once it may have reached the model; an
async call is retried (a duplicate is harmless). Against a scripted SageMaker runtime on 127.0.0.1,
through botocore with the adapter's own client settings."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from ensemble_gateway.adapters import sagemaker
from ensemble_gateway.adapters.sagemaker import SageMakerModelRuntime


@dataclass
class Answer:
    status: int
    error_type: str | None = None
    body: bytes = b'{"ok": true}'
    delay: float = 0.0


OK = Answer(200)
THROTTLED = Answer(400, "ThrottlingException", b'{"message": "Rate exceeded"}')
INTERNAL = Answer(500, "InternalFailure", b'{"message": "An internal error occurred."}')
QUEUED = Answer(202, body=b'{"InferenceId": "p1", "OutputLocation": "s3://b/outputs/p1.out"}')


@dataclass
class ScriptedRuntime:
    """Answers requests in order from ``script`` (the last answer repeats); counts them."""

    script: list[Answer] = field(default_factory=lambda: [OK])
    paths: list[str] = field(default_factory=list)
    url: str = ""

    def next(self, path: str) -> Answer:
        self.paths.append(path)
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]


@pytest.fixture
def runtime_server() -> Iterator[ScriptedRuntime]:
    fake = ScriptedRuntime()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            answer = fake.next(self.path)
            time.sleep(answer.delay)
            self.send_response(answer.status)
            headers = {"Content-Type": "application/json", "Content-Length": str(len(answer.body))}
            if answer.error_type:
                headers["x-amzn-ErrorType"] = answer.error_type
            if answer.status == 202:
                headers["X-Amzn-SageMaker-OutputLocation"] = "s3://b/outputs/p1.out"
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            with contextlib.suppress(OSError):  # the client gave up (read timeout)
                self.wfile.write(answer.body)

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


def client(url: str, config: Any) -> Any:
    import boto3

    return boto3.session.Session().client(
        "sagemaker-runtime",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=config,
    )


class Sleeps:
    def __init__(self) -> None:
        self.slept: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


def realtime(url: str, sleep: Sleeps, **config: Any) -> SageMakerModelRuntime:
    from botocore.config import Config

    settings = sagemaker.realtime_config().merge(Config(**config)) if config else sagemaker.realtime_config()
    return SageMakerModelRuntime(client(url, settings), sleep=sleep)


def invoke(runtime: SageMakerModelRuntime) -> Any:
    return runtime.invoke_realtime("repair-cost", b"{}", "application/json", "p1", accept="application/json")


def test_a_realtime_call_that_failed_on_the_server_is_not_repeated(runtime_server: ScriptedRuntime) -> None:
    # GIVEN an endpoint answering 500 InternalFailure (the model may have run) then 200
    runtime_server.script = [INTERNAL, OK]
    sleeps = Sleeps()

    # WHEN the gateway invokes it
    with pytest.raises(ClientError) as failed:
        invoke(realtime(runtime_server.url, sleeps))

    # THEN it was called once (botocore's standard mode would have called it up to 5 times)
    assert failed.value.response["Error"]["Code"] == "InternalFailure"
    assert runtime_server.paths == ["/endpoints/repair-cost/invocations"]
    assert sleeps.slept == []


def test_a_realtime_call_that_times_out_is_not_repeated(runtime_server: ScriptedRuntime) -> None:
    # GIVEN an endpoint that answers after the client's read timeout
    runtime_server.script = [Answer(200, delay=1.5), OK]

    # WHEN the gateway invokes it (read timeout shortened from 65 s for the test)
    with pytest.raises(ReadTimeoutError):
        invoke(realtime(runtime_server.url, Sleeps(), read_timeout=0.3))

    # THEN it gave up at the read timeout (the error: the answer had not come) and, once the
    # late answer has been sent, the model was still called only once (a wall-clock bound here
    # failed on a loaded machine: speed is bench/'s business)
    time.sleep(1.5)
    assert len(runtime_server.paths) == 1


def test_a_throttled_realtime_call_is_retried_and_answers(runtime_server: ScriptedRuntime) -> None:
    # GIVEN an endpoint that throttles twice (refused before reaching the model), then answers
    runtime_server.script = [THROTTLED, THROTTLED, OK]
    sleeps = Sleeps()

    # WHEN the gateway invokes it
    answer = invoke(realtime(runtime_server.url, sleeps))

    # THEN the model's answer came on the third attempt, after two short jittered waits
    assert answer.body == b'{"ok": true}'
    assert len(runtime_server.paths) == 3
    assert len(sleeps.slept) == 2 and all(0 < s <= 1.0 for s in sleeps.slept)


def test_throttling_is_retried_a_bounded_number_of_times(runtime_server: ScriptedRuntime) -> None:
    # GIVEN an endpoint that keeps throttling
    runtime_server.script = [THROTTLED]

    # WHEN the gateway invokes it
    with pytest.raises(ClientError) as failed:
        invoke(realtime(runtime_server.url, Sleeps()))

    # THEN it stopped after the adapter's attempts
    assert failed.value.response["Error"]["Code"] == "ThrottlingException"
    assert len(runtime_server.paths) == sagemaker.REALTIME_ATTEMPTS


def test_no_retry_starts_that_could_not_finish_within_the_calls_budget(runtime_server: ScriptedRuntime) -> None:
    # GIVEN an endpoint that throttled after a long first attempt (15 s on the adapter's clock)
    runtime_server.script = [THROTTLED, OK]
    ticks = iter([0.0, 15.0])
    runtime = SageMakerModelRuntime(
        client(runtime_server.url, sagemaker.realtime_config()), sleep=Sleeps(), clock=lambda: next(ticks)
    )

    # WHEN the gateway invokes it
    with pytest.raises(ClientError):
        invoke(runtime)

    # THEN no second attempt: a full one (connect + read timeout) would end past the budget
    assert 15 + sagemaker.CONNECT_TIMEOUT_SECONDS + sagemaker.REALTIME_READ_TIMEOUT_SECONDS > (
        sagemaker.REALTIME_CALL_BUDGET_SECONDS
    )
    assert len(runtime_server.paths) == 1


def test_a_connection_that_cannot_be_made_is_retried() -> None:
    # GIVEN an endpoint nobody listens on (nothing was sent: the model cannot have run)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleeps = Sleeps()

    # WHEN the gateway invokes it
    with pytest.raises(EndpointConnectionError):
        invoke(realtime(f"http://127.0.0.1:{port}", sleeps))

    # THEN every attempt was made, with a wait between two
    assert len(sleeps.slept) == sagemaker.REALTIME_ATTEMPTS - 1


def test_an_async_call_is_retried_after_a_server_error(runtime_server: ScriptedRuntime) -> None:
    # GIVEN an async endpoint answering 500 once, then queueing the request
    runtime_server.script = [INTERNAL, QUEUED]
    from botocore.config import Config

    settings = sagemaker.async_config().merge(Config(retries={"mode": "standard", "total_max_attempts": 3}))
    runtime = SageMakerModelRuntime(async_client=client(runtime_server.url, settings))

    # WHEN the gateway invokes it
    location = runtime.invoke_async("fraud-score", "s3://b/inputs/p1", "application/json", "p1", 300, accept="a/b")

    # THEN botocore retried it (a request queued twice would publish the same inference ID twice,
    # and the gateway applies only the first result)
    assert location == "s3://b/outputs/p1.out"
    assert runtime_server.paths == ["/endpoints/fraud-score/async-invocations"] * 2


def test_the_adapter_builds_one_bounded_client_per_kind_of_call(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the adapter with no client injected
    made: list[tuple[str, Any]] = []

    def fake_client(service: str, **kwargs: Any) -> Any:
        made.append((service, kwargs["config"]))
        return object()

    monkeypatch.setattr(sagemaker, "aws_client", fake_client)
    runtime = SageMakerModelRuntime()

    # WHEN both clients are asked for
    assert runtime.client is not runtime.async_client

    # THEN the real-time one has no automatic retry and a read timeout above SageMaker's 60 s
    ((_, realtime_settings), (_, async_settings)) = made
    assert realtime_settings.retries == {"mode": "standard", "total_max_attempts": 1}
    assert realtime_settings.read_timeout == 65
    assert realtime_settings.connect_timeout == sagemaker.CONNECT_TIMEOUT_SECONDS
    # AND the async one retries, with a short read timeout (it only queues the request)
    assert async_settings.retries["total_max_attempts"] == sagemaker.ASYNC_ATTEMPTS
    assert async_settings.read_timeout == sagemaker.ASYNC_READ_TIMEOUT_SECONDS
    assert json.dumps([service for service, _ in made]) == '["sagemaker-runtime", "sagemaker-runtime"]'

"""The local SageMaker runtime, through a real werkzeug server, moto and boto3 clients."""

from __future__ import annotations

import json
import re
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from werkzeug.serving import make_server
from werkzeug.test import Client
from werkzeug.wrappers import Response

from ensemble_gateway.local import sagemaker_runtime
from ensemble_gateway.local.sagemaker_runtime import LocalEndpoint, LocalSageMakerRuntime

REGION = "us-east-1"
ISO_MILLIS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")

# -- model code, as SageMaker inference-toolkit scripts -------------------------------------------

FULL_MODEL = """
import json
import os

from helper import scale  # a module of its own next to inference.py


def model_fn(model_dir):
    with open(os.path.join(model_dir, "weights.json")) as handle:
        return json.load(handle)


def input_fn(request_body, request_content_type):
    # The toolkit hands application/json bodies over as str.
    if not isinstance(request_body, str) or request_content_type != "application/json":
        raise TypeError(f"unexpected {type(request_body).__name__} / {request_content_type}")
    return json.loads(request_body)


def predict_fn(data, model):
    return {"score": scale(data["amount"], model["factor"])}


def output_fn(prediction, accept):
    return json.dumps({**prediction, "accept": accept}), "application/vnd.claims+json"
"""

HELPER = """
def scale(value, factor):
    return value * factor
"""

DEFAULTS_MODEL = """
def model_fn(model_dir):
    return "loaded"


def predict_fn(data, model):
    value = data.hex() if isinstance(data, bytes) else data
    return {"type": type(data).__name__, "value": value, "model": model}
"""

PREDICT_METHOD_MODEL = """
class Doubler:
    def predict(self, data):
        return {"doubled": [2 * x for x in data]}


def model_fn(model_dir):
    return Doubler()
"""

CALLABLE_MODEL = """
def model_fn(model_dir):
    return lambda data: {"doubled": [2 * x for x in data]}
"""

TRANSFORM_MODEL = """
def model_fn(model_dir):
    return str.upper


def transform_fn(model, request_body, content_type, accept):
    return model(request_body.decode("utf-8"))
"""

RAISING_MODEL = """
def model_fn(model_dir):
    return object()


def predict_fn(data, model):
    raise ValueError("bad claim: missing vehicle")
"""

# Sleeps as told, then leaves a marker so a test knows the model code really finished.
SLOW_MODEL = """
import pathlib
import time


def model_fn(model_dir):
    return None


def predict_fn(data, model):
    time.sleep(data["sleep"])
    pathlib.Path(data["marker"]).write_text("finished")
    return {"slept": data["sleep"]}
"""

# Records when each invocation ran, to check that invocations of one endpoint never overlap.
RECORDING_MODEL = """
import pathlib
import time


def model_fn(model_dir):
    return None


def predict_fn(data, model):
    started = time.monotonic()
    time.sleep(0.5)
    pathlib.Path(data["record"]).write_text(f"{started} {time.monotonic()}")
    return {"ok": True}
"""

# Two invocations only get past the barrier when they run at the same time.
BARRIER_MODEL = """
import threading

BARRIER = threading.Barrier(2, timeout=20)


def model_fn(model_dir):
    return None


def predict_fn(data, model):
    BARRIER.wait()
    return {"met": data["n"]}
"""

# Stays busy until the test drops a release file (so it never outlives the test run).
STUCK_MODEL = """
import pathlib
import time


def model_fn(model_dir):
    return None


def predict_fn(data, model):
    release = pathlib.Path(data["release"])
    deadline = time.monotonic() + 60
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return {"released": True}
"""


def write_model(root: Path, name: str, source: str, files: dict[str, str] | None = None) -> Path:
    model_dir = root / name
    (model_dir / "code").mkdir(parents=True)
    (model_dir / "code" / "inference.py").write_text(textwrap.dedent(source))
    for relative, text in (files or {}).items():
        (model_dir / relative).write_text(text)
    return model_dir


# -- a local AWS on loopback: moto's server app behind the middleware ----------------------------


class LocalAws:
    def __init__(self) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()
        self.lines: list[str] = []
        self._lines_changed = threading.Condition()
        self.runtime = LocalSageMakerRuntime(self.client, region=REGION, logger=self._log)
        app = self.runtime.middleware(DomainDispatcherApplication(create_backend_app))
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="test-local-aws", daemon=True)
        self.thread.start()
        self.suffix = uuid.uuid4().hex[:10]  # moto's state is process-wide: unique names per test

    def client(self, service: str) -> Any:
        with self._clients_lock:  # boto3 clients are thread-safe once made; making them is slow
            if service not in self._clients:
                self._clients[service] = self._new_client(service)
            return self._clients[service]

    def _new_client(self, service: str) -> Any:
        config = Config(signature_version="s3v4", retries={"max_attempts": 1})
        session: Any = boto3.session.Session()  # any service name, not only the stubs' literals
        return session.client(
            service,
            region_name=REGION,
            endpoint_url=self.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=config,
        )

    def _log(self, line: str) -> None:
        with self._lines_changed:
            self.lines.append(line)
            self._lines_changed.notify_all()

    def wait_for_line(self, fragment: str, timeout: float = 30) -> str:
        def found() -> str | None:
            return next((line for line in self.lines if fragment in line), None)

        with self._lines_changed:
            self._lines_changed.wait_for(lambda: found() is not None, timeout)
            line = found()
        assert line is not None, f"no log line with {fragment!r} in {self.lines}"
        return line

    def bucket(self) -> str:
        name = f"models-{self.suffix}"
        self.client("s3").create_bucket(Bucket=name)
        return name

    def put(self, bucket: str, key: str, body: Any) -> str:
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        self.client("s3").put_object(Bucket=bucket, Key=key, Body=data)
        return f"s3://{bucket}/{key}"

    def read(self, uri: str) -> tuple[bytes, str]:
        bucket, key = uri.removeprefix("s3://").split("/", 1)
        obj = self.client("s3").get_object(Bucket=bucket, Key=key)
        return obj["Body"].read(), obj["ContentType"]

    def exists(self, uri: str) -> bool:
        bucket, key = uri.removeprefix("s3://").split("/", 1)
        try:
            self.client("s3").head_object(Bucket=bucket, Key=key)
        except ClientError:
            return False
        return True

    def topic_with_queue(self, label: str) -> tuple[str, str]:
        """An SNS topic and an SQS queue subscribed to it (raw delivery: the body is the message)."""
        sns, sqs = self.client("sns"), self.client("sqs")
        topic = sns.create_topic(Name=f"{label}-{self.suffix}")["TopicArn"]
        queue_url = sqs.create_queue(QueueName=f"{label}-{self.suffix}")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
        return topic, queue_url

    def receive(self, queue_url: str, count: int = 1, timeout: float = 30) -> list[dict[str, Any]]:
        """Up to ``count`` notifications, long-polling until ``timeout``."""
        sqs = self.client("sqs")
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(messages) < count and time.monotonic() < deadline:
            wait = max(1, min(5, int(deadline - time.monotonic())))
            answer = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait)
            for message in answer.get("Messages", []):
                messages.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        return messages

    def close(self) -> None:
        self.runtime.shutdown()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@pytest.fixture
def aws() -> Iterator[LocalAws]:
    # Threads of other runtimes (the session's local runtime, say) are not this test's business.
    before = set(threading.enumerate())
    local = LocalAws()
    try:
        yield local
    finally:
        local.close()
    # The runtime leaves no worker or timeout thread behind.
    for thread in set(threading.enumerate()) - before:
        if thread.name.startswith("sagemaker-"):
            thread.join(10)
            assert not thread.is_alive(), f"thread {thread.name} outlived the runtime"


@pytest.fixture
def sagemaker(aws: LocalAws) -> Any:
    return aws.client("sagemaker-runtime")


def async_endpoint(aws: LocalAws, name: str, model_dir: Path, bucket: str, **kwargs: Any) -> LocalEndpoint:
    return LocalEndpoint(
        name=name,
        model_dir=model_dir,
        mode="async",
        output_path=f"s3://{bucket}/outputs",
        failure_path=f"s3://{bucket}/failures",
        **kwargs,
    )


# -- real-time -----------------------------------------------------------------------------------


def test_realtime_runs_all_four_handlers_and_names_the_variant(aws: LocalAws, sagemaker: Any, tmp_path: Path) -> None:
    # GIVEN a real-time endpoint whose inference.py defines all four handlers and imports its own module
    model_dir = write_model(tmp_path, "full", FULL_MODEL, {"weights.json": '{"factor": 3}'})
    (model_dir / "code" / "helper.py").write_text(HELPER)
    aws.runtime.add_endpoint(LocalEndpoint("claims-score", model_dir, "realtime", variant="blue"))

    # WHEN a client invokes it through boto3
    response = sagemaker.invoke_endpoint(
        EndpointName="claims-score", Body=b'{"amount": 14}', ContentType="application/json"
    )

    # THEN the model's output comes back with its content type and the variant that answered
    assert json.loads(response["Body"].read()) == {"score": 42, "accept": "application/json"}
    assert response["ContentType"] == "application/vnd.claims+json"
    assert response["InvokedProductionVariant"] == "blue"
    assert aws.runtime.endpoint_names() == ["claims-score"]
    line = aws.wait_for_line("claims-score")
    assert "realtime" in line and "ms" in line


def test_boto3_reaches_the_runtime_through_the_sagemaker_runtime_endpoint_variable(
    aws: LocalAws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME pointing at the local server, as the local runtime sets it
    aws.runtime.add_endpoint(LocalEndpoint("echo", write_model(tmp_path, "d", DEFAULTS_MODEL), "realtime"))
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", aws.url)

    # WHEN a client is created without an endpoint_url
    client = boto3.session.Session().client(
        "sagemaker-runtime", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    response = client.invoke_endpoint(EndpointName="echo", Body=b'"hi"', ContentType="application/json")

    # THEN the local model answers
    assert json.loads(response["Body"].read())["value"] == "hi"


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("application/json", b'{"a": [1, 2]}', {"type": "dict", "value": {"a": [1, 2]}, "model": "loaded"}),
        ("text/csv", b"1,2,3", {"type": "str", "value": "1,2,3", "model": "loaded"}),
        ("text/plain", b"hello", {"type": "str", "value": "hello", "model": "loaded"}),
        ("application/octet-stream", b"\x00\xff", {"type": "bytes", "value": "00ff", "model": "loaded"}),
    ],
)
def test_missing_input_and_output_functions_use_the_toolkit_defaults(
    aws: LocalAws, sagemaker: Any, tmp_path: Path, content_type: str, body: bytes, expected: dict[str, Any]
) -> None:
    # GIVEN a model with only model_fn and predict_fn
    aws.runtime.add_endpoint(LocalEndpoint("defaults", write_model(tmp_path, "d", DEFAULTS_MODEL), "realtime"))

    # WHEN it is invoked with a given content type
    response = sagemaker.invoke_endpoint(EndpointName="defaults", Body=body, ContentType=content_type)

    # THEN the default input_fn decoded the body by type and the default output_fn wrote JSON
    assert json.loads(response["Body"].read()) == expected
    assert response["ContentType"] == "application/json"


@pytest.mark.parametrize("source", [PREDICT_METHOD_MODEL, CALLABLE_MODEL], ids=["predict-method", "callable"])
def test_missing_predict_fn_calls_the_model(aws: LocalAws, sagemaker: Any, tmp_path: Path, source: str) -> None:
    # GIVEN a model with only model_fn, returning an object with predict() or a callable
    aws.runtime.add_endpoint(LocalEndpoint("only-model-fn", write_model(tmp_path, "m", source), "realtime"))

    # WHEN it is invoked
    response = sagemaker.invoke_endpoint(EndpointName="only-model-fn", Body=b"[1, 2]", ContentType="application/json")

    # THEN the default predict_fn used it
    assert json.loads(response["Body"].read()) == {"doubled": [2, 4]}


def test_transform_fn_replaces_the_other_handlers_and_answers_with_the_accept_type(
    aws: LocalAws, sagemaker: Any, tmp_path: Path
) -> None:
    # GIVEN a model declaring transform_fn, which returns a bare body
    aws.runtime.add_endpoint(LocalEndpoint("shout", write_model(tmp_path, "t", TRANSFORM_MODEL), "realtime"))

    # WHEN it is invoked with an Accept type
    response = sagemaker.invoke_endpoint(
        EndpointName="shout", Body=b"quiet please", ContentType="application/x-text", Accept="text/plain"
    )

    # THEN transform_fn produced the answer, typed as the Accept header asked
    assert response["Body"].read() == b"QUIET PLEASE"
    assert response["ContentType"] == "text/plain"


def test_a_model_exception_is_a_model_error_as_sagemaker_reports_it(
    aws: LocalAws, sagemaker: Any, tmp_path: Path
) -> None:
    # GIVEN a real-time model whose predict_fn raises
    aws.runtime.add_endpoint(LocalEndpoint("broken", write_model(tmp_path, "r", RAISING_MODEL), "realtime"))

    # WHEN it is invoked
    with pytest.raises(ClientError) as caught:
        sagemaker.invoke_endpoint(EndpointName="broken", Body=b"{}", ContentType="application/json")

    # THEN boto3 raises ModelError (424) with SageMaker's message and the original status and message
    error = caught.value
    assert isinstance(error, sagemaker.exceptions.ModelError)
    assert error.response["Error"]["Code"] == "ModelError"
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error.response["Error"]["Message"] == (
        'Received server error (500) from primary with message "bad claim: missing vehicle"'
    )
    assert error.response["OriginalStatusCode"] == 500
    assert error.response["OriginalMessage"] == "bad claim: missing vehicle"


def test_an_unknown_endpoint_is_a_validation_error(aws: LocalAws, sagemaker: Any) -> None:
    # GIVEN no endpoint called "missing"
    # WHEN it is invoked in real time and asynchronously
    with pytest.raises(ClientError) as realtime:
        sagemaker.invoke_endpoint(EndpointName="missing", Body=b"{}")
    with pytest.raises(ClientError) as asynchronous:
        sagemaker.invoke_endpoint_async(EndpointName="missing", InputLocation="s3://bucket/key")

    # THEN both answer ValidationError naming the endpoint and the account
    for caught in (realtime, asynchronous):
        assert caught.value.response["Error"]["Code"] == "ValidationError"
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert caught.value.response["Error"]["Message"] == "Endpoint missing of account 123456789012 not found."


def test_a_realtime_model_slower_than_the_limit_is_a_model_error(
    aws: LocalAws, sagemaker: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a real-time limit of 1 s and a model taking 3 s
    monkeypatch.setattr(sagemaker_runtime, "REALTIME_TIMEOUT_SECONDS", 1.0)
    aws.runtime.add_endpoint(LocalEndpoint("slow", write_model(tmp_path, "s", SLOW_MODEL), "realtime"))
    marker = tmp_path / "finished"

    # WHEN it is invoked
    with pytest.raises(ClientError) as caught:
        sagemaker.invoke_endpoint(
            EndpointName="slow",
            Body=json.dumps({"sleep": 3, "marker": str(marker)}).encode(),
            ContentType="application/json",
        )

    # THEN the caller gets a ModelError telling of the timeout (and the model still finishes)
    assert caught.value.response["Error"]["Code"] == "ModelError"
    assert "timed out" in caught.value.response["Error"]["Message"]
    aws.wait_for_line("timed out")
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.exists()


def test_each_endpoint_imports_its_own_local_modules(aws: LocalAws, sagemaker: Any, tmp_path: Path) -> None:
    # GIVEN two endpoints whose code/ directories both hold a helper.py, with different contents
    source = (
        "from helper import NAME\n\ndef model_fn(model_dir):\n    return NAME\n\n"
        "def predict_fn(data, model):\n    return model\n"
    )
    for name in ("first", "second"):
        model_dir = write_model(tmp_path, name, source)
        (model_dir / "code" / "helper.py").write_text(f"NAME = {name!r}\n")
        aws.runtime.add_endpoint(LocalEndpoint(name, model_dir, "realtime"))

    # WHEN both are invoked
    answers = [
        json.loads(
            sagemaker.invoke_endpoint(EndpointName=name, Body=b"{}", ContentType="application/json")["Body"].read()
        )
        for name in ("first", "second")
    ]

    # THEN each saw its own helper
    assert answers == ["first", "second"]


def test_adding_an_endpoint_of_the_same_name_replaces_it(aws: LocalAws, sagemaker: Any, tmp_path: Path) -> None:
    # GIVEN an endpoint serving one model
    aws.runtime.add_endpoint(LocalEndpoint("swap", write_model(tmp_path, "a", CALLABLE_MODEL), "realtime"))
    before = sagemaker.invoke_endpoint(EndpointName="swap", Body=b"[1]", ContentType="application/json")

    # WHEN it is added again with another model
    aws.runtime.add_endpoint(LocalEndpoint("swap", write_model(tmp_path, "b", DEFAULTS_MODEL), "realtime"))
    after = sagemaker.invoke_endpoint(EndpointName="swap", Body=b"[1]", ContentType="application/json")

    # THEN the new model answers, and there is still one endpoint of that name
    assert json.loads(before["Body"].read()) == {"doubled": [2]}
    assert json.loads(after["Body"].read())["model"] == "loaded"
    assert aws.runtime.endpoint_names() == ["swap"]


def test_only_sagemaker_runtime_requests_are_intercepted() -> None:
    # GIVEN the middleware around an app that answers "inner"
    def inner(environ: Any, start_response: Any) -> Any:
        return Response("inner")(environ, start_response)

    runtime = LocalSageMakerRuntime(lambda service: None)
    client = Client(runtime.middleware(inner))
    s3_signature = "AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/s3/aws4_request, Signature=x"
    sagemaker_signature = s3_signature.replace("/s3/", "/sagemaker/")
    try:
        # WHEN requests of other methods, paths and services arrive, and one for SageMaker
        other = [
            client.get("/endpoints/x/invocations"),
            client.post("/endpoints/x/invocations", headers={"Authorization": s3_signature}),
            client.post("/endpoints/x/other"),
            client.put("/bucket/key"),
        ]
        ours = client.post("/endpoints/x/invocations", headers={"Authorization": sagemaker_signature})

        # THEN the others reach the wrapped app and the SageMaker one is answered here
        assert [response.get_data() for response in other] == [b"inner"] * 4
        assert ours.status_code == 400
        assert ours.headers["x-amzn-ErrorType"] == "ValidationError"
    finally:
        runtime.shutdown()


# -- asynchronous --------------------------------------------------------------------------------


def test_async_success_writes_the_output_and_publishes_sagemakers_notification(
    aws: LocalAws, sagemaker: Any, tmp_path: Path
) -> None:
    # GIVEN an async endpoint with output/failure paths and topics, and an uploaded input
    bucket = aws.bucket()
    success_topic, success_queue = aws.topic_with_queue("success")
    error_topic, error_queue = aws.topic_with_queue("error")
    model_dir = write_model(tmp_path, "full", FULL_MODEL, {"weights.json": '{"factor": 2}'})
    (model_dir / "code" / "helper.py").write_text(HELPER)
    aws.runtime.add_endpoint(
        async_endpoint(
            aws,
            "claims-async",
            model_dir,
            bucket,
            success_topic_arn=success_topic,
            error_topic_arn=error_topic,
        )
    )
    input_location = aws.put(bucket, "inputs/p-1", {"amount": 21})

    # WHEN it is invoked asynchronously
    response = sagemaker.invoke_endpoint_async(
        EndpointName="claims-async",
        InputLocation=input_location,
        ContentType="application/json",
        InferenceId="p-1",
        InvocationTimeoutSeconds=60,
    )

    # THEN it answers at once with the ID and the locations SageMaker uses
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert response["InferenceId"] == "p-1"
    output_location = response["OutputLocation"]
    assert re.fullmatch(rf"s3://{bucket}/outputs/[0-9a-f-]{{36}}\.out", output_location)
    assert response["FailureLocation"] == (
        f"s3://{bucket}/failures/{output_location.rsplit('/', 1)[1].removesuffix('.out')}-error.out"
    )
    # AND the success topic gets SageMaker's notification, field for field
    [message] = aws.receive(success_queue)
    assert set(message) == {
        "awsRegion",
        "eventTime",
        "receivedTime",
        "invocationStatus",
        "requestParameters",
        "responseParameters",
        "inferenceId",
        "eventVersion",
        "eventSource",
        "eventName",
    }
    assert message["awsRegion"] == REGION
    assert ISO_MILLIS.match(message["eventTime"]) and ISO_MILLIS.match(message["receivedTime"])
    assert message["receivedTime"] <= message["eventTime"]
    assert message["invocationStatus"] == "Completed"
    assert message["requestParameters"] == {
        "contentType": "application/json",
        "endpointName": "claims-async",
        "inputLocation": input_location,
    }
    assert message["responseParameters"] == {
        "contentType": "application/vnd.claims+json",
        "outputLocation": output_location,
    }
    assert message["inferenceId"] == "p-1"
    assert (message["eventVersion"], message["eventSource"], message["eventName"]) == (
        "1.0",
        "aws:sagemaker",
        "InferenceResult",
    )
    # AND the output object holds the model's answer
    body, content_type = aws.read(output_location)
    assert json.loads(body) == {"score": 42, "accept": "application/json"}
    assert content_type == "application/vnd.claims+json"
    # AND nothing went to the error topic, and one readable line was logged
    assert aws.runtime.wait_idle(30)
    assert aws.receive(error_queue, timeout=1) == []
    line = aws.wait_for_line("p-1")
    assert "claims-async" in line and "Completed" in line and " ms" in line


def test_async_without_inference_id_gets_a_generated_one(aws: LocalAws, sagemaker: Any, tmp_path: Path) -> None:
    # GIVEN an async endpoint without topics
    bucket = aws.bucket()
    aws.runtime.add_endpoint(async_endpoint(aws, "no-id", write_model(tmp_path, "d", DEFAULTS_MODEL), bucket))
    input_location = aws.put(bucket, "inputs/x", [1])

    # WHEN it is invoked without an InferenceId
    response = sagemaker.invoke_endpoint_async(
        EndpointName="no-id", InputLocation=input_location, ContentType="application/json"
    )

    # THEN a UUID is assigned and the output is still written
    assert uuid.UUID(response["InferenceId"])
    assert aws.runtime.wait_idle(30)
    assert json.loads(aws.read(response["OutputLocation"])[0])["value"] == [1]


def test_async_model_error_writes_the_failure_and_publishes_failed(
    aws: LocalAws, sagemaker: Any, tmp_path: Path
) -> None:
    # GIVEN an async endpoint whose model raises
    bucket = aws.bucket()
    success_topic, success_queue = aws.topic_with_queue("success")
    error_topic, error_queue = aws.topic_with_queue("error")
    aws.runtime.add_endpoint(
        async_endpoint(
            aws,
            "broken-async",
            write_model(tmp_path, "r", RAISING_MODEL),
            bucket,
            success_topic_arn=success_topic,
            error_topic_arn=error_topic,
        )
    )
    input_location = aws.put(bucket, "inputs/p-2", {"amount": 1})

    # WHEN it is invoked
    response = sagemaker.invoke_endpoint_async(
        EndpointName="broken-async",
        InputLocation=input_location,
        ContentType="application/json",
        InferenceId="p-2",
    )

    # THEN the error topic gets a Failed notification with the reason and the failure location
    [message] = aws.receive(error_queue)
    assert message["invocationStatus"] == "Failed"
    assert message["failureReason"] == (
        'ClientError: Received server error (500) from model with message "bad claim: missing vehicle"'
    )
    assert message["failureLocation"] == response["FailureLocation"]
    assert message["inferenceId"] == "p-2"
    assert message["requestParameters"]["inputLocation"] == input_location
    assert "outputLocation" not in message["responseParameters"]
    assert (message["eventSource"], message["eventName"]) == ("aws:sagemaker", "InferenceResult")
    # AND the failure object holds the error text, no output was written, nothing went to success
    failure_body, _ = aws.read(response["FailureLocation"])
    assert failure_body.decode().startswith("bad claim: missing vehicle")
    assert aws.runtime.wait_idle(30)
    assert not aws.exists(response["OutputLocation"])
    assert aws.receive(success_queue, timeout=1) == []
    assert "Failed" in aws.wait_for_line("p-2")


def test_async_missing_input_fails_with_a_clear_reason(aws: LocalAws, sagemaker: Any, tmp_path: Path) -> None:
    # GIVEN an async endpoint and an input location where nothing was uploaded
    bucket = aws.bucket()
    error_topic, error_queue = aws.topic_with_queue("error")
    aws.runtime.add_endpoint(
        async_endpoint(aws, "no-input", write_model(tmp_path, "d", DEFAULTS_MODEL), bucket, error_topic_arn=error_topic)
    )
    missing = f"s3://{bucket}/inputs/never-uploaded"

    # WHEN it is invoked
    sagemaker.invoke_endpoint_async(EndpointName="no-input", InputLocation=missing, InferenceId="p-3")

    # THEN a Failed notification names the input and the S3 error
    [message] = aws.receive(error_queue)
    assert message["invocationStatus"] == "Failed"
    assert missing in message["failureReason"] and "NoSuchKey" in message["failureReason"]
    assert message["inferenceId"] == "p-3"


def test_async_invocation_timeout_is_honoured_and_a_late_result_discarded(
    aws: LocalAws, sagemaker: Any, tmp_path: Path
) -> None:
    # GIVEN an async endpoint whose model takes 3 s, invoked with InvocationTimeoutSeconds=1
    bucket = aws.bucket()
    success_topic, success_queue = aws.topic_with_queue("success")
    error_topic, error_queue = aws.topic_with_queue("error")
    aws.runtime.add_endpoint(
        async_endpoint(
            aws,
            "slow-async",
            write_model(tmp_path, "s", SLOW_MODEL),
            bucket,
            success_topic_arn=success_topic,
            error_topic_arn=error_topic,
        )
    )
    marker = tmp_path / "finished"
    input_location = aws.put(bucket, "inputs/p-4", {"sleep": 3, "marker": str(marker)})

    # WHEN it is invoked
    response = sagemaker.invoke_endpoint_async(
        EndpointName="slow-async",
        InputLocation=input_location,
        ContentType="application/json",
        InferenceId="p-4",
        InvocationTimeoutSeconds=1,
    )

    # THEN the invocation fails with a timeout reason, a failure object and a Failed notification
    [message] = aws.receive(error_queue)
    assert message["invocationStatus"] == "Failed"
    assert message["failureReason"].startswith("InvocationTimeout:")
    assert message["failureLocation"] == response["FailureLocation"]
    assert aws.read(response["FailureLocation"])[0].decode().startswith("InvocationTimeout:")
    # AND when the model finishes later, its result is discarded: no output, no success notification
    aws.wait_for_line("result discarded")
    assert marker.exists()
    assert not aws.exists(response["OutputLocation"])
    assert aws.receive(success_queue, timeout=1) == []
    assert aws.receive(error_queue, timeout=1) == []


def test_async_jobs_of_one_endpoint_never_exceed_its_concurrency(aws: LocalAws, sagemaker: Any, tmp_path: Path) -> None:
    # GIVEN an async endpoint with max_concurrency=1 and a model that records when it runs
    bucket = aws.bucket()
    aws.runtime.add_endpoint(
        async_endpoint(aws, "serial", write_model(tmp_path, "rec", RECORDING_MODEL), bucket, max_concurrency=1)
    )
    records = [tmp_path / "first.txt", tmp_path / "second.txt"]

    # WHEN two jobs are submitted back to back
    for index, record in enumerate(records):
        location = aws.put(bucket, f"inputs/{index}", {"record": str(record)})
        sagemaker.invoke_endpoint_async(EndpointName="serial", InputLocation=location, ContentType="application/json")

    # THEN the runtime is busy at first, and the two runs did not overlap
    assert not aws.runtime.wait_idle(0)
    assert aws.runtime.wait_idle(30)
    intervals = sorted(tuple(float(x) for x in record.read_text().split()) for record in records)
    assert intervals[1][0] >= intervals[0][1]


def test_async_jobs_run_side_by_side_up_to_the_concurrency(aws: LocalAws, sagemaker: Any, tmp_path: Path) -> None:
    # GIVEN an async endpoint with max_concurrency=2 and a model that waits for a second caller
    bucket = aws.bucket()
    success_topic, success_queue = aws.topic_with_queue("success")
    aws.runtime.add_endpoint(
        async_endpoint(
            aws,
            "pair",
            write_model(tmp_path, "b", BARRIER_MODEL),
            bucket,
            max_concurrency=2,
            success_topic_arn=success_topic,
        )
    )

    # WHEN two jobs are submitted
    for n in (1, 2):
        location = aws.put(bucket, f"inputs/{n}", {"n": n})
        sagemaker.invoke_endpoint_async(EndpointName="pair", InputLocation=location, ContentType="application/json")

    # THEN both completed: they ran at the same time
    messages = aws.receive(success_queue, count=2)
    assert [m["invocationStatus"] for m in messages] == ["Completed", "Completed"]


def test_shutdown_does_not_wait_for_stuck_model_code(aws: LocalAws, sagemaker: Any, tmp_path: Path) -> None:
    # GIVEN an async endpoint whose model is stuck on a job, with another job queued behind it
    bucket = aws.bucket()
    aws.runtime.add_endpoint(
        async_endpoint(aws, "stuck", write_model(tmp_path, "st", STUCK_MODEL), bucket, max_concurrency=1)
    )
    release = tmp_path / "release"
    for n in (1, 2):
        location = aws.put(bucket, f"inputs/{n}", {"release": str(release)})
        sagemaker.invoke_endpoint_async(EndpointName="stuck", InputLocation=location, ContentType="application/json")
    try:
        # WHEN the runtime shuts down
        started = time.monotonic()
        aws.runtime.shutdown()

        # THEN it returns without waiting for the model, and reports idle (the queued job dropped)
        assert time.monotonic() - started < 15
        assert aws.runtime.wait_idle(0)
    finally:
        release.write_text("go")  # let the model code end so no thread outlives the test


def test_async_requests_are_validated(aws: LocalAws, sagemaker: Any, tmp_path: Path) -> None:
    # GIVEN an async endpoint and a real-time one
    bucket = aws.bucket()
    aws.runtime.add_endpoint(async_endpoint(aws, "a", write_model(tmp_path, "a", DEFAULTS_MODEL), bucket))
    aws.runtime.add_endpoint(LocalEndpoint("r", write_model(tmp_path, "r", DEFAULTS_MODEL), "realtime"))

    # WHEN they are invoked the wrong way or with values SageMaker refuses
    attempts = [
        lambda: sagemaker.invoke_endpoint_async(
            EndpointName="a", InputLocation="s3://b/k", InvocationTimeoutSeconds=3601
        ),
        lambda: sagemaker.invoke_endpoint_async(EndpointName="a", InputLocation="s3://b/k", InferenceId="x" * 65),
        lambda: sagemaker.invoke_endpoint_async(EndpointName="r", InputLocation="s3://b/k"),
        lambda: sagemaker.invoke_endpoint(EndpointName="a", Body=b"{}"),
    ]

    # THEN each is a ValidationError and no job was queued
    for attempt in attempts:
        with pytest.raises(ClientError) as caught:
            attempt()
        assert caught.value.response["Error"]["Code"] == "ValidationError"
    assert aws.runtime.wait_idle(0)

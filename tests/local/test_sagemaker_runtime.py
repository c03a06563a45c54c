"""The local SageMaker runtime, through a real werkzeug server, moto and boto3 clients.

The framework tests train their models here, on scikit-learn's bundled datasets, and save them as
a SageMaker model directory would hold them.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import joblib
import numpy as np
import pytest
import xgboost
from botocore.config import Config
from botocore.exceptions import ClientError
from sagemaker_inference import encoder
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression
from werkzeug.serving import make_server
from werkzeug.test import Client
from werkzeug.wrappers import Response

from ensemble_gateway.local.sagemaker import LocalEndpoint, LocalSageMakerRuntime, ModelLoadError
from ensemble_gateway.local.sagemaker import runtime as sagemaker_runtime

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

# Parses JSON itself: the custom framework's default input_fn would decode it into numpy.
ECHO_MODEL = """
import json


def model_fn(model_dir):
    return "loaded"


def input_fn(request_body, request_content_type):
    return json.loads(request_body)


def predict_fn(data, model):
    return {"value": data, "model": model}
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
import json
import pathlib
import time


def model_fn(model_dir):
    return None


def input_fn(request_body, request_content_type):
    return json.loads(request_body)


def predict_fn(data, model):
    time.sleep(data["sleep"])
    pathlib.Path(data["marker"]).write_text("finished")
    return {"slept": data["sleep"]}
"""

# Records when each invocation ran, to check that invocations of one endpoint never overlap.
RECORDING_MODEL = """
import json
import pathlib
import time


def model_fn(model_dir):
    return None


def input_fn(request_body, request_content_type):
    return json.loads(request_body)


def predict_fn(data, model):
    started = time.monotonic()
    time.sleep(0.5)
    pathlib.Path(data["record"]).write_text(f"{started} {time.monotonic()}")
    return {"ok": True}
"""

# Two invocations only get past the barrier when they run at the same time.
BARRIER_MODEL = """
import json
import threading

BARRIER = threading.Barrier(2, timeout=20)


def model_fn(model_dir):
    return None


def input_fn(request_body, request_content_type):
    return json.loads(request_body)


def predict_fn(data, model):
    BARRIER.wait()
    return {"met": data["n"]}
"""

# Stays busy until the test drops a release file (so it never outlives the test run).
STUCK_MODEL = """
import json
import pathlib
import time


def model_fn(model_dir):
    return None


def input_fn(request_body, request_content_type):
    return json.loads(request_body)


def predict_fn(data, model):
    release = pathlib.Path(data["release"])
    deadline = time.monotonic() + 60
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return {"released": True}
"""


def write_model(
    root: Path, name: str, source: str, files: dict[str, str] | None = None, program: str = "inference.py"
) -> Path:
    model_dir = root / name
    (model_dir / "code").mkdir(parents=True)
    (model_dir / "code" / program).write_text(textwrap.dedent(source))
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
    # AND one readable line each for the load and the invocation
    assert " ms" in aws.wait_for_line("sagemaker claims-score (realtime): custom model loaded in")
    assert " ms" in aws.wait_for_line("sagemaker claims-score (realtime) -: OK application/vnd.claims+json")


def test_boto3_reaches_the_runtime_through_the_sagemaker_runtime_endpoint_variable(
    aws: LocalAws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME pointing at the local server, as the local runtime sets it
    aws.runtime.add_endpoint(LocalEndpoint("echo", write_model(tmp_path, "d", ECHO_MODEL), "realtime"))
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", aws.url)

    # WHEN a client is created without an endpoint_url
    client = boto3.session.Session().client(
        "sagemaker-runtime", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    response = client.invoke_endpoint(EndpointName="echo", Body=b'"hi"', ContentType="application/json")

    # THEN the local model answers
    assert json.loads(response["Body"].read())["value"] == "hi"


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
    first = ECHO_MODEL.replace('return "loaded"', 'return "first"')
    aws.runtime.add_endpoint(LocalEndpoint("swap", write_model(tmp_path, "a", first), "realtime"))
    before = sagemaker.invoke_endpoint(EndpointName="swap", Body=b"[1]", ContentType="application/json")

    # WHEN it is added again with another model
    aws.runtime.add_endpoint(LocalEndpoint("swap", write_model(tmp_path, "b", ECHO_MODEL), "realtime"))
    after = sagemaker.invoke_endpoint(EndpointName="swap", Body=b"[1]", ContentType="application/json")

    # THEN the new model answers, and there is still one endpoint of that name
    assert json.loads(before["Body"].read()) == {"value": [1], "model": "first"}
    assert json.loads(after["Body"].read()) == {"value": [1], "model": "loaded"}
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
    aws.runtime.add_endpoint(async_endpoint(aws, "no-id", write_model(tmp_path, "d", ECHO_MODEL), bucket))
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
        async_endpoint(aws, "no-input", write_model(tmp_path, "d", ECHO_MODEL), bucket, error_topic_arn=error_topic)
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
    aws.runtime.add_endpoint(async_endpoint(aws, "a", write_model(tmp_path, "a", ECHO_MODEL), bucket))
    aws.runtime.add_endpoint(LocalEndpoint("r", write_model(tmp_path, "r", ECHO_MODEL), "realtime"))

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


# -- bring your own model: the framework containers' defaults -----------------------------------

# The scikit-learn container's minimal script: model_fn only, every other handler its default.
SKLEARN_MODEL_FN_ONLY = """
import os

import joblib


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))
"""

SKLEARN_PREDICT_PROBA = """
import os

import joblib


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def predict_fn(input_data, model):
    return model.predict_proba(input_data)
"""

# As SageMaker's scikit-learn examples write output_fn: with sagemaker_containers' worker.Response.
SKLEARN_WORKER_RESPONSE = """
import json
import os

import joblib
from sagemaker_containers.beta.framework import content_types, encoders, worker


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def output_fn(prediction, accept):
    if accept == "application/json":
        instances = [{"label": int(label)} for label in prediction.tolist()]
        return worker.Response(json.dumps({"instances": instances}), accept, mimetype=accept)
    if accept == content_types.CSV:
        return worker.Response(encoders.encode(prediction, accept), accept, mimetype=accept)
    return worker.Response(json.dumps({"error": f"{accept} is not supported by this script"}), status=406)
"""

SKLEARN_TRANSFORM_FN = """
import os

import joblib
from sagemaker_containers.beta.framework import encoders


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def transform_fn(model, request_body, content_type, accept):
    features = encoders.decode(request_body, content_type)
    return encoders.encode(model.predict(features), accept), accept
"""

XGBOOST_MODEL_FN_ONLY = """
import os

import xgboost


def model_fn(model_dir):
    booster = xgboost.Booster()
    booster.load_model(os.path.join(model_dir, "model.json"))
    return booster
"""


@pytest.fixture(scope="module")
def iris() -> tuple[LogisticRegression, np.ndarray]:
    """A classifier trained on scikit-learn's iris data, and one sample of each class."""
    features, labels = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(features, labels)
    return model, features[[0, 60, 120]]


@pytest.fixture(scope="module")
def diabetes() -> tuple[Any, np.ndarray]:
    """A regression Booster trained on scikit-learn's diabetes data, and three samples."""
    features, target = load_diabetes(return_X_y=True)
    booster = xgboost.train({"nthread": 1, "max_depth": 3}, xgboost.DMatrix(features, label=target), num_boost_round=10)
    return booster, features[:3]


def sklearn_model(root: Path, name: str, source: str, model: Any) -> Path:
    model_dir = write_model(root, name, source)
    joblib.dump(model, model_dir / "model.joblib")
    return model_dir


def as_csv(rows: np.ndarray) -> bytes:
    return "\n".join(",".join(repr(float(value)) for value in row) for row in rows).encode()


def as_npy(rows: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, rows)
    return buffer.getvalue()


def as_libsvm(rows: np.ndarray) -> bytes:
    lines = ["0 " + " ".join(f"{index}:{float(value)!r}" for index, value in enumerate(row, 1)) for row in rows]
    return "\n".join(lines).encode()


def load_error(aws: LocalAws, endpoint: LocalEndpoint) -> str:
    with pytest.raises(ModelLoadError) as caught:
        aws.runtime.add_endpoint(endpoint)
    return str(caught.value)


def test_sklearn_model_fn_only_decodes_json_csv_and_npy_and_encodes_by_accept(
    aws: LocalAws, sagemaker: Any, tmp_path: Path, iris: tuple[LogisticRegression, np.ndarray]
) -> None:
    # GIVEN a scikit-learn classifier served by a script with model_fn only
    model, rows = iris
    model_dir = sklearn_model(tmp_path, "iris", SKLEARN_MODEL_FN_ONLY, model)
    aws.runtime.add_endpoint(LocalEndpoint("iris", model_dir, "realtime", framework="sklearn"))
    requests = {
        "application/json": json.dumps(rows.tolist()).encode(),
        "text/csv": as_csv(rows),
        "application/x-npy": as_npy(rows),
    }
    expected = model.predict(rows.astype(np.float32))

    for content_type, body in requests.items():
        for accept in ("application/json", "text/csv", "application/x-npy"):
            # WHEN it is invoked with each content type and each Accept
            response = sagemaker.invoke_endpoint(
                EndpointName="iris", Body=body, ContentType=content_type, Accept=accept
            )
            answer = response["Body"].read()

            # THEN the container's defaults decoded, predicted and encoded as the toolkit encoder does
            if accept == "application/json":
                assert json.loads(answer) == expected.tolist(), content_type
                assert response["ContentType"] == "application/json"
            elif accept == "text/csv":
                assert answer.decode() == encoder.encode(expected, accept), content_type
                assert response["ContentType"] == "text/csv; charset=utf-8"
            else:
                np.testing.assert_array_equal(np.load(io.BytesIO(answer)), expected)
                assert response["ContentType"] == "application/x-npy"


def test_sklearn_request_without_content_type_is_read_as_json(
    aws: LocalAws, sagemaker: Any, tmp_path: Path, iris: tuple[LogisticRegression, np.ndarray]
) -> None:
    # GIVEN a scikit-learn model with model_fn only
    model, rows = iris
    aws.runtime.add_endpoint(
        LocalEndpoint(
            "iris", sklearn_model(tmp_path, "iris", SKLEARN_MODEL_FN_ONLY, model), "realtime", framework="sklearn"
        )
    )

    # WHEN it is invoked without ContentType (nor Accept)
    response = sagemaker.invoke_endpoint(EndpointName="iris", Body=json.dumps(rows.tolist()).encode())

    # THEN the body was read as JSON and the answer is JSON, as the container defaults both
    assert json.loads(response["Body"].read()) == model.predict(rows).tolist()
    assert response["ContentType"] == "application/json"


@pytest.mark.parametrize(
    ("content_type", "accept", "status"),
    [("text/plain", "application/json", 415), ("application/json", "text/html", 406)],
    ids=["content-type", "accept"],
)
def test_sklearn_unsupported_formats_are_the_containers_415_and_406(
    aws: LocalAws,
    sagemaker: Any,
    tmp_path: Path,
    iris: tuple[LogisticRegression, np.ndarray],
    content_type: str,
    accept: str,
    status: int,
) -> None:
    # GIVEN a scikit-learn model with model_fn only
    model, rows = iris
    aws.runtime.add_endpoint(
        LocalEndpoint(
            "iris", sklearn_model(tmp_path, "iris", SKLEARN_MODEL_FN_ONLY, model), "realtime", framework="sklearn"
        )
    )

    # WHEN it is invoked with a type its defaults do not support
    with pytest.raises(ClientError) as caught:
        sagemaker.invoke_endpoint(
            EndpointName="iris", Body=json.dumps(rows.tolist()).encode(), ContentType=content_type, Accept=accept
        )

    # THEN SageMaker's ModelError carries the container's status and the toolkit's message
    error = caught.value.response
    assert error["Error"]["Code"] == "ModelError"
    assert error["OriginalStatusCode"] == status
    unsupported = content_type if status == 415 else accept
    assert error["OriginalMessage"].startswith(f"Content type {unsupported} is not supported by this framework.")
    assert error["Error"]["Message"].startswith(f"Received client error ({status}) from primary with message")


def test_sklearn_model_fn_and_predict_fn_answer_probabilities(
    aws: LocalAws, sagemaker: Any, tmp_path: Path, iris: tuple[LogisticRegression, np.ndarray]
) -> None:
    # GIVEN a script with model_fn and a predict_fn calling predict_proba
    model, rows = iris
    model_dir = sklearn_model(tmp_path, "iris-proba", SKLEARN_PREDICT_PROBA, model)
    aws.runtime.add_endpoint(LocalEndpoint("iris-proba", model_dir, "realtime", framework="sklearn"))

    # WHEN it is invoked with CSV
    response = sagemaker.invoke_endpoint(
        EndpointName="iris-proba", Body=as_csv(rows), ContentType="text/csv", Accept="application/json"
    )

    # THEN the probabilities of each class come back
    probabilities = np.array(json.loads(response["Body"].read()))
    np.testing.assert_allclose(probabilities, model.predict_proba(rows.astype(np.float32)), rtol=1e-6)
    assert probabilities.argmax(axis=1).tolist() == [0, 1, 2]


def test_a_script_using_sagemaker_containers_worker_response_runs_unchanged(
    aws: LocalAws, sagemaker: Any, tmp_path: Path, iris: tuple[LogisticRegression, np.ndarray]
) -> None:
    # GIVEN a script importing sagemaker_containers.beta.framework (not installed here)
    model, rows = iris
    model_dir = sklearn_model(tmp_path, "iris-worker", SKLEARN_WORKER_RESPONSE, model)
    aws.runtime.add_endpoint(LocalEndpoint("iris-worker", model_dir, "realtime", framework="sklearn"))
    body = json.dumps(rows.tolist()).encode()

    # WHEN it is invoked for JSON, CSV, and a type its output_fn refuses with a 406 response
    as_json = sagemaker.invoke_endpoint(EndpointName="iris-worker", Body=body, ContentType="application/json")
    as_csv_answer = sagemaker.invoke_endpoint(
        EndpointName="iris-worker", Body=body, ContentType="application/json", Accept="text/csv"
    )
    with pytest.raises(ClientError) as refused:
        sagemaker.invoke_endpoint(
            EndpointName="iris-worker", Body=body, ContentType="application/json", Accept="application/x-npy"
        )

    # THEN its worker.Response bodies and types come back, and its error status is the model's error
    assert json.loads(as_json["Body"].read()) == {"instances": [{"label": 0}, {"label": 1}, {"label": 2}]}
    assert as_json["ContentType"] == "application/json"
    assert as_csv_answer["Body"].read().decode() == encoder.encode(np.array([0, 1, 2]), "text/csv")
    assert as_csv_answer["ContentType"] == "text/csv; charset=utf-8"
    assert refused.value.response["OriginalStatusCode"] == 406
    assert json.loads(refused.value.response["OriginalMessage"]) == {
        "error": "application/x-npy is not supported by this script"
    }


def test_a_sklearn_transform_fn_script_replaces_the_defaults(
    aws: LocalAws, sagemaker: Any, tmp_path: Path, iris: tuple[LogisticRegression, np.ndarray]
) -> None:
    # GIVEN a scikit-learn script with model_fn and transform_fn
    model, rows = iris
    model_dir = sklearn_model(tmp_path, "iris-transform", SKLEARN_TRANSFORM_FN, model)
    aws.runtime.add_endpoint(LocalEndpoint("iris-transform", model_dir, "realtime", framework="sklearn"))

    # WHEN it is invoked
    response = sagemaker.invoke_endpoint(
        EndpointName="iris-transform", Body=as_npy(rows), ContentType="application/x-npy", Accept="text/csv"
    )

    # THEN transform_fn's body and content type come back
    assert response["Body"].read().decode() == encoder.encode(model.predict(rows), "text/csv")
    assert response["ContentType"] == "text/csv"


@pytest.mark.parametrize(
    ("content_type", "body"),
    [("text/csv", as_csv), ("text/libsvm", as_libsvm), ("text/x-libsvm", as_libsvm)],
    ids=["csv", "libsvm", "x-libsvm"],
)
def test_xgboost_model_fn_only_reads_csv_and_libsvm_into_a_dmatrix(
    aws: LocalAws,
    sagemaker: Any,
    tmp_path: Path,
    diabetes: tuple[Any, np.ndarray],
    content_type: str,
    body: Any,
) -> None:
    # GIVEN an XGBoost Booster served by a script with model_fn only
    booster, rows = diabetes
    model_dir = write_model(tmp_path, "diabetes", XGBOOST_MODEL_FN_ONLY)
    booster.save_model(model_dir / "model.json")
    aws.runtime.add_endpoint(LocalEndpoint("diabetes", model_dir, "realtime", framework="xgboost"))

    # WHEN it is invoked with CSV or 1-based libsvm rows
    response = sagemaker.invoke_endpoint(
        EndpointName="diabetes", Body=body(rows), ContentType=content_type, Accept="application/json"
    )

    # THEN the container's defaults predicted on those rows
    np.testing.assert_allclose(json.loads(response["Body"].read()), booster.predict(xgboost.DMatrix(rows)), rtol=1e-6)


@pytest.mark.parametrize("form", ["pickle", "json"])
def test_an_xgboost_model_directory_without_code_is_served_as_the_built_in_algorithm(
    aws: LocalAws, sagemaker: Any, tmp_path: Path, diabetes: tuple[Any, np.ndarray], form: str
) -> None:
    # GIVEN a model directory holding only xgboost-model (pickled or saved by the Booster)
    booster, rows = diabetes
    model_dir = tmp_path / "algorithm"
    model_dir.mkdir()
    if form == "pickle":
        (model_dir / "xgboost-model").write_bytes(pickle.dumps(booster))
    else:
        booster.save_model(tmp_path / "saved.json")
        (model_dir / "xgboost-model").write_bytes((tmp_path / "saved.json").read_bytes())
    aws.runtime.add_endpoint(LocalEndpoint("algorithm", model_dir, "realtime", framework="xgboost"))
    expected = booster.predict(xgboost.DMatrix(rows))

    # WHEN it is invoked with CSV, without an Accept and for JSON
    as_csv_answer = sagemaker.invoke_endpoint(EndpointName="algorithm", Body=as_csv(rows), ContentType="text/csv")
    as_json = sagemaker.invoke_endpoint(
        EndpointName="algorithm", Body=as_csv(rows), ContentType="text/csv", Accept="application/json"
    )

    # THEN the built-in algorithm's answers: CSV by default, one score a line; JSON as scored predictions
    assert as_csv_answer["ContentType"] == "text/csv; charset=utf-8"
    np.testing.assert_allclose(
        [float(line) for line in as_csv_answer["Body"].read().decode().split()], expected, rtol=1e-6
    )
    scores = [prediction["score"] for prediction in json.loads(as_json["Body"].read())["predictions"]]
    np.testing.assert_allclose(scores, expected, rtol=1e-6)


@pytest.mark.parametrize(
    ("framework", "files", "missing"),
    [
        ("xgboost", {"model.bin": "x"}, "xgboost-model"),
        ("sklearn", {"model.joblib": "x"}, "no defaults that serve a model without code"),
        ("custom", {}, "no defaults that serve a model without code"),
    ],
)
def test_a_model_directory_without_code_the_defaults_cannot_serve_is_refused(
    aws: LocalAws, tmp_path: Path, framework: str, files: dict[str, str], missing: str
) -> None:
    # GIVEN a model directory without code/inference.py
    model_dir = tmp_path / "no-code"
    model_dir.mkdir()
    for name, text in files.items():
        (model_dir / name).write_text(text)

    # WHEN it is added
    message = load_error(aws, LocalEndpoint("no-code", model_dir, "realtime", framework=framework))

    # THEN the error says what is missing, and nothing is served
    assert f"there is no {model_dir.resolve()}/code/inference.py" in message
    assert missing in message
    assert aws.runtime.endpoint_names() == []


# -- bring your own model: loading at once, with clear errors ------------------------------------

BROKEN_IMPORT = """
import json
import not_a_module_of_this_environment


def model_fn(model_dir):
    return json
"""

FAILING_MODEL_FN = """
def model_fn(model_dir):
    raise ValueError("weights file is corrupt")
"""

FAILING_HELPER = """
from helper import load


def model_fn(model_dir):
    return load(model_dir)
"""


def test_a_broken_entry_point_fails_the_load_naming_the_file_and_the_import(aws: LocalAws, tmp_path: Path) -> None:
    # GIVEN an inference.py importing a module that is not installed
    model_dir = write_model(tmp_path, "broken", BROKEN_IMPORT)

    # WHEN the endpoint is added
    message = load_error(aws, LocalEndpoint("broken", model_dir, "realtime"))

    # THEN the error names the file, the line and the exception, without a traceback
    assert message == (
        f"endpoint 'broken': importing {model_dir.resolve()}/code/inference.py failed at line 3: "
        "ModuleNotFoundError: No module named 'not_a_module_of_this_environment'"
    )
    assert aws.runtime.endpoint_names() == []


@pytest.mark.parametrize(
    ("source", "helper", "where"),
    [
        (FAILING_MODEL_FN, None, "at line 3"),
        (
            FAILING_HELPER,
            "def load(model_dir):\n    raise ValueError('weights file is corrupt')\n",
            "at line 2 of code/helper.py",
        ),
    ],
    ids=["in-inference-py", "in-a-helper"],
)
def test_a_failing_model_fn_fails_the_load_with_its_exception_and_line(
    aws: LocalAws, tmp_path: Path, source: str, helper: str | None, where: str
) -> None:
    # GIVEN a model_fn that raises, itself or in a module of its own
    model_dir = write_model(tmp_path, "failing", source)
    if helper is not None:
        (model_dir / "code" / "helper.py").write_text(helper)

    # WHEN the endpoint is added
    message = load_error(aws, LocalEndpoint("failing", model_dir, "realtime"))

    # THEN the error names the file, the line where it was raised and the model's exception
    assert message == (
        f"endpoint 'failing': model_fn of {model_dir.resolve()}/code/inference.py failed {where}: "
        "ValueError: weights file is corrupt"
    )
    assert "Traceback" not in message


def test_a_model_that_fails_to_load_leaves_the_serving_endpoint_unchanged(
    aws: LocalAws, sagemaker: Any, tmp_path: Path
) -> None:
    # GIVEN an endpoint serving a model
    aws.runtime.add_endpoint(LocalEndpoint("keep", write_model(tmp_path, "good", ECHO_MODEL), "realtime"))

    # WHEN it is replaced by a model whose model_fn fails
    with pytest.raises(ModelLoadError):
        aws.runtime.add_endpoint(LocalEndpoint("keep", write_model(tmp_path, "bad", FAILING_MODEL_FN), "realtime"))

    # THEN the model that was serving still answers
    response = sagemaker.invoke_endpoint(EndpointName="keep", Body=b"[1]", ContentType="application/json")
    assert json.loads(response["Body"].read()) == {"value": [1], "model": "loaded"}
    assert aws.runtime.endpoint_names() == ["keep"]


def test_a_sklearn_script_without_model_fn_fails_the_load_with_the_containers_message(
    aws: LocalAws, tmp_path: Path
) -> None:
    # GIVEN a scikit-learn script that defines predict_fn only
    model_dir = write_model(tmp_path, "no-model-fn", "def predict_fn(data, model):\n    return data\n")

    # WHEN the endpoint is added
    message = load_error(aws, LocalEndpoint("no-model-fn", model_dir, "realtime", framework="sklearn"))

    # THEN the container's own NotImplementedError, saying the script defines no model_fn
    assert message.startswith(
        f"endpoint 'no-model-fn': the 'sklearn' framework's default model_fn failed "
        f"({model_dir.resolve()}/code/inference.py defines no model_fn): "
        "NotImplementedError: Please provide a model_fn implementation."
    )


def test_unmet_requirements_fail_the_load_listing_each_with_the_pip_command(aws: LocalAws, tmp_path: Path) -> None:
    # GIVEN a requirements.txt naming a missing package, a version not installed, and ones that are fine
    model_dir = write_model(tmp_path, "needs", ECHO_MODEL)
    (model_dir / "code" / "requirements.txt").write_text(
        "# what the model needs\n"
        "numpy>=1.20\n"
        "not-a-package-of-this-environment==1.0\n"
        'scikit-learn<1.0 ; python_version >= "3"\n'
        'xgboost>=99 ; python_version < "3"  # not for this Python: skipped\n'
        "--extra-index-url https://example.invalid/simple\n"
    )
    installed = __import__("sklearn").__version__

    # WHEN the endpoint is added
    message = load_error(aws, LocalEndpoint("needs", model_dir, "realtime"))

    # THEN one message lists each unmet requirement, says nothing is installed at run time, and how to
    assert message == (
        f"endpoint 'needs': {model_dir.resolve()}/code/requirements.txt asks for packages this environment "
        f"does not have: not-a-package-of-this-environment==1.0 (not installed); scikit-learn<1.0 ({installed} "
        "is installed). SageMaker installs them when the container starts; the local runtime installs nothing "
        "at run time. Install them here first: pip install not-a-package-of-this-environment==1.0 'scikit-learn<1.0'"
    )


@pytest.mark.parametrize(("framework", "package"), [("pytorch", "torch"), ("huggingface", "transformers")])
@pytest.mark.parametrize("with_code", [True, False], ids=["with-code", "without-code"])
def test_pytorch_and_huggingface_without_their_package_fail_the_load_naming_it(
    aws: LocalAws, tmp_path: Path, framework: str, package: str, with_code: bool
) -> None:
    # GIVEN a PyTorch or Hugging Face model, in an environment without torch or transformers
    if importlib_util_find_spec(package):
        pytest.skip(f"{package} is installed here")
    if with_code:
        model_dir = write_model(tmp_path, "big", f"import {package}\n\ndef model_fn(model_dir):\n    return None\n")
    else:
        model_dir = tmp_path / "big"
        model_dir.mkdir()
    (model_dir / ("model.pt" if framework == "pytorch" else "config.json")).write_text("{}")

    # WHEN the endpoint is added
    message = load_error(aws, LocalEndpoint("big", model_dir, "realtime", framework=framework))

    # THEN the error names the package and says nothing is downloaded at run time
    assert message == (
        f"endpoint 'big': framework {framework!r} needs the Python package {package!r}, which is not installed "
        f"here; the local runtime downloads nothing at run time: pip install {package}"
    )


def importlib_util_find_spec(package: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(package) is not None


PROGRAM_MODEL = """
def model_fn(model_dir):
    return "{name}"


def input_fn(request_body, request_content_type):
    return None


def predict_fn(data, model):
    return model
"""


@pytest.mark.parametrize(
    ("program", "environment"),
    [("serve", {}), ("serve.py", {}), ("inference.py", {"SAGEMAKER_PROGRAM": "serve.py"})],
    ids=["name", "file", "environment"],
)
def test_another_entry_point_is_imported_as_sagemaker_program_names_it(
    aws: LocalAws, sagemaker: Any, tmp_path: Path, program: str, environment: dict[str, str]
) -> None:
    # GIVEN a code/ directory with inference.py and serve.py
    model_dir = write_model(tmp_path, "programs", PROGRAM_MODEL.format(name="inference"))
    (model_dir / "code" / "serve.py").write_text(textwrap.dedent(PROGRAM_MODEL.format(name="serve")))

    # WHEN it is added with serve as the program (or SAGEMAKER_PROGRAM in the environment)
    aws.runtime.add_endpoint(LocalEndpoint("programs", model_dir, "realtime", program=program, environment=environment))
    response = sagemaker.invoke_endpoint(EndpointName="programs", Body=b"{}", ContentType="application/json")

    # THEN serve.py's handlers serve it
    assert json.loads(response["Body"].read()) == "serve"


ENVIRONMENT_MODEL = """
import os

SEEN_AT_IMPORT = os.environ.get("MODEL_GREETING")


def model_fn(model_dir):
    return {
        "import": SEEN_AT_IMPORT,
        "model_fn": os.environ.get("MODEL_GREETING"),
        "SM_MODEL_DIR": os.environ.get("SM_MODEL_DIR"),
        "SAGEMAKER_PROGRAM": os.environ.get("SAGEMAKER_PROGRAM"),
    }


def input_fn(request_body, request_content_type):
    return None


def predict_fn(data, model):
    return {**model, "predict_fn": os.environ.get("MODEL_GREETING")}
"""


def test_the_models_environment_is_set_while_it_loads_and_restored_after(
    aws: LocalAws, sagemaker: Any, tmp_path: Path
) -> None:
    # GIVEN a model reading its environment, and an endpoint with environment variables
    assert "MODEL_GREETING" not in os.environ
    model_dir = write_model(tmp_path, "env", ENVIRONMENT_MODEL)

    # WHEN it is added and invoked
    aws.runtime.add_endpoint(LocalEndpoint("env", model_dir, "realtime", environment={"MODEL_GREETING": "hej"}))
    response = sagemaker.invoke_endpoint(EndpointName="env", Body=b"{}", ContentType="application/json")

    # THEN the import and model_fn saw them, with SM_MODEL_DIR and SAGEMAKER_PROGRAM; predict_fn did not
    assert json.loads(response["Body"].read()) == {
        "import": "hej",
        "model_fn": "hej",
        "SM_MODEL_DIR": str(model_dir.resolve()),
        "SAGEMAKER_PROGRAM": "inference.py",
        "predict_fn": None,
    }
    # AND the process environment is as it was
    assert "MODEL_GREETING" not in os.environ and "SAGEMAKER_PROGRAM" not in os.environ


def test_a_removed_endpoint_is_no_longer_served(aws: LocalAws, sagemaker: Any, tmp_path: Path) -> None:
    # GIVEN a served endpoint
    aws.runtime.add_endpoint(LocalEndpoint("gone", write_model(tmp_path, "e", ECHO_MODEL), "realtime"))
    sagemaker.invoke_endpoint(EndpointName="gone", Body=b"[1]", ContentType="application/json")

    # WHEN it is removed (twice)
    removed = aws.runtime.remove_endpoint("gone")
    removed_again = aws.runtime.remove_endpoint("gone")

    # THEN it was removed once, and invoking it is SageMaker's not-found ValidationError
    assert (removed, removed_again) == (True, False)
    assert aws.runtime.endpoint_names() == []
    with pytest.raises(ClientError) as caught:
        sagemaker.invoke_endpoint(EndpointName="gone", Body=b"[1]", ContentType="application/json")
    assert caught.value.response["Error"]["Code"] == "ValidationError"

"""Model workers in processes of their own: the model runs elsewhere, and its crash is a model error.

The runtime is driven through its WSGI middleware (werkzeug's test client): real-time
``InvokeEndpoint`` needs no S3 or SNS, so no AWS is involved.
"""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Response

from ensemble_gateway.local.sagemaker import LocalEndpoint, LocalSageMakerRuntime, ModelLoadError

SIGNED = {"Authorization": "AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/sagemaker/aws4_request, Signature=x"}

# Answers its process ID; {"crash": true} ends the process at once, as a native crash would.
CRASHING_MODEL = """
import json
import os


def model_fn(model_dir):
    return {"loaded_in": os.getpid()}


def input_fn(request_body, request_content_type):
    return json.loads(request_body)


def predict_fn(data, model):
    if data.get("crash"):
        os._exit(3)
    if data.get("fail"):
        raise ValueError("the model refused this input")
    return {"pid": os.getpid(), "loaded_in": model["loaded_in"]}


def output_fn(prediction, accept):
    return json.dumps(prediction), "application/json"
"""

BROKEN_MODEL = """
def model_fn(model_dir):
    raise RuntimeError("weights missing")
"""


def _model_dir(root: Path, name: str, source: str) -> Path:
    """A model directory in the inference-toolkit layout: ``code/inference.py``."""
    model_dir = root / name
    (model_dir / "code").mkdir(parents=True)
    (model_dir / "code" / "inference.py").write_text(textwrap.dedent(source))
    return model_dir


def _inner(environ: Any, start_response: Any) -> Any:
    return Response("not SageMaker", status=404)(environ, start_response)


@pytest.fixture
def runtime() -> Iterator[LocalSageMakerRuntime]:
    runtime = LocalSageMakerRuntime(lambda service: None, model_processes=True)
    yield runtime
    runtime.shutdown()


def _invoke(client: Client, name: str, document: dict[str, Any]) -> Any:
    return client.post(
        f"/endpoints/{name}/invocations",
        data=json.dumps(document),
        headers={**SIGNED, "Content-Type": "application/json"},
    )


def test_the_model_runs_in_a_worker_process_not_the_gateways(runtime: LocalSageMakerRuntime, tmp_path: Path) -> None:
    # GIVEN a real-time endpoint served by worker processes
    runtime.add_endpoint(
        LocalEndpoint(name="isolated", model_dir=_model_dir(tmp_path, "isolated", CRASHING_MODEL), mode="realtime")
    )
    client = Client(runtime.middleware(_inner))

    # WHEN it is invoked
    response = _invoke(client, "isolated", {})

    # THEN the model was loaded and ran in another process
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = json.loads(response.get_data())
    assert answer["pid"] != os.getpid()
    assert answer["loaded_in"] == answer["pid"]


def test_a_worker_process_that_crashes_is_a_model_error_and_the_next_request_is_served(
    runtime: LocalSageMakerRuntime, tmp_path: Path
) -> None:
    # GIVEN a real-time endpoint whose model ends its process on {"crash": true}
    runtime.add_endpoint(
        LocalEndpoint(name="crashy", model_dir=_model_dir(tmp_path, "crashy", CRASHING_MODEL), mode="realtime")
    )
    client = Client(runtime.middleware(_inner))
    before = json.loads(_invoke(client, "crashy", {}).get_data())

    # WHEN a request crashes the worker process, and another request follows
    crashed = _invoke(client, "crashy", {"crash": True})
    after = _invoke(client, "crashy", {})

    # THEN the crash is SageMaker's ModelError naming the exit, this process lives on, and a fresh
    # worker process serves the next request
    assert crashed.status_code == 424
    assert crashed.headers["x-amzn-ErrorType"] == "ModelError"
    error = json.loads(crashed.get_data())
    assert error["OriginalStatusCode"] == 500
    assert "worker process exited with code 3" in error["OriginalMessage"]
    assert after.status_code == 200
    assert json.loads(after.get_data())["pid"] != before["pid"]


def test_a_model_error_raised_in_a_worker_process_keeps_its_status_and_message(
    runtime: LocalSageMakerRuntime, tmp_path: Path
) -> None:
    # GIVEN a real-time endpoint served by worker processes
    runtime.add_endpoint(
        LocalEndpoint(name="refuses", model_dir=_model_dir(tmp_path, "refuses", CRASHING_MODEL), mode="realtime")
    )
    client = Client(runtime.middleware(_inner))

    # WHEN its model raises
    response = _invoke(client, "refuses", {"fail": True})

    # THEN the toolkit's error comes back as from a model in this process, and the worker lives on
    assert response.status_code == 424
    error = json.loads(response.get_data())
    assert "the model refused this input" in error["OriginalMessage"]
    assert "worker process" not in error["OriginalMessage"]
    assert _invoke(client, "refuses", {}).status_code == 200


def test_a_broken_model_is_still_reported_when_the_endpoint_is_added(
    runtime: LocalSageMakerRuntime, tmp_path: Path
) -> None:
    # GIVEN a model whose model_fn raises
    endpoint = LocalEndpoint(name="broken", model_dir=_model_dir(tmp_path, "broken", BROKEN_MODEL), mode="realtime")

    # WHEN it is added, THEN the load error names the failure, and no endpoint is served
    with pytest.raises(ModelLoadError, match="weights missing"):
        runtime.add_endpoint(endpoint)
    assert runtime.endpoint_names() == []


def test_shutdown_stops_the_worker_processes(tmp_path: Path) -> None:
    # GIVEN an endpoint whose worker process has started
    runtime = LocalSageMakerRuntime(lambda service: None, model_processes=True)
    runtime.add_endpoint(
        LocalEndpoint(name="stops", model_dir=_model_dir(tmp_path, "stops", CRASHING_MODEL), mode="realtime")
    )
    client = Client(runtime.middleware(_inner))
    pid = json.loads(_invoke(client, "stops", {}).get_data())["pid"]

    # WHEN the runtime shuts down
    runtime.shutdown()

    # THEN the worker process is gone
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)

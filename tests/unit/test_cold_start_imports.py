"""Cold-start hygiene: what importing and initialising each handler loads, in a fresh interpreter.

The cold-start benchmark (``python -m bench cold_start``) measures the time; these tests pin the
import-structure decisions behind it, so that a reordered import does not silently bring a cost back:
LambdaContext is a type only, Powertools' batch utility does not load the parser's pydantic models,
the X-Ray SDK stays opt-in, pydantic skips plugin discovery, and the API documents are built by the
handlers that serve them and by no other.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

ENVIRONMENT = {
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "PREDICTIONS_TABLE": "predictions",
    "SERVICES_TABLE": "services",
    "CLIENTS_TABLE": "clients",
    "BUCKET": "bucket",
    "WEBHOOK_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/webhooks",
    "WEBHOOK_DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/webhooks-dlq",
    "BATCHES_TABLE": "batches",
    "BATCH_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/batches",
    # As template.yaml's Globals set it (checked below).
    "PYDANTIC_DISABLE_PLUGINS": "__all__",
}

_CHILD = """
import json, os, sys
import ensemble_gateway.handlers.{name} as handler
handler.default_dependencies()
from pydantic import BaseModel
from ensemble_gateway.domain import api
documents = [
    v for v in vars(api).values()
    if isinstance(v, type) and issubclass(v, BaseModel) and v.__module__ == api.__name__
]
print(json.dumps({{
    "modules": sorted(sys.modules),
    "built": sorted(d.__name__ for d in documents if d.__pydantic_complete__),
}}))
"""

ERROR = {"ErrorDocument"}
PREDICTION = {"PredictionDocument", "ResultDocument", "StepDocument", "ShadowDocument"}
SUBMISSION = {
    "NewPredictionRequest",
    "NewPredictionResponse",
    "UploadDocument",
    "UploadRenewalDocument",
    "ServiceListDocument",
    "ServiceDocument",
}

# handler -> the API documents it serves (its cold start builds its ``default_dependencies()``)
HANDLERS: dict[str, set[str]] = {
    "new_prediction": ERROR | SUBMISSION,
    "results": ERROR | PREDICTION | {"PredictionListDocument"},
    "cancel_prediction": ERROR | PREDICTION,
    "process_input": set(),
    "get_transform_call": set(),
    "notifications": set(),
    "webhook_delivery": PREDICTION,
    "sweeper": set(),
    "shadow_dispatch": set(),
    "batches": ERROR
    | {
        "NewBatchRequest",
        "NewBatchResponse",
        "UploadDocument",
        "BatchDocument",
        "BatchCountsDocument",
        "ResultDocument",
    },
    "batch_driver": set(),
}


def cold_start(name: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_", "PYDANTIC_"))}
    env.update(ENVIRONMENT)
    done = subprocess.run(
        [sys.executable, "-c", _CHILD.format(name=name)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture(scope="module", params=sorted(HANDLERS))
def handler(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    return request.param, cold_start(request.param)


def _loaded(modules: list[str], prefix: str) -> list[str]:
    return [m for m in modules if m == prefix or m.startswith(prefix + ".")]


def test_no_handler_imports_what_it_only_annotates_or_never_uses(handler: tuple[str, dict[str, Any]]) -> None:
    _, result = handler
    modules = result["modules"]
    assert _loaded(modules, "aws_lambda_powertools.utilities.typing") == []
    # Powertools' batch utility imports the parser's pydantic models when pydantic is loaded before it.
    assert _loaded(modules, "aws_lambda_powertools.utilities.parser") == []
    assert _loaded(modules, "aws_xray_sdk") == []
    assert "boto3" in modules  # ready for its first event, not lazier than that


def test_the_functions_skip_pydantic_plugin_discovery() -> None:
    from pathlib import Path

    from ensemble_gateway.local.template import load_template

    template = load_template(Path(__file__).resolve().parents[2] / "template.yaml")
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["PYDANTIC_DISABLE_PLUGINS"] == "__all__"


def test_only_the_documents_a_handler_serves_are_built(handler: tuple[str, dict[str, Any]]) -> None:
    name, result = handler
    assert set(result["built"]) == HANDLERS[name]

"""Shadow versions end to end: an async model service with a second version as its shadow.

Both versions are registered with ``ensemble-gateway services apply`` (a separate process, as a
user runs it) against the session's local runtime, each on its own async endpoint hosted from a
model directory written here; predictions go through the HTTP API. The runtime runs the real
handlers from template.yaml: process-input queues the shadow, the shadow-dispatch function sends
it to the shadow version's endpoint, its SNS notification finishes it, and its outcome is left
on the prediction it shadowed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

# Each version says which it is: the outputs tell the served version's answer from the shadow's.
LABELLED_MODEL = """
import json
import os


def model_fn(model_dir):
    with open(os.path.join(model_dir, "label.json")) as handle:
        return json.load(handle)


def transform_fn(model, request_body, content_type, accept):
    return json.dumps({"by": model["label"], "input": json.loads(request_body)}), "application/json"
"""
SERVICE = "shadow-e2e"


@pytest.fixture(scope="module")
def state_file(runtime: Any, client_credentials: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The local runtime's state file, as ``ensemble-gateway local`` writes it, for the CLI."""
    path = tmp_path_factory.mktemp("state") / "state.json"
    path.write_text(
        json.dumps(
            {
                "api_url": runtime.api_url,
                "aws_url": runtime.aws_url,
                "stack_name": runtime.stack.stack_name,
                "outputs": runtime.stack.outputs,
                "api_key": client_credentials["api_key"],
                "root": str(runtime.root),
            }
        )
    )
    return path


def labelled_model(root: Path, label: str) -> Path:
    """A model directory in the SageMaker layout whose answers carry ``label``."""
    (root / "code").mkdir(parents=True)
    (root / "code" / "inference.py").write_text(textwrap.dedent(LABELLED_MODEL))
    (root / "label.json").write_text(json.dumps({"label": label}))
    return root


def entry(version: str, model_dir: Path, **fields: Any) -> dict[str, Any]:
    return {
        "name": SERVICE,
        "kind": "model",
        "version": version,
        "model": {
            "endpoint_name": f"{SERVICE}-v{version.replace('.', '')}",
            "model_data": str(model_dir),
            "framework": "sklearn",
            "invocation": "async",
        },
        **fields,
    }


def apply(state_file: Path, catalog: Path, *entries: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """``ensemble-gateway services apply CATALOG`` in its own process, against the running runtime."""
    catalog.write_text(json.dumps(list(entries)))
    return subprocess.run(
        [sys.executable, "-m", "ensemble_gateway.cli", "services", "apply", str(catalog)],
        env={**os.environ, "ENSEMBLE_GATEWAY_STATE": str(state_file)},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def wait_for_shadows(api: Any, prediction_id: str, timeout: float = 90.0) -> dict[str, Any]:
    """GET the prediction until every shadow it lists has ended."""
    deadline = time.monotonic() + timeout
    while True:
        document: dict[str, Any] = api.status(prediction_id)
        shadows = document.get("shadows") or []
        if shadows and all(shadow["status"] != "RUNNING" for shadow in shadows):
            return document
        assert time.monotonic() < deadline, f"shadows still running: {document}"
        time.sleep(0.25)


def test_an_async_service_with_a_shadow_version_answers_with_the_served_version_and_shows_the_shadow(
    api: Any, state_file: Path, tmp_path: Path
) -> None:
    # GIVEN version 1.0.0 serving, then 1.1.0 registered beside it as its shadow (not approved:
    # evaluating a candidate before approving it is what a shadow is for)
    first = apply(state_file, tmp_path / "v1.json", entry("1.0.0", labelled_model(tmp_path / "v100", "1.0.0")))
    assert first.returncode == 0, first.stderr
    second = apply(
        state_file,
        tmp_path / "v2.json",
        entry("1.1.0", labelled_model(tmp_path / "v110", "1.1.0"), shadow=["1.1.0"]),
    )
    assert second.returncode == 0, second.stderr

    # WHEN a prediction is made through the API
    document = api.predict(SERVICE, b'{"claim": "C-1"}', "application/json", timeout=90)

    # THEN it completed with the served version's answer, and says which version made it
    assert document["status"] == "COMPLETED", document
    assert json.loads(api.download(document)) == {"by": "1.0.0", "input": {"claim": "C-1"}}
    assert document["model"]["version"] == "1.0.0"

    # AND GET shows the shadow version's answer to the same input, with its timings, beside it
    shown = wait_for_shadows(api, document["prediction_id"])
    (shadow,) = shown["shadows"]
    assert (shadow["version"], shadow["status"]) == ("1.1.0", "COMPLETED"), shadow
    assert shadow["output"] == {"by": "1.1.0", "input": {"claim": "C-1"}}
    assert shadow["started_at"] is not None and shadow["finished_at"] >= shadow["started_at"]
    assert shadow["model"]["endpoint"] == f"{SERVICE}-v110"
    # AND the result is still the served version's
    assert shown["status"] == "COMPLETED" and shown["model"]["version"] == "1.0.0"
    assert json.loads(api.download(shown)) == {"by": "1.0.0", "input": {"claim": "C-1"}}

"""``models deploy|render|delete --version`` against the running local runtime: each version of a
service on its own endpoint stack and endpoint, beside the others.

The CLI runs in its own process (as a user runs it, through ``ENSEMBLE_GATEWAY_STATE``); what the
local AWS holds afterwards and what the public API answers are checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import joblib
import pytest
from botocore.exceptions import ClientError
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from ensemble_gateway.local.template import parse_template

LABELS = """
import os

import joblib


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))
"""
PROBABILITIES = (
    LABELS
    + """

def predict_fn(input_data, model):
    return model.predict_proba(input_data)
"""
)
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


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


def cli(state_file: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ensemble_gateway.cli", *arguments],
        env={**os.environ, "ENSEMBLE_GATEWAY_STATE": str(state_file)},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def write_model(root: Path, script: str) -> Path:
    data = load_iris()
    (root / "code").mkdir(parents=True)
    (root / "code" / "inference.py").write_text(textwrap.dedent(script))
    joblib.dump(LogisticRegression(max_iter=500).fit(data.data, data.target), root / "model.joblib")
    return root


def entry(name: str, version: str, endpoint: str, model_data: str) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "model",
        "version": version,
        "content_types": ["application/json"],
        "model": {
            "endpoint_name": endpoint,
            "model_data": model_data,
            "framework": "sklearn",
            "invocation": "realtime",
        },
    }


def test_each_version_is_deployed_on_its_own_stack_and_endpoint_beside_the_serving_one(
    runtime: Any, api: Any, state_file: Path, tmp_path: Path
) -> None:
    # GIVEN a catalog file with two versions of one service, each its own model and endpoint
    write_model(tmp_path / "v1", LABELS)
    write_model(tmp_path / "v2", PROBABILITIES)
    catalog = tmp_path / "catalog.json"
    catalog.write_text(
        json.dumps([entry("ver-iris", "1.0.0", "ver-iris", "v1"), entry("ver-iris", "1.1.0", "ver-iris-1-1-0", "v2")])
    )
    prefix = runtime.stack.stack_name
    sagemaker = runtime.client("sagemaker")

    # WHEN the service is deployed without --version (its primary: the first version)
    first = cli(state_file, "models", "deploy", "ver-iris", "--catalog", str(catalog))

    # THEN version 1.0.0 is on the service's stack, as before versions
    assert first.returncode == 0, first.stderr
    assert f"v1.0.0 -> endpoint ver-iris (stack {prefix}-model-ver-iris)" in first.stdout
    serving = sagemaker.describe_endpoint(EndpointName="ver-iris")["EndpointConfigName"]

    # WHEN version 1.1.0's template is rendered, then the version is deployed
    rendered = cli(state_file, "models", "render", "ver-iris", "--catalog", str(catalog), "--version", "1.1.0")
    second = cli(state_file, "models", "deploy", "ver-iris", "--catalog", str(catalog), "--version", "1.1.0")

    # THEN it is rendered and deployed as its own stack and endpoint ...
    assert rendered.returncode == 0, rendered.stderr
    assert parse_template(rendered.stdout)["Parameters"]["EndpointName"]["Default"] == "ver-iris-1-1-0"
    assert second.returncode == 0, second.stderr
    assert f"v1.1.0 -> endpoint ver-iris-1-1-0 (stack {prefix}-model-ver-iris-v1-1-0)" in second.stdout
    assert sagemaker.describe_endpoint(EndpointName="ver-iris-1-1-0")["EndpointStatus"] == "InService"
    # ... registered beside 1.0.0, waiting for approval, while 1.0.0 serves on, untouched
    assert sagemaker.describe_endpoint(EndpointName="ver-iris")["EndpointConfigName"] == serving
    listed = {s["name"]: s for s in api.services()}["ver-iris"]
    assert (listed["version"], listed["traffic"]) == ("1.0.0", {"1.0.0": 100})
    document = api.predict("ver-iris", json.dumps(ROWS).encode(), "application/json", timeout=60)
    assert document["status"] == "COMPLETED", document
    assert document["model"]["endpoint"] == "ver-iris"
    assert json.loads(api.download(document)) == [0, 2]  # labels: 1.0.0's model, not 1.1.0's

    # WHEN version 1.1.0's stack is deleted
    deleted = cli(state_file, "models", "delete", "ver-iris", "--version", "1.1.0")

    # THEN its endpoint is gone and 1.0.0's still serves
    assert deleted.returncode == 0, deleted.stderr
    assert f"deleted stack {prefix}-model-ver-iris-v1-1-0" in deleted.stdout
    with pytest.raises(ClientError, match="Could not find endpoint"):
        sagemaker.describe_endpoint(EndpointName="ver-iris-1-1-0")
    assert sagemaker.describe_endpoint(EndpointName="ver-iris")["EndpointConfigName"] == serving

    # AND deleting without --version deletes the primary version's stack, the service's
    again = cli(state_file, "models", "delete", "ver-iris")
    assert again.returncode == 0, again.stderr
    assert f"deleted stack {prefix}-model-ver-iris\n" in again.stdout


def test_a_version_the_catalog_file_does_not_hold_is_named_with_the_ones_it_does(
    state_file: Path, tmp_path: Path
) -> None:
    write_model(tmp_path / "v1", LABELS)
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps([entry("ver-missing", "1.0.0", "ver-missing", "v1")]))

    refused = cli(state_file, "models", "deploy", "ver-missing", "--catalog", str(catalog), "--version", "2.0.0")

    assert refused.returncode == 2
    assert "has no version 2.0.0 of service 'ver-missing' (it has: 1.0.0)" in refused.stderr

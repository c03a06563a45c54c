"""The audit trail end to end (issue 18): an ensemble decided through the session runtime, then
``audit show`` and ``audit export`` through the real CLI, in a process of its own, reading the
decision records the functions wrote to the local bucket (``audit/date=.../hour=.../``).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from test_cli import Cli, user_environment

from conftest import sample

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and pipes")

WAIT = 60.0


@pytest.fixture
def operator(runtime: Any, client_credentials: dict[str, Any], tmp_path: Path) -> Cli:
    """The CLI run by an operator outside the checkout, finding the runtime by its state file."""
    state = tmp_path / "state-home" / "ensemble-gateway" / "state.json"
    state.parent.mkdir(parents=True)
    state.write_text(
        json.dumps(
            {
                "api_url": runtime.api_url,
                "aws_url": runtime.aws_url,
                "stack_name": runtime.stack.stack_name,
                "outputs": runtime.stack.outputs,
                "api_key": client_credentials["api_key"],
                "client_id": client_credentials["client"].client_id,
                "pid": os.getpid(),  # the session runtime serves from this process
            }
        )
    )
    workdir = tmp_path / "operator"
    workdir.mkdir()
    return Cli(workdir, user_environment(tmp_path / "state-home"))


def stored_sha256(runtime: Any, uri: str) -> str:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    body = runtime.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    return hashlib.sha256(body).hexdigest()


def decision_of(operator: Cli, prediction_id: str, steps: int) -> dict[str, Any]:
    """``audit show --json`` once the ensemble's record and its steps' are in the trail (each is
    written right after its end, by the function that ended it)."""
    deadline = time.monotonic() + WAIT
    while True:
        done = operator.run("audit", "show", prediction_id, "--json")
        if done.returncode == 0:
            decision: dict[str, Any] = json.loads(done.stdout)
            if len(decision["steps"]) >= steps:
                return decision
        assert time.monotonic() < deadline, done
        time.sleep(0.5)


def test_audit_show_and_export_tell_which_versions_decided_on_which_inputs(
    runtime: Any, api: Any, operator: Cli, tmp_path: Path
) -> None:
    # GIVEN a vehicle claim decided by the ensemble
    document = api.predict("vehicle-claim", sample("vehicle-claim"), "application/json", timeout=WAIT)
    assert document["status"] == "COMPLETED", document
    prediction_id = document["prediction_id"]
    lineage = {step["name"]: step for step in document["steps"]}
    # AND its lineage says where each step's time went
    for step in lineage.values():
        assert step["timing"]["total_ms"] >= 0, step
        assert step["timing"]["model_ms"] is not None, step

    # WHEN an operator asks the audit trail for it
    decision = decision_of(operator, prediction_id, steps=len(lineage))

    # THEN the record names the ensemble's version and its input by the hash the API reported
    record = decision["prediction"]
    assert (record["service"], record["version"], record["status"]) == ("vehicle-claim", "1.0.0", "COMPLETED")
    assert record["input"]["sha256"] == document["input"]["sha256"]
    assert record["output"]["sha256"] == stored_sha256(runtime, record["output"]["uri"])
    # AND each step's record names the version that served it, its input and output by hash
    steps = {step["step"]: step for step in decision["steps"]}
    assert set(steps) == set(lineage)
    for name, step in steps.items():
        assert step["version"] == lineage[name]["model"]["version"], name
        if step["input"]["uri"] is not None:
            assert step["input"]["sha256"] == stored_sha256(runtime, step["input"]["uri"]), name
        else:  # a real-time step's input goes to the model from memory: its hash is all there is
            assert len(step["input"]["sha256"]) == 64 and step["input"]["size"] > 0, name
        assert step["output"]["sha256"] == stored_sha256(runtime, step["output"]["uri"]), name
        assert step["captureData"]["endpointInput"]["encoding"] == "S3_URI", name
        assert step["eventMetadata"]["inferenceId"] == step["prediction_id"], name
    # AND the text says the same to a person
    text = operator.run("audit", "show", prediction_id)
    assert text.returncode == 0, text
    assert "vehicle-claim 1.0.0" in text.stdout
    assert record["input"]["sha256"] in text.stdout
    for name, step in steps.items():
        assert f"{name}: COMPLETED by {step['service']} {step['version']}" in text.stdout
        assert step["input"]["sha256"] in text.stdout

    # WHEN the last hour of the service is exported
    out = tmp_path / "audit.jsonl"
    done = operator.run("audit", "export", "--since", "1h", "--service", "vehicle-claim", "-o", str(out))

    # THEN the file holds the decision, once, and only records of that service
    assert done.returncode == 0, done
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["record_id"] for r in exported].count(f"{prediction_id}:COMPLETED") == 1
    assert {r["service"] for r in exported} == {"vehicle-claim"}


def test_stats_prints_the_dashboards_figures_of_the_running_runtime(api: Any, operator: Cli) -> None:
    # GIVEN a prediction decided in the last hour
    document = api.predict("fraud-score", sample("fraud-score"), "application/json", timeout=WAIT)
    assert document["status"] == "COMPLETED", document
    operator_json: dict[str, Any] = {}
    deadline = time.monotonic() + WAIT

    # WHEN the operator asks for the figures (once the record is in the trail)
    while True:
        done = operator.run("stats", "--since", "1h", "--json")
        assert done.returncode == 0, done
        operator_json = json.loads(done.stdout)
        found = [f for f in operator_json["services"] if (f["service"], f["kind"]) == ("fraud-score", "prediction")]
        if found and found[0]["predictions"] >= 1:
            break
        assert time.monotonic() < deadline, operator_json
        time.sleep(0.5)

    # THEN the service's latency and model time are there, and every dead-letter queue's depth
    (figures,) = found
    assert figures["latency_p50_ms"] is not None and figures["mean_model_ms"] is not None
    assert len(operator_json["dead_letter_queues"]) == 6  # input, webhook, shadow, batch, notifications, sweeper
    text = operator.run("stats", "--since", "1h")
    assert text.returncode == 0 and "fraud-score" in text.stdout and "dead-letter queues:" in text.stdout

"""End to end on the local runtime through the HTTP API: single models, failures, expiry, webhooks.

The session runtime (tests/conftest.py) runs the real handlers, template.yaml wiring and state
machines on moto, with the example models hosted by the local SageMaker runtime.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from standardwebhooks import Webhook

from conftest import ROOT, sample
from ensemble_gateway.client import GatewayClientError


def test_async_model_completes_and_its_webhook_verifies(
    api: Any, client_credentials: dict[str, Any], webhook_receiver: Any
) -> None:
    # GIVEN the async fraud model and a webhook receiver on 127.0.0.1
    claim = sample("fraud-score", "claim-suspicious.json")

    # WHEN a claim is submitted, uploaded through the presigned POST and the prediction finishes
    accepted = api.submit("fraud-score", webhook_url=webhook_receiver.url, metadata={"claim": "C-9"})
    api.upload(accepted["upload"], claim, "application/json")
    document = api.wait(accepted["prediction_id"], timeout=60)

    # THEN it is COMPLETED, its output downloads through the presigned URL, and one signed webhook
    # carrying the same document arrived
    assert document["status"] == "COMPLETED", document
    assert document["metadata"] == {"claim": "C-9"}
    assert document["model"]["endpoint"] == "fraud-score"
    output = json.loads(api.download(document))
    assert output["fraud_probability"] > 0.5
    assert set(output["explanation"]) >= {"claim_amount", "prior_claims"}
    delivered = webhook_receiver.wait_for(accepted["prediction_id"])
    assert len(delivered) == 1
    body = delivered[0]["body"]
    Webhook(client_credentials["webhook_secret"]).verify(body, delivered[0]["headers"])
    event = json.loads(body)
    assert event["type"] == "prediction.completed"
    assert event["data"]["status"] == "COMPLETED"
    assert event["data"]["prediction_id"] == accepted["prediction_id"]


def test_realtime_model_completes_with_its_variant(api: Any) -> None:
    # GIVEN the real-time repair-cost model
    claim = sample("repair-cost", "claim-major-damage.json")

    # WHEN a claim is predicted
    document = api.predict("repair-cost", claim, timeout=60)

    # THEN the output is stored like an async one and the model names the variant that answered
    assert document["status"] == "COMPLETED", document
    assert document["model"] == {"endpoint": "repair-cost", "version": "1.0.0/AllTraffic"}
    assert json.loads(api.download(document))["estimated_repair_cost"] > 1000


def test_a_model_that_raises_fails_the_prediction_with_its_reason(api: Any, webhook_receiver: Any) -> None:
    # GIVEN a model that always raises
    # WHEN it is given an input
    accepted = api.submit("always-fails", webhook_url=webhook_receiver.url)
    api.upload(accepted["upload"], b"{}", "application/json")
    document = api.wait(accepted["prediction_id"], timeout=60)

    # THEN the prediction is FAILED with the model's own message, and the webhook says so
    assert document["status"] == "FAILED"
    assert document["error"]["code"] == "ModelError"
    assert "this model always fails" in document["error"]["message"]
    assert "result" not in document or document["result"] is None
    delivered = webhook_receiver.wait_for(accepted["prediction_id"])
    assert json.loads(delivered[0]["body"])["type"] == "prediction.failed"


def test_an_upload_that_never_comes_expires_and_is_notified(api: Any, webhook_receiver: Any) -> None:
    # GIVEN upload URLs that live 10 s in this runtime (the sweeper runs every second)
    accepted = api.submit("echo", webhook_url=webhook_receiver.url)

    # WHEN nothing is uploaded
    document = api.wait(accepted["prediction_id"], timeout=60, interval=0.5)

    # THEN the prediction ends EXPIRED with a reason, and the client is told by webhook
    assert document["status"] == "EXPIRED", document
    assert document["error"]["code"] == "UploadExpired"
    delivered = webhook_receiver.wait_for(accepted["prediction_id"])
    assert json.loads(delivered[0]["body"])["type"] == "prediction.expired"
    # AND the dead upload URL is refused if someone tries it now
    with pytest.raises(GatewayClientError) as refused:
        api.upload(accepted["upload"], b"{}", "application/json")
    assert refused.value.status == 403
    assert api.status(accepted["prediction_id"])["status"] == "EXPIRED"


def test_a_webhook_receiver_down_at_first_gets_the_webhook_once_it_is_up(api: Any, webhook_receiver: Any) -> None:
    # GIVEN a receiver that answers 503 to the first attempt
    webhook_receiver.fail_next = 1

    # WHEN a prediction completes
    document = api.predict("echo", b'{"ping": 1}', webhook_url=webhook_receiver.url, timeout=60)
    assert document["status"] == "COMPLETED"

    # THEN the webhook is retried (5 s later, per the schedule) and delivered exactly once,
    # with the same webhook-id on both attempts; the result stayed pollable meanwhile
    delivered = webhook_receiver.wait_for(document["prediction_id"], timeout=40)
    attempts = webhook_receiver.attempts(document["prediction_id"])
    assert len(delivered) == 1
    assert [a["answered"] for a in attempts] == [503, 204]
    assert attempts[0]["headers"]["webhook-id"] == attempts[1]["headers"]["webhook-id"]


def test_the_upload_policy_refuses_oversize_and_wrong_content_type(api: Any) -> None:
    # GIVEN a prediction for the echo service (max 1 MiB, application/json)
    accepted = api.submit("echo")
    upload = accepted["upload"]

    # WHEN too many bytes are posted, or another content type
    too_big = requests.post(
        upload["url"],
        data=upload["fields"],
        files={"file": ("x", b"x" * (upload["max_bytes"] + 1), "application/json")},
    )
    wrong_type = requests.post(
        upload["url"],
        data={**upload["fields"], "Content-Type": "text/plain"},
        files={"file": ("x", b"{}", "text/plain")},
    )

    # THEN S3 refuses both and the prediction is still waiting for a valid upload
    assert too_big.status_code == 400 and "EntityTooLarge" in too_big.text
    assert wrong_type.status_code == 403 and "Policy Condition failed" in wrong_type.text
    assert api.status(accepted["prediction_id"])["status"] == "PENDING_UPLOAD"


@pytest.fixture
def cli_state(
    runtime: Any, client_credentials: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The CLI pointed at the session's local runtime through a state file, as `local` writes it."""
    state = tmp_path / "state.json"
    state.write_text(
        json.dumps(
            {
                "api_url": runtime.api_url,
                "aws_url": runtime.aws_url,
                "stack_name": runtime.stack.stack_name,
                "outputs": runtime.stack.outputs,
                "api_key": client_credentials["api_key"],
            }
        )
    )
    monkeypatch.setenv("ENSEMBLE_GATEWAY_STATE", str(state))
    return state


def test_the_cli_predicts_and_reports_status(cli_state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ensemble_gateway import cli

    # GIVEN the CLI pointed at the running local runtime through its state file
    claim = ROOT / "examples" / "vehicle-claim" / "samples" / "write-off.json"

    # WHEN a claim is predicted with --wait, and its status asked for
    code = cli.main(["predict", "vehicle-claim", str(claim), "--wait", "--timeout", "90", "--json"])
    printed = json.loads(capsys.readouterr().out)
    status_code = cli.main(["status", printed["prediction_id"], "--json"])
    status = json.loads(capsys.readouterr().out)

    # THEN both show the completed ensemble with its four steps
    assert code == 0, printed
    assert printed["status"] == "COMPLETED"
    assert status_code == 0 and status["prediction_id"] == printed["prediction_id"]
    assert sorted(step["name"] for step in status["steps"]) == ["cost", "damage", "decision", "fraud"]


def test_the_cli_creates_clients_and_lists_services(cli_state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ensemble_gateway import cli

    # WHEN a client is created and the services are listed with its key
    assert cli.main(["clients", "create", "acme", "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert cli.main(["services", "list", "--json", "--api-key", created["api_key"]]) == 0
    services = json.loads(capsys.readouterr().out)

    # THEN the new key works and the example services are listed
    assert created["webhook_secret"].startswith("whsec_")
    assert {"vehicle-claim", "complaint-triage", "fraud-score"} <= {s["name"] for s in services}
    # AND an unknown key is refused
    assert cli.main(["services", "list", "--api-key", "egk_not-a-key"]) == 2


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT semantics")
def test_local_command_serves_and_stops_cleanly_on_ctrl_c(trained_models: Path, tmp_path: Path) -> None:
    # GIVEN `ensemble-gateway local` started as a user would (free ports, its own directory)
    from ensemble_gateway.settings import Settings

    # A user's shell: none of the variables the session's runtime put in this process's environment.
    settings = {field.alias for field in Settings.model_fields.values()}
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_", "POWERTOOLS_")) and k not in settings
    }
    env["ENSEMBLE_GATEWAY_STATE"] = str(tmp_path / ".local-runtime" / "state.json")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ensemble_gateway.cli",
            "local",
            "--port",
            "0",
            "--aws-port",
            "0",
            "--catalog",
            str(ROOT / "examples" / "catalog.json"),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    # Drain its output all along: a child blocked on a full pipe could not stop.
    lines: list[str] = []
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any("Ctrl-C stops." in line for line in lines):
            time.sleep(0.2)
        assert any(line.startswith("API") for line in lines), "".join(lines)
        state = json.loads((tmp_path / ".local-runtime" / "state.json").read_text())

        # WHEN a prediction is made through its API, then Ctrl-C is pressed
        from ensemble_gateway.client import GatewayClient

        document = GatewayClient(state["api_url"], state["api_key"]).predict("echo", b'{"hi": 1}', timeout=60)
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            reader.join(5)
            raise AssertionError("did not stop within 60 s of Ctrl-C; it printed:\n" + "".join(lines)) from None

        # THEN the prediction completed, the process exited 0 and removed its state file
        assert document["status"] == "COMPLETED"
        assert code == 0
        assert not (tmp_path / ".local-runtime" / "state.json").exists()
    finally:
        if process.poll() is None:
            process.kill()


def test_a_rotated_webhook_secret_keeps_old_and_new_receivers_verifying(
    runtime: Any, cli_state: Path, capsys: pytest.CaptureFixture[str], webhook_receiver: Any
) -> None:
    from ensemble_gateway import cli
    from ensemble_gateway.client import GatewayClient

    # GIVEN a new client whose webhook secret is rotated with the CLI
    assert cli.main(["clients", "create", "rotating", "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert cli.main(["clients", "rotate-secret", created["client_id"]]) == 0
    rotated = json.loads(capsys.readouterr().out)
    assert rotated["webhook_secret"] != created["webhook_secret"]

    # WHEN a prediction of that client completes
    api = GatewayClient(runtime.api_url, created["api_key"])
    document = api.predict("echo", b"{}", webhook_url=webhook_receiver.url, timeout=60)
    (delivered,) = webhook_receiver.wait_for(document["prediction_id"])

    # THEN the webhook carries two signatures, and receivers with either secret verify it
    assert len(delivered["headers"]["webhook-signature"].split(" ")) == 2
    Webhook(created["webhook_secret"]).verify(delivered["body"], delivered["headers"])
    Webhook(rotated["webhook_secret"]).verify(delivered["body"], delivered["headers"])
    # AND after retiring, only the new secret signs
    assert cli.main(["clients", "rotate-secret", created["client_id"], "--retire"]) == 0
    assert json.loads(capsys.readouterr().out)["webhook_secrets"] == 1

"""The ``ensemble-gateway`` command as a user runs it: a process of its own, from a directory that
is not the checkout, against the session's local runtime (tests/conftest.py).

Most commands find the runtime as a user's would, through the per-user state file
(``$XDG_STATE_HOME/ensemble-gateway/state.json``); some name it with ``--api-url``/``--api-key``.
No command may print a traceback (:meth:`Cli.run` checks every one). The last test starts
``ensemble-gateway local`` itself.

``list``, ``cancel`` and ``upload`` need the API's ``GET /predictions``,
``POST /predictions/{id}/cancel`` and ``POST /predictions/{id}/upload``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from conftest import EXAMPLES

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and pipes")

# The console script when installed (what a user types), else the module.
_SCRIPT = Path(sys.executable).with_name("ensemble-gateway")
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "ensemble_gateway.cli"]
DOCUMENTED_STATUSES = {"PENDING_UPLOAD", "RUNNING", "COMPLETED", "FAILED", "EXPIRED", "CANCELLED"}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def user_environment(state_home: Path) -> dict[str, str]:
    """A user's shell: none of the variables the session's runtime set in this process."""
    from ensemble_gateway.settings import Settings

    settings = {field.alias for field in Settings.model_fields.values()}
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "MOTO_", "POWERTOOLS_", "ENSEMBLE_GATEWAY_")) and name not in settings
    }
    env["XDG_STATE_HOME"] = str(state_home)
    return env


class Cli:
    """Runs ``ensemble-gateway`` in a process of its own, in ``cwd``, with ``env``."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd = cwd
        self.env = env

    def run(self, *argv: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*COMMAND, *argv], cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        assert "Traceback" not in done.stdout + done.stderr, done
        return done

    def json(self, *argv: str) -> Any:
        done = self.run(*argv, "--json")
        assert done.returncode in (0, 1, 3), done
        return json.loads(done.stdout)

    def popen(self, *argv: str, **options: Any) -> subprocess.Popen[str]:
        return subprocess.Popen([*COMMAND, *argv], cwd=self.cwd, env=self.env, text=True, **options)


@pytest.fixture
def state_home(tmp_path: Path) -> Path:
    return tmp_path / "state-home"


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A working directory that is not the checkout (and has no .local-runtime/ above it)."""
    directory = tmp_path / "somewhere" / "else"
    directory.mkdir(parents=True)
    return directory


@pytest.fixture
def cli(runtime: Any, client_credentials: dict[str, Any], state_home: Path, elsewhere: Path) -> Cli:
    """The CLI finding the session runtime through the per-user state file, as `local` writes it."""
    state = state_home / "ensemble-gateway" / "state.json"
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
                # The session runtime serves from this process.
                "pid": os.getpid(),
            }
        )
    )
    return Cli(elsewhere, user_environment(state_home))


@pytest.fixture
def bare_cli(tmp_path: Path, elsewhere: Path) -> Cli:
    """The CLI with no local runtime recorded anywhere: commands name the API themselves."""
    return Cli(elsewhere, user_environment(tmp_path / "empty-state-home"))


@pytest.fixture
def explicit(runtime: Any, client_credentials: dict[str, Any]) -> list[str]:
    """``--api-url`` and ``--api-key`` of the session runtime."""
    return ["--api-url", runtime.api_url, "--api-key", client_credentials["api_key"]]


@pytest.fixture
def inputs(elsewhere: Path) -> dict[str, Path]:
    """Input files in the working directory."""
    files = {
        "hello": elsewhere / "hello.json",
        "claim": elsewhere / "write-off.json",
        "slow": elsewhere / "slow.json",
    }
    files["hello"].write_bytes((EXAMPLES / "echo" / "samples" / "hello.json").read_bytes())
    files["claim"].write_bytes((EXAMPLES / "vehicle-claim" / "samples" / "write-off.json").read_bytes())
    files["slow"].write_text(json.dumps({"sleep_ms": 5000}))
    return files


def owned_predictions(runtime: Any, client_id: str) -> int:
    """How many predictions the client has in the runtime's table (read directly, not by the API)."""
    client = runtime.client("dynamodb")
    request: dict[str, Any] = {
        "TableName": runtime.stack.outputs["PredictionsTableName"],
        "FilterExpression": "#owner = :owner",
        "ExpressionAttributeNames": {"#owner": "owner"},
        "ExpressionAttributeValues": {":owner": {"S": client_id}},
        "Select": "COUNT",
    }
    total = 0
    while True:
        page = client.scan(**request)
        total += page["Count"]
        if "LastEvaluatedKey" not in page:
            return total
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def new_client(runtime: Any) -> tuple[str, str]:
    from ensemble_gateway.adapters.dynamodb import DynamoClientDirectory
    from ensemble_gateway.admin import create_client

    directory = DynamoClientDirectory(runtime.stack.outputs["ClientsTableName"], runtime.client("dynamodb"))
    client, api_key = create_client(directory, unique("cli-tests"))
    return client.client_id, api_key


# -- predict ------------------------------------------------------------------------------------
def test_predict_wait_counts_every_step_of_the_ensemble_from_the_first_line(cli: Cli, inputs: dict[str, Path]) -> None:
    # GIVEN the vehicle-claim ensemble (four steps) and the CLI run outside the checkout
    # WHEN a claim is predicted with --wait and --json
    done = cli.run("predict", "vehicle-claim", inputs["claim"].name, "--wait", "--timeout", "120", "--json")

    # THEN it exits 0 with the completed document on stdout
    assert done.returncode == 0, done
    document = json.loads(done.stdout)
    assert document["status"] == "COMPLETED"
    assert sorted(step["name"] for step in document["steps"]) == ["cost", "damage", "decision", "fraud"]
    # AND every progress line on stderr counts out of the four steps, from the first one on
    progress = [line for line in done.stderr.splitlines() if document["prediction_id"] in line]
    assert progress, done.stderr
    counts = [line.split(" steps ", 1)[1].split(" ", 1)[0] for line in progress if " steps " in line]
    assert counts and all(count.endswith("/4") for count in counts), progress
    assert counts[-1] == "4/4"
    assert "damage:" in progress[0] and "decision:" in progress[0]


def test_predict_without_wait_prints_the_predictions_documented_status(cli: Cli, inputs: dict[str, Path]) -> None:
    # WHEN an input is submitted without --wait, as text and as JSON
    text = cli.run("predict", "echo", str(inputs["hello"]))
    document = cli.json("predict", "echo", str(inputs["hello"]))

    # THEN both show a status of the API (never "uploaded"), and say how to follow it
    assert text.returncode == 0, text
    (status_line,) = [line for line in text.stdout.splitlines() if line.startswith("status ")]
    assert status_line.split()[1] in DOCUMENTED_STATUSES
    assert "uploaded" not in text.stdout
    assert "ensemble-gateway status p" in text.stderr
    assert document["status"] in DOCUMENTED_STATUSES
    assert document["prediction_id"].startswith("p")


def test_predict_sends_metadata_accept_and_an_idempotency_key(cli: Cli, inputs: dict[str, Path]) -> None:
    # GIVEN a key no prediction used yet
    key = unique("order")
    argv = [
        "predict",
        "echo",
        str(inputs["hello"]),
        "--metadata",
        "claim=C-9",
        "--metadata",
        "note=a=b",
        "--accept",
        "application/json",
        "--idempotency-key",
        key,
        "--wait",
        "--json",
    ]

    # WHEN the prediction is made, then made again with the same key and request
    first = cli.run(*argv)
    again = cli.run(*argv)

    # THEN the metadata came back, and the retry is the same prediction, its input not sent twice
    assert first.returncode == 0 and again.returncode == 0, (first, again)
    document = json.loads(first.stdout)
    assert document["status"] == "COMPLETED"
    assert document["metadata"] == {"claim": "C-9", "note": "a=b"}
    assert json.loads(again.stdout)["prediction_id"] == document["prediction_id"]
    assert "already submitted with this idempotency key" in again.stderr


def test_predict_inline_sends_the_json_in_one_request_and_refuses_what_is_not_json(
    cli: Cli, inputs: dict[str, Path], elsewhere: Path
) -> None:
    # GIVEN a JSON input, and a CSV one
    csv = elsewhere / "rows.csv"
    csv.write_text("a,b\n1,2\n")

    # WHEN the JSON one is predicted inline, and the CSV one too
    done = cli.run("predict", "echo", str(inputs["hello"]), "--inline", "--wait", "--json")
    refused = cli.run("predict", "echo", str(csv), "--inline")

    # THEN the first completed with its input recorded as sent (no upload form was used)
    assert done.returncode == 0, done
    document = json.loads(done.stdout)
    assert document["status"] == "COMPLETED"
    assert document["input"]["size"] > 0 and len(document["input"]["sha256"]) == 64
    assert "already submitted" not in done.stderr
    # AND the second is refused in one line, exit 2, before any request
    assert refused.returncode == 2, refused
    assert refused.stderr.startswith("error: --inline sends JSON only") and refused.stderr.count("\n") == 1


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_an_unreadable_input_is_refused_before_any_prediction_is_created(
    runtime: Any, cli: Cli, elsewhere: Path, inputs: dict[str, Path], kind: str
) -> None:
    # GIVEN a client with no prediction, and an input that is missing or a directory
    client_id, api_key = new_client(runtime)
    path = elsewhere / "nothing-here.json"
    if kind == "directory":
        path.mkdir()

    # WHEN it is predicted on
    done = cli.run("predict", "echo", path.name, "--wait", "--api-key", api_key)

    # THEN one line says so, exit 2, and the client has no prediction (none was created)
    assert done.returncode == 2, done
    assert done.stderr.startswith(f"error: cannot read {path.name}") and done.stderr.count("\n") == 1
    assert owned_predictions(runtime, client_id) == 0
    # AND a readable input makes one (the count would have seen it)
    assert cli.run("predict", "echo", str(inputs["hello"]), "--api-key", api_key).returncode == 0
    assert owned_predictions(runtime, client_id) == 1


def test_predict_wait_past_its_timeout_exits_3_and_says_it_keeps_running(
    cli: Cli, inputs: dict[str, Path], explicit: list[str]
) -> None:
    # WHEN a prediction that takes 5 s is waited for 1 s (the API named on the command line)
    done = cli.run("predict", "slow-noop", str(inputs["slow"]), "--wait", "--timeout", "1", *explicit)

    # THEN exit 3, not 1 (FAILED): it says it is still running and how to check it
    assert done.returncode == 3, done
    prediction_id = done.stdout.splitlines()[0].split()[1]
    assert done.stderr.splitlines()[-1] == (
        f"still RUNNING after 1 s (--timeout): prediction {prediction_id} keeps running; "
        f"check it with `ensemble-gateway status {prediction_id}`"
    )


def test_ctrl_c_while_waiting_exits_130_and_says_how_to_check_the_prediction(cli: Cli, inputs: dict[str, Path]) -> None:
    # GIVEN a prediction being waited for (SIGINT as a terminal's Ctrl-C delivers it, even when this
    # test runs where SIGINT is ignored)
    process = cli.popen(
        "predict",
        "slow-noop",
        str(inputs["slow"]),
        "--wait",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    lines: list[str] = []
    assert process.stderr is not None
    stderr = process.stderr
    reader = threading.Thread(target=lambda: lines.extend(iter(stderr.readline, "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(" RUNNING" in line for line in lines):
            time.sleep(0.1)
        assert any(" RUNNING" in line for line in lines), lines

        # WHEN Ctrl-C is pressed
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=30)
        reader.join(10)
    finally:
        if process.poll() is None:
            process.kill()

    # THEN exit 130, and one line saying the prediction keeps running and how to check it
    output = "".join(lines)
    assert code == 130, output
    prediction_id = lines[0].split()[1]
    assert lines[-1] == (
        f"interrupted: prediction {prediction_id} keeps running; "
        f"check it with `ensemble-gateway status {prediction_id}`\n"
    )
    assert "Traceback" not in output


# -- status and result --------------------------------------------------------------------------
def test_status_and_result_of_a_completed_prediction(cli: Cli, inputs: dict[str, Path], elsewhere: Path) -> None:
    # GIVEN a completed echo prediction
    document = cli.json("predict", "echo", str(inputs["hello"]), "--wait")
    prediction_id = document["prediction_id"]

    # WHEN its status and its result are asked for, as text, as JSON and into a file
    status = cli.run("status", prediction_id)
    as_json = cli.json("status", prediction_id)
    printed = cli.run("result", prediction_id)
    written = cli.run("result", prediction_id, "-o", "output.json")
    described = cli.json("result", prediction_id)

    # THEN all exit 0; the status reads as text; the output is printed, written and described
    assert status.returncode == printed.returncode == written.returncode == 0, (status, printed, written)
    assert f"prediction  {prediction_id}" in status.stdout.splitlines()
    assert "status      COMPLETED" in status.stdout
    assert as_json["status"] == "COMPLETED" and as_json["prediction_id"] == prediction_id
    output = json.loads(printed.stdout)
    assert output["echo"] == json.loads(inputs["hello"].read_text())
    assert json.loads((elsewhere / "output.json").read_text()) == output
    assert "to output.json" in written.stdout
    assert described["output"] == output and described["content_type"].startswith("application/json")


def test_status_and_result_exit_by_how_the_prediction_is(cli: Cli, inputs: dict[str, Path]) -> None:
    # GIVEN a failed prediction and one still running
    failed = cli.json("predict", "always-fails", str(inputs["hello"]), "--wait")
    running = cli.json("predict", "slow-noop", str(inputs["slow"]))

    # WHEN their status and result are asked for
    # THEN a failed one exits 1 (its reason said), one still running exits 3
    assert failed["status"] == "FAILED"
    assert cli.run("status", failed["prediction_id"]).returncode == 1
    no_result = cli.run("result", failed["prediction_id"])
    assert no_result.returncode == 1 and "ModelError" in no_result.stderr
    assert cli.run("status", running["prediction_id"]).returncode == 3
    not_yet = cli.run("result", running["prediction_id"])
    assert not_yet.returncode == 3 and "no result yet" in not_yet.stderr
    # AND an unknown prediction is a one-line error, exit 2
    unknown = cli.run("status", "p20261201000000abcdef")
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1


# -- list, cancel, upload (the API's list, cancel and upload routes) -----------------------------
def test_list_shows_ones_own_predictions_newest_first_with_filters_and_pages(
    runtime: Any, cli: Cli, inputs: dict[str, Path]
) -> None:
    # GIVEN a client of its own with three echo predictions and one of another service
    _, api_key = new_client(runtime)
    ids = [
        cli.json("predict", "echo", str(inputs["hello"]), "--wait", "--api-key", api_key)["prediction_id"]
        for _ in range(3)
    ]
    other = cli.json("predict", "always-fails", str(inputs["hello"]), "--wait", "--api-key", api_key)

    # WHEN its echo predictions are listed two at a time, then the next page
    first = cli.json("list", "--service", "echo", "--limit", "2", "--api-key", api_key)
    second = cli.json(
        "list", "--service", "echo", "--limit", "2", "--next-token", first["next_token"], "--api-key", api_key
    )
    failed = cli.json("list", "--status", "failed", "--created-after", "10m", "--api-key", api_key)
    table = cli.run("list", "--api-key", api_key)

    # THEN the pages hold its echo predictions, newest first, and the filters hold
    listed = [p["prediction_id"] for p in first["predictions"] + second["predictions"]]
    assert listed == list(reversed(ids))
    assert second["next_token"] is None
    assert [p["prediction_id"] for p in failed["predictions"]] == [other["prediction_id"]]
    # AND as text, a table with a header and one row per prediction
    assert table.returncode == 0, table
    rows = table.stdout.splitlines()
    assert rows[0].split() == ["PREDICTION", "SERVICE", "STATUS", "CREATED", "METADATA"]
    assert len(rows) == 5 and rows[1].startswith(other["prediction_id"])


def test_cancel_ends_a_prediction_cancelled_and_refuses_a_finished_one(
    api: Any, cli: Cli, inputs: dict[str, Path]
) -> None:
    # GIVEN a prediction waiting for its upload, and one that has completed
    waiting = api.submit("echo")["prediction_id"]
    completed = cli.json("predict", "echo", str(inputs["hello"]), "--wait")["prediction_id"]

    # WHEN both are cancelled
    cancelled = cli.run("cancel", waiting)
    refused = cli.run("cancel", completed)

    # THEN the first is CANCELLED (status says so, exit 1: it ended without a result)
    assert cancelled.returncode == 0, cancelled
    assert cancelled.stdout == f"prediction {waiting} is CANCELLED\n"
    assert cli.json("status", waiting)["status"] == "CANCELLED"
    assert cli.run("status", waiting).returncode == 1
    # AND the finished one is refused in one line, exit 2, and stays COMPLETED
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused
    assert "409" in refused.stderr
    assert api.status(completed)["status"] == "COMPLETED"


def test_upload_sends_the_input_of_a_prediction_waiting_for_it(api: Any, cli: Cli, inputs: dict[str, Path]) -> None:
    # GIVEN a prediction created without its input (an interrupted predict, say)
    prediction_id = api.submit("echo", content_type="application/json")["prediction_id"]

    # WHEN its input is uploaded through a new upload form, waiting for the end
    done = cli.run("upload", prediction_id, str(inputs["hello"]), "--wait", "--json")

    # THEN it completed with that input; a second upload is refused (its input was accepted)
    assert done.returncode == 0, done
    assert json.loads(done.stdout)["status"] == "COMPLETED"
    again = cli.run("upload", prediction_id, str(inputs["hello"]))
    assert again.returncode == 2 and again.stderr.count("\n") == 1, again


# -- clients and services -----------------------------------------------------------------------
def test_clients_list_shows_every_client_without_secrets_and_names_are_unique(cli: Cli) -> None:
    # GIVEN a new client
    name = unique("acme")
    created = cli.json("clients", "create", name)

    # WHEN a second client of that name is created, and the clients are listed
    duplicate = cli.run("clients", "create", name)
    listed = cli.json("clients", "list")
    table = cli.run("clients", "list")

    # THEN the duplicate is refused (exit 2, one line) and the name is listed once, without secrets
    assert duplicate.returncode == 2, duplicate
    assert duplicate.stderr == (
        f"error: a client named '{name}' already exists (`ensemble-gateway clients list` shows it): "
        "choose another name\n"
    )
    mine = [client for client in listed if client["name"] == name]
    assert mine == [{"client_id": created["client_id"], "name": name, "principal_arn": None, "webhook_secrets": 1}]
    assert created["api_key"] not in table.stdout + json.dumps(listed)
    assert created["webhook_secret"] not in table.stdout + json.dumps(listed)
    assert table.stdout.splitlines()[0].split()[:2] == ["CLIENT", "NAME"]
    assert any(line.split()[:2] == [created["client_id"], name] for line in table.stdout.splitlines())


def test_a_service_is_deactivated_activated_and_deleted(runtime: Any, cli: Cli, inputs: dict[str, Path]) -> None:
    from ensemble_gateway.adapters.dynamodb import DynamoServiceCatalog

    # GIVEN a model service of its own (the echo endpoint under another name)
    catalog = DynamoServiceCatalog(runtime.stack.outputs["ServicesTableName"], runtime.client("dynamodb"))
    echo = catalog.get("echo")
    assert echo is not None
    name = unique("echo-copy")
    catalog.put(echo.model_copy(update={"name": name}))
    try:
        # WHEN it is deactivated
        deactivated = cli.run("services", "deactivate", name)

        # THEN it is no longer listed and takes no prediction (one line, exit 2)
        assert deactivated.returncode == 0, deactivated
        assert deactivated.stdout.startswith(f"deactivated service {name}: new predictions are refused")
        assert name not in {service["name"] for service in cli.json("services", "list")}
        refused = cli.run("predict", name, str(inputs["hello"]))
        assert refused.returncode == 2 and "422 ServiceInactive" in refused.stderr, refused
        assert cli.json("services", "deactivate", name) == {
            "name": name,
            "active": False,
            "changed": False,
            "used_by": [],
        }

        # WHEN it is activated again / THEN it is listed and predicts
        assert cli.run("services", "activate", name).returncode == 0
        assert name in {service["name"] for service in cli.json("services", "list")}
        assert cli.run("predict", name, str(inputs["hello"]), "--wait").returncode == 0

        # WHEN it is deleted / THEN its entry is gone, and deactivating it is a one-line error
        deleted = cli.run("services", "delete", name)
        assert deleted.returncode == 0 and f"deleted service {name}: catalog entry removed" in deleted.stdout
        assert catalog.get(name) is None
        gone = cli.run("services", "deactivate", name)
        assert gone.returncode == 2 and gone.stderr == f"error: no service '{name}' in the catalog\n"
    finally:
        catalog.delete(name)


# -- output into a closed pipe, a gateway that is gone ------------------------------------------
def test_services_list_into_a_closed_pipe_ends_quietly(cli: Cli) -> None:
    # GIVEN a reader that has gone (as `| head -1` has once it read its line)
    process = cli.popen("services", "list", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()

    # WHEN the command writes its list
    err = process.stderr.read()
    code = process.wait(timeout=120)

    # THEN it stops quietly (141, as a tool killed by SIGPIPE), with no traceback or message
    assert code == 141, err
    assert err == ""


def test_commands_against_a_gateway_that_is_gone(bare_cli: Cli) -> None:
    # GIVEN an API address nothing listens on
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    api = ["--api-url", f"http://127.0.0.1:{port}", "--api-key", "egk_x"]

    # WHEN commands call it / THEN exit 4, one line each
    for argv in (["services", "list"], ["status", "p1"], ["list"], ["cancel", "p1"]):
        done = bare_cli.run(*argv, *api)
        assert done.returncode == 4, done
        assert done.stderr.startswith(f"error: cannot reach http://127.0.0.1:{port}/"), done
        assert done.stderr.endswith(": connection refused\n") and done.stderr.count("\n") == 1

    # AND with no API named and no runtime recorded, exit 2 and what to do
    nothing = bare_cli.run("services", "list")
    assert nothing.returncode == 2
    assert "start one with `ensemble-gateway local`" in nothing.stderr and nothing.stderr.count("\n") == 1


# -- `local` itself -----------------------------------------------------------------------------
def test_local_is_found_from_any_directory_and_shows_its_webhook_secret(trained_models: Path, tmp_path: Path) -> None:
    # GIVEN `ensemble-gateway local` started in one directory, with a per-user state directory
    state_home = tmp_path / "state-home"
    started_in, used_from = tmp_path / "project", tmp_path / "elsewhere" / "deep"
    started_in.mkdir()
    used_from.mkdir(parents=True)
    env = user_environment(state_home)
    local = Cli(started_in, env).popen(
        "local",
        "--port",
        "0",
        "--aws-port",
        "0",
        "--catalog",
        str(EXAMPLES / "catalog.json"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    lines: list[str] = []
    assert local.stdout is not None
    stdout = local.stdout
    reader = threading.Thread(target=lambda: lines.extend(iter(stdout.readline, "")), daemon=True)
    reader.start()
    state = state_home / "ensemble-gateway" / "state.json"
    client_file = state.parent / "local-client.json"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not any("Ctrl-C stops." in line for line in lines):
            assert local.poll() is None, "".join(lines)
            time.sleep(0.2)
        assert any("Ctrl-C stops." in line for line in lines), "".join(lines)

        # THEN it recorded itself in the per-user place, its client's file beside it, both owner-only
        assert stat.S_IMODE(state.stat().st_mode) == 0o600
        saved = json.loads(client_file.read_text())
        assert stat.S_IMODE(client_file.stat().st_mode) == 0o600
        # AND its banner shows the client's webhook secret
        assert f"webhooks   signed with {saved['webhook_secret']}" in "".join(lines)
        # AND a command from another directory, naming nothing, finds it
        elsewhere = Cli(used_from, env)
        services = elsewhere.json("services", "list")
        assert "vehicle-claim" in {service["name"] for service in services}
        # AND its client's name is taken, as every client's is
        taken = elsewhere.run("clients", "create", "local-user")
        assert taken.returncode == 2 and "a client named 'local-user' already exists" in taken.stderr
        # AND a second `local` recorded in the same place refuses to start
        second = elsewhere.run("local", "--port", "0", "--aws-port", "0")
        assert second.returncode == 2 and "a local runtime is already running" in second.stderr

        # WHEN it is stopped
        local.send_signal(signal.SIGTERM)
        assert local.wait(timeout=180) == 0, "".join(lines)
    finally:
        if local.poll() is None:
            local.kill()
            local.wait(30)
    reader.join(10)

    # THEN its state file is gone, its client's file stays, and commands say no runtime runs (exit 2)
    assert not state.exists() and client_file.exists()
    after = Cli(used_from, env).run("services", "list")
    assert after.returncode == 2 and "no local runtime is running" in after.stderr
    assert "Traceback" not in "".join(lines)

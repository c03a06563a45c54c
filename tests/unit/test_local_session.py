"""The local runtime's stop and restart bookkeeping, without starting it.

The local client's file (kept across restarts, owner-only), the CLI's stale state-file check,
the API front end refusing new work while the runtime drains, and the drain's wait.
"""

from __future__ import annotations

import io
import json
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ensemble_gateway import cli
from ensemble_gateway.local.api import ApiFrontEnd
from ensemble_gateway.local.deployer import EventSource, FunctionSpec
from ensemble_gateway.local.runtime import InFlight, LocalRuntime
from ensemble_gateway.local.session import (
    LocalClientCredentials,
    LocalClientFileError,
    load_local_client,
    store_local_client,
    write_private_file,
)

CREDENTIALS = LocalClientCredentials("c_0123456789abcdef", "local-user", "egk_secret-key", "whsec_c2VjcmV0")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- the local client's file ---------------------------------------------------------------
def test_the_local_client_round_trips_through_an_owner_only_file(tmp_path: Path) -> None:
    # GIVEN no .local-runtime directory yet
    path = tmp_path / ".local-runtime" / "local-client.json"

    # WHEN the local client is stored and loaded again
    store_local_client(path, CREDENTIALS)
    loaded = load_local_client(path)

    # THEN it is the same client, in a file only its owner can read, in an owner-only directory
    assert loaded == CREDENTIALS
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["local-client.json"]


def test_a_private_file_written_over_a_readable_one_becomes_owner_only(tmp_path: Path) -> None:
    # GIVEN a world-readable file in its place
    path = tmp_path / "state.json"
    path.write_text("{}")
    path.chmod(0o644)

    # WHEN it is written as a private file
    write_private_file(path, '{"api_key": "egk_x"}')

    # THEN its content is replaced and its mode is 0600
    assert json.loads(path.read_text()) == {"api_key": "egk_x"}
    assert mode(path) == 0o600


def test_a_missing_local_client_file_is_no_client(tmp_path: Path) -> None:
    # GIVEN / WHEN there is no file / THEN there is no saved client (a new one will be created)
    assert load_local_client(tmp_path / "local-client.json") is None


@pytest.mark.parametrize(
    "content",
    ["not json", "[1, 2]", '{"client_id": "c_1"}', json.dumps({**CREDENTIALS.__dict__, "api_key": ""})],
    ids=["not-json", "not-an-object", "missing-fields", "empty-key"],
)
def test_a_damaged_local_client_file_is_refused_with_its_name(tmp_path: Path, content: str) -> None:
    # GIVEN a local client file that is not one
    path = tmp_path / "local-client.json"
    path.write_text(content)

    # WHEN it is loaded / THEN the error names the file
    with pytest.raises(LocalClientFileError, match=r"local-client\.json"):
        load_local_client(path)


# -- the CLI and a stale state file ----------------------------------------------------------
@pytest.fixture
def dead_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def dead_pid() -> int:
    """The PID of a process that has exited and been reaped."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture
def listener() -> Iterator[int]:
    """A loopback port something listens on."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield int(server.getsockname()[1])


@pytest.fixture
def state_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / ".local-runtime" / "state.json"
    path.parent.mkdir()
    monkeypatch.setenv("ENSEMBLE_GATEWAY_STATE", str(path))
    return path


def test_a_recorded_runtime_whose_process_is_gone_is_not_alive(dead_pid: int, listener: int) -> None:
    # GIVEN something listening on the recorded port, but the recorded process gone (a reused port)
    state = {"api_url": f"http://127.0.0.1:{listener}", "pid": dead_pid}

    # WHEN / THEN the runtime counts as gone
    assert cli._runtime_alive(state) is False


def test_a_recorded_runtime_whose_port_refuses_is_not_alive(dead_port: int) -> None:
    # GIVEN a live process (this one) but nothing on the recorded port
    state = {"api_url": f"http://127.0.0.1:{dead_port}", "pid": os.getpid()}

    # WHEN / THEN the runtime counts as gone
    assert cli._runtime_alive(state) is False


def test_a_recorded_runtime_that_listens_is_alive(listener: int) -> None:
    # GIVEN this process listening on the recorded port / WHEN / THEN it is alive
    assert cli._runtime_alive({"api_url": f"http://127.0.0.1:{listener}", "pid": os.getpid()}) is True


def test_a_state_file_recording_only_the_aws_endpoint_is_checked_on_that_port(listener: int, dead_port: int) -> None:
    # GIVEN state files that record only the embedded AWS endpoint (operator commands need no more)
    # WHEN / THEN the endpoint's port decides
    assert cli._runtime_alive({"aws_url": f"http://127.0.0.1:{listener}"}) is True
    assert cli._runtime_alive({"aws_url": f"http://127.0.0.1:{dead_port}"}) is False
    assert cli._runtime_alive({"outputs": {}}) is False


def test_a_stale_state_file_is_removed_and_named(state_file: Path, dead_port: int, dead_pid: int) -> None:
    # GIVEN a state file left by a runtime that was killed
    state_file.write_text(json.dumps({"api_url": f"http://127.0.0.1:{dead_port}", "pid": dead_pid}))

    # WHEN the CLI looks for the local runtime
    with pytest.raises(cli.CliError) as error:
        cli._local_state()

    # THEN it says the runtime is not running and how to start it, and the file is gone
    assert str(error.value) == (
        f"the local runtime recorded in {state_file} is not running (stale state file removed); "
        "start it with `ensemble-gateway local`"
    )
    assert not state_file.exists()


def test_an_unreadable_state_file_counts_as_stale(state_file: Path) -> None:
    # GIVEN a state file cut short (the runtime was killed while writing it)
    state_file.write_text('{"api_url": "http://127.0.0.1:')

    # WHEN / THEN the CLI reports a stale state file and removes it
    with pytest.raises(cli.CliError, match="is not running"):
        cli._local_state()
    assert not state_file.exists()


def test_a_stale_state_file_does_not_stop_a_call_to_an_explicit_api(
    state_file: Path, dead_port: int, dead_pid: int
) -> None:
    # GIVEN a stale state file, and an API named on the command line
    state_file.write_text(json.dumps({"api_url": f"http://127.0.0.1:{dead_port}", "pid": dead_pid}))

    # WHEN the CLI builds its API client
    args = cli.build_parser().parse_args(["status", "p1", "--api-url", "https://api.example", "--api-key", "k"])
    api = cli._api(args)

    # THEN it targets the named API, and the stale file is cleaned up on the way
    assert api.api_url == "https://api.example"
    assert not state_file.exists()


def test_only_the_runtime_that_wrote_the_state_file_removes_it(state_file: Path) -> None:
    # GIVEN a state file written by another runtime (started later in the same directory)
    state_file.write_text(json.dumps({"api_url": "http://127.0.0.1:1", "pid": os.getpid() + 1}))

    # WHEN this one stops / THEN the other's file stays; its own would go
    cli._remove_own_state_file(state_file)
    assert state_file.exists()
    state_file.write_text(json.dumps({"api_url": "http://127.0.0.1:1", "pid": os.getpid()}))
    cli._remove_own_state_file(state_file)
    assert not state_file.exists()


@pytest.mark.parametrize("value", ["-1", "soon", "nan", "inf"])
def test_a_drain_deadline_that_is_not_seconds_is_a_usage_error(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN / WHEN `local --drain-seconds` is given something else than a number of seconds
    with pytest.raises(SystemExit) as stopped:
        cli.main(["local", "--drain-seconds", value])

    # THEN argparse answers with a usage error naming the option (no traceback)
    assert stopped.value.code == 2
    assert "--drain-seconds" in capsys.readouterr().err


# -- the API front end while draining --------------------------------------------------------
class FakeRegistry:
    """Answers every API event with 200 and records it."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def invoke(self, spec: FunctionSpec, event: dict[str, Any]) -> dict[str, Any]:
        self.events.append(event)
        return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": '{"ok": true}'}


def api_front_end(registry: FakeRegistry) -> ApiFrontEnd:
    def function(name: str, method: str, path: str) -> FunctionSpec:
        event = EventSource(name, "Api", {"Method": method, "Path": path})
        return FunctionSpec(name, name, "handler.main", {}, 30, [event])

    functions = {
        "NewPrediction": function("NewPrediction", "POST", "/predictions"),
        "Results": function("Results", "GET", "/predictions/{prediction_id}"),
    }
    return ApiFrontEnd(functions, registry, "dev")  # type: ignore[arg-type]


def call(app: ApiFrontEnd, method: str, path: str) -> tuple[str, dict[str, str], bytes]:
    answered: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answered.update(status=status, headers=dict(headers))

    body = b"".join(app({"REQUEST_METHOD": method, "PATH_INFO": path, "wsgi.input": io.BytesIO()}, start_response))
    return answered["status"], answered["headers"], body


def test_a_draining_api_refuses_new_predictions_with_503_and_retry_after() -> None:
    # GIVEN the API front end of a runtime that has started to drain (30 s deadline)
    registry = FakeRegistry()
    app = api_front_end(registry)
    app.close_intake(30)

    # WHEN a prediction is requested
    status, headers, body = call(app, "POST", "/predictions")

    # THEN it is refused before any handler runs, in the gateway's error shape, with Retry-After
    assert status == "503 Service Unavailable"
    assert 1 <= int(headers["Retry-After"]) <= 30
    document = json.loads(body)
    assert set(document) == {"code", "message"}
    assert document["code"] == "ServiceUnavailable"
    assert "shutting down" in document["message"]
    assert registry.events == []


def test_a_draining_api_still_answers_polls() -> None:
    # GIVEN a draining API front end
    registry = FakeRegistry()
    app = api_front_end(registry)
    app.close_intake(30)

    # WHEN an accepted prediction is polled
    status, _, _ = call(app, "GET", "/predictions/p1")

    # THEN the results handler answers it
    assert status.startswith("200")
    assert [event["pathParameters"] for event in registry.events] == [{"prediction_id": "p1"}]


def test_an_open_api_serves_new_predictions() -> None:
    # GIVEN an API front end that is not draining / WHEN a prediction is requested / THEN it is served
    registry = FakeRegistry()
    status, _, _ = call(api_front_end(registry), "POST", "/predictions")
    assert status.startswith("200") and len(registry.events) == 1


# -- the drain's wait ------------------------------------------------------------------------
class FakeDrainingRuntime(LocalRuntime):
    """A runtime whose in-flight work follows a script, one entry per look."""

    def __init__(self, script: list[InFlight]) -> None:
        super().__init__(Path("."))
        self.script = script
        self.looks = 0
        self.intake_closed_for: float | None = None

    def close_intake(self, retry_after: float) -> None:
        self.intake_closed_for = retry_after

    def in_flight(self) -> InFlight:
        self.looks += 1
        return self.script[min(self.looks, len(self.script)) - 1]


RUNNING = InFlight(running=("p1", "p2"))
WEBHOOK = InFlight(events_queued=1, webhooks_queued=1)
IDLE = InFlight(awaiting_upload=3)


def test_the_drain_waits_for_running_predictions_and_their_webhooks() -> None:
    # GIVEN two predictions running, then their webhooks queued, then nothing left
    runtime = FakeDrainingRuntime([RUNNING, RUNNING, WEBHOOK, IDLE])
    progress: list[InFlight] = []

    # WHEN the runtime drains
    report = runtime.drain(30, on_progress=lambda left, _: progress.append(left), poll_seconds=0.01)

    # THEN intake closed first, the drain ended once idle was seen twice, and both finished;
    # predictions waiting for an upload did not hold it up
    assert runtime.intake_closed_for == 30
    assert report.outcome == "drained"
    assert report.finished == ["p1", "p2"]
    assert runtime.looks == 5
    assert progress[0] == RUNNING
    assert report.left.awaiting_upload == 3


def test_the_drain_gives_up_at_its_deadline() -> None:
    # GIVEN a prediction that never finishes
    runtime = FakeDrainingRuntime([InFlight(running=("p1",))])

    # WHEN the runtime drains with a short deadline
    report = runtime.drain(0.2, poll_seconds=0.01)

    # THEN the deadline ends it, naming what is left
    assert report.outcome == "deadline"
    assert report.left.running == ("p1",)
    assert report.finished == []
    assert report.seconds >= 0.2


def test_the_drain_stops_at_once_when_interrupted() -> None:
    # GIVEN a prediction that never finishes, and a second Ctrl-C after two looks
    runtime = FakeDrainingRuntime([InFlight(running=("p1",))])

    # WHEN the runtime drains
    report = runtime.drain(60, interrupted=lambda: runtime.looks >= 2, poll_seconds=0.01)

    # THEN it stops waiting long before the deadline
    assert report.outcome == "interrupted"
    assert report.seconds < 5


def test_the_drain_says_what_it_did(capsys: pytest.CaptureFixture[str]) -> None:
    from ensemble_gateway.local.session import LocalSession

    # GIVEN a session whose runtime has one prediction running and one waiting for its upload
    session = LocalSession(stream=sys.stdout)
    # (and, by the end, two more accepted by requests that were inside the API when intake closed)
    session.runtime = FakeDrainingRuntime([InFlight(running=("p1",), awaiting_upload=1), InFlight(awaiting_upload=3)])

    # WHEN it drains
    session.drain(30)

    # THEN it says what was in flight, what is not drained, and that the drain finished
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "draining: 1 prediction in flight (1 running); new predictions get 503; up to 30 s"
    assert lines[1] == "not drained: 3 accepted predictions still waiting for an upload (lost when the runtime stops)"
    assert lines[2].startswith("drained in ") and lines[2].endswith(": 1 prediction finished, every webhook sent")


def test_an_api_that_is_not_there_is_an_error_message_not_a_connection_traceback(dead_port: int) -> None:
    from ensemble_gateway.client import GatewayClient, GatewayClientError

    # GIVEN a client of an API nothing listens for (a local runtime that has stopped)
    api = GatewayClient(f"http://127.0.0.1:{dead_port}", "egk_key")

    # WHEN it is called / THEN it raises the client's error, which the CLI prints as one line
    with pytest.raises(GatewayClientError) as error:
        api.services()
    assert str(error.value) == f"cannot reach http://127.0.0.1:{dead_port}/services: connection refused"

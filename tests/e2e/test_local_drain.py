"""`ensemble-gateway local` stops without losing work, and restarts with the same API key.

Each test runs the CLI as a user would, in a process of its own with a directory of its own, and
talks to it over HTTP on 127.0.0.1: SIGTERM or Ctrl-C closes intake (503 with Retry-After) and
drains what is in flight, webhooks included, before the process exits; a second Ctrl-C stops at
once; a state file left by a killed runtime gets a message, not a traceback.

The figures go to the fault-injection summary (``FAULT_FIGURES`` in tests/conftest.py).
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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from conftest import FAULT_FIGURES, ROOT
from ensemble_gateway.client import GatewayClient

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

TERMINAL = ("COMPLETED", "FAILED", "EXPIRED", "CANCELLED")
# Generous: the machine running the suite may be small and busy.
READY_SECONDS = 240
EXIT_SECONDS = 180
LOST = "lost across a drained stop (must be 0)"
WEBHOOKS_MISSED = "webhooks unsent at a drained stop (must be 0)"
for _figure in ("predictions in flight at a drained stop", LOST, WEBHOOKS_MISSED):
    FAULT_FIGURES.setdefault(_figure, 0)


def count(name: str, amount: int = 1) -> None:
    FAULT_FIGURES[name] = FAULT_FIGURES.get(name, 0) + amount


def user_environment(state_dir: Path) -> dict[str, str]:
    """A user's shell: none of the variables a runtime in the test process may have set."""
    from ensemble_gateway.settings import Settings

    settings = {field.alias for field in Settings.model_fields.values()}
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_", "POWERTOOLS_")) and k not in settings
    }
    env["ENSEMBLE_GATEWAY_STATE"] = str(state_dir / "state.json")
    return env


class LocalProcess:
    """`ensemble-gateway local` in a subprocess, its output collected all along."""

    def __init__(self, directory: Path, *extra: str) -> None:
        self.directory = directory
        self.state_path = directory / ".local-runtime" / "state.json"
        self.process = subprocess.Popen(
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
                *extra,
            ],
            cwd=directory,
            env=user_environment(self.state_path.parent),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        assert self.process.stdout is not None
        stdout = self.process.stdout
        # Read all along: a child blocked on a full pipe could not stop.
        self.reader = threading.Thread(target=lambda: self.lines.extend(iter(stdout.readline, "")), daemon=True)
        self.reader.start()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for_line(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"no line with {text!r} within {timeout:.0f} s; it printed:\n{self.output}")

    def ready(self) -> dict[str, Any]:
        self.wait_for_line("Ctrl-C stops.", READY_SECONDS)
        return dict(json.loads(self.state_path.read_text()))

    def wait(self, timeout: float = EXIT_SECONDS) -> int:
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(
                f"still running {timeout:.0f} s after the signal; it printed:\n{self.output}"
            ) from None
        self.reader.join(10)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)


@pytest.fixture
def start_local(trained_models: Path, tmp_path: Path) -> Iterator[Any]:
    started: list[LocalProcess] = []

    def start(*extra: str) -> LocalProcess:
        started.append(LocalProcess(tmp_path, *extra))
        return started[-1]

    try:
        yield start
    finally:
        for local in started:
            local.kill()


def post_prediction(api_url: str, api_key: str) -> requests.Response:
    return requests.post(
        f"{api_url}/predictions",
        json={"service": "echo"},
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=30,
    )


def wait_until_refused(api_url: str, api_key: str, timeout: float = 60) -> tuple[requests.Response, int]:
    """Post predictions until the API refuses one (the signal is handled asynchronously).

    Returns the refusal and how many were accepted before it (none uploads their input).
    """
    deadline = time.monotonic() + timeout
    accepted = 0
    while time.monotonic() < deadline:
        answer = post_prediction(api_url, api_key)
        if answer.status_code >= 300:
            return answer, accepted
        accepted += 1
        time.sleep(0.05)
    raise AssertionError(f"new predictions still accepted {timeout:.0f} s after the signal")


def plural(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_refuses_new_predictions_and_drains_the_running_ones(
    start_local: Any, webhook_receiver: Any, signum: int
) -> None:
    # GIVEN a local runtime with a prediction running (a model that takes a while) that asked
    # for a webhook, and another accepted whose input was never uploaded
    local = start_local("--drain-seconds", "150")
    state = local.ready()
    api = GatewayClient(state["api_url"], state["api_key"])
    accepted = api.submit("slow-noop", webhook_url=webhook_receiver.url)
    api.upload(accepted["upload"], b'{"sleep_ms": 8000}', "application/json")
    prediction_id = accepted["prediction_id"]
    api.submit("echo")
    deadline = time.monotonic() + 60
    while api.status(prediction_id)["status"] != "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert api.status(prediction_id)["status"] == "RUNNING"

    # WHEN the process is asked to stop
    local.process.send_signal(signum)

    # THEN a new prediction is refused with 503, Retry-After and the gateway's error document,
    # while the running one can still be polled
    refused, accepted_meanwhile = wait_until_refused(state["api_url"], state["api_key"])
    polled = api.status(prediction_id)
    assert refused.status_code == 503, refused.text
    assert int(refused.headers["Retry-After"]) >= 1
    document = refused.json()
    assert set(document) == {"code", "message"} and document["code"] == "ServiceUnavailable"
    assert polled["prediction_id"] == prediction_id
    # AND the process exits 0 once the prediction has finished and its webhook was delivered
    code = local.wait()
    delivered = webhook_receiver.delivered(prediction_id)
    count("predictions in flight at a drained stop")
    statuses = [json.loads(hook["body"])["data"]["status"] for hook in delivered]
    if not any(status in TERMINAL for status in statuses):
        count(LOST)
    if not delivered:
        count(WEBHOOKS_MISSED)
    assert code == 0, local.output
    assert statuses == ["COMPLETED"], local.output
    # AND it said what it drained and what it did not, and left no state file (nor a traceback)
    output = local.output
    assert "draining: 1 prediction in flight (1 running)" in output
    waiting = plural(1 + accepted_meanwhile, "accepted prediction")
    assert f"not drained: {waiting} still waiting for an upload" in output
    assert "drained in " in output and ": 1 prediction finished, every webhook sent" in output
    assert "Traceback" not in output
    assert not local.state_path.exists()


def test_a_second_ctrl_c_during_the_drain_stops_at_once(start_local: Any) -> None:
    # GIVEN a local runtime draining a prediction that would take minutes
    local = start_local("--drain-seconds", "300")
    state = local.ready()
    api = GatewayClient(state["api_url"], state["api_key"])
    accepted = api.submit("slow-noop")
    api.upload(accepted["upload"], b'{"sleep_ms": 240000}', "application/json")
    deadline = time.monotonic() + 60
    while api.status(accepted["prediction_id"])["status"] != "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.1)
    local.process.send_signal(signal.SIGINT)
    local.wait_for_line("draining: 1 prediction in flight (1 running)", 60)

    # WHEN Ctrl-C is pressed again
    pressed = time.monotonic()
    local.process.send_signal(signal.SIGINT)
    code = local.wait(timeout=60)

    # THEN it stops at once, 130 (128 + SIGINT), saying what it abandoned, with no traceback and
    # no state file left behind
    assert time.monotonic() - pressed < 30
    assert code == 130, local.output
    assert "Ctrl-C again: stopped at once (1 prediction in flight abandoned)" in local.output
    assert "Traceback" not in local.output
    assert not local.state_path.exists()


def test_a_restart_keeps_the_local_clients_api_key_and_nothing_else(start_local: Any) -> None:
    # GIVEN a local runtime that has served a prediction, stopped with SIGTERM
    first = start_local()
    state = first.ready()
    client_file = first.state_path.parent / "local-client.json"
    saved = json.loads(client_file.read_text())
    old = GatewayClient(state["api_url"], state["api_key"]).predict("echo", b'{"hi": 1}', timeout=60)
    first.process.send_signal(signal.SIGTERM)
    assert first.wait() == 0, first.output

    # WHEN it is started again in the same directory
    second = start_local()
    restarted = second.ready()

    # THEN the same client is back: same ID, API key and webhook secret, and the key authenticates
    assert restarted["api_key"] == state["api_key"] == saved["api_key"]
    assert restarted["client_id"] == saved["client_id"]
    assert json.loads(client_file.read_text()) == saved
    assert stat.S_IMODE(client_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(second.state_path.stat().st_mode) == 0o600
    assert "restored from" in second.output
    api = GatewayClient(restarted["api_url"], saved["api_key"])
    assert "echo" in {service["name"] for service in api.services()}
    # AND what lived in memory is gone: the first run's prediction is unknown
    unknown = requests.get(
        f"{restarted['api_url']}/predictions/{old['prediction_id']}",
        headers={"Authorization": f"Bearer {saved['api_key']}"},
        timeout=30,
    )
    assert old["status"] == "COMPLETED" and unknown.status_code == 404
    second.process.send_signal(signal.SIGTERM)
    assert second.wait() == 0, second.output


@pytest.fixture
def stale_state(tmp_path: Path) -> Path:
    """A state file left by a runtime that was killed: its process and its port are gone."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    path = tmp_path / ".local-runtime" / "state.json"
    path.parent.mkdir()
    path.write_text(
        json.dumps(
            {
                "api_url": f"http://127.0.0.1:{port}",
                "aws_url": f"http://127.0.0.1:{port}",
                "stack_name": "ensemble-gateway",
                "outputs": {"ClientsTableName": "clients", "ServicesTableName": "services"},
                "api_key": "egk_gone",
                "pid": gone.pid,
            }
        )
    )
    return path


@pytest.mark.parametrize(
    "command",
    [["services", "list"], ["status", "p20261201000000abcdef"], ["clients", "create", "acme"]],
    ids=["services-list", "status", "clients-create"],
)
def test_a_stale_state_file_gets_a_message_not_a_traceback(stale_state: Path, command: list[str]) -> None:
    # GIVEN the state file of a local runtime that is gone
    # WHEN a CLI command that needs the local runtime runs
    done = subprocess.run(
        [sys.executable, "-m", "ensemble_gateway.cli", *command],
        cwd=stale_state.parent.parent,
        env=user_environment(stale_state.parent),
        capture_output=True,
        text=True,
        timeout=120,
    )

    # THEN it exits non-zero with a message saying so and what to do, and removed the stale file
    assert done.returncode == 2, done
    assert done.stderr == (
        f"error: the local runtime recorded in {stale_state} is not running (stale state file removed); "
        "start it with `ensemble-gateway local`\n"
    )
    assert "Traceback" not in done.stderr + done.stdout
    assert not stale_state.exists()

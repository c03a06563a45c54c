# ruff: noqa: F811  # the fixtures imported from test_cli are the tests' parameters of the same name
"""``ensemble-gateway batch`` as a user runs it: a process of its own, outside the checkout, against the
session's local runtime (tests/conftest.py), which drives the batch with the real handlers.

Needs the API's ``POST /batches``, ``GET /batches/{id}`` and ``POST /batches/{id}/cancel`` and the
batch driver. The CLI fixtures (the per-user state file, the working directory) are test_cli.py's.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from test_cli import Cli, cli, elsewhere, state_home  # noqa: F401  # the CLI fixtures

from conftest import EXAMPLES

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and pipes")


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def result_lines(cli: Cli, batch_id: str, target: Path, timeout: float = 120) -> list[dict[str, Any]]:
    """The batch's result file, once written (``batch result`` exits 3 until then)."""
    deadline = time.monotonic() + timeout
    while True:
        done = cli.run("batch", "result", batch_id, "-o", target.name)
        if done.returncode != 3 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert done.returncode == 0, done
    return [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]


def test_fifty_lines_with_wait_come_back_in_order_with_the_bad_line_reported_in_its_line(
    cli: Cli, elsewhere: Path
) -> None:
    # GIVEN 50 echo inputs, line 17 not JSON
    lines = [json.dumps({"n": n}) for n in range(1, 51)]
    lines[16] = '{"n": 17'
    write_lines(elsewhere / "fifty.jsonl", lines)

    # WHEN they are sent as one batch with --wait (one failure tolerated: 2%)
    done = cli.run(
        "batch",
        "echo",
        "fifty.jsonl",
        "--wait",
        "--max-concurrency",
        "5",
        "--tolerated-failure-percent",
        "5",
        "--metadata",
        "run=e2e",
        timeout=300,
    )

    # THEN it ends COMPLETED_WITH_FAILURES (exit 1): 49 completed, 1 failed, the summary on stdout
    assert done.returncode == 1, done
    summary = done.stdout.splitlines()
    batch_id = summary[0].split()[1]
    assert summary[2].split()[1] == "COMPLETED_WITH_FAILURES", done.stdout
    assert "items        50: 49 completed, 1 failed, 0 cancelled" in summary
    # AND the progress went to stderr, counting out of 50 up to 50/50
    progress = [line for line in done.stderr.splitlines() if line.startswith(f"{batch_id} ")]
    assert progress and progress[-1].split("  ")[2] == "50/50", done.stderr
    assert "items/s" in progress[-1] and "ETA" in progress[-1]

    # AND the result file has one line per input line, in input order, the bad one failed alone
    results = result_lines(cli, batch_id, elsewhere / "results.jsonl")
    assert [r["line"] for r in results] == list(range(1, 51))
    assert [r["prediction_id"] for r in results] == [f"{batch_id}-{n:06d}" for n in range(1, 51)]
    assert [r["line"] for r in results if r["status"] != "COMPLETED"] == [17]
    assert results[16]["status"] == "FAILED" and results[16]["error"]["code"] == "InvalidLine"
    assert results[16]["error"]["message"]
    assert "output" not in results[16]
    outputs = [r["output"] for r in results if r["status"] == "COMPLETED"]
    assert [output["echo"]["n"] for output in outputs] == [n for n in range(1, 51) if n != 17]

    # AND each item is the client's prediction, carrying the batch's metadata, its ID and its line
    item = cli.json("status", f"{batch_id}-000003")
    assert item["metadata"] == {"run": "e2e", "batch_id": batch_id, "line": "3"}
    # AND the batch's status says the same, exit 1
    status = cli.run("batch", "status", batch_id, "--json")
    assert status.returncode == 1 and json.loads(status.stdout)["counts"]["failed"] == 1


def test_a_line_larger_than_the_service_takes_fails_alone(cli: Cli, elsewhere: Path) -> None:
    # GIVEN complaint-triage (64 KiB per input): three complaints, the second too large
    sample = json.dumps(json.loads((EXAMPLES / "complaint-triage/samples/card-fraud.json").read_text()))
    lines = [sample, json.dumps({"text": "x" * 70_000}), sample]
    write_lines(elsewhere / "three.jsonl", lines)

    # WHEN the batch runs to its end (a third of it may fail)
    done = cli.run("batch", "complaint-triage", "three.jsonl", "--wait", "--tolerated-failure-percent", "50")

    # THEN lines 1 and 3 completed, line 2 failed for its size
    assert done.returncode == 1, done
    batch_id = done.stdout.split()[1]
    results = result_lines(cli, batch_id, elsewhere / "triage.jsonl")
    assert [(r["line"], r["status"]) for r in results] == [(1, "COMPLETED"), (2, "FAILED"), (3, "COMPLETED")]
    assert results[0]["output"] and results[2]["output"] == results[0]["output"]
    assert results[1]["error"]["code"] == "LineTooLarge" and "output" not in results[1]


def test_cancel_stops_a_batch_and_the_lines_never_started_are_cancelled(cli: Cli, elsewhere: Path) -> None:
    # GIVEN a batch of 20 slow items, one at a time
    write_lines(elsewhere / "slow.jsonl", [json.dumps({"sleep_ms": 1500})] * 20)
    submitted = cli.run("batch", "slow-noop", "slow.jsonl", "--max-concurrency", "1")
    assert submitted.returncode == 0, submitted
    batch_id = submitted.stdout.strip()
    deadline = time.monotonic() + 60
    while cli.run("batch", "status", batch_id).stdout.count("RUNNING") == 0 and time.monotonic() < deadline:
        time.sleep(0.3)

    # WHEN it is cancelled, then cancelled again
    cancelled = cli.run("batch", "cancel", batch_id)
    again = cli.run("batch", "cancel", batch_id)

    # THEN it is CANCELLED (exit 0), and cancelling again answers the same (as for predictions)
    assert cancelled.returncode == 0, cancelled
    assert cancelled.stdout.startswith(f"batch {batch_id} is CANCELLED")
    assert again.returncode == 0 and again.stdout == cancelled.stdout, again
    # AND once written, the result has all 20 lines, most never started: CANCELLED with a reason
    results = result_lines(cli, batch_id, elsewhere / "cancelled.jsonl")
    assert [r["line"] for r in results] == list(range(1, 21))
    never = [r for r in results if r["status"] == "CANCELLED"]
    assert len(never) >= 15
    assert all(r["error"]["code"] in ("NotStarted", "Cancelled") and r["error"]["message"] for r in never)
    assert sum(r["error"]["code"] == "NotStarted" for r in never) >= 15
    status = cli.run("batch", "status", batch_id)
    assert status.returncode == 1 and "CANCELLED" in status.stdout


def test_a_batch_that_has_ended_cannot_be_cancelled(cli: Cli, elsewhere: Path) -> None:
    # GIVEN a batch that completed
    write_lines(elsewhere / "two.jsonl", ['{"a": 1}', '{"a": 2}'])
    done = cli.run("batch", "echo", "two.jsonl", "--wait")
    assert done.returncode == 0, done
    batch_id = done.stdout.split()[1]

    # WHEN / THEN cancelling it is a one-line 409 (exit 2), and it stays COMPLETED
    refused = cli.run("batch", "cancel", batch_id)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "409" in refused.stderr, refused
    assert cli.run("batch", "status", batch_id).returncode == 0


def test_ctrl_c_stops_the_waiting_and_batch_status_wait_resumes_it(cli: Cli, elsewhere: Path) -> None:
    # GIVEN a batch being waited for (SIGINT as a terminal's Ctrl-C delivers it)
    write_lines(elsewhere / "six.jsonl", [json.dumps({"sleep_ms": 800})] * 6)
    process = cli.popen(
        "batch",
        "slow-noop",
        "six.jsonl",
        "--wait",
        "--max-concurrency",
        "2",
        "--progress-interval",
        "0.5",
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
        while time.monotonic() < deadline and not any(" RUNNING " in line for line in lines):
            time.sleep(0.1)
        assert any(" RUNNING " in line for line in lines), lines

        # WHEN Ctrl-C is pressed
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=30)
        reader.join(10)
    finally:
        if process.poll() is None:
            process.kill()

    # THEN exit 130, and the last line says the batch goes on and how to watch it again
    assert code == 130, lines
    batch_id = lines[0].split()[1].rstrip(":")
    assert lines[-1].startswith(f"interrupted: batch {batch_id} keeps running"), lines
    assert f"`ensemble-gateway batch status {batch_id} --wait`" in lines[-1]
    assert not any("Traceback" in line for line in lines)
    # AND watching it again follows it to its end: every item completed (none was cancelled)
    resumed = cli.run("batch", "status", batch_id, "--wait", timeout=120)
    assert resumed.returncode == 0, resumed
    assert "items        6: 6 completed, 0 failed, 0 cancelled" in resumed.stdout

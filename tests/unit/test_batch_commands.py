"""``ensemble-gateway batch``: its arguments, and what its commands call, print and exit with.

Against a fake gateway: the real :class:`GatewayClient` with its HTTP calls replaced (``wait_batch``
is the real one). The client's HTTP is in test_batch_client.py; the whole command against the
local runtime, as a subprocess, in tests/e2e/test_batch_cli.py.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ensemble_gateway import batch_cli, cli
from ensemble_gateway.batch_cli import BatchProgress, batch_argv, items_done
from ensemble_gateway.client import GatewayClient, GatewayClientError, GatewayUnreachableError

RESULT = b'{"line": 1, "prediction_id": "b1-000001", "status": "COMPLETED", "output": {"ok": true}}\n'


def document(status: str, done: int = 0, total: int = 3, failed: int = 0, **fields: Any) -> dict[str, Any]:
    return {
        "batch_id": "b1",
        "service": "echo",
        "status": status,
        "counts": {
            "total": total,
            "pending": total - done,
            "running": 0,
            "completed": done - failed,
            "failed": failed,
            "cancelled": 0,
        },
        "created_at": "2026-12-01T10:00:00Z",
        "started_at": "2026-12-01T10:00:01Z",
        "max_concurrency": 10,
        "tolerated_failure_percent": 0,
        "metadata": {},
        **fields,
    }


FINISHED = {"finished_at": "2026-12-01T10:00:11Z", "result": {"url": "u", "expires_at": "2026-12-01T11:00:11Z"}}


class FakeGatewayClient(GatewayClient):
    """A gateway whose batch documents follow a script (one per poll); it records every call."""

    def __init__(self, statuses: list[dict[str, Any]]) -> None:
        super().__init__("http://gateway.invalid", "egk_fake")
        self.statuses = statuses
        self.calls: list[str] = []
        self.submitted: dict[str, Any] = {}
        self.upload: dict[str, Any] | None = {"url": "u", "fields": {}, "max_bytes": 1 << 20}
        self.upload_error: Exception | None = None
        self.on_poll: Callable[[int], None] | None = None
        self.cancel_error: Exception | None = None

    def submit_batch(self, service: str, **fields: Any) -> dict[str, Any]:
        self.calls.append(f"submit {service}")
        self.submitted = fields
        return {"batch_id": "b1", "service": service, "status": "PENDING_UPLOAD", "upload": self.upload}

    def upload_manifest(self, upload: dict[str, Any], data: bytes) -> None:
        self.calls.append(f"upload {len(data)}")
        if self.upload_error is not None:
            raise self.upload_error

    def batch(self, batch_id: str) -> dict[str, Any]:
        polls = sum(1 for call in self.calls if call.startswith("batch "))
        self.calls.append(f"batch {batch_id}")
        if self.on_poll is not None:
            self.on_poll(polls)
        return self.statuses[min(polls, len(self.statuses) - 1)]

    def wait_batch(self, batch_id: str, **options: Any) -> dict[str, Any]:
        return super().wait_batch(batch_id, **{**options, "interval": 0.0, "max_interval": 0.0})

    def cancel_batch(self, batch_id: str) -> dict[str, Any]:
        self.calls.append(f"cancel {batch_id}")
        if self.cancel_error is not None:
            raise self.cancel_error
        return document("CANCELLED", error={"code": "Cancelled", "message": "cancelled by its owner"})

    def download_to(self, document: dict[str, Any], target: Any, chunk_size: int = 1 << 16) -> int:
        self.calls.append("download")
        target.write(RESULT)
        return len(RESULT)


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch) -> Callable[[list[dict[str, Any]]], FakeGatewayClient]:
    """Point the CLI at a fake gateway (and nothing at a local runtime)."""

    def install(statuses: list[dict[str, Any]]) -> FakeGatewayClient:
        fake = FakeGatewayClient(statuses)
        monkeypatch.setattr(cli, "_api_target", lambda args: (fake, None))
        return fake

    return install


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text('{"text": "a"}\n{"text": "b"}\nnot json\n')
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- argv and arguments -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["batch", "echo", "in.jsonl"], ["batch", "submit", "echo", "in.jsonl"]),
        (["batch", "echo", "in.jsonl", "--wait"], ["batch", "submit", "echo", "in.jsonl", "--wait"]),
        (["batch", "submit", "status", "in.jsonl"], ["batch", "submit", "status", "in.jsonl"]),
        (["batch", "status", "b1"], ["batch", "status", "b1"]),
        (["batch", "--api-url", "http://x", "status", "b1"], ["batch", "status", "--api-url", "http://x", "b1"]),
        (["batch", "--json", "cancel", "b1"], ["batch", "cancel", "--json", "b1"]),
        (["batch", "--max-concurrency", "5", "echo", "f"], ["batch", "submit", "--max-concurrency", "5", "echo", "f"]),
        (["batch", "-h"], ["batch", "-h"]),
        (["batch"], ["batch"]),
        (["predict", "echo", "status"], ["predict", "echo", "status"]),
    ],
)
def test_batch_service_file_needs_no_verb(argv: list[str], expected: list[str]) -> None:
    assert batch_argv(argv) == expected


def test_the_exit_statuses_are_the_clis() -> None:
    assert (batch_cli.EXIT_OK, batch_cli.EXIT_FAILED, batch_cli.EXIT_USAGE) == (cli.EXIT_OK, cli.EXIT_FAILED, 2)
    assert (batch_cli.EXIT_RUNNING, batch_cli.EXIT_UNREACHABLE, batch_cli.EXIT_INTERRUPTED) == (
        cli.EXIT_RUNNING,
        cli.EXIT_UNREACHABLE,
        cli.EXIT_INTERRUPTED,
    )


def test_the_help_documents_the_batch_exit_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    top = capsys.readouterr().out
    assert "COMPLETED_WITH_FAILURES, FAILED or CANCELLED" in top and "batch" in top
    with pytest.raises(SystemExit):
        cli.main(["batch", "--help"])
    shown = capsys.readouterr().out
    assert "ensemble-gateway batch [submit] SERVICE FILE.jsonl [--wait]" in shown
    assert "130  Ctrl-C: the batch keeps running" in shown


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--max-concurrency", "0", "must be from 1 to 100, got 0"),
        ("--max-concurrency", "101", "must be from 1 to 100, got 101"),
        ("--max-concurrency", "ten", "'ten' is not a whole number"),
        ("--tolerated-failure-percent", "101", "must be from 0 to 100"),
        ("--tolerated-failure-percent", "2.5", "'2.5' is not a whole percentage"),
        ("--tolerated-failure-percent", "-1", "must be from 0 to 100"),
        ("--metadata", "novalue", "takes KEY=VALUE"),
        ("--metadata", "batch_id=x", "'batch_id' is set on every item by the gateway"),
        ("--metadata", "line=3", "'line' is set on every item by the gateway"),
    ],
)
def test_bad_arguments_are_usage_errors(
    gateway: Any, manifest: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, message: str
) -> None:
    fake = gateway([document("RUNNING")])
    with pytest.raises(SystemExit) as exited:
        cli.main(["batch", "echo", str(manifest), option, value])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
    assert fake.calls == []


# -- submit -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["missing", "directory", "empty", "blank"])
def test_a_manifest_that_cannot_be_read_creates_no_batch(
    gateway: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    # GIVEN a manifest that is missing, a directory, empty or only blank lines
    fake = gateway([document("RUNNING")])
    path = tmp_path / "in.jsonl"
    if kind == "directory":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "blank":
        path.write_bytes(b"\n\n")

    # WHEN it is submitted
    code, out, err = run(capsys, "batch", "echo", str(path), "--wait")

    # THEN exit 2, one line saying what is wrong, and nothing was asked of the gateway
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert {"missing": "No such file", "directory": "a directory", "empty": "is empty", "blank": "is empty"}[
        kind
    ] in err
    assert fake.calls == []


def test_a_manifest_of_too_many_lines_is_refused_first(
    gateway: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = gateway([document("RUNNING")])
    path = tmp_path / "big.jsonl"
    path.write_bytes(b"{}\n" * 100_001)
    code, _, err = run(capsys, "batch", "echo", str(path))
    assert code == 2 and "has 100,001 lines; a batch takes at most 100,000: split it" in err
    assert fake.calls == []


def test_submit_prints_the_batch_id_and_how_to_watch_it(
    gateway: Any, manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a manifest of three lines (one of them not JSON: the gateway's to report, in its line)
    fake = gateway([document("RUNNING")])

    # WHEN it is submitted with options
    code, out, err = run(
        capsys,
        "batch",
        "echo",
        str(manifest),
        "--max-concurrency",
        "4",
        "--tolerated-failure-percent",
        "50",
        "--metadata",
        "run=nightly",
        "--idempotency-key",
        "k1",
    )

    # THEN exit 0, the batch ID alone on stdout, how to watch it on stderr
    assert code == 0, err
    assert out == "b1\n"
    assert "3 lines submitted to echo" in err and "`ensemble-gateway batch status b1 --wait`" in err
    # AND the options went to the API as its fields, the whole file to the form
    assert fake.calls == ["submit echo", f"upload {manifest.stat().st_size}"]
    assert fake.submitted == {
        "content_type": None,
        "max_concurrency": 4,
        "tolerated_failure_percent": 50,
        "webhook_url": None,
        "metadata": {"run": "nightly"},
        "idempotency_key": "k1",
    }


def test_submit_json_prints_the_batch_document(
    gateway: Any, manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gateway([document("RUNNING")])
    code, out, _ = run(capsys, "batch", "echo", str(manifest), "--json")
    assert code == 0 and json.loads(out)["status"] == "RUNNING"


def test_a_replayed_batch_uploads_nothing_again(
    gateway: Any, manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = gateway([document("RUNNING")])
    fake.upload = None
    code, out, err = run(capsys, "batch", "echo", str(manifest), "--idempotency-key", "k1")
    assert code == 0 and out == "b1\n"
    assert "already submitted with this idempotency key: nothing uploaded again" in err
    assert not any(call.startswith("upload") for call in fake.calls)


def test_a_manifest_larger_than_the_form_takes_is_refused_and_the_batch_cancelled(
    gateway: Any, manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = gateway([document("PENDING_UPLOAD")])
    fake.upload = {"url": "u", "fields": {}, "max_bytes": 10}
    code, _, err = run(capsys, "batch", "echo", str(manifest))
    assert code == 2 and "a manifest upload takes at most 10 (batch b1 cancelled)" in err
    assert fake.calls == ["submit echo", "cancel b1"]


@pytest.mark.parametrize(("status", "exit_code"), [(403, 2), (503, 4)])
def test_a_refused_upload_says_the_batch_exists_and_how_to_retry(
    gateway: Any, manifest: Path, capsys: pytest.CaptureFixture[str], status: int, exit_code: int
) -> None:
    fake = gateway([document("PENDING_UPLOAD")])
    fake.upload_error = GatewayClientError(status, "AccessDenied", "Policy expired")
    code, _, err = run(capsys, "batch", "echo", str(manifest))
    assert code == exit_code
    assert err.startswith("error: batch b1 was created but its manifest was not uploaded")
    assert "same --idempotency-key" in err and err.count("\n") == 1


# -- --wait ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("final", "exit_code"),
    [
        (document("COMPLETED", 3, **FINISHED), 0),
        (document("COMPLETED_WITH_FAILURES", 3, failed=1, **FINISHED), 1),
        (document("FAILED", 3, failed=3, error={"code": "TooManyFailures", "message": "3 of 3"}, **FINISHED), 1),
        (document("CANCELLED", 1, error={"code": "Cancelled", "message": "by its owner"}, **FINISHED), 1),
    ],
)
def test_wait_shows_progress_then_the_summary_and_exits_by_how_the_batch_ended(
    gateway: Any, manifest: Path, capsys: pytest.CaptureFixture[str], final: dict[str, Any], exit_code: int
) -> None:
    # GIVEN a batch that runs two polls, then ends
    gateway([document("PENDING_UPLOAD", 0, total=0), document("RUNNING", 1), final])

    # WHEN it is submitted with --wait
    code, out, err = run(capsys, "batch", "echo", str(manifest), "--wait")

    # THEN the exit status says how it ended, the summary is on stdout
    assert code == exit_code, err
    lines = out.splitlines()
    assert lines[0] == "batch        b1"
    assert f"status       {final['status']} after 10.0 s" in lines
    assert "`ensemble-gateway batch result b1 -o results.jsonl`" in out
    if final.get("error"):
        assert f"error        {final['error']['code']}: {final['error']['message']}" in lines
    # AND the progress lines are on stderr (not a terminal: one per status change here), the last one final
    progress = [line for line in err.splitlines() if line.startswith("b1 ")]
    assert progress[0].startswith("b1 PENDING_UPLOAD  [") and "0 done" in progress[0]
    assert (
        progress[-1].startswith(f"b1 {final['status']}")
        and f"{final['counts']['completed'] + final['counts']['failed']}/3" in progress[-1]
    )


def test_ctrl_c_while_waiting_stops_the_waiting_not_the_batch(
    gateway: Any, manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a batch being waited for
    fake = gateway([document("RUNNING", 1)])

    def interrupt(polls: int) -> None:
        if polls == 2:
            raise KeyboardInterrupt

    fake.on_poll = interrupt

    # WHEN Ctrl-C is pressed
    code, _, err = run(capsys, "batch", "echo", str(manifest), "--wait")

    # THEN exit 130, the batch was not cancelled, and the last line says how to watch it again
    assert code == 130
    assert not any(call.startswith("cancel") for call in fake.calls)
    assert err.splitlines()[-1] == (
        "interrupted: batch b1 keeps running (Ctrl-C stops the waiting, not the batch); watch it again with "
        "`ensemble-gateway batch status b1 --wait`, stop it with `ensemble-gateway batch cancel b1`"
    )


def test_a_gateway_gone_while_waiting_exits_4_with_how_to_resume(
    gateway: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = gateway([document("RUNNING", 1)])

    def gone(polls: int) -> None:
        if polls == 1:
            raise GatewayUnreachableError("http://127.0.0.1:3000/batches/b1", "connection refused")

    fake.on_poll = gone
    code, _, err = run(capsys, "batch", "status", "b1", "--wait")
    assert code == 4
    assert err.splitlines()[-1] == (
        "error: cannot reach http://127.0.0.1:3000/batches/b1: connection refused; batch b1 may still be "
        "running: `ensemble-gateway batch status b1 --wait` once the gateway answers"
    )


# -- status, result, cancel ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "exit_code"),
    [("PENDING_UPLOAD", 3), ("RUNNING", 3), ("COMPLETED", 0), ("COMPLETED_WITH_FAILURES", 1), ("CANCELLED", 1)],
)
def test_status_exits_by_the_batchs_status(
    gateway: Any, capsys: pytest.CaptureFixture[str], status: str, exit_code: int
) -> None:
    gateway([document(status, 2, failed=1 if status == "COMPLETED_WITH_FAILURES" else 0)])
    code, out, _ = run(capsys, "batch", "status", "b1")
    assert code == exit_code
    assert f"status       {status}" in out
    if status in ("PENDING_UPLOAD", "RUNNING"):
        assert "follow       `ensemble-gateway batch status b1 --wait`" in out
    code, out, _ = run(capsys, "batch", "status", "b1", "--json")
    assert code == exit_code and json.loads(out)["status"] == status


def test_the_summary_counts_every_kind_of_item(gateway: Any, capsys: pytest.CaptureFixture[str]) -> None:
    gateway([document("RUNNING", 5, total=10, failed=1, metadata={"run": "nightly"}) | {"max_concurrency": 4}])
    _, out, _ = run(capsys, "batch", "status", "b1")
    assert "items        10: 4 completed, 1 failed, 0 cancelled, 5 pending" in out
    assert "concurrency  4" in out and "metadata     run=nightly" in out


def test_result_of_a_running_batch_exits_3(gateway: Any, capsys: pytest.CaptureFixture[str]) -> None:
    fake = gateway([document("RUNNING", 1)])
    code, _, err = run(capsys, "batch", "result", "b1")
    assert code == 3 and "batch b1 is RUNNING: no result file yet" in err
    assert "download" not in fake.calls


def test_result_of_a_cancelled_batch_whose_items_still_run_exits_3(
    gateway: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a batch CANCELLED whose running items have not ended (no finished_at, no result yet)
    fake = gateway([document("CANCELLED", 1)])

    # WHEN / THEN its result is not there yet: exit 3, and the status says when it comes
    code, _, err = run(capsys, "batch", "result", "b1")
    assert code == 3 and "its result file is written once its running items have ended" in err
    assert "download" not in fake.calls
    code, out, _ = run(capsys, "batch", "status", "b1")
    assert code == 1 and "result       written once the running items have ended" in out


def test_wait_goes_on_until_the_result_of_a_cancelled_batch_is_written(
    gateway: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = gateway([document("CANCELLED", 1), document("CANCELLED", 1), document("CANCELLED", 3, **FINISHED)])
    code, out, _ = run(capsys, "batch", "status", "b1", "--wait")
    assert code == 1 and "`ensemble-gateway batch result b1 -o results.jsonl`" in out
    assert fake.calls.count("batch b1") == 3


def test_result_prints_the_json_lines_or_writes_them_to_a_file(
    gateway: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a finished batch
    gateway([document("COMPLETED_WITH_FAILURES", 3, failed=1, **FINISHED)])

    # WHEN its result is asked for on stdout, into a file, and into a file with --json
    printed = run(capsys, "batch", "result", "b1")
    written = run(capsys, "batch", "result", "b1", "-o", str(tmp_path / "out.jsonl"))
    described = run(capsys, "batch", "result", "b1", "-o", str(tmp_path / "again.jsonl"), "--json")

    # THEN the lines are printed as they are, written whole, and described
    assert printed == (0, RESULT.decode(), "")
    assert written[0] == 0 and (tmp_path / "out.jsonl").read_bytes() == RESULT
    assert written[1] == f"wrote 3 lines ({len(RESULT)} bytes, JSON Lines) to {tmp_path / 'out.jsonl'}: " + (
        "2 completed, 1 failed, 0 cancelled\n"
    )
    assert json.loads(described[1])["size"] == len(RESULT)
    # AND no partial file is left beside them
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.jsonl", "out.jsonl"]


def test_result_into_a_directory_that_does_not_exist_is_one_line(
    gateway: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gateway([document("COMPLETED", 3, **FINISHED)])
    code, _, err = run(capsys, "batch", "result", "b1", "-o", str(tmp_path / "no" / "such" / "out.jsonl"))
    assert code == 2 and err.startswith("error: cannot write") and err.count("\n") == 1


def test_cancel_says_cancelled_and_a_finished_batch_is_a_one_line_error(
    gateway: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = gateway([document("RUNNING", 1)])
    code, out, _ = run(capsys, "batch", "cancel", "b1")
    assert code == 0 and out == "batch b1 is CANCELLED: no new item starts, running items are cancelled\n"
    fake.cancel_error = GatewayClientError(409, "Conflict", "batch b1 is COMPLETED")
    code, _, err = run(capsys, "batch", "cancel", "b1")
    assert code == 2 and err == "error: 409 Conflict: batch b1 is COMPLETED\n"


# -- the progress bar ---------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_bar_is_redrawn_in_place_with_rate_and_eta() -> None:
    # GIVEN a terminal and a batch of 100 doing 10 items/s
    clock, stream = Clock(), Terminal()
    bar = BatchProgress("b1", stream, clock=clock)

    # WHEN three polls a second apart are shown, then the bar is closed
    for second, done in enumerate((0, 10, 20)):
        clock.now = float(second)
        bar.update(document("RUNNING", done, total=100))
    bar.close()

    # THEN each poll redrew the line (carriage return, erase), the ETA came from the second on
    frames = stream.getvalue().split("\r\033[K")[1:]
    assert len(frames) == 3
    assert frames[0].endswith("0/100  0%  -- items/s  ETA --")
    assert frames[2] == "b1 RUNNING  [####....................]  20/100  20%  10.0 items/s  ETA 8s\n"


def test_in_a_log_one_line_every_interval_and_the_last() -> None:
    # GIVEN stderr redirected to a file, a line every 5 s at most
    clock, stream = Clock(), io.StringIO()
    bar = BatchProgress("b1", stream, clock=clock, interval=5.0)

    # WHEN the batch is polled every second for 12 s, then ends
    for second in range(12):
        clock.now = float(second)
        bar.update(document("RUNNING", second, total=20, failed=1 if second > 6 else 0))
    clock.now = 12.0
    bar.update(document("COMPLETED_WITH_FAILURES", 20, total=20, failed=1))
    bar.close()

    # THEN lines at 0, 5 and 10 s and the final one, each on its own line (no carriage returns)
    lines = stream.getvalue().splitlines()
    assert [line.split("  ")[2] for line in lines] == ["0/20", "5/20", "10/20", "20/20"]
    assert "\r" not in stream.getvalue()
    assert lines[-1].startswith("b1 COMPLETED_WITH_FAILURES") and lines[-1].endswith("1 failed")


def test_a_total_not_counted_yet_is_unknown_until_the_batch_ends() -> None:
    assert items_done(document("RUNNING", 0, total=0)) == (0, None)
    assert items_done(document("COMPLETED", 0, total=0)) == (0, 0)
    assert items_done({"status": "RUNNING"}) == (0, None)

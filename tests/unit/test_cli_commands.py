"""The CLI's prediction commands against a fake gateway: what they call, print and exit with.

The fake is the real :class:`GatewayClient` with its HTTP calls replaced, so ``wait`` and the
CLI's handling of what it answers are the real ones. The same commands against the local runtime,
as a subprocess, are in tests/e2e/test_cli.py.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ensemble_gateway import cli
from ensemble_gateway.client import GatewayClient, GatewayClientError, GatewayUnreachableError

ENSEMBLE = {
    "name": "claims",
    "kind": "ensemble",
    "description": "",
    "content_types": ["application/json"],
    "max_bytes": 1024,
    "version": "1",
    "steps": ["damage", "cost", "decision"],
}
MODEL = {
    "name": "echo",
    "kind": "model",
    "description": "",
    "content_types": ["application/json"],
    "max_bytes": 1024,
    "version": "1",
}


def document(status: str, service: str = "echo", **fields: Any) -> dict[str, Any]:
    return {
        "prediction_id": "p1",
        "service": service,
        "status": status,
        "created_at": "2026-12-01T10:00:00Z",
        "updated_at": "2026-12-01T10:00:02Z",
        "metadata": {},
        "model": {"endpoint": service, "version": "1"},
        **fields,
    }


class FakeGatewayClient(GatewayClient):
    """A gateway whose statuses follow a script (one per poll); it records every call."""

    def __init__(self, statuses: list[dict[str, Any]], services: list[dict[str, Any]] | None = None) -> None:
        super().__init__("http://gateway.invalid", "egk_fake")
        self.statuses = statuses
        self.listed = [MODEL, ENSEMBLE] if services is None else services
        self.calls: list[str] = []
        self.output = b'{"ok": true}'
        self.output_type = "application/json"
        self.on_status: Callable[[int], None] | None = None
        self.upload_error: Exception | None = None

    def services(self) -> list[dict[str, Any]]:
        self.calls.append("services")
        return self.listed

    def submit(self, service: str, **fields: Any) -> dict[str, Any]:
        self.calls.append(f"submit {service} {json.dumps(fields, sort_keys=True)}")
        return {"prediction_id": "p1", "status": "PENDING_UPLOAD", "upload": {"url": "u", "fields": {}}}

    def upload(self, upload: dict[str, Any], data: bytes, content_type: str | None = None) -> None:
        self.calls.append(f"upload {len(data)}")
        if self.upload_error is not None:
            raise self.upload_error

    def status(self, prediction_id: str) -> dict[str, Any]:
        polls = sum(1 for call in self.calls if call.startswith("status"))
        self.calls.append(f"status {prediction_id}")
        if self.on_status is not None:
            self.on_status(polls)
        return self.statuses[min(polls, len(self.statuses) - 1)]

    def download(self, document: dict[str, Any]) -> bytes:
        self.calls.append("download")
        return self.output


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., FakeGatewayClient]]:
    """Point the CLI at a fake gateway (and nothing at a local runtime)."""

    def install(statuses: list[dict[str, Any]], **options: Any) -> FakeGatewayClient:
        fake = FakeGatewayClient(statuses, **options)
        monkeypatch.setattr(cli, "_api_target", lambda args: (fake, None))
        return fake

    yield install


@pytest.fixture
def claim(tmp_path: Path) -> Path:
    path = tmp_path / "claim.json"
    path.write_text('{"claim": {"amount": 100}}')
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- the input is checked before anything is created -------------------------------------------
@pytest.mark.parametrize("kind", ["missing", "directory", "empty"])
def test_an_input_that_cannot_be_read_creates_no_prediction(
    gateway: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    # GIVEN an input file that is missing, a directory, or empty
    path = tmp_path / "input.json"
    if kind == "directory":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    fake = gateway([document("RUNNING")])

    # WHEN it is predicted on
    code, out, err = run(capsys, "predict", "echo", str(path), "--wait")

    # THEN the CLI says so in one line, exits 2, and never called the gateway
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and str(path) in err
    assert fake.calls == []
    assert out == ""


def test_an_input_larger_than_the_service_takes_creates_no_prediction(
    gateway: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an input over the service's max_bytes (1024 here)
    path = tmp_path / "big.json"
    path.write_text(json.dumps({"x": "y" * 2000}))
    fake = gateway([document("RUNNING")])

    # WHEN it is predicted on / THEN it is refused before POST /predictions
    code, _, err = run(capsys, "predict", "echo", str(path))
    assert code == 2
    assert "takes at most 1,024" in err
    assert fake.calls == ["services"]


def test_an_upload_refused_after_creation_names_the_prediction_and_the_way_out(
    gateway: Any, claim: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN S3 refusing the upload of a prediction just created
    fake = gateway([document("PENDING_UPLOAD")])
    fake.upload_error = GatewayClientError(400, "EntityTooLarge", "Your proposed upload exceeds the maximum")

    # WHEN it is predicted on
    code, _, err = run(capsys, "predict", "echo", str(claim))

    # THEN one line names the prediction, S3's reason and the command that uploads it again
    assert code == 2
    assert err.count("\n") == 1
    assert "prediction p1 was created but its input was not uploaded" in err
    assert "EntityTooLarge" in err and f"ensemble-gateway upload p1 {claim}" in err


# -- predict: what is sent, printed and returned -------------------------------------------------
def test_predict_sends_metadata_idempotency_key_and_accept(
    gateway: Any, claim: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a gateway
    fake = gateway([document("RUNNING")])

    # WHEN a prediction is made with metadata, an idempotency key and an Accept
    code, _, _ = run(
        capsys,
        "predict",
        "echo",
        str(claim),
        "--metadata",
        "claim=C-9",
        "--metadata",
        "source=cli=1",
        "--idempotency-key",
        "order-42",
        "--accept",
        "text/csv",
    )

    # THEN POST /predictions carries them all (a value may hold '=')
    assert code == 0
    submitted = json.loads(next(call for call in fake.calls if call.startswith("submit")).split(" ", 2)[2])
    assert submitted["metadata"] == {"claim": "C-9", "source": "cli=1"}
    assert submitted["idempotency_key"] == "order-42"
    assert submitted["accept"] == "text/csv"


def test_predict_without_wait_prints_the_documented_status_after_one_poll(
    gateway: Any, claim: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a prediction that is RUNNING once its upload is accepted
    fake = gateway([document("RUNNING")])

    # WHEN it is submitted without --wait, as text and as JSON
    code, out, err = run(capsys, "predict", "echo", str(claim))
    json_code, json_out, _ = run(capsys, "predict", "echo", str(claim), "--json")

    # THEN the status shown is the API's (never "uploaded"), and how to follow it is said
    assert code == json_code == 0
    assert "status      RUNNING" in out.splitlines()
    assert "uploaded" not in out
    assert "ensemble-gateway status p1" in err
    assert json.loads(json_out)["status"] == "RUNNING"
    assert fake.calls.count("status p1") == 2


@pytest.mark.parametrize(
    ("final", "code"),
    [("COMPLETED", 0), ("FAILED", 1), ("EXPIRED", 1), ("CANCELLED", 1)],
)
def test_predict_wait_exits_by_how_the_prediction_ended(
    gateway: Any, claim: Path, capsys: pytest.CaptureFixture[str], final: str, code: int
) -> None:
    # GIVEN a prediction that runs, then ends
    gateway([document("PENDING_UPLOAD"), document("RUNNING"), document(final)])

    # WHEN it is waited for / THEN the exit status says how it ended, and stdout shows it
    exit_code, out, _ = run(capsys, "predict", "echo", str(claim), "--wait", "--json")
    assert exit_code == code
    assert json.loads(out)["status"] == final


def test_predict_wait_past_its_timeout_exits_3_saying_it_keeps_running(
    gateway: Any, claim: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a prediction that never ends
    gateway([document("RUNNING")])

    # WHEN it is waited for with a short timeout
    code, out, err = run(capsys, "predict", "echo", str(claim), "--wait", "--timeout", "0.3")

    # THEN exit 3 (not 1, which is FAILED), and a line saying it is still running and how to check
    assert code == 3
    assert "status      RUNNING" in out.splitlines()
    assert "still RUNNING after 0.3 s (--timeout): prediction p1 keeps running" in err
    assert "`ensemble-gateway status p1`" in err


def test_ctrl_c_while_waiting_says_the_prediction_keeps_running(
    gateway: Any, claim: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a prediction being waited for
    fake = gateway([document("RUNNING")])

    def interrupt(polls: int) -> None:
        if polls >= 2:
            raise KeyboardInterrupt

    fake.on_status = interrupt

    # WHEN Ctrl-C is pressed during the wait
    code, _, err = run(capsys, "predict", "echo", str(claim), "--wait")

    # THEN exit 130 and one line (after the progress) saying how to check it, no traceback
    assert code == 130
    assert err.splitlines()[-1] == (
        "interrupted: prediction p1 keeps running; check it with `ensemble-gateway status p1`"
    )
    assert "Traceback" not in err


def test_a_gateway_that_stops_answering_during_the_wait_exits_4(
    gateway: Any, claim: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a gateway that goes away while the prediction runs
    fake = gateway([document("RUNNING")])

    def vanish(polls: int) -> None:
        if polls >= 2:
            raise GatewayUnreachableError("http://gateway.invalid/predictions/p1", "connection refused")

    fake.on_status = vanish

    # WHEN the prediction is waited for
    code, _, err = run(capsys, "predict", "echo", str(claim), "--wait")

    # THEN exit 4 with one line: unreachable, and how to check once it answers
    assert code == 4
    assert err.splitlines()[-1].startswith("error: cannot reach http://gateway.invalid/predictions/p1")
    assert "ensemble-gateway status p1` once the gateway answers" in err


def test_an_idempotent_replay_of_an_accepted_prediction_uploads_nothing(
    gateway: Any, claim: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a gateway answering a replay: the same prediction, no upload form (its input was accepted)
    fake = gateway([document("COMPLETED")])
    monkeypatch.setattr(
        fake, "submit", lambda service, **_: {"prediction_id": "p1", "status": "RUNNING", "upload": None}
    )

    # WHEN the same request is sent again with its key
    code, _, err = run(capsys, "predict", "echo", str(claim), "--idempotency-key", "k1")

    # THEN nothing is uploaded, and the CLI says why
    assert code == 0
    assert not any(call.startswith("upload") for call in fake.calls)
    assert "already submitted with this idempotency key" in err


# -- progress -----------------------------------------------------------------------------------
def test_the_progress_of_an_ensemble_counts_all_its_steps_from_the_first_line(
    gateway: Any, claim: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an ensemble of three steps (GET /services names them) whose steps appear as they start
    def step(name: str, status: str) -> dict[str, Any]:
        return {"name": name, "service": name, "prediction_id": f"p-{name}", "status": status, "model": {}}

    gateway(
        [
            document("RUNNING", "claims", steps=[]),
            document("RUNNING", "claims", steps=[step("damage", "RUNNING"), step("cost", "COMPLETED")]),
            document(
                "COMPLETED",
                "claims",
                steps=[step("damage", "COMPLETED"), step("cost", "COMPLETED"), step("decision", "COMPLETED")],
            ),
        ]
    )

    # WHEN it is waited for
    code, _, err = run(capsys, "predict", "claims", str(claim), "--wait")

    # THEN every progress line counts three steps: the denominator never grows
    lines = [line for line in err.splitlines() if " steps " in line]
    assert code == 0
    assert [line.split(" steps ")[1].split(" ")[0] for line in lines] == ["0/3", "1/3", "3/3"]
    assert "damage:pending cost:pending decision:pending" in lines[0]


# -- status and result --------------------------------------------------------------------------
@pytest.mark.parametrize(("status", "code"), [("COMPLETED", 0), ("FAILED", 1), ("RUNNING", 3), ("PENDING_UPLOAD", 3)])
def test_status_exits_by_the_predictions_status(
    gateway: Any, capsys: pytest.CaptureFixture[str], status: str, code: int
) -> None:
    # GIVEN a prediction with this status / WHEN its status is asked for
    gateway([document(status)])
    exit_code, out, _ = run(capsys, "status", "p1", "--json")

    # THEN the document is printed and the exit status follows the prediction's
    assert exit_code == code
    assert json.loads(out)["status"] == status


def test_status_as_text_shows_the_error_and_lineage(gateway: Any, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a failed ensemble
    failed = document(
        "FAILED",
        "claims",
        error={"code": "ModelError", "message": "boom", "step": "damage"},
        steps=[{"name": "damage", "service": "damage-severity", "prediction_id": "p2", "status": "FAILED"}],
    )
    gateway([failed])

    # WHEN its status is shown / THEN it reads as text, one fact a line
    code, out, _ = run(capsys, "status", "p1")
    assert code == 1
    assert "error       ModelError: boom (step damage)" in out.splitlines()
    assert "  damage  damage-severity  FAILED" in out


def test_result_prints_a_text_output_and_writes_any_to_a_file(
    gateway: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a completed prediction whose output is JSON
    done = document("COMPLETED", result={"url": "https://s3/x", "content_type": "application/json"})
    fake = gateway([done])

    # WHEN its result is asked for, then written to a file
    code, out, _ = run(capsys, "result", "p1")
    target = tmp_path / "out.json"
    file_code, file_out, _ = run(capsys, "result", "p1", "-o", str(target))

    # THEN the text is printed, and the file holds the exact bytes
    assert code == file_code == 0
    assert out == '{"ok": true}\n'
    assert target.read_bytes() == fake.output
    assert f"wrote 12 bytes (application/json) to {target}" in file_out


def test_result_refuses_to_print_a_binary_output_on_a_terminal(
    gateway: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a completed prediction whose output is a PNG, and a terminal
    fake = gateway([document("COMPLETED", result={"url": "https://s3/x", "content_type": "image/png"})])
    monkeypatch.setattr(cli.sys.stdout, "isatty", lambda: True)

    # WHEN its result is asked for without -o
    code, _, err = run(capsys, "result", "p1")

    # THEN it says to use -o, before downloading anything
    assert code == 2
    assert "is image/png, not text: write it to a file with -o FILE" in err
    assert "download" not in fake.calls


@pytest.mark.parametrize(("status", "code", "said"), [("RUNNING", 3, "no result yet"), ("FAILED", 1, "no result")])
def test_result_of_an_unfinished_or_failed_prediction(
    gateway: Any, capsys: pytest.CaptureFixture[str], status: str, code: int, said: str
) -> None:
    # GIVEN a prediction that has not completed / WHEN its result is asked for / THEN the exit says why
    gateway([document(status, error={"code": "ModelError", "message": "boom"} if status == "FAILED" else None)])
    exit_code, _, err = run(capsys, "result", "p1")
    assert exit_code == code
    assert said in err


# -- errors the gateway answers, and the output closing early -----------------------------------
@pytest.mark.parametrize(
    ("error", "code"),
    [
        (GatewayClientError(404, "NotFound", "prediction 'p9' does not exist"), 2),
        (GatewayClientError(409, "Conflict", "already COMPLETED"), 2),
        (GatewayClientError(429, "TooManyRequests", "slow down"), 4),
        (GatewayClientError(503, "ServiceUnavailable", "shutting down"), 4),
        (GatewayUnreachableError("http://127.0.0.1:1/services", "connection refused"), 4),
    ],
    ids=["404", "409", "429", "503", "unreachable"],
)
def test_api_errors_are_one_line_and_their_exit_status(
    gateway: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, error: Exception, code: int
) -> None:
    # GIVEN a gateway answering this error
    fake = gateway([document("RUNNING")])

    def refuse(prediction_id: str) -> dict[str, Any]:
        raise error

    monkeypatch.setattr(fake, "status", refuse)

    # WHEN a command meets it / THEN one line, and 2 for a refusal, 4 for a gateway not serving
    exit_code, _, err = run(capsys, "status", "p9")
    assert exit_code == code
    assert err.count("\n") == 1 and err.startswith("error: ")


def test_an_output_closed_early_ends_quietly_with_141(
    gateway: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN standard output whose reader has gone (`| head`)
    gateway([document("RUNNING")])

    class ClosedPipe(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(cli.sys, "stdout", ClosedPipe())

    # WHEN a command prints / THEN it stops with 141, printing nothing else (no traceback)
    assert cli.main(["services", "list"]) == 141
    assert capsys.readouterr().err == ""

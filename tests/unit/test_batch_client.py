"""GatewayClient's batch calls against a real HTTP server on 127.0.0.1 (the routes as the API contract has them).

The server plays the gateway (``POST /batches``, ``GET /batches/{id}``, ``POST /batches/{id}/cancel``)
and S3 (the manifest's presigned POST form, the result file's presigned GET): what goes over the
wire is the client's own, requests and all.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ensemble_gateway.client import GatewayClient, GatewayClientError, GatewayUnreachableError

RESULT_LINES = [
    {"line": n, "prediction_id": f"b1-{n:06d}", "status": "COMPLETED", "output": {"n": n}} for n in range(1, 3001)
]
RESULT = "".join(json.dumps(line) + "\n" for line in RESULT_LINES).encode()


class FakeGateway:
    """The batch routes and the two S3 URLs; records every request; answers from a script."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[tuple[int, dict[str, Any]]] = []
        self.cancelled = False
        self.lock = threading.Lock()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self, status: int, body: bytes, content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _json(self, status: int, document: Any) -> None:
                self._answer(status, json.dumps(document).encode())

            def _record(self) -> dict[str, Any]:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                request = {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
                with gateway.lock:
                    gateway.requests.append(request)
                return request

            def do_POST(self) -> None:
                request = self._record()
                if self.path == "/batches":
                    self._json(202, gateway.accepted())
                elif self.path == "/bucket":
                    if b"expired-policy" in request["body"]:
                        self._answer(
                            403,
                            b"<Error><Code>AccessDenied</Code><Message>Policy expired</Message></Error>",
                            "application/xml",
                        )
                    else:
                        self._answer(204, b"")
                elif self.path == "/batches/b1/cancel":
                    if gateway.cancelled:
                        self._json(409, {"code": "Conflict", "message": "batch b1 is CANCELLED"})
                    else:
                        gateway.cancelled = True
                        self._json(200, {"batch_id": "b1", "status": "CANCELLED"})
                else:
                    self._json(403, {"message": "Missing Authentication Token"})

            def do_GET(self) -> None:
                self._record()
                if self.path == "/batches/b1":
                    with gateway.lock:
                        status, document = gateway.statuses.pop(0) if len(gateway.statuses) > 1 else gateway.statuses[0]
                    self._json(status, document)
                elif self.path.startswith("/batches/"):
                    self._json(404, {"code": "NotFound", "message": "no batch here"})
                elif self.path.startswith("/results/b1.jsonl"):
                    self._answer(200, RESULT, "application/x-ndjson")
                elif self.path.startswith("/results/expired"):
                    self._answer(403, b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>")
                else:
                    self._json(404, {"code": "NotFound", "message": self.path})

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def accepted(self) -> dict[str, Any]:
        return {
            "batch_id": "b1",
            "service": "complaint-triage",
            "status": "PENDING_UPLOAD",
            "created_at": "2026-12-01T10:00:00Z",
            "upload": {
                "url": f"{self.url}/bucket",
                "method": "POST",
                "fields": {"key": "batches/b1/manifest.jsonl", "Content-Type": "application/x-ndjson", "policy": "p"},
                "max_bytes": 1 << 20,
            },
        }

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    server = FakeGateway()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def client(gateway: FakeGateway) -> GatewayClient:
    return GatewayClient(gateway.url, "egk_test", timeout=5)


def batch_document(status: str, done: int = 0, total: int = 3, **fields: Any) -> dict[str, Any]:
    return {
        "batch_id": "b1",
        "service": "complaint-triage",
        "status": status,
        "counts": {"total": total, "pending": total - done, "running": 0, "completed": done, "failed": 0},
        # An ended batch has finished once its result file is written.
        "finished_at": "2026-12-01T10:00:09Z" if status != "RUNNING" else None,
        **fields,
    }


def test_submit_batch_sends_the_contracts_fields_the_key_and_the_idempotency_key(
    gateway: FakeGateway, client: GatewayClient
) -> None:
    # WHEN a batch is submitted with every option
    accepted = client.submit_batch(
        "complaint-triage",
        content_type="application/json",
        max_concurrency=5,
        tolerated_failure_percent=2.5,
        webhook_url="https://example.com/hooks",
        metadata={"run": "nightly"},
        idempotency_key="nightly-2026-12-01",
    )

    # THEN the body has the contract's names, the headers the key and the idempotency key
    (request,) = gateway.requests
    assert (request["method"], request["path"]) == ("POST", "/batches")
    assert json.loads(request["body"]) == {
        "service": "complaint-triage",
        "content_type": "application/json",
        "max_concurrency": 5,
        "tolerated_failure_percent": 2.5,
        "notification": {"webhook": {"url": "https://example.com/hooks"}},
        "metadata": {"run": "nightly"},
    }
    assert request["headers"]["Authorization"] == "Bearer egk_test"
    assert request["headers"]["Idempotency-Key"] == "nightly-2026-12-01"
    # AND the answer is the accepted batch with its upload form
    assert accepted["batch_id"] == "b1" and accepted["upload"]["fields"]["key"] == "batches/b1/manifest.jsonl"


def test_submit_batch_leaves_out_what_was_not_given(gateway: FakeGateway, client: GatewayClient) -> None:
    client.submit_batch("echo", manifest_uri="s3://bucket/manifest.jsonl")
    (request,) = gateway.requests
    assert json.loads(request["body"]) == {"service": "echo", "manifest_uri": "s3://bucket/manifest.jsonl"}
    assert "Idempotency-Key" not in request["headers"]


def test_the_manifest_goes_through_the_form_as_json_lines(gateway: FakeGateway, client: GatewayClient) -> None:
    # GIVEN an accepted batch and a manifest of two lines
    form = client.submit_batch("echo")["upload"]
    manifest = b'{"a": 1}\n{"a": 2}\n'

    # WHEN it is uploaded
    client.upload_manifest(form, manifest)

    # THEN one multipart POST to the form's URL carries every field, then the file as JSON Lines
    upload = gateway.requests[-1]
    assert upload["path"] == "/bucket"
    assert upload["headers"]["Content-Type"].startswith("multipart/form-data; boundary=")
    body = upload["body"]
    for name, value in form["fields"].items():
        assert f'name="{name}"\r\n\r\n{value}\r\n'.encode() in body
    assert b"Content-Type: application/x-ndjson\r\n\r\n" + manifest in body
    # AND the form's fields come before the file (S3 ignores fields after it)
    assert body.index(b'name="policy"') < body.index(b'name="file"')
    # AND no gateway credential goes to S3
    assert "Authorization" not in upload["headers"]


def test_a_refused_upload_is_s3s_error(gateway: FakeGateway, client: GatewayClient) -> None:
    form = client.submit_batch("echo")["upload"]
    form["fields"]["policy"] = "expired-policy"
    with pytest.raises(GatewayClientError) as refused:
        client.upload_manifest(form, b"{}\n")
    assert (refused.value.status, refused.value.code, refused.value.message) == (403, "AccessDenied", "Policy expired")


def test_wait_batch_polls_until_the_batch_ends_through_a_passing_5xx(
    gateway: FakeGateway, client: GatewayClient
) -> None:
    # GIVEN a batch that runs, answers one 503, then completes
    gateway.statuses = [
        (200, batch_document("RUNNING", 0)),
        (200, batch_document("RUNNING", 2)),
        (503, {"code": "ServiceUnavailable", "message": "busy"}),
        (200, batch_document("COMPLETED", 3)),
    ]
    seen: list[dict[str, Any]] = []

    # WHEN it is waited for
    final = client.wait_batch("b1", timeout=10, interval=0.01, max_interval=0.02, on_progress=seen.append)

    # THEN the last document is the completed one, and every good one was shown once
    assert final["status"] == "COMPLETED"
    assert [(d["status"], d["counts"]["completed"]) for d in seen] == [("RUNNING", 0), ("RUNNING", 2), ("COMPLETED", 3)]
    assert sum(1 for r in gateway.requests if r["path"] == "/batches/b1") == 4


def test_wait_batch_gives_up_after_its_retries_and_on_a_refusal(gateway: FakeGateway, client: GatewayClient) -> None:
    # GIVEN a gateway answering 503 after the first poll
    gateway.statuses = [(200, batch_document("RUNNING")), (503, {"code": "ServiceUnavailable", "message": "down"})]

    # WHEN / THEN the wait ends after the retries with the 503
    with pytest.raises(GatewayClientError) as failed:
        client.wait_batch("b1", interval=0.01, max_interval=0.01, retries=2)
    assert failed.value.status == 503
    assert sum(1 for r in gateway.requests if r["path"] == "/batches/b1") == 4
    # AND an unknown batch is a 404 at once
    with pytest.raises(GatewayClientError) as unknown:
        client.wait_batch("nope", interval=0.01)
    assert (unknown.value.status, unknown.value.code) == (404, "NotFound")


def test_wait_batch_waits_for_the_result_of_a_cancelled_batch(gateway: FakeGateway, client: GatewayClient) -> None:
    # GIVEN a batch CANCELLED at once, its running items ending after, then its result written
    cancelled = batch_document("CANCELLED", 1) | {"finished_at": None}
    gateway.statuses = [(200, cancelled), (200, cancelled), (200, batch_document("CANCELLED", 1))]

    # WHEN / THEN the wait ends with the finished document, not the first CANCELLED one
    final = client.wait_batch("b1", timeout=10, interval=0.01, max_interval=0.01)
    assert final["finished_at"] is not None
    assert sum(1 for r in gateway.requests if r["path"] == "/batches/b1") == 3


def test_wait_batch_returns_the_last_document_at_its_timeout(gateway: FakeGateway, client: GatewayClient) -> None:
    gateway.statuses = [(200, batch_document("RUNNING", 1))]
    assert client.wait_batch("b1", timeout=0.05, interval=0.01)["status"] == "RUNNING"


def test_cancel_batch_answers_cancelled_then_409(gateway: FakeGateway, client: GatewayClient) -> None:
    assert client.cancel_batch("b1")["status"] == "CANCELLED"
    with pytest.raises(GatewayClientError) as again:
        client.cancel_batch("b1")
    assert (again.value.status, again.value.code) == (409, "Conflict")


def test_a_batch_id_is_one_path_segment(gateway: FakeGateway, client: GatewayClient) -> None:
    # WHEN an ID with a slash and a query is asked for
    with pytest.raises(GatewayClientError):
        client.batch("b1/cancel?x=1")

    # THEN it went as one (quoted) segment: no other route was reached
    assert gateway.requests[-1]["path"] == "/batches/b1%2Fcancel%3Fx%3D1"


def test_the_result_file_streams_into_a_file_whole(gateway: FakeGateway, client: GatewayClient) -> None:
    # GIVEN a finished batch's document whose result.url is presigned (no gateway key)
    document = batch_document("COMPLETED", 3, result={"url": f"{gateway.url}/results/b1.jsonl?X-Amz-Signature=s"})
    target = io.BytesIO()

    # WHEN it is downloaded
    written = client.download_to(document, target, chunk_size=4096)

    # THEN every byte arrived, in order, and no gateway credential went to S3
    assert written == len(RESULT) and target.getvalue() == RESULT
    assert [json.loads(line)["line"] for line in target.getvalue().splitlines()] == list(range(1, 3001))
    assert "Authorization" not in gateway.requests[-1]["headers"]


def test_an_expired_result_url_is_s3s_error(gateway: FakeGateway, client: GatewayClient) -> None:
    document = batch_document("COMPLETED", 3, result={"url": f"{gateway.url}/results/expired.jsonl"})
    with pytest.raises(GatewayClientError) as refused:
        client.download_to(document, io.BytesIO())
    assert (refused.value.status, refused.value.code) == (403, "AccessDenied")


def test_a_gateway_without_batches_says_so(gateway: FakeGateway) -> None:
    # GIVEN a route the server does not have (an older gateway): API Gateway's answer to it
    client = GatewayClient(gateway.url, "egk_test", timeout=5)
    with pytest.raises(GatewayClientError) as missing:
        client.cancel_batch("other")
    assert missing.value.code == "MissingAuthenticationToken"
    assert "no route POST /batches/other/cancel" in missing.value.message


def test_a_stopped_gateway_is_unreachable(gateway: FakeGateway) -> None:
    # GIVEN a server that has stopped
    url = gateway.url
    gateway.close()

    # WHEN / THEN every batch call says it cannot reach it
    with pytest.raises(GatewayUnreachableError, match="connection refused"):
        GatewayClient(url, "egk_test", timeout=2).batch("b1")

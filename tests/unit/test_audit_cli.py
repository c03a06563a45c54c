"""``audit export|show`` over the audit trail's layout in S3 (a fake S3 client), and the local
audit store's layout (``S3AuditSink``) that they read."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from gateway_fakes import make_world, model_service, new_client
from test_audit_records import answer, submit, upload

from ensemble_gateway import cli
from ensemble_gateway.adapters.s3 import S3AuditSink
from ensemble_gateway.audit_cli import AuditTrail, show_lines

BUCKET = "gw-data"


class FakeS3:
    """The calls the audit sink and the audit commands make, over a dict of objects."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.listed: list[str] = []

    def put_object(self, Bucket: str, Key: str, Body: bytes, ContentType: str, **_: Any) -> None:  # noqa: N803
        self.objects[Key] = Body

    def list_objects_v2(self, Bucket: str, Prefix: str, **_: Any) -> dict[str, Any]:  # noqa: N803
        self.listed.append(Prefix)
        return {"Contents": [{"Key": k} for k in sorted(self.objects) if k.startswith(Prefix)], "IsTruncated": False}

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        return {"Body": io.BytesIO(self.objects[Key])}


def stored(s3: FakeS3, *records: dict[str, Any]) -> None:
    """Records as the local sink writes them (one object each, under their partition)."""
    S3AuditSink(BUCKET, client=s3).put(list(records))


def a_record(prediction_id: str, finished_at: str, service: str = "fraud-score", **extra: Any) -> dict[str, Any]:
    return {
        "record_id": f"{prediction_id}:COMPLETED",
        "prediction_id": prediction_id,
        "kind": "prediction",
        "service": service,
        "status": "COMPLETED",
        "finished_at": finished_at,
        "recorded_at": finished_at,
        **extra,
    }


def test_the_local_sink_writes_each_record_under_its_hive_partition() -> None:
    s3 = FakeS3()
    stored(s3, a_record("p1", "2026-11-22T09:15:00.000Z"))
    assert list(s3.objects) == ["audit/date=2026-11-22/hour=09/p1_COMPLETED.json"]
    assert json.loads(s3.objects["audit/date=2026-11-22/hour=09/p1_COMPLETED.json"])["prediction_id"] == "p1"


def test_export_keeps_the_window_and_the_service_and_each_record_once() -> None:
    # GIVEN records over two days, of two services, one delivered twice (Firehose appends it again)
    s3 = FakeS3()
    stored(
        s3,
        a_record("early", "2026-11-21T23:59:00.000Z"),
        a_record("in-a", "2026-11-22T09:15:00.000Z"),
        a_record("in-b", "2026-11-22T10:05:00.000Z", service="repair-cost"),
        a_record("late", "2026-11-23T00:30:00.000Z"),
    )
    twice = a_record("in-a", "2026-11-22T09:15:00.000Z", recorded_at="2026-11-22T09:20:00.000Z")
    s3.objects["audit/date=2026-11-22/hour=09/firehose-object"] = (json.dumps(twice) + "\n").encode()
    trail = AuditTrail(s3, BUCKET)
    since, until = datetime(2026, 11, 22, 9, tzinfo=UTC), datetime(2026, 11, 22, 23, tzinfo=UTC)

    # WHEN the window is exported, for every service then for one
    every = trail.records(since, until)
    one = trail.records(since, until, "fraud-score")

    # THEN only the records that ended in the window, each once (the later copy), oldest first
    assert [r["prediction_id"] for r in every] == ["in-a", "in-b"]
    assert every[0]["recorded_at"] == "2026-11-22T09:20:00.000Z"
    assert [r["prediction_id"] for r in one] == ["in-a"]
    # AND only the days the window overlaps were listed
    assert set(s3.listed) == {"audit/date=2026-11-22/"}


def test_the_export_command_writes_json_lines_to_a_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a gateway whose bucket holds two records
    s3 = FakeS3()
    stored(s3, a_record("a", "2026-11-22T09:15:00.000Z"), a_record("b", "2026-11-22T09:45:00.000Z", service="x"))
    monkeypatch.setattr(cli, "_aws_target", lambda args: ({"BucketName": BUCKET}, lambda service: s3, "gw"))
    out = tmp_path / "audit.jsonl"

    # WHEN audit export runs for one service
    code = cli.main(
        [
            "audit",
            "export",
            "--since",
            "2026-11-22T09:00Z",
            "--until",
            "2026-11-22T10:00Z",
            "--service",
            "x",
            "-o",
            str(out),
        ]
    )

    # THEN the file holds that service's record, one JSON line
    assert code == 0
    assert [json.loads(line)["prediction_id"] for line in out.read_text().splitlines()] == ["b"]
    assert "1 decision records written" in capsys.readouterr().err


def test_show_of_an_unknown_prediction_is_one_line_and_exit_status_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    s3 = FakeS3()
    monkeypatch.setattr(cli, "_aws_target", lambda args: ({"BucketName": BUCKET}, lambda service: s3, "gw"))
    code = cli.main(["audit", "show", "p20261122090000abcdef"])
    err = capsys.readouterr().err
    assert code == 2
    assert "no decision record of 'p20261122090000abcdef'" in err and "Traceback" not in err
    # AND an ID without a time asks for --since
    assert cli.main(["audit", "show", "custom-id"]) == 2
    assert "--since" in capsys.readouterr().err


def test_show_tells_which_model_version_decided_on_which_input_and_who_was_told() -> None:
    # GIVEN a prediction answered, its webhook delivered, the records in the local layout
    world = make_world(services=[model_service("fraud-score")], clients=[new_client("c_owner")], audit=True)
    prediction_id = submit(world, notification={"webhook": {"url": "https://hooks.example.com/ml"}})
    upload(world, prediction_id)
    answer(world, prediction_id)
    assert world.audit is not None
    from ensemble_gateway.domain.audit import delivery_record

    prediction = world.store._load(prediction_id)
    assert prediction is not None
    attempt = {"event_type": "prediction.completed", "attempt": 1, "at": "2026-11-22T09:00:06Z", "status_code": 200}
    s3 = FakeS3()
    stored(s3, *world.audit.records, delivery_record(prediction, {**attempt, "delivered": True}, world.clock()))
    trail = AuditTrail(s3, BUCKET)

    # WHEN its decision is shown
    decision = trail.decision(prediction_id, world.clock() - timedelta(hours=1), world.clock() + timedelta(hours=1))
    assert decision is not None
    text = "\n".join(show_lines(decision))

    # THEN it names the version and endpoint, the input's hash, the time split and the webhook
    record = decision.record
    assert "fraud-score 1.0.0 on fraud-score-endpoint" in text
    assert record["input"]["sha256"] in text and record["output"]["sha256"] in text
    assert "queue 1.000s + model 3.000s + gateway 1.000s" in text
    assert "webhook prediction.completed to https://hooks.example.com/ml: delivered" in text


class FakeSqs:
    def __init__(self, depths: dict[str, int]) -> None:
        self.depths = depths

    def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str]) -> dict[str, Any]:  # noqa: N803
        return {"Attributes": {"ApproximateNumberOfMessages": str(self.depths[QueueUrl])}}


def test_stats_gives_each_services_figures_from_the_records_and_the_dead_letter_depths(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN records of two predictions of a service (one failed), a skipped step, a failed webhook
    def timed(total: int, model: int | None = None) -> dict[str, Any]:
        if model is None:
            return {"total_ms": total, "queue_ms": None, "model_ms": None, "overhead_ms": None}
        return {"total_ms": total, "queue_ms": 100, "model_ms": model, "overhead_ms": total - 100 - model}

    s3 = FakeS3()
    stored(
        s3,
        a_record("a", "2026-11-22T09:10:00.000Z", timing=timed(1000, 700)),
        {**a_record("b", "2026-11-22T09:20:00.000Z", timing=timed(3000)), "status": "FAILED", "record_id": "b:F"},
        {**a_record("c", "2026-11-22T09:30:00.000Z", timing=timed(0)), "kind": "step", "status": "SKIPPED"},
        {
            **a_record("a", "2026-11-22T09:40:00.000Z"),
            "kind": "delivery",
            "record_id": "a:prediction.completed:webhook",
            "deliveries": [{"delivered": False}],
        },
    )
    queues = {"http://sqs/q/input-dlq": 2, "http://sqs/q/webhook-dlq": 0}
    outputs = {"BucketName": BUCKET, "DeadLetterQueueUrls": ",".join(queues)}
    monkeypatch.setattr(
        cli, "_aws_target", lambda args: (outputs, lambda service: s3 if service == "s3" else FakeSqs(queues), "gw")
    )

    # WHEN stats runs over the hour, as JSON and as text
    window = ["--since", "2026-11-22T09:00Z", "--until", "2026-11-22T10:00Z"]
    assert cli.main(["stats", *window, "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert cli.main(["stats", *window]) == 0
    text = capsys.readouterr().out

    # THEN the service's predictions, failures, latency percentiles and time split are counted
    by_kind = {f["kind"]: f for f in figures["services"]}
    assert by_kind["prediction"] == {
        "service": "fraud-score",
        "kind": "prediction",
        "predictions": 2,
        "failures": 1,
        "webhook_failures": 1,
        "latency_p50_ms": 1000,
        "latency_p95_ms": 3000,
        "mean_queue_ms": 100,
        "mean_model_ms": 700,
        "mean_overhead_ms": 200,
    }
    # AND a skipped step counts, with no latency
    assert by_kind["step"]["predictions"] == 1 and by_kind["step"]["latency_p50_ms"] is None
    # AND each dead-letter queue's depth is given
    assert figures["dead_letter_queues"] == {"input-dlq": 2, "webhook-dlq": 0}
    assert "fraud-score" in text and "input-dlq 2" in text


class FakeFirehose:
    """PutRecordBatch: takes the batches; ``refuse`` fails that many records of the next call."""

    def __init__(self, refuse: int = 0) -> None:
        self.batches: list[list[bytes]] = []
        self.refuse = refuse

    def put_record_batch(self, DeliveryStreamName: str, Records: list[dict[str, bytes]]) -> dict[str, Any]:  # noqa: N803
        self.batches.append([r["Data"] for r in Records])
        refused, self.refuse = self.refuse, 0
        responses = [{"ErrorCode": "ServiceUnavailableException"}] * refused + [{"RecordId": "r"}] * (
            len(Records) - refused
        )
        return {"FailedPutCount": refused, "RequestResponses": responses}


def test_the_firehose_sink_puts_one_json_line_per_record_and_raises_on_refused_records() -> None:
    from ensemble_gateway.adapters.firehose import AuditDeliveryError, FirehoseAuditSink

    # GIVEN the audit stream
    firehose = FakeFirehose()
    sink = FirehoseAuditSink("gw-audit", client=firehose)

    # WHEN 501 records are put
    sink.put([a_record(f"p{i}", "2026-11-22T09:15:00.000Z") for i in range(501)])

    # THEN they go in batches of at most 500, one JSON line each (the objects are JSON Lines)
    assert [len(batch) for batch in firehose.batches] == [500, 1]
    assert firehose.batches[0][0].endswith(b"\n") and json.loads(firehose.batches[0][0])["prediction_id"] == "p0"
    # AND a record Firehose refuses is an error (the caller keeps the record pending)
    firehose.refuse = 1
    with pytest.raises(AuditDeliveryError, match="refused 1 of 1"):
        sink.put([a_record("p", "2026-11-22T09:15:00.000Z")])

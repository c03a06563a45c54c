"""Batches end to end against the local runtime: the real handlers of template.yaml (the batches
API function, S3's notification of the manifest to the batch queue, the batch driver, process-
input's dispatch path, SageMaker's notifications, the sweeper) with models of the example catalog.

The client is ``GatewayClient`` over HTTP (the manifest goes through the presigned POST), as a
user's program would call the gateway.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import pytest

from conftest import EXAMPLES


def jsonl(values: list[Any]) -> bytes:
    return b"".join(json.dumps(value).encode() + b"\n" for value in values)


def run(api: Any, service: str, manifest: bytes, **fields: Any) -> str:
    """POST /batches, then the manifest through its upload form; the batch's ID."""
    accepted = api.submit_batch(service, **fields)
    assert accepted["status"] == "PENDING_UPLOAD" and accepted["upload"] is not None
    api.upload_manifest(accepted["upload"], manifest)
    return str(accepted["batch_id"])


def wait(api: Any, batch_id: str, timeout: float = 240.0) -> dict[str, Any]:
    document: dict[str, Any] = api.wait_batch(batch_id, timeout=timeout, interval=0.25, max_interval=1.0)
    assert document.get("finished_at"), f"batch not finished in {timeout} s: {document}"
    return document


def results(api: Any, document: dict[str, Any]) -> list[dict[str, Any]]:
    """The result file, downloaded from its presigned URL."""
    body = api.download(document).decode()
    return [json.loads(line) for line in body.splitlines()]


def max_overlap(items: list[dict[str, Any]]) -> int:
    """The most items RUNNING at one moment, from their own started_at / finished_at."""
    moments = []
    for item in items:
        moments.append((datetime.fromisoformat(item["started_at"]), 1))
        moments.append((datetime.fromisoformat(item["finished_at"]), -1))
    running = peak = 0
    # An end at the same instant as a start frees its slot first.
    for _, step in sorted(moments, key=lambda m: (m[0], m[1])):
        running += step
        peak = max(peak, running)
    return peak


def item_records(runtime: Any, batch_id: str, total: int) -> list[dict[str, Any]]:
    """The items' records as stored (their started_at and finished_at)."""
    from ensemble_gateway.adapters.dynamodb import DynamoPredictionStore

    store = DynamoPredictionStore(runtime.stack.outputs["PredictionsTableName"], runtime.client("dynamodb"))
    found = []
    for line in range(1, total + 1):
        item = store.get(f"{batch_id}-{line:06d}")
        assert item is not None, line
        found.append(item.model_dump(mode="json"))
    return found


def test_200_items_at_most_5_at_a_time_come_back_in_input_order(api: Any, runtime: Any) -> None:
    # GIVEN 200 inputs to an async model that sleeps a little for each, at most 5 at a time
    inputs = [{"sleep_ms": (n * 37) % 80, "n": n} for n in range(1, 201)]

    # WHEN they go in as one batch
    batch_id = run(api, "slow-noop", jsonl(inputs), max_concurrency=5)
    document = wait(api, batch_id)

    # THEN every line completed, and the result lists them in input order with their IDs
    assert document["status"] == "COMPLETED", document
    assert document["counts"] == {
        "total": 200,
        "pending": 0,
        "running": 0,
        "completed": 200,
        "failed": 0,
        "cancelled": 0,
    }
    lines = results(api, document)
    assert [row["line"] for row in lines] == list(range(1, 201))
    assert [row["prediction_id"] for row in lines] == [f"{batch_id}-{n:06d}" for n in range(1, 201)]
    assert {row["status"] for row in lines} == {"COMPLETED"}, lines[:2]
    assert all(row["output"]["ok"] is True for row in lines), lines[:2]
    # AND, measured from the items' own records, never more than 5 ran at once (and 5 did)
    peak = max_overlap(item_records(runtime, batch_id, 200))
    assert 1 < peak <= 5, peak


def test_outputs_are_in_input_order_and_bad_lines_fail_alone_with_their_reasons(api: Any) -> None:
    # GIVEN a manifest for echo (1 MiB per input) with an invalid line and a line too large
    good = [{"n": n} for n in range(1, 7)]
    manifest = jsonl(good[:3]) + b"{not json\n" + json.dumps({"big": "x" * (1024 * 1024 + 10)}).encode() + b"\n"
    manifest += jsonl(good[3:])

    # WHEN it runs, half of the lines allowed to fail
    document = wait(api, run(api, "echo", manifest, tolerated_failure_percent=50, max_concurrency=3))

    # THEN the batch completed with failures, one result line per manifest line, in order
    assert document["status"] == "COMPLETED_WITH_FAILURES", document
    lines = results(api, document)
    assert [row["line"] for row in lines] == list(range(1, 9))
    assert [row["status"] for row in lines] == ["COMPLETED"] * 3 + ["FAILED", "FAILED"] + ["COMPLETED"] * 3
    assert [row["output"]["echo"] for row in lines if row["status"] == "COMPLETED"] == good
    assert lines[3]["error"]["code"] == "InvalidLine"
    assert lines[4]["error"]["code"] == "LineTooLarge"


def test_crossing_the_failure_threshold_fails_the_batch_and_the_rest_never_starts(api: Any) -> None:
    # GIVEN a model that always fails, one item at a time, no failure tolerated
    document = wait(api, run(api, "always-fails", jsonl([{"n": n} for n in range(5)]), max_concurrency=1))

    # THEN the batch FAILED at the first failure, saying why, and the other lines never started
    assert document["status"] == "FAILED" and document["error"]["code"] == "FailureThreshold"
    assert [row["status"] for row in results(api, document)] == ["FAILED"] + ["CANCELLED"] * 4
    assert document["counts"]["failed"] == 1


def test_cancelling_a_batch_cancels_its_running_items_and_writes_the_result(api: Any) -> None:
    # GIVEN a batch of slow items, two at a time, under way
    batch_id = run(api, "slow-noop", jsonl([{"sleep_ms": 3000}] * 8), max_concurrency=2)
    deadline = time.monotonic() + 60
    while api.batch(batch_id)["counts"]["running"] == 0:
        assert time.monotonic() < deadline
        time.sleep(0.2)

    # WHEN its owner cancels it
    cancelled = api.cancel_batch(batch_id)
    document = wait(api, batch_id)

    # THEN it is CANCELLED, every line of the result is CANCELLED with a reason, nothing else ran
    assert cancelled["status"] == "CANCELLED" and document["status"] == "CANCELLED"
    lines = results(api, document)
    assert len(lines) == 8 and {row["status"] for row in lines} <= {"CANCELLED", "COMPLETED"}
    assert sum(row["status"] == "COMPLETED" for row in lines) <= 2
    assert all(row["error"]["message"] for row in lines if row["status"] == "CANCELLED")
    # AND a finished batch cannot be cancelled again... but a cancelled one answers as it is
    assert api.cancel_batch(batch_id)["status"] == "CANCELLED"


def test_one_webhook_when_the_batch_ends(api: Any, webhook_receiver: Any) -> None:
    # GIVEN a batch asking for a webhook
    batch_id = run(api, "echo", jsonl([{"n": n} for n in range(4)]), webhook_url=webhook_receiver.url)
    wait(api, batch_id)

    # THEN exactly one webhook came, batch.completed with the batch's document
    deadline = time.monotonic() + 30
    while not webhook_receiver.requests and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2)  # anything more that would come has come by now
    bodies = [json.loads(r["body"]) for r in webhook_receiver.requests]
    assert [b["type"] for b in bodies] == ["batch.completed"]
    assert bodies[0]["data"]["batch_id"] == batch_id and bodies[0]["data"]["counts"]["completed"] == 4


def test_ensemble_items_and_version_draws_go_through_the_normal_dispatch(api: Any, runtime: Any) -> None:
    # GIVEN the complaint-triage ensemble's samples, and complaints for triage-product (split 90/10)
    complaints = [json.loads(p.read_text()) for p in sorted((EXAMPLES / "complaint-triage" / "samples").iterdir())]
    texts = [json.loads(p.read_text()) for p in sorted((EXAMPLES / "triage-product" / "samples").iterdir())]

    # WHEN each goes in as a batch
    ensemble = wait(api, run(api, "complaint-triage", jsonl(complaints)))
    split = wait(api, run(api, "triage-product", jsonl(texts * 5), max_concurrency=4))

    # THEN every ensemble item completed with its steps (its own execution), outputs in the result
    assert ensemble["status"] == "COMPLETED", ensemble
    lines = results(api, ensemble)
    assert len(lines) == len(complaints) and all(row["output"] is not None for row in lines)
    item = api.status(lines[0]["prediction_id"])
    assert item["steps"] and item["metadata"]["batch_id"] == ensemble["batch_id"]
    # AND each triage-product item had its version drawn from the split, as a single prediction
    assert split["status"] == "COMPLETED", split
    versions = {api.status(row["prediction_id"])["model"]["version"] for row in results(api, split)}
    assert versions <= {"1.0.0", "1.1.0"} and versions


def test_another_clients_batch_is_a_404_and_bad_requests_say_why(api: Any) -> None:
    from ensemble_gateway.client import GatewayClientError

    with pytest.raises(GatewayClientError) as missing:
        api.batch("b20200101000000abcdefabcdef")
    assert missing.value.status == 404
    with pytest.raises(GatewayClientError) as refused:
        api.submit_batch("echo", max_concurrency=1000)
    assert refused.value.status == 400 and "max_concurrency" in str(refused.value)

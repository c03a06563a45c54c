"""Batches (issue 17): a manifest becomes items (predictions) at most ``max_concurrency`` at a
time, and one ordered result file with per-line errors.

The tests play the batch-driver function (``run_batch_ticks``: every queued tick), SageMaker's
notifications (``finish``), the sweeper and webhook delivery against the in-memory fakes.
"""

from __future__ import annotations

import json
import random
from datetime import timedelta
from typing import Any

import pytest
from gateway_fakes import BUCKET, T0, FakeSender, World, make_world, model_service, new_client

from ensemble_gateway.domain.api import NewBatchRequest
from ensemble_gateway.domain.delivery import WebhookDelivery
from ensemble_gateway.domain.errors import ConflictError, InvalidRequestError, ModelInvocationError, NotFoundError
from ensemble_gateway.domain.models import (
    Batch,
    BatchStatus,
    CallbackKind,
    PredictionStatus,
    Service,
    batch_item_id,
)
from ensemble_gateway.domain.ports import RealtimeResponse
from ensemble_gateway.domain.records import batch_result_key, manifest_upload_key
from ensemble_gateway.domain.rollout import apply_entry

OWNER = new_client("c_batch")
HOOK = "https://hooks.example.com/batches"


def echo_world(*services: Service, fail_on: str | None = None) -> World:
    """A world whose real-time models answer ``{"echo": <input>}`` (and fail inputs holding ``fail_on``)."""
    world = make_world([model_service("echo", "realtime"), model_service("scorer", "async"), *services], [OWNER])

    def answer(endpoint: str, body: bytes, content_type: str, inference_id: str, *, accept: str) -> RealtimeResponse:
        world.models.realtime_calls.append({"endpoint": endpoint, "body": body, "inference_id": inference_id})
        if fail_on is not None and fail_on.encode() in body:
            raise ModelInvocationError(f"the model refused {body.decode()[:40]}")
        return RealtimeResponse(body=json.dumps({"echo": json.loads(body)}).encode(), content_type="application/json")

    world.models.invoke_realtime = answer  # type: ignore[method-assign]
    return world


def submit(world: World, manifest: bytes | None, **fields: Any) -> str:
    """POST /batches, then the manifest's upload and its S3 event (None: no upload yet)."""
    batches = world.use_cases.batches
    assert batches is not None
    answer = batches.submit(OWNER, NewBatchRequest.model_validate({"service": "echo", **fields}))
    if manifest is not None:
        upload(world, answer.batch_id, manifest)
    return answer.batch_id


def upload(world: World, batch_id: str, manifest: bytes) -> None:
    key = manifest_upload_key(batch_id)
    world.objects.put_upload(key, manifest, "application/x-ndjson")
    driver = world.use_cases.batch_driver
    assert driver is not None
    driver.manifest_uploaded(BUCKET, key)


def jsonl(*values: Any) -> bytes:
    return b"".join(json.dumps(value).encode() + b"\n" for value in values)


def batch(world: World, batch_id: str) -> Batch:
    assert world.batch_store is not None
    found = world.batch_store.get(batch_id)
    assert found is not None
    return found


def result_lines(world: World, batch_id: str) -> list[dict[str, Any]]:
    body = world.objects.read(f"s3://{BUCKET}/{batch_result_key(batch_id)}")
    return [json.loads(line) for line in body.decode().splitlines()]


def document(world: World, batch_id: str) -> dict[str, Any]:
    batches = world.use_cases.batches
    assert batches is not None
    return batches.document(batches.get_owned(OWNER, batch_id)).model_dump(mode="json")


def running_now(world: World, batch_id: str) -> int:
    assert world.batch_store is not None
    return world.batch_store.running_items(world.store, batch_id)


def finish_async(world: World, item_id: str, output: Any) -> None:
    """SageMaker's success notification of an async item, its output in the bucket."""
    uri = world.objects.write(f"outputs/{item_id}.out", json.dumps(output).encode(), "application/json")
    world.gateway.finish(item_id, succeeded=True, output_uri=uri, output_content_type="application/json")


# ----------------------------------------------------------------------------------------------
# results
# ----------------------------------------------------------------------------------------------
def test_every_line_becomes_an_item_and_the_result_lists_them_in_input_order_with_line_numbers() -> None:
    # GIVEN a batch of 25 JSON inputs to a real-time service, three at a time
    world = echo_world()
    inputs = [{"n": n, "text": f"complaint {n}"} for n in range(1, 26)]
    batch_id = submit(world, jsonl(*inputs), max_concurrency=3, metadata={"run": "nightly"})

    # WHEN the driver's ticks run until none is left
    world.run_batch_ticks()

    # THEN the batch COMPLETED with every item counted once
    finished = document(world, batch_id)
    assert finished["status"] == "COMPLETED"
    assert finished["counts"] == {"total": 25, "pending": 0, "running": 0, "completed": 25, "failed": 0, "cancelled": 0}
    assert finished["finished_at"] is not None and finished["result"]["content_type"] == "application/x-ndjson"
    # AND the result has one line per input, in input order, each with its line, ID and output
    lines = result_lines(world, batch_id)
    assert [row["line"] for row in lines] == list(range(1, 26))
    assert [row["prediction_id"] for row in lines] == [batch_item_id(batch_id, n) for n in range(1, 26)]
    assert [row["output"] for row in lines] == [{"echo": value} for value in inputs]
    assert {row["status"] for row in lines} == {"COMPLETED"}
    # AND each item is a prediction of the client, with the batch's metadata, its batch and line
    item = world.use_cases.read_model.get_owned(OWNER, batch_item_id(batch_id, 7))
    assert item.metadata == {"run": "nightly", "batch_id": batch_id, "line": "7"}
    assert item.callback.kind is CallbackKind.BATCH
    # AND the model was called once per line
    assert len(world.models.realtime_calls) == 25


def test_at_most_max_concurrency_items_run_at_once_measured_over_the_whole_batch() -> None:
    # GIVEN 40 inputs to an async service, at most 5 at a time
    world = echo_world()
    batch_id = submit(world, jsonl(*range(40)), service="scorer", max_concurrency=5)
    world.run_batch_ticks()
    shuffled = random.Random(17)
    observed = []

    # WHEN items finish in a random order, the driver ticking after each end
    while True:
        observed.append(running_now(world, batch_id))
        running = [
            pid for pid, r in world.store.records.items() if pid.startswith(batch_id) and r["status"] == "RUNNING"
        ]
        if not running:
            break
        finish_async(world, shuffled.choice(running), {"score": 1})
        world.run_batch_ticks()

    # THEN the number of RUNNING items never exceeded 5, and reached it
    assert max(observed) == 5
    # AND every item ran once
    assert len(world.models.async_calls) == 40
    assert document(world, batch_id)["status"] == "COMPLETED"


def test_bad_lines_fail_alone_with_the_reason_and_the_others_complete() -> None:
    # GIVEN a service accepting inputs of at most 64 bytes, and a manifest with an invalid line
    # and a line too large among good ones (and an empty trailing line)
    world = echo_world(model_service("small", "realtime", max_bytes=64))
    manifest = b'{"a": 1}\n{not json\n' + json.dumps({"big": "x" * 200}).encode() + b'\n{"a": 4}\n'
    batch_id = submit(world, manifest, service="small", tolerated_failure_percent=50)

    # WHEN the batch runs
    world.run_batch_ticks()

    # THEN the bad lines failed with their reasons, the others completed
    lines = result_lines(world, batch_id)
    assert [(row["line"], row["status"]) for row in lines] == [
        (1, "COMPLETED"),
        (2, "FAILED"),
        (3, "FAILED"),
        (4, "COMPLETED"),
    ]
    assert lines[1]["error"]["code"] == "InvalidLine"
    assert lines[2]["error"]["code"] == "LineTooLarge" and "64 bytes" in lines[2]["error"]["message"]
    assert document(world, batch_id)["status"] == "COMPLETED_WITH_FAILURES"
    # AND the failed lines are items too, FAILED with the same reason (GET /predictions/{id})
    bad = world.use_cases.read_model.get_owned(OWNER, batch_item_id(batch_id, 2))
    assert bad.status is PredictionStatus.FAILED and bad.error is not None and bad.error.code == "InvalidLine"
    # AND only the good lines reached the model
    assert len(world.models.realtime_calls) == 2


def test_crossing_the_failure_threshold_fails_the_batch_and_starts_nothing_new() -> None:
    # GIVEN 10 inputs, one at a time, 10 % of failures tolerated, and a model failing the first three
    world = echo_world(fail_on='"fail"')
    inputs = [{"fail": n} for n in range(3)] + [{"ok": n} for n in range(7)]
    batch_id = submit(world, jsonl(*inputs), max_concurrency=1, tolerated_failure_percent=10)

    # WHEN the batch runs
    world.run_batch_ticks()

    # THEN it is FAILED once 2 of 10 failed (more than 10 %), saying why
    finished = document(world, batch_id)
    assert finished["status"] == "FAILED"
    assert finished["error"]["code"] == "FailureThreshold" and "2 of 10" in finished["error"]["message"]
    assert finished["finished_at"] is not None
    # AND no line started after that: the model saw two inputs
    assert len(world.models.realtime_calls) == 2
    # AND the result still has every line: the failed ones, and the others CANCELLED saying why
    lines = result_lines(world, batch_id)
    assert [row["status"] for row in lines] == ["FAILED", "FAILED"] + ["CANCELLED"] * 8
    assert lines[5]["error"]["code"] == "NotStarted" and "FAILED" in lines[5]["error"]["message"]


def test_a_cancelled_batch_cancels_its_running_items_starts_nothing_and_writes_its_result() -> None:
    # GIVEN 10 inputs to an async service, 3 at a time, the first three running
    world = echo_world()
    batch_id = submit(world, jsonl(*range(10)), service="scorer", max_concurrency=3)
    world.run_batch_ticks()
    assert running_now(world, batch_id) == 3
    batches = world.use_cases.batches
    assert batches is not None

    # WHEN its owner cancels it
    cancelled = batches.cancel(OWNER, batch_id)
    world.run_batch_ticks()

    # THEN it is CANCELLED at once, and its running items are cancelled
    assert cancelled.status is BatchStatus.CANCELLED
    assert running_now(world, batch_id) == 0
    assert world.store.get(batch_item_id(batch_id, 1)).status is PredictionStatus.CANCELLED  # type: ignore[union-attr]
    # AND nothing new started
    assert len(world.models.async_calls) == 3
    # AND the result lists every line: the three cancelled, the others never started
    finished = document(world, batch_id)
    assert finished["finished_at"] is not None
    assert finished["counts"]["cancelled"] == 3
    lines = result_lines(world, batch_id)
    assert [row["status"] for row in lines] == ["CANCELLED"] * 10
    assert lines[9]["error"]["code"] == "NotStarted"
    # AND a late answer of a cancelled item changes nothing
    finish_async(world, batch_item_id(batch_id, 2), {"late": True})
    world.run_batch_ticks()
    assert document(world, batch_id)["counts"]["cancelled"] == 3
    # AND cancelling again answers it as it is; a COMPLETED batch cannot be cancelled
    assert batches.cancel(OWNER, batch_id).status is BatchStatus.CANCELLED
    done = submit(world, jsonl(1))
    world.run_batch_ticks()
    with pytest.raises(ConflictError, match="COMPLETED"):
        batches.cancel(OWNER, done)


def test_duplicate_manifest_events_and_ticks_create_and_count_nothing_twice() -> None:
    # GIVEN a batch whose manifest event is delivered three times, each tick twice
    world = echo_world()
    batch_id = submit(world, jsonl(*range(12)), service="scorer", max_concurrency=4)
    driver = world.use_cases.batch_driver
    assert driver is not None
    for _ in range(2):
        driver.manifest_uploaded(BUCKET, manifest_upload_key(batch_id))

    # WHEN every tick runs twice, and every item's notification comes twice
    for _ in range(30):
        jobs = world.batch_queue.take()
        for job in jobs + jobs:
            driver.tick(job["batch_id"])
        running = [
            pid for pid, r in world.store.records.items() if pid.startswith(batch_id) and r["status"] == "RUNNING"
        ]
        for item_id in running:
            finish_async(world, item_id, {"id": item_id})
            finish_async(world, item_id, {"id": item_id})

    # THEN each line has one item, sent once to the model, counted once
    assert len(world.models.async_calls) == 12
    assert len({call["inference_id"] for call in world.models.async_calls}) == 12
    finished = document(world, batch_id)
    assert finished["status"] == "COMPLETED"
    assert finished["counts"]["completed"] == 12 and finished["counts"]["total"] == 12
    assert len(result_lines(world, batch_id)) == 12


def test_a_tick_that_crashes_after_creating_some_items_is_redone_without_duplicates() -> None:
    # GIVEN a batch of 10 whose first tick crashes after creating four items
    world = echo_world()
    batch_id = submit(world, None, max_concurrency=10)
    real_create = world.store.create
    created: list[str] = []

    def crashing_create(prediction: Any, **kwargs: Any) -> bool:
        if len(created) == 4:
            raise RuntimeError("the function was killed mid-tick")
        created.append(prediction.prediction_id)
        return real_create(prediction, **kwargs)

    world.store.create = crashing_create  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        upload(world, batch_id, jsonl(*range(10)))
    assert len(created) == 4
    world.store.create = real_create  # type: ignore[method-assign]

    # WHEN the S3 event's message is redelivered (the same tick, run again)
    driver = world.use_cases.batch_driver
    assert driver is not None
    driver.manifest_uploaded(BUCKET, manifest_upload_key(batch_id))
    world.run_batch_ticks()

    # THEN every line ran once: no duplicate item, call or count
    assert sorted(call["inference_id"] for call in world.models.realtime_calls) == [
        batch_item_id(batch_id, n) for n in range(1, 11)
    ]
    finished = document(world, batch_id)
    assert finished["status"] == "COMPLETED" and finished["counts"]["completed"] == 10
    assert [row["output"] for row in result_lines(world, batch_id)] == [{"echo": n} for n in range(10)]


def test_a_lost_count_is_made_by_the_sweepers_tick_of_the_stalled_batch() -> None:
    # GIVEN a batch of 3 async items, the count of the second item's end lost (the store failed)
    world = echo_world()
    batch_id = submit(world, jsonl(1, 2, 3), service="scorer", max_concurrency=3)
    world.run_batch_ticks()
    assert world.batch_store is not None
    finish_async(world, batch_item_id(batch_id, 1), 1)
    world.batch_store.fail_next_outcome = RuntimeError("DynamoDB throttled")
    finish_async(world, batch_item_id(batch_id, 2), 2)
    finish_async(world, batch_item_id(batch_id, 3), 3)
    world.run_batch_ticks()
    assert document(world, batch_id)["finished_at"] is None  # stalled: one end never counted

    # WHEN two minutes pass without progress and the sweeper runs, then its tick
    world.clock.advance(minutes=3)
    world.gateway.sweep()
    world.run_batch_ticks()

    # THEN the batch finished with every item counted once
    finished = document(world, batch_id)
    assert finished["status"] == "COMPLETED"
    assert finished["counts"]["completed"] == 3
    assert [row["output"] for row in result_lines(world, batch_id)] == [1, 2, 3]


# ----------------------------------------------------------------------------------------------
# notification
# ----------------------------------------------------------------------------------------------
def test_one_webhook_when_the_batch_ends_and_none_for_its_items() -> None:
    # GIVEN a batch asking for a webhook
    world = echo_world()
    batch_id = submit(world, jsonl(1, 2, 3), notification={"webhook": {"url": HOOK}})

    # WHEN it runs to its end
    world.run_batch_ticks()

    # THEN exactly one webhook job was queued: the batch's
    jobs = world.webhooks.take()
    assert jobs == [{"batch_id": batch_id, "event_type": "batch.completed", "attempt": 0}]
    # AND delivering it POSTs the batch document, once
    batches = world.use_cases.batches
    sender = FakeSender(204)
    delivery = WebhookDelivery(
        ports=world.use_cases.ports,
        documents=world.use_cases.read_model,
        clients=world.clients,
        sender=sender,
        clock=world.clock,
        batches=batches,
    )
    assert delivery.deliver(jobs[0]) == "delivered"
    assert delivery.deliver(jobs[0]) == "already-delivered"
    (sent,) = sender.sent
    body = json.loads(sent.body)
    assert body["type"] == "batch.completed" and body["data"]["batch_id"] == batch_id
    assert body["data"]["counts"]["completed"] == 3
    # AND a later tick announces nothing again
    world.batch_queue.enqueue({"batch_id": batch_id})
    world.run_batch_ticks()
    assert world.webhooks.take() == []


def test_a_batch_asking_for_eventbridge_puts_one_event_when_it_ends() -> None:
    # GIVEN a batch asking for an event
    world = echo_world()
    batch_id = submit(world, jsonl(1, 2), notification={"eventbridge": {}})

    # WHEN it runs to its end, and is ticked again
    world.run_batch_ticks()
    world.batch_queue.enqueue({"batch_id": batch_id})
    world.run_batch_ticks()

    # THEN one batch.completed event carries the batch document
    assert world.events is not None
    published = [e for e in world.events.events if e.detail_type.startswith("batch.")]
    assert [e.detail["event_id"] for e in published] == [f"{batch_id}:batch.completed"]
    assert published[0].detail["data"]["counts"]["total"] == 2


# ----------------------------------------------------------------------------------------------
# items are predictions: versions, shadows, ensembles
# ----------------------------------------------------------------------------------------------
def test_items_go_through_the_normal_dispatch_version_draws_and_shadows_apply() -> None:
    # GIVEN an async service with a shadow version, and an ensemble
    first = apply_entry(None, model_service("scorer", "async"), T0)
    shadowed = apply_entry(
        first,
        Service.model_validate(
            {
                "name": "scorer",
                "kind": "model",
                "version": "1.1.0",
                "model": {"endpoint_name": "scorer-v110", "invocation": "async"},
                "shadow": ["1.1.0"],
            }
        ),
        T0,
    )
    ensemble = Service.model_validate(
        {
            "name": "pipeline",
            "kind": "ensemble",
            "ensemble": {
                "definition": "p.asl.json",
                "steps": {"score": {"service": "scorer", "mapping": "$.input"}},
                "state_machine_arn": "arn:aws:states:us-east-1:123456789012:stateMachine:gw-pipeline",
                "final_step": "score",
            },
        }
    )
    world = echo_world(shadowed, ensemble)
    world.catalog.put(shadowed)

    # WHEN a batch of 3 runs on each
    scored = submit(world, jsonl(1, 2, 3), service="scorer")
    piped = submit(world, jsonl({"a": 1}, {"a": 2}), service="pipeline")
    world.run_batch_ticks()

    # THEN each scorer item went to the served version and its shadow was queued
    assert [call["endpoint"] for call in world.models.async_calls] == ["scorer-endpoint"] * 3
    assert len(world.shadow_queue.take()) == 3
    item = world.store.get(batch_item_id(scored, 1))
    assert item is not None and item.model.version == "1.0.0" and item.shadow_versions == ["1.1.0"]
    # AND each ensemble item started its own execution, named after the item
    assert [name for _, name, _ in world.workflows.started] == [batch_item_id(piped, 1), batch_item_id(piped, 2)]


# ----------------------------------------------------------------------------------------------
# intake, ownership, expiry
# ----------------------------------------------------------------------------------------------
def test_a_manifest_uri_must_be_in_a_listed_bucket_and_never_the_gateways_own() -> None:
    # GIVEN a gateway that reads client manifests from "client-data" only
    world = echo_world()
    batches = world.use_cases.batches
    assert batches is not None

    # THEN a manifest in another bucket, or in the gateway's own, is refused
    with pytest.raises(InvalidRequestError, match="client-data"):
        batches.submit(OWNER, NewBatchRequest(service="echo", manifest_uri="s3://elsewhere/m.jsonl"))
    with pytest.raises(InvalidRequestError, match="own bucket"):
        batches.submit(OWNER, NewBatchRequest(service="echo", manifest_uri=f"s3://{BUCKET}/outputs/x"))
    # AND one in the listed bucket runs, with no upload form
    world.objects.objects["s3://client-data/night.jsonl"] = (jsonl(5, 6), "application/x-ndjson")
    answer = batches.submit(OWNER, NewBatchRequest(service="echo", manifest_uri="s3://client-data/night.jsonl"))
    assert answer.upload is None
    world.run_batch_ticks()
    assert [row["output"] for row in result_lines(world, answer.batch_id)] == [{"echo": 5}, {"echo": 6}]


def test_an_unreadable_manifest_uri_fails_the_batch_with_the_reason() -> None:
    world = echo_world()
    batches = world.use_cases.batches
    assert batches is not None
    # WHEN the named manifest does not exist
    answer = batches.submit(OWNER, NewBatchRequest(service="echo", manifest_uri="s3://client-data/missing.jsonl"))
    world.run_batch_ticks()
    # THEN the batch is FAILED saying why, finished with an empty result
    finished = document(world, answer.batch_id)
    assert finished["status"] == "FAILED" and finished["error"]["code"] == "ManifestUnreadable"
    assert finished["finished_at"] is not None


def test_a_batch_whose_manifest_never_came_fails_when_its_upload_form_expires() -> None:
    # GIVEN a batch awaiting its manifest
    world = echo_world()
    batch_id = submit(world, None)
    assert document(world, batch_id)["status"] == "PENDING_UPLOAD"

    # WHEN its form has expired and the sweeper runs
    world.clock.advance(seconds=900 + 31)
    world.gateway.sweep()
    world.run_batch_ticks()

    # THEN it is FAILED, saying why, and finished
    finished = document(world, batch_id)
    assert finished["status"] == "FAILED" and finished["error"]["code"] == "UploadExpired"
    assert finished["finished_at"] is not None and finished["counts"]["total"] == 0


def test_another_clients_batch_is_not_found_and_idempotency_keys_replay() -> None:
    world = echo_world()
    batches = world.use_cases.batches
    assert batches is not None
    request = NewBatchRequest(service="echo", max_concurrency=2)
    first = batches.submit(OWNER, request, idempotency_key="k-1")
    # THEN the same key and body answer the same batch, with a form while it is awaited
    again = batches.submit(OWNER, request, idempotency_key="k-1")
    assert again.batch_id == first.batch_id and again.upload is not None
    # AND another body with the key is a conflict
    with pytest.raises(ConflictError):
        batches.submit(OWNER, NewBatchRequest(service="echo", max_concurrency=3), idempotency_key="k-1")
    # AND another client gets a 404
    with pytest.raises(NotFoundError):
        batches.get_owned(new_client("c_other"), first.batch_id)
    with pytest.raises(NotFoundError):
        batches.get_owned(OWNER, "../etc")


def test_text_batches_take_json_strings_as_their_lines_text() -> None:
    world = echo_world(model_service("texty", "async", content_types=["text/plain"]))
    batch_id = submit(
        world, jsonl("my card was charged twice", {"not": "text"}), service="texty", tolerated_failure_percent=100
    )
    world.run_batch_ticks()
    item = world.store.get(batch_item_id(batch_id, 1))
    assert item is not None and item.input_uri is not None
    assert world.objects.read(item.input_uri) == b"my card was charged twice"
    assert item.content_type == "text/plain"
    bad = world.store.get(batch_item_id(batch_id, 2))
    assert bad is not None and bad.status is PredictionStatus.FAILED


def test_reserved_metadata_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="batch_id"):
        NewBatchRequest.model_validate({"service": "echo", "metadata": {"batch_id": "x"}})
    with pytest.raises(ValueError):
        NewBatchRequest.model_validate({"service": "echo", "max_concurrency": 101})


def test_batches_expire_with_their_retention() -> None:
    world = echo_world()
    batch_id = submit(world, jsonl(1))
    world.run_batch_ticks()
    world.clock.set(T0 + timedelta(days=31))
    with pytest.raises(NotFoundError):
        document(world, batch_id)


def test_a_lost_first_tick_of_a_batch_given_by_uri_is_queued_again_by_the_sweeper() -> None:
    # GIVEN a batch given by manifest_uri whose first tick was lost
    world = echo_world()
    batches = world.use_cases.batches
    assert batches is not None
    world.objects.objects["s3://client-data/m.jsonl"] = (jsonl(1), "application/x-ndjson")
    answer = batches.submit(OWNER, NewBatchRequest(service="echo", manifest_uri="s3://client-data/m.jsonl"))
    assert world.batch_queue.take() == [{"batch_id": answer.batch_id, "manifest": True}]

    # WHEN two minutes pass and the sweeper runs, then the driver
    world.clock.advance(minutes=3)
    world.gateway.sweep()
    world.run_batch_ticks()

    # THEN the batch ran (it is not expired: it has no upload form)
    assert document(world, answer.batch_id)["status"] == "COMPLETED"


def test_lines_are_read_in_ranges_across_chunk_boundaries_and_long_lines_are_skipped_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN ranged reads of 7 bytes (lines span many of them), a 40-byte limit, CRLF line ends,
    # a line far longer than a read, and a last line without its newline
    from ensemble_gateway.domain import batch_driver

    monkeypatch.setattr(batch_driver, "CHUNK_BYTES", 7)
    world = echo_world(model_service("small", "realtime", max_bytes=40))
    manifest = b'{"a": 1}\r\n' + json.dumps({"long": "y" * 100}).encode() + b'\n"two"\n{"b": [1, 2, 3]}'
    batch_id = submit(world, manifest, service="small", tolerated_failure_percent=50, max_concurrency=2)

    # WHEN the batch runs
    world.run_batch_ticks()

    # THEN every line was read whole, in order, the long one failed alone
    lines = result_lines(world, batch_id)
    assert [(row["line"], row["status"]) for row in lines] == [
        (1, "COMPLETED"),
        (2, "FAILED"),
        (3, "COMPLETED"),
        (4, "COMPLETED"),
    ]
    assert [row["output"] for row in lines if "output" in row] == [
        {"echo": {"a": 1}},
        {"echo": "two"},
        {"echo": {"b": [1, 2, 3]}},
    ]
    assert lines[1]["error"]["code"] == "LineTooLarge"
    # AND the manifest was read in ranges, never whole
    assert world.objects.range_reads > 10

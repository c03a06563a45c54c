"""The batch handlers take their use cases as ``dependencies``: sample events through the real
handlers (Powertools decorators included), the domain wired to in-memory fakes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from gateway_fakes import BUCKET, World, make_world, model_service, new_client
from test_handlers import ENVIRONMENT, ROLE, context, iam, sample

from ensemble_gateway import bootstrap
from ensemble_gateway.domain.models import Batch, BatchStatus, PredictionStatus, batch_item_id
from ensemble_gateway.domain.records import manifest_upload_key
from ensemble_gateway.handlers import batch_driver, batches

SAMPLE_BATCH = "b20261122000000abcdef012345"


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    bootstrap.reset()
    yield
    bootstrap.reset()


@pytest.fixture
def world() -> World:
    intake = new_client("c_intake").model_copy(update={"principal_arn": ROLE})
    return make_world(services=[model_service("fraud-score"), model_service("echo", "realtime")], clients=[intake])


def dependencies(world: World) -> batches.Dependencies:
    assert world.use_cases.batches is not None
    return batches.Dependencies(authenticator=iam(world), batches=world.use_cases.batches)


def api_event(method: str, path: str, body: Any = None, resource: str | None = None) -> dict[str, Any]:
    """The sample GET /batches/{batch_id} event, as another method, path and body."""
    event = sample("batches")
    event.update(
        httpMethod=method, path=path, resource=resource or path, body=None if body is None else json.dumps(body)
    )
    event["requestContext"] = {**event["requestContext"], "httpMethod": method, "resourcePath": resource or path}
    if body is not None:
        event["headers"] = {**event["headers"], "Content-Type": "application/json"}
    return event


def stored_batch(world: World, **fields: Any) -> None:
    assert world.batch_store is not None
    world.batch_store.create(Batch(batch_id=SAMPLE_BATCH, service="fraud-score", owner="c_intake", **fields))


def test_post_batches_accepts_a_batch_and_answers_its_upload_form(world: World) -> None:
    # WHEN a signed POST /batches comes
    event = api_event("POST", "/batches", {"service": "fraud-score", "max_concurrency": 4})
    answer = batches.handler(event, context("batches"), dependencies=dependencies(world))

    # THEN it is accepted (202), awaiting its manifest, with a form for batches/{id}/manifest.jsonl
    assert answer["statusCode"] == 202, answer["body"]
    body = json.loads(answer["body"])
    assert body["status"] == "PENDING_UPLOAD" and body["service"] == "fraud-score"
    assert body["upload"]["fields"]["key"] == manifest_upload_key(body["batch_id"])


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"service": "fraud-score", "max_concurrency": 0}, 400, "max_concurrency"),
        ({"service": "fraud-score", "tolerated_failure_percent": 101}, 400, "tolerated_failure_percent"),
        ({"service": "fraud-score", "metadata": {"line": "1"}}, 400, "line"),
        ({"service": "fraud-score", "manifest_uri": "s3://elsewhere/m.jsonl"}, 400, "upload the manifest"),
        ({"service": "fraud-score", "bogus": 1}, 400, "unknown field 'bogus'"),
        ({"service": "nope"}, 404, "does not exist"),
        (["not", "an", "object"], 400, "JSON object"),
    ],
)
def test_post_batches_refuses_what_it_cannot_run_with_a_message_and_no_traceback(
    world: World, body: Any, status: int, words: str
) -> None:
    answer = batches.handler(api_event("POST", "/batches", body), context("batches"), dependencies=dependencies(world))
    assert answer["statusCode"] == status, answer["body"]
    assert words in json.loads(answer["body"])["message"]
    assert "Traceback" not in answer["body"]


def test_get_batch_answers_the_owners_batch_and_404s_anyone_elses(world: World) -> None:
    # GIVEN the sample batch of the sample event's caller
    stored_batch(world, status=BatchStatus.RUNNING, total=10, next_line=4, completed=1)

    # WHEN the sample GET comes
    answer = batches.handler(sample("batches"), context("batches"), dependencies=dependencies(world))

    # THEN it answers the batch's document with its counts
    assert answer["statusCode"] == 200, answer["body"]
    body = json.loads(answer["body"])
    assert body["counts"] == {"total": 10, "pending": 7, "running": 2, "completed": 1, "failed": 0, "cancelled": 0}
    # AND another client's batch is not found
    assert world.batch_store is not None
    world.batch_store.records[SAMPLE_BATCH]["owner"] = "c_other"
    other = batches.handler(sample("batches"), context("batches"), dependencies=dependencies(world))
    assert other["statusCode"] == 404


def test_cancel_batch_cancels_and_refuses_a_finished_batch(world: World) -> None:
    stored_batch(world, status=BatchStatus.RUNNING, total=3)
    path = f"/batches/{SAMPLE_BATCH}/cancel"
    event = api_event("POST", path, resource="/batches/{batch_id}/cancel")
    event["pathParameters"] = {"batch_id": SAMPLE_BATCH}
    answer = batches.handler(event, context("batches"), dependencies=dependencies(world))
    assert answer["statusCode"] == 200, answer["body"]
    assert json.loads(answer["body"])["status"] == "CANCELLED"
    # AND the driver was ticked to cancel its items and write its result
    assert world.batch_queue.take() == [{"batch_id": SAMPLE_BATCH}]
    assert world.batch_store is not None
    world.batch_store.records[SAMPLE_BATCH]["status"] = "COMPLETED"
    refused = batches.handler(event, context("batches"), dependencies=dependencies(world))
    assert refused["statusCode"] == 409


def test_the_batch_driver_handler_ticks_batches_and_accepts_manifest_events(world: World) -> None:
    # GIVEN a batch of echo awaiting its manifest, then the manifest uploaded
    assert world.batch_store is not None and world.use_cases.batch_driver is not None
    world.batch_store.create(Batch(batch_id=SAMPLE_BATCH, service="echo", owner="c_intake"))
    world.objects.put_upload(manifest_upload_key(SAMPLE_BATCH), b'{"a": 1}\n{"a": 2}\n')
    s3_event = sample("process_input")
    message = json.loads(s3_event["Records"][0]["body"])
    message["Records"][0]["s3"]["object"]["key"] = manifest_upload_key(SAMPLE_BATCH)
    message["Records"][0]["s3"]["bucket"]["name"] = BUCKET
    s3_event["Records"][0]["body"] = json.dumps(message)

    # WHEN S3's event, then the sample tick, reach the driver function
    driver = world.use_cases.batch_driver
    first = batch_driver.handler(s3_event, context("batch-driver"), dependencies=driver)
    second = batch_driver.handler(sample("batch_driver"), context("batch-driver"), dependencies=driver)

    # THEN both records succeeded and the batch ran to its end
    assert first == {"batchItemFailures": []} and second == {"batchItemFailures": []}
    batch = world.batch_store.get(SAMPLE_BATCH)
    assert batch is not None and batch.status is BatchStatus.COMPLETED and batch.completed == 2
    item = world.store.get(batch_item_id(SAMPLE_BATCH, 2))
    assert item is not None and item.status is PredictionStatus.COMPLETED

"""The BatchStore contract (domain/ports.py), on the fake and on DynamoDB (the template's table)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from gateway_fakes import FakeBatchStore, FakeClock

from ensemble_gateway.domain.models import (
    Batch,
    BatchOutcome,
    BatchStatus,
    Callback,
    CallbackKind,
    LineRange,
    PredictionError,
    PredictionStatus,
)

RUNNING = BatchStatus.RUNNING


@pytest.fixture
def batches(store_kind: str, clock: FakeClock, request: pytest.FixtureRequest) -> Any:
    """A BatchStore: FakeBatchStore, or DynamoBatchStore on the template's batches table."""
    if store_kind == "fake":
        return FakeBatchStore(clock)
    from ensemble_gateway.adapters.dynamodb import DynamoBatchStore

    name = request.getfixturevalue("new_table")("BatchesTable")
    return DynamoBatchStore(name, request.getfixturevalue("dynamodb_client"))


def new(clock: FakeClock, batch_id: str = "b20261122090000aaaaaaaaaaaa", **fields: Any) -> Batch:
    return Batch(
        batch_id=batch_id,
        service="echo",
        owner=fields.pop("owner", "c1"),
        created_at=clock(),
        updated_at=clock(),
        expires_at=int((clock() + timedelta(days=30)).timestamp()),
        **fields,
    )


def outcome(line: int, status: PredictionStatus = PredictionStatus.COMPLETED, **fields: Any) -> BatchOutcome:
    return BatchOutcome(line=line, prediction_id=f"b20261122090000aaaaaaaaaaaa-{line:06d}", status=status, **fields)


def test_a_batch_is_created_once_and_read_back_as_written(batches: Any, clock: FakeClock) -> None:
    # GIVEN a batch with a callback, metadata and an idempotency key
    batch = new(
        clock,
        callback=Callback(kind=CallbackKind.WEBHOOK, target="https://hooks.example.com/b"),
        metadata={"run": "nightly"},
        idempotency_key="k1",
        request_hash="h",
        max_concurrency=7,
    )

    # WHEN it is created twice
    first, second = batches.create(batch), batches.create(batch)

    # THEN only the first creates it, and it reads back as written, also by its key
    assert (first, second) == (True, False)
    stored = batches.get(batch.batch_id)
    assert stored == batch
    assert batches.find_by_idempotency_key("c1", "k1") == batch
    assert batches.find_by_idempotency_key("c2", "k1") is None
    assert batches.get("b20261122090000bbbbbbbbbbbb") is None


def test_transitions_are_conditional_on_the_status(batches: Any, clock: FakeClock) -> None:
    batches.create(new(clock))
    moved = batches.transition(
        "b20261122090000aaaaaaaaaaaa",
        [BatchStatus.PENDING_UPLOAD],
        RUNNING,
        {"started_at": clock(), "manifest_size": 10},
    )
    assert moved is not None and moved.status is RUNNING and moved.manifest_size == 10
    # THEN a transition from a status it is not in changes nothing
    assert batches.transition("b20261122090000aaaaaaaaaaaa", [BatchStatus.PENDING_UPLOAD], BatchStatus.FAILED) is None
    assert batches.get("b20261122090000aaaaaaaaaaaa").status is RUNNING
    # AND a field set to None is removed
    batches.update("b20261122090000aaaaaaaaaaaa", {"manifest_size": None, "total": 3})
    stored = batches.get("b20261122090000aaaaaaaaaaaa")
    assert stored.manifest_size is None and stored.total == 3


def test_lines_are_taken_from_the_cursor_read_once_and_one_range_at_a_time(batches: Any, clock: FakeClock) -> None:
    # GIVEN a running batch at line 1
    batches.create(new(clock, status=RUNNING, total=10))
    taken = LineRange(first_line=1, first_offset=0, count=3)

    # WHEN two ticks that read the cursor at line 1 both take lines 1-3
    first = batches.take_lines("b20261122090000aaaaaaaaaaaa", 1, taken, 42)
    second = batches.take_lines("b20261122090000aaaaaaaaaaaa", 1, taken, 42)

    # THEN only the first takes them: the cursor moved past them, the range is pending
    assert first is not None and second is None
    assert (first.next_line, first.next_offset, first.pending_range) == (4, 42, taken)
    # AND no other range is taken while it is pending, even from the new cursor
    assert (
        batches.take_lines("b20261122090000aaaaaaaaaaaa", 4, LineRange(first_line=4, first_offset=42, count=1), 50)
        is None
    )
    # AND releasing another range leaves it; releasing it frees the next take
    batches.release_lines("b20261122090000aaaaaaaaaaaa", 2)
    assert batches.get("b20261122090000aaaaaaaaaaaa").pending_range == taken
    batches.release_lines("b20261122090000aaaaaaaaaaaa", 1)
    assert batches.get("b20261122090000aaaaaaaaaaaa").pending_range is None
    assert batches.take_lines("b20261122090000aaaaaaaaaaaa", 4, LineRange(first_line=4, first_offset=42, count=1), 50)


def test_no_lines_are_taken_from_a_batch_that_is_not_running(batches: Any, clock: FakeClock) -> None:
    batches.create(new(clock, status=BatchStatus.CANCELLED, total=10))
    assert (
        batches.take_lines("b20261122090000aaaaaaaaaaaa", 1, LineRange(first_line=1, first_offset=0, count=1), 5)
        is None
    )


def test_an_outcome_is_recorded_and_counted_once_in_line_order(batches: Any, clock: FakeClock) -> None:
    # GIVEN a running batch
    batches.create(new(clock, status=RUNNING, total=4))

    # WHEN outcomes come out of order, one of them twice
    recorded = [
        batches.record_outcome(
            "b20261122090000aaaaaaaaaaaa", outcome(3, output={"a": [1, None]}, inline=True), clock()
        ),
        batches.record_outcome(
            "b20261122090000aaaaaaaaaaaa",
            outcome(1, PredictionStatus.FAILED, error=PredictionError(code="ModelError", message="no")),
            clock(),
        ),
        batches.record_outcome("b20261122090000aaaaaaaaaaaa", outcome(3), clock()),
        batches.record_outcome("b20261122090000aaaaaaaaaaaa", outcome(2, PredictionStatus.CANCELLED), clock()),
    ]

    # THEN the duplicate was refused and changed nothing
    assert recorded == [True, True, False, True]
    stored = batches.get("b20261122090000aaaaaaaaaaaa")
    assert (stored.completed, stored.failed, stored.cancelled) == (1, 1, 1)
    # AND the outcomes read back in line order, the first one of line 3 kept (nulls and all)
    lines = batches.outcomes("b20261122090000aaaaaaaaaaaa")
    assert [o.line for o in lines] == [1, 2, 3]
    assert lines[2].output == {"a": [1, None]} and lines[0].error.code == "ModelError"
    # AND an outcome of a batch that does not exist is not recorded
    assert batches.record_outcome("b20261122090000cccccccccccc", outcome(1), clock()) is False


def test_due_lists_the_batches_of_a_status_whose_due_time_passed(batches: Any, clock: FakeClock) -> None:
    batches.create(new(clock, "b20261122090000aaaaaaaaaaaa", status=RUNNING, due_at=clock() + timedelta(minutes=2)))
    batches.create(new(clock, "b20261122090000bbbbbbbbbbbb", status=RUNNING, due_at=clock() - timedelta(minutes=1)))
    batches.create(new(clock, "b20261122090000cccccccccccc", status=BatchStatus.COMPLETED))
    due = batches.due(RUNNING, clock(), 10)
    assert [b.batch_id for b in due] == ["b20261122090000bbbbbbbbbbbb"]
    assert batches.due(BatchStatus.COMPLETED, clock(), 10) == []


def test_a_batch_webhook_is_sent_by_one_worker_at_a_time_and_its_attempts_kept(batches: Any, clock: FakeClock) -> None:
    batches.create(new(clock))
    assert batches.claim_webhook("b20261122090000aaaaaaaaaaaa", "batch.completed", clock(), 30) is True
    assert batches.claim_webhook("b20261122090000aaaaaaaaaaaa", "batch.completed", clock(), 30) is False
    batches.release_webhook("b20261122090000aaaaaaaaaaaa", "batch.completed")
    assert batches.claim_webhook("b20261122090000aaaaaaaaaaaa", "batch.completed", clock(), 30) is True
    batches.append_webhook_attempt("b20261122090000aaaaaaaaaaaa", {"event_type": "batch.completed", "delivered": True})
    assert batches.get("b20261122090000aaaaaaaaaaaa").webhook_attempts == [
        {"event_type": "batch.completed", "delivered": True}
    ]

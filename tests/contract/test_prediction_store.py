"""The PredictionStore contract (domain/ports.py), on the fake and on DynamoDB."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from botocore.exceptions import ClientError
from gateway_fakes import FakeClock

from ensemble_gateway.domain.models import (
    Callback,
    CallbackKind,
    InputInfo,
    ModelInfo,
    Prediction,
    PredictionError,
    PredictionStatus,
    ShadowOutcome,
    StepOutcome,
)

from .conftest import differs

PENDING = PredictionStatus.PENDING_UPLOAD
RUNNING = PredictionStatus.RUNNING
COMPLETED = PredictionStatus.COMPLETED
EXPIRED = PredictionStatus.EXPIRED


def new(clock: FakeClock, prediction_id: str, **fields: Any) -> Prediction:
    """A record created now (by the stores' clock), with what a case needs."""
    return Prediction(
        prediction_id=prediction_id,
        service=fields.pop("service", "fraud-score"),
        owner=fields.pop("owner", "c1"),
        created_at=fields.pop("created_at", clock()),
        updated_at=fields.pop("updated_at", clock()),
        **fields,
    )


def outcome(step: str, **fields: Any) -> StepOutcome:
    return StepOutcome(step=step, service=f"{step}-model", status=fields.pop("status", COMPLETED), **fields)


def shadow(version: str, **fields: Any) -> ShadowOutcome:
    return ShadowOutcome(
        prediction_id=fields.pop("prediction_id", f"p1-h{version}"),
        service="fraud-score",
        version=version,
        status=fields.pop("status", COMPLETED),
        **fields,
    )


# -- create and get ------------------------------------------------------------------------------


def test_a_created_record_reads_back_as_it_was(predictions: Any, clock: FakeClock) -> None:
    # GIVEN a record with every kind of field set (nested models, datetimes, step outcomes)
    prediction = new(
        clock,
        "p1",
        status=RUNNING,
        content_type="text/csv",
        accept="application/json",
        metadata={"claim": "c-42", "empty": ""},
        callback=Callback(kind=CallbackKind.WEBHOOK, target="https://hooks.example.com/x"),
        parent_id="parent",
        step="score",
        input_uri="s3://bucket/inputs/p1",
        input=InputInfo(sha256="ab" * 32, size=12, content_type="text/csv"),
        model=ModelInfo(endpoint="fraud-score", version="3"),
        error=PredictionError(code="Late", message="late", step="score"),
        upload_expires_at=clock() + timedelta(minutes=15),
        deadline_at=clock() + timedelta(minutes=20, microseconds=250),
        started_at=clock() + timedelta(seconds=1, microseconds=123456),
        idempotency_key="k1",
        request_hash="h" * 64,
        webhook_attempts=[{"event_type": "prediction.completed", "attempt": 1, "delivered": True}],
        expires_at=1_900_000_000,
        optional=True,
        final_step=True,
        fan_out=True,
        fan_out_size=3,
        step_default='{"score": null}',
        step_outputs={"child": outcome("a", output={"score": 0.5, "label": None, "n": 2.0}, inline=True)},
        shadow_versions=["1.1.0"],
        shadow_outcomes={"p1-h1": shadow("1.1.0", output={"score": 0.7, "label": None}, inline=True)},
        in_shadow=True,
    )

    # WHEN it is created and read
    assert predictions.create(prediction) is True
    read = predictions.get("p1")

    # THEN it is the record as given
    assert read == prediction


def test_creating_an_existing_id_is_refused_and_leaves_the_record(predictions: Any, clock: FakeClock) -> None:
    # GIVEN a record
    first = new(clock, "p1")
    assert predictions.create(first)

    # WHEN another record with its ID is created
    created = predictions.create(new(clock, "p1", service="repair-cost", owner="c2"))

    # THEN it is refused and the first is unchanged
    assert created is False
    assert predictions.get("p1") == first


def test_an_unknown_id_reads_as_none(predictions: Any) -> None:
    assert predictions.get("nope") is None


# -- idempotency keys ----------------------------------------------------------------------------


def test_an_idempotency_key_finds_its_prediction_for_its_owner_only(predictions: Any, clock: FakeClock) -> None:
    # GIVEN a record created with an idempotency key
    prediction = new(clock, "p1", owner="c1", idempotency_key="k1")
    assert predictions.create(prediction)

    # WHEN the key is looked up for its owner, for another owner, and another key for its owner
    # THEN only its owner's key finds it
    assert predictions.find_by_idempotency_key("c1", "k1") == prediction
    assert predictions.find_by_idempotency_key("c2", "k1") is None
    assert predictions.find_by_idempotency_key("c1", "k2") is None


def test_a_second_prediction_with_an_owners_key_is_refused(predictions: Any, clock: FakeClock) -> None:
    # GIVEN a record created with an idempotency key
    assert predictions.create(new(clock, "p1", owner="c1", idempotency_key="k1"))

    # WHEN the owner creates another record with the same key, and another owner does
    again = predictions.create(new(clock, "p2", owner="c1", idempotency_key="k1"))
    other_owner = predictions.create(new(clock, "p3", owner="c2", idempotency_key="k1"))

    # THEN the owner's second record is refused, and not stored; the other owner's is created
    assert again is False
    assert predictions.get("p2") is None
    assert predictions.find_by_idempotency_key("c1", "k1") == predictions.get("p1")
    assert other_owner is True
    assert predictions.find_by_idempotency_key("c2", "k1") == predictions.get("p3")


def test_an_idempotency_key_is_forgotten_after_24_hours(predictions: Any, clock: FakeClock) -> None:
    # GIVEN a record created with an idempotency key
    assert predictions.create(new(clock, "p1", owner="c1", idempotency_key="k1"))

    # WHEN 24 hours have passed
    clock.advance(hours=24, seconds=1)

    # THEN the key finds nothing, and a new record may take it
    assert predictions.find_by_idempotency_key("c1", "k1") is None
    assert predictions.create(new(clock, "p2", owner="c1", idempotency_key="k1")) is True
    found = predictions.find_by_idempotency_key("c1", "k1")
    assert found is not None and found.prediction_id == "p2"


# -- transition ----------------------------------------------------------------------------------


def test_a_transition_from_an_allowed_status_returns_the_new_record(predictions: Any, clock: FakeClock) -> None:
    # GIVEN a record waiting for its upload
    created = new(clock, "p1", upload_expires_at=clock() + timedelta(minutes=15))
    assert predictions.create(created)
    clock.advance(seconds=5)

    # WHEN it moves to RUNNING from one of the allowed statuses, with changes and a field removed
    moved = predictions.transition(
        "p1",
        [PENDING, RUNNING],
        RUNNING,
        {"started_at": clock(), "input_uri": "s3://bucket/inputs/p1", "upload_expires_at": None},
    )

    # THEN the new record is returned: its status, its changes, updated_at now, the rest as it was
    assert moved is not None
    assert moved.status is RUNNING
    assert moved.started_at == clock() and moved.input_uri == "s3://bucket/inputs/p1"
    assert moved.upload_expires_at is None
    assert moved.updated_at == clock() and moved.created_at == created.created_at
    assert moved.model_dump(exclude={"status", "started_at", "input_uri", "upload_expires_at", "updated_at"}) == (
        created.model_dump(exclude={"status", "started_at", "input_uri", "upload_expires_at", "updated_at"})
    )
    # AND it is what is stored
    assert predictions.get("p1") == moved


def test_a_transition_from_another_status_is_refused_and_changes_nothing(predictions: Any, clock: FakeClock) -> None:
    # GIVEN a running record and a completed one
    running = new(clock, "p1", status=RUNNING)
    completed = new(clock, "p2", status=COMPLETED)
    assert predictions.create(running) and predictions.create(completed)
    clock.advance(seconds=5)

    # WHEN each is moved from statuses it is not in
    expired = predictions.transition("p1", [PENDING], EXPIRED, {"error": PredictionError(code="x", message="y")})
    failed = predictions.transition("p2", [PENDING, RUNNING], PredictionStatus.FAILED)

    # THEN both are refused and the records are unchanged
    assert expired is None and failed is None
    assert predictions.get("p1") == running
    assert predictions.get("p2") == completed


def test_a_transition_of_an_unknown_id_is_refused_and_creates_nothing(predictions: Any) -> None:
    assert predictions.transition("nope", [PENDING], RUNNING, {"step": "x"}) is None
    assert predictions.get("nope") is None


# -- update --------------------------------------------------------------------------------------


def test_an_update_changes_the_fields_and_moves_updated_at(predictions: Any, clock: FakeClock) -> None:
    # GIVEN a record
    assert predictions.create(new(clock, "p1", status=RUNNING, output_uri="s3://bucket/outputs/old"))
    clock.advance(seconds=5)

    # WHEN fields of the document are updated, one removed
    predictions.update("p1", {"model": ModelInfo(endpoint="e", version="2"), "output_uri": None})

    # THEN the record has them, and updated_at is now
    record = predictions.get("p1")
    assert record is not None
    assert record.model == ModelInfo(endpoint="e", version="2") and record.output_uri is None
    assert record.updated_at == clock()


def test_an_update_of_bookkeeping_only_does_not_move_updated_at(predictions: Any, clock: FakeClock) -> None:
    # GIVEN a running record
    created = new(clock, "p1", status=RUNNING)
    assert predictions.create(created)
    clock.advance(seconds=5)

    # WHEN its dispatch marker is written
    predictions.update("p1", {"dispatched_at": clock()})

    # THEN the record has it, and its public updated_at has not moved
    record = predictions.get("p1")
    assert record is not None and record.dispatched_at == clock()
    assert record.updated_at == created.updated_at


def test_an_update_of_an_unknown_id_creates_nothing(predictions: Any) -> None:
    predictions.update("nope", {"output_uri": "s3://bucket/outputs/nope"})
    assert predictions.get("nope") is None


# -- claim_dispatch ------------------------------------------------------------------------------


def test_dispatch_is_claimed_once_while_the_lease_lasts(predictions: Any, clock: FakeClock) -> None:
    # GIVEN a running record, not yet dispatched
    created = new(clock, "p1", status=RUNNING)
    assert predictions.create(created)

    # WHEN dispatch is claimed with a 30 s lease, then again within it, at its end, and after it
    first = predictions.claim_dispatch("p1", clock(), 30)
    within = predictions.claim_dispatch("p1", clock.advance(seconds=10), 30)
    at_end = predictions.claim_dispatch("p1", clock.advance(seconds=20), 30)
    after = predictions.claim_dispatch("p1", clock.advance(seconds=1), 30)

    # THEN the first and the one after the lease get the record, the others nothing
    assert first == created
    assert within is None and at_end is None
    assert after == created
    # AND a claim is bookkeeping: the record's updated_at has not moved
    assert predictions.get("p1") == created


def test_dispatch_of_a_record_not_running_or_already_dispatched_is_refused(predictions: Any, clock: FakeClock) -> None:
    # GIVEN a record waiting for its upload, and a running one already dispatched
    assert predictions.create(new(clock, "pending"))
    assert predictions.create(new(clock, "dispatched", status=RUNNING, dispatched_at=clock()))

    # WHEN their dispatch is claimed, and that of an unknown ID
    # THEN each is refused
    assert predictions.claim_dispatch("pending", clock(), 30) is None
    assert predictions.claim_dispatch("dispatched", clock(), 30) is None
    assert predictions.claim_dispatch("nope", clock(), 30) is None
    assert predictions.get("nope") is None


def test_a_record_created_with_its_dispatch_claimed_is_refused_to_others_until_then(
    predictions: Any, clock: FakeClock
) -> None:
    # GIVEN a running record created with its dispatch taken for 30 s (its creator dispatches it)
    created = new(clock, "p1", status=RUNNING)
    assert predictions.create(created, claim_dispatch_until=clock() + timedelta(seconds=30))

    # WHEN someone else claims it within the 30 s, and after
    within = predictions.claim_dispatch("p1", clock.advance(seconds=29), 30)
    after = predictions.claim_dispatch("p1", clock.advance(seconds=2), 30)

    # THEN only the claim after the lease gets it
    assert within is None
    assert after == created


# -- webhooks ------------------------------------------------------------------------------------


def test_a_webhook_is_claimed_once_per_event_while_its_lease_lasts(predictions: Any, clock: FakeClock) -> None:
    # GIVEN a completed record
    created = new(clock, "p1", status=COMPLETED)
    assert predictions.create(created)
    event = "prediction.completed"

    # WHEN its webhook is claimed, claimed again, claimed for another event
    assert predictions.claim_webhook("p1", event, clock(), 30) is True
    assert predictions.claim_webhook("p1", event, clock.advance(seconds=29), 30) is False
    assert predictions.claim_webhook("p1", "prediction.failed", clock(), 30) is True

    # THEN released, it may be claimed at once; and a lease that ran out may be taken over
    predictions.release_webhook("p1", event)
    assert predictions.claim_webhook("p1", event, clock(), 30) is True
    assert predictions.claim_webhook("p1", event, clock.advance(seconds=31), 30) is True
    # AND leases are bookkeeping: the record is unchanged
    assert predictions.get("p1") == created


def test_a_webhook_of_an_unknown_prediction_is_not_claimed(predictions: Any, clock: FakeClock) -> None:
    assert predictions.claim_webhook("nope", "prediction.completed", clock(), 30) is False
    assert predictions.get("nope") is None


def test_releasing_a_webhook_of_an_unknown_prediction_does_nothing(predictions: Any) -> None:
    predictions.release_webhook("nope", "prediction.completed")
    assert predictions.get("nope") is None


def test_webhook_attempts_are_appended_in_order_without_moving_updated_at(predictions: Any, clock: FakeClock) -> None:
    # GIVEN a completed record
    created = new(clock, "p1", status=COMPLETED)
    assert predictions.create(created)
    first = {"event_type": "prediction.completed", "attempt": 0, "status_code": 503, "delivered": False}
    second = {"event_type": "prediction.completed", "attempt": 1, "status_code": 204, "delivered": True}

    # WHEN two attempts are appended
    clock.advance(seconds=5)
    predictions.append_webhook_attempt("p1", first)
    predictions.append_webhook_attempt("p1", second)

    # THEN the record lists them in order, and its updated_at has not moved
    record = predictions.get("p1")
    assert record is not None
    assert record.webhook_attempts == [first, second]
    assert record.updated_at == created.updated_at


def test_a_webhook_attempts_empty_fields_are_not_kept(predictions: Any, clock: FakeClock) -> None:
    # GIVEN a record, and an attempt that got no answer (as WebhookDelivery records it)
    assert predictions.create(new(clock, "p1", status=COMPLETED))
    attempt = {"event_type": "prediction.completed", "attempt": 0, "status_code": None, "error": "timed out"}

    # WHEN it is appended
    predictions.append_webhook_attempt("p1", attempt)

    # THEN it reads back without its empty field
    record = predictions.get("p1")
    assert record is not None
    assert record.webhook_attempts == [{"event_type": "prediction.completed", "attempt": 0, "error": "timed out"}]


def test_an_attempt_for_an_unknown_prediction_creates_no_record(predictions: Any) -> None:
    predictions.append_webhook_attempt("nope", {"event_type": "prediction.completed", "attempt": 0})
    assert predictions.get("nope") is None


# -- children ------------------------------------------------------------------------------------


def test_the_children_of_an_ensemble_are_its_steps_records(predictions: Any, clock: FakeClock) -> None:
    # GIVEN an ensemble with two steps, another ensemble with one, and a record that is no step
    assert predictions.create(new(clock, "parent", status=RUNNING))
    steps = [new(clock, f"parent-{name}", parent_id="parent", step=name) for name in ("a", "b")]
    other = new(clock, "other-a", parent_id="other", step="a")
    for record in [*steps, other, new(clock, "alone")]:
        assert predictions.create(record)

    # WHEN the children of each are read
    children = predictions.children("parent")

    # THEN each ensemble gets its own steps, whole; a record without steps gets none
    assert sorted(children, key=lambda p: p.prediction_id) == steps
    assert predictions.children("other") == [other]
    assert predictions.children("alone") == []
    assert predictions.children("nope") == []


def test_the_children_come_in_the_order_they_were_created(predictions: Any, clock: FakeClock) -> None:
    # GIVEN steps whose records were written in another order than their created_at
    late = new(clock, "late", parent_id="parent", created_at=clock() + timedelta(seconds=2))
    early = new(clock, "early", parent_id="parent", created_at=clock() + timedelta(seconds=1))
    assert predictions.create(late) and predictions.create(early)

    # WHEN the children are read
    # THEN they come by created_at
    assert [p.prediction_id for p in predictions.children("parent")] == ["early", "late"]


# -- overdue -------------------------------------------------------------------------------------


def test_overdue_records_are_those_in_the_status_whose_deadline_passed(predictions: Any, clock: FakeClock) -> None:
    # GIVEN records of every kind around now
    now = clock()
    records = [
        new(clock, "pending-late", deadline_at=now - timedelta(seconds=1)),
        new(clock, "pending-now", deadline_at=now),
        new(clock, "pending-early", deadline_at=now + timedelta(seconds=1)),
        new(clock, "pending-no-deadline"),
        new(clock, "running-late", status=RUNNING, deadline_at=now - timedelta(minutes=5)),
        new(clock, "completed-late", status=COMPLETED, deadline_at=now - timedelta(minutes=5)),
        new(clock, "expired-since", deadline_at=now - timedelta(minutes=5)),
    ]
    for record in records:
        assert predictions.create(record)
    # (one that has moved on since: no longer PENDING)
    assert predictions.transition("expired-since", [PENDING], EXPIRED) is not None

    # WHEN the overdue records of each status are read
    pending = predictions.overdue(PENDING, now, 10)
    running = predictions.overdue(RUNNING, now, 10)

    # THEN each gets those in its status whose deadline is before now, whole
    assert pending == [records[0]]
    assert running == [records[4]]
    assert predictions.overdue(COMPLETED, now, 10) == [records[5]]


def test_overdue_records_come_earliest_deadline_first_up_to_the_limit(predictions: Any, clock: FakeClock) -> None:
    # GIVEN five overdue records written in another order than their deadlines
    now = clock()
    for minutes in (3, 5, 1, 4, 2):
        assert predictions.create(new(clock, f"late-{minutes}", deadline_at=now - timedelta(minutes=minutes)))

    # WHEN three are asked for
    found = predictions.overdue(PENDING, now, 3)

    # THEN they are the three whose deadlines passed first, in that order
    assert [p.prediction_id for p in found] == ["late-5", "late-4", "late-3"]


def test_a_deadline_passed_half_a_second_ago_is_overdue(predictions: Any, clock: FakeClock) -> None:
    # GIVEN a record whose deadline is a whole second
    assert predictions.create(new(clock, "p1", deadline_at=clock()))

    # WHEN the overdue records are read half a second later
    found = predictions.overdue(PENDING, clock.advance(seconds=0.5), 10)

    # THEN it is one
    assert [p.prediction_id for p in found] == ["p1"]


# -- record_step_outcome -------------------------------------------------------------------------


def test_a_step_outcome_is_left_on_its_ensemble_and_replaced_when_recorded_again(
    predictions: Any, clock: FakeClock
) -> None:
    # GIVEN a running ensemble
    created = new(clock, "parent", status=RUNNING)
    assert predictions.create(created)
    clock.advance(seconds=5)
    first = outcome("a", output={"score": 0.25, "label": None, "whole": 1.0, "": "empty key"}, inline=True)
    second = outcome("b", output_uri="s3://bucket/outputs/parent-b", content_type="application/json")
    again = outcome("a", status=PredictionStatus.FAILED, error=PredictionError(code="E", message="m"))

    # WHEN two steps' outcomes are recorded, then the first step's again
    after_first = predictions.record_step_outcome("parent", "parent-a", first)
    after_second = predictions.record_step_outcome("parent", "parent-b", second)
    after_again = predictions.record_step_outcome("parent", "parent-a", again)

    # THEN each call returns the ensemble with the outcomes so far, the last one replacing the first
    assert after_first is not None and after_first.step_outputs == {"parent-a": first}
    assert after_second is not None and after_second.step_outputs == {"parent-a": first, "parent-b": second}
    assert after_again is not None and after_again.step_outputs == {"parent-a": again, "parent-b": second}
    # AND that is the stored record; the outcomes are bookkeeping: updated_at has not moved
    assert predictions.get("parent") == after_again
    assert after_again.updated_at == created.updated_at


def test_an_outcome_for_an_unknown_ensemble_is_refused_and_creates_nothing(predictions: Any) -> None:
    assert predictions.record_step_outcome("nope", "nope-a", outcome("a")) is None
    assert predictions.get("nope") is None


def test_an_outcome_too_big_for_the_record_keeps_its_output_by_reference(predictions: Any, clock: FakeClock) -> None:
    # GIVEN a running ensemble
    assert predictions.create(new(clock, "parent", status=RUNNING))
    big = outcome("a", output={"text": "x" * 420_000}, inline=True, output_uri="s3://bucket/outputs/parent-a")

    # WHEN a step's outcome is recorded with an output inline that no record can hold
    recorded = predictions.record_step_outcome("parent", "parent-a", big)

    # THEN the outcome is kept with its output by reference only
    assert recorded is not None
    kept = recorded.step_outputs["parent-a"]
    assert kept == big.model_copy(update={"output": None, "inline": False})
    assert predictions.get("parent") == recorded


@differs(
    dynamodb="raises ValidationException once even an outcome without its output does not fit: the record "
    "of an ensemble holds about 97 outcomes with outputs near the 4 KB inline limit",
    raises=ClientError,
)
def test_an_ensemble_keeps_the_outcomes_of_a_wide_fan_out(predictions: Any, clock: FakeClock) -> None:
    # GIVEN a running ensemble whose fan-out has 110 members
    assert predictions.create(new(clock, "parent", status=RUNNING))
    members = [f"parent-m{i:03}" for i in range(110)]

    # WHEN each member's outcome is recorded, its output just under the gateway's 4 KB inline limit
    for member in members:
        member_outcome = outcome(
            "m", fan_out=True, output={"text": "x" * 3900}, inline=True, output_uri=f"s3://bucket/outputs/{member}"
        )
        assert predictions.record_step_outcome("parent", member, member_outcome) is not None

    # THEN every member's outcome is kept, its output inline or by reference
    record = predictions.get("parent")
    assert record is not None and sorted(record.step_outputs) == members
    for member, kept in record.step_outputs.items():
        assert kept.output_uri == f"s3://bucket/outputs/{member}"
        assert kept.inline == (kept.output is not None)


# -- record_shadow_outcome -----------------------------------------------------------------------


def test_a_shadow_outcome_is_left_on_its_primary_and_replaced_when_recorded_again(
    predictions: Any, clock: FakeClock
) -> None:
    # GIVEN a completed prediction with step outcomes
    created = new(
        clock,
        "p1",
        status=COMPLETED,
        callback=Callback(kind=CallbackKind.WEBHOOK, target="https://hooks.example.com/x"),
        step_outputs={"p1-a": outcome("a")},
    )
    assert predictions.create(created)
    clock.advance(seconds=5)
    first = shadow("1.1.0", prediction_id="p1-h1", status=RUNNING)
    other = shadow("1.2.0", prediction_id="p1-h2", output={"score": 0.25, "label": None, "": "empty key"}, inline=True)
    again = shadow(
        "1.1.0", prediction_id="p1-h1", status=PredictionStatus.FAILED, error=PredictionError(code="E", message="m")
    )

    # WHEN two shadows' outcomes are recorded, then the first one's again
    recorded = [
        predictions.record_shadow_outcome("p1", "p1-h1", first),
        predictions.record_shadow_outcome("p1", "p1-h2", other),
        predictions.record_shadow_outcome("p1", "p1-h1", again),
    ]

    # THEN each was recorded, the last replacing the first
    assert recorded == [True, True, True]
    record = predictions.get("p1")
    assert record is not None and record.shadow_outcomes == {"p1-h1": again, "p1-h2": other}
    # AND nothing else of the record changed: status, callback, step outcomes, updated_at
    assert record.model_copy(update={"shadow_outcomes": {}}) == created


def test_a_shadow_outcome_for_an_unknown_prediction_is_refused_and_creates_nothing(predictions: Any) -> None:
    assert predictions.record_shadow_outcome("nope", "nope-h1", shadow("1.1.0")) is False
    assert predictions.get("nope") is None


def test_the_shadow_versions_of_a_prediction_are_bookkeeping(predictions: Any, clock: FakeClock) -> None:
    # GIVEN a running record
    created = new(clock, "p1", status=RUNNING)
    assert predictions.create(created)
    clock.advance(seconds=5)

    # WHEN the versions its shadows went to are written
    predictions.update("p1", {"shadow_versions": ["1.1.0", "1.2.0"]})

    # THEN the record has them, and its public updated_at has not moved (as with step outcomes)
    record = predictions.get("p1")
    assert record is not None and record.shadow_versions == ["1.1.0", "1.2.0"]
    assert record.updated_at == created.updated_at


def test_the_audit_outbox_holds_the_marked_records_that_ended_before_the_cutoff(
    predictions: Any, clock: FakeClock
) -> None:
    # GIVEN records ended at several moments, marked pending for their status or not
    now = clock()
    ended = PredictionStatus.FAILED
    records = [
        new(clock, "marked-early", status=ended, finished_at=now - timedelta(minutes=5), audit_pending="FAILED"),
        new(clock, "marked-late", status=ended, finished_at=now - timedelta(minutes=2), audit_pending="FAILED"),
        new(clock, "marked-now", status=ended, finished_at=now, audit_pending="FAILED"),
        new(clock, "delivered", status=ended, finished_at=now - timedelta(minutes=5)),
        new(clock, "other-status", status=COMPLETED, finished_at=now - timedelta(minutes=5), audit_pending="COMPLETED"),
    ]
    for record in records:
        assert predictions.create(record)

    # WHEN the outbox of FAILED records ended a minute ago is read, then after one is delivered
    found = predictions.audit_pending(ended, now - timedelta(minutes=1), 10)
    predictions.update("marked-early", {"audit_pending": None})
    after = predictions.audit_pending(ended, now - timedelta(minutes=1), 10)

    # THEN it holds the marked ones of that status, earliest end first, and no longer the delivered one
    assert [p.prediction_id for p in found] == ["marked-early", "marked-late"]
    assert [p.prediction_id for p in after] == ["marked-late"]
    # AND removing the mark is bookkeeping: the public updated_at does not move
    delivered = predictions.get("marked-early")
    assert delivered is not None and delivered.audit_pending is None and delivered.updated_at == records[0].updated_at

"""The DynamoDB prediction store against moto: what moves the public updated_at, and what does not."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ensemble_gateway.adapters.dynamodb import DynamoPredictionStore
from ensemble_gateway.domain.models import Prediction, PredictionStatus, StepOutcome, utcnow


@pytest.fixture
def store(scratch_store: DynamoPredictionStore) -> DynamoPredictionStore:
    return scratch_store


def test_leases_do_not_move_updated_at_but_transitions_do(store: DynamoPredictionStore) -> None:
    # GIVEN a completed prediction
    created = utcnow() - timedelta(minutes=5)
    prediction = Prediction(
        prediction_id="p1",
        service="echo",
        owner="c1",
        status=PredictionStatus.COMPLETED,
        created_at=created,
        updated_at=created,
    )
    assert store.create(prediction)

    # WHEN the webhook worker takes and releases its lease, and a dispatch marker is written
    assert store.claim_webhook("p1", "prediction.completed", utcnow(), 30)
    store.release_webhook("p1", "prediction.completed")
    store.update("p1", {"dispatched_at": utcnow()})

    # THEN the public updated_at has not moved, and the lease is gone (another worker may take it)
    after = store.get("p1")
    assert after is not None and after.updated_at == created
    assert store.claim_webhook("p1", "prediction.completed", utcnow(), 30)

    # AND a change of the document itself does move it
    store.update("p1", {"metadata": {"k": "v"}})
    changed = store.get("p1")
    assert changed is not None and changed.updated_at > created


def test_a_step_outcome_is_kept_on_the_ensemble_record_without_moving_updated_at(
    store: DynamoPredictionStore,
) -> None:
    # GIVEN a running ensemble
    created = utcnow() - timedelta(minutes=5)
    parent = Prediction(
        prediction_id="e1", service="claim", owner="c1", status=PredictionStatus.RUNNING, created_at=created
    )
    parent = parent.model_copy(update={"updated_at": created})
    assert store.create(parent)
    fraud = StepOutcome(
        step="fraud",
        service="fraud-score",
        status=PredictionStatus.COMPLETED,
        output_uri="s3://b/outputs/x.out",
        content_type="application/json",
        output={"p": 0.1, "why": None, "": "empty key"},
        inline=True,
    )
    skipped = StepOutcome(
        step="extra", service="always-fails", status=PredictionStatus.FAILED, optional=True, default={"p": None}
    )

    # WHEN two steps record their outcomes (the second twice: a duplicate notification)
    store.record_step_outcome("e1", "e1-sa", fraud)
    store.record_step_outcome("e1", "e1-sb", skipped)
    returned = store.record_step_outcome("e1", "e1-sb", skipped)

    # THEN the update returns the whole ensemble record with both, JSON values intact (nulls and
    # empty keys, which a DynamoDB map would not keep), and a consistent read sees the same
    read = store.get("e1")
    assert returned is not None and read is not None
    assert returned.step_outputs == read.step_outputs == {"e1-sa": fraud, "e1-sb": skipped}
    # AND the public updated_at has not moved (the step lineage is read from the children)
    assert read.updated_at == created
    # AND an unknown ensemble is reported, not created
    assert store.record_step_outcome("nope", "x", fraud) is None
    assert store.get("nope") is None


def test_a_child_created_with_its_dispatch_claimed_cannot_be_claimed_again(store: DynamoPredictionStore) -> None:
    # GIVEN a child created holding its dispatch for ten minutes
    now = utcnow()
    child = Prediction(prediction_id="c1", service="echo", owner="o", status=PredictionStatus.RUNNING)
    assert store.create(child, claim_dispatch_until=now + timedelta(minutes=10))
    # WHEN another invocation tries to claim it, now and after the claim has lapsed
    # THEN it is refused until then, and granted after
    assert store.claim_dispatch("c1", now, lease_seconds=300) is None
    assert store.claim_dispatch("c1", now + timedelta(minutes=11), lease_seconds=300) is not None

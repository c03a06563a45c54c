"""The DynamoDB prediction store against moto: what moves the public updated_at, and what does not."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from ensemble_gateway.adapters.dynamodb import DynamoPredictionStore
from ensemble_gateway.domain.models import Prediction, PredictionStatus, utcnow


@pytest.fixture
def store(runtime: Any) -> Iterator[DynamoPredictionStore]:
    # A table of its own on the session's local AWS (moto). Not mock_aws: entering it would reset
    # moto's in-process backends, which the session's runtime shares.
    client: Any = runtime.client("dynamodb")
    name = f"store-test-{time.monotonic_ns()}"
    client.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "prediction_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "prediction_id", "AttributeType": "S"}],
    )
    yield DynamoPredictionStore(name, client)
    client.delete_table(TableName=name)


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

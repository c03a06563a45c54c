"""The local runtime's DynamoDB keeps DynamoDB's promise: a conditional write is atomic.

moto evaluates a condition and applies the write without a lock, so two concurrent conditional
writes on one item could both succeed; the gateway's exactly-once dispatch rests on exactly one
of them winning.
"""

from __future__ import annotations

import threading

from ensemble_gateway.adapters.dynamodb import DynamoPredictionStore
from ensemble_gateway.domain.models import Prediction, PredictionStatus


def test_concurrent_conditional_transitions_of_one_item_have_exactly_one_winner(
    scratch_store: DynamoPredictionStore,
) -> None:
    # GIVEN a table of the local runtime and many PENDING records
    store = scratch_store
    records = [f"p{i}" for i in range(25)]
    for prediction_id in records:
        assert store.create(Prediction(prediction_id=prediction_id, service="echo", owner="o"))
    winners: dict[str, int] = {prediction_id: 0 for prediction_id in records}
    lock = threading.Lock()
    start = threading.Barrier(8)

    def race() -> None:
        start.wait()
        for prediction_id in records:
            moved = store.transition(
                prediction_id, [PredictionStatus.PENDING_UPLOAD], PredictionStatus.RUNNING, {"step": "x"}
            )
            if moved is not None:
                with lock:
                    winners[prediction_id] += 1

    # WHEN eight workers race to move every record PENDING_UPLOAD -> RUNNING
    threads = [threading.Thread(target=race) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # THEN every record moved exactly once
    assert winners == {prediction_id: 1 for prediction_id in records}

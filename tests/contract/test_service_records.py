"""The records of one service (``scan_service``, what ``services compare`` reads), on the fake and
on DynamoDB."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from gateway_fakes import FakeClock

from ensemble_gateway.domain.models import Callback, CallbackKind, ModelInfo, Prediction, PredictionStatus


def new(clock: FakeClock, prediction_id: str, service: str = "fraud-score", **fields: Any) -> Prediction:
    return Prediction(
        prediction_id=prediction_id,
        service=service,
        owner=fields.pop("owner", "c1"),
        created_at=clock(),
        updated_at=clock(),
        status=PredictionStatus.COMPLETED,
        model=ModelInfo(endpoint=f"{service}-1", version="1.0.0"),
        **fields,
    )


def test_a_services_records_are_its_predictions_and_steps_oldest_first(predictions: Any, clock: FakeClock) -> None:
    # GIVEN records of the service (top-level, a step of an ensemble, another owner's), a shadow
    # copy of one, and records of other services, a minute apart
    made = []
    for prediction_id, fields in (
        ("p2", {}),
        ("x1", {"service": "repair-cost"}),
        ("p1", {"parent_id": "e1", "step": "fraud"}),
        ("s1", {"parent_id": "p2", "callback": Callback(kind=CallbackKind.SHADOW, target="p2")}),
        ("p3", {"owner": "c2"}),
        ("e1", {"service": "vehicle-claim"}),
    ):
        prediction = new(clock, prediction_id, **fields)
        assert predictions.create(prediction)
        made.append(prediction)
        clock.advance(minutes=1)

    # WHEN the service's records are read
    found = predictions.scan_service("fraud-score")

    # THEN they are its own, steps included and shadow copies left out, oldest first, as stored
    assert [p.prediction_id for p in found] == ["p2", "p1", "p3"]
    assert found[0] == made[0]
    # AND the shadow copies are there when asked for
    assert [p.prediction_id for p in predictions.scan_service("fraud-score", shadows=True)] == ["p2", "p1", "s1", "p3"]


def test_a_services_records_since_a_moment_and_up_to_a_limit(predictions: Any, clock: FakeClock) -> None:
    # GIVEN five records of the service, an hour apart
    start = clock()
    for index in range(5):
        assert predictions.create(new(clock, f"p{index}"))
        clock.advance(hours=1)

    # WHEN read since the third, and with a limit
    since = predictions.scan_service("fraud-score", since=start + timedelta(hours=2))
    limited = predictions.scan_service("fraud-score", limit=2)

    # THEN the first are those created at or after it; the second has two of the five
    assert [p.prediction_id for p in since] == ["p2", "p3", "p4"]
    assert len(limited) == 2 and {p.prediction_id for p in limited} <= {f"p{i}" for i in range(5)}


def test_a_service_with_no_records_has_none(predictions: Any, clock: FakeClock) -> None:
    assert predictions.create(new(clock, "x1", service="repair-cost"))
    assert predictions.scan_service("fraud-score") == []

"""Metering (issue 18): the figures of every ended prediction, per service and across services,
put once per end (a duplicate notification adds nothing), and webhooks given up on."""

from __future__ import annotations

from gateway_fakes import FakeSender, World, make_world, model_service, new_client
from test_audit_records import answer, submit, upload

from ensemble_gateway.domain.delivery import WebhookResponse
from ensemble_gateway.domain.metering import ALL_SERVICES
from ensemble_gateway.domain.records import DEADLINE_MARGIN_SECONDS


def metered_world() -> World:
    return make_world(
        services=[model_service("fraud-score")], clients=[new_client("c_owner")], audit=True, metrics=True
    )


def test_an_ended_prediction_is_measured_per_service_and_across_services_once() -> None:
    # GIVEN a prediction answered by its model (1 s queued, 3 s in the model, 1 s after)
    world = metered_world()
    prediction_id = submit(world)
    upload(world, prediction_id)
    answer(world, prediction_id)
    # WHEN its notification comes again
    world.use_cases.completion.finish(prediction_id, succeeded=True, output_uri="s3://gw-data/x")

    # THEN one set per dimension set says it ended, not failed, and where its time went
    assert world.metrics is not None
    expected = {
        "Predictions": (1, "Count"),
        "Failures": (0, "Count"),
        "LatencyMs": (5000, "Milliseconds"),
        "QueueMs": (1000, "Milliseconds"),
        "ModelMs": (3000, "Milliseconds"),
        "OverheadMs": (1000, "Milliseconds"),
    }
    assert world.metrics.of(Service="fraud-score", Kind="prediction") == [expected]
    assert world.metrics.of(Service=ALL_SERVICES, Kind="prediction") == [expected]


def test_failures_and_expiries_count_as_failures() -> None:
    world = metered_world()
    failed = submit(world)
    upload(world, failed)
    answer(world, failed, failed=True)
    submit(world)  # never uploaded
    world.clock.advance(seconds=900 + DEADLINE_MARGIN_SECONDS + 1)
    world.use_cases.sweeping.sweep()

    assert world.metrics is not None
    sets = world.metrics.of(Service=ALL_SERVICES, Kind="prediction")
    assert [values["Failures"] for values in sets] == [(1, "Count"), (1, "Count")]
    # AND an expired prediction, which no model answered, has a latency but no model time
    assert "ModelMs" not in sets[1] and "LatencyMs" in sets[1]


def test_a_webhook_given_up_on_is_counted() -> None:
    # GIVEN a prediction whose webhook receiver always fails
    world = metered_world()
    prediction_id = submit(world, notification={"webhook": {"url": "https://hooks.example.com/ml"}})
    upload(world, prediction_id)
    answer(world, prediction_id)
    delivery = world.delivery(FakeSender(*[WebhookResponse(500)] * 50))

    # WHEN every attempt of the schedule fails (each retry taken once it is due)
    outcome = ""
    for _ in range(50):
        jobs = world.webhooks.take()
        if not jobs:
            break
        for job in jobs:
            outcome = delivery.deliver(job)
        world.clock.advance(days=2)
    # THEN it is dead-lettered, counted, and its end is in the audit trail
    assert outcome == "dead-lettered"
    assert world.metrics is not None
    assert world.metrics.of(Service=ALL_SERVICES, Kind="webhook") == [{"WebhookFailures": (1, "Count")}]
    assert world.audit is not None
    (record,) = [r for r in world.audit.of(prediction_id) if r["kind"] == "delivery"]
    assert record["deliveries"][0]["delivered"] is False

"""Durable webhook delivery: one attempt per queue message, retried on the schedule, then dead-lettered."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from gateway_fakes import FakeSender, World, make_world, model_service, new_client, transport_error
from standardwebhooks import Webhook

from ensemble_gateway.domain.api import NewPredictionRequest
from ensemble_gateway.domain.delivery import WebhookResponse
from ensemble_gateway.domain.models import PredictionStatus
from ensemble_gateway.domain.notifications import InferenceResult
from ensemble_gateway.domain.webhooks import RETRY_SCHEDULE_SECONDS, new_webhook_secret

SECRET = new_webhook_secret()
HOOK = "https://hooks.example.com/ml"


@pytest.fixture
def world() -> World:
    return make_world(services=[model_service("fraud-score")], clients=[new_client("c_owner", [SECRET])])


def completed_prediction(world: World, webhook: str = HOOK) -> str:
    """A prediction that completed; its first webhook job is on the queue."""
    client = world.clients.get("c_owner")
    assert client is not None
    body = {"service": "fraud-score", "notification": {"webhook": {"url": webhook}}}
    prediction_id = world.gateway.submit(client, NewPredictionRequest.model_validate(body)).prediction_id
    world.objects.put_upload(f"uploads/{prediction_id}", b"{}")
    world.gateway.input_uploaded(world.objects.bucket, f"uploads/{prediction_id}")
    output = world.objects.write(f"outputs/{prediction_id}.out", b'{"p": 1}', "application/json")
    world.gateway.inference_finished(
        InferenceResult.model_validate(
            {
                "inferenceId": prediction_id,
                "invocationStatus": "Completed",
                "responseParameters": {"contentType": "application/json", "outputLocation": output},
            }
        )
    )
    return prediction_id


def only_job(world: World) -> dict[str, Any]:
    jobs = world.webhooks.take()
    assert len(jobs) == 1, jobs
    return jobs[0]


def attempts(world: World, prediction_id: str) -> list[dict[str, Any]]:
    record = world.store.get(prediction_id)
    assert record is not None
    return record.webhook_attempts


def test_a_2xx_answer_delivers_a_verifiable_webhook_once(world: World) -> None:
    # GIVEN a completed prediction's webhook job and a receiver answering 204
    prediction_id = completed_prediction(world)
    job = only_job(world)
    delivery = world.delivery(FakeSender(204))
    # WHEN the job is delivered (at the real time: receivers reject stale timestamps)
    world.clock.set(datetime.now(world.clock().tzinfo))
    outcome = delivery.deliver(job)
    # THEN it is delivered, to the checked address, and verifies with the client's secret
    assert outcome == "delivered"
    (sent,) = world.sender.sent
    assert sent.target.addresses == ("93.184.216.34",)
    payload = Webhook(SECRET).verify(sent.body, sent.headers)
    assert payload["type"] == "prediction.completed"
    assert payload["data"]["prediction_id"] == prediction_id
    assert payload["data"]["status"] == "COMPLETED"
    assert payload["data"]["result"]["url"].startswith("https://")
    # AND the attempt is recorded, and nothing more is queued
    assert [(a["attempt"], a["status_code"], a["delivered"]) for a in attempts(world, prediction_id)] == [
        (1, 204, True)
    ]
    assert world.webhooks.jobs == []
    assert world.webhooks.dead == []


def test_failures_are_retried_on_the_schedule_then_dead_lettered(world: World) -> None:
    # GIVEN a receiver that always answers 500 (and sometimes times out)
    prediction_id = completed_prediction(world)
    job = only_job(world)
    answers: list[int | Exception] = [500, transport_error(), 500, 502, transport_error("refused"), 503, 500, 500]
    delivery = world.delivery(FakeSender(*answers))
    delays: list[int] = []
    outcomes: list[str] = []

    # WHEN every job is delivered as soon as its not_before is reached
    while True:
        outcomes.append(delivery.deliver(job))
        if not world.webhooks.jobs:
            break
        ((job, delay),) = world.webhooks.jobs
        world.webhooks.jobs.clear()
        delays.append(delay)
        world.clock.set(datetime.fromisoformat(job["not_before"]))

    # THEN the waits were the Standard Webhooks schedule, and attempt 8 was the last
    assert delays == list(RETRY_SCHEDULE_SECONDS)
    assert outcomes == ["retry-scheduled"] * 7 + ["dead-lettered"]
    assert len(world.sender.sent) == 8
    # AND the job went to the dead-letter queue saying why
    (dead,) = world.webhooks.dead
    assert dead["prediction_id"] == prediction_id
    assert dead["attempt"] == 8
    assert "gave up after 8 attempts" in dead["reason"]
    # AND every attempt is on the record, and the prediction is still pollable as completed
    assert [a["attempt"] for a in attempts(world, prediction_id)] == list(range(1, 9))
    assert not any(a["delivered"] for a in attempts(world, prediction_id))
    record = world.store.get(prediction_id)
    assert record is not None and record.status is PredictionStatus.COMPLETED


def test_every_retry_carries_the_same_webhook_id(world: World) -> None:
    # GIVEN a receiver failing once, then accepting
    completed_prediction(world)
    delivery = world.delivery(FakeSender(503, 200))
    # WHEN the job and its retry are delivered
    assert delivery.deliver(only_job(world)) == "retry-scheduled"
    retry = only_job(world)
    world.clock.set(datetime.fromisoformat(retry["not_before"]))
    assert delivery.deliver(retry) == "delivered"
    # THEN both attempts used one webhook-id (receivers deduplicate on it)
    first, second = world.sender.sent
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert retry["attempt"] == 1


def test_410_gone_stops_delivery_without_dead_lettering(world: World) -> None:
    # GIVEN a receiver that answers 410 Gone
    prediction_id = completed_prediction(world)
    delivery = world.delivery(FakeSender(410))
    # WHEN the job is delivered
    outcome = delivery.deliver(only_job(world))
    # THEN delivery stops: no retry, no dead letter; the attempt is recorded
    assert outcome == "gone"
    assert world.webhooks.jobs == []
    assert world.webhooks.dead == []
    assert [a["status_code"] for a in attempts(world, prediction_id)] == [410]


@pytest.mark.parametrize(
    ("failures_before", "retry_after", "expected_delay"),
    [
        (0, 120, 120),  # longer than the schedule's 5 s: honoured
        (1, 10, 300),  # shorter than the schedule's 5 min: the schedule wins
        (0, 10**9, 86400),  # absurd: capped at a day
    ],
)
def test_retry_after_is_honoured_within_bounds(
    world: World, failures_before: int, retry_after: int, expected_delay: int
) -> None:
    # GIVEN a receiver that answers 429 with Retry-After (after some plain failures)
    completed_prediction(world)
    answers: list[int | WebhookResponse] = [500] * failures_before
    answers.append(WebhookResponse(status=429, retry_after_seconds=retry_after))
    delivery = world.delivery(FakeSender(*answers))
    job = only_job(world)
    for _ in range(failures_before):
        delivery.deliver(job)
        ((job, _delay),) = world.webhooks.jobs
        world.webhooks.jobs.clear()
        world.clock.set(datetime.fromisoformat(job["not_before"]))
    # WHEN the 429 comes back
    outcome = delivery.deliver(job)
    # THEN the next attempt waits max(schedule, Retry-After), at most a day
    assert outcome == "retry-scheduled"
    ((retry, delay),) = world.webhooks.jobs
    assert delay == expected_delay
    assert datetime.fromisoformat(retry["not_before"]) == world.clock() + timedelta(seconds=expected_delay)


def test_a_job_before_its_not_before_is_requeued_without_sending(world: World) -> None:
    # GIVEN a retry due in 2 hours (SQS delays at most 15 minutes: the job hops)
    completed_prediction(world)
    job = {**only_job(world), "attempt": 4, "not_before": (world.clock() + timedelta(hours=2)).isoformat()}
    delivery = world.delivery(FakeSender())
    # WHEN it is received early
    outcome = delivery.deliver(job)
    # THEN nothing is sent and the same job goes back with the remaining wait
    assert outcome == "waiting"
    assert world.sender.sent == []
    ((requeued, delay),) = world.webhooks.jobs
    assert requeued == json.loads(json.dumps(job))
    assert 7200 <= delay <= 7201


def test_a_delivered_event_is_not_sent_again(world: World) -> None:
    # GIVEN a webhook already delivered
    prediction_id = completed_prediction(world)
    job = only_job(world)
    delivery = world.delivery(FakeSender(204, 204))
    assert delivery.deliver(job) == "delivered"
    # WHEN the same job comes again (SQS redelivery)
    outcome = delivery.deliver(job)
    # THEN it is not sent again
    assert outcome == "already-delivered"
    assert len(world.sender.sent) == 1
    assert len(attempts(world, prediction_id)) == 1


def test_a_url_that_now_resolves_to_a_private_address_is_refused_at_delivery(world: World) -> None:
    # GIVEN a webhook host that was public when submitted and now resolves to the metadata address
    prediction_id = completed_prediction(world)
    world.resolver.hosts["hooks.example.com"] = ["169.254.169.254"]
    delivery = world.delivery(FakeSender())
    # WHEN its job is delivered
    outcome = delivery.deliver(only_job(world))
    # THEN nothing is sent and the job is dead-lettered with the reason
    assert outcome == "refused"
    assert world.sender.sent == []
    (dead,) = world.webhooks.dead
    assert "non-public address" in dead["reason"]
    assert attempts(world, prediction_id)[0]["delivered"] is False


def test_a_client_without_a_secret_cannot_be_sent_unsigned_webhooks(world: World) -> None:
    # GIVEN a client whose secrets were all retired
    world.clients.put(new_client("c_owner", secrets=[]))
    completed_prediction(world)
    delivery = world.delivery(FakeSender())
    # WHEN its job is delivered
    outcome = delivery.deliver(only_job(world))
    # THEN nothing is sent, and the job is dead-lettered
    assert outcome == "dead-lettered"
    assert world.sender.sent == []
    assert "no webhook secret" in world.webhooks.dead[0]["reason"]


def test_jobs_for_unknown_or_non_webhook_predictions_are_dropped(world: World) -> None:
    # GIVEN a job naming a prediction that does not exist
    delivery = world.delivery(FakeSender())
    # WHEN it is delivered
    outcome = delivery.deliver({"prediction_id": "pUnknown", "event_type": "prediction.completed", "attempt": 0})
    # THEN it is dropped silently
    assert outcome == "dropped"
    assert world.sender.sent == []
    assert world.webhooks.dead == []


def test_a_rotating_client_gets_webhooks_both_secrets_verify(world: World) -> None:
    # GIVEN a client in the middle of a secret rotation
    new = new_webhook_secret()
    world.clients.put(new_client("c_owner", secrets=[new, SECRET]))
    completed_prediction(world)
    delivery = world.delivery(FakeSender(204))
    world.clock.set(datetime.now(world.clock().tzinfo))
    # WHEN its webhook is delivered
    assert delivery.deliver(only_job(world)) == "delivered"
    # THEN receivers holding either secret verify it
    (sent,) = world.sender.sent
    for secret in (new, SECRET):
        assert Webhook(secret).verify(sent.body, sent.headers)["type"] == "prediction.completed"
    # AND the timestamp header is the delivery time, in epoch seconds
    assert sent.headers["webhook-timestamp"] == str(int(world.clock().timestamp()))


def test_a_duplicate_job_does_not_send_while_another_worker_is_sending(world: World) -> None:
    from ensemble_gateway.domain.delivery import SEND_LEASE_SECONDS

    # GIVEN a webhook job, and a second worker that holds the webhook (it is sending it right now)
    prediction_id = completed_prediction(world)
    job = only_job(world)
    assert world.store.claim_webhook(prediction_id, job["event_type"], world.clock(), SEND_LEASE_SECONDS)
    delivery = world.delivery(FakeSender(204))

    # WHEN this worker runs the duplicate job
    outcome = delivery.deliver(job)

    # THEN it sends nothing and looks again after the other attempt's lease
    assert outcome == "in-flight-elsewhere"
    assert world.sender.sent == []
    assert only_job(world) == job
    # AND once the other worker is done, the job runs normally
    world.store.release_webhook(prediction_id, job["event_type"])
    assert delivery.deliver(job) == "delivered"
    assert len(world.sender.sent) == 1

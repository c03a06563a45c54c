"""The prediction lifecycle (``Gateway``) against in-memory fakes of its ports.

Submit, upload, dispatch (async and real-time), finish, expire and time out, each under
at-least-once delivery: duplicates change nothing but re-drive the callback.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

import pytest
from gateway_fakes import FakeLogger, World, make_world, model_service, new_client
from pydantic import ValidationError

from ensemble_gateway.domain.api import NewPredictionRequest
from ensemble_gateway.domain.errors import (
    ConflictError,
    DispatchError,
    InvalidRequestError,
    ModelInvocationError,
    NotFoundError,
    ServiceInactiveError,
)
from ensemble_gateway.domain.models import Callback, CallbackKind, Prediction, PredictionError, PredictionStatus
from ensemble_gateway.domain.notifications import InferenceResult
from ensemble_gateway.domain.ports import RealtimeResponse

PENDING = PredictionStatus.PENDING_UPLOAD
RUNNING = PredictionStatus.RUNNING
COMPLETED = PredictionStatus.COMPLETED
FAILED = PredictionStatus.FAILED
EXPIRED = PredictionStatus.EXPIRED
HOOK = "https://hooks.example.com/ml"


@pytest.fixture
def world() -> World:
    return make_world(
        services=[
            model_service("fraud-score"),
            model_service("repair-cost", invocation="realtime", version="2.0.0"),
            model_service("damage", content_types=["image/png", "image/jpeg"]),
            model_service("retired", active=False),
        ],
        clients=[new_client("c_owner"), new_client("c_other")],
    )


def submit(world: World, service: str = "fraud-score", webhook: str | None = HOOK, **body: Any) -> str:
    request: dict[str, Any] = {"service": service, **body}
    if webhook:
        request["notification"] = {"webhook": {"url": webhook}}
    client = world.clients.get("c_owner")
    assert client is not None
    response = world.gateway.submit(client, NewPredictionRequest.model_validate(request), raw_body=request)
    return response.prediction_id


def uploaded(world: World, prediction_id: str, body: bytes = b'{"amount": 10}') -> None:
    """The client's upload lands, and S3 announces it."""
    world.objects.put_upload(f"uploads/{prediction_id}", body)
    world.gateway.input_uploaded(world.objects.bucket, f"uploads/{prediction_id}")


def success(prediction_id: str, output_uri: str) -> InferenceResult:
    return InferenceResult.model_validate(
        {
            "inferenceId": prediction_id,
            "invocationStatus": "Completed",
            "responseParameters": {"contentType": "application/json", "outputLocation": output_uri},
        }
    )


def status(world: World, prediction_id: str) -> PredictionStatus:
    record = world.store.get(prediction_id)
    assert record is not None
    return record.status


# ------------------------------------------------------------------------------------------------
# submit
# ------------------------------------------------------------------------------------------------
def test_submit_records_a_pending_prediction_with_its_webhook_and_upload_deadline(world: World) -> None:
    # GIVEN an active async service
    # WHEN a client submits with a webhook
    prediction_id = submit(world, metadata={"claim": "C-1"})
    # THEN the record waits for its upload, owned by the client, with the checked webhook
    record = world.store.get(prediction_id)
    assert record is not None
    assert record.status is PENDING
    assert record.owner == "c_owner"
    assert record.callback == Callback(kind=CallbackKind.WEBHOOK, target=HOOK)
    assert record.metadata == {"claim": "C-1"}
    # AND the upload form was presigned for uploads/{id} with the service's first content type
    assert world.objects.presigned_uploads == [(f"uploads/{prediction_id}", "application/json", 10485760, 900)]
    # AND the sweeper may expire it 30 s after the upload URL dies
    assert record.upload_expires_at == world.clock() + timedelta(seconds=900)
    assert record.deadline_at == world.clock() + timedelta(seconds=930)


def test_submit_refuses_unknown_inactive_and_wrong_content_type(world: World) -> None:
    # GIVEN the catalog with an inactive service and an image-only service
    # WHEN / THEN an unknown service is NotFound naming it
    with pytest.raises(NotFoundError, match="'nope'"):
        submit(world, "nope")
    # AND an inactive one is ServiceInactive naming it
    with pytest.raises(ServiceInactiveError, match="'retired'"):
        submit(world, "retired")
    # AND a content type the service does not take is refused, listing what it takes
    with pytest.raises(InvalidRequestError, match=r"'image/gif'.*image/png, image/jpeg"):
        submit(world, "damage", content_type="image/gif")
    # AND nothing was recorded
    assert world.store.records == {}


def test_submit_with_the_same_idempotency_key_replays_and_another_body_conflicts(world: World) -> None:
    # GIVEN a request accepted with an Idempotency-Key
    client = world.clients.get("c_owner")
    assert client is not None
    body = {"service": "fraud-score", "metadata": {"claim": "C-7"}}
    first = world.gateway.submit(client, NewPredictionRequest.model_validate(body), idempotency_key="k1", raw_body=body)
    # WHEN it is retried with the same key and body
    again = world.gateway.submit(
        client, NewPredictionRequest.model_validate(body), idempotency_key="k1", raw_body=dict(reversed(body.items()))
    )
    # THEN the same prediction comes back and only one record exists
    assert again.prediction_id == first.prediction_id
    assert len(world.store.records) == 1
    # AND the same key with another body is a conflict
    other = {"service": "fraud-score", "metadata": {"claim": "C-8"}}
    with pytest.raises(ConflictError, match="Idempotency-Key"):
        world.gateway.submit(client, NewPredictionRequest.model_validate(other), idempotency_key="k1", raw_body=other)


def test_a_replay_gives_an_upload_form_only_while_the_upload_is_awaited_and_no_longer_than_the_first(
    world: World,
) -> None:
    # GIVEN a request accepted with an Idempotency-Key, its form valid 900 s
    client = world.clients.get("c_owner")
    assert client is not None
    body = {"service": "fraud-score"}

    def replay() -> Any:
        return world.gateway.submit(
            client, NewPredictionRequest.model_validate(body), idempotency_key="k1", raw_body=body
        )

    first = replay()
    assert first.upload is not None
    # WHEN it is replayed 600 s later, still waiting for its upload
    world.clock.advance(seconds=600)
    pending = replay()
    # THEN the form it gets dies when the first one does (signed for the 300 s left)
    assert pending.upload is not None and pending.upload.expires_at == first.upload.expires_at
    assert world.objects.presigned_uploads[-1][3] == 300
    # WHEN the input is uploaded and accepted, then the request is replayed again
    uploaded(world, first.prediction_id)
    accepted = replay()
    # THEN the same prediction comes back, RUNNING, with no upload form at all
    assert accepted.prediction_id == first.prediction_id
    assert accepted.status is RUNNING and accepted.upload is None
    assert len(world.objects.presigned_uploads) == 2


def test_an_expired_upload_window_gives_no_form_on_replay(world: World) -> None:
    # GIVEN a request whose upload window has closed (not yet swept)
    client = world.clients.get("c_owner")
    assert client is not None
    body = {"service": "fraud-score"}
    world.gateway.submit(client, NewPredictionRequest.model_validate(body), idempotency_key="k2", raw_body=body)
    world.clock.advance(seconds=901)
    # WHEN it is replayed
    again = world.gateway.submit(client, NewPredictionRequest.model_validate(body), idempotency_key="k2", raw_body=body)
    # THEN there is nothing to upload to
    assert again.upload is None


# ------------------------------------------------------------------------------------------------
# accepted inputs are immutable
# ------------------------------------------------------------------------------------------------
def test_an_accepted_upload_is_copied_to_inputs_with_its_digest_and_the_model_reads_the_copy(world: World) -> None:
    # GIVEN a pending prediction
    prediction_id = submit(world)
    body = b'{"amount": 10}'
    # WHEN its upload lands and is announced
    uploaded(world, prediction_id, body)
    # THEN the input was copied to inputs/{id} and the upload removed
    assert world.objects.objects[f"s3://gw-data/inputs/{prediction_id}"][0] == body
    assert f"s3://gw-data/uploads/{prediction_id}" not in world.objects.objects
    # AND the record and the document show what was accepted
    record = record_of(world, prediction_id)
    assert record.input is not None
    assert (record.input.sha256, record.input.size, record.input.content_type) == (
        hashlib.sha256(body).hexdigest(),
        len(body),
        "application/json",
    )
    assert world.gateway.document(record).input == record.input
    # AND the model was pointed at the copy
    assert [call["input_uri"] for call in world.models.async_calls] == [f"s3://gw-data/inputs/{prediction_id}"]


def test_a_second_upload_after_acceptance_changes_nothing_the_model_reads(world: World) -> None:
    # GIVEN a running prediction whose input was accepted
    prediction_id = submit(world)
    uploaded(world, prediction_id, b'{"amount": 10}')
    accepted = record_of(world, prediction_id).input
    # WHEN the upload form is used again with other bytes, and S3 announces it
    uploaded(world, prediction_id, b'{"amount": 99999}')
    # THEN the accepted input, its digest and the single model call stand
    assert world.objects.objects[f"s3://gw-data/inputs/{prediction_id}"][0] == b'{"amount": 10}'
    assert record_of(world, prediction_id).input == accepted
    assert len(world.models.async_calls) == 1


def test_a_retry_after_a_crash_past_acceptance_dispatches_the_accepted_input_without_copying_again(
    world: World,
) -> None:
    # GIVEN a prediction whose worker accepted the input and crashed before dispatching it
    prediction_id = submit(world)
    world.models.async_error = RuntimeError("the worker died here")
    with pytest.raises(RuntimeError):
        uploaded(world, prediction_id, b'{"amount": 10}')
    world.models.async_error = None
    accepted = record_of(world, prediction_id).input
    assert accepted is not None and record_of(world, prediction_id).dispatched_at is None
    calls_before = len(world.models.async_calls)
    # AND meanwhile a second upload with other bytes landed
    world.objects.put_upload(f"uploads/{prediction_id}", b'{"amount": 99999}')
    # WHEN the event is redelivered after the dispatch lease lapsed
    world.clock.advance(seconds=301)
    world.gateway.input_uploaded(world.objects.bucket, f"uploads/{prediction_id}")
    # THEN the model gets the input that was accepted, never the second upload
    assert len(world.models.async_calls) == calls_before + 1
    assert record_of(world, prediction_id).dispatched_at is not None
    assert world.objects.objects[f"s3://gw-data/inputs/{prediction_id}"][0] == b'{"amount": 10}'
    assert record_of(world, prediction_id).input == accepted


def test_an_upload_that_is_gone_before_acceptance_fails_with_a_reason(world: World) -> None:
    # GIVEN a pending prediction whose upload is announced but no longer in the bucket
    prediction_id = submit(world)
    # WHEN the event is handled
    world.gateway.input_uploaded(world.objects.bucket, f"uploads/{prediction_id}")
    # THEN the prediction failed, saying what to do, and no model was called
    record = record_of(world, prediction_id)
    assert record.status is FAILED
    assert record.error is not None and record.error.code == "InputMissing"
    assert "submit the prediction again" in record.error.message
    assert world.models.async_calls == []


# ------------------------------------------------------------------------------------------------
# upload → dispatch
# ------------------------------------------------------------------------------------------------
def test_upload_starts_and_dispatches_an_async_prediction_once(world: World) -> None:
    # GIVEN a pending prediction
    prediction_id = submit(world)
    world.clock.advance(seconds=20)
    # WHEN its upload is announced three times
    for _ in range(3):
        uploaded(world, prediction_id)
    # THEN it moved to RUNNING once and went to the endpoint once, with its ID as InferenceId
    # (and, asked for no output type, JSON as the Accept)
    assert world.store.transitions == [(prediction_id, PENDING, RUNNING)]
    assert world.models.async_calls == [
        {
            "endpoint": "fraud-score-endpoint",
            "input_uri": f"s3://gw-data/inputs/{prediction_id}",
            "content_type": "application/json",
            "accept": "application/json",
            "inference_id": prediction_id,
            "timeout_seconds": 300,
            "request_ttl_seconds": 3600,
        }
    ]
    # AND its deadline is the model's timeout plus the margin, from the start
    record = world.store.get(prediction_id)
    assert record is not None
    assert record.started_at == world.clock()
    # the deadline allows for the queue (request TTL), the invocation timeout and a margin
    assert record.deadline_at == world.clock() + timedelta(seconds=3600 + 300 + 120)
    assert record.dispatched_at is not None


def test_a_claimed_dispatch_is_not_repeated_until_its_lease_lapses(world: World) -> None:
    # GIVEN a running prediction whose dispatch another worker has claimed (and not finished)
    prediction_id = submit(world)
    world.objects.put_upload(f"uploads/{prediction_id}", b"{}")
    world.store.transition(prediction_id, [PENDING], RUNNING, {"input_uri": f"s3://gw-data/inputs/{prediction_id}"})
    assert world.store.claim_dispatch(prediction_id, world.clock(), lease_seconds=300) is not None

    # WHEN this worker tries to dispatch within the lease
    world.clock.advance(seconds=299)
    world.gateway.dispatch(prediction_id)
    # THEN it does not invoke the model
    assert world.models.async_calls == []

    # WHEN the lease lapses without the other worker having dispatched (it crashed)
    world.clock.advance(seconds=2)
    world.gateway.dispatch(prediction_id)
    # THEN this worker dispatches, once
    assert len(world.models.async_calls) == 1
    world.gateway.dispatch(prediction_id)
    assert len(world.models.async_calls) == 1


def test_objects_outside_uploads_and_unknown_predictions_are_ignored(world: World) -> None:
    # GIVEN a pending prediction
    prediction_id = submit(world)
    world.objects.put_upload(f"inputs/{prediction_id}", b"{}")
    # WHEN S3 announces objects that are not its upload (the accepted-input key included: only
    # the gateway writes it)
    for key in (
        f"outputs/{prediction_id}",
        f"steps/{prediction_id}",
        f"inputs/{prediction_id}",
        f"uploads/{prediction_id}/x",
        "uploads/pUnknown",
    ):
        world.gateway.input_uploaded(world.objects.bucket, key)
    # THEN nothing started
    assert status(world, prediction_id) is PENDING
    assert world.models.async_calls == []


def test_an_upload_after_expiry_does_not_start_the_prediction(world: World) -> None:
    # GIVEN a prediction the sweeper expired
    prediction_id = submit(world)
    world.clock.advance(seconds=931)
    assert world.gateway.sweep() == 1
    # WHEN a late upload is announced
    uploaded(world, prediction_id)
    # THEN it stays EXPIRED and nothing is dispatched
    assert status(world, prediction_id) is EXPIRED
    assert world.models.async_calls == []


def test_a_refused_dispatch_fails_the_prediction_and_tells_the_webhook(world: World) -> None:
    # GIVEN an endpoint that refuses the request
    world.models.async_error = DispatchError("endpoint 'fraud-score-endpoint' refused the request: no such endpoint")
    prediction_id = submit(world)
    # WHEN the upload is announced
    uploaded(world, prediction_id)
    # THEN the prediction failed with the reason, and a prediction.failed webhook is queued
    record = world.store.get(prediction_id)
    assert record is not None
    assert record.status is FAILED
    assert record.error is not None
    assert record.error.code == "DispatchFailed"
    assert "no such endpoint" in record.error.message
    assert world.webhooks.take() == [{"prediction_id": prediction_id, "event_type": "prediction.failed", "attempt": 0}]


def test_a_realtime_model_output_is_stored_and_the_prediction_finished_without_an_sns_hop(world: World) -> None:
    # GIVEN a real-time service answering from its "green" variant
    world.models.realtime_answer = RealtimeResponse(
        body=b'{"repair_cost_eur": 900}', content_type="application/json", invoked_variant="green"
    )
    prediction_id = submit(world, "repair-cost")
    # WHEN the upload is announced
    uploaded(world, prediction_id, b'{"photo": "..."}')
    # THEN the endpoint got the uploaded bytes, and the output is stored under outputs/{id}
    assert [c["body"] for c in world.models.realtime_calls] == [b'{"photo": "..."}']
    assert world.objects.read(f"s3://gw-data/outputs/{prediction_id}") == b'{"repair_cost_eur": 900}'
    # AND the prediction is COMPLETED at once (nothing goes through the SNS topics)
    record = world.store.get(prediction_id)
    assert record is not None
    assert record.status is COMPLETED
    assert record.output_uri == f"s3://gw-data/outputs/{prediction_id}"
    assert record.output_content_type == "application/json"
    assert record.dispatched_at is not None  # written with the terminal status: a redelivery won't call again
    # AND the record names the variant that answered, and its webhook is queued once
    assert record.model.version == "2.0.0/green"
    assert world.webhooks.take() == [
        {"prediction_id": prediction_id, "event_type": "prediction.completed", "attempt": 0}
    ]


def test_a_realtime_model_error_fails_the_prediction_with_the_models_reason(world: World) -> None:
    # GIVEN a real-time endpoint whose model raises, as the adapter reports it: the model's message,
    # and SageMaker's whole answer
    whole = 'ModelError: Received server error (500) from primary with message "division by zero"'
    world.models.realtime_answer = ModelInvocationError("division by zero", detail=whole)
    prediction_id = submit(world, "repair-cost")
    # WHEN the upload is announced
    uploaded(world, prediction_id)
    # THEN the failure object keeps the whole answer, and the prediction failed with the model's message
    assert world.objects.read(f"s3://gw-data/failures/{prediction_id}") == whole.encode()
    record = world.store.get(prediction_id)
    assert record is not None
    assert record.status is FAILED
    assert record.error == PredictionError(code="ModelError", message="division by zero")
    assert record.failure_uri == f"s3://gw-data/failures/{prediction_id}"
    # AND a duplicate upload event does not call the model again
    uploaded(world, prediction_id)
    assert len(world.models.realtime_calls) == 1


def test_a_crash_after_a_realtime_terminal_write_is_made_good_by_the_redelivered_s3_event(world: World) -> None:
    # GIVEN a real-time prediction whose process-input crashed right after the terminal write
    prediction_id = submit(world, "repair-cost")
    completion = world.use_cases.completion
    original = completion.notify

    def crash(prediction: Prediction, output: bytes | None = None) -> None:
        raise RuntimeError("injected crash after the terminal write")

    completion.notify = crash  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        uploaded(world, prediction_id)
    completion.notify = original  # type: ignore[method-assign]
    assert status(world, prediction_id) is COMPLETED
    assert world.webhooks.take() == []
    # WHEN SQS redelivers the S3 event (the batch item failed)
    uploaded(world, prediction_id)
    # THEN the skipped webhook is queued, and the model was not called again
    assert world.webhooks.take() == [
        {"prediction_id": prediction_id, "event_type": "prediction.completed", "attempt": 0}
    ]
    assert len(world.models.realtime_calls) == 1


# ------------------------------------------------------------------------------------------------
# finish
# ------------------------------------------------------------------------------------------------
def test_finish_is_idempotent_and_a_duplicate_does_not_deliver_the_webhook_twice(world: World) -> None:
    # GIVEN a running prediction with a webhook, and its success notification
    prediction_id = submit(world)
    uploaded(world, prediction_id)
    output = world.objects.write(f"outputs/{prediction_id}.out", b'{"p": 0.1}', "application/json")
    notification = success(prediction_id, output)

    # WHEN the notification arrives, then again (SNS delivers at least once)
    world.gateway.inference_finished(notification)
    finished_at = world.store.get(prediction_id).finished_at  # type: ignore[union-attr]
    world.clock.advance(seconds=5)
    world.gateway.inference_finished(notification)

    # THEN the record moved to COMPLETED once and kept its first finish time
    assert [t for t in world.store.transitions if t[2] is COMPLETED] == [(prediction_id, RUNNING, COMPLETED)]
    assert world.store.get(prediction_id).finished_at == finished_at  # type: ignore[union-attr]
    # AND the callback was re-driven (a second job: the first enqueue might have been lost)
    jobs = world.webhooks.take()
    assert [j["event_type"] for j in jobs] == ["prediction.completed", "prediction.completed"]

    # WHEN webhook-delivery runs both jobs
    delivery = world.delivery()
    outcomes = [delivery.deliver(job) for job in jobs]
    # THEN the receiver got one webhook; the second job found it delivered
    assert outcomes == ["delivered", "already-delivered"]
    assert len(world.sender.sent) == 1

    # WHEN a third duplicate arrives after delivery
    world.gateway.inference_finished(notification)
    # THEN no job is queued at all
    assert world.webhooks.take() == []


def test_a_notification_cannot_finish_a_prediction_that_is_not_running(world: World) -> None:
    # GIVEN a prediction still waiting for its upload
    prediction_id = submit(world)
    # WHEN a (forged or misrouted) success notification names it
    world.gateway.inference_finished(success(prediction_id, "s3://gw-data/outputs/x"))
    # THEN it stays pending and nobody is told anything
    assert status(world, prediction_id) is PENDING
    assert world.webhooks.jobs == []
    # AND a notification for an unknown prediction is a no-op
    assert world.gateway.finish("pUnknown", succeeded=True) is None


def test_a_task_token_is_answered_again_on_duplicate_and_the_stale_answer_is_harmless(world: World) -> None:
    # GIVEN a running ensemble step waiting on a task token
    prediction_id = submit(world, webhook=None)
    uploaded(world, prediction_id)
    world.store.update(prediction_id, {"callback": Callback(kind=CallbackKind.TASK_TOKEN, target="token-1")})
    output = world.objects.write(f"outputs/{prediction_id}", b'{"p": 0.3}', "application/json")

    # WHEN its notification arrives twice
    world.gateway.inference_finished(success(prediction_id, output))
    world.gateway.inference_finished(success(prediction_id, output))

    # THEN the token got the step's reference and small output; the repeat was answered as stale
    assert [(token, kind) for token, kind, _ in world.workflows.answers] == [
        ("token-1", "success"),
        ("token-1", "success"),
    ]
    first = world.workflows.answers[0][2]
    assert first["prediction_id"] == prediction_id
    assert first["output"] == {"p": 0.3}
    assert world.webhooks.jobs == []


# ------------------------------------------------------------------------------------------------
# sweeper
# ------------------------------------------------------------------------------------------------
def test_sweep_expires_unuploaded_and_times_out_unanswered_predictions_once(world: World) -> None:
    # GIVEN at t=0 one prediction never uploaded and one running whose model never answers
    never_uploaded = submit(world)
    running = submit(world)
    uploaded(world, running)

    # WHEN the sweeper runs just before, then just past the upload deadline (900 s + 30 s)
    world.clock.advance(seconds=930)
    assert world.gateway.sweep() == 0
    world.clock.advance(seconds=1)
    # THEN the never-uploaded one expired; the running one is still within its deadline
    assert world.gateway.sweep() == 1
    expired = world.store.get(never_uploaded)
    assert expired is not None and expired.error is not None
    assert expired.status is EXPIRED
    assert status(world, running) is RUNNING

    # WHEN the sweeper runs just past the running one's deadline (3600 s queue time + 300 s
    # invocation timeout + 120 s margin)
    world.clock.advance(seconds=3600 + 300 + 120 - 931 + 1)
    # THEN it failed with a Timeout naming the limit
    assert world.gateway.sweep() == 1
    timed_out = world.store.get(running)
    assert timed_out is not None and timed_out.error is not None
    assert timed_out.status is FAILED
    assert timed_out.error.code == "Timeout"
    assert "3900 s" in timed_out.error.message
    assert expired.error.code == "UploadExpired"
    # AND each terminal status queued one webhook of its kind
    assert [(j["prediction_id"], j["event_type"]) for j in world.webhooks.take()] == [
        (never_uploaded, "prediction.expired"),
        (running, "prediction.failed"),
    ]
    # AND a later sweep finds nothing, and a late notification does not revive the timed-out one
    world.clock.advance(hours=1)
    assert world.gateway.sweep() == 0
    world.gateway.inference_finished(success(running, "s3://gw-data/outputs/late"))
    assert status(world, running) is FAILED


def test_expire_or_timeout_leaves_terminal_predictions_alone(world: World) -> None:
    # GIVEN a completed prediction
    prediction_id = submit(world)
    uploaded(world, prediction_id)
    world.gateway.inference_finished(success(prediction_id, "s3://gw-data/outputs/x"))
    record = world.store.get(prediction_id)
    assert record is not None
    world.webhooks.take()
    # WHEN the sweeper is handed it (a stale index entry)
    moved = world.gateway.expire_or_timeout(record)
    # THEN nothing changes
    assert moved is None
    assert status(world, prediction_id) is COMPLETED
    assert world.webhooks.jobs == []


# ------------------------------------------------------------------------------------------------
# results
# ------------------------------------------------------------------------------------------------
def test_results_are_visible_to_their_owner_only(world: World) -> None:
    # GIVEN a completed prediction of c_owner
    prediction_id = submit(world)
    uploaded(world, prediction_id)
    world.gateway.inference_finished(success(prediction_id, f"s3://gw-data/outputs/{prediction_id}.out"))
    owner = world.clients.get("c_owner")
    other = world.clients.get("c_other")
    assert owner is not None and other is not None
    # WHEN its owner reads it
    document = world.gateway.document(world.gateway.get_owned(owner, prediction_id))
    # THEN it is completed with a download URL of the output
    assert document.status is COMPLETED
    assert document.result is not None
    assert f"outputs/{prediction_id}.out" in document.result.url
    # AND another client, an unknown ID and a malformed ID all get the same NotFound
    for client, wanted in ((other, prediction_id), (owner, "pUnknown"), (owner, "../../etc/passwd")):
        with pytest.raises(NotFoundError):
            world.gateway.get_owned(client, wanted)


def test_a_record_past_its_retention_is_not_found_even_before_ttl_deletes_it(world: World) -> None:
    # GIVEN a prediction whose retention (30 days) has passed, not yet deleted by TTL
    prediction_id = submit(world)
    owner = world.clients.get("c_owner")
    assert owner is not None
    world.clock.advance(days=30, seconds=1)
    # WHEN its owner reads it
    # THEN it is not found
    with pytest.raises(NotFoundError):
        world.gateway.get_owned(owner, prediction_id)


def test_webhook_job_bodies_survive_a_queue_round_trip(world: World) -> None:
    # GIVEN a finished prediction's webhook job
    prediction_id = submit(world)
    uploaded(world, prediction_id)
    world.gateway.inference_finished(success(prediction_id, "s3://gw-data/outputs/x"))
    (job,) = world.webhooks.take()
    # WHEN it is carried as JSON (SQS) and delivered
    outcome = world.delivery().deliver(json.loads(json.dumps(job)))
    # THEN it is delivered
    assert outcome == "delivered"


# ------------------------------------------------------------------------------------------------
# accept and content types
# ------------------------------------------------------------------------------------------------
def record_of(world: World, prediction_id: str) -> Prediction:
    found = world.store.get(prediction_id)
    assert found is not None
    return found


def test_accept_defaults_to_json_and_is_recorded_as_given(world: World) -> None:
    # GIVEN / WHEN a request that does not say what it wants back, and one asking for CSV first
    default_id = submit(world)
    csv_id = submit(world, accept="text/csv, application/json;q=0.5")
    # THEN the first is recorded asking for JSON, the second with its accept as given
    assert record_of(world, default_id).accept == "application/json"
    assert record_of(world, csv_id).accept == "text/csv, application/json;q=0.5"


def test_accept_is_passed_to_an_async_endpoint_and_the_result_has_the_models_content_type(world: World) -> None:
    # GIVEN a prediction asking an async model for CSV
    prediction_id = submit(world, accept="text/csv")
    # WHEN its upload is announced
    uploaded(world, prediction_id)
    # THEN SageMaker was asked for CSV (its Accept)
    (call,) = world.models.async_calls
    assert call["accept"] == "text/csv"
    # WHEN the model answers with CSV and SageMaker's notification says so
    output = world.objects.write(f"outputs/{prediction_id}.out", b"p\n0.1\n", "text/csv")
    notification = success(prediction_id, output)
    notification.response_parameters.content_type = "text/csv; charset=utf-8"
    world.gateway.inference_finished(notification)
    # THEN the result's content type is what the model returned
    document = world.gateway.document(record_of(world, prediction_id))
    assert document.result is not None
    assert document.result.content_type == "text/csv; charset=utf-8"


def test_accept_is_passed_to_a_realtime_endpoint_and_the_result_has_the_models_content_type(world: World) -> None:
    # GIVEN a real-time model that answers CSV when asked for it
    world.models.realtime_answer = RealtimeResponse(body=b"eur\n900\n", content_type="text/csv")
    prediction_id = submit(world, "repair-cost", accept="text/csv")
    # WHEN the upload is announced
    uploaded(world, prediction_id)
    # THEN the endpoint was asked for CSV
    assert [c["accept"] for c in world.models.realtime_calls] == ["text/csv"]
    # AND the result's content type is what the model returned (stored with the output too)
    document = world.gateway.document(record_of(world, prediction_id))
    assert document.result is not None
    assert document.result.content_type == "text/csv"
    assert world.objects.objects[f"s3://gw-data/outputs/{prediction_id}"] == (b"eur\n900\n", "text/csv")


def test_a_model_answering_another_type_than_asked_is_reported_with_the_type_it_returned(world: World) -> None:
    # GIVEN a real-time model that answers JSON whatever it is asked for
    prediction_id = submit(world, "repair-cost", accept="text/csv")
    # WHEN the upload is announced and the model answers
    uploaded(world, prediction_id)
    # THEN the result says JSON: what the output is, not what was asked for
    document = world.gateway.document(record_of(world, prediction_id))
    assert document.result is not None
    assert document.result.content_type == "application/json"


@pytest.mark.parametrize(
    "accept",
    [
        "application/json",
        "*/*",
        "image/*",
        "text/csv; header=present",
        'text/plain; charset="utf-8"',
        "application/json, text/csv;q=0.5, */*;q=0.1",
        "application/vnd.api+json",
    ],
    ids=["json", "anything", "any-image", "parameter", "quoted-parameter", "list-with-weights", "structured-suffix"],
)
def test_accept_takes_a_media_type_or_a_list_of_them_as_an_http_accept_header_does(accept: str) -> None:
    # GIVEN / WHEN a request carrying the accept
    request = NewPredictionRequest.model_validate({"service": "fraud-score", "accept": accept})
    # THEN it is kept as given
    assert request.accept == accept


@pytest.mark.parametrize(
    ("accept", "named"),
    [
        ("json", "'json' is not a media type or a comma-separated list of them"),
        ("", "'' is not a media type"),
        ("application/json,", "HTTP Accept header"),
        ("text/csv;", "HTTP Accept header"),
        ("text/csv\r\nX-Injected: 1", "HTTP Accept header"),
        ("application/" + "x" * 128, "at most 128 characters"),
    ],
    ids=["no-subtype", "empty", "trailing-comma", "empty-parameter", "header-injection", "too-long"],
)
def test_a_malformed_accept_is_refused_naming_the_field(accept: str, named: str) -> None:
    # GIVEN / WHEN a request whose accept is not what an HTTP Accept header holds
    with pytest.raises(ValidationError) as refused:
        NewPredictionRequest.model_validate({"service": "fraud-score", "accept": accept})
    # THEN the error names the field and what is wrong with it
    (error,) = refused.value.errors()
    assert error["loc"] == ("accept",)
    assert named in error["msg"]


def test_accept_is_part_of_the_idempotency_fingerprint(world: World) -> None:
    # GIVEN a request accepted with an Idempotency-Key, asking for JSON
    client = world.clients.get("c_owner")
    assert client is not None
    body = {"service": "fraud-score", "accept": "application/json"}
    world.gateway.submit(client, NewPredictionRequest.model_validate(body), idempotency_key="k1", raw_body=body)
    # WHEN the key is reused asking for CSV
    other = {"service": "fraud-score", "accept": "text/csv"}
    # THEN it is a conflict: another body
    with pytest.raises(ConflictError, match="Idempotency-Key"):
        world.gateway.submit(client, NewPredictionRequest.model_validate(other), idempotency_key="k1", raw_body=other)


def test_a_content_type_with_parameters_matches_its_media_type_and_is_kept_as_given(world: World) -> None:
    # GIVEN a JSON service, and an image service accepting image/png
    # WHEN a client declares JSON with a charset, and PNG in capitals
    json_id = submit(world, content_type="application/json; charset=utf-8")
    png_id = submit(world, "damage", content_type="Image/PNG")
    # THEN both are accepted, recorded as given, and their uploads must carry them as given
    assert record_of(world, json_id).content_type == "application/json; charset=utf-8"
    assert record_of(world, png_id).content_type == "Image/PNG"
    assert [(key, content_type) for key, content_type, _, _ in world.objects.presigned_uploads] == [
        (f"uploads/{json_id}", "application/json; charset=utf-8"),
        (f"uploads/{png_id}", "Image/PNG"),
    ]
    # WHEN the JSON input is uploaded
    uploaded(world, json_id)
    # THEN the model gets the content type as given
    assert [c["content_type"] for c in world.models.async_calls] == ["application/json; charset=utf-8"]


def test_a_content_type_of_another_media_type_is_refused_whatever_its_parameters(world: World) -> None:
    # GIVEN an image service that accepts PNG and JPEG
    # WHEN / THEN a GIF with a parameter is refused, naming it as given and what the service accepts
    with pytest.raises(InvalidRequestError, match=r"'image/gif; q=1'.*image/png, image/jpeg"):
        submit(world, "damage", content_type="image/gif; q=1")
    # AND so is a media type that merely starts like an accepted one
    with pytest.raises(InvalidRequestError, match="'image/pngx'"):
        submit(world, "damage", content_type="image/pngx")
    assert world.store.records == {}


@pytest.mark.parametrize(
    "content_type",
    ["json", "application/json;", "application/json; charset", 'text/plain; charset="utf-8', "image /png", "a/b, c/d"],
    ids=["no-subtype", "empty-parameter", "parameter-without-value", "unclosed-quote", "space-in-type", "a-list"],
)
def test_a_malformed_content_type_is_refused_naming_the_field(content_type: str) -> None:
    # GIVEN / WHEN a request whose content_type is not one media type
    with pytest.raises(ValidationError) as refused:
        NewPredictionRequest.model_validate({"service": "fraud-score", "content_type": content_type})
    # THEN the error names the field and says what a content type looks like
    (error,) = refused.value.errors()
    assert error["loc"] == ("content_type",)
    assert "is not a media type" in error["msg"]
    assert "application/json; charset=utf-8" in error["msg"]


# ------------------------------------------------------------------------------------------------
# model failures
# ------------------------------------------------------------------------------------------------
def failure(prediction_id: str, reason: str) -> InferenceResult:
    return InferenceResult.model_validate(
        {
            "inferenceId": prediction_id,
            "invocationStatus": "Failed",
            "failureReason": reason,
            "failureLocation": f"s3://gw-data/failures/{prediction_id}-error.out",
        }
    )


def test_an_async_model_failure_reports_the_models_own_message_and_logs_sagemakers_reason() -> None:
    # GIVEN a running async prediction, with the gateway's log kept
    world = make_world(services=[model_service("fraud-score")], clients=[new_client("c_owner")])
    logger = FakeLogger()
    world.gateway.logger = logger
    prediction_id = submit(world)
    uploaded(world, prediction_id)
    reason = (
        'ClientError: Received server error (500) from model with message "amount must be positive". '
        "See https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#logEventViewer:"
        "group=/aws/sagemaker/Endpoints/fraud-score-endpoint in account 123456789012 for more information."
    )
    # WHEN SageMaker reports that the model failed
    world.gateway.inference_finished(failure(prediction_id, reason))
    # THEN the prediction failed with the model's own message, its failure object kept
    record = record_of(world, prediction_id)
    assert record.status is FAILED
    assert record.error == PredictionError(code="ModelError", message="amount must be positive")
    assert record.failure_uri == f"s3://gw-data/failures/{prediction_id}-error.out"
    # AND SageMaker's whole reason is in the log
    assert logger.fields_of("model failed") == [{"prediction_id": prediction_id, "failure_reason": reason}]


def test_an_async_failure_that_is_not_the_models_answer_keeps_sagemakers_reason(world: World) -> None:
    # GIVEN a running async prediction
    prediction_id = submit(world)
    uploaded(world, prediction_id)
    reason = "InvocationTimeout: The invocation did not complete within 300 seconds."
    # WHEN SageMaker reports a timeout
    world.gateway.inference_finished(failure(prediction_id, reason))
    # THEN the prediction failed with SageMaker's reason as it is
    assert record_of(world, prediction_id).error == PredictionError(code="ModelError", message=reason)

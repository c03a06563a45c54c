"""A new upload form (``POST /predictions/{id}/upload``) against in-memory fakes: given only while the
prediction awaits its upload, and the sweeper's expiry moves with it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from gateway_fakes import World, make_world, model_service, new_client

from ensemble_gateway.domain.api import NewPredictionRequest
from ensemble_gateway.domain.errors import ConflictError, NotFoundError
from ensemble_gateway.domain.models import Client, Prediction, PredictionStatus

PENDING = PredictionStatus.PENDING_UPLOAD
RUNNING = PredictionStatus.RUNNING
EXPIRED = PredictionStatus.EXPIRED


@pytest.fixture
def world() -> World:
    return make_world(
        services=[model_service("damage", content_types=["image/png"], max_bytes=2048)],
        clients=[new_client("c_owner"), new_client("c_other")],
    )


def client(world: World, client_id: str = "c_owner") -> Client:
    found = world.clients.get(client_id)
    assert found is not None
    return found


def submit(world: World, **body: Any) -> str:
    request = {"service": "damage", **body}
    intake = world.use_cases.intake
    return intake.submit(client(world), NewPredictionRequest.model_validate(request), raw_body=request).prediction_id


def record(world: World, prediction_id: str) -> Prediction:
    found = world.store._load(prediction_id)
    assert found is not None
    return found


def test_a_new_form_is_valid_from_now_and_the_upload_window_moves_with_it(world: World) -> None:
    # GIVEN a prediction whose first form (900 s) is about to expire
    prediction_id = submit(world)
    first_deadline = record(world, prediction_id).deadline_at
    world.clock.advance(seconds=890)
    # WHEN its owner asks for a new form
    renewed = world.use_cases.intake.renew_upload(client(world), prediction_id)
    # THEN it is a form for the same key, content type and size, valid 900 s from now
    assert renewed.prediction_id == prediction_id
    assert renewed.upload.fields["key"] == f"uploads/{prediction_id}"
    assert world.objects.presigned_uploads[-1] == (f"uploads/{prediction_id}", "image/png", 2048, 900)
    assert renewed.upload.expires_at == world.clock() + timedelta(seconds=900)
    # AND the record's window moved: the sweeper expires it 30 s after the new form dies
    after = record(world, prediction_id)
    assert after.status is PENDING
    assert after.upload_expires_at == renewed.upload.expires_at
    assert after.deadline_at == renewed.upload.expires_at + timedelta(seconds=30)
    # WHEN the sweeper runs past the first deadline, THEN it leaves it awaiting its upload
    assert first_deadline is not None
    world.clock.set(first_deadline + timedelta(seconds=1))
    assert world.use_cases.sweeping.sweep() == 0
    assert record(world, prediction_id).status is PENDING
    # AND past the new one it expires it
    world.clock.set(after.deadline_at + timedelta(seconds=1))
    assert world.use_cases.sweeping.sweep() == 1
    assert record(world, prediction_id).status is EXPIRED


def test_a_replay_after_a_renewal_offers_the_renewed_window(world: World) -> None:
    # GIVEN a prediction submitted with an idempotency key, then given a new form
    request = {"service": "damage"}
    intake = world.use_cases.intake
    prediction_id = intake.submit(
        client(world), NewPredictionRequest.model_validate(request), idempotency_key="k-1", raw_body=request
    ).prediction_id
    world.clock.advance(seconds=600)
    renewed = intake.renew_upload(client(world), prediction_id)
    # WHEN the submission is replayed past the first form's expiry
    world.clock.advance(seconds=600)
    replay = intake.submit(
        client(world), NewPredictionRequest.model_validate(request), idempotency_key="k-1", raw_body=request
    )
    # THEN it still offers a form, ending when the renewed one does
    assert replay.upload is not None
    assert replay.upload.expires_at == renewed.upload.expires_at


@pytest.mark.parametrize(
    ("status", "named"),
    [(RUNNING, "is RUNNING"), (EXPIRED, "is EXPIRED"), (PredictionStatus.CANCELLED, "is CANCELLED")],
)
def test_no_form_once_the_upload_is_no_longer_awaited(world: World, status: PredictionStatus, named: str) -> None:
    # GIVEN a prediction whose input was accepted, or that has ended
    prediction_id = submit(world)
    world.store.transition(prediction_id, [PENDING], status)
    before = record(world, prediction_id)
    presigned = len(world.objects.presigned_uploads)
    # WHEN its owner asks for a new form
    # THEN it is a conflict naming the status, and nothing was presigned or changed
    with pytest.raises(ConflictError, match=f"'{prediction_id}' {named}: a new upload form is given only while"):
        world.use_cases.intake.renew_upload(client(world), prediction_id)
    assert len(world.objects.presigned_uploads) == presigned
    assert record(world, prediction_id) == before


def test_an_upload_accepted_while_the_form_is_made_is_a_conflict(world: World) -> None:
    # GIVEN a prediction whose upload is accepted between the read and the write of a renewal
    prediction_id = submit(world)
    original = world.store.transition

    def racing(pid: str, allowed: Any, to: PredictionStatus, changes: Any = None) -> Prediction | None:
        original(pid, [PENDING], RUNNING, {})
        return original(pid, allowed, to, changes)

    world.store.transition = racing  # type: ignore[method-assign,assignment]
    # WHEN its owner asks for a new form
    # THEN the conditional write refuses it and the answer names the status it found
    with pytest.raises(ConflictError, match="is RUNNING"):
        world.use_cases.intake.renew_upload(client(world), prediction_id)


def test_a_renewal_never_shortens_the_window_it_replaces(world: World) -> None:
    # GIVEN a prediction with a 900 s form, and the expiry setting lowered to 60 s since
    prediction_id = submit(world)
    first = record(world, prediction_id)
    world.use_cases.ports.config.upload_expiry_seconds = 60
    # WHEN its owner asks for a new form at once
    world.use_cases.intake.renew_upload(client(world), prediction_id)
    # THEN the record keeps the first window (the first form is still valid until then)
    assert record(world, prediction_id).upload_expires_at == first.upload_expires_at
    assert record(world, prediction_id).deadline_at == first.deadline_at


def test_another_clients_prediction_is_not_found(world: World) -> None:
    # GIVEN a prediction of c_owner
    prediction_id = submit(world)
    # WHEN c_other asks for a new form, THEN it is the 404 of GET, and nothing was presigned
    presigned = len(world.objects.presigned_uploads)
    with pytest.raises(NotFoundError):
        world.use_cases.intake.renew_upload(client(world, "c_other"), prediction_id)
    assert len(world.objects.presigned_uploads) == presigned

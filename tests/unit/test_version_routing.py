"""Predictions go to the version their draw chose: intake records it, dispatch sends it there."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from gateway_fakes import T0, World, make_world, model_service, new_client

from ensemble_gateway.domain import rollout
from ensemble_gateway.domain.api import NewPredictionRequest, ServiceDocument
from ensemble_gateway.domain.errors import GatewayError
from ensemble_gateway.domain.models import PredictionStatus, Service
from ensemble_gateway.domain.rollout import NoServingVersionError


def two_versions(*, approve: bool = True, split: dict[str, int] | None = None, sticky: str | None = None) -> Service:
    """fraud-score 1.0.0 serving, 1.1.0 on its own endpoint (approved or pending), the split given."""
    first = model_service("fraud-score")
    assert first.model is not None
    second = first.model_copy(
        update={"version": "1.1.0", "model": first.model.model_copy(update={"endpoint_name": "fraud-score-1-1-0"})}
    )
    service = rollout.apply_entry(rollout.apply_entry(None, first, T0), second, T0)
    if approve:
        service = rollout.approve(service, "1.1.0", by="Dana Risk", now=T0)
    if split:
        service = rollout.set_traffic(service, split, by="ops", now=T0, sticky_key=sticky)
    return service


def submit_and_upload(world: World, metadata: dict[str, str] | None = None) -> str:
    client = world.clients.get("c_owner")
    assert client is not None
    request: dict[str, Any] = {"service": "fraud-score", "metadata": metadata or {}}
    prediction_id = world.gateway.submit(
        client, NewPredictionRequest.model_validate(request), raw_body=request
    ).prediction_id
    world.objects.put_upload(f"uploads/{prediction_id}", b'{"amount": 10}')
    world.gateway.input_uploaded(world.objects.bucket, f"uploads/{prediction_id}")
    return prediction_id


def test_a_pending_version_never_serves():
    # GIVEN 1.1.0 applied but not approved
    world = make_world(services=[two_versions(approve=False)], clients=[new_client()])

    # WHEN 50 predictions are made
    for n in range(50):
        submit_and_upload(world, {"customer_id": f"C{n}"})

    # THEN every one went to 1.0.0's endpoint
    assert {call["endpoint"] for call in world.models.async_calls} == {"fraud-score-endpoint"}


def test_a_sticky_canary_sends_each_customer_to_one_version_and_records_it():
    # GIVEN a 50/50 split sticky on customer_id
    world = make_world(
        services=[two_versions(split={"1.0.0": 50, "1.1.0": 50}, sticky="customer_id")], clients=[new_client()]
    )

    # WHEN each of 40 customers makes two predictions
    by_customer: dict[str, set[str]] = {}
    for n in range(40):
        for _ in range(2):
            prediction_id = submit_and_upload(world, {"customer_id": f"C{n}"})
            record = world.store.get(prediction_id)
            assert record is not None
            by_customer.setdefault(f"C{n}", set()).add(str(record.model.version))
            # THEN the record names the version and how it was drawn; the model called is that version's
            assert record.model.assignment is not None and record.model.assignment.by == "sticky"
            call = next(c for c in world.models.async_calls if c["inference_id"] == prediction_id)
            expected = "fraud-score-endpoint" if record.model.version == "1.0.0" else "fraud-score-1-1-0"
            assert call["endpoint"] == expected == record.model.endpoint

    # THEN each customer always got the same version, and both versions served someone
    assert all(len(versions) == 1 for versions in by_customer.values())
    assert Counter(next(iter(v)) for v in by_customer.values()).keys() == {"1.0.0", "1.1.0"}


def test_a_version_rejected_after_the_draw_is_replaced_at_dispatch():
    # GIVEN a prediction drawn for 1.1.0 (all traffic) that is then moved back and rejected before upload
    world = make_world(services=[two_versions(split={"1.1.0": 100})], clients=[new_client()])
    client = world.clients.get("c_owner")
    assert client is not None
    request = {"service": "fraud-score"}
    prediction_id = world.gateway.submit(
        client, NewPredictionRequest.model_validate(request), raw_body=request
    ).prediction_id
    drawn = world.store.get(prediction_id)
    assert drawn is not None and drawn.model.version == "1.1.0"
    service = world.catalog.get("fraud-score")
    assert service is not None
    service = rollout.rollback(service, by="ops", now=T0)
    world.catalog.put(rollout.reject(service, "1.1.0", by="Dana Risk", now=T0))

    # WHEN its input is uploaded
    world.objects.put_upload(f"uploads/{prediction_id}", b"{}")
    world.gateway.input_uploaded(world.objects.bucket, f"uploads/{prediction_id}")

    # THEN it goes to 1.0.0, and the record says so
    record = world.store.get(prediction_id)
    assert record is not None and record.model.version == "1.0.0"
    assert [c["endpoint"] for c in world.models.async_calls] == ["fraud-score-endpoint"]


def test_a_service_with_no_approved_version_refuses_predictions_with_the_way_out():
    # GIVEN a new service that requires approval of its first version
    pending = rollout.apply_entry(None, model_service("fraud-score", approval="required"), T0)
    world = make_world(services=[pending], clients=[new_client()])
    client = world.clients.get("c_owner")
    assert client is not None

    # WHEN a prediction is submitted / THEN it is refused (409) naming the approval command
    with pytest.raises(NoServingVersionError) as refused:
        world.gateway.submit(client, NewPredictionRequest(service="fraud-score"), raw_body={"service": "fraud-score"})
    assert isinstance(refused.value, GatewayError) and refused.value.http_status == 409
    assert "services approve fraud-score 1.0.0" in refused.value.message
    assert world.store.records == {}


def test_get_services_shows_the_serving_versions_and_split():
    # GIVEN a 90/10 sticky split / WHEN listed / THEN the document has the versions and the split
    document = ServiceDocument.of(two_versions(split={"1.0.0": 90, "1.1.0": 10}, sticky="customer_id"))
    assert document.traffic == {"1.0.0": 90, "1.1.0": 10}
    assert [(v.version, v.weight) for v in document.versions] == [("1.0.0", 90), ("1.1.0", 10)]
    assert document.sticky_key == "customer_id" and document.version == "1.0.0"


def test_a_completed_prediction_keeps_its_version_in_the_document():
    # GIVEN a prediction sent to 1.1.0 (all traffic after promotion)
    service = rollout.promote(two_versions(), "1.1.0", by="Dana Risk", now=T0)
    world = make_world(services=[service], clients=[new_client()])
    prediction_id = submit_and_upload(world)

    # WHEN it finishes
    world.gateway.finish(
        prediction_id, succeeded=True, output_uri="s3://b/outputs/x", output_content_type="application/json"
    )

    # THEN its document names 1.1.0 and its endpoint
    record = world.store.get(prediction_id)
    assert record is not None and record.status is PredictionStatus.COMPLETED
    document = world.use_cases.read_model.document(record)
    assert (document.model.version, document.model.endpoint) == ("1.1.0", "fraud-score-1-1-0")

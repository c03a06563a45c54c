"""Listing (``GET /predictions``) against in-memory fakes: the caller's own, newest first, filtered,
a page at a time with a token that continues only the listing it came from."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from gateway_fakes import T0, World, make_world, model_service, new_client

from ensemble_gateway.domain.api import PredictionListDocument
from ensemble_gateway.domain.errors import InvalidRequestError
from ensemble_gateway.domain.listing import BAD_TOKEN, OTHER_LISTING, ListRequest, _binding, encode_token
from ensemble_gateway.domain.models import Client, Prediction, PredictionStatus, Service, StepOutcome
from ensemble_gateway.domain.ports import PageCursor

PENDING = PredictionStatus.PENDING_UPLOAD
RUNNING = PredictionStatus.RUNNING
COMPLETED = PredictionStatus.COMPLETED


@pytest.fixture
def world() -> World:
    ensemble = Service.model_validate(
        {
            "name": "claim",
            "kind": "ensemble",
            "ensemble": {"definition": "claim.asl.json", "steps": {"fraud": {"service": "fraud-score"}}},
        }
    )
    return make_world(
        services=[model_service("fraud-score"), model_service("repair-cost"), ensemble],
        clients=[new_client("c_owner"), new_client("c_other")],
    )


def client(world: World, client_id: str = "c_owner") -> Client:
    found = world.clients.get(client_id)
    assert found is not None
    return found


def add(world: World, prediction_id: str, minutes: int, **fields: Any) -> Prediction:
    """A record created ``minutes`` after T0."""
    prediction = Prediction(
        prediction_id=prediction_id,
        service=fields.pop("service", "fraud-score"),
        owner=fields.pop("owner", "c_owner"),
        created_at=T0 + timedelta(minutes=minutes),
        updated_at=T0 + timedelta(minutes=minutes),
        **fields,
    )
    assert world.store.create(prediction)
    return prediction


def record(world: World, prediction_id: str) -> Prediction:
    found = world.store._load(prediction_id)
    assert found is not None
    return found


def listed(world: World, client_id: str = "c_owner", **query: str) -> PredictionListDocument:
    return world.use_cases.listing.list(client(world, client_id), ListRequest.from_query(query))


def ids(page: PredictionListDocument) -> list[str]:
    return [document.prediction_id for document in page.predictions]


def test_the_list_is_the_callers_own_top_level_predictions_newest_first(world: World) -> None:
    # GIVEN predictions of two clients, a step of one of c_owner's, and one of c_owner's past retention
    add(world, "p-old", 1)
    add(world, "p-new", 3, status=RUNNING)
    add(world, "p-mid", 2, status=COMPLETED)
    add(world, "p-theirs", 4, owner="c_other")
    add(world, "p-step", 5, parent_id="p-new", step="fraud")
    add(world, "p-gone", 6, expires_at=int((world.clock() - timedelta(seconds=1)).timestamp()))
    # WHEN each client lists
    mine = listed(world)
    theirs = listed(world, "c_other")
    # THEN each sees only their own top-level predictions, the newest first, on one last page
    assert ids(mine) == ["p-new", "p-mid", "p-old"]
    assert ids(theirs) == ["p-theirs"]
    assert mine.next_token is None and theirs.next_token is None


def test_pages_follow_each_other_until_the_end_with_every_prediction_once(world: World) -> None:
    # GIVEN seven predictions
    for minute in range(7):
        add(world, f"p-{minute}", minute)
    # WHEN the owner pages through three at a time
    seen: list[list[str]] = []
    token: str | None = None
    while True:
        page = listed(world, limit="3", **({"next_token": token} if token else {}))
        seen.append(ids(page))
        token = page.next_token
        if token is None:
            break
    # THEN the pages are full but the last, newest first, and the last has no token
    assert seen == [["p-6", "p-5", "p-4"], ["p-3", "p-2", "p-1"], ["p-0"]]


def test_filters_narrow_the_list_and_the_token_keeps_them(world: World) -> None:
    # GIVEN predictions of two services and several statuses
    add(world, "p-a", 1, status=RUNNING)
    add(world, "p-b", 2, status=COMPLETED)
    add(world, "p-c", 3, status=RUNNING, service="repair-cost")
    add(world, "p-d", 4, status=RUNNING)
    add(world, "p-e", 5, status=RUNNING)
    # WHEN the owner filters
    # THEN each filter keeps what it says, created_after strictly
    assert ids(listed(world, status="RUNNING")) == ["p-e", "p-d", "p-c", "p-a"]
    assert ids(listed(world, service="repair-cost")) == ["p-c"]
    after = (T0 + timedelta(minutes=2)).isoformat()
    assert ids(listed(world, created_after=after)) == ["p-e", "p-d", "p-c"]
    assert ids(listed(world, status="RUNNING", service="fraud-score", created_after=after)) == ["p-e", "p-d"]
    # AND a page of a filtered list continues with the same filters
    first = listed(world, status="RUNNING", service="fraud-score", limit="1")
    assert ids(first) == ["p-e"] and first.next_token is not None
    second = listed(world, status="RUNNING", service="fraud-score", limit="2", next_token=first.next_token)
    assert ids(second) == ["p-d", "p-a"]


def test_a_token_continues_only_its_own_listing(world: World) -> None:
    # GIVEN a first page of c_owner's RUNNING predictions, and predictions of c_other
    for minute in range(3):
        add(world, f"p-{minute}", minute, status=RUNNING)
        add(world, f"p-other-{minute}", minute, owner="c_other", status=RUNNING)
    token = listed(world, status="RUNNING", limit="1").next_token
    assert token is not None
    # WHEN the token is used by another client, or with other filters
    # THEN it is refused, saying it belongs to another listing
    for client_id, query in (("c_other", {"status": "RUNNING"}), ("c_owner", {}), ("c_owner", {"service": "claim"})):
        with pytest.raises(InvalidRequestError) as refused:
            listed(world, client_id, next_token=token, **query)
        assert refused.value.message == OTHER_LISTING
    # AND the limit may change from page to page
    assert ids(listed(world, status="RUNNING", limit="5", next_token=token)) == ["p-1", "p-0"]


@pytest.mark.parametrize(
    "token",
    [
        "not-a-token",
        "%%%",
        base64.urlsafe_b64encode(b'{"v": 1}').decode(),
        base64.urlsafe_b64encode(b"[1, 2, 3, 4]").decode(),
        base64.urlsafe_b64encode(b'[2, "2026-11-22T09:00:00+00:00", "p-1", "x"]').decode(),
        base64.urlsafe_b64encode(b'[1, "2026-11-22T09:00:00", "p-1", "x"]').decode(),
        base64.urlsafe_b64encode(b'[1, "2026-11-22T09:00:00+00:00", "../p", "x"]').decode(),
        "A" * 513,
    ],
)
def test_a_token_this_api_did_not_write_is_refused(world: World, token: str) -> None:
    # GIVEN a next_token that is not one of this API's
    # WHEN it is used, THEN it is a 400 saying so
    with pytest.raises(InvalidRequestError) as refused:
        listed(world, next_token=token)
    assert refused.value.message == BAD_TOKEN


def test_a_token_edited_to_point_anywhere_still_lists_only_the_callers_own(world: World) -> None:
    # GIVEN two predictions of c_owner, and a newer one of c_other
    add(world, "p-mine-1", 1)
    add(world, "p-mine-2", 2)
    add(world, "p-theirs", 9, owner="c_other")
    binding = _binding(client(world), ListRequest())
    # WHEN c_owner forges tokens of its own listing: after c_other's newest, between its own two
    after_theirs = encode_token(PageCursor(T0 + timedelta(minutes=10), "p-zzz"), binding)
    between = encode_token(PageCursor(T0 + timedelta(minutes=2), "p-mine-2"), binding)
    # THEN each page holds c_owner's own from that position, never c_other's
    assert ids(listed(world, next_token=after_theirs)) == ["p-mine-2", "p-mine-1"]
    assert ids(listed(world, next_token=between)) == ["p-mine-1"]


def test_a_list_item_is_the_get_document_and_an_ensembles_steps_come_from_its_record(world: World) -> None:
    # GIVEN a completed model prediction, and a running ensemble with one finished step recorded
    add(
        world,
        "p-model",
        1,
        status=COMPLETED,
        output_uri="s3://gw-data/outputs/p-model",
        output_content_type="application/json",
    )
    ensemble = add(world, "p-ens", 2, service="claim", status=RUNNING)
    outcome = StepOutcome(step="fraud", service="fraud-score", status=COMPLETED, started_at=ensemble.created_at)
    world.store.record_step_outcome("p-ens", "p-ens-s1", outcome)
    add(world, "p-ens-s1", 2, service="fraud-score", parent_id="p-ens", step="fraud", status=COMPLETED)
    add(world, "p-ens-s2", 3, service="fraud-score", parent_id="p-ens", step="other", status=RUNNING)
    documents = world.use_cases.read_model

    def no_children(parent_id: str) -> list[Prediction]:
        raise AssertionError("a list item must not query the children")

    get_documents = {pid: documents.document(record(world, pid)) for pid in ("p-model", "p-ens")}
    world.store.children = no_children  # type: ignore[method-assign]
    catalog_reads = world.catalog.reads
    # WHEN the owner lists
    page = listed(world)
    # THEN the model's item is its GET document (with its result URL), in one catalog read
    by_id = {document.prediction_id: document for document in page.predictions}
    assert by_id["p-model"] == get_documents["p-model"]
    assert by_id["p-model"].result is not None
    assert world.catalog.reads == catalog_reads + 1
    # AND the ensemble's steps are those its record holds (GET also lists the running one)
    assert [(s.name, s.prediction_id, s.status) for s in by_id["p-ens"].steps or []] == [
        ("fraud", "p-ens-s1", COMPLETED)
    ]
    assert {s.name for s in get_documents["p-ens"].steps or []} == {"fraud", "other"}


def test_an_empty_list_is_one_empty_last_page(world: World) -> None:
    # GIVEN a client without predictions
    # WHEN it lists, THEN the page is empty and the last
    assert listed(world) == PredictionListDocument(predictions=[], next_token=None)


# -- the query string ----------------------------------------------------------------------------


def test_the_query_string_is_read_with_its_defaults() -> None:
    # GIVEN no parameters, an empty next_token, and every parameter given
    # WHEN they are read
    # THEN absent means the defaults (an empty next_token too), and values are typed (a moment
    # without offset is UTC)
    assert ListRequest.from_query(None) == ListRequest()
    assert ListRequest.from_query({"next_token": ""}) == ListRequest()
    assert ListRequest.from_query(
        {
            "status": "CANCELLED",
            "service": "fraud-score",
            "created_after": "2026-11-22T10:30:00+01:00",
            "limit": "100",
            "next_token": "abc",
        }
    ) == ListRequest(
        status=PredictionStatus.CANCELLED,
        service="fraud-score",
        created_after=datetime(2026, 11, 22, 9, 30, tzinfo=UTC),
        limit=100,
        next_token="abc",
    )
    assert ListRequest.from_query({"created_after": "2026-11-22T09:30:00Z"}).created_after == datetime(
        2026, 11, 22, 9, 30, tzinfo=UTC
    )
    assert ListRequest.from_query({"created_after": "2026-11-22"}).created_after == datetime(2026, 11, 22, tzinfo=UTC)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"status": "SKIPPED"}, "status 'SKIPPED' is not one of PENDING_UPLOAD, RUNNING, COMPLETED, FAILED, EXPIRED, "),
        ({"status": "running"}, "status 'running' is not one of"),
        ({"status": ""}, "status '' is not one of"),
        ({"service": ""}, "service '' is not a service name"),
        ({"created_after": ""}, "created_after '' is not an ISO 8601 date-time"),
        ({"limit": ""}, "limit '' is not a whole number"),
        ({"service": "Fraud Score"}, "service 'Fraud Score' is not a service name"),
        ({"created_after": "yesterday"}, "created_after 'yesterday' is not an ISO 8601 date-time"),
        ({"created_after": "0001-01-01T00:00:00+01:00"}, "created_after '0001-01-01T00:00:00+01:00' is out of range"),
        ({"limit": "0"}, "limit '0' is not a whole number from 1 to 100"),
        ({"limit": "101"}, "limit '101' is not a whole number from 1 to 100"),
        ({"limit": "1.5"}, "limit '1.5' is not a whole number"),
        ({"limit": "-3"}, "limit '-3' is not a whole number"),
        ({"limit": "²"}, "limit '²' is not a whole number"),
        ({"page": "2"}, "unknown query parameter 'page'; GET /predictions takes status, service, created_after"),
    ],
)
def test_a_bad_query_parameter_is_refused_naming_it(query: dict[str, str], message: str) -> None:
    # GIVEN a query string with one bad parameter
    # WHEN it is read, THEN it is a 400 whose message names the parameter and the problem
    with pytest.raises(InvalidRequestError) as refused:
        ListRequest.from_query(query)
    assert refused.value.message.startswith(message)

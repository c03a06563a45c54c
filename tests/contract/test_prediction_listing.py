"""The PredictionStore's ``list_owned`` (``GET /predictions``), on the fake and on DynamoDB's
``by-owner`` index as template.yaml defines it."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from gateway_fakes import FakeClock

from ensemble_gateway.domain.models import Prediction, PredictionStatus
from ensemble_gateway.domain.ports import PageCursor, PredictionQuery

RUNNING = PredictionStatus.RUNNING
COMPLETED = PredictionStatus.COMPLETED


def add(predictions: Any, clock: FakeClock, prediction_id: str, minutes: int, **fields: Any) -> Prediction:
    """A record created ``minutes`` after the clock's start."""
    prediction = Prediction(
        prediction_id=prediction_id,
        service=fields.pop("service", "fraud-score"),
        owner=fields.pop("owner", "c1"),
        created_at=clock() + timedelta(minutes=minutes, milliseconds=7),
        updated_at=clock(),
        **fields,
    )
    assert predictions.create(prediction)
    return prediction


def every_page(predictions: Any, query: PredictionQuery) -> list[list[str]]:
    """The IDs of each page of ``query``, following the cursors to the end."""
    pages = []
    for _ in range(50):
        page = predictions.list_owned(query)
        pages.append([p.prediction_id for p in page.predictions])
        if page.cursor is None:
            return pages
        query = replace(query, after=page.cursor)
    raise AssertionError(f"no end after 50 pages: {pages}")


def flat(pages: list[list[str]]) -> list[str]:
    return [prediction_id for page in pages for prediction_id in page]


def test_an_owners_top_level_records_are_listed_newest_first(predictions: Any, clock: FakeClock) -> None:
    # GIVEN records of two owners, a step of one of c1's, and one of c1's past its retention
    add(predictions, clock, "p1", 1)
    add(predictions, clock, "p3", 3, status=RUNNING)
    add(predictions, clock, "p2", 2, status=COMPLETED)
    add(predictions, clock, "q1", 4, owner="c2")
    add(predictions, clock, "p3-step", 5, parent_id="p3", step="fraud")
    add(predictions, clock, "p-gone", 6, expires_at=int(clock().timestamp()) - 1)
    # WHEN c1's are listed
    page = predictions.list_owned(PredictionQuery(owner="c1", now=clock()))
    # THEN they are c1's top-level records within retention, newest first, read back whole, and the last page
    assert [p.prediction_id for p in page.predictions] == ["p3", "p2", "p1"]
    assert page.predictions[0] == predictions.get("p3")
    assert page.cursor is None


def test_a_full_page_ends_with_a_cursor_at_its_last_record(predictions: Any, clock: FakeClock) -> None:
    # GIVEN five records of c1
    for minute in range(5):
        add(predictions, clock, f"p{minute}", minute)
    # WHEN they are listed two at a time
    first = predictions.list_owned(PredictionQuery(owner="c1", now=clock(), limit=2))
    # THEN the page's cursor names its last record, and the pages that follow cover the rest once
    assert [p.prediction_id for p in first.predictions] == ["p4", "p3"]
    assert first.cursor == PageCursor(first.predictions[-1].created_at, "p3")
    assert every_page(predictions, PredictionQuery(owner="c1", now=clock(), limit=2)) == [
        ["p4", "p3"],
        ["p2", "p1"],
        ["p0"],
    ]


def test_filters_by_status_service_and_creation(predictions: Any, clock: FakeClock) -> None:
    # GIVEN c1's records of two services in several statuses
    add(predictions, clock, "a", 1, status=RUNNING)
    add(predictions, clock, "b", 2, status=COMPLETED)
    add(predictions, clock, "c", 3, status=RUNNING, service="repair-cost")
    add(predictions, clock, "d", 4, status=RUNNING)

    def listed(**query: Any) -> list[str]:
        return flat(every_page(predictions, PredictionQuery(owner="c1", now=clock(), **query)))

    # WHEN they are filtered, THEN each filter keeps what it names (created_after strictly)
    assert listed(status=RUNNING) == ["d", "c", "a"]
    assert listed(service="repair-cost") == ["c"]
    second = predictions.get("b").created_at
    assert listed(created_after=second) == ["d", "c"]
    assert listed(status=RUNNING, service="fraud-score", created_after=second) == ["d"]
    assert listed(status=PredictionStatus.CANCELLED) == []


def test_paging_through_many_filtered_out_records_misses_nothing(
    predictions: Any, clock: FakeClock, store_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN c1's RUNNING records between many that the filter drops (steps, other statuses), and a
    # DynamoDB adapter reading the index two entries at a time, two reads per page
    if store_kind == "dynamodb":
        monkeypatch.setattr("ensemble_gateway.adapters.dynamodb.LIST_PAGE_ITEMS", 2)
        monkeypatch.setattr("ensemble_gateway.adapters.dynamodb.LIST_MAX_PAGES", 2)
    expected = []
    for minute in range(12):
        if minute % 4 == 0:
            add(predictions, clock, f"run-{minute}", minute, status=RUNNING)
            expected.append(f"run-{minute}")
        else:
            add(predictions, clock, f"step-{minute}", minute, status=RUNNING, parent_id="x", step="s")
            add(predictions, clock, f"done-{minute}", minute, status=COMPLETED)
    # WHEN they are paged through, three a page
    pages = every_page(predictions, PredictionQuery(owner="c1", now=clock(), status=RUNNING, limit=3))
    # THEN every match comes once, newest first, whatever the pages held
    assert flat(pages) == expected[::-1]
    assert all(len(page) <= 3 for page in pages)


def test_a_cursor_continues_after_its_position_whether_or_not_a_record_is_there(
    predictions: Any, clock: FakeClock
) -> None:
    # GIVEN three records, and a position just after the middle one's creation (no record there)
    for minute in range(3):
        add(predictions, clock, f"p{minute}", minute)
    middle = predictions.get("p1").created_at
    # WHEN the list continues from there, and from the middle record itself
    after_gap = predictions.list_owned(
        PredictionQuery(owner="c1", now=clock(), after=PageCursor(middle + timedelta(milliseconds=1), "p9"))
    )
    after_record = predictions.list_owned(PredictionQuery(owner="c1", now=clock(), after=PageCursor(middle, "p1")))
    # THEN each holds what comes after that position, in order
    assert [p.prediction_id for p in after_gap.predictions] == ["p1", "p0"]
    assert [p.prediction_id for p in after_record.predictions] == ["p0"]


def test_a_page_filled_by_the_last_records_of_the_index_is_the_last_page(
    predictions: Any, clock: FakeClock, store_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN two RUNNING records of c1 behind two newer ones the filter drops, and a DynamoDB adapter
    # reading the index two entries at a time (the matches come in its second read, which ends it)
    if store_kind == "dynamodb":
        monkeypatch.setattr("ensemble_gateway.adapters.dynamodb.LIST_PAGE_ITEMS", 2)
    add(predictions, clock, "run-0", 0, status=RUNNING)
    add(predictions, clock, "run-1", 1, status=RUNNING)
    add(predictions, clock, "done-2", 2, status=COMPLETED)
    add(predictions, clock, "done-3", 3, status=COMPLETED)
    # WHEN a page of two RUNNING records is asked for
    page = predictions.list_owned(PredictionQuery(owner="c1", now=clock(), status=RUNNING, limit=2))
    # THEN it holds both, and says it is the last
    assert [p.prediction_id for p in page.predictions] == ["run-1", "run-0"]
    assert page.cursor is None

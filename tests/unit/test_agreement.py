"""Whether two outputs agree, and the figures of ``services compare`` (domain/agreement.py)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ensemble_gateway.domain.agreement import (
    DEFAULT_TOLERANCE,
    ShadowFigures,
    VersionFigures,
    agree,
    decode_output,
    numbers_agree,
    percentile,
)
from ensemble_gateway.domain.models import PredictionStatus

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


# -- labels and numbers ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("first", "second", "agreed"),
    [
        ("approve", "approve", True),
        ("approve", "Approve", False),
        (True, True, True),
        (True, False, False),
        (3, 3, True),
        (3, 4, False),
        (None, None, True),
        (None, 0, False),
        # JSON tells true from 1, and a label from a number
        (True, 1, False),
        (False, 0, False),
        ("1", 1, False),
    ],
)
def test_labels_agree_only_when_exactly_equal(first: Any, second: Any, agreed: bool) -> None:
    # WHEN two labels are compared / THEN they agree exactly when they are the same value and kind
    assert agree(first, second) is agreed
    assert agree(second, first) is agreed


def test_floats_agree_within_the_default_relative_tolerance() -> None:
    # GIVEN a score and the same score off by less, and by more, than one part in a million
    score = 0.8731
    # WHEN they are compared / THEN the first agrees and the second does not
    assert agree(score, score * (1 + 0.5 * DEFAULT_TOLERANCE))
    assert not agree(score, score * (1 + 5 * DEFAULT_TOLERANCE))
    # AND large numbers compare relatively (the absolute difference is 0.5 here)
    assert agree(1_000_000.0, 1_000_000.5)
    assert not agree(1_000_000.0, 1_000_003.0)


def test_floats_near_zero_agree_within_the_tolerance_absolutely() -> None:
    # GIVEN a probability printed as 0 by one model and as 1e-12 by another
    # WHEN compared / THEN they agree (a relative tolerance alone would call them different)
    assert agree(0.0, 1e-12)
    assert not agree(0.0, 1e-3)


def test_an_integer_and_a_float_compare_as_numbers() -> None:
    assert agree(2, 2.0)
    assert agree(2, 2.0000000001)
    assert not agree(2, 2.1)


def test_the_tolerance_can_be_widened_or_made_exact() -> None:
    # WHEN the tolerance is given / THEN it decides
    assert agree(0.50, 0.52, tolerance=0.05)
    assert not agree(0.50, 0.52, tolerance=0.01)
    assert not agree(0.1 + 0.2, 0.3, tolerance=0.0)
    assert agree(0.25, 0.25, tolerance=0.0)


def test_nan_agrees_with_nan_and_an_infinity_with_itself() -> None:
    assert numbers_agree(math.nan, math.nan)
    assert not numbers_agree(math.nan, 1.0)
    assert numbers_agree(math.inf, math.inf)
    assert not numbers_agree(math.inf, -math.inf)


# -- JSON objects and arrays ----------------------------------------------------------------------
def test_objects_agree_key_by_key_recursively() -> None:
    # GIVEN two answers of a fraud model: the same label, scores differing in the 9th digit
    first = {"label": "fraud", "score": 0.912345678, "contributions": [{"f": "age", "v": 0.1}, {"f": "km", "v": -0.2}]}
    second = json.loads(json.dumps(first))
    second["score"] = 0.912345679
    second["contributions"][1]["v"] = -0.2000000001

    # WHEN compared / THEN they agree
    assert agree(first, second)


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(label="ok"),
        lambda d: d.pop("score"),
        lambda d: d.update(extra=None),
        lambda d: d["contributions"].pop(),
        lambda d: d["contributions"].reverse(),
        lambda d: d["contributions"][0].update(v=0.2),
    ],
    ids=["label", "missing key", "extra key", "shorter array", "array order", "nested number"],
)
def test_objects_disagree_on_any_difference_that_matters(change: Any) -> None:
    # GIVEN an answer, and the same answer changed in one place
    first = {"label": "fraud", "score": 0.9, "contributions": [{"f": "age", "v": 0.1}, {"f": "km", "v": -0.2}]}
    second = json.loads(json.dumps(first))
    change(second)

    # WHEN compared / THEN they disagree
    assert not agree(first, second)


def test_an_object_never_agrees_with_an_array_or_a_label() -> None:
    assert not agree({"a": 1}, [1])
    assert not agree([], {})
    assert not agree({"label": "x"}, "x")


# -- outputs that are not JSON --------------------------------------------------------------------
def test_a_json_output_is_compared_by_value_whatever_its_spacing() -> None:
    # GIVEN two JSON bodies written differently
    first = decode_output(b'{"label": "fraud", "score": 0.5}', "application/json")
    second = decode_output(b'{"score":0.5,"label":"fraud"}', "application/json; charset=utf-8")

    # WHEN compared / THEN they agree
    assert agree(first, second)


def test_outputs_that_are_not_json_agree_byte_for_byte() -> None:
    # GIVEN two PNG-like bodies, and a CSV labelled as JSON that does not parse
    png = decode_output(b"\x89PNG\r\n\x1a\n\x00\x01", "image/png")
    same = decode_output(b"\x89PNG\r\n\x1a\n\x00\x01", "image/png")
    other = decode_output(b"\x89PNG\r\n\x1a\n\x00\x02", "image/png")
    broken = decode_output(b"a,b\n1,2\n", "application/json")

    # WHEN compared / THEN only the same bytes agree, and a broken "JSON" is compared as bytes
    assert agree(png, same)
    assert not agree(png, other)
    assert broken == b"a,b\n1,2\n"
    assert agree(broken, decode_output(b"a,b\n1,2\n", "text/csv"))


def test_a_json_output_never_agrees_with_bytes() -> None:
    # GIVEN the same text once as JSON, once as plain text
    as_json = decode_output(b'"fraud"', "application/json")
    as_text = decode_output(b'"fraud"', "text/plain")

    # WHEN compared / THEN they disagree (one is a value, the other bytes)
    assert as_json == "fraud" and as_text == b'"fraud"'
    assert not agree(as_json, as_text)


def test_a_vendor_json_type_is_json() -> None:
    assert decode_output(b"[1, 2]", "application/vnd.example+json") == [1, 2]


# -- statistics -----------------------------------------------------------------------------------
def test_percentiles_interpolate_between_the_closest_ranks() -> None:
    # GIVEN latencies 1..4 and 1..20
    # WHEN percentiles are taken / THEN they interpolate linearly between ranks
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert percentile(range(1, 21), 95) == pytest.approx(19.05)
    assert percentile([7.0], 95) == 7.0
    assert percentile([1.0, 2.0], 0) == 1.0 and percentile([1.0, 2.0], 100) == 2.0


def test_the_percentile_of_nothing_is_none_and_out_of_range_is_an_error() -> None:
    assert percentile([], 50) is None
    with pytest.raises(ValueError, match="from 0 to 100"):
        percentile([1.0], 101)


def test_version_figures_count_failures_and_time_only_completed_predictions() -> None:
    # GIVEN a version's predictions: three completed in 1, 2 and 3 s, one failed after 60 s,
    # one expired and one still running
    figures = VersionFigures("1.1.0")
    for seconds in (1, 2, 3):
        figures.add(PredictionStatus.COMPLETED, T0, T0 + timedelta(seconds=seconds))
    figures.add(PredictionStatus.FAILED, T0, T0 + timedelta(seconds=60))
    figures.add(PredictionStatus.EXPIRED, T0, None)
    figures.add(PredictionStatus.RUNNING, T0, None)

    # WHEN its figures are read / THEN every prediction counts, the two without answer fail,
    # and the latencies are those of the completed ones
    assert figures.document() == {
        "version": "1.1.0",
        "predictions": 6,
        "completed": 3,
        "failed": 2,
        "p50_seconds": 2.0,
        "p95_seconds": pytest.approx(2.9),
    }


def test_shadow_figures_give_the_agreement_over_the_inputs_compared() -> None:
    # GIVEN a shadow that agreed on 3 inputs, disagreed on 1, failed on 1, and one not compared
    figures = ShadowFigures("1.2.0", served="1.0.0")
    for agreed in (True, True, True, False):
        figures.add(PredictionStatus.COMPLETED, T0, T0 + timedelta(seconds=2), agreed)
    figures.add(PredictionStatus.FAILED, T0, T0 + timedelta(seconds=9), None)
    figures.add(PredictionStatus.COMPLETED, T0, T0 + timedelta(seconds=4), None)

    # WHEN read / THEN the agreement is 3 of the 4 compared
    assert figures.agreement == 0.75
    document = figures.document()
    assert (document["shadowed"], document["completed"], document["failed"]) == (6, 5, 1)
    assert (document["compared"], document["agreed"], document["p50_seconds"]) == (4, 3, 2.0)
    # AND with nothing compared there is no rate
    assert ShadowFigures("1.2.0", served="1.0.0").agreement is None

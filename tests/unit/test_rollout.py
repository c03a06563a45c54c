"""Versions of a service (domain/rollout.py): registration, approval, traffic draws, promotion."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from ensemble_gateway.domain import rollout
from ensemble_gateway.domain.models import Service, VersionStatus
from ensemble_gateway.domain.rollout import NoServingVersionError, VersionError

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def entry(version: str, **fields: object) -> Service:
    return Service.model_validate(
        {
            "name": "triage-product",
            "kind": "model",
            "version": version,
            "model": {"endpoint_name": f"triage-product-{version.replace('.', '-')}"},
            **fields,
        }
    )


def canary(split: dict[str, int] | None = None, sticky_key: str | None = "customer_id") -> Service:
    """1.0.0 serving, 1.1.0 approved, the split given (90/10 by default)."""
    service = rollout.apply_entry(None, entry("1.0.0"), NOW)
    service = rollout.apply_entry(service, entry("1.1.0"), NOW)
    service = rollout.approve(service, "1.1.0", by="Dana Risk", now=NOW)
    return rollout.set_traffic(service, split or {"1.0.0": 90, "1.1.0": 10}, by="ops", now=NOW, sticky_key=sticky_key)


def test_the_first_version_serves_at_once_and_a_new_one_waits_for_approval():
    # GIVEN a new service applied, then a second version of it
    first = rollout.apply_entry(None, entry("1.0.0"), NOW)
    both = rollout.apply_entry(first, entry("1.1.0"), NOW + timedelta(minutes=1))

    # THEN 1.0.0 keeps all traffic and 1.1.0 is pending approval, both recorded
    assert both.serving_traffic() == {"1.0.0": 100}
    assert both.versions()["1.1.0"].status is VersionStatus.PENDING_APPROVAL
    assert both.version == "1.0.0" and both.model is not None and both.model.endpoint_name == "triage-product-1-0-0"
    assert [(e.action, e.version) for e in both.rollout.history] == [  # type: ignore[union-attr]
        ("registered", "1.0.0"),
        ("approved", "1.0.0"),
        ("traffic", None),
        ("registered", "1.1.0"),
    ]


def test_approval_required_keeps_even_the_first_version_from_serving():
    # GIVEN a new service whose entry requires approval
    service = rollout.apply_entry(None, entry("1.0.0", approval="required"), NOW)

    # WHEN a prediction is drawn / THEN nothing serves, and the error says what to do
    with pytest.raises(NoServingVersionError, match=r"services approve triage-product 1\.0\.0"):
        rollout.draw(service, metadata={}, draw_id="p1")

    # WHEN it is approved by a named person / THEN it serves, with who and when on record
    approved = rollout.approve(service, "1.0.0", by="Dana Risk", now=NOW, note="validated on Q3 data")
    record = approved.versions()["1.0.0"]
    assert (record.status, record.decided_by, record.decided_at, record.note) == (
        VersionStatus.APPROVED,
        "Dana Risk",
        NOW,
        "validated on Q3 data",
    )
    assert rollout.draw(approved, metadata={}, draw_id="p1").version == "1.0.0"


def test_an_unapproved_version_cannot_get_traffic():
    # GIVEN 1.1.0 pending approval
    service = rollout.apply_entry(rollout.apply_entry(None, entry("1.0.0"), NOW), entry("1.1.0"), NOW)

    # WHEN / THEN a split giving it traffic is refused, naming the command that would approve it
    with pytest.raises(VersionError, match="approve it first"):
        rollout.set_traffic(service, {"1.0.0": 90, "1.1.0": 10}, by="ops", now=NOW)
    with pytest.raises(VersionError, match="approve it first"):
        rollout.promote(service, "1.1.0", by="ops", now=NOW)


def test_a_split_asked_for_by_the_entry_applies_once_its_versions_are_approved():
    # GIVEN 1.1.0 applied with a 90/10 sticky split it cannot have yet
    service = rollout.apply_entry(None, entry("1.0.0"), NOW)
    service = rollout.apply_entry(
        service, entry("1.1.0", traffic={"1.0.0": 90, "1.1.0": 10}, sticky_key="customer_id"), NOW
    )
    assert service.serving_traffic() == {"1.0.0": 100}

    # WHEN it is approved
    approved = rollout.approve(service, "1.1.0", by="Dana Risk", now=NOW)

    # THEN the split applies, sticky on customer_id
    assert approved.serving_traffic() == {"1.0.0": 90, "1.1.0": 10}
    assert approved.sticky() == "customer_id"


@pytest.mark.parametrize(
    ("split", "message"),
    [
        ({"1.0.0": 90, "1.1.0": 20}, "add up to 110"),
        ({"1.0.0": 100, "9.9.9": 0}, "no version '9.9.9'"),
        ({"1.0.0": 101, "1.1.0": -1}, "whole number from 0 to 100"),
    ],
)
def test_bad_splits_are_refused_with_the_reason(split: dict[str, int], message: str):
    # GIVEN a canary / WHEN a bad split is set / THEN it is refused saying why
    with pytest.raises(VersionError, match=message):
        rollout.set_traffic(canary(), split, by="ops", now=NOW)


def test_sticky_assignment_is_the_same_for_a_key_and_matches_the_weights_over_many_keys():
    # GIVEN a 90/10 split sticky on customer_id
    service = canary()
    keys = [f"C{n:05d}" for n in random.Random(16).sample(range(100_000), 2000)]

    # WHEN 2,000 customers are drawn twice each, under different prediction IDs
    first = {key: rollout.draw(service, metadata={"customer_id": key}, draw_id=f"a{key}").version for key in keys}
    second = {key: rollout.draw(service, metadata={"customer_id": key}, draw_id=f"b{key}").version for key in keys}

    # THEN each customer gets the same version both times, and 10% (within 3 points) get 1.1.0
    assert first == second
    share = Counter(first.values())["1.1.0"] / len(keys) * 100
    assert 7 <= share <= 13, share
    drawn = rollout.draw(service, metadata={"customer_id": keys[0]}, draw_id="x")
    assert drawn.assignment is not None and drawn.assignment.by == "sticky" and drawn.assignment.key == "customer_id"


def test_without_a_sticky_key_each_prediction_is_drawn_by_the_weights():
    # GIVEN a 70/30 split without a sticky key
    service = canary({"1.0.0": 70, "1.1.0": 30}, sticky_key=None)

    # WHEN 2,000 predictions (random IDs) are drawn
    rng = random.Random(7)
    drawn = [rollout.draw(service, metadata={}, draw_id=f"p{rng.getrandbits(64):x}") for _ in range(2000)]

    # THEN about 30% go to 1.1.0, each draw recorded as random, and a repeat of an ID draws the same
    share = sum(d.version == "1.1.0" for d in drawn) / 20
    assert 27 <= share <= 33, share
    assert {d.assignment.by for d in drawn if d.assignment} == {"random"}
    assert (
        rollout.draw(service, metadata={}, draw_id="p1").version
        == rollout.draw(service, metadata={}, draw_id="p1").version
    )


def test_a_missing_sticky_field_falls_back_to_a_random_draw():
    # GIVEN a sticky split / WHEN the prediction has no customer_id / THEN the draw is random
    drawn = rollout.draw(canary(), metadata={"region": "north"}, draw_id="p1")
    assert drawn.assignment is not None and drawn.assignment.by == "random"


def test_promote_retires_the_old_version_and_rollback_brings_it_back():
    # GIVEN a 90/10 canary
    service = canary()

    # WHEN 1.1.0 is promoted
    promoted = rollout.promote(service, "1.1.0", by="Dana Risk", now=NOW, note="canary clean for a week")

    # THEN it has all traffic and 1.0.0 is retired
    assert promoted.serving_traffic() == {"1.1.0": 100}
    assert promoted.versions()["1.0.0"].status is VersionStatus.RETIRED
    assert promoted.version == "1.1.0"

    # WHEN rolled back / THEN the 90/10 split is back and 1.0.0 approved again, each step recorded
    back = rollout.rollback(promoted, by="Sam Ops", now=NOW)
    assert back.serving_traffic() == {"1.0.0": 90, "1.1.0": 10}
    assert back.versions()["1.0.0"].status is VersionStatus.APPROVED
    actions = [(e.action, e.by, e.version) for e in back.rollout.history][-3:]  # type: ignore[union-attr]
    assert actions == [
        ("promoted", "Dana Risk", "1.1.0"),
        ("retired", "Dana Risk", "1.0.0"),
        ("rolled_back", "Sam Ops", None),
    ]
    with pytest.raises(VersionError, match="no earlier split"):
        rollout.rollback(rollout.rollback(back, by="Sam Ops", now=NOW), by="Sam Ops", now=NOW)


def test_a_serving_version_cannot_be_rejected_and_a_rejected_one_stops_shadowing():
    # GIVEN a canary, and 1.2.0 pending and shadowing
    service = rollout.apply_entry(canary(), entry("1.2.0"), NOW)
    service = rollout.set_shadows(service, ["1.2.0"], by="ops", now=NOW)
    assert rollout.shadows_of(service, "1.0.0") == ["1.2.0"]

    # WHEN / THEN rejecting 1.1.0 (10% of traffic) is refused
    with pytest.raises(VersionError, match="serves 10% of traffic"):
        rollout.reject(service, "1.1.0", by="Dana Risk", now=NOW)

    # WHEN 1.2.0 is rejected / THEN it no longer shadows and can never get traffic
    rejected = rollout.reject(service, "1.2.0", by="Dana Risk", now=NOW, note="biased on age")
    assert rollout.shadows_of(rejected, "1.0.0") == []
    with pytest.raises(VersionError, match="rejected"):
        rollout.set_traffic(rejected, {"1.0.0": 50, "1.2.0": 50}, by="ops", now=NOW)


def test_approval_needs_a_name():
    # GIVEN a pending version / WHEN approved by nobody / THEN refused
    service = rollout.apply_entry(rollout.apply_entry(None, entry("1.0.0"), NOW), entry("1.1.0"), NOW)
    with pytest.raises(VersionError, match="--by NAME"):
        rollout.approve(service, "1.1.0", by="  ", now=NOW)


def test_versions_sort_by_their_numbers():
    # GIVEN 1.10.0 and 1.9.0 / THEN 1.10.0 is the later one
    assert sorted(["1.10.0", "1.9.0", "1.0.0"], key=rollout.version_order) == ["1.0.0", "1.9.0", "1.10.0"]

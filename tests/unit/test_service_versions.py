"""The operator's version commands (service_versions.py) against the in-memory catalog and store."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from gateway_fakes import FakeCatalog, FakeClock, FakePredictionStore

from ensemble_gateway.domain import rollout
from ensemble_gateway.domain.models import (
    Callback,
    CallbackKind,
    ModelInfo,
    Prediction,
    PredictionStatus,
    Service,
    ShadowOutcome,
    VersionStatus,
)
from ensemble_gateway.domain.rollout import VersionError
from ensemble_gateway.service_versions import (
    ConcurrentChangeError,
    ServiceVersions,
    aws_actor,
    compare,
    history_document,
    local_actor,
    s3_reader,
)

COMPLETED = PredictionStatus.COMPLETED
FAILED = PredictionStatus.FAILED
NAME = "triage-product"


def entry(version: str, **fields: Any) -> Service:
    return Service.model_validate(
        {
            "name": NAME,
            "kind": "model",
            "version": version,
            "model": {"endpoint_name": f"{NAME}-{version.replace('.', '-')}"},
            **fields,
        }
    )


def two_versions(clock: FakeClock) -> Service:
    """1.0.0 serving all traffic, 1.1.0 registered beside it, pending approval."""
    service = rollout.apply_entry(None, entry("1.0.0"), clock())
    return rollout.apply_entry(service, entry("1.1.0"), clock())


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def catalog(clock: FakeClock) -> FakeCatalog:
    return FakeCatalog([two_versions(clock)])


@pytest.fixture
def versions(catalog: FakeCatalog, clock: FakeClock) -> ServiceVersions:
    return ServiceVersions(catalog, clock=clock)


class FakeRacingCatalog(FakeCatalog):
    """A catalog where another operator writes just before each of this one's first ``races``
    conditional writes (``rival``: what they do to the entry)."""

    def __init__(self, services: list[Service], rival: Any, races: int = 1) -> None:
        super().__init__(services)
        self.rival = rival
        self.races = races
        self.attempts = 0

    def put_if_unchanged(self, service: Service, expected: Service | None) -> bool:
        self.attempts += 1
        if self.races:
            self.races -= 1
            current = self.services[service.name]
            self.services[service.name] = self.rival(current)
        return super().put_if_unchanged(service, expected)


# -- approval -------------------------------------------------------------------------------------
def test_an_approval_is_recorded_with_who_and_when(
    versions: ServiceVersions, catalog: FakeCatalog, clock: FakeClock
) -> None:
    # GIVEN 1.1.0 pending approval, an hour after it was registered
    decided_at = clock.advance(hours=1)

    # WHEN Dana approves it, with a note
    change = versions.approve(NAME, "1.1.0", by="Dana Risk", note="offline eval OK")

    # THEN the stored version is approved by Dana at that moment, and the history says so
    stored = catalog.services[NAME]
    record = stored.versions()["1.1.0"]
    assert (record.status, record.decided_by, record.decided_at, record.note) == (
        VersionStatus.APPROVED,
        "Dana Risk",
        decided_at,
        "offline eval OK",
    )
    assert [(e.action, e.by, e.at, e.version, e.note) for e in change.events] == [
        ("approved", "Dana Risk", decided_at, "1.1.0", "offline eval OK")
    ]
    # AND approving does not move traffic: 1.0.0 still serves everything
    assert stored.serving_traffic() == {"1.0.0": 100}
    # AND the history document lists every event, this one last, with who and when
    last = dict(history_document(stored)["history"][-1])
    assert datetime.fromisoformat(last.pop("at")) == decided_at
    assert last == {
        "action": "approved",
        "by": "Dana Risk",
        "version": "1.1.0",
        "note": "offline eval OK",
        "traffic": None,
        "sticky_key": None,
        "shadow": None,
    }


def test_a_rejection_is_recorded_and_the_version_can_never_get_traffic(
    versions: ServiceVersions, catalog: FakeCatalog
) -> None:
    # WHEN 1.1.0 is rejected
    change = versions.reject(NAME, "1.1.0", by="Dana Risk", note="bias on product B")

    # THEN it is rejected by Dana, and giving it traffic is refused
    assert catalog.services[NAME].versions()["1.1.0"].status is VersionStatus.REJECTED
    assert [(e.action, e.by) for e in change.events] == [("rejected", "Dana Risk")]
    with pytest.raises(VersionError, match="rejected: it cannot get traffic"):
        versions.set_traffic(NAME, {"1.0.0": 90, "1.1.0": 10}, by="ops")


def test_an_unapproved_version_cannot_get_traffic(versions: ServiceVersions, catalog: FakeCatalog) -> None:
    # GIVEN 1.1.0 pending approval
    before = catalog.services[NAME]

    # WHEN an operator gives it 10% / THEN it is refused, saying how to approve it, and nothing changed
    with pytest.raises(VersionError, match=r"approve it first \(`services approve triage-product 1\.1\.0 --by NAME`\)"):
        versions.set_traffic(NAME, {"1.0.0": 90, "1.1.0": 10}, by="ops")
    assert catalog.services[NAME] == before


def test_rejecting_a_version_that_serves_is_refused(versions: ServiceVersions, catalog: FakeCatalog) -> None:
    # GIVEN 1.1.0 approved and canaried at 10%
    versions.approve(NAME, "1.1.0", by="Dana Risk")
    versions.set_traffic(NAME, {"1.0.0": 90, "1.1.0": 10}, by="ops")
    before = catalog.services[NAME]

    # WHEN it is rejected / THEN that is refused until its traffic moves, and nothing changed
    with pytest.raises(VersionError, match="serves 10% of traffic: move it first"):
        versions.reject(NAME, "1.1.0", by="Dana Risk")
    assert catalog.services[NAME] == before


def test_an_unknown_service_is_a_lookup_error(versions: ServiceVersions) -> None:
    with pytest.raises(LookupError, match="no service 'nope' in the catalog"):
        versions.approve("nope", "1.0.0", by="Dana Risk")


# -- traffic, shadows, promotion ------------------------------------------------------------------
def test_a_canary_split_keeps_its_sticky_key_when_the_weights_change(
    versions: ServiceVersions, catalog: FakeCatalog
) -> None:
    # GIVEN 1.1.0 approved and canaried at 10%, sticky on customer_id
    versions.approve(NAME, "1.1.0", by="Dana Risk")
    change = versions.set_traffic(NAME, {"1.0.0": 90, "1.1.0": 10}, by="ops", sticky_key="customer_id")
    assert [(e.action, e.traffic, e.sticky_key) for e in change.events] == [
        ("traffic", {"1.0.0": 90, "1.1.0": 10}, "customer_id")
    ]

    # WHEN the canary is widened without naming the key / THEN the key stays
    versions.set_traffic(NAME, {"1.0.0": 50, "1.1.0": 50}, by="ops")
    assert catalog.services[NAME].sticky() == "customer_id"

    # WHEN the key is dropped / THEN each prediction draws at random
    versions.set_traffic(NAME, {"1.0.0": 50, "1.1.0": 50}, by="ops", keep_sticky=False)
    assert catalog.services[NAME].sticky() is None
    assert catalog.services[NAME].serving_traffic() == {"1.0.0": 50, "1.1.0": 50}


def test_shadows_are_set_and_cleared_with_who_did_it(versions: ServiceVersions, catalog: FakeCatalog) -> None:
    # WHEN the pending 1.1.0 is made a shadow, then shadows are cleared
    on = versions.set_shadows(NAME, ["1.1.0"], by="ops")
    assert catalog.services[NAME].shadow_versions() == ["1.1.0"]
    off = versions.set_shadows(NAME, [], by="lead")

    # THEN each change is recorded with who made it, and none remains
    assert [(e.action, e.by, e.shadow) for e in on.events + off.events] == [
        ("shadow", "ops", ["1.1.0"]),
        ("shadow", "lead", []),
    ]
    assert catalog.services[NAME].shadow_versions() == []


def test_promote_then_rollback_returns_to_the_canary(
    versions: ServiceVersions, catalog: FakeCatalog, clock: FakeClock
) -> None:
    # GIVEN 1.1.0 approved and canaried at 10%
    versions.approve(NAME, "1.1.0", by="Dana Risk")
    versions.set_traffic(NAME, {"1.0.0": 90, "1.1.0": 10}, by="ops", sticky_key="customer_id")

    # WHEN 1.1.0 is promoted
    promoted_at = clock.advance(days=1)
    promoted = versions.promote(NAME, "1.1.0", by="lead", note="canary clean for a day")

    # THEN it has all traffic, 1.0.0 is retired, and both are recorded
    service = catalog.services[NAME]
    assert service.serving_traffic() == {"1.1.0": 100} and service.version == "1.1.0"
    assert service.versions()["1.0.0"].status is VersionStatus.RETIRED
    assert [(e.action, e.version, e.by, e.at) for e in promoted.events] == [
        ("promoted", "1.1.0", "lead", promoted_at),
        ("retired", "1.0.0", "lead", promoted_at),
    ]

    # WHEN it is rolled back
    rolled_back = versions.rollback(NAME, by="oncall", note="complaints up")

    # THEN the canary split is back, sticky as it was, and 1.0.0 serves again
    service = catalog.services[NAME]
    assert service.serving_traffic() == {"1.0.0": 90, "1.1.0": 10}
    assert service.sticky() == "customer_id" and service.version == "1.0.0"
    assert service.versions()["1.0.0"].status is VersionStatus.APPROVED
    assert [(e.action, e.by, e.traffic, e.note) for e in rolled_back.events] == [
        ("rolled_back", "oncall", {"1.0.0": 90, "1.1.0": 10}, "complaints up")
    ]


def test_promoting_an_unapproved_version_is_refused(versions: ServiceVersions) -> None:
    with pytest.raises(VersionError, match="pending_approval: approve it first"):
        versions.promote(NAME, "1.1.0", by="lead")


# -- concurrent operators -------------------------------------------------------------------------
def test_a_change_made_while_another_operator_wrote_is_made_again_on_their_write(clock: FakeClock) -> None:
    # GIVEN another operator who makes 1.1.0 a shadow just before this operator's write lands
    def rival(service: Service) -> Service:
        return rollout.set_shadows(service, ["1.1.0"], by="rival", now=clock())

    catalog = FakeRacingCatalog([two_versions(clock)], rival)
    versions = ServiceVersions(catalog, clock=clock)

    # WHEN this operator approves 1.1.0
    change = versions.approve(NAME, "1.1.0", by="Dana Risk")

    # THEN the write was tried again, and both changes are kept, in the order they landed
    assert catalog.attempts == 2
    stored = catalog.services[NAME]
    assert stored.versions()["1.1.0"].status is VersionStatus.APPROVED
    assert stored.shadow_versions() == ["1.1.0"]
    assert [(e.action, e.by) for e in stored.rollout.history[-2:]] == [  # type: ignore[union-attr]
        ("shadow", "rival"),
        ("approved", "Dana Risk"),
    ]
    # AND the change reports its own event only
    assert [(e.action, e.by) for e in change.events] == [("approved", "Dana Risk")]


def test_a_change_the_other_operators_write_made_wrong_is_refused(clock: FakeClock) -> None:
    # GIVEN 1.1.0 approved, and another operator who rejects it just before this one's write lands
    service = rollout.approve(two_versions(clock), "1.1.0", by="Dana Risk", now=clock())

    def rival(current: Service) -> Service:
        return rollout.reject(current, "1.1.0", by="rival", now=clock())

    catalog = FakeRacingCatalog([service], rival)

    # WHEN this operator gives 1.1.0 traffic / THEN it is refused on the rival's write, which stays
    with pytest.raises(VersionError, match="rejected: it cannot get traffic"):
        ServiceVersions(catalog, clock=clock).set_traffic(NAME, {"1.0.0": 90, "1.1.0": 10}, by="ops")
    assert catalog.services[NAME].versions()["1.1.0"].status is VersionStatus.REJECTED
    assert catalog.services[NAME].serving_traffic() == {"1.0.0": 100}


def test_a_change_that_loses_every_race_gives_up_and_says_to_run_it_again(clock: FakeClock) -> None:
    # GIVEN an entry someone changes before every write
    def rival(service: Service) -> Service:
        return service.model_copy(update={"description": f"{service.description}!"})

    catalog = FakeRacingCatalog([two_versions(clock)], rival, races=10)

    # WHEN a change is made / THEN it gives up after its attempts, having written nothing of its own
    with pytest.raises(ConcurrentChangeError, match=r"changed 3 times .* run the command again"):
        ServiceVersions(catalog, clock=clock, attempts=3).approve(NAME, "1.1.0", by="Dana Risk")
    assert catalog.attempts == 3
    assert catalog.services[NAME].versions()["1.1.0"].status is VersionStatus.PENDING_APPROVAL


# -- who is asking --------------------------------------------------------------------------------
def test_the_default_actor_is_the_user_locally_and_the_caller_arn_on_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeSts:
        def get_caller_identity(self) -> dict[str, str]:
            return {"Arn": "arn:aws:sts::123456789012:assumed-role/Ops/dana"}

    class FakeBrokenSts:
        def get_caller_identity(self) -> dict[str, str]:
            raise RuntimeError("no credentials")

    # GIVEN a user named dana
    monkeypatch.setenv("USER", "dana")

    # THEN locally it is dana; on AWS the caller's ARN, or dana when STS cannot say
    assert local_actor() == "dana"
    assert aws_actor(FakeSts()) == "arn:aws:sts::123456789012:assumed-role/Ops/dana"
    assert aws_actor(FakeBrokenSts()) == "dana"
    # AND with no user at all, "local"
    monkeypatch.delenv("USER")
    monkeypatch.delenv("USERNAME", raising=False)
    assert local_actor() == "local"


# -- compare --------------------------------------------------------------------------------------
def record(
    clock: FakeClock, prediction_id: str, version: str, status: PredictionStatus, seconds: float, **fields: Any
) -> Prediction:
    started = clock()
    return Prediction(
        prediction_id=prediction_id,
        service=fields.pop("service", NAME),
        owner="c1",
        status=status,
        created_at=started,
        started_at=started,
        finished_at=started + timedelta(seconds=seconds),
        model=ModelInfo(endpoint=f"{NAME}-{version}", version=version),
        **fields,
    )


def shadow(shadow_id: str, status: PredictionStatus, seconds: float, clock: FakeClock, **fields: Any) -> ShadowOutcome:
    return ShadowOutcome(
        prediction_id=shadow_id,
        service=NAME,
        version=fields.pop("version", "1.2.0"),
        status=status,
        started_at=clock(),
        finished_at=clock() + timedelta(seconds=seconds),
        **fields,
    )


def test_compare_gives_each_versions_figures_and_each_shadows_agreement(clock: FakeClock) -> None:
    # GIVEN the service's records: 1.0.0 served four predictions (one failed; one a real-time
    # variant; one an ensemble step), 1.1.0 two; a shadow 1.2.0 answered four of 1.0.0's inputs
    store = FakePredictionStore(clock)
    objects = {
        "s3://gw/outputs/p1": b'{"product": "mortgage", "score": 0.91}',
        "s3://gw/outputs/p2": b'{"product": "loan", "score": 0.4}',
        "s3://gw/outputs/p3": b'{"product": "card", "score": 0.7}',
        "s3://gw/shadows/s2": b'{"product": "card", "score": 0.4}',
    }
    json_output = {"output_content_type": "application/json"}
    records = [
        record(
            clock,
            "p1",
            "1.0.0",
            COMPLETED,
            1.0,
            output_uri="s3://gw/outputs/p1",
            **json_output,
            shadow_outcomes={
                # agrees: the same label, the score off in the 9th digit
                "s1": shadow(
                    "s1", COMPLETED, 3.0, clock, inline=True, output={"product": "mortgage", "score": 0.9100000001}
                )
            },
        ),
        record(
            clock,
            "p2",
            "1.0.0/AllTraffic",
            COMPLETED,
            2.0,
            output_uri="s3://gw/outputs/p2",
            **json_output,
            shadow_outcomes={
                # disagrees, read from S3 (its version recorded with the real-time variant)
                "s2": shadow(
                    "s2",
                    COMPLETED,
                    5.0,
                    clock,
                    output_uri="s3://gw/shadows/s2",
                    content_type="application/json",
                    version="1.2.0/AllTraffic",
                )
            },
        ),
        record(
            clock,
            "p3",
            "1.0.0",
            COMPLETED,
            3.0,
            output_uri="s3://gw/outputs/p3",
            **json_output,
            parent_id="e1",
            step="product",
            shadow_outcomes={
                # answered, but its output is gone: not compared
                "s3": shadow("s3", COMPLETED, 4.0, clock, output_uri="s3://gw/shadows/gone")
            },
        ),
        record(
            clock,
            "p4",
            "1.0.0",
            FAILED,
            30.0,
            shadow_outcomes={"s4": shadow("s4", FAILED, 6.0, clock)},
        ),
        record(clock, "p5", "1.1.0", COMPLETED, 0.5),
        record(clock, "p6", "1.1.0", COMPLETED, 1.5),
        # the shadow copies themselves, and another service's record: not the served figures
        record(
            clock,
            "s1",
            "1.2.0",
            COMPLETED,
            3.0,
            parent_id="p1",
            callback=Callback(kind=CallbackKind.SHADOW, target="p1"),
        ),
        record(clock, "x1", "1.0.0", COMPLETED, 9.0, service="other"),
    ]
    for prediction in records:
        store.create(prediction)
    service = two_versions(clock)
    reads: list[str] = []

    def read(uri: str) -> bytes | None:
        reads.append(uri)
        return objects.get(uri)

    # WHEN the versions are compared
    comparison = compare(service, store, read)

    # THEN each version's figures come from its own records
    document = comparison.document()
    assert document["records"] == 6
    assert document["versions"] == [
        {
            "version": "1.0.0",
            "predictions": 4,
            "completed": 3,
            "failed": 1,
            "p50_seconds": 2.0,
            "p95_seconds": pytest.approx(2.9),
        },
        {
            "version": "1.1.0",
            "predictions": 2,
            "completed": 2,
            "failed": 0,
            "p50_seconds": 1.0,
            "p95_seconds": pytest.approx(1.45),
        },
    ]
    # AND the shadow agreed on one of the two inputs it could be compared on
    assert document["shadows"] == [
        {
            "version": "1.2.0",
            "served": "1.0.0",
            "shadowed": 4,
            "completed": 3,
            "failed": 1,
            "compared": 2,
            "agreed": 1,
            "unreadable": 1,
            "agreement": 0.5,
            "p50_seconds": 4.0,
            "p95_seconds": pytest.approx(4.9),
        }
    ]
    # AND a failed primary's output was never read
    assert "s3://gw/outputs/p4" not in reads


def test_compare_reads_only_the_records_since_and_at_most_the_limit(clock: FakeClock) -> None:
    # GIVEN three predictions an hour apart
    store = FakePredictionStore(clock)
    for index in range(3):
        store.create(record(clock, f"p{index}", "1.0.0", COMPLETED, 1.0))
        clock.advance(hours=1)
    service = two_versions(clock)

    # WHEN compared since the second, and with a limit of one / THEN the figures count those
    since = compare(service, store, lambda uri: None, since=clock() - timedelta(hours=2))
    assert since.records == 2 and since.versions[0].predictions == 2
    assert compare(service, store, lambda uri: None, limit=1).records == 1


class FakeS3:
    def __init__(self, objects: dict[tuple[str, str], bytes]) -> None:
        self.objects = objects
        self.gets = 0

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803 (boto3's names)
        import io

        self.gets += 1
        if (Bucket, Key) not in self.objects:
            raise ClientError({"Error": {"Code": "NoSuchKey", "Message": "gone"}}, "GetObject")
        return {"Body": io.BytesIO(self.objects[(Bucket, Key)])}


def test_the_s3_reader_reads_each_object_once_and_a_missing_one_as_none() -> None:
    # GIVEN one object in S3
    s3 = FakeS3({("gw", "outputs/p1"): b"{}"})
    read = s3_reader(s3)

    # WHEN it is read twice, and a missing one and a URI that is not S3 are read
    # THEN the object is fetched once, and the others read as None
    assert read("s3://gw/outputs/p1") == b"{}" and read("s3://gw/outputs/p1") == b"{}"
    assert read("s3://gw/outputs/gone") is None
    assert read("https://example.com/x") is None
    assert s3.gets == 2

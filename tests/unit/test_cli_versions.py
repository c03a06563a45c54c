"""The CLI's version commands (``services approve|reject|traffic|shadow|promote|rollback|history|compare``)
against the in-memory catalog: what they print and exit with. The same commands against the local
runtime, as a subprocess, are in tests/e2e/test_version_commands.py."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from gateway_fakes import FakeCatalog, FakeClock, FakePredictionStore

from ensemble_gateway import cli
from ensemble_gateway.domain import rollout
from ensemble_gateway.domain.models import ModelInfo, Prediction, PredictionStatus, Service, VersionStatus
from ensemble_gateway.service_versions import ServiceVersions

NAME = "triage-product"


def entry(version: str) -> Service:
    return Service(
        name=NAME,
        kind="model",
        version=version,
        model={"endpoint_name": f"{NAME}-{version.replace('.', '-')}"},  # type: ignore[arg-type]
    )


class FakeFactory:
    """The boto3 client factory: only STS is asked for (the default --by on AWS)."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def __call__(self, service: str) -> Any:
        self.asked.append(service)
        raise AssertionError(f"no {service} client in these tests")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def catalog(clock: FakeClock) -> FakeCatalog:
    service = rollout.apply_entry(None, entry("1.0.0"), clock())
    return FakeCatalog([rollout.apply_entry(service, entry("1.1.0"), clock())])


@pytest.fixture
def store(clock: FakeClock) -> FakePredictionStore:
    return FakePredictionStore(clock)


@pytest.fixture(autouse=True)
def target(
    monkeypatch: pytest.MonkeyPatch, catalog: FakeCatalog, clock: FakeClock, store: FakePredictionStore
) -> FakeFactory:
    """The CLI's gateway: the fake catalog and predictions store (as the local runtime's)."""
    factory = FakeFactory()
    monkeypatch.setattr(cli, "_service_versions", lambda args: (ServiceVersions(catalog, clock=clock), factory, {}))
    monkeypatch.setattr(cli, "_compare_sources", lambda factory, outputs: (store, lambda uri: None))
    monkeypatch.setenv("USER", "dana")
    return factory


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_approve_prints_who_approved_which_version_when(capsys: pytest.CaptureFixture[str]) -> None:
    # WHEN 1.1.0 is approved by name
    code, out, err = run(capsys, "services", "approve", NAME, "1.1.0", "--by", "Dana Risk", "--note", "eval OK")

    # THEN it says so, with who and when, and what serves now
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"{NAME}: approved 1.1.0 (eval OK), by Dana Risk at 2026-11-22T09:00:00Z",
        f"{NAME} now: serving 1.0.0=100; shadows none",
    ]


def test_approve_without_by_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["services", "approve", NAME, "1.1.0"])
    assert exit_.value.code == 2
    assert "the following arguments are required: --by" in capsys.readouterr().err


def test_a_refused_change_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], catalog: FakeCatalog) -> None:
    # WHEN traffic goes to a version pending approval / THEN one line says what to do, exit 2
    before = catalog.services[NAME]
    code, out, err = run(capsys, "services", "traffic", NAME, "1.0.0=90", "1.1.0=10")
    assert (code, out) == (2, "")
    assert err == (
        f"error: service '{NAME}' version 1.1.0 is pending_approval: approve it first "
        f"(`services approve {NAME} 1.1.0 --by NAME`)\n"
    )
    assert catalog.services[NAME] == before
    # AND an unknown service likewise
    code, _, err = run(capsys, "services", "promote", "nope", "1.0.0")
    assert (code, err) == (2, "error: no service 'nope' in the catalog\n")


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (["1.0.0:90"], "takes VERSION=WEIGHT (such as 1.1.0=10), got '1.0.0:90'"),
        (["1.0.0=ninety"], "the weight of 1.0.0 must be a whole number from 0 to 100, got 'ninety'"),
        (["1.0.0=120"], "the weight of 1.0.0 must be from 0 to 100, got 120"),
        (["=100"], "takes VERSION=WEIGHT"),
    ],
)
def test_a_malformed_split_is_a_usage_error_naming_the_pair(
    capsys: pytest.CaptureFixture[str], pairs: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["services", "traffic", NAME, *pairs])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_a_version_given_twice_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "services", "traffic", NAME, "1.0.0=50", "1.0.0=50")
    assert code == 2 and "version 1.0.0 is given twice" in err


def test_traffic_is_recorded_as_the_local_user_and_printed_as_json(
    capsys: pytest.CaptureFixture[str], catalog: FakeCatalog, target: FakeFactory
) -> None:
    # GIVEN 1.1.0 approved
    assert run(capsys, "services", "approve", NAME, "1.1.0", "--by", "Dana Risk")[0] == 0

    # WHEN a sticky canary is set without --by, as JSON
    code, out, _ = run(
        capsys, "services", "traffic", NAME, "1.0.0=90", "1.1.0=10", "--sticky-key", "customer_id", "--json"
    )

    # THEN it is recorded as the local user (no AWS asked), and the document shows the split
    assert code == 0 and target.asked == []
    document = json.loads(out)
    assert (document["traffic"], document["sticky_key"]) == ({"1.0.0": 90, "1.1.0": 10}, "customer_id")
    assert [(e["action"], e["by"], e["traffic"]) for e in document["events"]] == [
        ("traffic", "dana", {"1.0.0": 90, "1.1.0": 10})
    ]
    assert [(v["version"], v["status"], v["decided_by"]) for v in document["versions"]] == [
        ("1.0.0", "approved", "catalog"),
        ("1.1.0", "approved", "Dana Risk"),
    ]


def test_shadow_shows_sets_and_clears_the_shadows(capsys: pytest.CaptureFixture[str]) -> None:
    # WHEN shadows are shown, set, shown, cleared
    assert run(capsys, "services", "shadow", NAME)[1] == f"{NAME}: no shadows\n"
    code, out, _ = run(capsys, "services", "shadow", NAME, "1.1.0")
    assert code == 0 and out.startswith(f"{NAME}: shadows 1.1.0, by dana at ")
    assert json.loads(run(capsys, "services", "shadow", NAME, "--json")[1]) == {"name": NAME, "shadow": ["1.1.0"]}
    assert run(capsys, "services", "shadow", NAME, "--off")[0] == 0

    # THEN none remain; and versions with --off is refused
    assert run(capsys, "services", "shadow", NAME)[1] == f"{NAME}: no shadows\n"
    code, _, err = run(capsys, "services", "shadow", NAME, "1.1.0", "--off")
    assert code == 2 and "not both" in err


def test_history_shows_each_versions_decision_and_every_event(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN 1.1.0 approved, canaried, promoted and rolled back
    for argv in (
        ["approve", NAME, "1.1.0", "--by", "Dana Risk"],
        ["traffic", NAME, "1.0.0=90", "1.1.0=10"],
        ["promote", NAME, "1.1.0", "--by", "lead", "--note", "clean canary"],
        ["rollback", NAME, "--by", "oncall"],
    ):
        assert run(capsys, "services", *argv)[0] == 0

    # WHEN the history is printed
    code, out, _ = run(capsys, "services", "history", NAME)

    # THEN the versions show who decided, and the events who did what, in order
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"service {NAME} (model): serving 1.0.0=90 1.1.0=10; shadows none"
    assert lines[2].split() == ["VERSION", "STATUS", "REGISTERED", "DECIDED", "BY", "DECIDED", "AT", "NOTE"]
    assert lines[4].split()[:4] == ["1.1.0", "approved", "2026-11-22T09:00:00Z", "Dana"]
    events = [line.split()[1:3] for line in lines[7:]]
    assert events == [
        ["catalog", "registered"],
        ["catalog", "approved"],
        ["catalog", "traffic"],
        ["catalog", "registered"],
        ["Dana", "Risk"],
        ["dana", "traffic"],
        ["lead", "promoted"],
        ["lead", "retired"],
        ["oncall", "rolled_back"],
    ]
    # AND as JSON, every event with who and when
    history = json.loads(run(capsys, "services", "history", NAME, "--json")[1])["history"]
    assert [(e["action"], e["by"]) for e in history][-3:] == [
        ("promoted", "lead"),
        ("retired", "lead"),
        ("rolled_back", "oncall"),
    ]
    assert all(e["at"].startswith("2026-11-22T09:00:00") for e in history)


def test_compare_prints_each_versions_figures(
    capsys: pytest.CaptureFixture[str], store: FakePredictionStore, clock: FakeClock, catalog: FakeCatalog
) -> None:
    # GIVEN predictions of 1.0.0 that took 1, 2 and 3 s, and one of 1.1.0 that failed
    service = catalog.services[NAME]
    catalog.services[NAME] = rollout.approve(service, "1.1.0", by="Dana Risk", now=clock())
    for index, (version, status, seconds) in enumerate(
        [("1.0.0", "COMPLETED", 1), ("1.0.0", "COMPLETED", 2), ("1.0.0", "COMPLETED", 3), ("1.1.0", "FAILED", 9)]
    ):
        store.create(
            Prediction(
                prediction_id=f"p{index}",
                service=NAME,
                owner="c1",
                status=PredictionStatus(status),
                started_at=clock(),
                finished_at=clock() + timedelta(seconds=seconds),
                model=ModelInfo(version=version),
            )
        )

    # WHEN compared
    code, out, _ = run(capsys, "services", "compare", NAME)

    # THEN each version has its line: traffic, predictions, completed, failed, p50, p95
    assert code == 0
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[2:]}
    assert rows["1.0.0"] == ["100%", "3", "3", "0", "2.000s", "2.900s"]
    assert rows["1.1.0"] == ["-", "1", "0", "1", "-", "-"]
    assert catalog.services[NAME].versions()["1.1.0"].status is VersionStatus.APPROVED
    # AND as JSON the same figures
    document = json.loads(run(capsys, "services", "compare", NAME, "--json", "--tolerance", "0.01")[1])
    assert document["tolerance"] == 0.01
    assert [(v["version"], v["predictions"], v["failed"]) for v in document["versions"]] == [
        ("1.0.0", 3, 0),
        ("1.1.0", 1, 1),
    ]

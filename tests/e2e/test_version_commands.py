"""Versions through the CLI, as an operator runs it against the local runtime: register two
versions of a model, approve one by name, canary it, read the history, compare, promote, roll back.

The CLI runs in a process of its own (``Cli`` of tests/e2e/test_cli.py, which also checks that no
command prints a traceback); the model is the echo example, hosted once per version.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from test_cli import Cli, unique, user_environment

from conftest import EXAMPLES

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and pipes")


def version_entry(name: str, version: str, **fields: Any) -> dict[str, Any]:
    """The echo model as version ``version`` of ``name``, on an endpoint of its own."""
    return {
        "name": name,
        "kind": "model",
        "version": version,
        "description": f"echo as {name} {version}",
        "content_types": ["application/json"],
        "model": {
            "endpoint_name": f"{name}-{version.replace('.', '-')}",
            "model_data": str(EXAMPLES / "models" / "echo"),
            "framework": "custom",
            "invocation": "realtime",
        },
        **fields,
    }


@pytest.fixture
def operator(runtime: Any, client_credentials: dict[str, Any], tmp_path: Path) -> Cli:
    """The CLI run by an operator, outside the checkout, finding the session runtime through the
    per-user state file (as ``cli`` of tests/e2e/test_cli.py)."""
    state_home = tmp_path / "state-home"
    state = state_home / "ensemble-gateway" / "state.json"
    state.parent.mkdir(parents=True)
    state.write_text(
        json.dumps(
            {
                "api_url": runtime.api_url,
                "aws_url": runtime.aws_url,
                "stack_name": runtime.stack.stack_name,
                "outputs": runtime.stack.outputs,
                "api_key": client_credentials["api_key"],
                "client_id": client_credentials["client"].client_id,
                "pid": os.getpid(),  # the session runtime serves from this process
            }
        )
    )
    workdir = tmp_path / "operator"
    workdir.mkdir()
    return Cli(workdir, {**user_environment(state_home), "USER": "op-local"})


@pytest.fixture
def sample(operator: Cli) -> Path:
    path = operator.cwd / "hello.json"
    path.write_bytes((EXAMPLES / "echo" / "samples" / "hello.json").read_bytes())
    return path


@pytest.fixture
def two_versions(runtime: Any, operator: Cli, trained_models: Path) -> Any:
    """A service of its own with 1.0.0 serving and 1.1.0 registered beside it (pending approval)."""
    from ensemble_gateway.adapters.dynamodb import DynamoServiceCatalog

    name = unique("versioned")
    catalog_file = operator.cwd / "versions.json"
    catalog_file.write_text(json.dumps([version_entry(name, "1.0.0"), version_entry(name, "1.1.0")]))
    applied = operator.run("services", "apply", str(catalog_file), timeout=300)
    assert applied.returncode == 0, applied
    catalog = DynamoServiceCatalog(runtime.stack.outputs["ServicesTableName"], runtime.client("dynamodb"))
    yield name
    catalog.delete(name)


def predict(cli: Cli, name: str, sample: Path, customer: str) -> dict[str, Any]:
    done = cli.run("predict", name, str(sample), "--metadata", f"customer_id={customer}", "--wait", "--json")
    assert done.returncode == 0, done
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def served(document: dict[str, Any]) -> str:
    # A real-time version may carry its endpoint variant: 1.0.0/AllTraffic.
    return str(document["model"]["version"]).split("/", 1)[0]


def test_a_version_is_approved_by_name_canaried_compared_promoted_and_rolled_back(
    operator: Cli, two_versions: str, sample: Path
) -> None:
    name = two_versions

    # GIVEN the two versions: 1.0.0 approved when applied, 1.1.0 pending approval
    history = operator.json("services", "history", name)
    assert [(v["version"], v["status"]) for v in history["versions"]] == [
        ("1.0.0", "approved"),
        ("1.1.0", "pending_approval"),
    ]
    assert history["traffic"] == {"1.0.0": 100}

    # WHEN traffic is given to the unapproved version / THEN it is refused in one line, exit 2
    refused = operator.run("services", "traffic", name, "1.0.0=90", "1.1.0=10")
    assert refused.returncode == 2, refused
    assert refused.stderr == (
        f"error: service '{name}' version 1.1.0 is pending_approval: approve it first "
        f"(`services approve {name} 1.1.0 --by NAME`)\n"
    )
    # AND meanwhile every prediction is served by 1.0.0
    before = [predict(operator, name, sample, f"c{index}") for index in range(3)]
    assert {served(document) for document in before} == {"1.0.0"}

    # WHEN Dana approves 1.1.0, and ops canaries it to half the customers, sticky
    approved = operator.run("services", "approve", name, "1.1.0", "--by", "Dana Risk", "--note", "offline eval OK")
    assert approved.returncode == 0, approved
    assert approved.stdout.startswith(f"{name}: approved 1.1.0 (offline eval OK), by Dana Risk at ")
    split = operator.json(
        "services", "traffic", name, "1.0.0=50", "1.1.0=50", "--sticky-key", "customer_id", "--by", "ops"
    )
    assert (split["traffic"], split["sticky_key"]) == ({"1.0.0": 50, "1.1.0": 50}, "customer_id")

    # THEN predictions go to both versions, each customer always to the same one
    customers = [f"customer-{index}" for index in range(12)]
    canary = {customer: predict(operator, name, sample, customer) for customer in customers}
    versions = {customer: served(document) for customer, document in canary.items()}
    assert set(versions.values()) == {"1.0.0", "1.1.0"}, versions
    again = {customer: served(predict(operator, name, sample, customer)) for customer in customers[:4]}
    assert again == {customer: versions[customer] for customer in customers[:4]}

    # AND the history shows who approved and who split, and when
    history = operator.json("services", "history", name)
    record = next(v for v in history["versions"] if v["version"] == "1.1.0")
    assert (record["status"], record["decided_by"], record["note"]) == ("approved", "Dana Risk", "offline eval OK")
    assert record["decided_at"]
    events = [(e["action"], e["by"], e["version"]) for e in history["history"]]
    assert events[-2:] == [("approved", "Dana Risk", "1.1.0"), ("traffic", "ops", None)]
    assert all(e["at"] for e in history["history"])
    text = operator.run("services", "history", name)
    assert text.returncode == 0 and "Dana Risk" in text.stdout and "sticky on customer_id" in text.stdout

    # WHEN the versions are compared
    comparison = operator.json("services", "compare", name)

    # THEN each version's figures are those of the predictions it served
    made = [*before, *canary.values(), *(canary[c] for c in customers[:4])]
    counts = Counter(served(document) for document in made)
    figures = {v["version"]: v for v in comparison["versions"]}
    assert {version: f["predictions"] for version, f in figures.items()} == dict(counts)
    assert all(f["failed"] == 0 and f["completed"] == f["predictions"] for f in figures.values())
    assert all(0 < f["p50_seconds"] <= f["p95_seconds"] for f in figures.values())
    table = operator.run("services", "compare", name)
    assert table.returncode == 0
    rows = {line.split()[0]: line.split() for line in table.stdout.splitlines() if line.startswith("1.")}
    assert rows["1.1.0"][1:4] == ["50%", str(counts["1.1.0"]), str(counts["1.1.0"])]

    # WHEN 1.1.0 is promoted / THEN it serves everyone, and 1.0.0 is retired
    promoted = operator.json("services", "promote", name, "1.1.0", "--by", "lead", "--note", "canary clean")
    assert promoted["traffic"] == {"1.1.0": 100}
    assert [(e["action"], e["version"]) for e in promoted["events"]][:2] == [
        ("promoted", "1.1.0"),
        ("retired", "1.0.0"),
    ]
    assert {served(predict(operator, name, sample, customer)) for customer in customers[:4]} == {"1.1.0"}

    # WHEN it is rolled back / THEN the canary split is back, and each customer's version with it
    rolled = operator.json("services", "rollback", name, "--by", "oncall")
    assert (rolled["traffic"], rolled["sticky_key"]) == ({"1.0.0": 50, "1.1.0": 50}, "customer_id")
    assert {c: served(predict(operator, name, sample, c)) for c in customers[:4]} == {
        c: versions[c] for c in customers[:4]
    }

    # AND rejecting a version that serves is refused; the history has every step, in order
    serving = operator.run("services", "reject", name, "1.1.0", "--by", "Dana Risk")
    assert serving.returncode == 2 and "serves 50% of traffic: move it first" in serving.stderr, serving
    actions = [(e["action"], e["by"]) for e in operator.json("services", "history", name)["history"]]
    assert actions[-3:] == [("promoted", "lead"), ("retired", "lead"), ("rolled_back", "oncall")]


def test_a_shadow_version_answers_the_same_inputs_and_compare_gives_its_agreement(
    operator: Cli, two_versions: str, sample: Path
) -> None:
    name = two_versions

    # GIVEN 1.1.0, still pending approval, made a shadow of 1.0.0 (without --by: the local user)
    shadowed = operator.json("services", "shadow", name, "1.1.0")
    assert shadowed["shadow"] == ["1.1.0"]
    assert [(e["action"], e["by"], e["shadow"]) for e in shadowed["events"]] == [("shadow", "op-local", ["1.1.0"])]
    assert operator.run("services", "shadow", name).stdout == f"{name}: shadows 1.1.0\n"

    # WHEN predictions are made
    made = [predict(operator, name, sample, f"c{index}") for index in range(4)]

    # THEN 1.0.0 answered them all, and compare shows the shadow answering the same inputs the
    # same way (both versions are the echo model: they agree on every input)
    assert {served(document) for document in made} == {"1.0.0"}
    comparison = _compare_when_shadows_are_in(operator, name, expected=len(made))
    (shadow,) = comparison["shadows"]
    assert (shadow["version"], shadow["served"], shadow["shadowed"]) == ("1.1.0", "1.0.0", len(made))
    assert (shadow["compared"], shadow["agreed"], shadow["agreement"]) == (len(made), len(made), 1.0)
    assert [(v["version"], v["predictions"], v["failed"]) for v in comparison["versions"]] == [("1.0.0", len(made), 0)]

    # WHEN shadows are turned off / THEN none remain
    assert operator.json("services", "shadow", name, "--off")["shadow"] == []


def _compare_when_shadows_are_in(cli: Cli, name: str, expected: int, timeout: float = 60) -> dict[str, Any]:
    """``compare --json`` once every shadow outcome is recorded (shadows finish after their primary)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        comparison: dict[str, Any] = cli.json("services", "compare", name)
        shadows = comparison["shadows"]
        if (shadows and shadows[0]["shadowed"] >= expected) or time.monotonic() > deadline:
            return comparison
        time.sleep(1)

"""Every version of a model service has its own endpoint stack: naming, hosting, orphans.

The stack ``{stack}-model-{service}`` stays with the version it serves (a service's first); the
other versions get ``{stack}-model-{service}-v{slug}``. Hosting a catalog (the local runtime's
``services apply``) deploys each version beside the others; ``services orphans`` counts every
version's stack and endpoint as accounted for.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ensemble_gateway.admin import load_services
from ensemble_gateway.domain.errors import ModelHostingError
from ensemble_gateway.domain.models import ModelTarget, Service
from ensemble_gateway.domain.rollout import apply_entry
from ensemble_gateway.endpoint_stack import EndpointStackError, GatewayWiring, endpoint_stack_name
from ensemble_gateway.model_hosting import host_models, hosted_versions, version_stack_name
from ensemble_gateway.service_admin import find_orphans

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2024, 6, 1, tzinfo=UTC)
#: CloudFormation's rule for a stack name.
STACK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
WIRING = GatewayWiring(
    stack_name="gw",
    region="us-east-1",
    bucket="data",
    success_topic_arn="arn:aws:sns:us-east-1:123456789012:ok",
    error_topic_arn="arn:aws:sns:us-east-1:123456789012:error",
    data_key_arn="arn:aws:kms:us-east-1:123456789012:key/k",
)


def version(name: str, number: str, endpoint: str, model_data: str | None = "s3://models/m.tar.gz") -> Service:
    """A catalog entry: version ``number`` of model service ``name`` on ``endpoint``."""
    return Service(
        name=name,
        kind="model",
        version=number,
        model=ModelTarget(endpoint_name=endpoint, model_data=model_data, framework="sklearn"),
    )


class FakeStacks:
    """Endpoint stacks by name, each with the outputs of its last deployment."""

    def __init__(self, existing: dict[str, dict[str, str]] | None = None) -> None:
        self.stacks: dict[str, dict[str, str]] = dict(existing or {})
        self.deployed: dict[str, dict[str, str]] = {}

    def deploy(self, stack_name: str, template_body: str, parameters: Any, on_event: Any = None) -> dict[str, str]:
        self.deployed[stack_name] = dict(parameters)
        self.stacks[stack_name] = {"EndpointName": parameters["EndpointName"]}
        return self.stacks[stack_name]

    def delete(self, stack_name: str, on_event: Any = None) -> None:
        self.stacks.pop(stack_name)

    def outputs(self, stack_name: str) -> dict[str, str] | None:
        return self.stacks.get(stack_name)


class FakeArtifacts:
    def upload(self, archive: Path, bucket: str, key: str) -> str:
        return f"s3://{bucket}/{key}"

    def default_kms_key(self, bucket: str) -> str | None:
        return WIRING.data_key_arn


# -- names ---------------------------------------------------------------------------------------


def test_a_versions_own_stack_is_the_services_stack_name_with_the_version_as_a_slug() -> None:
    # WHEN the stack names of a service and of its version 1.1.0 are made
    shared = endpoint_stack_name("gw", "triage-product")
    own = endpoint_stack_name("gw", "triage-product", "1.1.0")

    # THEN the first is the name before versions, the second carries the version, both valid
    assert shared == "gw-model-triage-product"
    assert own == "gw-model-triage-product-v1-1-0"
    assert STACK_NAME.match(shared) and STACK_NAME.match(own)


@pytest.mark.parametrize(("first", "second"), [("1.1-0", "1-1.0"), ("1_0", "1-0"), ("2.0.0-rc1", "2.0.0.rc1")])
def test_versions_whose_labels_differ_only_in_punctuation_get_two_stacks(first: str, second: str) -> None:
    # WHEN two versions' labels would give one slug
    names = {endpoint_stack_name("gw", "svc", first), endpoint_stack_name("gw", "svc", second)}

    # THEN their stacks are still two, each a valid stack name
    assert len(names) == 2
    assert all(STACK_NAME.match(name) for name in names)


def test_a_long_name_is_cut_to_128_characters_and_stays_one_per_version() -> None:
    # GIVEN a long gateway stack name, a long service name and long version labels
    gateway, service = "g" + "a" * 60, "s" + "b" * 62
    versions = ["1." + "9" * 60, "1." + "9" * 59 + "8"]

    # WHEN their stacks are named
    names = [endpoint_stack_name(gateway, service, v) for v in versions]

    # THEN each is a valid CloudFormation name, and they differ
    assert all(STACK_NAME.match(name) and len(name) <= 128 for name in names)
    assert names[0] != names[1]


# -- which stack a version deploys to ------------------------------------------------------------


def test_before_anything_is_deployed_the_first_version_gets_the_services_stack_and_later_ones_their_own() -> None:
    # GIVEN two versions of a service and no stacks
    first, later = version("svc", "1.0.0", "svc"), version("svc", "1.1.0", "svc-1-1-0")
    known = {"1.0.0", "1.1.0"}

    # WHEN their stacks are chosen (in either order)
    chosen = {
        "later": version_stack_name("gw", later, versions=known, outputs=FakeStacks().outputs),
        "first": version_stack_name("gw", first, versions=known, outputs=FakeStacks().outputs),
    }

    # THEN the first (in version order, not file order) keeps the name of before versions
    assert chosen == {"first": "gw-model-svc", "later": "gw-model-svc-v1-1-0"}


def test_the_services_stack_stays_with_the_version_whose_endpoint_it_serves() -> None:
    # GIVEN the service's stack serving version 1.0.0's endpoint, and a file holding only 1.1.0
    stacks = FakeStacks({"gw-model-svc": {"EndpointName": "svc"}})
    later = version("svc", "1.1.0", "svc-1-1-0")

    # WHEN version 1.1.0's stack is chosen, knowing of no other version
    chosen = version_stack_name("gw", later, versions={"1.1.0"}, outputs=stacks.outputs)

    # THEN it gets its own: deploying it leaves 1.0.0's endpoint serving
    assert chosen == "gw-model-svc-v1-1-0"
    # AND version 1.0.0 keeps the service's stack
    assert version_stack_name("gw", version("svc", "1.0.0", "svc"), versions=set(), outputs=stacks.outputs) == (
        "gw-model-svc"
    )


def test_a_version_whose_own_stack_exists_deploys_to_it_even_if_it_is_now_the_first() -> None:
    # GIVEN 1.1.0 on its own stack, the service's stack gone (1.0.0 retired and deleted)
    stacks = FakeStacks({"gw-model-svc-v1-1-0": {"EndpointName": "svc-1-1-0"}})

    # WHEN 1.1.0 is deployed again from a file that holds only it
    chosen = version_stack_name("gw", version("svc", "1.1.0", "svc-1-1-0"), versions=set(), outputs=stacks.outputs)

    # THEN it updates its own stack (no second stack for one endpoint)
    assert chosen == "gw-model-svc-v1-1-0"


def test_a_versions_own_stack_serving_another_endpoint_is_never_taken_over() -> None:
    # GIVEN the stack 1.1.0 would get, serving another endpoint
    stacks = FakeStacks({"gw-model-svc-v1-1-0": {"EndpointName": "something-else"}})

    # WHEN 1.1.0's stack is chosen THEN it is refused, saying how to go on
    with pytest.raises(EndpointStackError, match=r"serves endpoint 'something-else'.*models delete svc --version"):
        version_stack_name("gw", version("svc", "1.1.0", "svc-1-1-0"), versions=set(), outputs=stacks.outputs)


def test_a_services_stack_that_serves_nothing_goes_to_the_first_version() -> None:
    # GIVEN the service's stack left without an endpoint (its creation failed)
    stacks = FakeStacks({"gw-model-svc": {}})

    # WHEN both versions' stacks are chosen
    known = {"1.0.0", "1.1.0"}
    first = version_stack_name("gw", version("svc", "1.0.0", "svc"), versions=known, outputs=stacks.outputs)
    later = version_stack_name("gw", version("svc", "1.1.0", "svc-1-1-0"), versions=known, outputs=stacks.outputs)

    # THEN it is the first version's, as if nothing were deployed
    assert (first, later) == ("gw-model-svc", "gw-model-svc-v1-1-0")


# -- hosting every version -----------------------------------------------------------------------


def test_hosting_the_example_catalog_deploys_each_version_on_its_own_stack_and_endpoint() -> None:
    # GIVEN the example catalog: triage-product and fraud-score each with versions 1.0.0 and 1.1.0
    services = load_services(ROOT / "examples" / "catalog.json")
    stacks = FakeStacks()

    # WHEN it is hosted (as `services apply` does on the local runtime)
    hosted = host_models(services, stacks=stacks, artifacts=FakeArtifacts(), wiring=WIRING)

    # THEN 1.0.0 keeps the service's stack and 1.1.0 has its own, each with its own endpoint
    endpoints = {name: parameters["EndpointName"] for name, parameters in stacks.deployed.items()}
    assert endpoints["gw-model-triage-product"] == "triage-product"
    assert endpoints["gw-model-triage-product-v1-1-0"] == "triage-product-1-1-0"
    assert endpoints["gw-model-fraud-score"] == "fraud-score"
    assert endpoints["gw-model-fraud-score-v1-1-0"] == "fraud-score-1-1-0"
    assert {"triage-product-1-1-0", "fraud-score-1-1-0", "triage-product", "fraud-score"} <= set(hosted)
    # AND each version's archive is its own model directory, under its own version
    data = stacks.deployed["gw-model-triage-product-v1-1-0"]["ModelDataUrl"]
    assert data.startswith("s3://data/models/triage-product/1.1.0/")
    assert data != stacks.deployed["gw-model-triage-product"]["ModelDataUrl"]
    # AND every model with model data is hosted once: one stack per version
    with_data = [s for s in services if s.model is not None and s.model.model_data]
    assert len(stacks.deployed) == len(with_data)


def test_hosting_a_new_version_leaves_the_serving_versions_stack_alone() -> None:
    # GIVEN version 1.0.0 hosted
    stacks = FakeStacks()
    host_models([version("svc", "1.0.0", "svc")], stacks=stacks, artifacts=FakeArtifacts(), wiring=WIRING)
    stacks.deployed.clear()

    # WHEN a catalog file holding only version 1.1.0 is hosted
    host_models([version("svc", "1.1.0", "svc-1-1-0")], stacks=stacks, artifacts=FakeArtifacts(), wiring=WIRING)

    # THEN only 1.1.0's own stack was deployed; 1.0.0's stack serves its endpoint as before
    assert list(stacks.deployed) == ["gw-model-svc-v1-1-0"]
    assert stacks.stacks["gw-model-svc"] == {"EndpointName": "svc"}


def test_without_stack_lookups_the_registered_versions_decide_which_is_first() -> None:
    # GIVEN stacks that cannot be looked up, and a service registered with version 1.0.0
    class BlindStacks(FakeStacks):
        outputs = None  # type: ignore[assignment]

    stacks = BlindStacks()
    registered = apply_entry(None, version("svc", "1.0.0", "svc"), NOW)

    # WHEN a file holding only 1.1.0 is hosted, with the catalog's entry known
    host_models(
        [version("svc", "1.1.0", "svc-1-1-0")],
        stacks=stacks,
        artifacts=FakeArtifacts(),
        wiring=WIRING,
        registered={"svc": registered}.get,
    )

    # THEN 1.1.0 goes to its own stack, not to 1.0.0's
    assert list(stacks.deployed) == ["gw-model-svc-v1-1-0"]


def test_a_registered_service_hosts_every_version_that_names_model_data() -> None:
    # GIVEN a stored service with three versions, one of them on an endpoint that exists already
    service = apply_entry(None, version("svc", "1.0.0", "svc"), NOW)
    service = apply_entry(service, version("svc", "1.1.0", "svc-1-1-0"), NOW)
    service = apply_entry(service, version("svc", "2.0.0", "svc-2", model_data=None), NOW)

    # WHEN its versions to host are listed
    targets = hosted_versions([service])

    # THEN each version with model data is there, as that version serves it
    assert [(t.version, t.model.endpoint_name if t.model else None) for t in targets] == [
        ("1.0.0", "svc"),
        ("1.1.0", "svc-1-1-0"),
    ]
    assert all(t.rollout is None for t in targets)


def test_an_inactive_service_is_not_hosted() -> None:
    inactive = version("svc", "1.0.0", "svc").model_copy(update={"active": False})
    assert hosted_versions([inactive]) == []


def test_two_versions_that_would_share_a_stack_are_refused_before_anything_is_deployed() -> None:
    # GIVEN a service "svc" version 1.1.0, and a service named like that version's own stack
    stacks = FakeStacks()
    clash = [version("svc", "1.0.0", "svc"), version("svc", "1.1.0", "svc-b"), version("svc-v1-1-0", "1", "other")]

    # WHEN they are hosted together THEN it is refused, and nothing was deployed
    with pytest.raises(ModelHostingError, match="would share stack gw-model-svc-v1-1-0"):
        host_models(clash, stacks=stacks, artifacts=FakeArtifacts(), wiring=WIRING)
    assert stacks.deployed == {}


# -- orphans -------------------------------------------------------------------------------------


class FakeCatalog:
    def __init__(self, services: list[Service]) -> None:
        self.services = services

    def list(self, active_only: bool = True) -> list[Service]:
        return self.services


class NoMachines:
    def listed(self, prefix: str) -> list[Any]:
        return []


class FakeCloudFormation:
    def __init__(self, names: list[str]) -> None:
        self.names = names

    def get_paginator(self, operation: str) -> Any:
        names = self.names

        class Paginator:
            def paginate(self, **_: Any) -> list[dict[str, Any]]:
                return [{"StackSummaries": [{"StackName": n, "StackStatus": "CREATE_COMPLETE"} for n in names]}]

        return Paginator()


def test_orphans_count_every_versions_stack_and_endpoint_as_accounted_for() -> None:
    # GIVEN a service with versions 1.0.0 (the service's stack), 1.1.0 (its own stack) and 1.2.0
    # (retired: its stack remains, the gateway never deletes it), and a stack of a gone service
    service = apply_entry(None, version("svc", "1.0.0", "svc"), NOW)
    service = apply_entry(service, version("svc", "1.1.0", "svc-1-1-0"), NOW)
    service = apply_entry(service, version("svc", "1.2.0", "svc-canary"), NOW)
    stacks = ["gw-model-svc", "gw-model-svc-v1-1-0", "gw-model-svc-v1-2-0", "gw-model-svc-canary", "gw-model-gone"]

    # WHEN the orphans are listed
    orphans = find_orphans(
        FakeCatalog([service]),
        NoMachines(),  # type: ignore[arg-type]
        stack_name="gw",
        role_arn="arn:aws:iam::123456789012:role/r",
        cloudformation=FakeCloudFormation(stacks),
    )

    # THEN only the gone service's stack is an orphan
    assert [(s.name, s.service) for s in orphans.endpoint_stacks] == [("gw-model-gone", "gone")]

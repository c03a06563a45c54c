"""The ServiceCatalog contract (domain/ports.py), on the fake and on DynamoDB."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ensemble_gateway.domain.models import ModelTarget, Service

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example_services() -> list[Service]:
    """The example catalog: models of every kind and ensembles with every kind of step."""
    return [Service.model_validate(entry) for entry in json.loads((EXAMPLES / "catalog.json").read_text())]


def model(name: str, **fields: Any) -> Service:
    return Service(name=name, kind="model", model=ModelTarget(endpoint_name=name), **fields)


@pytest.mark.parametrize("service", example_services(), ids=lambda s: s.name)
def test_a_service_reads_back_as_it_was_put(catalog: Any, service: Service) -> None:
    # GIVEN an example service put in the catalog
    catalog.put(service)

    # WHEN it is read, alone and with others
    # THEN it is the service as given
    assert catalog.get(service.name) == service
    assert catalog.get_many([service.name]) == {service.name: service}


def test_an_unknown_service_reads_as_none(catalog: Any) -> None:
    assert catalog.get("nope") is None
    assert catalog.get_many(["nope"]) == {}


def test_putting_a_service_again_replaces_it(catalog: Any) -> None:
    # GIVEN a service
    catalog.put(model("fraud-score", version="1", description="first"))

    # WHEN it is put again, changed
    second = model("fraud-score", version="2", active=False)
    catalog.put(second)

    # THEN the catalog has the second one only
    assert catalog.get("fraud-score") == second
    assert catalog.list(active_only=False) == [second]


def test_get_many_reads_the_names_that_exist_once_each_past_a_batch(catalog: Any) -> None:
    # GIVEN 150 services (BatchGetItem reads 100 keys at a time)
    services = [model(f"model-{i:03}") for i in range(150)]
    for service in services:
        catalog.put(service)

    # WHEN they are read together, with names repeated and names that do not exist
    names = [s.name for s in services] + ["model-000", "nope", "model-149", "gone"]
    found = catalog.get_many(names)

    # THEN each existing one is there once, by name
    assert found == {s.name: s for s in services}


def test_the_list_has_the_active_services_by_name_or_all_when_asked(catalog: Any) -> None:
    # GIVEN active and inactive services, put out of order
    zeta, alpha, retired = model("zeta"), model("alpha"), model("mid", active=False)
    for service in (zeta, retired, alpha):
        catalog.put(service)

    # WHEN the catalog is listed, then listed whole
    # THEN the active ones come by name; all of them when asked
    assert catalog.list() == [alpha, zeta]
    assert catalog.list(active_only=False) == [alpha, retired, zeta]


# -- conditional writes (the version commands' read-modify-write) --------------------------------


def test_a_conditional_put_writes_when_the_entry_is_as_read(catalog: Any) -> None:
    # GIVEN a service read by an operator
    catalog.put(model("fraud-score", description="first"))
    read = catalog.get("fraud-score")

    # WHEN their change is put on the condition that the entry is still as read
    changed = model("fraud-score", description="approved")
    written = catalog.put_if_unchanged(changed, read)

    # THEN it is written
    assert written is True
    assert catalog.get("fraud-score") == changed


def test_a_conditional_put_after_another_write_is_refused_and_keeps_that_write(catalog: Any) -> None:
    # GIVEN a service read by two operators, and the second one's change written first
    catalog.put(model("fraud-score", description="first"))
    read = catalog.get("fraud-score")
    theirs = model("fraud-score", description="theirs")
    assert catalog.put_if_unchanged(theirs, read) is True

    # WHEN the first operator's change is put on the condition that the entry is as they read it
    written = catalog.put_if_unchanged(model("fraud-score", description="mine"), read)

    # THEN it is refused, and the other change stays
    assert written is False
    assert catalog.get("fraud-score") == theirs


def test_a_conditional_put_of_a_new_entry_is_refused_once_it_exists(catalog: Any) -> None:
    # WHEN a service that does not exist is put on the condition that it still does not
    first = model("fraud-score", description="first")
    assert catalog.put_if_unchanged(first, None) is True

    # THEN a second such put is refused, and a put expecting an entry that is not there too
    assert catalog.put_if_unchanged(model("fraud-score", description="second"), None) is False
    assert catalog.put_if_unchanged(model("repair-cost"), model("repair-cost")) is False
    assert catalog.get("fraud-score") == first
    assert catalog.get("repair-cost") is None


def test_a_conditional_put_of_a_versioned_service_as_read_back_is_written(catalog: Any) -> None:
    from datetime import UTC, datetime

    from ensemble_gateway.domain import rollout

    # GIVEN a service with two versions (its rollout: datetimes, history) stored and read back
    now = datetime(2026, 12, 2, 9, 0, 0, 123000, tzinfo=UTC)
    service = rollout.apply_entry(None, model("triage-product", version="1.0.0"), now)
    service = rollout.apply_entry(
        service,
        Service(name="triage-product", kind="model", version="1.1.0", model=ModelTarget(endpoint_name="tp-1-1-0")),
        now,
    )
    catalog.put(service)
    read = catalog.get("triage-product")
    assert read == service

    # WHEN a version is approved on the condition that the entry is as read
    approved = rollout.approve(read, "1.1.0", by="Dana Risk", now=now)

    # THEN it is written
    assert catalog.put_if_unchanged(approved, read) is True
    assert catalog.get("triage-product") == approved

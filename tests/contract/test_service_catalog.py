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

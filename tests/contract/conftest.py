"""The stores under contract: each case runs once on the in-memory fake that the unit tests use
(``tests/unit/gateway_fakes.py``) and once on the DynamoDB adapter against moto, a real HTTP server
on 127.0.0.1 whose tables are created as ``template.yaml`` defines them (keys and indexes).

A case where the two differ is marked ``@differs(fake=...)`` or ``@differs(dynamodb=...)``: that
store's run is an expected failure (strict: it fails once the difference is gone, so the marker
goes too).
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The fakes are the unit tests' own module, imported as they import it (one module, not a copy).
sys.path.insert(0, str(ROOT / "tests" / "unit"))

from gateway_fakes import FakeCatalog, FakeClients, FakeClock, FakePredictionStore  # noqa: E402

STORES = ("fake", "dynamodb")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "differs(fake=reason | dynamodb=reason, raises=...): that store breaks this case (strict xfail)"
    )


def differs(*, raises: type[BaseException] = AssertionError, **reasons: str) -> pytest.MarkDecorator:
    """Mark a case that one store fails today: ``fake=`` or ``dynamodb=`` says how it differs, and
    ``raises`` how the case fails there (any other failure is a failure)."""
    unknown = set(reasons) - set(STORES)
    assert reasons and not unknown, f"no such store: {unknown}"
    return pytest.mark.differs(raises=raises, **reasons)


@pytest.fixture(scope="package")
def dynamodb_client() -> Iterator[Any]:
    """A DynamoDB client of moto on 127.0.0.1 (its tables are named apart from everyone else's:
    moto's backends are shared by every moto server in this process)."""
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield boto3.session.Session().client(
            "dynamodb",
            region_name="us-east-1",
            endpoint_url=f"http://{host}:{port}",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
    finally:
        server.stop()


@pytest.fixture(scope="package")
def table_definitions() -> dict[str, dict[str, Any]]:
    from ensemble_gateway.local.template import load_template

    resources = load_template(ROOT / "template.yaml")["Resources"]
    return {
        logical_id: resource["Properties"]
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::DynamoDB::Table"
    }


@pytest.fixture
def new_table(dynamodb_client: Any, table_definitions: dict[str, dict[str, Any]]) -> Iterator[Callable[[str], str]]:
    """Creates a table of the template (by logical ID) for this test; its name."""
    created: list[str] = []

    def create(logical_id: str) -> str:
        properties = table_definitions[logical_id]
        name = f"contract-{logical_id}-{uuid.uuid4().hex[:10]}"
        request: dict[str, Any] = {
            "TableName": name,
            "BillingMode": properties["BillingMode"],
            "AttributeDefinitions": properties["AttributeDefinitions"],
            "KeySchema": properties["KeySchema"],
        }
        if "GlobalSecondaryIndexes" in properties:
            request["GlobalSecondaryIndexes"] = properties["GlobalSecondaryIndexes"]
        dynamodb_client.create_table(**request)
        created.append(name)
        return name

    yield create
    for name in created:
        dynamodb_client.delete_table(TableName=name)


@pytest.fixture(params=STORES)
def store_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    marker = request.node.get_closest_marker("differs")
    if marker is not None and kind in marker.kwargs:
        xfail = pytest.mark.xfail(reason=f"{kind}: {marker.kwargs[kind]}", raises=marker.kwargs["raises"], strict=True)
        request.applymarker(xfail)
    return kind


@pytest.fixture
def clock(store_kind: str, monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The time both stores tell: the fake's clock, and the adapter's (updated_at, idempotency
    markers), so that a case can move time and compare timestamps exactly."""
    clock = FakeClock()
    if store_kind == "dynamodb":
        monkeypatch.setattr("ensemble_gateway.adapters.dynamodb.utcnow", clock)
    return clock


@pytest.fixture
def predictions(store_kind: str, clock: FakeClock, request: pytest.FixtureRequest) -> Any:
    """A PredictionStore: FakePredictionStore, or DynamoPredictionStore on the predictions table."""
    if store_kind == "fake":
        return FakePredictionStore(clock)
    from ensemble_gateway.adapters.dynamodb import DynamoPredictionStore

    name = request.getfixturevalue("new_table")("PredictionsTable")
    return DynamoPredictionStore(name, request.getfixturevalue("dynamodb_client"))


@pytest.fixture
def catalog(store_kind: str, request: pytest.FixtureRequest) -> Any:
    """A ServiceCatalog: FakeCatalog, or DynamoServiceCatalog on the services table."""
    if store_kind == "fake":
        return FakeCatalog()
    from ensemble_gateway.adapters.dynamodb import DynamoServiceCatalog

    name = request.getfixturevalue("new_table")("ServicesTable")
    return DynamoServiceCatalog(name, request.getfixturevalue("dynamodb_client"))


@pytest.fixture
def clients(store_kind: str, request: pytest.FixtureRequest) -> Any:
    """A ClientDirectory: FakeClients, or DynamoClientDirectory on the clients table."""
    if store_kind == "fake":
        return FakeClients()
    from ensemble_gateway.adapters.dynamodb import DynamoClientDirectory

    name = request.getfixturevalue("new_table")("ClientsTable")
    return DynamoClientDirectory(name, request.getfixturevalue("dynamodb_client"))

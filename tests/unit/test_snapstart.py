"""SnapStart runtime hooks: registered only where Lambda's ``snapshot_restore_py`` exists; before the
snapshot, the handler's dependencies are built and the clients of its services created (no AWS
call); after a restore, the ``random`` module is reseeded. ``snapshot_restore_py`` is faked through
``sys.modules`` (it ships only with Lambda's managed runtimes)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import types
from dataclasses import dataclass, field
from typing import Any

import pytest

from ensemble_gateway import snapstart
from ensemble_gateway.adapters import aws
from ensemble_gateway.adapters.aws import LazyClient


class FakeSnapshotRestore(types.ModuleType):
    """Stands in for ``snapshot_restore_py``: records the registered hooks, runs none."""

    def __init__(self) -> None:
        super().__init__("snapshot_restore_py")
        self.before: list[tuple[Any, tuple[Any, ...]]] = []
        self.after: list[tuple[Any, tuple[Any, ...]]] = []

    def register_before_snapshot(self, func: Any, *args: Any) -> Any:
        self.before.append((func, args))
        return func

    def register_after_restore(self, func: Any, *args: Any) -> Any:
        self.after.append((func, args))
        return func


class FakeTable(LazyClient):
    service_name = "dynamodb"


class FakeQueue(LazyClient):
    service_name = "sqs"


@dataclass
class FakeDependencies:
    """Adapters nested as the use cases nest them: in attributes, lists and dicts, one shared."""

    table: FakeTable
    others: list[Any] = field(default_factory=list)
    by_name: dict[str, Any] = field(default_factory=dict)


@pytest.fixture
def created(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The services whose clients were created (no boto3 client is made)."""
    services: list[str] = []
    monkeypatch.setattr(aws, "client", lambda service, **_: services.append(service) or object())
    return services


def test_without_lambdas_library_nothing_is_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a process where snapshot_restore_py cannot be imported (tests, the local runtime)
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)
    # WHEN a handler registers its hooks
    registered = snapstart.register_hooks(lambda: None, ("dynamodb",))
    # THEN nothing is registered, and nothing fails
    assert registered is False


def test_the_hooks_are_registered_with_the_handlers_dependencies_and_services(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN Lambda's library
    fake = FakeSnapshotRestore()
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", fake)

    def dependencies() -> None:
        return None

    # WHEN a handler registers its hooks
    registered = snapstart.register_hooks(dependencies, ("dynamodb", "s3"))
    # THEN one hook runs before the snapshot, with the dependencies and services; one after restores
    assert registered is True
    assert fake.before == [(snapstart.before_snapshot, (dependencies, frozenset({"dynamodb", "s3"})))]
    assert fake.after == [(snapstart.after_restore, ())]


def test_before_the_snapshot_the_dependencies_are_built_and_only_their_services_clients_created(
    created: list[str],
) -> None:
    # GIVEN dependencies holding two tables (one of them twice) and a queue
    shared = FakeTable()
    built: list[FakeDependencies] = []

    def dependencies() -> FakeDependencies:
        built.append(FakeDependencies(table=shared, others=[FakeQueue(), FakeTable()], by_name={"again": shared}))
        return built[-1]

    # WHEN the before-snapshot hook runs for a handler whose requests use DynamoDB only
    warmed = snapstart.before_snapshot(dependencies, frozenset({"dynamodb"}))
    # THEN the dependencies were built once, and each table's client created once; the queue's not
    assert len(built) == 1
    assert warmed == ["dynamodb", "dynamodb"] and created == ["dynamodb", "dynamodb"]
    assert shared._client is not None
    assert built[0].others[0]._client is None


def test_after_a_restore_the_random_module_is_reseeded() -> None:
    # GIVEN the random module's state as a snapshot would hold it
    random.seed(19)
    state = random.getstate()
    # WHEN the after-restore hook runs
    snapstart.after_restore()
    # THEN the state is no longer the snapshot's: restored environments draw different jitter
    assert random.getstate() != state


_CHILD = """
import json, sys, types
registered = []
fake = types.ModuleType("snapshot_restore_py")
fake.register_before_snapshot = lambda func, *args: registered.append(("before", func, args))
fake.register_after_restore = lambda func, *args: registered.append(("after", func, args))
sys.modules["snapshot_restore_py"] = fake
from ensemble_gateway.adapters import aws
created = []
aws.client = lambda service, **_: created.append(service) or object()
import ensemble_gateway.handlers.{name}
for kind, func, args in registered:
    func(*args)
print(json.dumps({{"hooks": [kind for kind, _, _ in registered], "clients": sorted(set(created))}}))
"""

# The API functions (the template's SnapStart parameter) -> the clients their requests use.
API_HANDLERS = {
    "new_prediction": ["dynamodb", "s3", "sagemaker-runtime", "sqs", "stepfunctions"],
    "results": ["dynamodb", "s3"],
    "cancel_prediction": ["dynamodb", "events", "firehose", "s3", "sqs", "stepfunctions"],
    "batches": ["dynamodb", "s3", "sqs"],
}


@pytest.mark.parametrize("name", sorted(API_HANDLERS))
def test_each_api_handler_registers_hooks_that_create_its_clients(name: str) -> None:
    # GIVEN a fresh interpreter with Lambda's library and the template's environment
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))}
    env.update(
        {
            "AWS_REGION": "us-east-1",
            "PREDICTIONS_TABLE": "predictions",
            "SERVICES_TABLE": "services",
            "CLIENTS_TABLE": "clients",
            "BUCKET": "bucket",
            "WEBHOOK_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/webhooks",
            "WEBHOOK_DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/webhooks-dlq",
            "EVENT_BUS_NAME": "events",
            "AUDIT_STREAM_NAME": "audit",
            "BATCHES_TABLE": "batches",
            "BATCH_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/batches",
        }
    )
    # WHEN the handler is imported and the runtime runs the hooks it registered
    done = subprocess.run(
        [sys.executable, "-c", _CHILD.format(name=name)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # THEN one hook of each kind was registered, and the clients its routes call were created
    assert result["hooks"] == ["before", "after"]
    assert result["clients"] == API_HANDLERS[name]

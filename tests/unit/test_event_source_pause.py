"""The local runtime's event sources can be paused: the tests' session runtime is paused between
the tests that use it, so its handlers never run while another test owns the environment."""

from __future__ import annotations

import sys
import threading
import time
import types
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from ensemble_gateway.local.deployer import EventSource, FunctionSpec
from ensemble_gateway.local.lambdas import FunctionRegistry
from ensemble_gateway.local.pollers import ScheduleRunner, SqsPoller

QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:events"


class FakeQueue:
    """A queue whose messages a test puts at any time; counts the receives and records deletes."""

    def __init__(self) -> None:
        self.waiting: list[dict[str, Any]] = []
        self.receives = 0
        self.deleted: list[str] = []
        self.lock = threading.Lock()

    def put(self, body: str) -> None:
        with self.lock:
            self.waiting.append({"MessageId": body, "ReceiptHandle": f"rh-{body}", "Body": body})

    def receive_message(self, **_: Any) -> dict[str, Any]:
        with self.lock:
            self.receives += 1
            batch, self.waiting = self.waiting, []
        if not batch:
            time.sleep(0.02)
        return {"Messages": batch} if batch else {}

    def delete_message_batch(self, **request: Any) -> None:
        with self.lock:
            self.deleted.extend(entry["ReceiptHandle"].removeprefix("rh-") for entry in request["Entries"])


class FakeHandlerModule(types.ModuleType):
    """A handler module: each invocation is noted; one whose record is "hold" waits for ``release``."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.REENTRANT = True
        self.release = threading.Event()
        self.invoked: list[str] = []

    def handler(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        for record in event.get("Records", []):
            self.invoked.append(record["body"])
            if record["body"] == "hold":
                assert self.release.wait(20)
        if not event.get("Records"):
            self.invoked.append("scheduled")
            if not self.release.is_set():
                assert self.release.wait(20)
        return {"batchItemFailures": []}


@pytest.fixture
def module(monkeypatch: pytest.MonkeyPatch) -> FakeHandlerModule:
    name = f"fake_event_handlers_{uuid.uuid4().hex}"
    made = FakeHandlerModule(name)
    monkeypatch.setitem(sys.modules, name, made)
    return made


def spec(module: FakeHandlerModule) -> FunctionSpec:
    return FunctionSpec(
        logical_id="EventsFunction",
        function_name="events",
        handler=f"{module.__name__}.handler",
        environment={},
        timeout=30,
        events=[EventSource(name="Events", kind="SQS", properties={"Queue": QUEUE_ARN})],
    )


@pytest.fixture
def poller(module: FakeHandlerModule) -> Iterator[tuple[SqsPoller, FakeQueue]]:
    queue = FakeQueue()
    function = spec(module)
    registry = FunctionRegistry({function.logical_id: function}, "us-east-1")
    started = SqsPoller(queue, "https://queue.local/events", QUEUE_ARN, function, registry)
    started.start()
    yield started, queue
    module.release.set()
    started.stopping.set()
    started.join(timeout=10)
    assert not started.is_alive()


def wait_until(condition: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


def test_a_paused_poller_receives_nothing_until_it_is_resumed(
    poller: tuple[SqsPoller, FakeQueue], module: FakeHandlerModule
) -> None:
    # GIVEN a running poller, paused (and settled)
    sqs_poller, queue = poller
    sqs_poller.pause()
    assert sqs_poller.wait_paused(5)
    receives = queue.receives

    # WHEN a message arrives while it is paused
    queue.put("m1")
    time.sleep(0.5)

    # THEN it stays on the queue: not received, not invoked
    assert queue.receives == receives
    assert module.invoked == [] and queue.deleted == []
    # AND once resumed, the poller takes it
    sqs_poller.resume()
    assert wait_until(lambda: queue.deleted == ["m1"])
    assert module.invoked == ["m1"]


def test_pausing_waits_for_the_batch_under_way(poller: tuple[SqsPoller, FakeQueue], module: FakeHandlerModule) -> None:
    # GIVEN a poller in the middle of a batch that its handler holds
    sqs_poller, queue = poller
    queue.put("hold")
    assert wait_until(lambda: module.invoked == ["hold"])

    # WHEN it is paused
    sqs_poller.pause()

    # THEN it is not settled while the batch runs, and is once the batch has finished
    assert sqs_poller.wait_paused(0.3) is False
    module.release.set()
    assert sqs_poller.wait_paused(5) is True
    assert queue.deleted == ["hold"]


def test_a_paused_schedule_skips_its_runs_and_pausing_waits_for_the_run_under_way(module: FakeHandlerModule) -> None:
    # GIVEN a schedule every 50 ms whose first run its handler holds
    function = spec(module)
    registry = FunctionRegistry({function.logical_id: function}, "us-east-1")
    runner = ScheduleRunner(function, registry, 0.05, "rule")
    runner.start()
    try:
        assert wait_until(lambda: module.invoked == ["scheduled"])

        # WHEN it is paused during that run
        runner.pause()

        # THEN it is settled only once the run has finished
        assert runner.wait_paused(0.3) is False
        module.release.set()
        assert runner.wait_paused(5) is True
        # AND no run is made while it is paused (ten intervals)
        runs, invoked = runner.scheduled_runs, len(module.invoked)
        time.sleep(0.5)
        assert (runner.scheduled_runs, len(module.invoked)) == (runs, invoked)
        # AND resumed, it runs again
        runner.resume()
        assert wait_until(lambda: runner.scheduled_runs > runs and len(module.invoked) > invoked)
    finally:
        runner.stopping.set()
        runner.join(timeout=10)
    assert not runner.is_alive()

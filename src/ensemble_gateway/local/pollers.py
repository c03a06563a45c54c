"""Pollers playing Lambda's event source mappings: SQS batches, SNS deliveries, schedules."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .deployer import ACCOUNT_ID, FunctionSpec
from .lambdas import FunctionRegistry

# Lambda polls a queue with five concurrent batches at first and scales up to the event source's
# ``ScalingConfig.MaximumConcurrency``. One process on a developer's machine runs at most this
# many at once: enough that a batch held by a slow webhook receiver does not hold the next ones.
LOCAL_MAX_CONCURRENT_BATCHES = 5


class SqsPoller(threading.Thread):
    """Receives batches from a queue and invokes a function with Lambda's SQS event.

    With ``ReportBatchItemFailures`` only the reported messages stay on the queue; without it an
    exception keeps the whole batch. Messages left on the queue come back after their visibility
    timeout, and the queue's redrive policy moves poison messages to its dead-letter queue.

    Batches of a function whose handler is reentrant (see ``FunctionRegistry``) run side by
    side, as Lambda runs them: up to the event source's ``MaximumConcurrency``, at most
    ``LOCAL_MAX_CONCURRENT_BATCHES``. No more batches are received while that many run, so
    messages wait on the queue (visible to no one else, as on AWS) rather than in a poller.
    Other functions get one batch at a time: their invocations are serialised anyway, and a
    received batch waiting for the lock would spend its messages' visibility timeout.
    ``busy`` is set while any batch runs, and the thread ends only once none does.

    ``pause`` holds the poller between batches (nothing is received until ``resume``), as when an
    event source mapping is disabled: the messages wait on the queue.
    """

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        spec: FunctionSpec,
        registry: FunctionRegistry,
        batch_size: int = 10,
        report_failures: bool = True,
        to_event: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None,
        one_record_per_event: bool = False,
    ) -> None:
        super().__init__(name=f"poller-{spec.function_name}-{queue_url.rsplit('/', 1)[-1]}", daemon=True)
        self.sqs = sqs
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.spec = spec
        self.registry = registry
        self.batch_size = batch_size
        self.report_failures = report_failures
        self.to_event = to_event
        self.one_record_per_event = one_record_per_event
        self.stopping = threading.Event()
        self.busy = threading.Event()
        # Decided at the first batch: it needs the handler's module, imported on first use.
        self.max_concurrent_batches: int | None = None
        self._in_flight = 0
        self._slots = threading.Condition()
        self._workers: set[threading.Thread] = set()
        self._paused = False
        # The loop is waiting because it is paused: it receives nothing until resumed.
        self._parked = False

    def run(self) -> None:
        while self._wait_for_a_slot():
            try:
                response = self.sqs.receive_message(
                    QueueUrl=self.queue_url,
                    MaxNumberOfMessages=self.batch_size,
                    WaitTimeSeconds=1,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                )
            except Exception:
                if self.stopping.wait(0.5):
                    break
                continue
            messages = response.get("Messages", [])
            if not messages:
                continue
            self._batch_started()
            if self.max_concurrent_batches is None:
                try:
                    self.max_concurrent_batches = self._concurrency()
                except Exception:
                    # A handler that cannot be imported fails its batches in _invoke, one at a time.
                    self.max_concurrent_batches = 1
            if self.max_concurrent_batches == 1:
                self._work(messages)
            else:
                worker = threading.Thread(target=self._work, args=(messages,), name=f"{self.name}-batch", daemon=True)
                with self._slots:
                    self._workers.add(worker)
                worker.start()
        with self._slots:
            workers = list(self._workers)
        for worker in workers:
            worker.join()

    def _concurrency(self) -> int:
        """How many batches may run at once (1 unless the handler is reentrant)."""
        if not self.registry.reentrant(self.spec):
            return 1
        configured: int | None = None
        for event in self.spec.events:
            if event.kind == "SQS" and event.properties.get("Queue") == self.queue_arn:
                maximum = (event.properties.get("ScalingConfig") or {}).get("MaximumConcurrency")
                configured = int(maximum) if maximum else None
        return max(1, min(configured or LOCAL_MAX_CONCURRENT_BATCHES, LOCAL_MAX_CONCURRENT_BATCHES))

    def _wait_for_a_slot(self) -> bool:
        """Wait until fewer batches run than allowed, and not paused; False once the poller is stopping."""
        with self._slots:
            while not self.stopping.is_set() and (
                self._paused or self._in_flight >= (self.max_concurrent_batches or 1)
            ):
                if self._paused and not self._parked:
                    self._parked = True
                    self._slots.notify_all()
                self._slots.wait(0.2)
            self._parked = False
        return not self.stopping.is_set()

    def pause(self) -> None:
        """Receive no more batches until :meth:`resume` (returns at once: see :meth:`wait_paused`)."""
        with self._slots:
            self._paused = True
            self._slots.notify_all()

    def wait_paused(self, timeout: float) -> bool:
        """Wait until a paused poller has finished its batches and receives nothing; False on timeout.

        A receive under way (a long poll of up to a second) ends first: the batch it brings is
        worked before the loop parks.
        """
        deadline = time.monotonic() + timeout
        with self._slots:
            while self._paused and self.is_alive() and not (self._parked and self._in_flight == 0):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._slots.wait(min(remaining, 0.2))
        return True

    def resume(self) -> None:
        with self._slots:
            self._paused = False
            self._slots.notify_all()

    def _batch_started(self) -> None:
        with self._slots:
            self._in_flight += 1
            self.busy.set()

    def _work(self, messages: list[dict[str, Any]]) -> None:
        try:
            batches = [[m] for m in messages] if self.one_record_per_event else [messages]
            for batch in batches:
                self._invoke(batch)
        finally:
            with self._slots:
                self._in_flight -= 1
                self._workers.discard(threading.current_thread())
                if self._in_flight == 0:
                    self.busy.clear()
                self._slots.notify_all()

    def _records(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": m.get("MessageAttributes", {}),
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": self.queue_arn,
                "awsRegion": self.registry.region,
            }
            for m in messages
        ]

    def _invoke(self, messages: list[dict[str, Any]]) -> None:
        records = self._records(messages)
        event = {"Records": self.to_event(records) if self.to_event else records}
        failed: set[str] = set()
        try:
            result = self.registry.invoke(self.spec, event)
            if self.report_failures and isinstance(result, dict):
                failed = {item["itemIdentifier"] for item in result.get("batchItemFailures", [])}
        except Exception:
            failed = {m["MessageId"] for m in messages}
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(index), "ReceiptHandle": m["ReceiptHandle"]} for index, m in enumerate(done)],
            )


def sns_event_records(subscription_arn: str) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    """Turn SQS records carrying SNS envelopes into the records SNS gives Lambda."""

    def convert(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        converted = []
        for record in records:
            envelope = json.loads(record["body"])
            converted.append(
                {
                    "EventSource": "aws:sns",
                    "EventVersion": "1.0",
                    "EventSubscriptionArn": subscription_arn,
                    "Sns": {
                        "Type": envelope.get("Type", "Notification"),
                        "MessageId": envelope.get("MessageId", str(uuid.uuid4())),
                        "TopicArn": envelope.get("TopicArn", ""),
                        "Subject": envelope.get("Subject"),
                        "Message": envelope.get("Message", ""),
                        "Timestamp": envelope.get("Timestamp", ""),
                        "SignatureVersion": "1",
                        "Signature": "local",
                        "SigningCertUrl": "",
                        "UnsubscribeUrl": "",
                        "MessageAttributes": envelope.get("MessageAttributes", {}),
                    },
                }
            )
        return converted

    return convert


_RATE = re.compile(r"rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)")


def schedule_interval(expression: str) -> float:
    match = _RATE.fullmatch(expression.strip())
    if not match:
        raise ValueError(f"the local runtime supports rate(...) schedules only, got {expression}")
    amount, unit = int(match.group(1)), match.group(2)
    return amount * {"minute": 60, "hour": 3600, "day": 86400}[unit.rstrip("s")]


class ScheduleRunner(threading.Thread):
    """Invokes a function on a fixed interval with EventBridge's scheduled event.

    ``pause`` skips the scheduled runs until ``resume`` (a disabled rule); ``scheduled_runs``
    counts the runs the schedule made (not calls of :meth:`fire`).
    """

    def __init__(self, spec: FunctionSpec, registry: FunctionRegistry, interval: float, rule_name: str) -> None:
        super().__init__(name=f"schedule-{spec.function_name}", daemon=True)
        self.spec = spec
        self.registry = registry
        self.interval = interval
        self.rule_name = rule_name
        self.stopping = threading.Event()
        self.scheduled_runs = 0
        self._paused = False
        # Held while a scheduled run is under way: pausing waits for it.
        self._running = threading.Lock()

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            with self._running:
                if self._paused:
                    continue
                self.scheduled_runs += 1
                self.fire()

    def pause(self) -> None:
        """Skip the scheduled runs until :meth:`resume` (returns at once: see :meth:`wait_paused`)."""
        self._paused = True

    def wait_paused(self, timeout: float) -> bool:
        """Wait until the run under way, if any, has finished; False on timeout."""
        if not self._running.acquire(timeout=timeout):
            return False
        self._running.release()
        return True

    def resume(self) -> None:
        self._paused = False

    def fire(self) -> Any:
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": ACCOUNT_ID,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.registry.region,
            "resources": [f"arn:aws:events:{self.registry.region}:{ACCOUNT_ID}:rule/{self.rule_name}"],
            "detail": {},
        }
        try:
            return self.registry.invoke(self.spec, event)
        except Exception:
            return None

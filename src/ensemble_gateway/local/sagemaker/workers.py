"""Invocations as jobs, and the bounded worker pool of each endpoint.

A job is settled exactly once, by whoever comes first: the worker that ran it, the asynchronous
timeout, a real-time caller that gave up, or the runtime shutting down. Each endpoint has
``max_concurrency`` daemon threads taking jobs from its queue, as a container has workers.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .endpoint import LocalEndpoint
from .hosting import ModelHost
from .processes import ProcessModelHost
from .toolkit import ModelError

__all__ = ["AsyncJob", "EndpointWorkers", "Job", "Outcome"]

_log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """How a job ended: a response, a model error, a reason (async ``failureReason``), or not at all."""

    body: bytes = b""
    content_type: str = ""
    failure: ModelError | None = None
    reason: str = ""  # async failureReason, or a real-time timeout
    timed_out: bool = False
    dropped: bool = False


class Job:
    """One invocation. Whoever settles it first (worker, timeout, shutdown) decides its outcome."""

    def __init__(
        self,
        inference_id: str,
        body: bytes,
        content_type: str | None,
        accept: str | None,
        headers: dict[str, str],
    ) -> None:
        self.inference_id = inference_id
        self.body = body
        self.content_type = content_type
        self.accept = accept
        self.headers = headers
        self.received_at = datetime.now(UTC)
        self.received_monotonic = time.monotonic()
        self.outcome: Outcome | None = None
        self.done = threading.Event()
        self._lock = threading.Lock()

    def settle(self, outcome: Outcome) -> bool:
        """Record ``outcome`` unless the job is settled already; True when this call settled it."""
        with self._lock:
            if self.outcome is not None:
                return False
            self.outcome = outcome
        self.done.set()
        return True

    @property
    def settled(self) -> bool:
        with self._lock:
            return self.outcome is not None

    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self.received_monotonic) * 1000)


class AsyncJob(Job):
    """An ``InvokeEndpointAsync`` invocation: its input, timeout and output/failure locations."""

    def __init__(
        self,
        *,
        input_location: str,
        timeout_seconds: int,
        output_location: str,
        failure_location: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.input_location = input_location
        self.timeout_seconds = timeout_seconds
        self.output_location = output_location
        self.failure_location = failure_location


class EndpointWorkers:
    """The bounded pool of one endpoint: ``max_concurrency`` threads taking jobs from a queue.

    Parameters
    ----------
    endpoint : LocalEndpoint
        The endpoint served.
    host : ModelHost or ProcessModelHost
        Its model, loaded already (in this process, or served by worker processes, which are
        stopped once the pool's threads have ended).
    run : callable
        Runs one job on a worker thread: ``run(pool, job)``.
    """

    def __init__(
        self,
        endpoint: LocalEndpoint,
        host: ModelHost | ProcessModelHost,
        run: Callable[[EndpointWorkers, Job], None],
    ) -> None:
        self.endpoint = endpoint
        self.host = host
        self._running = endpoint.max_concurrency
        self._running_lock = threading.Lock()
        self.jobs: queue.Queue[Job | None] = queue.Queue()
        self.closed = False
        self._closing = threading.Lock()
        self._run = run
        self._threads = [
            threading.Thread(target=self._work, name=f"sagemaker-{endpoint.name}-{index}", daemon=True)
            for index in range(endpoint.max_concurrency)
        ]
        for thread in self._threads:
            thread.start()

    def _work(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                self._worker_ended()
                return
            try:
                self._run(self, job)
            except Exception:  # a worker must survive anything
                _log.exception("local SageMaker worker of %s failed", self.endpoint.name)

    def _worker_ended(self) -> None:
        with self._running_lock:
            self._running -= 1
            last = self._running == 0
        if last:
            self.release()

    def release(self) -> None:
        """Stop the model's worker processes, if it has any (the last thread does it on its way out)."""
        if isinstance(self.host, ProcessModelHost):
            self.host.close()

    def submit(self, job: Job) -> bool:
        """Queue ``job``; False when this pool was closed (replaced, removed or shut down) meanwhile."""
        with self._closing:
            if self.closed:
                return False
            self.jobs.put(job)
            return True

    def close(self, *, drop_queued: bool) -> list[Job]:
        """Stop the workers once the queue is done, or at once with ``drop_queued`` (jobs returned)."""
        with self._closing:
            if self.closed:
                return []
            self.closed = True
            pending: list[Job] = []
            while drop_queued:
                try:
                    job = self.jobs.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    pending.append(job)
            for _ in self._threads:
                self.jobs.put(None)
            return pending

    def join(self, deadline: float) -> None:
        """Wait for the workers until ``deadline`` (a ``time.monotonic()`` value)."""
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

"""In-memory fakes of the domain's ports, with the same semantics as the AWS adapters.

The prediction store mirrors DynamoPredictionStore: transitions are conditional on the current
status, dispatch is claimed with a lease and refused once ``dispatched_at`` is set, and records are
copied in and out (a caller never holds a live reference).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ensemble_gateway.domain.delivery import WebhookDelivery, WebhookResponse
from ensemble_gateway.domain.errors import WebhookTransportError
from ensemble_gateway.domain.lifecycle import Gateway, UseCases, compose
from ensemble_gateway.domain.models import (
    Batch,
    BatchOutcome,
    BatchStatus,
    Client,
    LineRange,
    Prediction,
    PredictionStatus,
    Service,
    ShadowOutcome,
    StepOutcome,
)
from ensemble_gateway.domain.ports import (
    GatewayConfig,
    GatewayPorts,
    PageCursor,
    PredictionPage,
    PredictionQuery,
    PresignedUpload,
    RealtimeResponse,
    StoredObject,
)
from ensemble_gateway.domain.steps import EnsembleSteps
from ensemble_gateway.domain.webhooks import CheckedWebhookTarget, new_webhook_secret

T0 = datetime(2026, 11, 22, 9, 0, 0, tzinfo=UTC)
BUCKET = "gw-data"


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now

    def set(self, moment: datetime) -> None:
        self.now = moment


class FakePredictionStore:
    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self.records: dict[str, dict[str, Any]] = {}
        self.idempotency: dict[tuple[str, str], str] = {}
        # When each key is forgotten: DynamoDB's marker lasts 24 h.
        self.idempotency_expires: dict[tuple[str, str], datetime] = {}
        self.transitions: list[tuple[str, PredictionStatus, PredictionStatus]] = []
        self.reads = 0  # get() calls, as DynamoDB GetItem

    def _load(self, prediction_id: str) -> Prediction | None:
        item = self.records.get(prediction_id)
        if item is None:
            return None
        return Prediction.model_validate({k: v for k, v in item.items() if k in Prediction.model_fields})

    def _apply(self, prediction_id: str, changes: Mapping[str, Any]) -> Prediction:
        item = self.records[prediction_id]
        # As in DynamoDB: updated_at is public, it does not move for the gateway's bookkeeping.
        if any(not _is_bookkeeping(name) for name in changes):
            changes = {**changes, "updated_at": self.clock()}
        for name, value in changes.items():
            if value is None:
                item.pop(name, None)
            elif hasattr(value, "model_dump"):
                item[name] = value.model_dump(mode="json")
            else:
                item[name] = value
        loaded = self._load(prediction_id)
        assert loaded is not None
        return loaded

    def create(self, prediction: Prediction, *, claim_dispatch_until: datetime | None = None) -> bool:
        key = (prediction.owner, prediction.idempotency_key or "")
        if prediction.prediction_id in self.records:
            return False
        if prediction.idempotency_key and self.idempotency_expires.get(key, self.clock()) > self.clock():
            return False
        self.records[prediction.prediction_id] = prediction.model_dump(mode="json")
        if claim_dispatch_until is not None:
            self.records[prediction.prediction_id]["dispatch_lease_until"] = claim_dispatch_until
        if prediction.idempotency_key:
            self.idempotency[key] = prediction.prediction_id
            self.idempotency_expires[key] = self.clock() + timedelta(hours=24)
        return True

    def get(self, prediction_id: str) -> Prediction | None:
        self.reads += 1
        return self._load(prediction_id)

    def find_by_idempotency_key(self, owner: str, key: str) -> Prediction | None:
        target = self.idempotency.get((owner, key))
        if target is None or self.idempotency_expires[(owner, key)] <= self.clock():
            return None
        return self._load(target)

    def transition(
        self,
        prediction_id: str,
        from_statuses: Iterable[PredictionStatus],
        to_status: PredictionStatus,
        changes: Mapping[str, Any] | None = None,
    ) -> Prediction | None:
        current = self._load(prediction_id)
        if current is None or current.status not in set(from_statuses):
            return None
        self.transitions.append((prediction_id, current.status, to_status))
        return self._apply(prediction_id, {**(changes or {}), "status": to_status.value})

    def claim_dispatch(self, prediction_id: str, now: datetime, lease_seconds: int) -> Prediction | None:
        current = self._load(prediction_id)
        if current is None or current.status is not PredictionStatus.RUNNING or current.dispatched_at:
            return None
        lease = self.records[prediction_id].get("dispatch_lease_until")
        if lease is not None and lease >= now:
            return None
        self.records[prediction_id]["dispatch_lease_until"] = now + timedelta(seconds=lease_seconds)
        return current

    def update(self, prediction_id: str, changes: Mapping[str, Any]) -> None:
        if prediction_id in self.records:
            self._apply(prediction_id, changes)

    def append_webhook_attempt(self, prediction_id: str, attempt: Mapping[str, Any]) -> None:
        if prediction_id not in self.records:
            return
        # DynamoDB keeps no None inside a value: the attempt reads back without those keys.
        kept = {name: value for name, value in attempt.items() if value is not None}
        self.records[prediction_id].setdefault("webhook_attempts", []).append(kept)

    def claim_webhook(self, prediction_id: str, event_type: str, now: datetime, lease_seconds: int) -> bool:
        if prediction_id not in self.records:
            return False
        lease_name = f"webhook_lease_{event_type.replace('.', '_')}"
        lease = self.records[prediction_id].get(lease_name)
        if lease is not None and lease >= now:
            return False
        self.records[prediction_id][lease_name] = now + timedelta(seconds=lease_seconds)
        return True

    def release_webhook(self, prediction_id: str, event_type: str) -> None:
        if prediction_id in self.records:
            self.records[prediction_id].pop(f"webhook_lease_{event_type.replace('.', '_')}", None)

    def record_step_outcome(self, parent_id: str, child_id: str, outcome: StepOutcome) -> Prediction | None:
        if parent_id not in self.records:
            return None
        # DynamoDB's item is at most 400 KB: an output that does not fit travels by reference only.
        if (
            outcome.inline
            and len(json.dumps(self.records[parent_id], default=str)) + len(outcome.model_dump_json()) > 400_000
        ):
            outcome = outcome.model_copy(update={"output": None, "inline": False})
        # Bookkeeping, as in DynamoDB: updated_at does not move.
        self.records[parent_id].setdefault("step_outputs", {})[child_id] = outcome.model_dump(mode="json")
        return self._load(parent_id)

    def record_shadow_outcome(self, primary_id: str, shadow_id: str, outcome: ShadowOutcome) -> bool:
        if primary_id not in self.records:
            return False
        # Bookkeeping, as in DynamoDB: updated_at does not move.
        self.records[primary_id].setdefault("shadow_outcomes", {})[shadow_id] = outcome.model_dump(mode="json")
        return True

    def children(self, parent_id: str) -> list[Prediction]:
        found = [self._load(pid) for pid, item in self.records.items() if item.get("parent_id") == parent_id]
        # DynamoDB's by-parent index sorts them by created_at.
        return sorted((p for p in found if p is not None), key=lambda p: p.created_at)

    def overdue(self, status: PredictionStatus, now: datetime, limit: int) -> list[Prediction]:
        found = []
        for prediction_id in list(self.records):
            prediction = self._load(prediction_id)
            if (
                prediction is not None
                and prediction.status is status
                and prediction.deadline_at is not None
                and prediction.deadline_at < now
            ):
                found.append(prediction)
        # DynamoDB's by-status-deadline index gives the earliest deadline first.
        found.sort(key=lambda p: p.deadline_at or self.clock())
        return found[:limit]

    def audit_pending(self, status: PredictionStatus, before: datetime, limit: int) -> list[Prediction]:
        found = [
            prediction
            for prediction in (self._load(prediction_id) for prediction_id in list(self.records))
            if prediction is not None
            and prediction.audit_pending == status.value
            and prediction.finished_at is not None
            and prediction.finished_at < before
        ]
        # DynamoDB's by-audit-pending index gives the earliest end first.
        found.sort(key=lambda p: p.finished_at or before)
        return found[:limit]

    def list_owned(self, query: PredictionQuery) -> PredictionPage:
        """Every match at once: the fake has no page budget, so a cursor means a full page."""
        matching = []
        for prediction_id in self.records:
            prediction = self._load(prediction_id)
            if (
                prediction is None
                or prediction.owner != query.owner
                or prediction.is_step
                or (prediction.expires_at is not None and prediction.expires_at < query.now.timestamp())
                or (query.status is not None and prediction.status is not query.status)
                or (query.service is not None and prediction.service != query.service)
                or (query.created_after is not None and prediction.created_at <= query.created_after)
            ):
                continue
            position = (prediction.created_at, prediction.prediction_id)
            if query.after is not None and position >= (query.after.created_at, query.after.prediction_id):
                continue
            matching.append(prediction)
        # DynamoDB's by-owner index, read backwards: the newest first.
        matching.sort(key=lambda p: (p.created_at, p.prediction_id), reverse=True)
        page = matching[: query.limit]
        more = len(matching) > query.limit
        cursor = PageCursor(page[-1].created_at, page[-1].prediction_id) if more and page else None
        return PredictionPage(page, cursor)

    def scan_service(
        self, service: str, *, since: datetime | None = None, limit: int = 1000, shadows: bool = False
    ) -> list[Prediction]:
        """As DynamoPredictionStore's: a service's records (steps too), oldest first, at most ``limit``."""
        found = []
        for prediction_id in self.records:
            prediction = self._load(prediction_id)
            if (
                prediction is None
                or prediction.service != service
                or (since is not None and prediction.created_at < since)
                or (prediction.is_shadow and not shadows)
            ):
                continue
            found.append(prediction)
        return sorted(found[:limit], key=lambda p: (p.created_at, p.prediction_id))


def _is_bookkeeping(field: str) -> bool:
    """As the DynamoDB adapter: the gateway's own coordination, invisible in the public document."""
    return field in ("dispatch_lease_until", "dispatched_at", "shadow_versions", "audit_pending") or field.startswith(
        "webhook_lease_"
    )


class FakeCatalog:
    def __init__(self, services: Iterable[Service] = ()) -> None:
        self.services = {s.name: s for s in services}
        self.reads = 0  # get/get_many/list calls

    def get(self, name: str) -> Service | None:
        self.reads += 1
        return self.services.get(name)

    def get_many(self, names: Iterable[str]) -> dict[str, Service]:
        self.reads += 1
        return {name: self.services[name] for name in names if name in self.services}

    def list(self, active_only: bool = True) -> list[Service]:
        self.reads += 1
        return sorted((s for s in self.services.values() if s.active or not active_only), key=lambda s: s.name)

    def put(self, service: Service) -> None:
        self.services[service.name] = service

    def put_if_unchanged(self, service: Service, expected: Service | None) -> bool:
        """As DynamoServiceCatalog's: written only if the entry is still ``expected``."""
        if self.services.get(service.name) != expected:
            return False
        self.services[service.name] = service
        return True


class FakeObjectStore:
    def __init__(self, clock: Callable[[], datetime], bucket: str = BUCKET) -> None:
        self.clock = clock
        self.bucket = bucket
        self.objects: dict[str, tuple[bytes, str]] = {}
        self.presigned_uploads: list[tuple[str, str, int, int]] = []
        self.range_reads = 0

    def presign_upload(self, key: str, content_type: str, max_bytes: int, expires_in: int) -> PresignedUpload:
        self.presigned_uploads.append((key, content_type, max_bytes, expires_in))
        return PresignedUpload(
            url=f"https://{self.bucket}.s3.amazonaws.com/",
            fields={"key": key, "Content-Type": content_type, "policy": "e30=", "x-amz-signature": "00"},
            expires_at=self.clock() + timedelta(seconds=expires_in),
            max_bytes=max_bytes,
        )

    def presign_download(self, uri: str, expires_in: int) -> str:
        return f"https://{self.bucket}.s3.amazonaws.com/{uri.split('/', 3)[3]}?X-Amz-Expires={expires_in}"

    def read(self, uri: str) -> bytes:
        return self.objects[uri][0]

    def write(self, key: str, body: bytes, content_type: str) -> str:
        uri = f"s3://{self.bucket}/{key}"
        self.objects[uri] = (body, content_type)
        return uri

    def accept_upload(self, upload_key: str, input_key: str) -> StoredObject | None:
        source = self.objects.get(f"s3://{self.bucket}/{upload_key}")
        if source is None:
            return None
        self.objects[f"s3://{self.bucket}/{input_key}"] = source
        return StoredObject(sha256=hashlib.sha256(source[0]).hexdigest(), size=len(source[0]))

    def delete(self, key: str) -> None:
        self.objects.pop(f"s3://{self.bucket}/{key}", None)

    def describe(self, uri: str) -> StoredObject | None:
        stored = self.objects.get(uri)
        if stored is None:
            return None
        return StoredObject(sha256=hashlib.sha256(stored[0]).hexdigest(), size=len(stored[0]))

    def put_upload(self, key: str, body: bytes, content_type: str = "application/json") -> str:
        """What the client's upload leaves in the bucket."""
        return self.write(key, body, content_type)

    def read_range(self, uri: str, start: int, end: int) -> bytes:
        self.range_reads += 1
        if uri not in self.objects:
            raise LookupError(f"no object at {uri}")
        return self.objects[uri][0][start : end + 1]

    def copy_from(self, source_uri: str, key: str) -> StoredObject | None:
        source = self.objects.get(source_uri)
        if source is None:
            return None
        self.objects[f"s3://{self.bucket}/{key}"] = source
        return StoredObject(sha256=hashlib.sha256(source[0]).hexdigest(), size=len(source[0]))


class FakeAuditSink:
    """The audit store: the records it took, in order; ``fail_next`` refuses that many puts."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.fail_next = 0

    def put(self, records: list[dict[str, Any]]) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("the audit stream is unreachable")
        # A copy through JSON: what the stream carries, and no live references.
        self.records += [json.loads(json.dumps(record)) for record in records]

    def of(self, prediction_id: str) -> list[dict[str, Any]]:
        return [record for record in self.records if record["prediction_id"] == prediction_id]


class FakeMetricsSink:
    """CloudWatch: each set put, as (values, dimensions)."""

    def __init__(self) -> None:
        self.sets: list[tuple[dict[str, tuple[float, str]], dict[str, str]]] = []

    def put(self, values: Mapping[str, tuple[float, str]], dimensions: Mapping[str, str]) -> None:
        self.sets.append((dict(values), dict(dimensions)))

    def of(self, **dimensions: str) -> list[dict[str, tuple[float, str]]]:
        return [values for values, dims in self.sets if dims == dimensions]


class FakeModelRuntime:
    """Records invocations; real-time calls answer ``realtime_answer`` (or raise it)."""

    def __init__(self) -> None:
        self.async_calls: list[dict[str, Any]] = []
        self.realtime_calls: list[dict[str, Any]] = []
        self.async_error: Exception | None = None
        self.realtime_answer: RealtimeResponse | Exception = RealtimeResponse(
            body=b'{"score": 0.5}', content_type="application/json", invoked_variant="AllTraffic"
        )

    def invoke_async(
        self,
        endpoint: str,
        input_uri: str,
        content_type: str,
        inference_id: str,
        timeout_seconds: int,
        request_ttl_seconds: int = 3600,
        *,
        accept: str,
    ) -> str:
        self.async_calls.append(
            {
                "endpoint": endpoint,
                "input_uri": input_uri,
                "request_ttl_seconds": request_ttl_seconds,
                "content_type": content_type,
                "accept": accept,
                "inference_id": inference_id,
                "timeout_seconds": timeout_seconds,
            }
        )
        if self.async_error is not None:
            raise self.async_error
        return f"s3://{BUCKET}/outputs/{inference_id}.out"

    def invoke_realtime(
        self, endpoint: str, body: bytes, content_type: str, inference_id: str, *, accept: str
    ) -> RealtimeResponse:
        self.realtime_calls.append(
            {
                "endpoint": endpoint,
                "body": body,
                "content_type": content_type,
                "accept": accept,
                "inference_id": inference_id,
            }
        )
        if isinstance(self.realtime_answer, Exception):
            raise self.realtime_answer
        return self.realtime_answer


class FakeWorkflows:
    """A task token answers once; later answers are stale (False), as Step Functions reports."""

    def __init__(self) -> None:
        self.started: list[tuple[str, str, Mapping[str, Any]]] = []
        self.answers: list[tuple[str, str, Any]] = []
        self.answered: set[str] = set()
        # (state machine ARN, execution name, error, cause) of every stop request.
        self.stopped: list[tuple[str, str, str, str]] = []
        self.stop_error: Exception | None = None

    def start(self, state_machine_arn: str, name: str, payload: Mapping[str, Any]) -> str:
        self.started.append((state_machine_arn, name, payload))
        return f"{state_machine_arn}:{name}"

    def succeed_task(self, token: str, output: Mapping[str, Any]) -> bool:
        self.answers.append((token, "success", dict(output)))
        if token in self.answered:
            return False
        self.answered.add(token)
        return True

    def fail_task(self, token: str, error: str, cause: str) -> bool:
        self.answers.append((token, "failure", {"error": error, "cause": json.loads(cause)}))
        if token in self.answered:
            return False
        self.answered.add(token)
        return True

    def stop(self, state_machine_arn: str, name: str, error: str, cause: str) -> bool:
        if self.stop_error is not None:
            raise self.stop_error
        self.stopped.append((state_machine_arn, name, error, cause))
        return any(arn == state_machine_arn and started == name for arn, started, _ in self.started)


class FakeWebhookQueue:
    def __init__(self) -> None:
        self.jobs: list[tuple[dict[str, Any], int]] = []
        self.dead: list[dict[str, Any]] = []

    def enqueue(self, job: Mapping[str, Any], delay_seconds: int) -> None:
        # Through JSON, as SQS carries it.
        self.jobs.append((json.loads(json.dumps(job, default=str)), delay_seconds))

    def dead_letter(self, job: Mapping[str, Any]) -> None:
        self.dead.append(json.loads(json.dumps(job, default=str)))

    def take(self) -> list[dict[str, Any]]:
        """Receive (and remove) every queued job."""
        jobs = [job for job, _ in self.jobs]
        self.jobs.clear()
        return jobs


class FakeBatchStore:
    """Batches and their items' outcomes, with DynamoBatchStore's conditions: the cursor moves
    from the value read, an outcome is recorded (and counted) once, statuses move conditionally."""

    COUNTERS = {
        PredictionStatus.COMPLETED: "completed",
        PredictionStatus.FAILED: "failed",
        PredictionStatus.EXPIRED: "failed",
        PredictionStatus.CANCELLED: "cancelled",
        PredictionStatus.SKIPPED: "cancelled",
    }

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self.records: dict[str, dict[str, Any]] = {}
        self.lines: dict[str, dict[int, BatchOutcome]] = {}
        self.idempotency: dict[tuple[str, str], str] = {}
        # Raised by the next record_outcome (a crash of the store mid-batch), then cleared.
        self.fail_next_outcome: Exception | None = None

    def _load(self, batch_id: str) -> Batch | None:
        item = self.records.get(batch_id)
        return Batch.model_validate(item) if item is not None else None

    def _apply(self, batch_id: str, changes: Mapping[str, Any]) -> Batch:
        item = self.records[batch_id]
        for name, value in changes.items():
            if value is None:
                item.pop(name, None)
            elif hasattr(value, "model_dump"):
                item[name] = value.model_dump(mode="json")
            else:
                item[name] = value
        item["updated_at"] = self.clock()
        loaded = self._load(batch_id)
        assert loaded is not None
        return loaded

    def create(self, batch: Batch) -> bool:
        key = (batch.owner, batch.idempotency_key) if batch.idempotency_key else None
        if batch.batch_id in self.records or (key is not None and key in self.idempotency):
            return False
        self.records[batch.batch_id] = batch.model_dump(mode="json")
        if key is not None:
            self.idempotency[key] = batch.batch_id
        return True

    def get(self, batch_id: str) -> Batch | None:
        return self._load(batch_id)

    def find_by_idempotency_key(self, owner: str, key: str) -> Batch | None:
        batch_id = self.idempotency.get((owner, key))
        return self._load(batch_id) if batch_id else None

    def transition(
        self,
        batch_id: str,
        from_statuses: Iterable[BatchStatus],
        to_status: BatchStatus,
        changes: Mapping[str, Any] | None = None,
    ) -> Batch | None:
        current = self._load(batch_id)
        if current is None or current.status not in set(from_statuses):
            return None
        return self._apply(batch_id, {**(changes or {}), "status": to_status.value})

    def update(self, batch_id: str, changes: Mapping[str, Any]) -> None:
        if batch_id in self.records:
            self._apply(batch_id, changes)

    def take_lines(self, batch_id: str, expected_next_line: int, taken: LineRange, next_offset: int) -> Batch | None:
        current = self._load(batch_id)
        if (
            current is None
            or current.status is not BatchStatus.RUNNING
            or current.next_line != expected_next_line
            or current.pending_range is not None
        ):
            return None
        now = self.clock()
        return self._apply(
            batch_id,
            {
                "next_line": expected_next_line + taken.count,
                "next_offset": next_offset,
                "pending_range": taken,
                "due_at": now + timedelta(seconds=120),
            },
        )

    def release_lines(self, batch_id: str, first_line: int) -> None:
        current = self._load(batch_id)
        if current is not None and current.pending_range is not None and current.pending_range.first_line == first_line:
            self._apply(batch_id, {"pending_range": None})

    def record_outcome(self, batch_id: str, outcome: BatchOutcome, now: datetime) -> bool:
        if self.fail_next_outcome is not None:
            error, self.fail_next_outcome = self.fail_next_outcome, None
            raise error
        if batch_id not in self.records:
            return False
        lines = self.lines.setdefault(batch_id, {})
        if outcome.line in lines:
            return False
        lines[outcome.line] = outcome.model_copy(deep=True)
        counter = self.COUNTERS[outcome.status]
        item = self.records[batch_id]
        item[counter] = int(item.get(counter, 0)) + 1
        item["due_at"] = (now + timedelta(seconds=120)).isoformat()
        return True

    def outcomes(self, batch_id: str) -> list[BatchOutcome]:
        return [self.lines[batch_id][line].model_copy(deep=True) for line in sorted(self.lines.get(batch_id, {}))]

    def due(self, status: BatchStatus, now: datetime, limit: int) -> list[Batch]:
        found = [
            batch
            for batch in (self._load(batch_id) for batch_id in self.records)
            if batch is not None and batch.status is status and batch.due_at is not None and batch.due_at < now
        ]
        return sorted(found, key=lambda b: b.due_at or now)[:limit]

    def append_webhook_attempt(self, batch_id: str, attempt: Mapping[str, Any]) -> None:
        self.records[batch_id].setdefault("webhook_attempts", []).append(dict(attempt))

    def claim_webhook(self, batch_id: str, event_type: str, now: datetime, lease_seconds: int) -> bool:
        leases = self.records[batch_id].setdefault("_leases", {})
        held = leases.get(event_type)
        if held is not None and held >= now:
            return False
        leases[event_type] = now + timedelta(seconds=lease_seconds)
        return True

    def release_webhook(self, batch_id: str, event_type: str) -> None:
        self.records[batch_id].get("_leases", {}).pop(event_type, None)

    def running_items(self, predictions: FakePredictionStore, batch_id: str) -> int:
        """How many of the batch's items are RUNNING in the prediction store right now."""
        prefix = f"{batch_id}-"
        return sum(
            1 for pid, item in predictions.records.items() if pid.startswith(prefix) and item["status"] == "RUNNING"
        )


class FakeBatchQueue:
    """The batch queue: ticks pile up until a test (playing the driver function) takes them."""

    def __init__(self) -> None:
        self.jobs: list[dict[str, Any]] = []

    def enqueue(self, job: Mapping[str, Any]) -> None:
        self.jobs.append(dict(job))

    def take(self) -> list[dict[str, Any]]:
        jobs, self.jobs = self.jobs, []
        return jobs


class FakeDispatchQueue:
    """process-input's queue for hand-overs: keeps each prediction ID, or refuses the next
    ``fail_next`` as an unreachable queue does."""

    def __init__(self) -> None:
        self.handed_over: list[str] = []
        self.fail_next = 0

    def enqueue(self, prediction_id: str) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("queue unreachable")
        self.handed_over.append(prediction_id)


class FakeShadowQueue:
    """The shadow queue: keeps each job (through JSON, as SQS carries it), or refuses the next
    ``fail_next`` as an unreachable queue does."""

    def __init__(self) -> None:
        self.jobs: list[dict[str, Any]] = []
        self.fail_next = 0

    def enqueue(self, job: Mapping[str, Any]) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("SQS did not take the shadow job: AWS.SimpleQueueService.NonExistentQueue")
        self.jobs.append(json.loads(json.dumps(job, default=str)))

    def take(self) -> list[dict[str, Any]]:
        """Receive (and remove) every queued job."""
        jobs = list(self.jobs)
        self.jobs.clear()
        return jobs


@dataclass
class PublishedEvent:
    detail_type: str
    detail: dict[str, Any]


class FakeEventPublisher:
    """The gateway's event bus: keeps each event (through JSON, as the adapter sends it), or fails
    the next ``fail_next`` publishes as a refused PutEvents entry does."""

    def __init__(self) -> None:
        self.events: list[PublishedEvent] = []
        self.fail_next = 0

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError(f"EventBridge did not take the {detail_type} event: InternalFailure")
        self.events.append(PublishedEvent(detail_type, json.loads(json.dumps(detail, default=str))))

    def of(self, prediction_id: str) -> list[PublishedEvent]:
        return [e for e in self.events if e.detail["data"]["prediction_id"] == prediction_id]


class FakeClients:
    def __init__(self, clients: Iterable[Client] = ()) -> None:
        self.clients = {c.client_id: c for c in clients}

    def get(self, client_id: str) -> Client | None:
        return self.clients.get(client_id)

    def by_api_key_hash(self, api_key_hash: str) -> Client | None:
        return next((c for c in self.clients.values() if c.api_key_hash == api_key_hash), None)

    def by_principal(self, principal_arn: str) -> Client | None:
        return next((c for c in self.clients.values() if c.principal_arn == principal_arn), None)

    def put(self, client: Client) -> None:
        self.clients[client.client_id] = client


@dataclass
class SentWebhook:
    target: CheckedWebhookTarget
    headers: dict[str, str]
    body: str


class FakeSender:
    """Answers each POST with the next scripted answer (an HTTP status, a response or an error)."""

    def __init__(self, *answers: int | WebhookResponse | Exception) -> None:
        self.answers: list[int | WebhookResponse | Exception] = list(answers)
        self.sent: list[SentWebhook] = []

    def post(self, target: CheckedWebhookTarget, headers: Mapping[str, str], body: str) -> WebhookResponse:
        self.sent.append(SentWebhook(target, dict(headers), body))
        answer = self.answers.pop(0) if self.answers else 204
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, int):
            return WebhookResponse(status=answer)
        return answer


class FakeResolver:
    """DNS: host → addresses; an IP literal resolves to itself; anything else does not resolve."""

    def __init__(self, hosts: Mapping[str, Iterable[str]] | None = None) -> None:
        self.hosts = {k: list(v) for k, v in (hosts or {}).items()}
        self.lookups: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        import ipaddress
        import socket

        self.lookups.append(host)
        if host in self.hosts:
            return self.hosts[host]
        try:
            return [str(ipaddress.ip_address(host))]
        except ValueError:
            raise socket.gaierror(-2, "Name or service not known") from None


class FakeLogger:
    """Keeps what the gateway logs: (message, fields) pairs."""

    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, Any]]] = []

    def info(self, message: str, extra: Mapping[str, Any] | None = None) -> None:
        self.records.append((message, dict(extra or {})))

    def fields_of(self, message: str) -> list[dict[str, Any]]:
        return [fields for logged, fields in self.records if logged == message]


def transport_error(message: str = "timed out") -> WebhookTransportError:
    return WebhookTransportError(message)


def model_service(name: str = "fraud-score", invocation: str = "async", **extra: Any) -> Service:
    return Service.model_validate(
        {
            "name": name,
            "kind": "model",
            "version": "1.0.0",
            "model": {"endpoint_name": f"{name}-endpoint", "invocation": invocation, "invocation_timeout_seconds": 300},
            **extra,
        }
    )


def new_client(client_id: str = "c_owner", secrets: list[str] | None = None) -> Client:
    return Client(
        client_id=client_id,
        name=client_id,
        webhook_secrets=secrets if secrets is not None else [new_webhook_secret()],
    )


@dataclass
class World:
    """The use cases wired to fakes (each, and all behind the Gateway facade), plus the fakes for a
    test to inspect and steer."""

    clock: FakeClock
    store: FakePredictionStore
    catalog: FakeCatalog
    objects: FakeObjectStore
    models: FakeModelRuntime
    workflows: FakeWorkflows
    webhooks: FakeWebhookQueue
    resolver: FakeResolver
    clients: FakeClients
    gateway: Gateway
    # None: a gateway deployed without an event bus.
    events: FakeEventPublisher | None = None
    sender: FakeSender = field(default_factory=FakeSender)
    shadow_queue: FakeShadowQueue = field(default_factory=FakeShadowQueue)
    # None: a gateway without an audit store (records stay pending).
    audit: FakeAuditSink | None = None
    metrics: FakeMetricsSink | None = None
    batch_store: FakeBatchStore | None = None
    batch_queue: FakeBatchQueue = field(default_factory=FakeBatchQueue)
    dispatch_queue: FakeDispatchQueue = field(default_factory=FakeDispatchQueue)

    def run_batch_ticks(self, limit: int = 10_000) -> int:
        """Play the batch-driver function: run every queued tick (and those they queue); how many."""
        driver = self.use_cases.batch_driver
        assert driver is not None
        ran = 0
        while self.batch_queue.jobs and ran < limit:
            job = self.batch_queue.jobs.pop(0)
            driver.tick(job["batch_id"], reconcile=bool(job.get("reconcile")))
            ran += 1
        return ran

    @property
    def use_cases(self) -> UseCases:
        return self.gateway.use_cases

    def steps(self) -> EnsembleSteps:
        """get-transform-call's use case, over the same ports and use cases."""
        built = self.use_cases
        return EnsembleSteps(
            ports=built.ports,
            dispatch=built.dispatch,
            completion=built.completion,
            ensembles=built.ensembles,
            shadows=built.shadows,
        )

    def run_shadow_dispatches(self) -> int:
        """Play the shadow-dispatch function: dispatch every queued shadow; how many jobs."""
        jobs = self.shadow_queue.take()
        for job in jobs:
            self.use_cases.shadows.dispatch(job["shadow_id"])
        return len(jobs)

    def delivery(self, sender: FakeSender | None = None, jitter: float = 0.0) -> WebhookDelivery:
        if sender is not None:
            self.sender = sender
        return WebhookDelivery(
            ports=self.use_cases.ports,
            documents=self.use_cases.read_model,
            clients=self.clients,
            sender=self.sender,
            clock=self.clock,
            random=lambda: jitter,
            auditing=self.use_cases.auditing,
            metering=self.use_cases.metering,
        )


def make_world(
    services: Iterable[Service] = (),
    clients: Iterable[Client] = (),
    hosts: Mapping[str, Iterable[str]] | None = None,
    allow_loopback_http: bool = False,
    event_bus: bool = True,
    audit: bool = False,
    metrics: bool = False,
) -> World:
    clock = FakeClock()
    store = FakePredictionStore(clock)
    catalog = FakeCatalog(services)
    objects = FakeObjectStore(clock)
    models = FakeModelRuntime()
    workflows = FakeWorkflows()
    webhooks = FakeWebhookQueue()
    resolver = FakeResolver({"hooks.example.com": ["93.184.216.34"], **(hosts or {})})
    directory = FakeClients(clients)
    events = FakeEventPublisher() if event_bus else None
    shadow_queue = FakeShadowQueue()
    batch_store = FakeBatchStore(clock)
    batch_queue = FakeBatchQueue()
    dispatch_queue = FakeDispatchQueue()
    ports = GatewayPorts(
        config=GatewayConfig(
            region="us-east-1",
            upload_expiry_seconds=900,
            result_url_expiry_seconds=3600,
            retention_days=30,
            allow_loopback_http_webhooks=allow_loopback_http,
        ),
        predictions=store,
        catalog=catalog,
        objects=objects,
        models=models,
        workflows=workflows,
        webhooks=webhooks,
        resolve=resolver,
        clock=clock,
    )
    audit_sink = FakeAuditSink() if audit else None
    metrics_sink = FakeMetricsSink() if metrics else None
    gateway = Gateway(
        compose(
            ports,
            events=events,
            shadow_queue=shadow_queue,
            audit_sink=audit_sink,
            metrics=metrics_sink,
            batch_store=batch_store,
            batch_queue=batch_queue,
            bucket=BUCKET,
            batch_source_buckets=("client-data",),
            dispatch_queue=dispatch_queue,
        )
    )
    return World(
        clock,
        store,
        catalog,
        objects,
        models,
        workflows,
        webhooks,
        resolver,
        directory,
        gateway,
        events=events,
        shadow_queue=shadow_queue,
        audit=audit_sink,
        metrics=metrics_sink,
        batch_store=batch_store,
        batch_queue=batch_queue,
        dispatch_queue=dispatch_queue,
    )

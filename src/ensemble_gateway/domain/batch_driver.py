"""The batch driver: a batch's manifest becomes items (predictions) at most ``max_concurrency`` at
a time, and its result file once every item has ended.

Everything is driven by *ticks*, messages ``{"batch_id"}`` on the batch queue: the manifest's
arrival, every item's end (``notifiers/batch.py``), a cancel, and the sweeper for a batch with no
progress for two minutes. A tick is idempotent and may run beside another tick of the same batch:

- lines are *taken* with one conditional write (the cursor moves from the value the tick read, and
  only while no other range is pending): two ticks never take the same lines, and the number of
  items running never exceeds ``max_concurrency`` (running is counted from the cursor and from the
  outcomes recorded, which only grow: a tick's view of it is never too low);
- the taken range stays on the batch until every one of its items exists and was dispatched (or
  has ended): a tick that crashed half-way is redone by the next one, and item IDs are derived
  from the batch ID and the line (``{batch_id}-{line:06d}``), so a redone item is found, never
  created twice, and dispatched once (Dispatch's claim);
- each item's end is counted once (``BatchStore.record_outcome``: the outcome and the count in
  one transaction, refused for a line already recorded).

Why not a lease on the batch, as first designed: a tick that finds the lease taken would have to
drop its message (and the holder could miss the item end it announced) or requeue it; a crashed
holder would stall the batch until the lease expired. The conditional cursor needs neither.

Why not a Step Functions Distributed Map: see the README (cost per state transition, and a Map
cannot wait on the gateway's own callbacks cheaply).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .batches import MAX_MANIFEST_BYTES, MAX_MANIFEST_LINES, check_source
from .errors import ConflictError, InvalidRequestError, NotFoundError
from .media_types import is_json_type, media_type
from .models import (
    Batch,
    BatchOutcome,
    BatchStatus,
    Callback,
    CallbackKind,
    Client,
    InputInfo,
    LineRange,
    ModelInfo,
    Prediction,
    PredictionError,
    PredictionStatus,
    Service,
    batch_item_id,
)
from .records import (
    DEADLINE_MARGIN_SECONDS,
    accepted_manifest_key,
    batch_id_from_manifest_key,
    batch_result_key,
    input_key,
    manifest_upload_key,
)
from .request_json import RequestBodyError, parse_request_json
from .rollout import NoServingVersionError, draw

if TYPE_CHECKING:
    from .batches import Batches
    from .cancellation import Cancellation
    from .dispatch import Dispatch
    from .notifiers import Notifiers
    from .ports import BatchQueue, BatchStore, EventPublisher, GatewayPorts

RUNNING = BatchStatus.RUNNING
STOPPED = (BatchStatus.FAILED, BatchStatus.CANCELLED)
#: A batch with no progress for this long is ticked again by the sweeper.
STALL_SECONDS = 120
#: Manifest bytes read per ranged GET.
CHUNK_BYTES = 1024 * 1024
#: Rounds of "take lines, start them" in one tick before it hands over to a new tick.
MAX_ROUNDS = 20


def batch_event_type(batch: Batch) -> str:
    """``batch.completed|completed_with_failures|failed|cancelled``."""
    return f"batch.{batch.status.value.lower()}"


@dataclass
class BatchDriver:
    """Ticks of batches (the batch-driver function), and the manifest's arrival.

    Parameters
    ----------
    ports
        The gateway's shared ports (predictions, catalog, objects, webhooks, clock).
    notifiers
        Counts a bad line's FAILED item into its batch, as any item's end.
    store, queue
        The batches, and the queue of their ticks.
    dispatch
        Sends each item to its model or ensemble (version draws and shadows apply).
    cancellation
        Cancels the running items of a cancelled batch.
    batches
        Renders the batch's document (its webhook's or event's ``data``).
    events
        The gateway's event bus (None: it has none).
    source_buckets, bucket
        The buckets a manifest line's ``s3_uri`` may name, and the gateway's own (never one).
    """

    ports: GatewayPorts
    notifiers: Notifiers
    store: BatchStore
    queue: BatchQueue
    dispatch: Dispatch
    cancellation: Cancellation
    batches: Batches
    events: EventPublisher | None = None
    source_buckets: tuple[str, ...] = ()
    bucket: str | None = None

    # -- the manifest arrives ---------------------------------------------------------------
    def manifest_uploaded(self, bucket: str, key: str) -> None:
        """Handle one S3 ``ObjectCreated`` event of ``batches/{id}/manifest.jsonl``: accept the
        manifest once (a duplicate event, or a second upload, changes nothing), then tick."""
        batch_id = batch_id_from_manifest_key(key)
        if batch_id is None:
            self.ports.log("ignoring object that is no batch manifest", key=key)
            return
        self.tick(batch_id)

    def _accept_manifest(self, batch: Batch) -> None:
        """Copy the manifest to the key the ticks read (fixed from now on) and start the batch.

        An uploaded manifest that is not there yet (a tick before the upload) is waited for; one
        given by ``manifest_uri`` that cannot be copied fails the batch with the reason.
        """
        ports = self.ports
        key = accepted_manifest_key(batch.batch_id)
        if batch.manifest_uri is not None:
            stored = ports.objects.copy_from(batch.manifest_uri, key)
            if stored is None:
                reason = (
                    f"the manifest {batch.manifest_uri[:300]} could not be read "
                    "(does it exist, and may the gateway read it?)"
                )
                self._stop(batch, [BatchStatus.PENDING_UPLOAD], "ManifestUnreadable", reason)
                return
        else:
            stored = ports.objects.accept_upload(manifest_upload_key(batch.batch_id), key)
            if stored is None:
                ports.log("no manifest to accept yet", batch_id=batch.batch_id)
                return
        now = ports.clock()
        moved = self.store.transition(
            batch.batch_id,
            [BatchStatus.PENDING_UPLOAD],
            RUNNING,
            {
                "accepted_manifest_uri": self._own_uri(key),
                "manifest_sha256": stored.sha256,
                "manifest_size": stored.size,
                "started_at": now,
                "due_at": now + timedelta(seconds=STALL_SECONDS),
            },
        )
        if moved is not None:
            ports.log("batch manifest accepted", batch_id=batch.batch_id, size=stored.size, sha256=stored.sha256)

    def _own_uri(self, key: str) -> str:
        """The URI of ``key`` in the gateway's bucket (where the driver's copies are made)."""
        assert self.bucket, "the batch driver is wired with the gateway's bucket"
        return f"s3://{self.bucket}/{key}"

    # -- a tick ----------------------------------------------------------------------------
    def tick(self, batch_id: str, *, reconcile: bool = False) -> None:
        """Move the batch as far as it can go now: accept its manifest, count its lines, start
        items in the free slots, stop it at its failure threshold, cancel a cancelled batch's
        running items, and write the result once every started item has ended.

        ``reconcile`` (the sweeper's ticks): also look at every started item not yet counted,
        and count those that ended (an item end whose count was lost).
        """
        for _ in range(MAX_ROUNDS):
            batch = self.store.get(batch_id)
            if batch is None:
                self.ports.log("tick for an unknown batch", batch_id=batch_id)
                return
            if not self._step(batch, reconcile=reconcile):
                return
            reconcile = False
        # More to do than one tick does: the next one goes on.
        self.queue.enqueue({"batch_id": batch_id})

    def _step(self, batch: Batch, *, reconcile: bool) -> bool:
        """One move of the batch; whether another move may follow at once."""
        if batch.finished_at is not None:
            if batch.notified_at is None:
                self._announce(batch)
            return False
        if batch.status is BatchStatus.PENDING_UPLOAD:
            self._accept_manifest(batch)
            current = self.store.get(batch.batch_id)
            return current is not None and current.status is not BatchStatus.PENDING_UPLOAD
        if batch.total is None:
            if batch.status in STOPPED or batch.accepted_manifest_uri is None:
                # Stopped before its manifest was read: no line ever started.
                self.store.update(batch.batch_id, {"total": 0})
                return True
            return self._count_lines(batch)
        if batch.status in STOPPED or reconcile:
            self._settle_started(batch)
            batch = self.store.get(batch.batch_id) or batch
        total = batch.total or 0
        if batch.pending_range is not None:
            if batch.status is RUNNING:
                return self._start_range(batch, batch.pending_range)
            return False
        if batch.ended >= batch.started and (batch.status in STOPPED or batch.started >= total):
            self._finish(batch)
            return False
        if batch.status is not RUNNING:
            return False
        if batch.failed * 100 > batch.tolerated_failure_percent * total:
            self._stop(
                batch,
                [RUNNING],
                "FailureThreshold",
                f"{batch.failed} of {total} lines failed, more than the tolerated "
                f"{batch.tolerated_failure_percent}%: no new item starts",
            )
            return True
        free = batch.max_concurrency - batch.running
        if free <= 0 or batch.started >= total:
            return False
        return self._take_and_start(batch, min(free, total - batch.started))

    def _count_lines(self, batch: Batch) -> bool:
        """Count the manifest's lines once (a trailing newline ends the last line, it starts none)."""
        assert batch.accepted_manifest_uri is not None
        size = batch.manifest_size or 0
        if size > MAX_MANIFEST_BYTES:
            self._stop(batch, [RUNNING], "ManifestTooLarge", f"the manifest is larger than {MAX_MANIFEST_BYTES} bytes")
            return True
        lines = 0
        last = b"\n"
        for start in range(0, size, 8 * CHUNK_BYTES):
            chunk = self.ports.objects.read_range(
                batch.accepted_manifest_uri, start, min(size, start + 8 * CHUNK_BYTES) - 1
            )
            lines += chunk.count(b"\n")
            if chunk:
                last = chunk[-1:]
        if last != b"\n":
            lines += 1
        if lines == 0:
            self._stop(batch, [RUNNING], "EmptyManifest", "the manifest has no lines")
            return True
        if lines > MAX_MANIFEST_LINES:
            self._stop(
                batch, [RUNNING], "ManifestTooLarge", f"the manifest has {lines} lines, more than {MAX_MANIFEST_LINES}"
            )
            return True
        self.store.update(batch.batch_id, {"total": lines})
        self.ports.log("batch manifest counted", batch_id=batch.batch_id, lines=lines)
        return True

    def _take_and_start(self, batch: Batch, count: int) -> bool:
        service = self.ports.catalog.get(batch.service)
        _, end_offset = self._read_lines(batch, batch.next_offset, count, self._max_bytes(service))
        taken = LineRange(first_line=batch.next_line, first_offset=batch.next_offset, count=count)
        moved = self.store.take_lines(batch.batch_id, batch.next_line, taken, end_offset)
        if moved is None:
            # Another tick took them, or the batch stopped: decide again on what it is now.
            return True
        return self._start_range(moved, taken, service)

    def _start_range(self, batch: Batch, taken: LineRange, service: Service | None = None) -> bool:
        """Make every line of ``taken`` an item that was dispatched (or has ended), then release
        the range. Redone as a whole by the next tick when this one crashes."""
        service = service or self.ports.catalog.get(batch.service)
        lines, _ = self._read_lines(batch, taken.first_offset, taken.count, self._max_bytes(service))
        settled = True
        for index, raw in enumerate(lines):
            line = taken.first_line + index
            if not self._start_item(batch, service, line, raw):
                settled = False
        for line in range(taken.first_line + len(lines), taken.first_line + taken.count):
            # The manifest ended before the lines it was counted with (it cannot, once accepted).
            self._fail_line(batch, line, "InvalidLine", "the manifest has no such line")
        if settled:
            self.store.release_lines(batch.batch_id, taken.first_line)
        else:
            # Another dispatcher holds an item (or crashed holding it: its lease expires): the
            # next tick (an item's end, the sweeper) redoes the range.
            self.ports.log("batch range left pending: an item's dispatch is held", batch_id=batch.batch_id)
        return settled

    def _start_item(self, batch: Batch, service: Service | None, line: int, raw: bytes | None) -> bool:
        """Create and dispatch the item of ``line`` unless an earlier attempt did; whether it is
        now dispatched or ended."""
        ports = self.ports
        item_id = batch_item_id(batch.batch_id, line)
        existing = ports.predictions.get(item_id)
        if existing is None:
            if service is None:
                return self._fail_line(batch, line, "ServiceGone", f"service '{batch.service}' no longer exists")
            try:
                body, content_type = self._item_input(batch, service, item_id, raw)
            except _LineError as error:
                return self._fail_line(batch, line, error.code, error.message)
            existing = self._create_item(batch, service, line, item_id, body, content_type)
        if existing.status.is_terminal:
            # Ended (or a bad line): its count may not have been made (a crash): it is made once.
            self.notifiers.notify(existing)
            return True
        if existing.dispatched_at is None:
            self.dispatch.dispatch(item_id, service)
            current = ports.predictions.get(item_id)
            return current is not None and (current.status.is_terminal or current.dispatched_at is not None)
        return True

    def _item_input(
        self, batch: Batch, service: Service, item_id: str, raw: bytes | None
    ) -> tuple[InputInfo | bytes, str]:
        """The item's input: its bytes (a JSON line), or the copy of the object a line names."""
        limit = self._max_bytes(service)
        if raw is None:
            raise _LineError("LineTooLarge", f"the line is longer than the service's limit of {limit} bytes")
        try:
            value = parse_request_json(raw.decode("utf-8"))
        except (RequestBodyError, ValueError, UnicodeDecodeError) as error:
            detail = str(error) if isinstance(error, RequestBodyError) else "the line is not valid JSON"
            raise _LineError("InvalidLine", detail[:300]) from None
        if isinstance(value, dict) and "s3_uri" in value and set(value) <= {"s3_uri", "content_type"}:
            return self._object_input(batch, service, item_id, value, limit)
        if is_json_type(batch.content_type):
            return raw, batch.content_type
        if media_type(batch.content_type).startswith("text/") and isinstance(value, str):
            return value.encode("utf-8"), batch.content_type
        raise _LineError(
            "InvalidLine",
            f"a line of a {batch.content_type} batch is a JSON string (its text) or names an object "
            '({"s3_uri": ..., "content_type": ...})',
        )

    def _object_input(
        self, batch: Batch, service: Service, item_id: str, value: dict[str, Any], limit: int
    ) -> tuple[InputInfo, str]:
        uri, content_type = value.get("s3_uri"), value.get("content_type") or batch.content_type
        if not isinstance(uri, str) or not isinstance(content_type, str):
            raise _LineError("InvalidLine", "s3_uri and content_type are strings")
        if not any(media_type(content_type) == media_type(accepted) for accepted in service.content_types):
            raise _LineError("InvalidLine", f"service '{service.name}' does not accept '{content_type[:128]}'")
        try:
            check_source(uri, self.source_buckets, self.bucket)
        except InvalidRequestError as error:
            raise _LineError("ObjectUnreadable", error.message) from None
        stored = self.ports.objects.copy_from(uri, input_key(item_id))
        if stored is None:
            raise _LineError("ObjectUnreadable", f"the object {uri[:300]} could not be read")
        if stored.size > limit:
            raise _LineError("LineTooLarge", f"the object is larger than the service's limit of {limit} bytes")
        return InputInfo(sha256=stored.sha256, size=stored.size, content_type=content_type), content_type

    def _create_item(
        self,
        batch: Batch,
        service: Service,
        line: int,
        item_id: str,
        body: InputInfo | bytes,
        content_type: str,
    ) -> Prediction:
        ports = self.ports
        if isinstance(body, bytes):
            uri = ports.objects.write(input_key(item_id), body, content_type)
            accepted = InputInfo(sha256=hashlib.sha256(body).hexdigest(), size=len(body), content_type=content_type)
        else:
            uri = self._own_uri(input_key(item_id))
            accepted = body
        metadata = {**batch.metadata, "batch_id": batch.batch_id, "line": str(line)}
        model = ModelInfo()
        # Drawn as intake draws a prediction's version; none serving: dispatch fails the item.
        with contextlib.suppress(NoServingVersionError):
            drawn = draw(service, metadata=metadata, draw_id=item_id)
            served = service.at_version(drawn.version) or service
            model = ModelInfo(
                endpoint=served.model.endpoint_name if served.model else None,
                version=drawn.version,
                assignment=drawn.assignment,
            )
        now = ports.clock()
        item = Prediction(
            prediction_id=item_id,
            service=service.name,
            owner=batch.owner,
            status=PredictionStatus.RUNNING,
            created_at=now,
            updated_at=now,
            content_type=content_type,
            metadata=metadata,
            callback=Callback(kind=CallbackKind.BATCH, target=batch.batch_id),
            model=model,
            input_uri=uri,
            input=accepted,
            started_at=now,
            deadline_at=now + timedelta(seconds=service.timeout_seconds() + DEADLINE_MARGIN_SECONDS),
            expires_at=batch.expires_at,
        )
        if not ports.predictions.create(item):
            current = ports.predictions.get(item_id)
            assert current is not None
            return current
        return item

    def _fail_line(self, batch: Batch, line: int, code: str, message: str) -> bool:
        """A line that cannot become a running item: its item is FAILED with the reason (GET
        /predictions/{id} shows it), counted like any item that failed."""
        ports = self.ports
        item_id = batch_item_id(batch.batch_id, line)
        now = ports.clock()
        item = Prediction(
            prediction_id=item_id,
            service=batch.service,
            owner=batch.owner,
            status=PredictionStatus.FAILED,
            created_at=now,
            updated_at=now,
            content_type=batch.content_type,
            metadata={**batch.metadata, "batch_id": batch.batch_id, "line": str(line)},
            callback=Callback(kind=CallbackKind.BATCH, target=batch.batch_id),
            error=PredictionError(code=code, message=message),
            finished_at=now,
            expires_at=batch.expires_at,
        )
        if not ports.predictions.create(item):
            item = ports.predictions.get(item_id) or item
        ports.log("batch line failed", batch_id=batch.batch_id, line=line, code=code)
        self.notifiers.notify(item)
        return True

    def _read_lines(self, batch: Batch, offset: int, count: int, limit: int) -> tuple[list[bytes | None], int]:
        """Up to ``count`` lines from byte ``offset`` (None for a line longer than ``limit``), and
        the offset after them. Lines longer than the limit are skipped over, never held whole."""
        assert batch.accepted_manifest_uri is not None
        size = batch.manifest_size or 0
        lines: list[bytes | None] = []
        buffer = bytearray()
        position = offset
        oversized = False
        while len(lines) < count and position < size:
            chunk = self.ports.objects.read_range(
                batch.accepted_manifest_uri, position, min(size, position + CHUNK_BYTES) - 1
            )
            if not chunk:
                break
            position += len(chunk)
            buffer += chunk
            while len(lines) < count:
                newline = buffer.find(b"\n")
                if newline < 0:
                    if len(buffer) > limit + 1:
                        oversized = True
                        buffer.clear()
                    break
                line = bytes(buffer[:newline]).removesuffix(b"\r")
                del buffer[: newline + 1]
                lines.append(None if oversized or len(line) > limit else line)
                oversized = False
        if len(lines) < count and position >= size and (buffer or oversized):
            line = bytes(buffer).removesuffix(b"\r")
            buffer.clear()
            lines.append(None if oversized or len(line) > limit else line)
        return lines, position - len(buffer)

    def _max_bytes(self, service: Service | None) -> int:
        default_max = self.ports.config.default_max_bytes
        return min(service.max_bytes if service else default_max, default_max)

    # -- stopping ----------------------------------------------------------------------------
    def _stop(self, batch: Batch, from_statuses: list[BatchStatus], code: str, message: str) -> None:
        """FAILED, with the reason: nothing new starts; running items finish, then the result."""
        moved = self.store.transition(
            batch.batch_id,
            from_statuses,
            BatchStatus.FAILED,
            {"error": PredictionError(code=code, message=message), **({"total": 0} if batch.total is None else {})},
        )
        if moved is not None:
            self.ports.log("batch failed", batch_id=batch.batch_id, code=code, reason=message)

    def _settle_started(self, batch: Batch) -> None:
        """For a stopped batch (or a reconciling tick): every started line without a recorded
        outcome is looked at. Ended: counted now. Running in a CANCELLED batch: cancelled. Never
        created (a range taken just before the batch stopped): CANCELLED, never started."""
        recorded = {outcome.line for outcome in self.store.outcomes(batch.batch_id)}
        owner = Client(client_id=batch.owner, name=batch.owner)
        for line in range(1, batch.started + 1):
            if line in recorded:
                continue
            item_id = batch_item_id(batch.batch_id, line)
            item = self.ports.predictions.get(item_id)
            if item is None:
                if batch.status in STOPPED:
                    self.store.record_outcome(batch.batch_id, self._never_started(batch, line), self.ports.clock())
                continue
            if item.status.is_terminal:
                self.notifiers.notify(item)
            elif batch.status is BatchStatus.CANCELLED:
                with contextlib.suppress(ConflictError, NotFoundError):
                    # Its notification counts it (CANCELLED) into the batch.
                    self.cancellation.cancel(owner, item_id)
        if batch.pending_range is not None and batch.status in STOPPED:
            self.store.release_lines(batch.batch_id, batch.pending_range.first_line)

    def _never_started(self, batch: Batch, line: int) -> BatchOutcome:
        reason = batch.error.message if batch.error else batch.status.value.lower()
        return BatchOutcome(
            line=line,
            prediction_id=batch_item_id(batch.batch_id, line),
            status=PredictionStatus.CANCELLED,
            error=PredictionError(
                code="NotStarted", message=f"the batch was {batch.status.value} before this line started: {reason}"
            ),
        )

    # -- the end -----------------------------------------------------------------------------
    def _finish(self, batch: Batch) -> None:
        """Write the result file (one line per manifest line, in order), set the final status and
        ``finished_at``, then tell whoever waits, once."""
        ports = self.ports
        total = batch.total or 0
        by_line = {outcome.line: outcome for outcome in self.store.outcomes(batch.batch_id)}
        expiry = ports.config.result_url_expiry_seconds
        rows = []
        for line in range(1, total + 1):
            outcome = by_line.get(line) or self._never_started(batch, line)
            rows.append(json.dumps(self._result_line(outcome, expiry), separators=(",", ":")))
        body = ("\n".join(rows) + "\n").encode() if rows else b""
        uri = ports.objects.write(batch_result_key(batch.batch_id), body, "application/x-ndjson")
        final = batch.status
        if final is RUNNING:
            final = (
                BatchStatus.COMPLETED
                if batch.failed == 0 and batch.cancelled == 0
                else BatchStatus.COMPLETED_WITH_FAILURES
            )
        finished = self.store.transition(
            batch.batch_id,
            [batch.status],
            final,
            {"finished_at": ports.clock(), "result_uri": uri, "due_at": None},
        )
        if finished is None:
            return  # it moved meanwhile (cancelled just now): the next tick decides again
        ports.log("batch finished", batch_id=batch.batch_id, status=final, total=total, failed=batch.failed)
        self._announce(finished)

    def _result_line(self, outcome: BatchOutcome, expiry: int) -> dict[str, Any]:
        row: dict[str, Any] = {"line": outcome.line, "prediction_id": outcome.prediction_id, "status": outcome.status}
        if outcome.status is PredictionStatus.COMPLETED:
            if outcome.inline:
                row["output"] = outcome.output
            elif outcome.output_uri:
                row["output_url"] = self.ports.objects.presign_download(outcome.output_uri, expiry)
                row["content_type"] = outcome.content_type
        elif outcome.error is not None:
            row["error"] = {"code": outcome.error.code, "message": outcome.error.message}
        return row

    def _announce(self, batch: Batch) -> None:
        """The batch's one webhook (queued; delivered once) or event (``event_id`` per batch)."""
        kind = batch_event_type(batch)
        if batch.callback.kind is CallbackKind.WEBHOOK and batch.callback.target:
            self.ports.webhooks.enqueue({"batch_id": batch.batch_id, "event_type": kind, "attempt": 0}, delay_seconds=0)
        elif batch.callback.kind is CallbackKind.EVENTBRIDGE and self.events is not None:
            detail = {
                "type": kind,
                "timestamp": self.ports.clock().isoformat().replace("+00:00", "Z"),
                "event_id": f"{batch.batch_id}:{kind}",
                "data": self.batches.document(batch).model_dump(mode="json"),
            }
            self.events.publish(kind, detail)
        self.store.update(batch.batch_id, {"notified_at": self.ports.clock()})


class _LineError(Exception):
    """A manifest line that cannot become an item (the item is FAILED with this reason)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

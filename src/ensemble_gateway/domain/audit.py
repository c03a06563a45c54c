"""Decision records: what the audit trail keeps of every prediction once it ends.

A pure builder: :func:`decision_record` turns a terminal :class:`~.models.Prediction` (a
top-level prediction, an ensemble step, or a shadow) into one JSON-ready record, from the
record alone and the digests the caller read (``domain/auditing.py`` reads them and delivers the
record). The record outlives the prediction's TTL: it names which service, version and endpoint
decided, on which input and with which output (S3 references with their SHA-256 and size, never
the bytes unless the service sets ``audit_payloads``), how long each part took, and who was told.

Model predictions also carry the SageMaker Data Capture fields (``captureData``,
``eventMetadata``, ``eventVersion``), so tools written for Model Monitor's captures read them.

The record's ``record_id`` is ``{prediction_id}:{status}``: a record delivered twice (a retry
after a crash past the delivery, before the outbox was cleared) has the same ID, and consumers
deduplicate on it (``audit export`` does).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .media_types import is_json_type
from .models import CallbackKind, Prediction, PredictionStatus, Service, StepTiming

#: The record layout's version (a consumer reading older records checks it).
RECORD_VERSION = "1"
#: Data Capture's ``eventVersion`` (the only one SageMaker writes).
CAPTURE_EVENT_VERSION = "0"
#: Payloads above this stay references even when the service opts in: a Firehose record is at
#: most 1,000 KiB, and the record holds an input and an output.
PAYLOAD_LIMIT = 256 * 1024
#: What ``captureData.*.encoding`` says when ``data`` is an S3 URI rather than the payload.
REFERENCE_ENCODING = "S3_URI"


@dataclass(frozen=True)
class ObjectDigest:
    """What the record says of one object: its URI, SHA-256 (hex) and size in bytes.

    ``sha256`` and ``size`` are None when the object could not be read (gone, or refused);
    ``uri`` is None for a real-time step's input, passed to the model from memory, never stored.
    """

    uri: str | None
    sha256: str | None
    size: int | None
    content_type: str | None = None


def outbox(status: PredictionStatus) -> dict[str, str]:
    """The change that marks a record's decision record as not yet delivered (the audit outbox).

    Written in the same conditional update that moves the prediction to ``status``, so a crash
    after that write cannot lose the record: the sweeper delivers what is still marked.
    """
    return {"audit_pending": status.value}


def record_id(prediction: Prediction) -> str:
    """The idempotent ID of a prediction's decision record: ``{prediction_id}:{status}``."""
    return f"{prediction.prediction_id}:{prediction.status.value}"


def record_kind(prediction: Prediction) -> str:
    """``shadow`` (a copy sent to a shadow version), ``step`` (of an ensemble) or ``prediction``."""
    if prediction.is_shadow:
        return "shadow"
    if prediction.is_step:
        return "step"
    return "prediction"


def _iso(moment: datetime | None) -> str | None:
    # UTC with a "Z": the partition of a record is read from the first 13 characters.
    return None if moment is None else moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _millis(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return max(0, round((end - start).total_seconds() * 1000))


def step_timing(
    started_at: datetime | None,
    model_started_at: datetime | None,
    model_finished_at: datetime | None,
    finished_at: datetime | None,
) -> StepTiming | None:
    """Where a prediction's (or a step's) time went, in milliseconds.

    - ``queue_ms``: from the start (the input accepted, or the step called) until the model had
      the input: the gateway's queues, the dispatch, an ensemble's scheduling;
    - ``model_ms``: from the model's receipt of the input until its answer (for an asynchronous
      endpoint this includes the time in the endpoint's own queue: SageMaker reports receipt and
      answer only);
    - ``overhead_ms``: from the answer until the gateway recorded the end (notification,
      recording, outcome on the ensemble);
    - ``total_ms``: start to end.

    None when the prediction never started or has not ended; the parts are None when no model
    answered (an ensemble, a skipped step, a refused dispatch): ``total_ms`` stands alone then.
    """
    total = _millis(started_at, finished_at)
    if total is None:
        return None
    model = _millis(model_started_at, model_finished_at)
    if model is None:
        return StepTiming(total_ms=total)
    queue = _millis(started_at, model_started_at)
    overhead = _millis(model_finished_at, finished_at)
    return StepTiming(total_ms=total, queue_ms=queue, model_ms=model, overhead_ms=overhead)


def _public_url(url: str | None) -> str | None:
    """A webhook URL without its query and credentials (they may hold secrets; the host and path
    say who was told)."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return None
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _object(digest: ObjectDigest | None) -> dict[str, Any] | None:
    if digest is None:
        return None
    return {"uri": digest.uri, "sha256": digest.sha256, "size": digest.size, "content_type": digest.content_type}


def _capture(
    digest: ObjectDigest | None, content_type: str | None, mode: str, payload: bytes | None
) -> dict[str, Any] | None:
    """One side of Data Capture's ``captureData``: the payload when given, else its S3 URI."""
    if digest is None and payload is None:
        return None
    observed = content_type or (digest.content_type if digest else None) or "application/octet-stream"
    if payload is not None and len(payload) <= PAYLOAD_LIMIT:
        text: str | None = None
        if is_json_type(observed) or observed.startswith("text/csv"):
            try:
                text = payload.decode("utf-8")
            except UnicodeDecodeError:
                text = None
        if text is not None:
            encoding = "JSON" if is_json_type(observed) else "CSV"
            return {"observedContentType": observed, "mode": mode, "data": text, "encoding": encoding}
        return {
            "observedContentType": observed,
            "mode": mode,
            "data": base64.b64encode(payload).decode("ascii"),
            "encoding": "BASE64",
        }
    return {
        "observedContentType": observed,
        "mode": mode,
        "data": digest.uri if digest else None,
        "encoding": REFERENCE_ENCODING,
    }


def _deliveries(prediction: Prediction) -> list[dict[str, Any]]:
    """The deliveries of the prediction's end known when the record is built.

    A webhook's attempts so far (delivery is asynchronous: a record built at the end has none
    yet, and ``audit show`` reads the later ``delivery`` records), or the EventBridge event the
    notifier puts on the bus (its ``event_id`` is what subscribers deduplicate on).
    """
    kind = prediction.callback.kind
    event_type = f"prediction.{prediction.status.value.lower()}"
    if kind is CallbackKind.EVENTBRIDGE:
        return [
            {
                "channel": "eventbridge",
                "event_type": event_type,
                "event_id": f"{prediction.prediction_id}:{event_type}",
                "target": None,
                "attempt": None,
                "at": None,
                "status_code": None,
                "delivered": None,
                "error": None,
            }
        ]
    if kind is not CallbackKind.WEBHOOK:
        return []
    return [webhook_attempt(prediction, attempt) for attempt in prediction.webhook_attempts]


def webhook_attempt(prediction: Prediction, attempt: Mapping[str, Any]) -> dict[str, Any]:
    """One recorded webhook attempt, as a record's ``deliveries`` entry."""
    status = attempt.get("status_code")
    return {
        "channel": "webhook",
        "event_type": attempt.get("event_type"),
        "event_id": f"{prediction.prediction_id}:{attempt.get('event_type')}",
        "target": _public_url(prediction.callback.target),
        "attempt": attempt.get("attempt"),
        "at": str(attempt["at"]) if attempt.get("at") is not None else None,
        "status_code": int(status) if isinstance(status, int | float) else None,
        "delivered": bool(attempt.get("delivered")) if "delivered" in attempt else None,
        "error": attempt.get("error"),
    }


def decision_record(
    prediction: Prediction,
    *,
    service: Service | None,
    input_digest: ObjectDigest | None,
    output_digest: ObjectDigest | None,
    recorded_at: datetime,
    payloads: Mapping[str, bytes] | None = None,
) -> dict[str, Any]:
    """The decision record of a terminal ``prediction``.

    Parameters
    ----------
    prediction
        The record as it ended (top-level, step, or shadow).
    service
        Its catalog entry (the kind of service, whether payloads are kept); None when gone.
    input_digest, output_digest
        The input the model read and the output it wrote, with their digests (None: none).
    recorded_at
        When the record is built.
    payloads
        ``{"input": bytes, "output": bytes}`` when the service opted in (``audit_payloads``):
        Data Capture's ``data`` then holds them instead of their S3 URIs.

    Returns
    -------
    dict
        JSON-ready (strings, numbers, booleans, None, lists and dicts); the Glue table's columns
        (template.yaml, ``AuditTable``) accept every field.
    """
    payloads = payloads or {}
    model = prediction.model
    assignment = model.assignment
    service_kind = service.kind if service is not None else ("ensemble" if prediction.step_outputs else "model")
    finished = prediction.finished_at or prediction.updated_at
    started = prediction.started_at or prediction.created_at
    timing = step_timing(
        started if prediction.status is not PredictionStatus.SKIPPED else finished,
        prediction.model_started_at,
        prediction.model_finished_at,
        finished,
    )
    outcomes = sorted(
        prediction.step_outputs.items(), key=lambda item: (item[1].started_at or finished, item[1].step, item[0])
    )
    steps = []
    for child_id, outcome in outcomes:
        part = step_timing(outcome.started_at, outcome.model_started_at, outcome.model_finished_at, outcome.finished_at)
        steps.append(
            {
                "name": outcome.step,
                "prediction_id": child_id,
                "service": outcome.service,
                "status": outcome.status.value,
                "version": outcome.model.version,
                "endpoint": outcome.model.endpoint,
                "queue_ms": part.queue_ms if part else None,
                "model_ms": part.model_ms if part else None,
                "overhead_ms": part.overhead_ms if part else None,
                "total_ms": part.total_ms if part else None,
            }
        )
    shadows: list[dict[str, Any]] = [
        {
            "prediction_id": shadow_id,
            "service": outcome.service,
            "version": outcome.version,
            "status": outcome.status.value,
        }
        for shadow_id, outcome in sorted(prediction.shadow_outcomes.items())
    ]
    known: set[Any] = {shadow["version"] for shadow in shadows}
    # Shadows still running when the prediction ended: their own records tell their end.
    shadows += [
        {"prediction_id": None, "service": prediction.service, "version": version, "status": None}
        for version in prediction.shadow_versions
        if version not in known
    ]
    callback = prediction.callback
    record: dict[str, Any] = {
        "record_id": record_id(prediction),
        "record_version": RECORD_VERSION,
        "recorded_at": _iso(recorded_at),
        "prediction_id": prediction.prediction_id,
        "parent_id": prediction.parent_id,
        "kind": record_kind(prediction),
        "step": prediction.step,
        "service": prediction.service,
        "service_kind": service_kind,
        # The version label and the variant that served it ("1.1.0/AllTraffic"), as recorded.
        "version": model.version,
        "endpoint": model.endpoint,
        "assignment": None
        if assignment is None
        else {
            "by": assignment.by,
            "key": assignment.key,
            "bucket": assignment.bucket,
            "traffic": dict(assignment.traffic),
        },
        "client_id": prediction.owner,
        "status": prediction.status.value,
        "error": None
        if prediction.error is None
        else {"code": prediction.error.code, "message": prediction.error.message, "step": prediction.error.step},
        "metadata": dict(prediction.metadata),
        "created_at": _iso(prediction.created_at),
        "started_at": _iso(prediction.started_at),
        "dispatched_at": _iso(prediction.dispatched_at),
        "model_started_at": _iso(prediction.model_started_at),
        "model_finished_at": _iso(prediction.model_finished_at),
        "finished_at": _iso(finished),
        "timing": None if timing is None else timing.model_dump(),
        "input": _object(input_digest),
        "output": _object(output_digest),
        "failure_uri": prediction.failure_uri,
        "steps": steps,
        "shadows": shadows,
        "callback": {
            "kind": callback.kind.value,
            # A task token is the state machine's, and long: the parent ID names the waiter.
            "target": _public_url(callback.target) if callback.kind is CallbackKind.WEBHOOK else None,
        },
        "deliveries": _deliveries(prediction),
        "captureData": None,
        "eventMetadata": None,
        "eventVersion": None,
    }
    if service_kind == "model":
        record["captureData"] = {
            "endpointInput": _capture(input_digest, prediction.content_type, "INPUT", payloads.get("input")),
            "endpointOutput": _capture(output_digest, prediction.output_content_type, "OUTPUT", payloads.get("output")),
        }
        record["eventMetadata"] = {
            "eventId": record["record_id"],
            # The prediction ID is the InferenceId SageMaker was given.
            "inferenceId": prediction.prediction_id,
            "inferenceTime": _iso(prediction.model_finished_at or finished),
        }
        record["eventVersion"] = CAPTURE_EVENT_VERSION
    return record


def delivery_record(prediction: Prediction, attempt: Mapping[str, Any], recorded_at: datetime) -> dict[str, Any]:
    """The record of one webhook delivery that ended (delivered, or given up on).

    Its own record (``kind`` ``delivery``, ``record_id`` ``{prediction_id}:{event_type}:webhook``):
    the webhook is sent after the decision record was written.
    """
    entry = webhook_attempt(prediction, attempt)
    return {
        "record_id": f"{prediction.prediction_id}:{entry['event_type']}:webhook",
        "record_version": RECORD_VERSION,
        "recorded_at": _iso(recorded_at),
        "prediction_id": prediction.prediction_id,
        "parent_id": prediction.parent_id,
        "kind": "delivery",
        "step": prediction.step,
        "service": prediction.service,
        "service_kind": None,
        "version": prediction.model.version,
        "endpoint": prediction.model.endpoint,
        "assignment": None,
        "client_id": prediction.owner,
        "status": prediction.status.value,
        "error": None,
        "metadata": {},
        "created_at": _iso(prediction.created_at),
        "started_at": _iso(prediction.started_at),
        "dispatched_at": None,
        "model_started_at": None,
        "model_finished_at": None,
        # The partition is the delivery's: when it ended.
        "finished_at": _iso(recorded_at),
        "timing": None,
        "input": None,
        "output": None,
        "failure_uri": None,
        "steps": [],
        "shadows": [],
        "callback": {"kind": prediction.callback.kind.value, "target": entry["target"]},
        "deliveries": [entry],
        "captureData": None,
        "eventMetadata": None,
        "eventVersion": None,
    }


def partition(record: Mapping[str, Any]) -> tuple[str, str]:
    """The Hive partition of a record: (``YYYY-MM-DD``, ``HH``) of its ``finished_at`` (UTC).

    The Firehose stream computes the same from the record (its ``MetadataExtraction`` query).
    """
    finished = str(record.get("finished_at") or record.get("recorded_at") or "")
    return finished[0:10], finished[11:13]

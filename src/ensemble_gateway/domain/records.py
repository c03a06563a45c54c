"""Conventions the use cases share about a prediction's records: where its objects live in the
bucket, and how long past its model's own timeout the gateway waits before declaring it lost."""

from __future__ import annotations

import hashlib

# Extra time past a model's own timeout before the gateway declares the prediction lost.
DEADLINE_MARGIN_SECONDS = 120


def upload_key(prediction_id: str) -> str:
    """Where the client's presigned POST puts the input: the only key an upload form can write."""
    return f"uploads/{prediction_id}"


def input_key(prediction_id: str) -> str:
    """The accepted input: copied from the upload once, by the gateway, before anything reads it."""
    return f"inputs/{prediction_id}"


def step_input_key(prediction_id: str) -> str:
    """The mapped input of an ensemble step (written by get-transform-call)."""
    return f"steps/{prediction_id}"


def output_key(prediction_id: str) -> str:
    """Where the gateway writes an output itself (a real-time answer, an ensemble's document)."""
    return f"outputs/{prediction_id}"


def failure_key(prediction_id: str) -> str:
    """Where a real-time model's whole error answer is kept."""
    return f"failures/{prediction_id}"


def prediction_id_from_key(key: str) -> str | None:
    """The prediction an uploaded (or input, or step input) object belongs to; None for foreign keys."""
    for prefix in ("uploads/", "inputs/", "steps/"):
        if key.startswith(prefix):
            candidate = key[len(prefix) :]
            if candidate and "/" not in candidate:
                return candidate
    return None


def shadow_prediction_id(primary_id: str, version: str) -> str:
    """The shadow of ``primary_id`` sent to ``version``: one per primary and version, whatever
    the attempt (a duplicate start finds the record the first one created).

    At most 62 characters of ``[A-Za-z0-9_-]``: a SageMaker ``InferenceId`` and a Step Functions
    execution name, as any prediction ID.
    """
    digest = hashlib.sha256(f"{primary_id}\x00shadow\x00{version}".encode()).hexdigest()[:20]
    return f"{primary_id[:40]}-h{digest}"


def manifest_upload_key(batch_id: str) -> str:
    """Where a batch's upload form puts its manifest (the bucket notifies the batch queue)."""
    return f"batches/{batch_id}/manifest.jsonl"


def accepted_manifest_key(batch_id: str) -> str:
    """The manifest as accepted: copied once, read by every tick (a later upload changes nothing)."""
    return f"batches/{batch_id}/accepted.jsonl"


def batch_result_key(batch_id: str) -> str:
    """The result file of a finished batch: one JSON line per manifest line, in input order."""
    return f"batches/{batch_id}/results.jsonl"


def batch_id_from_manifest_key(key: str) -> str | None:
    """The batch whose upload form writes ``key``; None for any other key."""
    parts = key.split("/")
    if len(parts) == 3 and parts[0] == "batches" and parts[2] == "manifest.jsonl" and parts[1]:
        return parts[1]
    return None

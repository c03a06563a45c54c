"""Firehose adapter: decision records to the audit delivery stream (S3 under ``audit/``)."""

from __future__ import annotations

import json
from typing import Any

from .aws import LazyClient

# PutRecordBatch takes at most 500 records and 4 MiB per call.
_BATCH_RECORDS = 500


class AuditDeliveryError(RuntimeError):
    """Firehose did not take some records (``PutRecordBatch`` reports failures per record)."""


class FirehoseAuditSink(LazyClient):
    """Puts decision records on the audit stream, one JSON line each.

    The stream partitions them by the record's ``finished_at`` (``audit/date=YYYY-MM-DD/hour=HH/``)
    and buffers them into objects of many lines: what the Glue table (JSON SerDe) reads.

    Parameters
    ----------
    stream_name
        The delivery stream (the stack's ``AuditStreamName`` output).
    client
        A boto3 ``firehose`` client (one is created on first use otherwise).
    """

    service_name = "firehose"

    def __init__(self, stream_name: str, client: Any = None) -> None:
        super().__init__(client)
        self.stream_name = stream_name

    def put(self, records: list[dict[str, Any]]) -> None:
        """Put ``records``; raise when any was refused (the caller keeps them pending).

        Raises
        ------
        AuditDeliveryError
            Some record failed (its ``ErrorCode``): all are delivered again later, with the same
            ``record_id`` (readers deduplicate).
        """
        for start in range(0, len(records), _BATCH_RECORDS):
            batch = records[start : start + _BATCH_RECORDS]
            response = self.client.put_record_batch(
                DeliveryStreamName=self.stream_name,
                # One line per record: the objects Firehose writes are JSON Lines.
                Records=[{"Data": (json.dumps(record, default=str) + "\n").encode()} for record in batch],
            )
            if response.get("FailedPutCount"):
                codes = sorted(
                    {entry.get("ErrorCode", "") for entry in response["RequestResponses"] if "ErrorCode" in entry}
                )
                refused = response["FailedPutCount"]
                raise AuditDeliveryError(
                    f"Firehose refused {refused} of {len(batch)} decision records: {', '.join(codes)}"
                )

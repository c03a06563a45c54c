"""The one settings model, read from the environment and validated at cold start."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator


class SettingsError(RuntimeError):
    """The function's environment is incomplete or invalid."""


class Settings(BaseModel):
    """Everything a handler may be configured with. Names match the template's Environment."""

    region: str = Field(alias="AWS_REGION", default="us-east-1")
    predictions_table: str = Field(alias="PREDICTIONS_TABLE")
    services_table: str = Field(alias="SERVICES_TABLE")
    clients_table: str = Field(alias="CLIENTS_TABLE")
    bucket: str = Field(alias="BUCKET")
    kms_key_id: str | None = Field(alias="KMS_KEY_ID", default=None)
    webhook_queue_url: str = Field(alias="WEBHOOK_QUEUE_URL")
    webhook_dlq_url: str = Field(alias="WEBHOOK_DLQ_URL")
    # The queue of shadow dispatches (the functions that start shadows); unset: no shadow is started.
    shadow_queue_url: str | None = Field(alias="SHADOW_QUEUE_URL", default=None)
    # process-input's queue (S3 sends the uploads' events there): a prediction with its input inline
    # whose dispatch could not be completed at once is handed to process-input through it.
    input_queue_url: str | None = Field(alias="INPUT_QUEUE_URL", default=None)
    # The largest JSON input POST /predictions takes inline (``input``); 0: inline inputs are refused.
    inline_input_max_bytes: int = Field(alias="INLINE_INPUT_MAX_BYTES", default=256 * 1024, ge=0, le=5 * 1024 * 1024)
    # The batches and the batch driver's queue; unset: the gateway has no batches (POST /batches is a 404).
    batches_table: str | None = Field(alias="BATCHES_TABLE", default=None)
    batch_queue_url: str | None = Field(alias="BATCH_QUEUE_URL", default=None)
    # Buckets (comma-separated) whose objects clients may name in a batch; unset: none (uploads only).
    batch_source_buckets: tuple[str, ...] = Field(alias="BATCH_SOURCE_BUCKETS", default=())
    # The gateway's EventBridge bus ({"eventbridge": {}} notifications); unset: such requests are refused.
    event_bus_name: str | None = Field(alias="EVENT_BUS_NAME", default=None)
    # The Firehose stream of decision records (the audit trail); unset: no records are written.
    audit_stream_name: str | None = Field(alias="AUDIT_STREAM_NAME", default=None)
    # Where decision records go: the stream, or (the local runtime) the data bucket under audit/.
    audit_sink: Literal["firehose", "s3"] = Field(alias="AUDIT_SINK", default="firehose")
    upload_expiry_seconds: int = Field(alias="UPLOAD_URL_EXPIRY_SECONDS", default=900, ge=5, le=604800)
    result_url_expiry_seconds: int = Field(alias="RESULT_URL_EXPIRY_SECONDS", default=3600, ge=60, le=604800)
    max_upload_bytes: int = Field(alias="MAX_UPLOAD_BYTES", default=10 * 1024 * 1024, ge=1)
    retention_days: int = Field(alias="RETENTION_DAYS", default=30, ge=1)
    auth_mode: Literal["iam", "api_key"] = Field(alias="AUTH_MODE", default="iam")
    allow_loopback_webhooks: bool = Field(alias="ALLOW_LOOPBACK_WEBHOOKS", default=False)
    # Set by the local runtime (comma-separated): its own ports, which a webhook on loopback must not target.
    webhook_forbidden_loopback_ports: tuple[Annotated[int, Field(ge=1, le=65535)], ...] = Field(
        alias="WEBHOOK_FORBIDDEN_LOOPBACK_PORTS", default=()
    )
    stage: str = Field(alias="STAGE", default="dev")
    # Per-call X-Ray subsegments through Powertools' Tracer (costly at cold start; see observability.py).
    xray_sdk_tracing: bool = Field(alias="XRAY_SDK_TRACING", default=False)

    @field_validator("webhook_forbidden_loopback_ports", "batch_source_buckets", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        """Build the settings; a missing or bad variable raises SettingsError naming it."""
        values = {k: v for k, v in environ.items() if k in _ALIASES and v != ""}
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())
            raise SettingsError(f"invalid configuration: {problems}") from None


_ALIASES = {field.alias for field in Settings.model_fields.values()}


@functools.cache
def get_settings() -> Settings:
    """The settings of this process (read once)."""
    return Settings.from_environ(os.environ)

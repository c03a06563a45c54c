"""slow-noop: sleeps for the requested time and answers ok, for tests and benchmarks. Nothing to train.

Input: application/json `{"sleep_ms": int}` (default 0; an empty body means 0), at most
`MAX_SLEEP_MS` (the default SageMaker async invocation timeout).
Output: `{"ok": true, "slept_ms": int, "model": "slow-noop", "version": "1"}`.
"""

from __future__ import annotations

import json
import time
from typing import Any

MODEL = "slow-noop"
VERSION = "1"
CONTENT_TYPES = ("application/json",)
MAX_SLEEP_MS = 900_000


def model_fn(model_dir: str) -> dict[str, str]:
    return {"model": MODEL, "version": VERSION}


def input_fn(request_body: bytes, request_content_type: str) -> int:
    if _media_type(request_content_type) not in CONTENT_TYPES:
        raise ValueError(f"unsupported content type {request_content_type!r}: slow-noop accepts application/json")
    if not request_body.strip():
        return 0
    try:
        document = json.loads(request_body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"request body is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise ValueError('expected a JSON object such as {"sleep_ms": 100}')
    sleep_ms = document.get("sleep_ms", 0)
    if isinstance(sleep_ms, bool) or not isinstance(sleep_ms, int):
        raise ValueError(f"field 'sleep_ms' must be an integer, got {sleep_ms!r}")
    if not 0 <= sleep_ms <= MAX_SLEEP_MS:
        raise ValueError(f"field 'sleep_ms' must be between 0 and {MAX_SLEEP_MS}, got {sleep_ms}")
    return sleep_ms


def predict_fn(input_data: int, model: dict[str, str]) -> dict[str, Any]:
    time.sleep(input_data / 1000.0)
    return {"ok": True, "slept_ms": input_data, "model": model["model"], "version": model["version"]}


def output_fn(prediction: dict[str, Any], accept: str) -> str:
    if _media_type(accept) not in ("", "*/*", "application/json"):
        raise ValueError(f"unsupported accept type {accept!r}: slow-noop answers application/json")
    return json.dumps(prediction)


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()

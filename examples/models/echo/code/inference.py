"""echo: returns its JSON input unchanged, for tests and benchmarks. Nothing to train.

Input: application/json (any JSON value). Output: `{"echo": <the parsed input>, "model": "echo",
"version": "1"}`.
"""

from __future__ import annotations

import json
from typing import Any

MODEL = "echo"
VERSION = "1"
CONTENT_TYPES = ("application/json",)


def model_fn(model_dir: str) -> dict[str, str]:
    return {"model": MODEL, "version": VERSION}


def input_fn(request_body: bytes, request_content_type: str) -> Any:
    if _media_type(request_content_type) not in CONTENT_TYPES:
        raise ValueError(f"unsupported content type {request_content_type!r}: echo accepts application/json")
    try:
        return json.loads(request_body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"request body is not valid JSON: {error}") from None


def predict_fn(input_data: Any, model: dict[str, str]) -> dict[str, Any]:
    return {"echo": input_data, "model": model["model"], "version": model["version"]}


def output_fn(prediction: dict[str, Any], accept: str) -> str:
    if _media_type(accept) not in ("", "*/*", "application/json"):
        raise ValueError(f"unsupported accept type {accept!r}: echo answers application/json")
    return json.dumps(prediction)


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()

"""always-fails: a model whose prediction always fails, to test error handling. Nothing to train.

input_fn accepts any body and content type, so the failure always comes from predict_fn.
"""

from __future__ import annotations

import json
from typing import Any

MODEL = "always-fails"
VERSION = "1"
ERROR_MESSAGE = "this model always fails: it exists to test error handling"


def model_fn(model_dir: str) -> dict[str, str]:
    return {"model": MODEL, "version": VERSION}


def input_fn(request_body: bytes, request_content_type: str) -> bytes:
    return request_body


def predict_fn(input_data: Any, model: dict[str, str]) -> dict[str, Any]:
    raise ValueError(ERROR_MESSAGE)


def output_fn(prediction: dict[str, Any], accept: str) -> str:  # never reached
    return json.dumps(prediction)

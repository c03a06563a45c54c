"""Complaint triage text classifier (shared by triage-product, triage-issue and triage-vulnerable).

SageMaker inference-toolkit handlers. The triage models, and triage-product's version 1.1.0
(`triage-product-1.1.0`), use this same file (kept identical, a test checks it): what differs is
in the model directory, `model/model.pkl` (a scikit-learn TF-IDF + logistic-regression pipeline)
and `model/metadata.json` (model name, version, task, labels), written by `examples/train.py`.

Input: application/json `{"text": "..."}` or text/plain (the complaint itself).
Output: `{"task", "label", "confidence", "scores": {label: probability}, "model", "version"}`.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

CONTENT_TYPES = ("application/json", "text/plain")
MAX_TEXT_CHARS = 100_000


def model_fn(model_dir: str) -> dict[str, Any]:
    root = Path(model_dir) / "model"
    if not (root / "metadata.json").is_file():
        raise FileNotFoundError(f"no trained model in {root}: run python examples/train.py")
    metadata = json.loads((root / "metadata.json").read_text())
    with (root / "model.pkl").open("rb") as file:
        pipeline = pickle.load(file)  # our own artefact, written by examples/train.py
    return {"pipeline": pipeline, **metadata}


def input_fn(request_body: bytes, request_content_type: str) -> str:
    media_type = _media_type(request_content_type)
    if media_type not in CONTENT_TYPES:
        raise ValueError(
            f"unsupported content type {request_content_type!r}: this triage model accepts "
            'application/json {"text": "..."} or text/plain'
        )
    try:
        body = request_body.decode("utf-8") if isinstance(request_body, bytes) else request_body
    except UnicodeDecodeError:
        raise ValueError("request body is not UTF-8 text") from None
    if media_type == "application/json":
        try:
            document = json.loads(body)
        except json.JSONDecodeError as error:
            raise ValueError(f"request body is not valid JSON: {error}") from None
        text = document.get("text") if isinstance(document, dict) else None
        if not isinstance(text, str):
            raise ValueError('expected a JSON object with a "text" string')
    else:
        text = body
    if not text.strip():
        raise ValueError("the complaint text is empty")
    if len(text) > MAX_TEXT_CHARS:
        raise ValueError(f"the complaint text is longer than {MAX_TEXT_CHARS} characters")
    return text


def predict_fn(input_data: str, model: dict[str, Any]) -> dict[str, Any]:
    pipeline = model["pipeline"]
    probabilities = pipeline.predict_proba([input_data])[0]
    labels = [str(label) for label in pipeline.classes_]
    scores = {label: round(float(p), 6) for label, p in zip(labels, probabilities, strict=True)}
    best = max(labels, key=lambda label: (scores[label], -labels.index(label)))
    return {
        "task": model["task"],
        "label": best,
        "confidence": scores[best],
        "scores": scores,
        "model": model["model"],
        "version": model["version"],
    }


def output_fn(prediction: dict[str, Any], accept: str) -> str:
    if _media_type(accept) not in ("", "*/*", "application/json"):
        raise ValueError(f"unsupported accept type {accept!r}: this triage model answers application/json")
    return json.dumps(prediction)


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()

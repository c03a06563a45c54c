"""repair-cost: estimated repair cost of a damaged vehicle, in EUR.

SageMaker inference-toolkit handlers. The model directory holds `model/model.pkl` (a scikit-learn
gradient-boosting regressor on the log of the cost) and `model/metadata.json`, written by
`examples/train.py`.

Input (application/json): a claim document `{"claim": {...}}` or the bare claim object, with the
fields in `FEATURES`; other fields are ignored. A missing or invalid field is a ValueError naming it.
Output: `{"estimated_repair_cost", "currency": "EUR", "model", "version"}`.
"""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np

FEATURES = ("vehicle_value", "vehicle_age_years", "damage_area_pct", "impact_speed_kmh", "parts_count")
CONTENT_TYPES = ("application/json",)
# Inclusive bounds per field; None means unbounded.
_BOUNDS: dict[str, tuple[float, float | None]] = {
    "vehicle_value": (1, None),
    "vehicle_age_years": (0, None),
    "damage_area_pct": (0, 100),
    "impact_speed_kmh": (0, None),
    "parts_count": (0, None),
}


def model_fn(model_dir: str) -> dict[str, Any]:
    root = Path(model_dir) / "model"
    if not (root / "metadata.json").is_file():
        raise FileNotFoundError(f"no trained model in {root}: run python examples/train.py")
    metadata = json.loads((root / "metadata.json").read_text())
    if tuple(metadata["features"]) != FEATURES:
        raise ValueError(f"model was trained on features {metadata['features']}, this code expects {FEATURES}")
    with (root / "model.pkl").open("rb") as file:
        estimator = pickle.load(file)  # our own artefact, written by examples/train.py
    return {"estimator": estimator, "model": metadata["model"], "version": metadata["version"]}


def input_fn(request_body: bytes, request_content_type: str) -> np.ndarray:
    if _media_type(request_content_type) not in CONTENT_TYPES:
        raise ValueError(f"unsupported content type {request_content_type!r}: repair-cost accepts application/json")
    document = _parse_json(request_body)
    claim = document.get("claim", document) if isinstance(document, dict) else None
    if not isinstance(claim, dict):
        raise ValueError('expected a JSON claim object or {"claim": {...}}')
    return claim_features(claim)


def predict_fn(input_data: np.ndarray, model: dict[str, Any]) -> dict[str, Any]:
    log_cost = float(model["estimator"].predict(input_data)[0])
    return {
        "estimated_repair_cost": round(max(math.expm1(log_cost), 0.0), 2),
        "currency": "EUR",
        "model": model["model"],
        "version": model["version"],
    }


def output_fn(prediction: dict[str, Any], accept: str) -> str:
    if _media_type(accept) not in ("", "*/*", "application/json"):
        raise ValueError(f"unsupported accept type {accept!r}: repair-cost answers application/json")
    return json.dumps(prediction)


def claim_features(claim: dict[str, Any]) -> np.ndarray:
    """The model's feature row (shape 1 x len(FEATURES)) for one claim; ValueError names a bad field."""
    row = []
    for name in FEATURES:
        if name not in claim or claim[name] is None:
            raise ValueError(f"claim field {name!r} is missing")
        value = claim[name]
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"claim field {name!r} must be a number, got {value!r}")
        low, high = _BOUNDS[name]
        if value < low or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise ValueError(f"claim field {name!r} must be {bounds}, got {value!r}")
        row.append(float(value))
    return np.asarray([row], dtype=float)


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def _parse_json(body: bytes | str) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"request body is not valid JSON: {error}") from None

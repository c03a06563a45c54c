"""fraud-score: probability that a vehicle-insurance claim is fraudulent, with its explanation.

SageMaker inference-toolkit handlers. The model directory holds `model/model.json` (an XGBoost
booster) and `model/metadata.json` (name, version, feature order), written by
`examples/train.py`.

Input (application/json): a claim document `{"claim": {...}}` or the bare claim object. The claim
needs the fields in `FEATURES`; other fields (claim_id, description, ...) are ignored.
Output: `{"fraud_probability", "explanation": {feature: contribution to the log-odds},
"top_factors": [three features by |contribution|], "model", "version"}`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

FEATURES = (
    "claim_amount",
    "vehicle_age_years",
    "policy_tenure_months",
    "prior_claims",
    "days_since_policy_start",
    "police_report",
    "witness_count",
    "hour_of_day",
)
CONTENT_TYPES = ("application/json",)
# Inclusive bounds per field; None means unbounded.
_BOUNDS: dict[str, tuple[float, float | None]] = {
    "claim_amount": (0, None),
    "vehicle_age_years": (0, None),
    "policy_tenure_months": (0, None),
    "prior_claims": (0, None),
    "days_since_policy_start": (0, None),
    "police_report": (0, 1),
    "witness_count": (0, None),
    "hour_of_day": (0, 23),
}


def model_fn(model_dir: str) -> dict[str, Any]:
    root = Path(model_dir) / "model"
    if not (root / "metadata.json").is_file():
        raise FileNotFoundError(f"no trained model in {root}: run python examples/train.py")
    metadata = json.loads((root / "metadata.json").read_text())
    if tuple(metadata["features"]) != FEATURES:
        raise ValueError(f"model was trained on features {metadata['features']}, this code expects {FEATURES}")
    booster = xgb.Booster(params={"nthread": 1}, model_file=str(root / "model.json"))
    return {"booster": booster, "model": metadata["model"], "version": metadata["version"]}


def input_fn(request_body: bytes, request_content_type: str) -> np.ndarray:
    _require_content_type(request_content_type)
    document = _parse_json(request_body)
    claim = document.get("claim", document) if isinstance(document, dict) else None
    if not isinstance(claim, dict):
        raise ValueError('expected a JSON claim object or {"claim": {...}}')
    return claim_features(claim)


def predict_fn(input_data: np.ndarray, model: dict[str, Any]) -> dict[str, Any]:
    matrix = xgb.DMatrix(input_data, feature_names=list(FEATURES))
    booster: xgb.Booster = model["booster"]
    probability = float(booster.predict(matrix)[0])
    contributions = booster.predict(matrix, pred_contribs=True)[0][: len(FEATURES)]  # last column: bias
    explanation = {name: round(float(value), 6) for name, value in zip(FEATURES, contributions, strict=True)}
    top = sorted(FEATURES, key=lambda name: (-abs(explanation[name]), FEATURES.index(name)))[:3]
    return {
        "fraud_probability": round(probability, 6),
        "explanation": explanation,
        "top_factors": top,
        "model": model["model"],
        "version": model["version"],
    }


def output_fn(prediction: dict[str, Any], accept: str) -> str:
    if _media_type(accept) not in ("", "*/*", "application/json"):
        raise ValueError(f"unsupported accept type {accept!r}: fraud-score answers application/json")
    return json.dumps(prediction)


def claim_features(claim: dict[str, Any]) -> np.ndarray:
    """The model's feature row (shape 1 x len(FEATURES)) for one claim; ValueError names a bad field."""
    row = []
    for name in FEATURES:
        if name not in claim or claim[name] is None:
            raise ValueError(f"claim field {name!r} is missing")
        value = claim[name]
        if name == "police_report" and isinstance(value, bool):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"claim field {name!r} must be a number, got {value!r}")
        low, high = _BOUNDS[name]
        if value < low or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise ValueError(f"claim field {name!r} must be {bounds}, got {value!r}")
        row.append(float(value))
    return np.asarray([row], dtype=np.float32)


def _require_content_type(content_type: str) -> None:
    if _media_type(content_type) not in CONTENT_TYPES:
        raise ValueError(f"unsupported content type {content_type!r}: fraud-score accepts application/json")


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def _parse_json(body: bytes | str) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"request body is not valid JSON: {error}") from None

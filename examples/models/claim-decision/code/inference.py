"""claim-decision: business rules that turn the vehicle-claim predictions into repair / write-off / refer.

SageMaker inference-toolkit handlers for a "model" with nothing to train: `model_fn` loads the
thresholds from `rules.json` next to this file (the model directory needs no artefacts).

Rules, in order:
1. fraud_probability >= refer threshold (0.7) -> "refer" to an investigator;
2. estimated_repair_cost > 0.7 x vehicle_value -> "write-off";
3. severity "severe" and estimated_repair_cost > 0.5 x vehicle_value -> "write-off";
4. otherwise -> "repair".

Input (application/json): `{"fraud_probability", "estimated_repair_cost", "severity",
"vehicle_value"}`; other keys are ignored.
Output: `{"decision", "reasons": [human-readable strings], "model", "version"}`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

CONTENT_TYPES = ("application/json",)
SEVERITIES = ("minor", "moderate", "severe")
RULES_FILE = Path(__file__).with_name("rules.json")


def model_fn(model_dir: str) -> dict[str, Any]:
    return json.loads(RULES_FILE.read_text())


def input_fn(request_body: bytes, request_content_type: str) -> dict[str, Any]:
    if _media_type(request_content_type) not in CONTENT_TYPES:
        raise ValueError(f"unsupported content type {request_content_type!r}: claim-decision accepts application/json")
    try:
        document = json.loads(request_body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"request body is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise ValueError("expected a JSON object")
    fraud = _number(document, "fraud_probability")
    if not 0.0 <= fraud <= 1.0:
        raise ValueError(f"field 'fraud_probability' must be between 0 and 1, got {fraud!r}")
    cost = _number(document, "estimated_repair_cost")
    if cost < 0:
        raise ValueError(f"field 'estimated_repair_cost' must be at least 0, got {cost!r}")
    value = _number(document, "vehicle_value")
    if value <= 0:
        raise ValueError(f"field 'vehicle_value' must be greater than 0, got {value!r}")
    severity = document.get("severity")
    if severity is None:
        raise ValueError("field 'severity' is missing")
    if severity not in SEVERITIES:
        raise ValueError(f"field 'severity' must be one of {', '.join(SEVERITIES)}, got {severity!r}")
    return {
        "fraud_probability": fraud,
        "estimated_repair_cost": cost,
        "severity": severity,
        "vehicle_value": value,
    }


def predict_fn(input_data: dict[str, Any], model: dict[str, Any]) -> dict[str, Any]:
    fraud = input_data["fraud_probability"]
    cost = input_data["estimated_repair_cost"]
    value = input_data["vehicle_value"]
    severity = input_data["severity"]
    share = cost / value
    refer_at = model["refer_fraud_probability"]
    write_off_share = model["write_off_cost_share"]
    severe_share = model["severe_write_off_cost_share"]
    cost_text = f"the estimated repair cost EUR {cost:,.2f} is {share:.0%} of the vehicle value EUR {value:,.2f}"

    if fraud >= refer_at:
        decision = "refer"
        reasons = [
            f"the fraud probability {fraud:.2f} is at or above the referral threshold {refer_at:.2f}: "
            "refer the claim to an investigator before settling it",
        ]
    elif share > write_off_share:
        decision = "write-off"
        reasons = [f"{cost_text}, above the write-off limit of {write_off_share:.0%}"]
    elif severity == "severe" and share > severe_share:
        decision = "write-off"
        reasons = [
            f"the damage is severe and {cost_text}, above the {severe_share:.0%} limit for severe damage",
        ]
    else:
        decision = "repair"
        limit = severe_share if severity == "severe" else write_off_share
        reasons = [
            f"the fraud probability {fraud:.2f} is below the referral threshold {refer_at:.2f}",
            f"the damage is {severity} and {cost_text}, within the {limit:.0%} repair limit",
        ]
    return {"decision": decision, "reasons": reasons, "model": model["model"], "version": model["version"]}


def output_fn(prediction: dict[str, Any], accept: str) -> str:
    if _media_type(accept) not in ("", "*/*", "application/json"):
        raise ValueError(f"unsupported accept type {accept!r}: claim-decision answers application/json")
    return json.dumps(prediction)


def _number(document: dict[str, Any], name: str) -> float:
    if name not in document or document[name] is None:
        raise ValueError(f"field {name!r} is missing")
    value = document[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"field {name!r} must be a number, got {value!r}")
    return float(value)


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()

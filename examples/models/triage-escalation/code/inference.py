"""triage-escalation: routing rules for complaints from vulnerable customers (real-time, no training).

Written to the SageMaker inference-toolkit convention, like every example model.
"""

from __future__ import annotations

import json
from typing import Any

VERSION = "1.0.0"
URGENT_CUES = ("bereavement", "died", "passed away", "terminal", "suicide", "eviction", "bailiff")


def model_fn(model_dir: str) -> dict[str, Any]:
    return {"urgent_cues": URGENT_CUES}


def input_fn(request_body: bytes, request_content_type: str) -> dict[str, Any]:
    if not request_content_type.startswith("application/json"):
        raise ValueError(f"triage-escalation accepts application/json, not {request_content_type}")
    return json.loads(request_body)


def predict_fn(data: dict[str, Any], model: dict[str, Any]) -> dict[str, Any]:
    text = str(data.get("text", "")).lower()
    confidence = float((data.get("vulnerability") or {}).get("confidence", 0.0))
    cues = [cue for cue in model["urgent_cues"] if cue in text]
    urgent = bool(cues) or confidence >= 0.9
    return {
        "priority": "urgent" if urgent else "high",
        "route_to": "specialist-support-team",
        "respond_within_hours": 4 if urgent else 24,
        "reasons": [f"mentions '{cue}'" for cue in cues] or ["vulnerable customer"],
        "model": "triage-escalation",
        "version": VERSION,
    }


def output_fn(prediction: dict[str, Any], accept: str) -> str:
    return json.dumps(prediction)

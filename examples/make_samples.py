"""Regenerate the committed sample requests under `examples/<service>/samples/`.

    python examples/make_samples.py

Deterministic: the same files every run (photos come from `sample_images.make_damage_photo` with
fixed seeds outside the training range). The vehicle-claim samples are built so that the trained
models lead claim-decision to the outcome in their name (repair, write-off, refer);
`tests/test_examples.py` checks it.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

EXAMPLES_DIR = Path(__file__).resolve().parent
if str(EXAMPLES_DIR) not in sys.path:
    sys.path.insert(0, str(EXAMPLES_DIR))

from sample_images import make_damage_photo  # noqa: E402

# Photo seed per severity for the committed samples: outside the training (0-99) and held-out
# (1000-1049) ranges, picked among the first few such seeds for a clear, correct classification.
PHOTO_SEEDS = {"minor": 10001, "moderate": 10007, "severe": 10003}

# The three vehicle claims of the claim ensemble, with the outcome each is built to reach.
VEHICLE_CLAIMS: dict[str, dict[str, Any]] = {
    "routine-repair": {
        "severity": "minor",
        "claim": {
            "claim_id": "CLM-2024-000101",
            "claim_amount": 2100.0,
            "vehicle_age_years": 4,
            "policy_tenure_months": 48,
            "prior_claims": 0,
            "days_since_policy_start": 150,
            "police_report": 1,
            "witness_count": 1,
            "hour_of_day": 10,
            "vehicle_value": 22000.0,
            "damage_area_pct": 12.0,
            "impact_speed_kmh": 20.0,
            "parts_count": 3,
            "description": "Low-speed reversing collision in a supermarket car park; rear bumper dented "
            "and a tail light cracked.",
        },
    },
    "write-off": {
        "severity": "severe",
        "claim": {
            "claim_id": "CLM-2024-000102",
            "claim_amount": 8500.0,
            "vehicle_age_years": 12,
            "policy_tenure_months": 96,
            "prior_claims": 0,
            "days_since_policy_start": 200,
            "police_report": 1,
            "witness_count": 2,
            "hour_of_day": 17,
            "vehicle_value": 9000.0,
            "damage_area_pct": 85.0,
            "impact_speed_kmh": 95.0,
            "parts_count": 22,
            "description": "Head-on collision on a country road at speed; front end crushed, airbags "
            "deployed, engine bay and both front wings destroyed.",
        },
    },
    "suspicious-refer": {
        "severity": "moderate",
        "claim": {
            "claim_id": "CLM-2024-000103",
            "claim_amount": 14000.0,
            "vehicle_age_years": 8,
            "policy_tenure_months": 2,
            "prior_claims": 3,
            "days_since_policy_start": 9,
            "police_report": 0,
            "witness_count": 0,
            "hour_of_day": 2,
            "vehicle_value": 15000.0,
            "damage_area_pct": 35.0,
            "impact_speed_kmh": 45.0,
            "parts_count": 8,
            "description": "Car found damaged in a lay-by at night nine days after the policy started; "
            "no witnesses and not reported to the police.",
        },
    },
}

COMPLAINTS = {
    "card-fraud": (
        "I noticed three payments on my credit card statement that I did not make, to an online shop "
        "I have never used. Someone must have stolen my card details. I want the money refunded and a "
        "new card sent out."
    ),
    "bereaved-mortgage-fees": (
        "My husband passed away in March and since then I have been trying to sort out our mortgage on "
        "my own. You have now charged me a fee of 250 pounds for missing a payment while the account was "
        "being transferred into my name. I am struggling to cope and cannot afford these charges."
    ),
    "home-claim-delay": (
        "I made a claim on my home insurance for storm damage to the roof eight weeks ago. Nobody has "
        "called me back despite being promised a call three times, and the assessor has still not "
        "visited. Please look into this urgently."
    ),
}

TRIAGE_SAMPLES = {
    "triage-product": {
        "mortgage-fees": COMPLAINTS["bereaved-mortgage-fees"],
        "car-insurance-mis-selling": (
            "When I renewed my car insurance the salesperson added breakdown cover and legal expenses "
            "that I did not need and never asked for. Nobody explained the extra cost."
        ),
    },
    "triage-issue": {
        "card-fraud": COMPLAINTS["card-fraud"],
        "app-fault": (
            "The app keeps crashing every time I try to log in to my current account, and the website "
            "shows an error when I try to pay a bill."
        ),
    },
    "triage-vulnerable": {
        "job-loss-debt": (
            "I was made redundant last month and I am behind on my rent. Now you have added charges "
            "to my overdraft that I simply cannot afford."
        ),
        "not-vulnerable": COMPLAINTS["home-claim-delay"],
    },
}


def vehicle_claim_document(name: str) -> dict[str, Any]:
    """The claim ensemble's upload for one of `VEHICLE_CLAIMS`: the claim and a base64 PNG photo."""
    spec = VEHICLE_CLAIMS[name]
    photo = make_damage_photo(spec["severity"], PHOTO_SEEDS[spec["severity"]])
    return {"claim": dict(spec["claim"]), "photo": base64.b64encode(photo).decode("ascii")}


def claim_decision_input(
    claim: dict[str, Any], fraud_probability: float, estimated_repair_cost: float, severity: str
) -> dict[str, Any]:
    return {
        "fraud_probability": fraud_probability,
        "estimated_repair_cost": estimated_repair_cost,
        "severity": severity,
        "vehicle_value": claim["vehicle_value"],
    }


def sample_files() -> dict[str, bytes]:
    """Every sample, as {path relative to examples/: content}."""
    files: dict[str, bytes] = {}

    def put_json(path: str, document: Any) -> None:
        files[path] = (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")

    claims = {name: spec["claim"] for name, spec in VEHICLE_CLAIMS.items()}
    put_json("fraud-score/samples/claim-low-risk.json", {"claim": claims["routine-repair"]})
    put_json("fraud-score/samples/claim-suspicious.json", {"claim": claims["suspicious-refer"]})
    put_json("repair-cost/samples/claim-minor-damage.json", {"claim": claims["routine-repair"]})
    put_json("repair-cost/samples/claim-major-damage.json", claims["write-off"])  # the bare claim works too
    for severity, seed in PHOTO_SEEDS.items():
        files[f"damage-severity/samples/{severity}.png"] = make_damage_photo(severity, seed)
    decisions = {
        "repair": claim_decision_input(claims["routine-repair"], 0.08, 2300.0, "minor"),
        "write-off": claim_decision_input(claims["write-off"], 0.05, 8700.0, "severe"),
        "refer": claim_decision_input(claims["suspicious-refer"], 0.93, 5200.0, "moderate"),
    }
    for name, document in decisions.items():
        put_json(f"claim-decision/samples/{name}.json", document)
    for service, samples in TRIAGE_SAMPLES.items():
        for name, text in samples.items():
            put_json(f"{service}/samples/{name}.json", {"text": text})
    put_json("echo/samples/hello.json", {"message": "hello", "numbers": [1, 2, 3], "nested": {"ok": True}})
    put_json("always-fails/samples/anything.json", {"note": "any input fails"})
    put_json("slow-noop/samples/no-sleep.json", {})
    put_json("slow-noop/samples/sleep-100ms.json", {"sleep_ms": 100})
    for name in VEHICLE_CLAIMS:
        put_json(f"vehicle-claim/samples/{name}.json", vehicle_claim_document(name))
    for name, text in COMPLAINTS.items():
        put_json(f"complaint-triage/samples/{name}.json", {"text": text})
    return files


def write_samples(root: Path = EXAMPLES_DIR) -> list[Path]:
    written = []
    for relative, content in sample_files().items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_bytes() != content:
            path.write_bytes(content)
        written.append(path)
    return written


if __name__ == "__main__":
    paths = write_samples()
    print(f"{len(paths)} sample files under {EXAMPLES_DIR}")

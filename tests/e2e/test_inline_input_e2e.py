"""One-request predictions on the local runtime: ``POST /predictions`` with ``input`` inline.

The real handlers, template wiring and state machines: the input is stored as an accepted upload,
the prediction starts in the request (no upload form, no S3 event) and ends like any other.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from conftest import sample
from ensemble_gateway.client import GatewayClientError


def submit_inline(api: Any, service: str, value: Any, **submit: Any) -> dict[str, Any]:
    return api.submit(service, extra={"input": value}, **submit)  # type: ignore[no-any-return]


def test_an_async_model_prediction_in_one_request_completes_and_is_notified(api: Any, webhook_receiver: Any) -> None:
    # GIVEN the async fraud model and a claim as JSON
    claim = json.loads(sample("fraud-score", "claim-suspicious.json"))

    # WHEN the claim is posted inline
    accepted = submit_inline(api, "fraud-score", claim, webhook_url=webhook_receiver.url)

    # THEN no upload form is given, the input is recorded as stored, and the prediction completes
    assert accepted["upload"] is None
    assert accepted["status"] in ("RUNNING", "COMPLETED")
    document = api.wait(accepted["prediction_id"], timeout=60)
    assert document["status"] == "COMPLETED", document
    assert json.loads(api.download(document))["fraud_probability"] > 0.5
    stored = json.dumps(claim, separators=(",", ":"), ensure_ascii=False).encode()
    assert document["input"]["sha256"] == hashlib.sha256(stored).hexdigest() == accepted["input"]["sha256"]
    assert document["input"]["size"] == len(stored)
    # AND exactly one webhook arrived
    assert len(webhook_receiver.wait_for(accepted["prediction_id"])) == 1


def test_a_realtime_model_answers_within_the_request(api: Any) -> None:
    # GIVEN the real-time repair-cost model
    claim = json.loads(sample("repair-cost", "claim-major-damage.json"))
    # WHEN the claim is posted inline
    accepted = submit_inline(api, "repair-cost", claim)
    # THEN the response already reports the end, and the output is there
    assert accepted["status"] == "COMPLETED", accepted
    document = api.status(accepted["prediction_id"])
    assert json.loads(api.download(document))["estimated_repair_cost"] > 1000


def test_the_vehicle_claim_ensemble_runs_from_one_request(api: Any) -> None:
    # GIVEN the vehicle-claim ensemble's sample (a photo and a claim, as JSON)
    request = json.loads(sample("vehicle-claim", "write-off.json"))
    # WHEN it is posted inline
    accepted = submit_inline(api, "vehicle-claim", request)
    document = api.wait(accepted["prediction_id"], timeout=120)
    # THEN every step ran and the decision is the one the sample was written for, as uploaded
    assert document["status"] == "COMPLETED", document
    assert {step["name"] for step in document["steps"]} == {"damage", "cost", "fraud", "decision"}
    output = json.loads(api.download(document))
    assert output["result"]["decision"] == "write-off", output["result"]


@pytest.mark.parametrize(
    ("service", "value", "status", "code"),
    [
        ("damage-severity", {"photo": "x"}, 400, "InvalidRequest"),
        ("fraud-score", None, 400, "InvalidRequest"),
        ("fraud-score", {"blob": "z" * (300 * 1024)}, 413, "InputTooLarge"),
    ],
)
def test_an_inline_input_the_gateway_cannot_take_is_refused_with_the_reason(
    api: Any, service: str, value: Any, status: int, code: str
) -> None:
    # GIVEN an inline input that is not JSON the service takes, null, or over 256 KiB
    # WHEN it is posted
    with pytest.raises(GatewayClientError) as raised:
        submit_inline(api, service, value)
    # THEN the API answers with the status and a message saying to upload instead (or why)
    assert raised.value.status == status
    assert raised.value.code == code
    assert raised.value.message

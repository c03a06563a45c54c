"""Bad requests to ``POST /predictions`` get a clear 4xx whose message names the problem.

Driven through new-prediction with API Gateway REST proxy events, against the stack of
``template.yaml`` deployed to moto running as a server on 127.0.0.1.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def services(stack: Any) -> dict[str, str]:
    """An active JSON service, an active image service and an inactive one."""
    names = {"json": unique("fraud"), "image": unique("damage"), "inactive": unique("retired")}
    stack.put_service(
        {"name": names["json"], "kind": "model", "model": {"endpoint_name": "fraud", "invocation": "async"}}
    )
    stack.put_service(
        {
            "name": names["image"],
            "kind": "model",
            "content_types": ["image/png", "image/jpeg"],
            "model": {"endpoint_name": "damage", "invocation": "async"},
        }
    )
    stack.put_service(
        {
            "name": names["inactive"],
            "kind": "model",
            "active": False,
            "model": {"endpoint_name": "retired", "invocation": "async"},
        }
    )
    return names


@pytest.fixture(scope="module")
def api_key(stack: Any) -> str:
    _, key = stack.new_client("bad-input")
    return str(key)


def predictions_in_table(stack: Any) -> int:
    table = stack.environment["PREDICTIONS_TABLE"]
    items = stack.client("dynamodb").scan(TableName=table)["Items"]
    return sum(1 for item in items if item.get("record_type", {}).get("S") == "prediction")


def test_unknown_service_is_404_naming_it(stack: Any, services: dict[str, str], api_key: str) -> None:
    # GIVEN a service name that is not in the catalog
    # WHEN a client asks for it
    answer = stack.submit({"service": "no-such-model"}, api_key)
    # THEN 404, and the message names the service
    assert answer.status == 404
    assert answer.body["code"] == "NotFound"
    assert "no-such-model" in answer.body["message"]


def test_unknown_field_is_400_naming_it(stack: Any, services: dict[str, str], api_key: str) -> None:
    # GIVEN a body with a field the contract does not have
    before = predictions_in_table(stack)
    # WHEN it is submitted
    answer = stack.submit({"service": services["json"], "priority": "high"}, api_key)
    # THEN 400 naming the field, and nothing was recorded
    assert answer.status == 400
    assert answer.body["code"] == "InvalidRequest"
    assert "unknown field 'priority'" in answer.body["message"]
    assert predictions_in_table(stack) == before


def test_unknown_nested_field_is_400_naming_its_path(stack: Any, services: dict[str, str], api_key: str) -> None:
    # GIVEN a webhook object with a misspelt key
    body = {"service": services["json"], "notification": {"webhook": {"uri": "https://hooks.example.com/x"}}}
    # WHEN it is submitted
    answer = stack.submit(body, api_key)
    # THEN 400, naming the unknown key by its path
    assert answer.status == 400
    assert "notification.webhook.uri" in answer.body["message"]


@pytest.mark.parametrize(
    "url",
    ["http://hooks.example.com/ml", "http://203.0.113.10/ml", "ftp://hooks.example.com/ml"],
    ids=["http-name", "http-public-ip", "ftp"],
)
def test_webhook_url_that_is_not_https_is_400(stack: Any, services: dict[str, str], api_key: str, url: str) -> None:
    # GIVEN a webhook URL that is not https (loopback http is allowed in this local mode only)
    body = {"service": services["json"], "notification": {"webhook": {"url": url}}}
    # WHEN it is submitted
    answer = stack.submit(body, api_key)
    # THEN 400, and the message says https is required
    assert answer.status == 400
    assert answer.body["code"] == "InvalidRequest"
    assert "notification.webhook.url" in answer.body["message"]
    assert "https" in answer.body["message"]


def test_webhook_url_to_a_private_address_is_400(stack: Any, services: dict[str, str], api_key: str) -> None:
    # GIVEN an https webhook URL pointing at the instance metadata address
    body = {"service": services["json"], "notification": {"webhook": {"url": "https://169.254.169.254/x"}}}
    # WHEN it is submitted
    answer = stack.submit(body, api_key)
    # THEN 400 naming the non-public address
    assert answer.status == 400
    assert "non-public address" in answer.body["message"]
    assert "169.254.169.254" in answer.body["message"]


def test_unsupported_content_type_is_400_naming_it_and_listing_accepted(
    stack: Any, services: dict[str, str], api_key: str
) -> None:
    # GIVEN an image service that accepts PNG and JPEG
    # WHEN a client declares a GIF
    answer = stack.submit({"service": services["image"], "content_type": "image/gif"}, api_key)
    # THEN 400 naming the refused type and every accepted one
    assert answer.status == 400
    message = answer.body["message"]
    assert "image/gif" in message
    assert "image/png" in message
    assert "image/jpeg" in message


def test_content_type_with_parameters_is_accepted_for_its_media_type(
    stack: Any, services: dict[str, str], api_key: str
) -> None:
    # GIVEN an image service that accepts PNG and JPEG
    # WHEN a client declares PNG with a parameter, in capitals
    answer = stack.submit({"service": services["image"], "content_type": "Image/PNG; q=1"}, api_key)
    # THEN it is accepted, and the upload must carry the content type as given
    assert answer.status == 202, answer.body
    assert answer.body["upload"]["fields"]["Content-Type"] == "Image/PNG; q=1"


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"content_type": "json"}, ["field 'content_type'", "'json' is not a media type"]),
        ({"content_type": "application/json; charset"}, ["field 'content_type'", "is not a media type"]),
        ({"accept": "csv"}, ["field 'accept'", "'csv' is not a media type", "HTTP Accept header"]),
        ({"accept": "text/csv,"}, ["field 'accept'", "HTTP Accept header"]),
        ({"accept": "text/" + "x" * 128}, ["field 'accept'", "128"]),
        ({"accept": None}, ["field 'accept'"]),
    ],
    ids=[
        "content-type-no-subtype",
        "content-type-bad-parameter",
        "accept-no-subtype",
        "accept-trailing-comma",
        "accept-too-long",
        "accept-null",
    ],
)
def test_a_malformed_content_type_or_accept_is_400_naming_the_field(
    stack: Any, services: dict[str, str], api_key: str, body: dict[str, Any], named: list[str]
) -> None:
    # GIVEN a request whose content_type or accept is not a media type (list)
    before = predictions_in_table(stack)
    # WHEN it is submitted
    answer = stack.submit({"service": services["json"], **body}, api_key)
    # THEN 400 naming the field and what is wrong, and nothing was recorded
    assert answer.status == 400
    assert answer.body["code"] == "InvalidRequest"
    for fragment in named:
        assert fragment in answer.body["message"]
    assert predictions_in_table(stack) == before


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ('{"service": "fraud",', "not valid JSON"),
        ("not json at all", "not valid JSON"),
        ("", "request body is empty"),
    ],
    ids=["truncated", "text", "empty"],
)
def test_malformed_json_is_400(stack: Any, services: dict[str, str], api_key: str, raw: str, named: str) -> None:
    # GIVEN a body that is not a JSON document
    # WHEN it is submitted
    answer = stack.submit(raw, api_key)
    # THEN 400 saying what is wrong with the body
    assert answer.status == 400
    assert answer.body["code"] == "InvalidRequest"
    assert named in answer.body["message"]
    assert "JSON" in answer.body["message"]


def test_json_that_is_not_an_object_is_400(stack: Any, services: dict[str, str], api_key: str) -> None:
    # GIVEN a valid JSON document that is a list, not an object
    # WHEN it is submitted
    answer = stack.submit(json.dumps([{"service": services["json"]}]), api_key)
    # THEN 400 saying an object is expected (not the list's first element accepted)
    assert answer.status == 400
    assert answer.body["code"] == "InvalidRequest"
    assert "JSON object" in answer.body["message"]


def test_missing_service_is_400_naming_the_field(stack: Any, services: dict[str, str], api_key: str) -> None:
    # GIVEN a body without the required 'service'
    answer = stack.submit({"metadata": {"a": "b"}}, api_key)
    # THEN 400 naming it
    assert answer.status == 400
    assert "'service' is required" in answer.body["message"]


def test_missing_authorization_is_401(stack: Any, services: dict[str, str]) -> None:
    # GIVEN a valid body but no Authorization header
    # WHEN it is submitted
    answer = stack.submit({"service": services["json"]}, api_key=None)
    # THEN 401, telling the caller what to send
    assert answer.status == 401
    assert answer.body["code"] == "Unauthenticated"
    assert "Authorization" in answer.body["message"]


def test_unknown_api_key_is_401(stack: Any, services: dict[str, str]) -> None:
    # GIVEN an API key nobody was issued
    answer = stack.submit({"service": services["json"]}, api_key="egk_" + "x" * 43)
    # THEN 401
    assert answer.status == 401
    assert answer.body["code"] == "Unauthenticated"


def test_inactive_service_is_422(stack: Any, services: dict[str, str], api_key: str) -> None:
    # GIVEN a service that exists but is deactivated
    # WHEN a client asks for it
    answer = stack.submit({"service": services["inactive"]}, api_key)
    # THEN 422 naming the service
    assert answer.status == 422
    assert answer.body["code"] == "ServiceInactive"
    assert services["inactive"] in answer.body["message"]


def test_same_idempotency_key_and_body_returns_the_same_prediction(
    stack: Any, services: dict[str, str], api_key: str
) -> None:
    # GIVEN an accepted request with an Idempotency-Key
    key = unique("claim-C-1001")
    body = {"service": services["json"], "metadata": {"claim": "C-1001"}}
    first = stack.submit(body, api_key, idempotency_key=key)
    assert first.status == 202
    before = predictions_in_table(stack)

    # WHEN the client retries with the same key and the same body (keys in another order)
    again = stack.submit(
        json.dumps({"metadata": {"claim": "C-1001"}, "service": services["json"]}),
        api_key,
        idempotency_key=key,
    )

    # THEN it gets the same prediction, with an upload form for the same object, and no new record
    assert again.status == 202
    assert again.body["prediction_id"] == first.body["prediction_id"]
    assert again.body["upload"]["fields"]["key"] == first.body["upload"]["fields"]["key"]
    assert predictions_in_table(stack) == before


def test_same_idempotency_key_with_another_body_is_409(stack: Any, services: dict[str, str], api_key: str) -> None:
    # GIVEN an accepted request with an Idempotency-Key
    key = unique("claim-C-1002")
    first = stack.submit({"service": services["json"], "metadata": {"claim": "C-1002"}}, api_key, idempotency_key=key)
    assert first.status == 202

    # WHEN the key is reused with a different body
    other = stack.submit({"service": services["json"], "metadata": {"claim": "C-9999"}}, api_key, idempotency_key=key)

    # THEN 409 naming the reused key's problem
    assert other.status == 409
    assert answer_code(other) == "Conflict"
    assert "Idempotency-Key" in other.body["message"]


def test_an_idempotency_key_older_than_24_hours_starts_a_new_prediction(
    stack: Any, services: dict[str, str], api_key: str
) -> None:
    # GIVEN a key used more than 24 h ago, whose marker DynamoDB's TTL has not deleted yet
    key = unique("claim-C-1003")
    old = stack.submit({"service": services["json"], "metadata": {"claim": "old"}}, api_key, idempotency_key=key)
    assert old.status == 202
    dynamodb = stack.client("dynamodb")
    table = stack.environment["PREDICTIONS_TABLE"]
    markers = [
        item
        for item in dynamodb.scan(TableName=table)["Items"]
        if item.get("target", {}).get("S") == old.body["prediction_id"]
    ]
    assert len(markers) == 1
    dynamodb.update_item(
        TableName=table,
        Key={"prediction_id": markers[0]["prediction_id"]},
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 60)}},
    )

    # WHEN the key is used again with another body
    new = stack.submit({"service": services["json"], "metadata": {"claim": "new"}}, api_key, idempotency_key=key)
    # AND that request is retried
    retried = stack.submit({"service": services["json"], "metadata": {"claim": "new"}}, api_key, idempotency_key=key)

    # THEN the key starts a new prediction (no 409), which the retry then replays
    assert new.status == 202, new.body
    assert new.body["prediction_id"] != old.body["prediction_id"]
    assert retried.status == 202
    assert retried.body["prediction_id"] == new.body["prediction_id"]


def test_idempotency_keys_are_per_client(stack: Any, services: dict[str, str], api_key: str) -> None:
    # GIVEN a key used by one client
    key = unique("shared-key")
    body = {"service": services["json"]}
    mine = stack.submit(body, api_key, idempotency_key=key)
    _, other_key = stack.new_client("other")

    # WHEN another client uses the same key and body
    theirs = stack.submit(body, other_key, idempotency_key=key)

    # THEN each gets its own prediction
    assert mine.status == theirs.status == 202
    assert theirs.body["prediction_id"] != mine.body["prediction_id"]


@pytest.mark.parametrize(
    ("metadata", "named"),
    [
        ({f"k{i}": "v" for i in range(17)}, ["field 'metadata'", "16"]),
        ({"note": "x" * 257}, ["field 'metadata.note'", "256"]),
        ({"": "v"}, ["field 'metadata': key ''", "at least 1 character"]),
        ({"k" * 65: "v"}, ["field 'metadata': key 'kkk", "64"]),
        ({"k": 5}, ["field 'metadata.k'"]),
    ],
    ids=["too-many-entries", "value-too-long", "empty-key", "key-too-long", "not-a-string"],
)
def test_metadata_too_large_or_malformed_is_400(
    stack: Any, services: dict[str, str], api_key: str, metadata: dict[str, Any], named: list[str]
) -> None:
    # GIVEN metadata beyond the small str → str map the contract allows
    # WHEN it is submitted
    answer = stack.submit({"service": services["json"], "metadata": metadata}, api_key)
    # THEN 400 naming the metadata entry and the limit it breaks
    assert answer.status == 400
    assert answer.body["code"] == "InvalidRequest"
    for fragment in named:
        assert fragment in answer.body["message"]


def test_unknown_prediction_and_another_clients_prediction_are_404(
    stack: Any, services: dict[str, str], api_key: str
) -> None:
    # GIVEN a prediction of another client
    _, other_key = stack.new_client("owner")
    theirs = stack.submit({"service": services["json"]}, other_key)
    assert theirs.status == 202

    # WHEN this client polls it, and polls an ID that does not exist
    foreign = stack.get_prediction(theirs.body["prediction_id"], api_key)
    missing = stack.get_prediction("p20260101000000000000000000", api_key)

    # THEN both are the same 404 (no existence leak)
    assert foreign.status == missing.status == 404
    assert foreign.body["code"] == missing.body["code"] == "NotFound"


def answer_code(answer: Any) -> str:
    return str(answer.body["code"])

"""The single-model lifecycle, driven through the real handlers with real AWS event shapes.

moto runs as an HTTP server on 127.0.0.1 with the stack of ``template.yaml`` deployed to it. The
test plays Lambda (it calls each handler with the event its trigger would send), the event source
mappings (it receives from the queues), and SageMaker async (moto's runtime only returns canned
data: the test writes the output and publishes SageMaker's notification). Uploads go through the
presigned POST with a real HTTP request, webhooks reach a real HTTP server on 127.0.0.1 and are
verified with the ``standardwebhooks`` package, and results are downloaded through the presigned
URL.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest
import requests
from standardwebhooks import Webhook

from ensemble_gateway.handlers import notifications, process_input, webhook_delivery

EVENTS = Path(__file__).resolve().parents[2] / "events"
CLAIM = {"claim_id": "C-1001", "amount": 1200.5, "vehicle_value": 9000, "prior_claims": 1}


def sagemaker_message(kind: str, **changes: Any) -> dict[str, Any]:
    """SageMaker async's InferenceResult notification (from the committed sample events)."""
    name = "notifications_success.json" if kind == "success" else "notifications_failure.json"
    event = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    message: dict[str, Any] = json.loads(event["Records"][0]["Sns"]["Message"])
    for key, value in changes.items():
        if isinstance(value, dict):
            message[key] = {**message.get(key, {}), **value}
        else:
            message[key] = value
    return message


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def upload(document: dict[str, Any], payload: bytes, content_type: str = "application/json") -> None:
    """Send the input the way a client does: a multipart POST to the presigned form."""
    form = document["upload"]
    assert form["method"] == "POST"
    response = requests.post(
        form["url"], data=form["fields"], files={"file": ("input", payload, content_type)}, timeout=10
    )
    assert response.status_code in (200, 201, 204), response.text


def run_process_input(stack: Any) -> list[dict[str, Any]]:
    """Deliver what S3 put on the InputQueue to process-input; return the messages delivered."""
    messages = stack.receive(stack.queue_url("InputQueue"))
    if messages:
        outcome = process_input.handler(
            stack.sqs_event(messages, stack.queue_arn("InputQueue")), stack.context("ProcessInputFunction")
        )
        assert outcome == {"batchItemFailures": []}
    return messages


def run_webhook_delivery(stack: Any) -> list[dict[str, Any]]:
    """Deliver the webhook jobs now on the WebhookQueue to webhook-delivery; return the jobs."""
    messages = stack.receive(stack.queue_url("WebhookQueue"))
    if messages:
        outcome = webhook_delivery.handler(
            stack.sqs_event(messages, stack.queue_arn("WebhookQueue")),
            stack.context("WebhookDeliveryFunction"),
        )
        assert outcome == {"batchItemFailures": []}
    return [json.loads(m["Body"]) for m in messages]


def notify(stack: Any, topic: str, message: dict[str, Any]) -> None:
    """SNS → notifications: one record, as SNS invokes a subscribed function."""
    outcome = notifications.handler(
        stack.sns_event(stack.topic_arn(topic), message), stack.context("NotificationsFunction")
    )
    assert outcome == {"finished": 1}


def s3_object_keys(messages: list[dict[str, Any]]) -> list[str]:
    keys = []
    for message in messages:
        for record in json.loads(message["Body"]).get("Records", []):
            # S3 URL-encodes keys in its events.
            keys.append(unquote_plus(record["s3"]["object"]["key"]))
    return keys


def verified(secret: str, request: dict[str, Any]) -> dict[str, Any]:
    """The payload of a webhook request, verified as any Standard Webhooks receiver would."""
    headers = {k.lower(): v for k, v in request["headers"].items()}
    return Webhook(secret).verify(request["body"], headers)


@pytest.fixture
def async_service(stack: Any) -> dict[str, Any]:
    definition = {
        "name": unique("fraud-async"),
        "kind": "model",
        "version": "1.0.0",
        "content_types": ["application/json"],
        "max_bytes": 1024 * 1024,
        "model": {"endpoint_name": unique("fraud-score"), "invocation": "async"},
    }
    stack.put_service(definition)
    return definition


@pytest.fixture
def realtime_service(stack: Any) -> dict[str, Any]:
    definition = {
        "name": unique("repair-rt"),
        "kind": "model",
        "version": "2.1.0",
        "content_types": ["application/json"],
        "model": {"endpoint_name": unique("repair-cost"), "invocation": "realtime"},
    }
    stack.put_service(definition)
    return definition


@pytest.fixture
def client(stack: Any) -> dict[str, Any]:
    registered, api_key = stack.new_client(unique("client"))
    return {"client": registered, "api_key": api_key, "secret": registered.webhook_secrets[0]}


def submit_and_upload(stack: Any, service: dict[str, Any], client: dict[str, Any], webhook_url: str | None) -> str:
    body: dict[str, Any] = {"service": service["name"], "metadata": {"claim": "C-1001"}}
    if webhook_url:
        body["notification"] = {"webhook": {"url": webhook_url}}
    answer = stack.submit(body, client["api_key"])
    assert answer.status == 202, answer.body
    assert answer.body["status"] == "PENDING_UPLOAD"
    prediction_id = str(answer.body["prediction_id"])
    upload(answer.body, json.dumps(CLAIM).encode())
    return prediction_id


# ------------------------------------------------------------------------------------------------
# async endpoint
# ------------------------------------------------------------------------------------------------
def test_async_model_prediction_completes_with_signed_webhook_and_downloadable_result(
    stack: Any,
    async_service: dict[str, Any],
    client: dict[str, Any],
    webhook_receiver: Any,
    sagemaker_calls: Any,
) -> None:
    # GIVEN an async model service and a client that asks for a webhook on 127.0.0.1
    s3 = stack.client("s3")

    # WHEN the client submits and uploads its input through the presigned POST
    prediction_id = submit_and_upload(stack, async_service, client, webhook_receiver.url)
    # AND S3's ObjectCreated event reaches process-input through the InputQueue
    delivered = run_process_input(stack)

    # THEN S3 announced exactly the uploaded key (not the accepted copy the gateway wrote)
    assert s3_object_keys(delivered) == [f"uploads/{prediction_id}"]
    # AND the upload was accepted: copied to inputs/{id}, its digest recorded, the upload removed
    stored = s3.get_object(Bucket=stack.bucket, Key=f"inputs/{prediction_id}")
    raw = stored["Body"].read()
    assert json.loads(raw) == CLAIM
    with pytest.raises(s3.exceptions.ClientError):
        s3.head_object(Bucket=stack.bucket, Key=f"uploads/{prediction_id}")
    assert stack.prediction_record(prediction_id).input.model_dump() == {
        "sha256": hashlib.sha256(raw).hexdigest(),
        "size": len(raw),
        "content_type": "application/json",
    }
    assert run_process_input(stack) == []
    # AND the prediction went to the async endpoint once, with its ID as the InferenceId
    calls = sagemaker_calls.of("InvokeEndpointAsync")
    assert len(calls) == 1
    assert calls[0]["EndpointName"] == async_service["model"]["endpoint_name"]
    assert calls[0]["InferenceId"] == prediction_id
    assert calls[0]["InputLocation"] == f"s3://{stack.bucket}/inputs/{prediction_id}"
    # AND polling shows it running, without a result yet
    running = stack.get_prediction(prediction_id, client["api_key"])
    assert running.status == 200
    assert running.body["status"] == "RUNNING"
    assert running.body["result"] is None
    assert running.body["input"]["sha256"] == hashlib.sha256(raw).hexdigest()

    # WHEN SageMaker writes the output and publishes its success notification
    output = {"fraud_probability": 0.12, "contributions": {"amount": 0.03}}
    output_key = f"outputs/{uuid.uuid4()}.out"
    s3.put_object(Bucket=stack.bucket, Key=output_key, Body=json.dumps(output).encode(), ContentType="application/json")
    notify(
        stack,
        "SuccessTopic",
        sagemaker_message(
            "success",
            inferenceId=prediction_id,
            requestParameters={
                "endpointName": async_service["model"]["endpoint_name"],
                "inputLocation": f"s3://{stack.bucket}/inputs/{prediction_id}",
            },
            responseParameters={"outputLocation": f"s3://{stack.bucket}/{output_key}"},
        ),
    )
    # AND the webhook job is delivered by webhook-delivery
    jobs = run_webhook_delivery(stack)

    # THEN one job was queued and the receiver got exactly one webhook, which verifies
    assert [(job["prediction_id"], job["event_type"]) for job in jobs] == [(prediction_id, "prediction.completed")]
    received = webhook_receiver.delivered(prediction_id)
    assert len(received) == 1
    payload = verified(client["secret"], received[0])
    assert payload["type"] == "prediction.completed"
    assert payload["data"]["prediction_id"] == prediction_id
    assert payload["data"]["status"] == "COMPLETED"
    assert payload["data"]["metadata"] == {"claim": "C-1001"}
    # AND polling shows it completed, and the presigned URL downloads the model's output
    done = stack.get_prediction(prediction_id, client["api_key"])
    assert done.body["status"] == "COMPLETED"
    assert done.body["model"] == {"endpoint": async_service["model"]["endpoint_name"], "version": "1.0.0"}
    assert done.body["result"]["content_type"] == "application/json"
    download = requests.get(done.body["result"]["url"], timeout=10)
    assert download.status_code == 200
    assert download.json() == output


def test_async_model_failure_is_reported_by_poll_and_signed_webhook(
    stack: Any, async_service: dict[str, Any], client: dict[str, Any], webhook_receiver: Any
) -> None:
    # GIVEN an uploaded prediction dispatched to an async endpoint
    prediction_id = submit_and_upload(stack, async_service, client, webhook_receiver.url)
    run_process_input(stack)
    reason = "ClientError: Received server error (500) from model."

    # WHEN SageMaker writes the failure and publishes its error notification
    failure_key = f"failures/{uuid.uuid4()}-error.out"
    stack.client("s3").put_object(Bucket=stack.bucket, Key=failure_key, Body=b"Traceback: boom")
    notify(
        stack,
        "ErrorTopic",
        sagemaker_message(
            "failure",
            inferenceId=prediction_id,
            failureReason=reason,
            failureLocation=f"s3://{stack.bucket}/{failure_key}",
        ),
    )
    run_webhook_delivery(stack)

    # THEN polling shows FAILED with the model's reason and no result
    failed = stack.get_prediction(prediction_id, client["api_key"])
    assert failed.body["status"] == "FAILED"
    assert failed.body["result"] is None
    assert failed.body["error"]["code"] == "ModelError"
    assert reason in failed.body["error"]["message"]
    # AND the receiver got one verified prediction.failed webhook carrying the same error
    received = webhook_receiver.delivered(prediction_id)
    assert len(received) == 1
    payload = verified(client["secret"], received[0])
    assert payload["type"] == "prediction.failed"
    assert payload["data"]["error"]["code"] == "ModelError"


# ------------------------------------------------------------------------------------------------
# real-time endpoint
# ------------------------------------------------------------------------------------------------
def test_realtime_model_prediction_completes_in_process_input_without_an_sns_hop(
    stack: Any,
    realtime_service: dict[str, Any],
    client: dict[str, Any],
    webhook_receiver: Any,
    sagemaker_calls: Any,
) -> None:
    # GIVEN a real-time model service whose endpoint answers with a repair estimate
    estimate = {"repair_cost_eur": 1830.0}
    stack.queue_realtime_result(estimate, variant="blue")
    stack.capture_topic("SuccessTopic")
    stack.sns_events_from("SuccessTopic")  # start from an empty capture

    # WHEN the client submits and uploads, and process-input handles the S3 event
    prediction_id = submit_and_upload(stack, realtime_service, client, webhook_receiver.url)
    run_process_input(stack)

    # THEN the endpoint was invoked once with the uploaded bytes
    calls = sagemaker_calls.of("InvokeEndpoint")
    assert len(calls) == 1
    assert calls[0]["EndpointName"] == realtime_service["model"]["endpoint_name"]
    assert json.loads(calls[0]["Body"]) == CLAIM
    assert sagemaker_calls.of("InvokeEndpointAsync") == []
    # AND the prediction finished right there: stored output, nothing published to the topics
    record = stack.prediction_record(prediction_id)
    assert record.status.value == "COMPLETED"
    assert record.output_uri == f"s3://{stack.bucket}/outputs/{prediction_id}"
    assert stack.sns_events_from("SuccessTopic") == []

    # WHEN the webhook job is delivered
    run_webhook_delivery(stack)

    # THEN the receiver got one verified prediction.completed webhook
    received = webhook_receiver.delivered(prediction_id)
    assert len(received) == 1
    assert verified(client["secret"], received[0])["type"] == "prediction.completed"
    # AND polling shows the variant that answered, and the URL downloads the endpoint's answer
    done = stack.get_prediction(prediction_id, client["api_key"])
    assert done.body["status"] == "COMPLETED"
    assert done.body["model"]["version"] == "2.1.0/blue"
    download = requests.get(done.body["result"]["url"], timeout=10)
    assert download.status_code == 200
    assert download.json() == estimate


# ------------------------------------------------------------------------------------------------
# at-least-once delivery
# ------------------------------------------------------------------------------------------------
def test_duplicate_s3_events_dispatch_an_async_prediction_once(
    stack: Any, async_service: dict[str, Any], client: dict[str, Any], sagemaker_calls: Any
) -> None:
    # GIVEN an upload whose S3 event S3 delivers three times (twice in one batch, once later)
    prediction_id = submit_and_upload(stack, async_service, client, webhook_url=None)
    messages = [
        m for m in stack.receive(stack.queue_url("InputQueue")) if f"uploads/{prediction_id}" in s3_object_keys([m])
    ]
    assert len(messages) == 1
    duplicate = {**messages[0], "MessageId": str(uuid.uuid4())}
    arn = stack.queue_arn("InputQueue")

    # WHEN process-input gets a batch holding the event twice, then the event again
    first = process_input.handler(stack.sqs_event([messages[0], duplicate], arn), stack.context("ProcessInputFunction"))
    again = process_input.handler(stack.sqs_event(messages, arn), stack.context("ProcessInputFunction"))

    # THEN nothing failed, the endpoint was invoked exactly once, and the record is RUNNING
    assert first == {"batchItemFailures": []}
    assert again == {"batchItemFailures": []}
    calls = sagemaker_calls.of("InvokeEndpointAsync")
    assert [c["InferenceId"] for c in calls] == [prediction_id]
    record = stack.prediction_record(prediction_id)
    assert record.status.value == "RUNNING"
    assert record.dispatched_at is not None


def test_duplicate_s3_events_invoke_a_realtime_endpoint_and_finish_once(
    stack: Any, realtime_service: dict[str, Any], client: dict[str, Any], sagemaker_calls: Any
) -> None:
    # GIVEN an upload to a real-time service whose S3 event arrives twice
    stack.queue_realtime_result({"repair_cost_eur": 10.0})
    stack.capture_topic("SuccessTopic")
    stack.sns_events_from("SuccessTopic")  # start from an empty capture
    prediction_id = submit_and_upload(stack, realtime_service, client, webhook_url=None)
    messages = stack.receive(stack.queue_url("InputQueue"))
    arn = stack.queue_arn("InputQueue")

    # WHEN process-input handles the event, then its redelivery
    for _ in range(2):
        outcome = process_input.handler(stack.sqs_event(messages, arn), stack.context("ProcessInputFunction"))
        assert outcome == {"batchItemFailures": []}

    # THEN the endpoint was invoked once and the prediction finished once
    assert len(sagemaker_calls.of("InvokeEndpoint")) == 1
    record = stack.prediction_record(prediction_id)
    assert record.status.value == "COMPLETED"
    assert stack.sns_events_from("SuccessTopic") == []


def test_duplicate_sns_notifications_finish_once_and_send_one_webhook(
    stack: Any, async_service: dict[str, Any], client: dict[str, Any], webhook_receiver: Any
) -> None:
    # GIVEN a running async prediction with a webhook, and SageMaker's success notification
    prediction_id = submit_and_upload(stack, async_service, client, webhook_receiver.url)
    run_process_input(stack)
    output_key = f"outputs/{uuid.uuid4()}.out"
    stack.client("s3").put_object(Bucket=stack.bucket, Key=output_key, Body=b'{"fraud_probability": 0.5}')
    message = sagemaker_message(
        "success",
        inferenceId=prediction_id,
        responseParameters={"outputLocation": f"s3://{stack.bucket}/{output_key}"},
    )

    # WHEN SNS delivers the notification twice before any webhook is sent
    notify(stack, "SuccessTopic", message)
    finished_first = stack.prediction_record(prediction_id).finished_at
    notify(stack, "SuccessTopic", message)
    # AND webhook-delivery works through every job queued
    run_webhook_delivery(stack)
    # AND SNS delivers it once more after the webhook went out
    notify(stack, "SuccessTopic", message)
    late_jobs = run_webhook_delivery(stack)

    # THEN the record finished once (its finish time did not move)
    record = stack.prediction_record(prediction_id)
    assert record.status.value == "COMPLETED"
    assert record.finished_at == finished_first
    # AND exactly one webhook reached the receiver
    assert len(webhook_receiver.attempts(prediction_id)) == 1
    assert verified(client["secret"], webhook_receiver.delivered(prediction_id)[0])["type"] == ("prediction.completed")
    # AND the late duplicate queued no new webhook job at all
    assert late_jobs == []


# ------------------------------------------------------------------------------------------------
# accept and content types
# ------------------------------------------------------------------------------------------------
def test_an_async_prediction_asks_for_its_accept_and_reports_the_models_content_type(
    stack: Any, async_service: dict[str, Any], client: dict[str, Any], sagemaker_calls: Any
) -> None:
    # GIVEN a JSON service, and a client sending JSON with a charset and asking for CSV back
    body = {
        "service": async_service["name"],
        "content_type": "application/json; charset=utf-8",
        "accept": "text/csv",
    }
    # WHEN it submits through new-prediction
    answer = stack.submit(body, client["api_key"])
    # THEN it is accepted, and the upload form carries the content type as given
    assert answer.status == 202, answer.body
    assert answer.body["upload"]["fields"]["Content-Type"] == "application/json; charset=utf-8"
    prediction_id = str(answer.body["prediction_id"])
    # WHEN the client uploads with it, and process-input handles the S3 event
    upload(answer.body, json.dumps(CLAIM).encode(), content_type="application/json; charset=utf-8")
    run_process_input(stack)
    # THEN the object and SageMaker's ContentType are the content type as given, and SageMaker was asked for CSV
    stored = stack.client("s3").head_object(Bucket=stack.bucket, Key=f"inputs/{prediction_id}")
    assert stored["ContentType"] == "application/json; charset=utf-8"
    (call,) = sagemaker_calls.of("InvokeEndpointAsync")
    assert call["ContentType"] == "application/json; charset=utf-8"
    assert call["Accept"] == "text/csv"

    # WHEN the model answers CSV and SageMaker publishes its success notification saying so
    output_key = f"outputs/{uuid.uuid4()}.out"
    stack.client("s3").put_object(Bucket=stack.bucket, Key=output_key, Body=b"fraud_probability\n0.12\n")
    notify(
        stack,
        "SuccessTopic",
        sagemaker_message(
            "success",
            inferenceId=prediction_id,
            responseParameters={"contentType": "text/csv", "outputLocation": f"s3://{stack.bucket}/{output_key}"},
        ),
    )
    # THEN polling shows the content type the model returned, and the URL downloads its CSV
    done = stack.get_prediction(prediction_id, client["api_key"])
    assert done.body["status"] == "COMPLETED"
    assert done.body["result"]["content_type"] == "text/csv"
    assert requests.get(done.body["result"]["url"], timeout=10).content == b"fraud_probability\n0.12\n"


def test_a_realtime_prediction_asks_for_its_accept_and_reports_the_models_content_type(
    stack: Any, realtime_service: dict[str, Any], client: dict[str, Any], sagemaker_calls: Any
) -> None:
    # GIVEN a real-time endpoint whose model answers CSV
    stack.queue_realtime_result("repair_cost_eur\n1830.0\n", content_type="text/csv")
    # WHEN a client asks for CSV, uploads, and process-input handles the S3 event
    answer = stack.submit({"service": realtime_service["name"], "accept": "text/csv"}, client["api_key"])
    assert answer.status == 202, answer.body
    prediction_id = str(answer.body["prediction_id"])
    upload(answer.body, json.dumps(CLAIM).encode())
    run_process_input(stack)
    # THEN the endpoint was asked for CSV (and got the service's content type)
    (call,) = sagemaker_calls.of("InvokeEndpoint")
    assert call["Accept"] == "text/csv"
    assert call["ContentType"] == "application/json"
    # AND polling shows the content type the model returned, and the URL downloads its answer
    done = stack.get_prediction(prediction_id, client["api_key"])
    assert done.body["status"] == "COMPLETED"
    assert done.body["result"]["content_type"] == "text/csv"
    assert requests.get(done.body["result"]["url"], timeout=10).content == b"repair_cost_eur\n1830.0\n"


def test_a_prediction_without_accept_asks_the_model_for_json(
    stack: Any, async_service: dict[str, Any], client: dict[str, Any], sagemaker_calls: Any
) -> None:
    # GIVEN / WHEN a client that does not say what it wants back submits and uploads
    submit_and_upload(stack, async_service, client, webhook_url=None)
    run_process_input(stack)
    # THEN SageMaker was asked for JSON
    (call,) = sagemaker_calls.of("InvokeEndpointAsync")
    assert call["Accept"] == "application/json"


def test_an_async_model_failure_shows_the_models_own_message(
    stack: Any, async_service: dict[str, Any], client: dict[str, Any]
) -> None:
    # GIVEN an uploaded prediction dispatched to an async endpoint
    prediction_id = submit_and_upload(stack, async_service, client, webhook_url=None)
    run_process_input(stack)
    reason = (
        'ClientError: Received server error (500) from model with message "vehicle_value must be positive, '
        'got "-1"". See https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#logEventViewer:'
        "group=/aws/sagemaker/Endpoints/fraud-score in account 123456789012 for more information."
    )
    failure_uri = f"s3://{stack.bucket}/failures/{uuid.uuid4()}-error.out"
    # WHEN SageMaker publishes its error notification in its own words
    notify(
        stack,
        "ErrorTopic",
        sagemaker_message("failure", inferenceId=prediction_id, failureReason=reason, failureLocation=failure_uri),
    )
    # THEN polling shows the model's message, quotes included, under the ModelError code
    failed = stack.get_prediction(prediction_id, client["api_key"])
    assert failed.body["status"] == "FAILED"
    assert failed.body["error"] == {
        "code": "ModelError",
        "message": 'vehicle_value must be positive, got "-1"',
        "step": None,
    }
    # AND the failure object SageMaker wrote stays referenced
    assert stack.prediction_record(prediction_id).failure_uri == failure_uri

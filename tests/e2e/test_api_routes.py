"""``GET /predictions``, ``POST /predictions/{id}/cancel`` and ``POST /predictions/{id}/upload`` end to
end on the local runtime, through the HTTP API: the template's routes, functions, index and IAM-shaped
wiring, the real handlers, models and state machines on moto.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook

from ensemble_gateway.client import GatewayClient, GatewayClientError

WAIT = 60.0
ENSEMBLE = "test-cancel-slow"


def eventually(check: Callable[[], Any], timeout: float = WAIT, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy (generous timeout; no timing asserted)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            assert value, f"{what} did not happen within {timeout} s"
            return value
        time.sleep(0.2)


def moment(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def settled(runtime: Any) -> None:
    """Wait until no model runs and no notification or upload waits in a queue or a poller."""

    def quiet() -> bool:
        if runtime.sagemaker is not None and not runtime.sagemaker.wait_idle(0.1):
            return False
        in_flight = runtime.in_flight()
        return in_flight.events_queued == 0 and in_flight.uploads_queued == 0 and in_flight.busy_pollers == 0

    eventually(quiet, what="the runtime settling")


def status_becomes(api: GatewayClient, prediction_id: str, status: str) -> dict[str, Any]:
    document: dict[str, Any] = eventually(
        lambda: (d := api.status(prediction_id))["status"] == status and d, what=f"{prediction_id} {status}"
    )
    return document


@pytest.fixture
def stranger(runtime: Any) -> GatewayClient:
    """A client of its own: its list holds only what a test submits with it."""
    from ensemble_gateway.adapters.dynamodb import DynamoClientDirectory
    from ensemble_gateway.admin import create_client

    directory = DynamoClientDirectory(runtime.stack.outputs["ClientsTableName"], runtime.client("dynamodb"))
    _, api_key = create_client(directory, "routes-stranger", unique_name=True)
    return GatewayClient(runtime.api_url, api_key)


# -- GET /predictions ----------------------------------------------------------------------------


def test_the_list_is_the_callers_own_newest_first_filtered_and_paged(
    api: GatewayClient, stranger: GatewayClient
) -> None:
    # GIVEN three predictions of a client: echo completed, then two slow-noop awaiting their upload
    done = stranger.predict("echo", b'{"n": 1}', timeout=WAIT)
    assert done["status"] == "COMPLETED", done
    first = stranger.submit("slow-noop")
    second = stranger.submit("slow-noop", metadata={"n": "2"})
    mine = [second["prediction_id"], first["prediction_id"], done["prediction_id"]]

    # WHEN it lists its predictions
    page = stranger.list_predictions()
    # THEN it gets those three, newest first, as GET documents, on the last page
    assert [p["prediction_id"] for p in page["predictions"]] == mine
    assert page["next_token"] is None
    assert page["predictions"][0]["metadata"] == {"n": "2"}
    assert page["predictions"][2]["result"]["url"]
    # AND the filters narrow it (created_after strictly)
    assert [p["prediction_id"] for p in stranger.list_predictions(status="PENDING_UPLOAD")["predictions"]] == mine[:2]
    assert [p["prediction_id"] for p in stranger.list_predictions(service="echo")["predictions"]] == mine[2:]
    after = stranger.list_predictions(created_after=first["created_at"])
    assert [p["prediction_id"] for p in after["predictions"]] == mine[:1]
    # AND it pages one at a time through the same three
    seen, token = [], None
    while True:
        page = stranger.list_predictions(limit=1, next_token=token)
        seen += [p["prediction_id"] for p in page["predictions"]]
        token = page["next_token"]
        if token is None:
            break
    assert seen == mine

    # WHEN another client lists from just before, and uses the first client's token
    theirs = api.list_predictions(created_after=done["created_at"], limit=100)
    token = stranger.list_predictions(limit=1)["next_token"]
    # THEN it sees none of them, and the token is refused
    assert not {p["prediction_id"] for p in theirs["predictions"]} & set(mine)
    with pytest.raises(GatewayClientError) as refused:
        api.list_predictions(limit=1, next_token=token)
    assert refused.value.status == 400
    # AND neither may it cancel one, nor ask for its upload form: the 404 of GET
    for call in (api.status, api.cancel, api.renew_upload):
        with pytest.raises(GatewayClientError) as hidden:
            call(first["prediction_id"])
        assert hidden.value.status == 404


def test_a_bad_list_query_is_a_400_naming_it(api: GatewayClient) -> None:
    # WHEN the list is asked with a status that is none, or a limit out of range
    # THEN each is a 400 naming the parameter
    for query, named in (({"status": "DONE"}, "status 'DONE'"), ({"limit": 101}, "limit '101'")):
        with pytest.raises(GatewayClientError) as refused:
            api.list_predictions(**query)
        assert refused.value.status == 400 and named in refused.value.message


# -- POST /predictions/{id}/cancel ---------------------------------------------------------------


def test_a_running_async_prediction_is_cancelled_its_late_answer_changes_nothing_and_one_webhook_comes(
    api: GatewayClient, runtime: Any, webhook_receiver: Any, client_credentials: dict[str, Any]
) -> None:
    # GIVEN a prediction running on slow-noop for 3 s, with a webhook
    accepted = api.submit("slow-noop", webhook_url=webhook_receiver.url)
    prediction_id = accepted["prediction_id"]
    api.upload(accepted["upload"], json.dumps({"sleep_ms": 3000}).encode(), "application/json")
    status_becomes(api, prediction_id, "RUNNING")

    # WHEN its owner cancels it
    cancelled = api.cancel(prediction_id)
    # THEN it is CANCELLED, saying so
    assert cancelled["status"] == "CANCELLED"
    assert cancelled["error"]["code"] == "Cancelled"

    # WHEN the model answers afterwards and everything has settled
    settled(runtime)
    # THEN the prediction is as the cancel left it: no result
    after = api.status(prediction_id)
    assert after == {**cancelled, "updated_at": after["updated_at"]}
    assert after["updated_at"] == cancelled["updated_at"]
    assert after.get("result") is None
    # AND exactly one webhook came: prediction.cancelled, signed, with the cancelled document
    delivered = webhook_receiver.wait_for(prediction_id)
    time.sleep(1.0)
    assert len(webhook_receiver.attempts(prediction_id)) == 1
    Webhook(client_credentials["webhook_secret"]).verify(delivered[0]["body"], delivered[0]["headers"])
    event = json.loads(delivered[0]["body"])
    assert event["type"] == "prediction.cancelled"
    assert event["data"]["status"] == "CANCELLED"


def test_a_prediction_cancelled_before_its_upload_ignores_the_upload_and_an_ended_one_is_a_409(
    api: GatewayClient, runtime: Any
) -> None:
    # GIVEN a prediction awaiting its upload, cancelled
    accepted = api.submit("echo")
    assert api.cancel(accepted["prediction_id"])["status"] == "CANCELLED"
    # WHEN the upload comes through the form it was given
    api.upload(accepted["upload"], b'{"late": true}', "application/json")
    settled(runtime)
    # THEN it was never read: still CANCELLED, no input, no result; a second cancel answers the same
    document = api.status(accepted["prediction_id"])
    assert (document["status"], document.get("input"), document.get("result")) == ("CANCELLED", None, None)
    assert api.cancel(accepted["prediction_id"])["status"] == "CANCELLED"
    # AND a completed prediction cannot be cancelled: 409 naming its status
    done = api.predict("echo", b"{}", timeout=WAIT)
    with pytest.raises(GatewayClientError) as refused:
        api.cancel(done["prediction_id"])
    assert refused.value.status == 409 and "COMPLETED" in refused.value.message


@pytest.fixture
def slow_ensemble(runtime: Any, tmp_path: Path) -> Iterator[str]:
    """A declarative ensemble of one slow-noop step, registered for the test, deactivated after."""
    from ensemble_gateway.local.catalog import apply_catalog, local_registrar

    definition = {
        "name": ENSEMBLE,
        "kind": "ensemble",
        "version": "1",
        "description": "Tests: one slow step to cancel while it runs.",
        "content_types": ["application/json"],
        "ensemble": {"timeout_seconds": 600, "steps": {"wait": {"service": "slow-noop", "mapping": "$.input"}}},
    }
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps([definition]))
    (service,) = apply_catalog(runtime, path)
    try:
        yield ENSEMBLE
    finally:
        local_registrar(runtime).apply([service.model_copy(update={"active": False})])


def test_a_running_ensemble_is_cancelled_its_execution_aborted_and_its_step_ended(
    api: GatewayClient, runtime: Any, webhook_receiver: Any, slow_ensemble: str
) -> None:
    from ensemble_gateway import bootstrap
    from ensemble_gateway.adapters.stepfunctions import execution_arn

    # GIVEN an ensemble whose one step runs slow-noop for 3 s
    accepted = api.submit(slow_ensemble, webhook_url=webhook_receiver.url)
    prediction_id = accepted["prediction_id"]
    api.upload(accepted["upload"], json.dumps({"sleep_ms": 3000}).encode(), "application/json")
    eventually(
        lambda: [s["status"] for s in api.status(prediction_id).get("steps") or []] == ["RUNNING"],
        what="the step running",
    )

    # WHEN its owner cancels it
    cancelled = api.cancel(prediction_id)
    # THEN it and its step are CANCELLED, and its execution was stopped
    assert cancelled["status"] == "CANCELLED"
    assert [(s["name"], s["status"]) for s in cancelled["steps"]] == [("wait", "CANCELLED")]
    machine = bootstrap.gateway().catalog.get(slow_ensemble).ensemble.state_machine_arn
    described = runtime.client("stepfunctions").describe_execution(executionArn=execution_arn(machine, prediction_id))
    assert (described["status"], described.get("error")) == ("ABORTED", "Cancelled")

    # WHEN the step's model answers afterwards and everything has settled
    settled(runtime)
    # THEN nothing moved, and the one webhook is prediction.cancelled
    after = api.status(prediction_id)
    assert (after["status"], [s["status"] for s in after["steps"]]) == ("CANCELLED", ["CANCELLED"])
    assert after["updated_at"] == cancelled["updated_at"]
    webhook_receiver.wait_for(prediction_id)
    time.sleep(1.0)
    (only,) = webhook_receiver.attempts(prediction_id)
    assert json.loads(only["body"])["type"] == "prediction.cancelled"
    # AND the list shows it with its step, from the ensemble's record
    since = moment(cancelled["created_at"]) - timedelta(seconds=1)
    page = api.list_predictions(service=slow_ensemble, created_after=since)
    (listed,) = [p for p in page["predictions"] if p["prediction_id"] == prediction_id]
    assert [(s["name"], s["status"]) for s in listed["steps"]] == [("wait", "CANCELLED")]


# -- POST /predictions/{id}/upload ---------------------------------------------------------------


def test_a_new_upload_form_outlives_the_first_and_moves_the_expiry(api: GatewayClient) -> None:
    from ensemble_gateway import bootstrap

    # GIVEN a prediction whose first form lives 10 s (this runtime's setting)
    accepted = api.submit("echo")
    prediction_id = accepted["prediction_id"]
    first_deadline = bootstrap.gateway().predictions.get(prediction_id).deadline_at
    time.sleep(3)

    # WHEN its owner asks for a new form
    renewed = api.renew_upload(prediction_id)
    # THEN it is a form for the same key, expiring later, and the sweeper's deadline moved with it
    assert renewed["prediction_id"] == prediction_id
    assert renewed["upload"]["fields"]["key"] == accepted["upload"]["fields"]["key"]
    assert moment(renewed["upload"]["expires_at"]) > moment(accepted["upload"]["expires_at"])
    assert bootstrap.gateway().predictions.get(prediction_id).deadline_at > first_deadline

    # WHEN the first form has expired
    eventually(
        lambda: time.time() > moment(accepted["upload"]["expires_at"]).timestamp() + 1,
        what="the first form expiring",
    )
    # THEN S3 refuses it, the new one is taken, and the prediction completes
    with pytest.raises(GatewayClientError) as refused:
        api.upload(accepted["upload"], b'{"n": 1}', "application/json")
    assert refused.value.status == 403
    api.upload(renewed["upload"], b'{"n": 2}', "application/json")
    document = api.wait(prediction_id, timeout=WAIT)
    assert document["status"] == "COMPLETED", document
    # AND no form is given once the input was accepted: 409 naming the status
    with pytest.raises(GatewayClientError) as conflict:
        api.renew_upload(prediction_id)
    assert conflict.value.status == 409 and "COMPLETED" in conflict.value.message

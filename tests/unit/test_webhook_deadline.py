"""The webhook sender's total deadline: one attempt ends on time, whatever the receiver drips.

Real HTTP receivers on 127.0.0.1 (raw sockets, to control every byte), the real sender.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_receivers import FakeReceivers, certificate_authority
from gateway_fakes import World, make_world, new_client

from ensemble_gateway.adapters.webhook_http import DEFAULT_DEADLINE_SECONDS, HttpWebhookSender
from ensemble_gateway.domain.delivery import SEND_LEASE_SECONDS
from ensemble_gateway.domain.errors import WebhookTransportError
from ensemble_gateway.domain.models import Callback, CallbackKind, Prediction, PredictionError, PredictionStatus
from ensemble_gateway.domain.webhooks import CheckedWebhookTarget, new_webhook_secret

# Short enough to keep the tests quick, long enough that several drips fit in it.
DEADLINE = 3.0
# A loaded 2-core machine may be late to wake a thread: the attempt must end by DEADLINE + SLACK.
SLACK = 2.0


@pytest.fixture
def receivers() -> Iterator[FakeReceivers]:
    made = FakeReceivers()
    yield made
    made.close()


def loopback_target(url: str, port: int) -> CheckedWebhookTarget:
    return CheckedWebhookTarget(url, "http", "127.0.0.1", port, ("127.0.0.1",))


def test_a_receiver_dripping_its_status_line_is_cut_at_the_total_deadline(receivers: FakeReceivers) -> None:
    # GIVEN a receiver that answers one byte every second (each read gets data well within any
    # per-read timeout, so only a total deadline ends the attempt before the ~45 s drip is over)
    slow = receivers("drip-status")
    sender = HttpWebhookSender(deadline_seconds=DEADLINE)

    # WHEN a webhook is sent to it
    started = time.monotonic()
    with pytest.raises(WebhookTransportError) as failure:
        sender.post(loopback_target(slow.url, slow.port), {"content-type": "application/json"}, "{}")
    took = time.monotonic() - started

    # THEN the attempt ended at its deadline (not before: the receiver was answering), as a
    # transport failure that says so
    assert DEADLINE - 0.5 <= took <= DEADLINE + SLACK, took
    assert "deadline" in str(failure.value)
    # AND the receiver saw the connection closed, the request having arrived in full
    assert slow.bodies == [b"{}"]


def test_a_receiver_dripping_its_body_is_cut_at_the_total_deadline(receivers: FakeReceivers) -> None:
    # GIVEN a receiver that sends its status and headers at once, then drips a 1000-byte body
    slow = receivers("drip-body")
    sender = HttpWebhookSender(deadline_seconds=DEADLINE)

    # WHEN a webhook is sent to it
    started = time.monotonic()
    with pytest.raises(WebhookTransportError, match="deadline"):
        sender.post(loopback_target(slow.url, slow.port), {}, "{}")

    # THEN reading the (bounded) body counts towards the same deadline
    assert time.monotonic() - started <= DEADLINE + SLACK


def test_a_prompt_receiver_is_answered_well_within_the_deadline(receivers: FakeReceivers) -> None:
    # GIVEN a receiver that answers at once
    fast = receivers("fast")
    # WHEN a webhook is sent to it
    response = HttpWebhookSender(deadline_seconds=DEADLINE).post(loopback_target(fast.url, fast.port), {}, '{"a":1}')
    # THEN its status comes back, and the body was delivered as sent
    assert response.status == 204
    assert fast.bodies == [b'{"a":1}']


def test_the_deadline_spans_every_address_of_the_host(receivers: FakeReceivers) -> None:
    # GIVEN a host whose first address drips and whose second would answer at once
    slow = receivers("drip-status")
    target = CheckedWebhookTarget(slow.url, "http", "localhost", slow.port, ("127.0.0.1", "127.0.0.1"))

    # WHEN a webhook is sent
    started = time.monotonic()
    with pytest.raises(WebhookTransportError, match="deadline"):
        HttpWebhookSender(deadline_seconds=DEADLINE).post(target, {}, "{}")

    # THEN the second address got no fresh deadline of its own: one attempt, one deadline
    assert time.monotonic() - started <= DEADLINE + SLACK
    assert len(slow.arrived) == 1


def test_a_refused_address_leaves_the_rest_of_the_deadline_to_the_next(receivers: FakeReceivers) -> None:
    # GIVEN a host whose first address refuses connections and whose second answers
    fast = receivers("fast")
    refused_address = "127.0.0.2"  # loopback too, but nothing listens on fast.port there
    target = CheckedWebhookTarget(fast.url, "http", "localhost", fast.port, (refused_address, "127.0.0.1"))
    # WHEN a webhook is sent
    response = HttpWebhookSender(deadline_seconds=DEADLINE).post(target, {}, "{}")
    # THEN the second address answered
    assert response.status == 204


# ------------------------------------------------------------------------------------------------
# https (the only scheme on AWS): the TLS handshake and every TLS read count towards the deadline
# ------------------------------------------------------------------------------------------------
HOST = "hooks.test"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ssl.SSLContext]:
    """A test CA's certificate file and a server context for ``hooks.test`` that it signed."""
    return certificate_authority(tmp_path_factory.mktemp("tls"), HOST)


def tls_sender(ca_file: Path) -> HttpWebhookSender:
    return HttpWebhookSender(deadline_seconds=DEADLINE, tls_context=lambda: ssl.create_default_context(cafile=ca_file))


def https_target(port: int, host: str = HOST) -> CheckedWebhookTarget:
    # The name is checked against the certificate; the connection goes to the checked address.
    return CheckedWebhookTarget(f"https://{host}:{port}/hooks", "https", host, port, ("127.0.0.1",))


def test_an_https_receiver_answering_at_once_is_verified_and_answered(
    receivers: FakeReceivers, tls: tuple[Path, ssl.SSLContext]
) -> None:
    # GIVEN an https receiver with a certificate for its host name
    ca_file, server = tls
    fast = receivers("fast", server)
    # WHEN a webhook is sent to its checked address
    response = tls_sender(ca_file).post(https_target(fast.port), {}, '{"a":1}')
    # THEN it is answered, the body having arrived over TLS
    assert response.status == 204
    assert fast.bodies == [b'{"a":1}']


def test_an_https_receiver_dripping_its_answer_is_cut_at_the_total_deadline(
    receivers: FakeReceivers, tls: tuple[Path, ssl.SSLContext]
) -> None:
    # GIVEN an https receiver that answers one byte (one TLS record) every second
    ca_file, server = tls
    slow = receivers("drip-status", server)
    # WHEN a webhook is sent to it
    started = time.monotonic()
    with pytest.raises(WebhookTransportError, match="deadline"):
        tls_sender(ca_file).post(https_target(slow.port), {}, "{}")
    # THEN the attempt ended at its deadline
    assert DEADLINE - 0.5 <= time.monotonic() - started <= DEADLINE + SLACK


def test_a_receiver_that_never_completes_the_tls_handshake_is_cut_at_the_deadline(
    receivers: FakeReceivers, tls: tuple[Path, ssl.SSLContext]
) -> None:
    # GIVEN a server that accepts the connection and then says nothing
    ca_file, _ = tls
    silent = receivers("silent")
    # WHEN a webhook is sent to it over https
    started = time.monotonic()
    with pytest.raises(WebhookTransportError, match="deadline"):
        tls_sender(ca_file).post(https_target(silent.port), {}, "{}")
    # THEN the handshake counted towards the deadline
    assert time.monotonic() - started <= DEADLINE + SLACK


def test_a_certificate_for_another_name_is_refused(receivers: FakeReceivers, tls: tuple[Path, ssl.SSLContext]) -> None:
    # GIVEN a receiver whose certificate is for hooks.test, reached as another name
    ca_file, server = tls
    fast = receivers("fast", server)
    # WHEN / THEN the attempt fails: the pinned address does not bypass certificate checks
    with pytest.raises(WebhookTransportError, match="SSLCertVerificationError"):
        tls_sender(ca_file).post(https_target(fast.port, host="other.test"), {}, "{}")
    assert fast.bodies == []


def test_the_default_deadline_fits_the_send_lease() -> None:
    # GIVEN the sender's default deadline and the lease one attempt holds on a webhook
    # THEN the attempt is over before its lease is: a duplicate job cannot send it concurrently
    assert HttpWebhookSender().deadline_seconds == DEFAULT_DEADLINE_SECONDS
    assert DEFAULT_DEADLINE_SECONDS + 10 <= SEND_LEASE_SECONDS


# ------------------------------------------------------------------------------------------------
# through the delivery use case: a slow receiver is a failed attempt, retried on the schedule
# ------------------------------------------------------------------------------------------------
SECRET = new_webhook_secret()


def failed_prediction(world: World, url: str, prediction_id: str = "p-slow") -> dict[str, str]:
    """A failed prediction whose webhook is due; returns its webhook job."""
    world.store.create(
        Prediction(
            prediction_id=prediction_id,
            service="fraud-score",
            owner="c_owner",
            status=PredictionStatus.FAILED,
            callback=Callback(kind=CallbackKind.WEBHOOK, target=url),
            error=PredictionError(code="ModelError", message="the model failed"),
        )
    )
    return {"prediction_id": prediction_id, "event_type": "prediction.failed"}


def test_a_slow_drip_receiver_is_a_failed_attempt_retried_on_the_schedule(receivers: FakeReceivers) -> None:
    # GIVEN a webhook due to a slow-drip receiver on loopback (local mode)
    slow = receivers("drip-status")
    world = make_world(clients=[new_client("c_owner", [SECRET])], allow_loopback_http=True)
    job = failed_prediction(world, slow.url)
    delivery = world.delivery()
    delivery.sender = HttpWebhookSender(deadline_seconds=DEADLINE)

    # WHEN the job is delivered
    started = time.monotonic()
    outcome = delivery.deliver(job)

    # THEN the attempt ended by its deadline and failed as a transport error ...
    assert time.monotonic() - started <= DEADLINE + SLACK
    assert outcome == "retry-scheduled"
    record = world.store.get("p-slow")
    assert record is not None
    (attempt,) = record.webhook_attempts
    assert attempt["delivered"] is False and attempt.get("status_code") is None
    assert "deadline" in attempt["error"]
    # AND the retry is queued with the schedule's first delay, and nothing is dead-lettered
    ((retry, delay),) = world.webhooks.jobs
    assert (retry["attempt"], delay) == (1, 5)
    assert world.webhooks.dead == []

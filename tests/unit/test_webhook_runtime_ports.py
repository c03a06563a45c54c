"""Local webhooks may go to loopback receivers, but never to the local runtime's own ports."""

from __future__ import annotations

import pytest
from gateway_fakes import FakeResolver, FakeSender, make_world, model_service, new_client

from ensemble_gateway.bootstrap import build_gateway
from ensemble_gateway.domain.api import NewPredictionRequest
from ensemble_gateway.domain.errors import InvalidRequestError
from ensemble_gateway.domain.models import Callback, CallbackKind, Prediction, PredictionError, PredictionStatus
from ensemble_gateway.domain.webhooks import LoopbackPortGuard, check_webhook_url, new_webhook_secret
from ensemble_gateway.settings import Settings, SettingsError

AWS_PORT, API_PORT = 4566, 3000
LOCALHOST = {"localhost": ["127.0.0.1", "::1"], "rebound.example.com": ["127.0.0.1"]}
REQUIRED = {
    "PREDICTIONS_TABLE": "predictions",
    "SERVICES_TABLE": "services",
    "CLIENTS_TABLE": "clients",
    "BUCKET": "bucket",
    "WEBHOOK_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/webhooks",
    "WEBHOOK_DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/webhooks-dlq",
}


def guarded(hosts: dict[str, list[str]] | None = None) -> LoopbackPortGuard:
    return LoopbackPortGuard(FakeResolver(hosts or LOCALHOST), {AWS_PORT, API_PORT})


@pytest.mark.parametrize(
    "url",
    [
        f"http://127.0.0.1:{AWS_PORT}/2015-03-31/functions/process-input/invocations",
        f"http://127.0.0.1:{API_PORT}/predictions",
        f"http://localhost:{AWS_PORT}/",
        f"http://[::1]:{API_PORT}/",
        f"http://127.8.9.10:{AWS_PORT}/",  # all of 127.0.0.0/8 is this machine
        f"http://[::ffff:127.0.0.1]:{AWS_PORT}/",  # IPv4-mapped loopback
        f"https://127.0.0.1:{AWS_PORT}/",  # the scheme does not matter
    ],
)
def test_a_loopback_url_on_one_of_the_runtimes_ports_is_refused(url: str) -> None:
    # GIVEN local mode, with the runtime's AWS endpoint and API ports guarded
    # WHEN / THEN a webhook URL reaching one of them on loopback is refused, saying why
    with pytest.raises(InvalidRequestError, match="local runtime's own ports") as refused:
        check_webhook_url(url, guarded(), allow_loopback_http=True)
    assert "must not target the gateway itself" in refused.value.message


def test_loopback_receivers_on_other_ports_and_public_hosts_on_those_ports_are_allowed() -> None:
    # GIVEN the same guard
    resolver = guarded({**LOCALHOST, "hooks.example.com": ["93.184.216.34"]})
    # WHEN a receiver on another loopback port, or a public host on a guarded port, is checked
    local = check_webhook_url("http://127.0.0.1:8080/hooks", resolver, allow_loopback_http=True)
    public = check_webhook_url(f"https://hooks.example.com:{AWS_PORT}/ml", resolver, allow_loopback_http=True)
    # THEN both are accepted: only this machine's guarded ports are off limits
    assert local.port == 8080
    assert public.addresses == ("93.184.216.34",)


def test_the_port_list_is_read_from_the_environment() -> None:
    # GIVEN the variable as the local runtime sets it
    settings = Settings.from_environ({**REQUIRED, "WEBHOOK_FORBIDDEN_LOOPBACK_PORTS": f"{AWS_PORT}, {API_PORT}"})
    # THEN it is the ports, and without it there are none
    assert settings.webhook_forbidden_loopback_ports == (AWS_PORT, API_PORT)
    assert Settings.from_environ(REQUIRED).webhook_forbidden_loopback_ports == ()
    # AND a value that is not a list of ports is refused at cold start, naming the variable
    for bad in ("http", "70000"):
        with pytest.raises(SettingsError, match="WEBHOOK_FORBIDDEN_LOOPBACK_PORTS"):
            Settings.from_environ({**REQUIRED, "WEBHOOK_FORBIDDEN_LOOPBACK_PORTS": bad})


def test_the_gateway_checks_urls_with_the_guard_when_ports_are_set() -> None:
    # GIVEN settings with and without guarded ports
    with_ports = Settings.from_environ({**REQUIRED, "WEBHOOK_FORBIDDEN_LOOPBACK_PORTS": str(AWS_PORT)})
    # WHEN the gateway is wired
    gateway = build_gateway(with_ports)
    # THEN its resolver (used at submission and at delivery) is the guard, for those ports
    assert isinstance(gateway.resolve, LoopbackPortGuard)
    assert gateway.resolve.ports == {AWS_PORT}
    assert not isinstance(build_gateway(Settings.from_environ(REQUIRED)).resolve, LoopbackPortGuard)


def test_submitting_a_webhook_to_the_runtime_is_refused() -> None:
    # GIVEN a local-mode gateway whose resolver guards the runtime's ports
    world = make_world(services=[model_service("fraud-score")], clients=[new_client("c_owner")], hosts=LOCALHOST)
    world.gateway.resolve = LoopbackPortGuard(world.resolver, {AWS_PORT, API_PORT})
    world.gateway.config.allow_loopback_http_webhooks = True
    client = world.clients.get("c_owner")
    assert client is not None
    url = f"http://localhost:{AWS_PORT}/2015-03-31/functions/x/invocations"
    request = NewPredictionRequest.model_validate({"service": "fraud-score", "notification": {"webhook": {"url": url}}})
    # WHEN it is submitted
    # THEN it is refused (HTTP 400), and nothing was created
    with pytest.raises(InvalidRequestError, match="local runtime's own ports") as refused:
        world.gateway.submit(client, request)
    assert refused.value.http_status == 400
    assert world.store.records == {}


def test_a_host_that_now_resolves_to_the_runtime_is_refused_at_delivery() -> None:
    # GIVEN a webhook accepted for a public host on port 4566, whose name now resolves to loopback
    world = make_world(clients=[new_client("c_owner", [new_webhook_secret()])], hosts=LOCALHOST)
    world.gateway.resolve = LoopbackPortGuard(world.resolver, {AWS_PORT, API_PORT})
    world.gateway.config.allow_loopback_http_webhooks = True
    world.store.create(
        Prediction(
            prediction_id="p-rebound",
            service="fraud-score",
            owner="c_owner",
            status=PredictionStatus.FAILED,
            callback=Callback(kind=CallbackKind.WEBHOOK, target=f"https://rebound.example.com:{AWS_PORT}/hook"),
            error=PredictionError(code="ModelError", message="the model failed"),
        )
    )
    sender = FakeSender(204)
    # WHEN its webhook is delivered
    outcome = world.delivery(sender).deliver({"prediction_id": "p-rebound", "event_type": "prediction.failed"})
    # THEN nothing is sent; the refusal is recorded and the job dead-lettered with the reason
    assert outcome == "refused"
    assert sender.sent == []
    (dead,) = world.webhooks.dead
    assert "local runtime's own ports" in dead["reason"]
    record = world.store.get("p-rebound")
    assert record is not None
    assert "local runtime's own ports" in record.webhook_attempts[0]["error"]

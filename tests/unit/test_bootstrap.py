"""The composition root: one set of use cases per process, over one set of ports, with a notifier
for every callback kind and the event bus taken from ``EVENT_BUS_NAME``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ensemble_gateway import bootstrap
from ensemble_gateway.adapters.eventbridge import EventBridgePublisher
from ensemble_gateway.adapters.messaging import SqsShadowQueue
from ensemble_gateway.domain.models import CallbackKind
from ensemble_gateway.domain.notifiers.eventbridge import EventBridgeNotifier
from ensemble_gateway.settings import Settings

REQUIRED = {
    "AWS_REGION": "us-east-1",
    "PREDICTIONS_TABLE": "predictions",
    "SERVICES_TABLE": "services",
    "CLIENTS_TABLE": "clients",
    "BUCKET": "bucket",
    "WEBHOOK_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/webhooks",
    "WEBHOOK_DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/webhooks-dlq",
}


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("EVENT_BUS_NAME", raising=False)
    bootstrap.reset()
    yield
    bootstrap.reset()


def eventbridge_notifier(settings: Settings) -> EventBridgeNotifier:
    notifier = bootstrap.build_use_cases(settings).notifiers.by_kind[CallbackKind.EVENTBRIDGE]
    assert isinstance(notifier, EventBridgeNotifier)
    return notifier


def test_the_event_bus_comes_from_event_bus_name_and_is_optional() -> None:
    # GIVEN settings with and without the variable the template sets
    with_bus = Settings.from_environ({**REQUIRED, "EVENT_BUS_NAME": "gw-predictions"})
    without = Settings.from_environ(REQUIRED)
    empty = Settings.from_environ({**REQUIRED, "EVENT_BUS_NAME": ""})
    # WHEN the use cases are wired
    # THEN with it, events go to that bus under the gateway's source; without it, there is no bus
    publisher = eventbridge_notifier(with_bus).publisher
    assert isinstance(publisher, EventBridgePublisher)
    assert (publisher.bus_name, publisher.source) == ("gw-predictions", "ensemble-gateway")
    assert eventbridge_notifier(without).publisher is None
    assert eventbridge_notifier(empty).publisher is None


def test_the_shadow_queue_comes_from_shadow_queue_url_and_is_optional() -> None:
    # GIVEN settings with the variable the functions that start shadows get, and without it
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/shadows"
    with_queue = bootstrap.build_use_cases(Settings.from_environ({**REQUIRED, "SHADOW_QUEUE_URL": url}))
    without = bootstrap.build_use_cases(Settings.from_environ(REQUIRED))
    # THEN with it, shadows are queued there, started by dispatch and by the steps alike
    assert isinstance(with_queue.shadows.queue, SqsShadowQueue) and with_queue.shadows.queue.queue_url == url
    assert with_queue.dispatch.shadows is with_queue.shadows
    # AND without it there is no queue (a function that never starts shadows needs none)
    assert without.shadows.queue is None


def test_every_callback_kind_has_a_notifier() -> None:
    # A kind without one would fail every finish of a prediction recorded with it.
    registered = bootstrap.build_use_cases(Settings.from_environ(REQUIRED)).notifiers.by_kind
    assert set(registered) == set(CallbackKind)


@pytest.mark.usefixtures("environment")
def test_the_handlers_use_cases_and_the_facade_are_one_set_over_one_set_of_ports() -> None:
    # GIVEN the process's use cases
    built = bootstrap.use_cases()
    # THEN each builder hands out that set's objects, the facade wraps the same set, and every use
    # case (and the steps of get-transform-call, and webhook delivery) shares its ports
    assert bootstrap.intake() is built.intake
    assert bootstrap.dispatch() is built.dispatch
    assert bootstrap.completion() is built.completion
    assert bootstrap.sweeping() is built.sweeping
    assert bootstrap.read_model() is built.read_model
    assert bootstrap.gateway().use_cases is built
    assert bootstrap.shadows() is built.shadows
    steps, delivery = bootstrap.ensemble_steps(), bootstrap.webhook_delivery()
    assert (steps.dispatch, steps.completion, steps.ensembles) == (built.dispatch, built.completion, built.ensembles)
    assert steps.shadows is built.shadows and built.shadows.dispatching is built.dispatch
    assert delivery.documents is built.read_model
    for user in (built.intake, built.dispatch, built.completion, built.ensembles, built.sweeping, steps, delivery):
        assert user.ports is built.ports
    # AND reset forgets them (the local runtime changes the environment between stacks)
    bootstrap.reset()
    assert bootstrap.use_cases() is not built

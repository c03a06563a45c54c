"""EventBridge adapter: the gateway's own event bus, where predictions announce how they ended."""

from __future__ import annotations

import json
from typing import Any

from .aws import LazyClient


class EventPublishError(RuntimeError):
    """EventBridge refused the event (``PutEvents`` reports failures per entry, not as an error)."""


class EventBridgePublisher(LazyClient):
    """Puts one event at a time on the gateway's event bus.

    Parameters
    ----------
    bus_name
        The event bus (the gateway stack's ``EventBusName`` output).
    source
        The events' ``source``: what subscribers' rules match on.
    client
        A boto3 ``events`` client (one is created on first use otherwise).
    """

    service_name = "events"

    def __init__(self, bus_name: str, source: str = "ensemble-gateway", client: Any = None) -> None:
        super().__init__(client)
        self.bus_name = bus_name
        self.source = source

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        """Put one event; raise when EventBridge did not take it.

        Raises
        ------
        EventPublishError
            The entry failed (``ErrorCode``/``ErrorMessage`` of ``PutEvents``' answer): the caller
            fails, and its event source retries it.
        """
        response = self.client.put_events(
            Entries=[
                {
                    "EventBusName": self.bus_name,
                    "Source": self.source,
                    "DetailType": detail_type,
                    # ISO timestamps and the document's own types: what the webhook's body holds.
                    "Detail": json.dumps(detail, default=str),
                }
            ]
        )
        if response.get("FailedEntryCount"):
            (entry,) = response["Entries"]
            reason = f"{entry.get('ErrorCode')}: {entry.get('ErrorMessage')}"
            raise EventPublishError(f"EventBridge did not take the {detail_type} event: {reason}")

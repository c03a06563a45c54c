"""Outbound webhook HTTP: connect to the address that was checked, follow no redirects, bound time and size."""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Mapping
from urllib.parse import urlsplit

from ..domain.delivery import WebhookResponse
from ..domain.errors import WebhookTransportError
from ..domain.webhooks import CheckedWebhookTarget
from .dns import resolve_all

__all__ = ["HttpWebhookSender", "resolve_all"]

MAX_RESPONSE_BYTES = 64 * 1024


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, address: str, host: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, address: str, host: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        # SNI and certificate checks use the host name; the socket goes to the checked address.
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]


class HttpWebhookSender:
    """Sends one webhook POST with bounded connect and read time and response size."""

    def __init__(self, timeout_seconds: float = 10.0) -> None:
        self.timeout_seconds = timeout_seconds

    def post(self, target: CheckedWebhookTarget, headers: Mapping[str, str], body: str) -> WebhookResponse:
        parts = urlsplit(target.url)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        last_error: Exception | None = None
        for address in target.addresses:
            connection_class = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
            connection = connection_class(address, target.host, target.port, self.timeout_seconds)
            try:
                connection.request("POST", path, body=body.encode(), headers=dict(headers))
                response = connection.getresponse()
                # Read a bounded amount: a receiver must not make us buffer gigabytes.
                response.read(MAX_RESPONSE_BYTES)
                retry_after = response.getheader("Retry-After")
                return WebhookResponse(
                    status=response.status,
                    retry_after_seconds=int(retry_after) if retry_after and retry_after.isdigit() else None,
                )
            except (OSError, http.client.HTTPException) as error:
                last_error = error
            finally:
                connection.close()
        raise WebhookTransportError(f"{type(last_error).__name__}: {last_error}")

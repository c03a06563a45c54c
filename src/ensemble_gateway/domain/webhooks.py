"""Webhooks per the Standard Webhooks spec: URL policy (SSRF), signing and the retry schedule."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import secrets
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .errors import InvalidRequestError

# Standard Webhooks' suggested schedule: immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
RETRY_SCHEDULE_SECONDS: tuple[int, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)

Resolver = Callable[[str, int], Sequence[str]]


def new_webhook_secret() -> str:
    """Return a new ``whsec_``-prefixed secret (24 random bytes, base64)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """Return ``v1,<signature>`` for one secret, as Standard Webhooks specifies."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.{body}".encode()
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secrets_: Sequence[str], msg_id: str, timestamp: int, body: str) -> dict[str, str]:
    """The three Standard Webhooks headers; one signature per valid secret (rotation)."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(secret, msg_id, timestamp, body) for secret in secrets_),
        "content-type": "application/json",
    }


def event_body(event_type: str, timestamp_iso: str, data: dict[str, Any]) -> str:
    return json.dumps(
        {"type": event_type, "timestamp": timestamp_iso, "data": data}, separators=(",", ":"), default=str
    )


def retry_delay(attempt: int, jitter: float) -> int | None:
    """Seconds to wait before attempt number ``attempt + 1``; None once the schedule is spent.

    ``attempt`` counts attempts made so far (1 after the first). ``jitter`` in [0, 1) spreads
    retries by up to 10 % so that a receiver coming back is not hit by a wall of retries at once.
    """
    if attempt < 1 or attempt > len(RETRY_SCHEDULE_SECONDS):
        return None
    base = RETRY_SCHEDULE_SECONDS[attempt - 1]
    return int(base + base * 0.1 * jitter)


@dataclass(frozen=True)
class CheckedWebhookTarget:
    """A URL that passed the egress policy and the addresses it resolved to (connect to these)."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]


def _is_loopback(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        # An IPv4-mapped IPv6 address reaches the IPv4 host: judge that host.
        return _is_public(address.ipv4_mapped)
    # is_global excludes private, loopback, link-local (169.254.169.254 too), 100.64.0.0/10,
    # unique-local, unspecified (0.0.0.0) and reserved ranges.
    return address.is_global and not address.is_multicast


class LoopbackPortGuard:
    """A resolver that refuses hosts reaching one of this machine's own service ports on loopback.

    Local mode allows receivers on loopback, but the local runtime itself listens there too: a
    webhook to its AWS endpoint or its API would have the gateway POST to itself (the AWS
    endpoint would, for one, invoke a function with the webhook's body). The guard sits where
    every check of a URL looks the host up, so a URL is refused when it is submitted and again
    at each delivery (the name may resolve elsewhere by then).

    Parameters
    ----------
    resolve
        The resolver to guard.
    ports
        The ports no loopback webhook may target.
    """

    def __init__(self, resolve: Resolver, ports: Collection[int]) -> None:
        self.resolve = resolve
        self.ports = frozenset(ports)

    def __call__(self, host: str, port: int) -> Sequence[str]:
        """The addresses of ``host``.

        Raises
        ------
        InvalidRequestError
            ``port`` is a guarded one and ``host`` resolves to a loopback address.
        """
        addresses = self.resolve(host, port)
        if port in self.ports:
            for address in addresses:
                if _is_loopback(ipaddress.ip_address(address.split("%", 1)[0])):
                    raise InvalidRequestError(
                        f"notification.webhook.url must not target the gateway itself: host '{host}' "
                        f"port {port} is one of the local runtime's own ports"
                    )
        return addresses


def check_webhook_url(url: str, resolve: Resolver, *, allow_loopback_http: bool) -> CheckedWebhookTarget:
    """Apply the egress policy to a webhook URL.

    Parameters
    ----------
    url
        The URL the client gave.
    resolve
        Returns every address (A and AAAA) the host resolves to; it may itself refuse a target
        by raising InvalidRequestError (see ``LoopbackPortGuard``).
    allow_loopback_http
        Local mode only: plain http to a loopback address is allowed.

    Raises
    ------
    InvalidRequestError
        Naming the rule the URL breaks.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidRequestError(f"notification.webhook.url must be an https:// URL, got '{url[:200]}'")
    if parts.username or parts.password:
        raise InvalidRequestError("notification.webhook.url must not carry credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as error:
        raise InvalidRequestError(f"notification.webhook.url has an invalid port: {error}") from None
    # Judge the scheme before any DNS lookup: an http URL is refused for what it is, whatever
    # its host resolves to (or fails to resolve to).
    plain_http = InvalidRequestError(f"notification.webhook.url must use https, got '{parts.scheme}://'")
    if parts.scheme != "https" and not allow_loopback_http:
        raise plain_http
    host = parts.hostname
    try:
        addresses = tuple(resolve(host, port))
    except OSError:
        addresses = ()
    if not addresses:
        if parts.scheme != "https":
            raise plain_http
        raise InvalidRequestError(f"notification.webhook.url host '{host}' does not resolve")
    parsed = [ipaddress.ip_address(address.split("%", 1)[0]) for address in addresses]
    all_loopback = all(_is_loopback(address) for address in parsed)
    if allow_loopback_http and all_loopback:
        return CheckedWebhookTarget(url, parts.scheme, host, port, addresses)
    if parts.scheme != "https":
        raise plain_http
    for address in parsed:
        if not _is_public(address):
            raise InvalidRequestError(
                f"notification.webhook.url host '{host}' resolves to a non-public address ({address})"
            )
    return CheckedWebhookTarget(url, parts.scheme, host, port, addresses)

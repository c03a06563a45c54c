"""Webhooks per Standard Webhooks: the egress policy for URLs, signing, and the retry schedule."""

from __future__ import annotations

import base64
import ipaddress
import json
import time

import pytest
from gateway_fakes import FakeResolver
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from ensemble_gateway.domain.errors import InvalidRequestError
from ensemble_gateway.domain.webhooks import (
    RETRY_SCHEDULE_SECONDS,
    check_webhook_url,
    event_body,
    new_webhook_secret,
    retry_delay,
    sign,
    signed_headers,
)


# ------------------------------------------------------------------------------------------------
# egress policy
# ------------------------------------------------------------------------------------------------
def test_plain_http_is_refused_before_any_dns_lookup() -> None:
    # GIVEN a resolver that would answer with a public address
    resolver = FakeResolver({"hooks.example.com": ["93.184.216.34"]})
    # WHEN an http:// URL is checked outside local mode
    with pytest.raises(InvalidRequestError, match=r"must use https, got 'http://'"):
        check_webhook_url("http://hooks.example.com/ml", resolver, allow_loopback_http=False)
    # THEN the host was never looked up
    assert resolver.lookups == []


@pytest.mark.parametrize("allow_loopback_http", [False, True])
@pytest.mark.parametrize(
    "url", ["http://hooks.example.com/ml", "http://unresolvable.invalid/ml", "http://93.184.216.34/ml"]
)
def test_plain_http_to_a_non_loopback_host_is_refused_as_not_https(url: str, allow_loopback_http: bool) -> None:
    # GIVEN a public host, an unresolvable host and a public IP literal
    resolver = FakeResolver({"hooks.example.com": ["93.184.216.34"]})
    # WHEN their http:// URLs are checked, in local mode or not
    # THEN each is refused for not being https (not for DNS reasons)
    with pytest.raises(InvalidRequestError, match="must use https"):
        check_webhook_url(url, resolver, allow_loopback_http=allow_loopback_http)


@pytest.mark.parametrize(
    "url",
    ["ftp://hooks.example.com/x", "hooks.example.com/x", "https:///nohost", "javascript:alert(1)", ""],
)
def test_urls_that_are_not_https_urls_are_refused(url: str) -> None:
    # GIVEN something that is not an http(s) URL with a host
    # WHEN / THEN it is refused, saying an https URL is expected
    with pytest.raises(InvalidRequestError, match="https"):
        check_webhook_url(url, FakeResolver(), allow_loopback_http=True)


@pytest.mark.parametrize(
    "address",
    [
        "10.1.2.3",  # private
        "172.16.5.4",  # private
        "192.168.1.10",  # private
        "127.0.0.1",  # loopback
        "127.8.9.10",  # loopback
        "::1",  # loopback
        "169.254.169.254",  # instance metadata (link-local)
        "169.254.1.1",  # link-local
        "fe80::1",  # link-local
        "100.64.0.1",  # carrier-grade NAT (100.64.0.0/10)
        "100.127.255.254",  # carrier-grade NAT, top of the range
        "fc00::1",  # unique-local
        "fd12:3456:789a::1",  # unique-local
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
        "::ffff:10.0.0.1",  # IPv4-mapped private
        "::ffff:169.254.169.254",  # IPv4-mapped metadata
        "0.0.0.0",  # unspecified (reaches the local host)
        "::",  # unspecified
        "224.0.0.1",  # multicast
        "255.255.255.255",  # broadcast
        "198.18.0.1",  # benchmarking
    ],
)
def test_https_to_a_non_public_address_is_refused(address: str) -> None:
    # GIVEN a host name that resolves to a non-public address
    resolver = FakeResolver({"hooks.example.com": [address]})
    # WHEN its https URL is checked (outside local mode)
    # THEN it is refused, naming the address
    with pytest.raises(InvalidRequestError, match="non-public address") as refused:
        check_webhook_url("https://hooks.example.com/ml", resolver, allow_loopback_http=False)
    assert f"({ipaddress.ip_address(address)})" in refused.value.message


@pytest.mark.parametrize("literal", ["169.254.169.254", "[::ffff:a9fe:a9fe]", "[fd00::1]", "10.0.0.1"])
def test_https_to_a_non_public_ip_literal_is_refused(literal: str) -> None:
    # GIVEN a URL whose host is an IP literal of a non-public address
    # WHEN / THEN it is refused
    with pytest.raises(InvalidRequestError, match="non-public address"):
        check_webhook_url(f"https://{literal}/latest/meta-data", FakeResolver(), allow_loopback_http=False)


def test_a_host_with_one_private_address_among_public_ones_is_refused() -> None:
    # GIVEN a host with a public A record and a private AAAA record
    resolver = FakeResolver({"hooks.example.com": ["93.184.216.34", "fd00::7"]})
    # WHEN / THEN it is refused: a connection could reach the private one
    with pytest.raises(InvalidRequestError, match="fd00::7"):
        check_webhook_url("https://hooks.example.com/ml", resolver, allow_loopback_http=False)


def test_public_addresses_are_accepted_and_pinned() -> None:
    # GIVEN a host with public IPv4 and IPv6 addresses
    resolver = FakeResolver({"hooks.example.com": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]})
    # WHEN its https URL with a port is checked
    target = check_webhook_url("https://hooks.example.com:8443/ml?x=1", resolver, allow_loopback_http=False)
    # THEN it is accepted with the addresses to connect to (no second lookup at send time)
    assert target.url == "https://hooks.example.com:8443/ml?x=1"
    assert (target.scheme, target.host, target.port) == ("https", "hooks.example.com", 8443)
    assert target.addresses == ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946")


def test_https_defaults_to_port_443() -> None:
    target = check_webhook_url("https://93.184.216.34/ml", FakeResolver(), allow_loopback_http=False)
    assert target.port == 443


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/hooks", "http://localhost:9000/hooks", "http://[::1]/h"])
def test_http_to_loopback_is_allowed_only_in_local_mode(url: str) -> None:
    # GIVEN a receiver on this machine (localhost resolves to both loopback addresses)
    resolver = FakeResolver({"localhost": ["127.0.0.1", "::1"]})
    # WHEN it is checked in local mode
    target = check_webhook_url(url, resolver, allow_loopback_http=True)
    # THEN it is allowed, over plain http
    assert target.scheme == "http"
    # AND outside local mode the same URL is refused
    with pytest.raises(InvalidRequestError, match="must use https"):
        check_webhook_url(url, resolver, allow_loopback_http=False)


def test_local_mode_does_not_open_private_networks_to_plain_http() -> None:
    # GIVEN a host resolving to a private (not loopback) address
    resolver = FakeResolver({"printer.lan": ["192.168.1.20"]})
    # WHEN / THEN local mode still refuses it over http
    with pytest.raises(InvalidRequestError, match="must use https"):
        check_webhook_url("http://printer.lan/hook", resolver, allow_loopback_http=True)
    # AND over https, as a non-public address
    with pytest.raises(InvalidRequestError, match="non-public"):
        check_webhook_url("https://printer.lan/hook", resolver, allow_loopback_http=True)


def test_credentials_bad_ports_and_unresolvable_hosts_are_refused_with_their_reason() -> None:
    resolver = FakeResolver({"hooks.example.com": ["93.184.216.34"]})
    with pytest.raises(InvalidRequestError, match="credentials"):
        check_webhook_url("https://user:pw@hooks.example.com/", resolver, allow_loopback_http=False)
    with pytest.raises(InvalidRequestError, match="invalid port"):
        check_webhook_url("https://hooks.example.com:99999/", resolver, allow_loopback_http=False)
    with pytest.raises(InvalidRequestError, match=r"'nowhere\.invalid' does not resolve"):
        check_webhook_url("https://nowhere.invalid/", resolver, allow_loopback_http=False)


# ------------------------------------------------------------------------------------------------
# signing
# ------------------------------------------------------------------------------------------------
def body_of(prediction_id: str = "p1") -> str:
    return event_body(
        "prediction.completed",
        "2026-11-22T09:00:00Z",
        {"prediction_id": prediction_id, "status": "COMPLETED", "note": "ünïcode ✓"},
    )


def test_new_secrets_are_standard_webhooks_secrets() -> None:
    # GIVEN / WHEN two new secrets
    first, second = new_webhook_secret(), new_webhook_secret()
    # THEN each is whsec_ + base64 of 24 random bytes, and they differ
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 24
    assert first != second


def test_a_signed_webhook_verifies_with_standardwebhooks() -> None:
    # GIVEN a client's secret and a webhook body signed now
    secret = new_webhook_secret()
    body = body_of()
    headers = signed_headers([secret], "msg_p1_completed", int(time.time()), body)
    # WHEN a receiver verifies it with the standardwebhooks package
    payload = Webhook(secret).verify(body, headers)
    # THEN it verifies and yields the event
    assert payload["type"] == "prediction.completed"
    assert payload["data"]["note"] == "ünïcode ✓"
    assert headers["webhook-id"] == "msg_p1_completed"
    assert headers["webhook-signature"].startswith("v1,")


def test_during_rotation_both_secrets_verify_and_others_do_not() -> None:
    # GIVEN a client rotating its secret: the new one first, the old one still valid
    new, old = new_webhook_secret(), new_webhook_secret()
    body = body_of()
    headers = signed_headers([new, old], "msg_p1_completed", int(time.time()), body)
    # WHEN receivers verify with either secret
    # THEN both verify: the header carries one signature per secret
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert Webhook(new).verify(body, headers)["data"]["prediction_id"] == "p1"
    assert Webhook(old).verify(body, headers)["data"]["prediction_id"] == "p1"
    # AND a secret that is not the client's does not
    with pytest.raises(WebhookVerificationError):
        Webhook(new_webhook_secret()).verify(body, headers)


def test_a_tampered_body_or_id_does_not_verify() -> None:
    # GIVEN a signed webhook
    secret = new_webhook_secret()
    body = body_of()
    headers = signed_headers([secret], "msg_p1_completed", int(time.time()), body)
    # WHEN its body or its id is changed in transit
    # THEN verification fails
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body_of("p2"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, {**headers, "webhook-id": "msg_other"})


def test_the_signature_is_hmac_sha256_of_id_timestamp_and_body() -> None:
    # GIVEN the spec's own example secret, id, timestamp and body
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = '{"test": 2432232314}'
    # WHEN it is signed
    signature = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    # THEN it is the signature the spec publishes
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_event_bodies_are_compact_json_with_type_timestamp_and_data() -> None:
    body = event_body("prediction.failed", "2026-11-22T09:00:00Z", {"prediction_id": "p1"})
    assert json.loads(body) == {
        "type": "prediction.failed",
        "timestamp": "2026-11-22T09:00:00Z",
        "data": {"prediction_id": "p1"},
    }
    assert " " not in body


# ------------------------------------------------------------------------------------------------
# retry schedule
# ------------------------------------------------------------------------------------------------
def test_the_retry_schedule_is_the_standard_webhooks_one() -> None:
    # GIVEN no jitter
    # WHEN the delay after each failed attempt is asked
    delays = [retry_delay(attempt, 0.0) for attempt in range(1, 9)]
    # THEN it is 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, then nothing (dead-letter)
    assert delays == [5, 300, 1800, 7200, 18000, 36000, 36000, None]
    assert RETRY_SCHEDULE_SECONDS == (5, 300, 1800, 7200, 18000, 36000, 36000)
    assert retry_delay(0, 0.0) is None


def test_jitter_adds_at_most_ten_percent() -> None:
    # GIVEN the largest jitter draw
    # WHEN delays are computed
    # THEN each is within [base, base * 1.1]
    for attempt, base in enumerate(RETRY_SCHEDULE_SECONDS, start=1):
        delay = retry_delay(attempt, 0.999999)
        assert delay is not None
        assert base <= delay <= base * 1.1
    assert retry_delay(3, 0.5) == 1890

"""Who is calling: IAM principals and API keys resolved to registered clients."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from gateway_fakes import FakeClients

from ensemble_gateway.adapters import dynamodb
from ensemble_gateway.domain.auth import Authenticator, authenticate, hash_api_key, principal_candidates
from ensemble_gateway.domain.errors import UnauthenticatedError
from ensemble_gateway.domain.models import Client


def test_an_assumed_role_session_maps_to_its_role() -> None:
    # GIVEN the caller ARN API Gateway reports for a role session
    caller = "arn:aws:sts::123456789012:assumed-role/claims-system/i-0abc123"

    # WHEN the candidates are computed
    candidates = principal_candidates(caller)

    # THEN the session ARN comes first, then the role every session of it shares
    assert candidates == [caller, "arn:aws:iam::123456789012:role/claims-system"]


def test_a_user_maps_only_to_itself() -> None:
    user = "arn:aws:iam::123456789012:user/alice"
    assert principal_candidates(user) == [user]


def test_other_partitions_keep_their_partition() -> None:
    caller = "arn:aws-us-gov:sts::123456789012:assumed-role/r/s"
    assert principal_candidates(caller)[1] == "arn:aws-us-gov:iam::123456789012:role/r"


# ------------------------------------------------------------------------------------------------
# authenticate: the policy behind every API route
# ------------------------------------------------------------------------------------------------
ROLE = "arn:aws:iam::123456789012:role/claims-system"
SESSION = "arn:aws:sts::123456789012:assumed-role/claims-system/i-0abc123"


def directory() -> FakeClients:
    return FakeClients(
        [
            Client(client_id="c_role", name="role", principal_arn=ROLE),
            Client(client_id="c_key", name="key", api_key_hash=hash_api_key("s3cret-key")),
        ]
    )


def test_iam_resolves_a_role_session_to_the_roles_client() -> None:
    # GIVEN a client registered under a role, and a request signed by a session of it
    # WHEN it is authenticated in IAM mode
    client = authenticate(directory(), "iam", {"userArn": SESSION, "caller": "AROA:i-0abc123"}, {})
    # THEN it is the role's client
    assert client.client_id == "c_role"


def test_iam_falls_back_to_the_caller_when_api_gateway_gives_no_user_arn() -> None:
    assert authenticate(directory(), "iam", {"userArn": None, "caller": ROLE}, {}).client_id == "c_role"


@pytest.mark.parametrize(
    ("identity", "message"),
    [
        ({}, "the request is not signed"),
        ({"userArn": None, "caller": None}, "the request is not signed"),
        ({"userArn": "arn:aws:iam::123456789012:user/mallory"}, "'arn:aws:iam::123456789012:user/mallory' is not a"),
    ],
)
def test_iam_refuses_unsigned_requests_and_unregistered_principals(identity: dict[str, Any], message: str) -> None:
    # GIVEN an API key that would be valid in local mode
    headers = {"Authorization": "Bearer s3cret-key"}
    # WHEN / THEN IAM mode ignores it: no principal, or one of no client, is unauthenticated
    with pytest.raises(UnauthenticatedError, match=message) as refused:
        authenticate(directory(), "iam", identity, headers)
    assert refused.value.http_status == 401


@pytest.mark.parametrize("name", ["Authorization", "authorization", "AUTHORIZATION"])
def test_api_key_mode_reads_a_bearer_key_whatever_the_header_case(name: str) -> None:
    # WHEN a request carries the key (scheme in any case, the key padded)
    client = authenticate(directory(), "api_key", {}, {name: "bearer  s3cret-key "})
    # THEN it is the key's client, found by the key's hash
    assert client.client_id == "c_key"


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "send 'Authorization: Bearer <api_key>'"),
        ({"Authorization": "Basic czNjcmV0"}, "send 'Authorization: Bearer <api_key>'"),
        ({"Authorization": "Bearer"}, "send 'Authorization: Bearer <api_key>'"),
        ({"Authorization": None}, "send 'Authorization: Bearer <api_key>'"),
        ({"Authorization": "Bearer not-the-key"}, "unknown API key"),
    ],
)
def test_api_key_mode_refuses_other_schemes_and_unknown_keys(headers: dict[str, Any], message: str) -> None:
    # GIVEN a signed request's identity, which API-key mode does not trust
    identity = {"userArn": ROLE}
    with pytest.raises(UnauthenticatedError, match=message):
        authenticate(directory(), "api_key", identity, headers)


def test_an_authenticator_binds_the_directory_and_mode() -> None:
    authenticator = Authenticator(directory(), "api_key")
    assert authenticator.authenticate({}, {"Authorization": "Bearer s3cret-key"}).client_id == "c_key"


def test_the_key_hash_is_the_domains_wherever_it_is_imported_from() -> None:
    # The directory stores the hash, never the key: the adapter and the domain must agree on it.
    assert dynamodb.hash_api_key is hash_api_key
    assert hash_api_key("k") == hashlib.sha256(b"k").hexdigest() != "k"

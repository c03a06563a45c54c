"""Who is calling: an IAM principal or an API key, resolved to a registered client."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .errors import UnauthenticatedError

if TYPE_CHECKING:
    from .models import Client
    from .ports import ClientDirectory

#: ``iam``: SigV4-signed requests (API Gateway's AWS_IAM authorizer); ``api_key``: a bearer key (local mode).
AuthMode = Literal["iam", "api_key"]

_ASSUMED_ROLE = re.compile(r"^arn:(?P<partition>aws[a-z-]*):sts::(?P<account>\d{12}):assumed-role/(?P<role>[^/]+)/.+$")


def principal_candidates(principal_arn: str) -> list[str]:
    """The ARNs a client may be registered under, most specific first.

    A caller using a role arrives as ``arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION``; the session
    name changes from caller to caller, so the role's own ARN (``arn:aws:iam::ACCOUNT:role/ROLE``) is
    what a client is registered with. Roles with a path cannot be told from their session ARN: register
    those under the session ARN pattern's role name without the path.
    """
    candidates = [principal_arn]
    match = _ASSUMED_ROLE.match(principal_arn)
    if match:
        candidates.append(f"arn:{match['partition']}:iam::{match['account']}:role/{match['role']}")
    return candidates


def hash_api_key(api_key: str) -> str:
    """What the client directory stores of an API key: its hex SHA-256, never the key."""
    return hashlib.sha256(api_key.encode()).hexdigest()


def authenticate(
    clients: ClientDirectory, mode: AuthMode, identity: Mapping[str, Any], headers: Mapping[str, str]
) -> Client:
    """The client behind a request: its IAM principal (``iam``), or its API key (``api_key``).

    Parameters
    ----------
    clients
        The client directory.
    mode
        How requests authenticate (the ``AUTH_MODE`` setting).
    identity
        The request's ``requestContext.identity`` as API Gateway gives it (``userArn``, ``caller``).
    headers
        The request's headers (``Authorization`` is looked up whatever its case).

    Raises
    ------
    UnauthenticatedError
        No credentials, or credentials of no registered client.
    """
    if mode == "iam":
        principal = identity.get("userArn") or identity.get("caller")
        if not principal:
            raise UnauthenticatedError("the request is not signed (IAM authentication is required)")
        for candidate in principal_candidates(str(principal)):
            client = clients.by_principal(candidate)
            if client is not None:
                return client
        raise UnauthenticatedError(f"principal '{principal}' is not a registered client")
    header = next((str(value or "") for name, value in headers.items() if name.lower() == "authorization"), "")
    scheme, _, api_key = header.partition(" ")
    if scheme.lower() != "bearer" or not api_key:
        raise UnauthenticatedError("send 'Authorization: Bearer <api_key>'")
    client = clients.by_api_key_hash(hash_api_key(api_key.strip()))
    if client is None:
        raise UnauthenticatedError("unknown API key")
    return client


@dataclass(frozen=True)
class Authenticator:
    """:func:`authenticate` bound to a client directory and a mode: what an API handler needs."""

    clients: ClientDirectory
    mode: AuthMode

    def authenticate(self, identity: Mapping[str, Any], headers: Mapping[str, str]) -> Client:
        """See :func:`authenticate`."""
        return authenticate(self.clients, self.mode, identity, headers)

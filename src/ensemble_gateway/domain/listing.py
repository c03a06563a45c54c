"""Listing: the caller's own predictions, newest first, a page at a time (``GET /predictions``).

The page token (``next_token``) is opaque to clients: base64url of ``[version, created_at,
prediction_id, binding]``, where the position is the last prediction of the page and the binding
is a digest of the caller and the filters. The store is always queried for the caller's own
predictions, so no token can reach another client's: a token of another client, or of other
filters, is refused (400) because its binding differs, and a token edited by hand can at most
move the caller within their own list. The token is not signed: the gateway holds no secret to
sign it with, and nothing in it needs one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from .api import PredictionListDocument
from .errors import InvalidRequestError
from .models import PREDICTION_ID_PATTERN, PREDICTION_STATUSES, SERVICE_NAME_PATTERN, Client, PredictionStatus
from .ports import PageCursor, PredictionQuery

if TYPE_CHECKING:
    from .ports import GatewayPorts
    from .read_model import ReadModel

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
#: The query parameters of ``GET /predictions``; any other is refused.
PARAMETERS = ("status", "service", "created_after", "limit", "next_token")
# A token this module writes is about 150 characters; anything much longer is not one.
MAX_TOKEN_LENGTH = 512
TOKEN_VERSION = 1
BAD_TOKEN = "next_token is not a token of this API: pass the next_token of the previous page as it was"
OTHER_LISTING = (
    "next_token does not continue this listing: pass it with the same filters (status, service, "
    "created_after) as the request whose page gave it"
)


@dataclass(frozen=True)
class ListRequest:
    """What ``GET /predictions`` asks for, validated (see :meth:`from_query`)."""

    status: PredictionStatus | None = None
    service: str | None = None
    created_after: datetime | None = None
    limit: int = DEFAULT_LIMIT
    next_token: str | None = None

    @classmethod
    def from_query(cls, parameters: Mapping[str, str] | None) -> ListRequest:
        """The request of a query string's parameters.

        An empty ``next_token`` counts as absent (the first page: a client may pass the previous
        page's null through); any other empty value is refused, as its type requires.

        ``status`` is a top-level status name; ``service`` a service name; ``created_after`` an
        ISO 8601 date-time (UTC when it has no offset); ``limit`` 1 to 100 (default 20).

        Raises
        ------
        InvalidRequestError
            An unknown parameter, or a value that is not what it should be (the message names it).
        """
        given = {name: value for name, value in (parameters or {}).items() if name != "next_token" or value}
        unknown = sorted(set(given) - set(PARAMETERS))
        if unknown:
            raise InvalidRequestError(
                f"unknown query parameter '{unknown[0][:64]}'; GET /predictions takes {', '.join(PARAMETERS)}"
            )
        status = None
        if "status" in given:
            names = [s.value for s in PREDICTION_STATUSES]
            if given["status"] not in names:
                raise InvalidRequestError(f"status '{given['status'][:64]}' is not one of {', '.join(names)}")
            status = PredictionStatus(given["status"])
        service = given.get("service")
        if service is not None and not SERVICE_NAME_PATTERN.match(service):
            raise InvalidRequestError(
                f"service '{service[:64]}' is not a service name (lowercase letters, digits and '-', at most 63)"
            )
        created_after = None
        if "created_after" in given:
            created_after = _moment(given["created_after"])
        limit = DEFAULT_LIMIT
        if "limit" in given:
            raw = given["limit"].strip()
            if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
                raise InvalidRequestError(f"limit '{given['limit'][:16]}' is not a whole number from 1 to {MAX_LIMIT}")
            limit = int(raw)
        token = given.get("next_token")
        if token is not None and len(token) > MAX_TOKEN_LENGTH:
            raise InvalidRequestError(BAD_TOKEN)
        return cls(status=status, service=service, created_after=created_after, limit=limit, next_token=token)


@dataclass
class Listing:
    """``GET /predictions``: a page of the caller's own top-level predictions, newest first.

    Parameters
    ----------
    ports
        The gateway's shared ports (the prediction store pages, the clock).
    documents
        Renders each prediction as ``GET /predictions/{id}`` does (see ``ReadModel.documents`` for
        what a list item spares).
    """

    ports: GatewayPorts
    documents: ReadModel

    def list(self, client: Client, request: ListRequest) -> PredictionListDocument:
        """The page ``request`` asks for.

        Raises
        ------
        InvalidRequestError
            ``next_token`` is not a token of this API, or continues another listing.
        """
        binding = _binding(client, request)
        after = decode_token(request.next_token, binding) if request.next_token else None
        page = self.ports.predictions.list_owned(
            PredictionQuery(
                owner=client.client_id,
                now=self.ports.clock(),
                status=request.status,
                service=request.service,
                created_after=request.created_after,
                limit=request.limit,
                after=after,
            )
        )
        return PredictionListDocument(
            predictions=self.documents.documents(page.predictions),
            next_token=encode_token(page.cursor, binding) if page.cursor is not None else None,
        )


def encode_token(cursor: PageCursor, binding: str) -> str:
    """The ``next_token`` of a page that ended at ``cursor``, for the listing ``binding`` names."""
    payload = [TOKEN_VERSION, cursor.created_at.isoformat(), cursor.prediction_id, binding]
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_token(token: str, binding: str) -> PageCursor:
    """The position a ``next_token`` names, if it continues the listing ``binding`` names.

    Raises
    ------
    InvalidRequestError
        Not a token of this API, or a token of another listing (another client, other filters).
    """
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        version, created_at, prediction_id, bound = json.loads(raw)
        position = PageCursor(created_at=datetime.fromisoformat(created_at), prediction_id=prediction_id)
    except (binascii.Error, UnicodeDecodeError, TypeError, ValueError):
        raise InvalidRequestError(BAD_TOKEN) from None
    if (
        version != TOKEN_VERSION
        or not isinstance(prediction_id, str)
        or not PREDICTION_ID_PATTERN.match(prediction_id)
        or position.created_at.tzinfo is None
    ):
        raise InvalidRequestError(BAD_TOKEN)
    if bound != binding:
        raise InvalidRequestError(OTHER_LISTING)
    return position


def _binding(client: Client, request: ListRequest) -> str:
    """What a token is valid for: this client, and these filters (not the limit: pages may vary)."""
    after = request.created_after.isoformat() if request.created_after else ""
    key = "\x00".join((client.client_id, request.status or "", request.service or "", after))
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _moment(value: str) -> datetime:
    """``created_after`` as an aware UTC datetime (``Z`` and offsets accepted; none means UTC)."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidRequestError(
            f"created_after '{value[:64]}' is not an ISO 8601 date-time, e.g. 2026-11-22T09:30:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        # 0001-01-01T00:00:00+01:00 is before the first UTC moment Python can hold.
        raise InvalidRequestError(f"created_after '{value[:64]}' is out of range") from None

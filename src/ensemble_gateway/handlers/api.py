"""Shared pieces of the API handlers: the resolver, authentication, bodies and error mapping."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from pydantic import BaseModel, ValidationError

from ..domain.api import ErrorDocument, build
from ..domain.errors import GatewayError, InvalidRequestError
from ..domain.request_json import RequestBodyError, parse_request_json
from ..observability import logger

if TYPE_CHECKING:
    # Only type annotations: nothing to import at cold start.
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from ..domain.auth import Authenticator
    from ..domain.models import Client

# Every error answer is one: built at cold start (see domain/api.py).
build(ErrorDocument)


def error_response(status: int, code: str, message: str) -> Response:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=ErrorDocument(code=code, message=message).model_dump_json(),
    )


def _describe(error: dict[str, Any]) -> str:
    location = [str(part) for part in error.get("loc", ()) if part != "body"]
    field = ".".join(location)
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return f"unknown field '{field}'"
    if kind == "json_invalid":
        return "the request body is not valid JSON"
    if kind == "missing":
        return f"field '{field}' is required"
    message = str(error.get("msg", "is invalid"))
    if len(location) >= 2 and location[-1] == "[key]":
        # pydantic locates a bad map key as (..., <the key>, "[key]"): name the map and the key.
        return f"field '{'.'.join(location[:-2])}': key '{location[-2][:64]}': {message}"
    return f"field '{field}': {message}" if field else message


def make_resolver() -> APIGatewayRestResolver:
    """A REST API resolver answering our error documents.

    Bodies are validated by the handlers with the domain's pydantic models, not by the framework's
    validation middleware: that middleware costs ~0.16 s of cold start, and the published OpenAPI
    document is built from the same models anyway (``ensemble_gateway.openapi``).
    """
    app = APIGatewayRestResolver()

    @app.exception_handler(ValidationError)
    def _invalid(error: ValidationError) -> Response:
        details = [dict(detail) for detail in error.errors()]
        message = "; ".join(_describe(d) for d in details) or "invalid request"
        return error_response(400, "InvalidRequest", message)

    @app.exception_handler(GatewayError)
    def _gateway_error(error: GatewayError) -> Response:
        if error.http_status >= 500:
            logger.exception("request failed")
        return error_response(error.http_status, error.code, error.message)

    @app.not_found
    def _route_not_found(_: Exception) -> Response:
        return error_response(404, "NotFound", "no such route")

    return app


JSON_BODY_TYPES = ("application/json", "text/json")


def unreadable_body(event: dict[str, Any]) -> dict[str, Any] | None:
    """An error answer for a body that is not JSON text (415) or not JSON at all (400); else None.

    Checked before routing: the framework would otherwise try to parse, say, a multipart body or
    bytes that are not UTF-8, and fail with a server error.
    """
    body = event.get("body")
    if not body:
        return None
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    media_type = headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if media_type not in JSON_BODY_TYPES:
        return _error(415, "UnsupportedMediaType", f"the request body must be application/json, not '{media_type}'")
    try:
        raw = base64.b64decode(body) if event.get("isBase64Encoded") else str(body).encode()
        parse_request_json(raw.decode("utf-8"))
    except RequestBodyError as error:
        return _error(400, "InvalidRequest", str(error))
    except (ValueError, UnicodeDecodeError):
        return _error(400, "InvalidRequest", "the request body is not valid JSON")
    return None


def _error(status: int, code: str, message: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": ErrorDocument(code=code, message=message).model_dump_json(),
    }


def authenticate(app: APIGatewayRestResolver, authenticator: Authenticator) -> Client:
    """The client behind the current request (the policy is the domain's: ``domain/auth.py``).

    Raises
    ------
    UnauthenticatedError
        No credentials, or credentials of no registered client.
    """
    event = app.current_event
    # The raw identity: in local mode (API keys) the front end's events may carry none.
    identity = (event.raw_event.get("requestContext") or {}).get("identity") or {}
    return authenticator.authenticate(identity, event.headers)


def resolve(
    app: APIGatewayRestResolver, event: dict[str, Any], context: LambdaContext, dependencies: Any
) -> dict[str, Any]:
    """Route ``event``, the routes reading ``dependencies`` from ``app.context["dependencies"]``.

    Powertools clears ``app.context`` after every resolution: nothing of one request is left for
    the next.
    """
    app.append_context(dependencies=dependencies)
    return app.resolve(event, context)


def json_object_body(app: APIGatewayRestResolver) -> dict[str, Any]:
    """The request body as a JSON object (its JSON syntax was checked by ``unreadable_body``)."""
    raw: Any = app.current_event.json_body if app.current_event.body else None
    if raw is None:
        raise InvalidRequestError("the request body is empty; send a JSON object")
    if not isinstance(raw, dict):
        raise InvalidRequestError("the request body must be a JSON object")
    return raw


def empty_body(app: APIGatewayRestResolver) -> None:
    """Refuse a body on a route that takes none: nothing, or an empty JSON object (``{}``).

    Raises
    ------
    InvalidRequestError
        Any other body (unknown fields are rejected, as everywhere in the API).
    """
    if not (app.current_event.body or "").strip():
        return
    raw: Any = app.current_event.json_body
    if raw == {}:
        return
    if isinstance(raw, dict):
        raise InvalidRequestError(f"unknown field '{str(next(iter(raw)))[:64]}': this request takes no body")
    raise InvalidRequestError("this request takes no body (or an empty JSON object)")


def json_response(status: int, document: BaseModel) -> Response[str]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=document.model_dump_json())

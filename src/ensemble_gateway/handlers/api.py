"""Shared pieces of the two API handlers: the resolver, authentication and error mapping."""

from __future__ import annotations

import base64
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from pydantic import BaseModel, ValidationError

from ..adapters.dynamodb import hash_api_key
from ..bootstrap import client_directory
from ..domain.api import ErrorDocument, build
from ..domain.auth import principal_candidates
from ..domain.errors import GatewayError, InvalidRequestError, UnauthenticatedError
from ..domain.models import Client
from ..domain.request_json import RequestBodyError, parse_request_json
from ..observability import logger
from ..settings import get_settings

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


def authenticate(app: APIGatewayRestResolver) -> Client:
    """The client behind the request: its IAM principal on AWS, its API key in local mode.

    Raises
    ------
    UnauthenticatedError
        No credentials, or credentials of no registered client.
    """
    event = app.current_event
    if get_settings().auth_mode == "iam":
        identity = event.request_context.identity
        principal = identity.user_arn or identity.caller
        if not principal:
            raise UnauthenticatedError("the request is not signed (IAM authentication is required)")
        for candidate in principal_candidates(principal):
            client = client_directory().by_principal(candidate)
            if client is not None:
                return client
        raise UnauthenticatedError(f"principal '{principal}' is not a registered client")
    # Powertools' headers are case-insensitive.
    header = event.headers.get("Authorization") or ""
    scheme, _, api_key = header.partition(" ")
    if scheme.lower() != "bearer" or not api_key:
        raise UnauthenticatedError("send 'Authorization: Bearer <api_key>'")
    client = client_directory().by_api_key_hash(hash_api_key(api_key.strip()))
    if client is None:
        raise UnauthenticatedError("unknown API key")
    return client


def json_object_body(app: APIGatewayRestResolver) -> dict[str, Any]:
    """The request body as a JSON object (its JSON syntax was checked by ``unreadable_body``)."""
    raw: Any = app.current_event.json_body if app.current_event.body else None
    if raw is None:
        raise InvalidRequestError("the request body is empty; send a JSON object")
    if not isinstance(raw, dict):
        raise InvalidRequestError("the request body must be a JSON object")
    return raw


def json_response(status: int, document: BaseModel) -> Response[str]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=document.model_dump_json())

"""The API front end: HTTP requests → API Gateway REST proxy events → our handlers (like sam local)."""

from __future__ import annotations

import base64
import json
import math
import re
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

from .deployer import ACCOUNT_ID, FunctionSpec
from .lambdas import FunctionRegistry


class Route:
    def __init__(self, method: str, path: str, spec: FunctionSpec) -> None:
        self.method = method.upper()
        self.path = path
        self.spec = spec
        pattern = re.sub(r"\{([^}/+]+)\+?\}", r"(?P<\1>[^/]+)", path.rstrip("/") or "/")
        self.regex = re.compile(f"^{pattern}/?$")


#: Methods answered while the runtime drains: polling what was accepted before the stop must go on.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: API Gateway's fixed quota on the request line and header values together (bytes).
MAX_REQUEST_HEAD_BYTES = 10240


def _error_code(status: int) -> str:
    """``431`` → ``RequestHeaderFieldsTooLarge``: the code of the gateway's error document."""
    from http import HTTPStatus

    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    return "".join(word.capitalize() if word.islower() else word for word in phrase.replace("-", " ").split())


def json_error_request_handler() -> type[Any]:
    """werkzeug's request handler, answering what it refuses before the app sees the request (a
    header line over 64 KiB, over 100 headers, a malformed request line) with the gateway's JSON
    error document instead of http.server's HTML page."""
    from werkzeug.serving import WSGIRequestHandler

    class JsonErrorRequestHandler(WSGIRequestHandler):
        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            detail = message or _error_code(code)
            if code == 431:
                detail = (
                    f"the request's headers are too large ({message}); "
                    f"API Gateway accepts at most {MAX_REQUEST_HEAD_BYTES} bytes"
                )
            body = json.dumps({"code": _error_code(code), "message": detail}).encode()
            self.log_error("code %d, message %s", code, detail)
            self.send_response(code)
            self.send_header("Connection", "close")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if getattr(self, "command", None) != "HEAD":
                self.wfile.write(body)

    return JsonErrorRequestHandler


def _request_head_bytes(environ: dict[str, Any]) -> int:
    """The size of the request line and the header values, as API Gateway counts them."""
    line = (
        len(environ.get("REQUEST_METHOD", ""))
        + len(environ.get("PATH_INFO", ""))
        + len(environ.get("QUERY_STRING", ""))
    )
    values = sum(len(str(value)) for key, value in environ.items() if key.startswith("HTTP_"))
    return line + values + len(environ.get("CONTENT_TYPE", "")) + len(environ.get("CONTENT_LENGTH", ""))


class ApiFrontEnd:
    """A WSGI app routing by the ``Api`` events of the template's functions.

    :meth:`close_intake` makes it refuse every request but reads (``GET``, ``HEAD``, ``OPTIONS``)
    with ``503 Service Unavailable``, a ``Retry-After`` header and the gateway's error document,
    while the runtime drains before stopping.
    """

    def __init__(
        self,
        functions: dict[str, FunctionSpec],
        registry: FunctionRegistry,
        stage: str,
        on_request: Callable[[str, str, int], None] | None = None,
    ) -> None:
        self.registry = registry
        self.stage = stage
        self.on_request = on_request
        self.routes = [
            Route(event.properties["Method"], event.properties["Path"], spec)
            for spec in functions.values()
            for event in spec.events
            if event.kind == "Api"
        ]
        self._intake_closed = threading.Event()
        self._reopens_at = 0.0

    def close_intake(self, retry_after: float) -> None:
        """Refuse new work from now on (503); reads still answer.

        Parameters
        ----------
        retry_after
            Seconds until the runtime has stopped (the drain deadline): ``Retry-After`` counts
            down to it, so that a client retries against a restarted runtime, not this one.
        """
        self._reopens_at = time.monotonic() + max(0.0, retry_after)
        self._intake_closed.set()

    @property
    def intake_closed(self) -> bool:
        """Whether new work is refused (the runtime is draining)."""
        return self._intake_closed.is_set()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "/")
        head = _request_head_bytes(environ)
        if head > MAX_REQUEST_HEAD_BYTES:
            document = {
                "code": "RequestHeaderFieldsTooLarge",
                "message": f"the request line and headers take {head} bytes; API Gateway accepts at most "
                f"{MAX_REQUEST_HEAD_BYTES}",
            }
            return self._answer(start_response, "431 Request Header Fields Too Large", document)
        if self._intake_closed.is_set() and method not in READ_METHODS:
            return self._refuse_while_draining(start_response)
        for route in self.routes:
            match = route.regex.match(path)
            if match and route.method in (method, "ANY"):
                return self._dispatch(route, match.groupdict(), environ, start_response)
        allowed = sorted({route.method for route in self.routes if route.regex.match(path)})
        if not allowed:
            # What API Gateway answers for a path no route serves.
            return self._answer(start_response, "403 Forbidden", {"message": "Missing Authentication Token"})
        return self._answer(
            start_response, "405 Method Not Allowed", {"message": "Method Not Allowed"}, [("Allow", ", ".join(allowed))]
        )

    def _refuse_while_draining(self, start_response: Callable[..., Any]) -> list[bytes]:
        retry_after = max(1, math.ceil(self._reopens_at - time.monotonic()))
        # The gateway's error document (domain.api.ErrorDocument), as every 5xx of the API.
        document = {
            "code": "ServiceUnavailable",
            "message": (
                "the local runtime is shutting down and accepts no new predictions; predictions "
                "accepted before can still be polled with GET /predictions/{prediction_id}. "
                "Retry once `ensemble-gateway local` runs again."
            ),
        }
        return self._answer(start_response, "503 Service Unavailable", document, [("Retry-After", str(retry_after))])

    @staticmethod
    def _answer(
        start_response: Callable[..., Any],
        status: str,
        document: dict[str, Any],
        headers: list[tuple[str, str]] | None = None,
    ) -> list[bytes]:
        body = json.dumps(document).encode()
        start_response(
            status, [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *(headers or [])]
        )
        return [body]

    def _dispatch(
        self,
        route: Route,
        path_parameters: dict[str, str],
        environ: dict[str, Any],
        start_response: Callable[..., Any],
    ) -> Any:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        headers: dict[str, str] = {}
        for key, value in environ.items():
            if key.startswith("HTTP_"):
                headers[key[5:].replace("_", "-").title()] = value
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        query: dict[str, list[str]] = {}
        for pair in filter(None, environ.get("QUERY_STRING", "").split("&")):
            name, _, value = pair.partition("=")
            # API Gateway hands the function decoded names and values ("%3A" is ":", "+" a space).
            query.setdefault(unquote_plus(name), []).append(unquote_plus(value))
        try:
            body: str | None = raw.decode() if raw else None
            encoded = False
        except UnicodeDecodeError:
            body, encoded = base64.b64encode(raw).decode(), True
        now = datetime.now(UTC)
        event = {
            "resource": route.path,
            "path": environ.get("PATH_INFO", "/"),
            "httpMethod": environ.get("REQUEST_METHOD", "GET").upper(),
            "headers": headers,
            "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
            "multiValueQueryStringParameters": query or None,
            "pathParameters": path_parameters or None,
            "stageVariables": None,
            "requestContext": {
                "resourcePath": route.path,
                "httpMethod": route.method,
                "stage": self.stage,
                "requestId": str(uuid.uuid4()),
                "accountId": ACCOUNT_ID,
                "apiId": "local",
                "path": f"/{self.stage}{environ.get('PATH_INFO', '/')}",
                "requestTimeEpoch": int(now.timestamp() * 1000),
                "identity": {
                    "sourceIp": environ.get("REMOTE_ADDR", "127.0.0.1"),
                    "userAgent": headers.get("User-Agent"),
                },
            },
            "body": body,
            "isBase64Encoded": encoded,
        }
        try:
            result = self.registry.invoke(route.spec, event)
        except Exception:
            result = {"statusCode": 502, "body": json.dumps({"message": "Internal server error"})}
        status = int(result.get("statusCode", 200))
        response_headers = dict(result.get("headers") or {})
        for name, values in (result.get("multiValueHeaders") or {}).items():
            response_headers[name] = ", ".join(values)
        payload = result.get("body") or ""
        data = base64.b64decode(payload) if result.get("isBase64Encoded") else str(payload).encode()
        response_headers["Content-Length"] = str(len(data))
        if self.on_request:
            self.on_request(event["httpMethod"], event["path"], status)
        from http import HTTPStatus

        phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
        start_response(f"{status} {phrase}", list(response_headers.items()))
        return [data]

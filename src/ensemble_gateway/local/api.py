"""The API front end: HTTP requests → API Gateway REST proxy events → our handlers (like sam local)."""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .deployer import ACCOUNT_ID, FunctionSpec
from .lambdas import FunctionRegistry


class Route:
    def __init__(self, method: str, path: str, spec: FunctionSpec) -> None:
        self.method = method.upper()
        self.path = path
        self.spec = spec
        pattern = re.sub(r"\{([^}/+]+)\+?\}", r"(?P<\1>[^/]+)", path.rstrip("/") or "/")
        self.regex = re.compile(f"^{pattern}/?$")


class ApiFrontEnd:
    """A WSGI app routing by the ``Api`` events of the template's functions."""

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

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "/")
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
            query.setdefault(name, []).append(value)
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

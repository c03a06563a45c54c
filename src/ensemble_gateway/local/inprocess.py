"""In-process transport: boto3 calls of the runtime's own process reach its AWS app without HTTP.

Every handler, poller and model worker of the local runtime runs in the process that serves the
embedded AWS endpoint, and each of their calls used to cross loopback TCP: botocore's urllib3
pool opened a connection, werkzeug's threaded server started a thread, both sides wrote and
parsed HTTP. Profiling a burst put that at about a quarter of the process's CPU (it is one
process bound by the GIL). This module hands a request that botocore has built, signed and is
about to send straight to the WSGI app instead — the same app, middlewares included (Lambda
Invoke, the SageMaker runtime, the S3 guard, atomic DynamoDB), in the environ werkzeug's server
would have made, and returns its answer as the response botocore parses. Requests from other
processes (the CLI in another terminal, a browser's presigned upload, ``curl``) still come over
HTTP to the same app.

botocore's ``before-send`` event is what moto's own in-memory mode uses: a handler returning a
response skips the HTTP send. It is registered once in botocore's built-in handlers, so every
boto3 session created afterwards has it; it answers only requests to an endpoint URL that a
running runtime registered (:func:`register`), and returns None for every other request, which
botocore then sends over the network as usual.
"""

from __future__ import annotations

import io
import sys
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["install", "register", "unregister"]

_apps: dict[str, Callable[..., Any]] = {}
_lock = threading.Lock()
_installed = False
# Hop-by-hop headers: meaningful to a connection, not to the app (werkzeug's server consumes them).
_SKIPPED_HEADERS = frozenset({"expect", "connection", "transfer-encoding"})


def install() -> None:
    """Add the transport to botocore's built-in handlers (sessions created from now on use it)."""
    global _installed
    with _lock:
        if _installed:
            return
        from botocore.handlers import BUILTIN_HANDLERS

        BUILTIN_HANDLERS.append(("before-send", _before_send))
        _installed = True


def register(base_url: str, app: Callable[..., Any]) -> None:
    """Answer requests to ``base_url`` (``http://127.0.0.1:<port>``) with the WSGI ``app``."""
    install()
    with _lock:
        _apps[base_url.rstrip("/")] = app


def unregister(base_url: str) -> None:
    """Stop answering ``base_url`` in-process (its requests go over HTTP again)."""
    with _lock:
        _apps.pop(base_url.rstrip("/"), None)


def _before_send(request: Any, **kwargs: Any) -> Any:
    url = str(request.url)
    parts = urlsplit(url)
    app = _apps.get(f"{parts.scheme}://{parts.netloc}")
    if app is None:
        return None
    return _call(app, request, parts)


def _body(request: Any) -> bytes:
    body = request.body
    if body is None:
        return b""
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    if hasattr(body, "read"):
        data = body.read()
        return data.encode("utf-8") if isinstance(data, str) else bytes(data)
    return b"".join(chunk.encode("utf-8") if isinstance(chunk, str) else bytes(chunk) for chunk in body)


def _latin1(text: str) -> str:
    """What werkzeug's server puts in the environ for a request line's text (PEP 3333's latin-1 dance)."""
    return text.encode("utf-8").decode("latin-1")


def _environ(request: Any, parts: Any, body: bytes) -> dict[str, Any]:
    raw_path = parts.path or "/"
    target = raw_path + (f"?{parts.query}" if parts.query else "")
    host, _, port = parts.netloc.partition(":")
    environ: dict[str, Any] = {
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": parts.scheme,
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "SERVER_SOFTWARE": "ensemble-gateway-inprocess",
        "REQUEST_METHOD": str(request.method).upper(),
        "SCRIPT_NAME": "",
        "PATH_INFO": _latin1(unquote(raw_path)),
        "QUERY_STRING": _latin1(parts.query),
        "REQUEST_URI": _latin1(target),
        "RAW_URI": _latin1(target),
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": 0,
        "SERVER_NAME": host,
        "SERVER_PORT": port or ("443" if parts.scheme == "https" else "80"),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": parts.netloc,
    }
    for name, value in request.headers.items():
        text = value.decode("utf-8") if isinstance(value, bytes) else str(value)
        if name.lower() in _SKIPPED_HEADERS or "_" in name:
            continue
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = f"HTTP_{key}"
            if key in environ and key != "HTTP_HOST":
                text = f"{environ[key]},{text}"  # as werkzeug's server joins a repeated header
        environ[key] = text
    environ["CONTENT_LENGTH"] = str(len(body))
    return environ


def _call(app: Callable[..., Any], request: Any, parts: Any) -> Any:
    from botocore.awsrequest import AWSResponse
    from botocore.compat import HTTPHeaders

    body = _body(request)
    environ = _environ(request, parts, body)
    answered: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        answered["status"] = int(status.split(" ", 1)[0])
        answered["headers"] = headers
        return chunks.append

    chunks: list[bytes] = []
    try:
        result = app(environ, start_response)
        try:
            chunks.extend(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
    except Exception as error:  # what werkzeug's server answers for an app that raised
        answered = {"status": 500, "headers": [("Content-Type", "text/plain")]}
        chunks = [f"local runtime error: {type(error).__name__}: {error}".encode()]
    headers = HTTPHeaders()
    for name, value in answered.get("headers", []):
        headers[name] = value
    content = b"" if environ["REQUEST_METHOD"] == "HEAD" else b"".join(chunks)
    return AWSResponse(str(request.url), answered.get("status", 500), headers, _RawBody(content))


class _RawBody(io.BytesIO):
    """The raw body botocore reads, as urllib3's response offers it (``read`` and ``stream``)."""

    def stream(self, amt: int = 65536, decode_content: bool | None = None) -> Any:
        while True:
            chunk = self.read(amt)
            if not chunk:
                return
            yield chunk

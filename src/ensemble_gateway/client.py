"""A small Python client of the gateway's HTTP API (used by the CLI, the demo and the tests)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

TERMINAL = ("COMPLETED", "FAILED", "EXPIRED", "CANCELLED")

# What API Gateway (and the local API front end, like it) answers for a path no route serves.
_NO_ROUTE = "Missing Authentication Token"


class GatewayClientError(Exception):
    """The API answered with an error document."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class GatewayUnreachableError(GatewayClientError):
    """Nothing answered at the API's address (not started, stopped, or the connection broke)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(0, "Unreachable", f"cannot reach {url}: {reason}")

    def __str__(self) -> str:
        return self.message


class GatewayClient:
    """Calls the API with an API key (local mode) or SigV4-signed requests (IAM, on AWS).

    Parameters
    ----------
    api_url
        The API's base URL, e.g. ``http://127.0.0.1:3000`` or the stack's ``ApiUrl`` output.
    api_key
        Sent as ``Authorization: Bearer <api_key>``; None signs with the AWS credentials instead.
    region
        Region for SigV4 signing.
    timeout
        Seconds to wait for each answer (connecting, then each read).
    """

    def __init__(
        self, api_url: str, api_key: str | None = None, region: str = "us-east-1", timeout: float = 30.0
    ) -> None:
        import requests

        self.api_url = api_url.rstrip("/")
        self.api_key = api_key
        self.region = region
        self.timeout = timeout
        self.http = requests.Session()

    def _request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        url = self.api_url + path
        if self.api_key:
            all_headers["Authorization"] = f"Bearer {self.api_key}"
        else:
            all_headers.update(self._sigv4(method, url, data, all_headers))
        response = self._send(method, url, data=data, headers=all_headers)
        try:
            document = response.json()
        except ValueError:
            document = {"code": "InvalidResponse", "message": response.text[:500]}
        if response.status_code >= 400:
            if not isinstance(document, dict):
                document = {"message": str(document)[:500]}
            route = path.split("?", 1)[0]
            if response.status_code == 403 and document.get("message") == _NO_ROUTE and "code" not in document:
                # A wrong --api-url (on AWS it ends with the stage) or a gateway without this route.
                raise GatewayClientError(
                    403,
                    "MissingAuthenticationToken",
                    f"{_NO_ROUTE}: {self.api_url} has no route {method} {route} (check the API URL: on AWS it "
                    "ends with the stage, e.g. /dev; or the gateway predates this request)",
                )
            if response.status_code == 405 and "code" not in document:
                raise GatewayClientError(
                    405,
                    "MethodNotAllowed",
                    f"{self.api_url} does not serve {method} {route} (the gateway predates this request?)",
                )
            raise GatewayClientError(
                response.status_code,
                str(document.get("code", "Error")),
                str(document.get("message", document)),
            )
        return document

    def _send(self, method: str, url: str, **options: Any) -> Any:
        import requests

        where = url.split("?", 1)[0]
        try:
            return self.http.request(method, url, timeout=self.timeout, **options)
        except requests.Timeout:
            raise GatewayUnreachableError(where, f"no answer within {self.timeout:g} s") from None
        except requests.ConnectionError as error:
            # Refused or reset: a local runtime that has stopped, usually. A message, not a traceback.
            reason = "connection refused" if "refused" in str(error).lower() else type(error).__name__
            raise GatewayUnreachableError(where, reason) from None
        except requests.RequestException as error:
            # A URL requests cannot use (no scheme, bad host...): still a message, not a traceback.
            raise GatewayUnreachableError(where, f"{type(error).__name__}: {error}") from None

    def _sigv4(self, method: str, url: str, data: bytes | None, headers: dict[str, str]) -> dict[str, str]:
        import boto3
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        credentials = boto3.session.Session().get_credentials()
        if credentials is None:
            raise GatewayClientError(401, "NoCredentials", "no API key given and no AWS credentials found")
        request = AWSRequest(method=method, url=url, data=data, headers=headers)
        SigV4Auth(credentials.get_frozen_credentials(), "execute-api", self.region).add_auth(request)
        return dict(request.headers.items())

    # -- API -------------------------------------------------------------------------------
    def services(self) -> list[dict[str, Any]]:
        """``GET /services``: the active services."""
        return list(self._request("GET", "/services")["services"])

    def submit(
        self,
        service: str,
        *,
        webhook_url: str | None = None,
        content_type: str | None = None,
        accept: str | None = None,
        metadata: dict[str, str] | None = None,
        idempotency_key: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``POST /predictions``: the accepted prediction, with its ``upload`` form."""
        body: dict[str, Any] = {"service": service}
        if accept:
            body["accept"] = accept
        if webhook_url:
            body["notification"] = {"webhook": {"url": webhook_url}}
        if content_type:
            body["content_type"] = content_type
        if metadata:
            body["metadata"] = metadata
        body.update(extra or {})
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return dict(self._request("POST", "/predictions", body, headers))

    def upload(self, upload: dict[str, Any], data: bytes, content_type: str | None = None) -> None:
        """Send the input through the presigned POST (a multipart form, as a browser would).

        Parameters
        ----------
        upload
            The ``upload`` document of ``POST /predictions`` (or of :meth:`renew_upload`).
        data
            The input.
        content_type
            The input's media type; default: the one the form's policy requires.

        Raises
        ------
        GatewayClientError
            S3 refused the upload (``status`` is its HTTP status, ``code`` S3's error code).
        """
        fields = dict(upload["fields"])
        content_type = content_type or fields.get("Content-Type") or "application/octet-stream"
        response = self._send("POST", upload["url"], data=fields, files={"file": ("input", data, content_type)})
        if response.status_code >= 300:
            code, message = _s3_error(response.text)
            raise GatewayClientError(response.status_code, code or "UploadRefused", message)

    def status(self, prediction_id: str) -> dict[str, Any]:
        """``GET /predictions/{id}``: the prediction's document."""
        return dict(self._request("GET", f"/predictions/{_segment(prediction_id)}"))

    def list_predictions(
        self,
        *,
        status: str | None = None,
        service: str | None = None,
        created_after: datetime | str | None = None,
        limit: int | None = None,
        next_token: str | None = None,
    ) -> dict[str, Any]:
        """``GET /predictions``: one page of the caller's own predictions, newest first.

        Parameters
        ----------
        status, service
            Only predictions with this status, of this service.
        created_after
            Only predictions created after this moment (a naive datetime is taken as UTC).
        limit
            At most this many in the page.
        next_token
            The ``next_token`` of the previous page.

        Returns
        -------
        dict
            ``{"predictions": [<GET /predictions/{id} documents>], "next_token": str | None}``.
        """
        query: dict[str, str] = {}
        if status:
            query["status"] = status
        if service:
            query["service"] = service
        if created_after is not None:
            query["created_after"] = _timestamp(created_after)
        if limit is not None:
            query["limit"] = str(limit)
        if next_token:
            query["next_token"] = next_token
        path = "/predictions" + (f"?{urlencode(query)}" if query else "")
        return dict(self._request("GET", path))

    def cancel(self, prediction_id: str) -> dict[str, Any]:
        """``POST /predictions/{id}/cancel``: the prediction's document, ``CANCELLED``.

        Raises
        ------
        GatewayClientError
            409 when the prediction had already ended; 404 when it is unknown.
        """
        return dict(self._request("POST", f"/predictions/{_segment(prediction_id)}/cancel"))

    def renew_upload(self, prediction_id: str) -> dict[str, Any]:
        """``POST /predictions/{id}/upload``: a new upload form while the prediction is ``PENDING_UPLOAD``.

        Returns
        -------
        dict
            ``{"prediction_id", "upload": {...}}``, the form as ``POST /predictions`` gives it.

        Raises
        ------
        GatewayClientError
            409 once the input was accepted or the prediction has ended.
        """
        return dict(self._request("POST", f"/predictions/{_segment(prediction_id)}/upload"))

    def wait(
        self,
        prediction_id: str,
        timeout: float = 120.0,
        interval: float = 0.25,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
        max_interval: float | None = None,
    ) -> dict[str, Any]:
        """Poll until the prediction is terminal (or ``timeout`` passes: the last document).

        The polls are ``interval`` apart, growing by half each time up to ``max_interval``
        (default: ``interval``, constant).
        """
        deadline = time.monotonic() + timeout
        pause = interval
        document = self.status(prediction_id)
        while document["status"] not in TERMINAL and time.monotonic() < deadline:
            if on_progress:
                on_progress(document)
            time.sleep(max(0.0, min(pause, deadline - time.monotonic())))
            pause = min(pause * 1.5, max(max_interval or interval, interval))
            document = self.status(prediction_id)
        if on_progress:
            on_progress(document)
        return document

    def predict(
        self,
        service: str,
        data: bytes,
        content_type: str = "application/json",
        *,
        wait: bool = True,
        timeout: float = 120.0,
        **submit: Any,
    ) -> dict[str, Any]:
        accepted = self.submit(service, content_type=content_type, **submit)
        self.upload(accepted["upload"], data, content_type)
        if not wait:
            return accepted
        return self.wait(accepted["prediction_id"], timeout=timeout)

    def download(self, document: dict[str, Any]) -> bytes:
        """The output of a COMPLETED prediction, through its presigned URL.

        Raises
        ------
        GatewayClientError
            The URL was refused (expired: get the document again for a fresh one).
        """
        response = self._send("GET", document["result"]["url"])
        if response.status_code >= 300:
            code, message = _s3_error(response.text)
            raise GatewayClientError(response.status_code, code or "DownloadFailed", message)
        return bytes(response.content)


def _segment(value: str) -> str:
    """``value`` as one path segment: an ID with a ``/`` or ``?`` cannot reach another route."""
    return quote(value, safe="")


def _timestamp(moment: datetime | str) -> str:
    if isinstance(moment, str):
        return moment
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _s3_error(text: str) -> tuple[str | None, str]:
    """S3's error code and message from its XML answer (or the start of whatever it was)."""
    code = re.search(r"<Code>([^<]*)</Code>", text)
    message = re.search(r"<Message>([^<]*)</Message>", text)
    if code:
        return code.group(1), message.group(1) if message else code.group(1)
    return None, text[:500]

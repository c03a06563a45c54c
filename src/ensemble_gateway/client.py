"""A small Python client of the gateway's HTTP API (used by the CLI, the demo and the tests)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

TERMINAL = ("COMPLETED", "FAILED", "EXPIRED")


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
            raise GatewayClientError(
                response.status_code,
                str(document.get("code", "Error")),
                str(document.get("message", document)),
            )
        return document

    def _send(self, method: str, url: str, **options: Any) -> Any:
        import requests

        try:
            return self.http.request(method, url, timeout=self.timeout, **options)
        except requests.ConnectionError as error:
            # Refused or reset: a local runtime that has stopped, usually. A message, not a traceback.
            reason = "connection refused" if "refused" in str(error).lower() else type(error).__name__
            raise GatewayUnreachableError(url.split("?", 1)[0], reason) from None

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

    def upload(self, upload: dict[str, Any], data: bytes, content_type: str) -> None:
        """Send the input through the presigned POST (a multipart form, as a browser would)."""
        response = self._send(
            "POST", upload["url"], data=upload["fields"], files={"file": ("input", data, content_type)}
        )
        if response.status_code >= 300:
            raise GatewayClientError(response.status_code, "UploadRefused", response.text[:500])

    def status(self, prediction_id: str) -> dict[str, Any]:
        return dict(self._request("GET", f"/predictions/{prediction_id}"))

    def wait(
        self,
        prediction_id: str,
        timeout: float = 120.0,
        interval: float = 0.25,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the prediction is terminal (or ``timeout`` passes: the last document)."""
        deadline = time.monotonic() + timeout
        document = self.status(prediction_id)
        while document["status"] not in TERMINAL and time.monotonic() < deadline:
            if on_progress:
                on_progress(document)
            time.sleep(interval)
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
        """The output of a COMPLETED prediction, through its presigned URL."""
        response = self._send("GET", document["result"]["url"])
        response.raise_for_status()
        return bytes(response.content)

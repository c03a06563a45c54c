"""A small Python client of the gateway's HTTP API (used by the CLI, the demo and the tests)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, BinaryIO
from urllib.parse import quote, urlencode

TERMINAL = ("COMPLETED", "FAILED", "EXPIRED", "CANCELLED")
# The statuses of a batch that has ended (PENDING_UPLOAD and RUNNING have not).
BATCH_TERMINAL = ("COMPLETED", "COMPLETED_WITH_FAILURES", "FAILED", "CANCELLED")
# The media type of a batch's manifest and of its result file (JSON Lines).
JSON_LINES = "application/x-ndjson"

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

    def download_to(self, document: dict[str, Any], target: BinaryIO, chunk_size: int = 1 << 16) -> int:
        """Stream the file a document's ``result.url`` names into ``target``; the bytes written.

        For a batch's result file, which can be large: it is never held in memory whole.

        Raises
        ------
        GatewayClientError
            The URL was refused (expired: get the document again for a fresh one).
        GatewayUnreachableError
            The connection broke during the download (``target`` then holds a part of it).
        """
        import requests

        response = self._send("GET", document["result"]["url"], stream=True)
        with response:
            if response.status_code >= 300:
                code, message = _s3_error(response.text)
                raise GatewayClientError(response.status_code, code or "DownloadFailed", message)
            written = 0
            try:
                for chunk in response.iter_content(chunk_size):
                    target.write(chunk)
                    written += len(chunk)
            except requests.RequestException as error:
                where = str(document["result"]["url"]).split("?", 1)[0]
                raise GatewayUnreachableError(where, f"the download broke off: {type(error).__name__}") from None
        return written

    # -- batches ---------------------------------------------------------------------------
    def submit_batch(
        self,
        service: str,
        *,
        manifest_uri: str | None = None,
        content_type: str | None = None,
        max_concurrency: int | None = None,
        tolerated_failure_percent: int | None = None,
        webhook_url: str | None = None,
        metadata: dict[str, str] | None = None,
        idempotency_key: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``POST /batches``: the accepted batch, with the ``upload`` form of its manifest.

        Parameters
        ----------
        service
            The service every item goes to.
        manifest_uri
            ``s3://bucket/key`` of a manifest the gateway can read (on AWS); None: the answer
            carries an ``upload`` form for it (:meth:`upload_manifest`).
        content_type
            The items' media type (default: the service's first).
        max_concurrency
            At most this many items running at once (1-100; the gateway's default: 10).
        tolerated_failure_percent
            The share of failed items (0-100) above which the batch ends ``FAILED`` (default 0).
        webhook_url
            Notified once, when the batch ends.
        metadata
            Copied to every item (with ``batch_id`` and ``line``).
        idempotency_key
            The same key and body give the same batch.
        extra
            Other body fields, sent as given.

        Returns
        -------
        dict
            ``{batch_id, service, status, created_at, upload}`` (``upload`` None with a
            ``manifest_uri``, or on a replay once the manifest arrived).
        """
        body: dict[str, Any] = {"service": service}
        if manifest_uri:
            body["manifest_uri"] = manifest_uri
        if content_type:
            body["content_type"] = content_type
        if max_concurrency is not None:
            body["max_concurrency"] = max_concurrency
        if tolerated_failure_percent is not None:
            body["tolerated_failure_percent"] = tolerated_failure_percent
        if webhook_url:
            body["notification"] = {"webhook": {"url": webhook_url}}
        if metadata:
            body["metadata"] = metadata
        body.update(extra or {})
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return dict(self._request("POST", "/batches", body, headers))

    def upload_manifest(self, upload: dict[str, Any], data: bytes) -> None:
        """Send a batch's manifest (JSON Lines) through the ``upload`` form of :meth:`submit_batch`.

        Raises
        ------
        GatewayClientError
            S3 refused it (too large for the form, the form expired...).
        """
        fields = dict(upload.get("fields") or {})
        self.upload(upload, data, fields.get("Content-Type") or JSON_LINES)

    def batch(self, batch_id: str) -> dict[str, Any]:
        """``GET /batches/{id}``: the batch's status, counts, times and, once it has ended, ``result``.

        Raises
        ------
        GatewayClientError
            404 for an unknown batch (or another client's).
        """
        return dict(self._request("GET", f"/batches/{_segment(batch_id)}"))

    def cancel_batch(self, batch_id: str) -> dict[str, Any]:
        """``POST /batches/{id}/cancel``: the batch's document, ``CANCELLED``.

        Raises
        ------
        GatewayClientError
            409 when the batch had already ended; 404 when it is unknown.
        """
        return dict(self._request("POST", f"/batches/{_segment(batch_id)}/cancel"))

    def wait_batch(
        self,
        batch_id: str,
        *,
        timeout: float | None = None,
        interval: float = 1.0,
        max_interval: float = 2.0,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
        retries: int = 5,
    ) -> dict[str, Any]:
        """Poll ``GET /batches/{id}`` until the batch has finished (or ``timeout`` passes: the last document).

        Finished: as :func:`batch_finished` says, its result file written. A batch ``CANCELLED``
        or ``FAILED`` has that status at once, while its running items still end.

        The polls are ``interval`` apart, growing by half each time up to ``max_interval``;
        ``on_progress`` gets every document, the last one included. A batch can run for hours:
        up to ``retries`` polls in a row answered 429 or 5xx are waited out (the next poll is the
        retry); a gateway that cannot be reached at all ends the wait at once.

        Raises
        ------
        GatewayClientError
            The poll was refused (404...), or ``retries`` + 1 polls in a row failed.
        GatewayUnreachableError
            Nothing answered.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = interval
        failures = 0
        document = self.batch(batch_id)
        while not batch_finished(document) and (deadline is None or time.monotonic() < deadline):
            if on_progress and failures == 0:
                on_progress(document)
            left = pause if deadline is None else min(pause, deadline - time.monotonic())
            time.sleep(max(0.0, left))
            pause = min(pause * 1.5, max(max_interval, interval))
            try:
                document = self.batch(batch_id)
                failures = 0
            except GatewayUnreachableError:
                raise
            except GatewayClientError as error:
                failures += 1
                if not (error.status == 429 or error.status >= 500) or failures > retries:
                    raise
        if on_progress:
            on_progress(document)
        return document


def batch_finished(document: dict[str, Any]) -> bool:
    """Whether a ``GET /batches/{id}`` document is final: an ending status, and its result written.

    A ``FAILED`` or ``CANCELLED`` batch has its status first; ``finished_at`` (and ``result``)
    once the items still running have ended and the result file is written.
    """
    if document.get("status") not in BATCH_TERMINAL:
        return False
    return bool(document.get("finished_at") or document.get("result"))


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

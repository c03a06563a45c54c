"""The S3 presign guard: enforces what moto does not check on presigned requests.

For a browser-style POST upload: the policy's expiry, its SigV4 signature, ``content-length-range``
and every condition, and that every form field is covered by a condition. For presigned GET/PUT
URLs: their expiry. A refused request gets S3's XML error and never reaches moto.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

_IGNORED_FIELDS = {"policy", "x-amz-signature", "file", "signature", "awsaccesskeyid"}


def _s3_error(start_response: Callable[..., Any], status: str, code: str, message: str) -> list[bytes]:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message></Error>'
    ).encode()
    start_response(status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
    return [body]


def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = hmac.new(f"AWS4{secret}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


class PolicyViolationError(Exception):
    """The upload breaks its POST policy (the message says how)."""


def check_post_policy(
    fields: Mapping[str, str], file_size: int, bucket: str, secrets: Mapping[str, str], now: datetime
) -> None:
    """Check a presigned POST form against its policy. Raises PolicyViolationError."""
    lowered = {k.lower(): v for k, v in fields.items()}
    policy_b64 = lowered.get("policy")
    if not policy_b64:
        raise PolicyViolationError("Bucket POST must contain a field named 'policy'")
    credential = lowered.get("x-amz-credential", "")
    access_key, _, scope = credential.partition("/")
    date, region, service = [*scope.split("/"), "", "", ""][:3]
    secret = secrets.get(access_key)
    if secret is None:
        raise PolicyViolationError("The AWS Access Key Id you provided does not exist in our records.")
    expected = hmac.new(_signing_key(secret, date, region, service), policy_b64.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, lowered.get("x-amz-signature", "")):
        raise PolicyViolationError("The request signature we calculated does not match the signature you provided.")
    policy = json.loads(base64.b64decode(policy_b64))
    expiration = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    if now > expiration:
        raise PolicyViolationError("Invalid according to Policy: Policy expired.")
    covered = {"bucket"}
    values = {**lowered, "bucket": bucket}
    for condition in policy.get("conditions", []):
        if isinstance(condition, dict):
            ((name, expected_value),) = condition.items()
            name = name.lower()
            covered.add(name)
            if values.get(name) != expected_value:
                raise PolicyViolationError(
                    f'Invalid according to Policy: Policy Condition failed: ["eq", "${name}", "{expected_value}"]'
                )
            continue
        operator = str(condition[0]).lower()
        if operator == "content-length-range":
            low, high = int(condition[1]), int(condition[2])
            if not low <= file_size <= high:
                code = "EntityTooLarge" if file_size > high else "EntityTooSmall"
                raise PolicyViolationError(
                    f"{code}: Your proposed upload size {file_size} is outside the allowed range {low}-{high}"
                )
            continue
        name = str(condition[1]).lstrip("$").lower()
        covered.add(name)
        actual = values.get(name, "")
        if operator == "eq" and actual != condition[2]:
            raise PolicyViolationError(
                f'Invalid according to Policy: Policy Condition failed: ["eq", "${name}", "{condition[2]}"]'
            )
        if operator == "starts-with" and not actual.startswith(str(condition[2])):
            raise PolicyViolationError(
                f'Invalid according to Policy: Policy Condition failed: ["starts-with", "${name}", "{condition[2]}"]'
            )
    for name in lowered:
        if name in _IGNORED_FIELDS or name.startswith("x-ignore-") or name in covered:
            continue
        raise PolicyViolationError(f"Invalid according to Policy: Extra input fields: {name}")


class PresignGuardMiddleware:
    """WSGI middleware in front of moto's S3 (path-style URLs on the local endpoint)."""

    def __init__(
        self,
        app: Any,
        secrets: Mapping[str, str],
        bucket_names: Callable[[], set[str]],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.app = app
        self.secrets = secrets
        self.bucket_names = bucket_names
        self.clock = clock

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        parts = [part for part in path.split("/") if part]
        method = environ.get("REQUEST_METHOD", "")
        if parts and parts[0] in self.bucket_names():
            content_type = environ.get("CONTENT_TYPE", "")
            if method == "POST" and len(parts) == 1 and content_type.startswith("multipart/form-data"):
                return self._guard_post(parts[0], environ, start_response)
            query = parse_qs(environ.get("QUERY_STRING", ""))
            if "X-Amz-Expires" in query and "X-Amz-Date" in query:
                signed_at = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
                if self.clock() > signed_at + timedelta(seconds=int(query["X-Amz-Expires"][0])):
                    return _s3_error(start_response, "403 Forbidden", "AccessDenied", "Request has expired")
        return self.app(environ, start_response)

    def _guard_post(self, bucket: str, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        from werkzeug.formparser import parse_form_data

        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        probe = dict(environ)
        probe["wsgi.input"] = io.BytesIO(body)
        _, form, files = parse_form_data(probe)
        upload = files.get("file")
        size = len(upload.read()) if upload is not None else 0
        try:
            if upload is None:
                raise PolicyViolationError("POST requires exactly one file upload per request.")
            check_post_policy(dict(form.items()), size, bucket, self.secrets, self.clock())
        except PolicyViolationError as violation:
            text = str(violation)
            code = text.split(":", 1)[0] if text.startswith("Entity") else "AccessDenied"
            status = "400 Bad Request" if code.startswith("Entity") else "403 Forbidden"
            return _s3_error(start_response, status, code, text)
        environ["wsgi.input"] = io.BytesIO(body)
        return self.app(environ, start_response)

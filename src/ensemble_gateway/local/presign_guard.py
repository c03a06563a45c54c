"""The S3 presign guard: refuses, in front of moto, what S3 refuses and moto lets through.

moto stores and serves whatever reaches it unless the request carries an ``Authorization`` header
it could check, so without this guard anyone could read another client's output by editing a
presigned URL, or write a prediction's input with a bare form. For the stack's buckets, every
request that is not signed with an ``Authorization`` header (the gateway's own boto3 clients sign
that way and pass untouched) is checked as S3 checks it:

* a presigned URL (query-string SigV4, any method): its parameters, credential scope, access key,
  that every ``x-amz-*`` header it sends is signed, its signature (recomputed with botocore's own
  signer over the method, path, query, signed headers and ``UNSIGNED-PAYLOAD``) and its lifetime;
* a browser POST upload (``multipart/form-data`` on the bucket itself): its policy's signature,
  expiration and every condition, and that every field is covered by a condition. moto then gets
  the form rebuilt from the checked fields, so it stores exactly what was checked;
* anything else (no credentials at all) is anonymous: the buckets block public access.

A refused request gets S3's status and XML error and never reaches moto. Requests to other
buckets and services, and CORS preflights (never signed, by design), pass untouched.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import io
import json
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from secrets import token_hex
from typing import Any
from urllib.parse import quote, unquote
from xml.sax.saxutils import escape

ALGORITHM = "AWS4-HMAC-SHA256"
# SigV4's limit: the signing key of a credential scope is valid for seven days.
MAX_EXPIRES = 604800
# S3 accepts a presigned request dated this far ahead of its clock (SigV4's allowed skew).
CLOCK_SKEW = timedelta(minutes=15)
# S3's limit on the form fields that precede the file of a POST upload.
MAX_POST_PRE_DATA = 20 * 1024

_V4_QUERY = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Signature",
    "X-Amz-Date",
    "X-Amz-SignedHeaders",
    "X-Amz-Expires",
)
_V2_QUERY = ("AWSAccessKeyId", "Signature")
_V4_FORM = ("x-amz-signature", "x-amz-algorithm", "x-amz-credential", "x-amz-date")
_V2_FORM = ("signature", "awsaccesskeyid")
# Form fields a POST policy need not name (S3's SigV4 rule; x-ignore-* are exempt too).
_EXEMPT_FIELDS = {"policy", "x-amz-signature", "file"}
# x-amz-* headers S3 accepts unsigned on a presigned request.
_UNSIGNED_AMZ_HEADERS = {"x-amz-content-sha256"}
_STATUS = {
    400: "400 Bad Request",
    403: "403 Forbidden",
    411: "411 Length Required",
    412: "412 Precondition Failed",
}
_UNSUPPORTED_MECHANISM = "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256."
_ORDER_HINT = "If it is specified, please check the order of the fields."
_NOT_MULTIPART = "The body of your POST request is not well-formed multipart/form-data."


class S3RequestError(Exception):
    """A request S3 refuses, with the status, error code, message and extra elements S3 answers.

    Parameters
    ----------
    status
        The HTTP status, e.g. 403.
    code
        S3's error code, e.g. ``SignatureDoesNotMatch``.
    message
        S3's message.
    details
        Further elements of S3's ``<Error>`` document, e.g. ``HeadersNotSigned``.
    """

    def __init__(self, status: int, code: str, message: str, details: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = dict(details or {})


class PolicyViolationError(S3RequestError):
    """A browser POST upload that S3 refuses: its form or file breaks its POST policy or lacks it."""


def _access_denied(message: str = "Access Denied", **details: str) -> S3RequestError:
    return S3RequestError(403, "AccessDenied", message, details)


def _query_parameters_error(message: str, **details: str) -> S3RequestError:
    return S3RequestError(400, "AuthorizationQueryParametersError", message, details)


def _error_document(error: S3RequestError, request_id: str) -> bytes:
    elements = {"Code": error.code, "Message": error.message, **error.details, "RequestId": request_id}
    inner = "".join(f"<{name}>{escape(str(value))}</{name}>" for name, value in elements.items())
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<Error>{inner}</Error>'.encode()


def _respond(start_response: Callable[..., Any], error: S3RequestError, method: str) -> list[bytes]:
    request_id = token_hex(8).upper()
    # S3 answers a HEAD with the status alone: a HEAD response has no body to carry the document.
    body = b"" if method == "HEAD" else _error_document(error, request_id)
    start_response(
        _STATUS.get(error.status, f"{error.status} Error"),
        [
            ("Content-Type", "application/xml"),
            ("Content-Length", str(len(body))),
            ("x-amz-request-id", request_id),
        ],
    )
    return [body]


def _bytes_hex(text: str) -> str:
    """S3's ``StringToSignBytes`` / ``CanonicalRequestBytes``: the UTF-8 bytes as spaced hex pairs."""
    return " ".join(f"{byte:02x}" for byte in text.encode())


def _credential_scope(credential: str, region: str | None) -> tuple[str, str, str, str]:
    """(access key, date, region, service) of an ``X-Amz-Credential``, checked as S3 checks it."""
    parts = credential.split("/")
    if len(parts) != 5 or not all(parts):
        raise _query_parameters_error(
            "Error parsing the X-Amz-Credential parameter; the Credential is mal-formed; "
            'expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".'
        )
    access_key, date, scope_region, service, terminal = parts
    if region is not None and scope_region != region:
        raise _query_parameters_error(
            f"Error parsing the X-Amz-Credential parameter; the region '{scope_region}' is wrong; expecting '{region}'",
            Region=region,
        )
    if service != "s3":
        raise _query_parameters_error(
            f'Error parsing the X-Amz-Credential parameter; incorrect service "{service}". '
            'This endpoint belongs to "s3".'
        )
    if terminal != "aws4_request":
        raise _query_parameters_error(
            f'Error parsing the X-Amz-Credential parameter; incorrect terminal "{terminal}". '
            'This endpoint uses "aws4_request".'
        )
    return access_key, date, scope_region, service


def _secret_of(access_key: str, secrets_by_key: Mapping[str, str]) -> str:
    secret = secrets_by_key.get(access_key)
    if secret is None:
        raise S3RequestError(
            403,
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
            {"AWSAccessKeyId": access_key},
        )
    return secret


def _signature_mismatch(access_key: str, provided: str, string_to_sign: str, canonical: str | None) -> S3RequestError:
    details = {
        "AWSAccessKeyId": access_key,
        "StringToSign": string_to_sign,
        "SignatureProvided": provided,
        "StringToSignBytes": _bytes_hex(string_to_sign),
    }
    if canonical is not None:
        details.update(CanonicalRequest=canonical, CanonicalRequestBytes=_bytes_hex(canonical))
    return S3RequestError(
        403,
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.",
        details,
    )


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# -- browser POST uploads -------------------------------------------------------------------------


def _post_signature(secret: str, access_key: str, date: str, region: str, service: str, policy: str) -> str:
    """The SigV4 signature of a POST policy, computed by botocore's signer (the one that presigns it)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    signer = SigV4Auth(Credentials(access_key, secret), service, region)
    request = AWSRequest()
    # The signing key derives from the credential scope's date; the time of day is not used.
    request.context["timestamp"] = f"{date}T000000Z"
    return str(signer.signature(policy, request))


def _as_policy_violation(error: S3RequestError) -> PolicyViolationError:
    return PolicyViolationError(error.status, error.code, error.message, error.details)


def _invalid_policy(detail: str) -> PolicyViolationError:
    return PolicyViolationError(400, "InvalidPolicyDocument", f"Invalid Policy: {detail}")


def _parse_policy(policy_b64: str) -> tuple[datetime, list[Any]]:
    try:
        policy = json.loads(base64.b64decode(policy_b64, validate=True))
    except (binascii.Error, ValueError) as error:
        raise _invalid_policy("Invalid JSON.") from error
    if not isinstance(policy, dict):
        raise _invalid_policy("Invalid JSON.")
    expiration = policy.get("expiration")
    if expiration is None:
        raise _invalid_policy("Policy missing expiration.")
    try:
        expires_at = datetime.fromisoformat(str(expiration).replace("Z", "+00:00"))
    except ValueError as error:
        raise _invalid_policy(f"Invalid 'expiration' value: '{expiration}'") from error
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    conditions = policy.get("conditions")
    if not isinstance(conditions, list):
        raise _invalid_policy("Policy missing conditions.")
    return expires_at, conditions


def _condition_failed(operator: str, name: str, value: Any) -> PolicyViolationError:
    rendered = json.dumps([operator, f"${name}", value])
    return PolicyViolationError(
        403, "AccessDenied", f"Invalid according to Policy: Policy Condition failed: {rendered}"
    )


def _check_condition(condition: Any, values: Mapping[str, str], file_size: int) -> str | None:
    """Check one policy condition; the form field it covers (None for content-length-range)."""
    if isinstance(condition, dict):
        if len(condition) != 1:
            raise _invalid_policy(
                "Invalid Simple-Condition: Simple-Conditions must have exactly one property specified."
            )
        ((raw_name, expected),) = condition.items()
        name = str(raw_name).lower()
        if values.get(name) != expected:
            raise _condition_failed("eq", name, expected)
        return name
    if not isinstance(condition, list) or not condition:
        raise _invalid_policy(f"Invalid Condition: {json.dumps(condition)}")
    operator = str(condition[0]).lower()
    if operator == "content-length-range":
        try:
            low, high = int(condition[1]), int(condition[2])
        except (IndexError, TypeError, ValueError) as error:
            raise _invalid_policy(f"Invalid content-length-range condition: {json.dumps(condition)}") from error
        if file_size > high:
            raise PolicyViolationError(
                400,
                "EntityTooLarge",
                "Your proposed upload exceeds the maximum allowed size",
                {"ProposedSize": str(file_size), "MaxSizeAllowed": str(high)},
            )
        if file_size < low:
            raise PolicyViolationError(
                400,
                "EntityTooSmall",
                "Your proposed upload is smaller than the minimum allowed size",
                {"ProposedSize": str(file_size), "MinSizeAllowed": str(low)},
            )
        return None
    if operator not in ("eq", "starts-with") or len(condition) != 3 or not str(condition[1]).startswith("$"):
        raise _invalid_policy(f"Invalid Condition: {json.dumps(condition)}")
    name, expected = str(condition[1])[1:].lower(), condition[2]
    actual = values.get(name)
    if operator == "eq" and actual != expected:
        raise _condition_failed("eq", name, expected)
    # An empty prefix matches any value, as S3 documents.
    if operator == "starts-with" and expected != "" and not (actual or "").startswith(str(expected)):
        raise _condition_failed("starts-with", name, expected)
    return name


def check_post_policy(
    fields: Mapping[str, str],
    file_size: int,
    bucket: str,
    secrets: Mapping[str, str],
    now: datetime,
    region: str | None = None,
) -> None:
    """Check a browser POST upload's form as S3 does before it stores the file.

    Parameters
    ----------
    fields
        The form fields that precede the file, by name (names are case-insensitive, as in S3).
    file_size
        Size of the file in bytes.
    bucket
        The bucket the form is posted to (the policy's ``bucket`` condition is checked against it).
    secrets
        Secret access key by access key ID: the credentials the endpoint knows.
    now
        The current time (timezone-aware).
    region
        The bucket's region; None accepts any region in the credential scope.

    Raises
    ------
    PolicyViolationError
        With S3's status, code and message: a missing ``key``, no policy (anonymous), missing or
        SigV2 signature fields, an unknown access key, a wrong signature, an invalid or expired
        policy, a failed condition, a file outside ``content-length-range``, or a field that no
        condition covers.
    """
    lowered = {name.lower(): value for name, value in fields.items()}
    if not lowered.get("key"):
        raise PolicyViolationError(
            400,
            "InvalidArgument",
            f"Bucket POST must contain a field named 'key'.  {_ORDER_HINT}",
            {"ArgumentName": "key", "ArgumentValue": ""},
        )
    policy_b64 = lowered.get("policy")
    if not policy_b64:
        # S3 treats a form without a policy as anonymous; the stack's buckets block public writes.
        raise PolicyViolationError(403, "AccessDenied", "Access Denied")
    if any(name in lowered for name in _V4_FORM):
        for name in _V4_FORM:
            if name not in lowered:
                label = "-".join(part.capitalize() for part in name.split("-"))
                raise PolicyViolationError(
                    400,
                    "InvalidArgument",
                    f"Bucket POST must contain a field named '{label}'.  {_ORDER_HINT}",
                    {"ArgumentName": label, "ArgumentValue": ""},
                )
    elif any(name in lowered for name in _V2_FORM):
        # Buckets created since June 2020 accept SigV4 only.
        raise PolicyViolationError(400, "InvalidRequest", _UNSUPPORTED_MECHANISM)
    else:
        raise PolicyViolationError(403, "AccessDenied", "Access Denied")
    if lowered["x-amz-algorithm"] != ALGORITHM:
        raise PolicyViolationError(
            400,
            "InvalidArgument",
            f'X-Amz-Algorithm only supports "{ALGORITHM}"',
            {"ArgumentName": "X-Amz-Algorithm", "ArgumentValue": lowered["x-amz-algorithm"]},
        )
    try:
        access_key, date, scope_region, service = _credential_scope(lowered["x-amz-credential"], region)
        secret = _secret_of(access_key, secrets)
    except S3RequestError as error:
        raise _as_policy_violation(error) from None
    provided = lowered["x-amz-signature"]
    expected = _post_signature(secret, access_key, date, scope_region, service, policy_b64)
    if not hmac.compare_digest(expected.encode(), provided.encode()):
        raise _as_policy_violation(_signature_mismatch(access_key, provided, policy_b64, None))
    expires_at, conditions = _parse_policy(policy_b64)
    if now > expires_at:
        raise PolicyViolationError(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
    values = {**lowered, "bucket": bucket}
    covered = {_check_condition(condition, values, file_size) for condition in conditions}
    for name in lowered:
        if name in _EXEMPT_FIELDS or name.startswith("x-ignore-") or name in covered:
            continue
        raise PolicyViolationError(403, "AccessDenied", f"Invalid according to Policy: Extra input fields: {name}")


class _Upload:
    """A parsed browser POST: the fields before the file (lower-cased names), and the file."""

    def __init__(self, fields: dict[str, str], content: bytes, filename: str) -> None:
        self.fields = fields
        self.content = content
        self.filename = filename


def _parse_upload(body: bytes, boundary: str) -> _Upload:
    """Parse a multipart/form-data body as S3 does: the fields up to ``file``; later ones are ignored."""
    from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder

    decoder = MultipartDecoder(boundary.encode("latin-1"))
    decoder.receive_data(body)
    decoder.receive_data(None)
    fields: dict[str, str] = {}
    pre_data = 0
    name: str | None = None
    filename = ""
    chunks: list[bytes] = []
    try:
        while True:
            event = decoder.next_event()
            if isinstance(event, Epilogue):
                break
            if isinstance(event, Field | File):
                name = (event.name or "").lower()
                filename = event.filename if isinstance(event, File) else ""
                chunks = []
            elif isinstance(event, Data) and name is not None:
                chunks.append(event.data)
                if name != "file":
                    pre_data += len(event.data)
                    if pre_data > MAX_POST_PRE_DATA:
                        raise PolicyViolationError(
                            400,
                            "MaxPostPreDataLengthExceededError",
                            "Your POST request fields preceding the upload file were too large.",
                        )
                if event.more_data:
                    continue
                if name == "file":
                    return _Upload(fields, b"".join(chunks), filename)
                if name in fields:
                    # Which value S3 would keep is not documented: refuse rather than guess.
                    raise PolicyViolationError(
                        400,
                        "InvalidArgument",
                        f"POST form field '{name}' is given more than once.",
                        {"ArgumentName": name, "ArgumentValue": ""},
                    )
                fields[name] = b"".join(chunks).decode("utf-8", errors="replace")
                name = None
    except ValueError as error:
        raise PolicyViolationError(400, "MalformedPOSTRequest", _NOT_MULTIPART) from error
    raise PolicyViolationError(
        400,
        "InvalidArgument",
        "POST requires exactly one file upload per request.",
        {"ArgumentName": "file", "ArgumentValue": "0"},
    )


def _encode_upload(fields: Mapping[str, str], content: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body of exactly the checked fields and the file, and its content type."""
    boundary = f"presign-guard-{token_hex(16)}"
    parts: list[bytes] = []
    for name, value in fields.items():
        if any(char in name for char in '"\r\n'):
            raise PolicyViolationError(400, "MalformedPOSTRequest", _NOT_MULTIPART)
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value.encode() + b"\r\n"
        )
    # moto reads the object's body from the request's files, so the file goes as a file part.
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="upload"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


# -- the middleware -------------------------------------------------------------------------------


def _query_pairs(query: str) -> list[tuple[str, str]]:
    """The decoded (name, value) pairs of a raw query string; ``+`` stays literal, as in SigV4."""
    pairs = []
    for item in query.split("&"):
        if item:
            name, _, value = item.partition("=")
            pairs.append((unquote(name), unquote(value)))
    return pairs


def _request_headers(environ: Mapping[str, Any]) -> dict[str, str]:
    headers = {
        key[5:].replace("_", "-").lower(): str(value) for key, value in environ.items() if key.startswith("HTTP_")
    }
    for key, name in (("CONTENT_TYPE", "content-type"), ("CONTENT_LENGTH", "content-length")):
        if environ.get(key):
            headers[name] = str(environ[key])
    return headers


def _canonical_path(environ: Mapping[str, Any]) -> str:
    # PATH_INFO is the decoded path as latin-1 text (PEP 3333): re-encode it the way SigV4 (and
    # botocore when it presigns an S3 key) does, keeping "/" and "~".
    return quote(str(environ.get("PATH_INFO", "")).encode("latin-1"), safe="/~")


class PresignGuardMiddleware:
    """WSGI middleware in front of moto: requests to the stack's buckets are checked as S3 checks them.

    Parameters
    ----------
    app
        The WSGI application behind (moto and the other middlewares).
    secrets
        Secret access key by access key ID: the credentials the local endpoint knows.
    bucket_names
        The stack's buckets, called on every request (it must be cheap).
    clock
        The current time (timezone-aware); injectable for tests.
    region
        The buckets' region, checked in credential scopes; None accepts any region.
    """

    def __init__(
        self,
        app: Any,
        secrets: Mapping[str, str],
        bucket_names: Callable[[], set[str]],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        region: str | None = None,
    ) -> None:
        self.app = app
        self.secrets = secrets
        self.bucket_names = bucket_names
        self.clock = clock
        self.region = region

    def _target(self, environ: Mapping[str, Any]) -> tuple[str, str] | None:
        """(bucket, key) of a request to one of the stack's buckets, path- or virtual-host style."""
        buckets = self.bucket_names()
        if not buckets:
            return None
        path = str(environ.get("PATH_INFO", ""))
        first, _, rest = path.lstrip("/").partition("/")
        if first in buckets:
            return first, rest
        hostname = str(environ.get("HTTP_HOST", "")).rsplit(":", 1)[0].lower()
        for bucket in buckets:
            if hostname.startswith(f"{bucket}."):
                return bucket, path.lstrip("/")
        return None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        target = self._target(environ)
        method = str(environ.get("REQUEST_METHOD", "")).upper()
        # CORS preflights are never signed: S3 answers them from the bucket's CORS rules.
        if target is None or method == "OPTIONS":
            return self.app(environ, start_response)
        bucket, key = target
        query = str(environ.get("QUERY_STRING", ""))
        authorized = bool(environ.get("HTTP_AUTHORIZATION"))
        # The gateway's own clients: header-signed, no auth parameters in the query. Fast path.
        if authorized and "X-Amz-" not in query and "Signature" not in query and "AWSAccessKeyId" not in query:
            return self.app(environ, start_response)
        try:
            names = {name for name, _ in _query_pairs(query)}
            if any(name in names for name in _V4_QUERY) or any(name in names for name in _V2_QUERY):
                if authorized:
                    raise S3RequestError(
                        400,
                        "InvalidArgument",
                        "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
                        "Signature query string parameter or the Authorization header should be specified",
                        {"ArgumentName": "Authorization", "ArgumentValue": str(environ["HTTP_AUTHORIZATION"])},
                    )
                if not any(name in names for name in _V4_QUERY):
                    # Buckets created since June 2020 accept SigV4 only.
                    raise S3RequestError(400, "InvalidRequest", _UNSUPPORTED_MECHANISM)
                self._check_presigned(environ, method, query)
            elif authorized:
                return self.app(environ, start_response)
            elif method == "POST" and not key and not query:
                return self._guard_post(bucket, environ, start_response)
            else:
                raise _access_denied()
        except S3RequestError as error:
            return _respond(start_response, error, method)
        return self.app(environ, start_response)

    def _check_presigned(self, environ: Mapping[str, Any], method: str, query: str) -> None:
        """Check a query-string SigV4 request as S3 does. Raises S3RequestError."""
        pairs = _query_pairs(query)
        params = dict(reversed(pairs))  # the first value of each name
        if not all(params.get(name) for name in _V4_QUERY):
            raise _query_parameters_error(
                "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
                "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters."
            )
        if params["X-Amz-Algorithm"] != ALGORITHM:
            raise _query_parameters_error(f'X-Amz-Algorithm only supports "{ALGORITHM}"')
        amz_date = params["X-Amz-Date"]
        try:
            signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            raise _query_parameters_error(
                "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\""
            ) from None
        raw_expires = params["X-Amz-Expires"]
        if not raw_expires.lstrip("-").isdigit():
            raise _query_parameters_error("X-Amz-Expires should be a number")
        expires = int(raw_expires)
        if expires < 0:
            raise _query_parameters_error("X-Amz-Expires must be non-negative")
        if expires > MAX_EXPIRES:
            raise _query_parameters_error(
                "X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires "
                f"must be less than {MAX_EXPIRES} seconds"
            )
        access_key, date, region, service = _credential_scope(params["X-Amz-Credential"], self.region)
        if date != amz_date[:8]:
            raise _query_parameters_error(
                f"Error parsing the X-Amz-Credential parameter; the date '{date}' does not match "
                f"the X-Amz-Date '{amz_date}'"
            )
        secret = _secret_of(access_key, self.secrets)
        signed = [name.strip().lower() for name in params["X-Amz-SignedHeaders"].split(";") if name.strip()]
        headers = _request_headers(environ)
        unsigned = sorted(
            name
            for name in headers
            if name.startswith("x-amz-") and name not in signed and name not in _UNSIGNED_AMZ_HEADERS
        )
        if "host" not in signed:
            unsigned.insert(0, "host")
        if unsigned:
            raise _access_denied(
                "There were headers present in the request which were not signed", HeadersNotSigned=", ".join(unsigned)
            )
        canonical, string_to_sign, signature = self._sign(
            method,
            headers.get("host", ""),
            _canonical_path(environ),
            (pair for pair in pairs if pair[0] != "X-Amz-Signature"),
            {name: headers.get(name, "") for name in signed},
            (access_key, secret, date, region, service),
            amz_date,
            expires,
        )
        provided = params["X-Amz-Signature"]
        if not hmac.compare_digest(signature.encode(), provided.encode()):
            raise _signature_mismatch(access_key, provided, string_to_sign, canonical)
        now = self.clock()
        expires_at = signed_at + timedelta(seconds=expires)
        if signed_at > now + CLOCK_SKEW:
            raise _access_denied(
                "Request is not yet valid",
                **{"X-Amz-Date": amz_date, "Expires": _iso(expires_at), "ServerTime": _iso(now)},
            )
        if now >= expires_at:
            raise _access_denied(
                "Request has expired",
                **{"X-Amz-Expires": str(expires), "Expires": _iso(expires_at), "ServerTime": _iso(now)},
            )

    @staticmethod
    def _sign(
        method: str,
        host: str,
        path: str,
        pairs: Iterable[tuple[str, str]],
        headers: Mapping[str, str],
        scope: tuple[str, str, str, str, str],
        amz_date: str,
        expires: int,
    ) -> tuple[str, str, str]:
        """(canonical request, string to sign, signature) by botocore's presigner, for the request as received."""
        from botocore.auth import S3SigV4QueryAuth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        access_key, secret, _, region, service = scope
        # botocore sorts the query's pairs as sent; encoding them here as SigV4 does makes the
        # check independent of how the client escaped them, as S3's is.
        encoded = "&".join(f"{quote(name, safe='-_.~')}={quote(value, safe='-_.~')}" for name, value in pairs)
        request = AWSRequest(method=method, url=f"http://{host}{path}?{encoded}", headers=dict(headers))
        request.context["timestamp"] = amz_date
        signer = S3SigV4QueryAuth(Credentials(access_key, secret), service, region, expires=expires)
        canonical = str(signer.canonical_request(request))
        string_to_sign = str(signer.string_to_sign(request, canonical))
        return canonical, string_to_sign, str(signer.signature(string_to_sign, request))

    def _guard_post(self, bucket: str, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """A browser POST upload: checked against its policy, then handed to moto rebuilt from what was checked."""
        from werkzeug.http import parse_options_header

        try:
            mimetype, options = parse_options_header(str(environ.get("CONTENT_TYPE", "")))
            if mimetype.lower() != "multipart/form-data":
                raise S3RequestError(
                    412,
                    "PreconditionFailed",
                    "At least one of the pre-conditions you specified did not hold",
                    {"Condition": "Bucket POST must be of the enclosure-type multipart/form-data"},
                )
            raw_length = str(environ.get("CONTENT_LENGTH") or "")
            if not raw_length.isdigit():
                raise S3RequestError(411, "MissingContentLength", "You must provide the Content-Length HTTP header.")
            body = environ["wsgi.input"].read(int(raw_length))
            boundary = options.get("boundary")
            if not boundary:
                raise PolicyViolationError(400, "MalformedPOSTRequest", _NOT_MULTIPART)
            upload = _parse_upload(body, boundary)
            fields = dict(upload.fields)
            if "key" in fields:
                # S3 names the object after the chosen file when the key asks for it; the policy
                # is checked against the key that will be written.
                fields["key"] = fields["key"].replace("${filename}", upload.filename.rsplit("/", 1)[-1])
            check_post_policy(fields, len(upload.content), bucket, self.secrets, self.clock(), self.region)
            forwarded = {name: value for name, value in fields.items() if not name.startswith("x-ignore-")}
            rebuilt, content_type = _encode_upload(forwarded, upload.content)
        except S3RequestError as error:
            return _respond(start_response, error, "POST")
        environ["wsgi.input"] = io.BytesIO(rebuilt)
        environ["CONTENT_LENGTH"] = str(len(rebuilt))
        environ["CONTENT_TYPE"] = content_type
        return self.app(environ, start_response)

"""The presign guard as a WSGI middleware: what reaches moto is what S3 would have accepted.

Requests are presigned by botocore (the gateway's own presigner, ``S3ObjectStore``) with dummy
credentials and sent to the guard through werkzeug's test client; behind the guard a fake S3
records what reached it. Nothing touches the network.
"""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from werkzeug.test import Client, EnvironBuilder, TestResponse
from werkzeug.wrappers import Request, Response

from ensemble_gateway.adapters.s3 import S3ObjectStore
from ensemble_gateway.local.presign_guard import MAX_EXPIRES, PresignGuardMiddleware

ENDPOINT = "http://127.0.0.1:4566"
BUCKET = "gw-data-123456789012-us-east-1"
OTHER_BUCKET = "someone-elses-bucket"
SECRETS = {"testing": "testing-secret"}
KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"


class FakeS3:
    """Stands for moto behind the guard: records every request that reaches it and answers 200."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        self.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "query": request.query_string.decode(),
                "form": list(request.form.items(multi=True)),
                "files": {name: stored.read() for name, stored in request.files.items()},
            }
        )
        return Response(b"object bytes from moto")(environ, start_response)


@functools.cache
def signing_client(
    secret: str = "testing-secret",
    signature_version: str = "s3v4",
    addressing_style: str = "path",
    endpoint: str = ENDPOINT,
    region: str = "us-east-1",
) -> Any:
    """A boto3 S3 client with dummy credentials: presigning is local computation, no request is sent."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key=secret,
        config=Config(signature_version=signature_version, s3={"addressing_style": addressing_style}),
    )


def presigned(method: str = "get_object", key: str = "outputs/p-a", expires: int = 900, **options: Any) -> str:
    params = {"Bucket": options.pop("bucket", BUCKET), "Key": key, **options.pop("params", {})}
    return str(signing_client(**options).generate_presigned_url(method, Params=params, ExpiresIn=expires))


def signed_at(url: str) -> datetime:
    date = dict(parse_qsl(urlsplit(url).query))["X-Amz-Date"]
    return datetime.strptime(date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def error_of(response: TestResponse) -> dict[str, str]:
    root = ET.fromstring(response.get_data())
    return {child.tag: child.text or "" for child in root}


class Guarded:
    """The guard with a fake S3 behind it, and a clock the test sets."""

    def __init__(self, buckets: frozenset[str] = frozenset({BUCKET}), region: str | None = None) -> None:
        self.s3 = FakeS3()
        self.now = datetime.now(UTC)
        self.guard = PresignGuardMiddleware(
            self.s3, SECRETS, lambda: set(buckets), clock=lambda: self.now, region=region
        )
        self.client = Client(self.guard)

    def send(self, method: str, url: str, **kwargs: Any) -> TestResponse:
        # The host of the URL is the Host header, as an HTTP client sends it (a signed header).
        parts = urlsplit(url)
        return self.client.open(
            parts.path,
            base_url=f"{parts.scheme}://{parts.netloc}",
            query_string=parts.query,
            method=method,
            **kwargs,
        )

    def reached(self) -> list[dict[str, Any]]:
        return self.s3.requests


@pytest.fixture
def guarded() -> Guarded:
    return Guarded()


def assert_refused(response: TestResponse, guarded: Guarded, status: int, code: str) -> dict[str, str]:
    assert response.status_code == status, response.get_data(as_text=True)
    error = error_of(response)
    assert error["Code"] == code, error
    assert guarded.reached() == []
    return error


# -- presigned URLs -------------------------------------------------------------------------------


@pytest.mark.parametrize("addressing_style", ["path", "virtual"])
def test_a_presigned_get_used_as_issued_reaches_s3(guarded: Guarded, addressing_style: str) -> None:
    # GIVEN a presigned GET, path-style (the local runtime's) or virtual-host style
    endpoint = ENDPOINT if addressing_style == "path" else "http://localhost:4566"
    url = presigned(addressing_style=addressing_style, endpoint=endpoint)
    # WHEN it is used as issued, within its lifetime
    response = guarded.send("GET", url)
    # THEN S3 (moto) serves it
    assert response.status_code == 200
    assert [r["method"] for r in guarded.reached()] == ["GET"]


def test_the_gateways_own_download_url_passes() -> None:
    # GIVEN the URL the gateway hands out for a result (S3ObjectStore.presign_download)
    guarded = Guarded()
    store = S3ObjectStore(BUCKET, client=signing_client())
    url = store.presign_download(f"s3://{BUCKET}/outputs/p-a", expires_in=900)
    # WHEN / THEN it downloads
    assert guarded.send("GET", url).status_code == 200


def test_a_key_with_spaces_plus_and_unicode_is_checked_over_its_encoded_path(guarded: Guarded) -> None:
    # GIVEN a presigned GET of a key that needs escaping
    url = presigned(key="outputs/a b+c/é~.json")
    # WHEN / THEN it passes, and the same URL for another key does not
    assert guarded.send("GET", url).status_code == 200
    other = url.replace("a%20b%2Bc", "a%20b%2Bd")
    assert guarded.send("GET", other).status_code == 403


def test_a_presigned_get_with_its_key_swapped_is_refused(guarded: Guarded) -> None:
    # GIVEN client A's result URL, edited to point at client B's output
    url = presigned(key="outputs/p-a")
    swapped = url.replace("/outputs/p-a?", "/outputs/p-b?")
    assert swapped != url
    # WHEN it is used
    response = guarded.send("GET", swapped)
    # THEN S3 refuses it with SignatureDoesNotMatch, showing the canonical request it computed
    error = assert_refused(response, guarded, 403, "SignatureDoesNotMatch")
    assert "/outputs/p-b" in error["CanonicalRequest"]
    assert error["AWSAccessKeyId"] == "testing"
    assert b"object bytes" not in response.get_data()


def test_a_presigned_get_moved_to_another_bucket_is_refused() -> None:
    # GIVEN two stack buckets, and a URL presigned for the first one
    guarded = Guarded(buckets=frozenset({BUCKET, "gw-other"}))
    url = presigned()
    assert guarded.send("GET", url).status_code == 200
    guarded.s3.requests.clear()
    # WHEN it is moved to the second bucket
    moved = url.replace(f"/{BUCKET}/", "/gw-other/")
    # THEN it is refused
    assert_refused(guarded.send("GET", moved), guarded, 403, "SignatureDoesNotMatch")


@pytest.mark.parametrize("method", ["PUT", "DELETE", "HEAD", "POST"])
def test_a_presigned_get_used_with_another_method_is_refused(guarded: Guarded, method: str) -> None:
    # GIVEN a presigned GET
    url = presigned()
    # WHEN it is sent with another method
    response = guarded.send(method, url, data=b"overwrite" if method in ("PUT", "POST") else None)
    # THEN it is refused (a HEAD with the status alone, as S3 answers a HEAD)
    assert response.status_code == 403
    assert guarded.reached() == []
    if method == "HEAD":
        assert response.get_data() == b""
    else:
        assert error_of(response)["Code"] == "SignatureDoesNotMatch"


@pytest.mark.parametrize(
    "change",
    [
        {"X-Amz-Expires": "604800"},
        {"X-Amz-Date": "20200101T000000Z"},
        {"response-content-type": "text/html"},
        {"X-Amz-SignedHeaders": "host;x-amz-date"},
        {"X-Amz-Signature": "0" * 64},
    ],
    ids=["lifetime extended", "date moved", "parameter added", "signed headers changed", "signature replaced"],
)
def test_a_tampered_query_is_refused(guarded: Guarded, change: dict[str, str]) -> None:
    # GIVEN a presigned GET whose query was edited after signing
    url = with_query(presigned(), **change)
    if "X-Amz-Date" in change:
        # the credential scope must name the same day, or S3 refuses it as malformed first
        scope = f"testing/{change['X-Amz-Date'][:8]}/us-east-1/s3/aws4_request"
        url = with_query(url, **{"X-Amz-Credential": scope})
        guarded.now = datetime(2020, 1, 1, 0, 5, tzinfo=UTC)
    # WHEN / THEN it is refused with SignatureDoesNotMatch
    assert_refused(guarded.send("GET", url), guarded, 403, "SignatureDoesNotMatch")


def test_a_reencoded_but_unchanged_query_still_passes(guarded: Guarded) -> None:
    # GIVEN a presigned GET whose query is escaped differently (a "/" of the credential left raw)
    url = presigned()
    reencoded = url.replace("testing%2F", "testing/")
    assert reencoded != url
    # WHEN / THEN it passes: S3 checks the query's values, not how they were escaped
    assert guarded.send("GET", reencoded).status_code == 200


def test_a_url_signed_with_another_secret_is_refused(guarded: Guarded) -> None:
    url = presigned(secret="not-the-secret")
    assert_refused(guarded.send("GET", url), guarded, 403, "SignatureDoesNotMatch")


def test_an_unknown_access_key_is_refused_as_such(guarded: Guarded) -> None:
    # GIVEN a URL whose credential names an access key the endpoint does not know
    url = presigned()
    scope = dict(parse_qsl(urlsplit(url).query))["X-Amz-Credential"].replace("testing/", "AKIAUNKNOWN/")
    # WHEN / THEN it is refused with InvalidAccessKeyId, naming the key
    error = assert_refused(
        guarded.send("GET", with_query(url, **{"X-Amz-Credential": scope})), guarded, 403, "InvalidAccessKeyId"
    )
    assert error["AWSAccessKeyId"] == "AKIAUNKNOWN"


def test_an_expired_presigned_get_is_refused_as_expired(guarded: Guarded) -> None:
    # GIVEN a URL valid for 60 s
    url = presigned(expires=60)
    # WHEN it is used one second before and at its expiry
    guarded.now = signed_at(url) + timedelta(seconds=59)
    assert guarded.send("GET", url).status_code == 200
    guarded.s3.requests.clear()
    guarded.now = signed_at(url) + timedelta(seconds=60)
    response = guarded.send("GET", url)
    # THEN the second is refused as S3 refuses it: AccessDenied, "Request has expired"
    error = assert_refused(response, guarded, 403, "AccessDenied")
    assert error["Message"] == "Request has expired"
    assert error["X-Amz-Expires"] == "60"
    assert "Expires" in error and "ServerTime" in error


def test_a_url_dated_in_the_future_is_not_yet_valid(guarded: Guarded) -> None:
    url = presigned()
    guarded.now = signed_at(url) - timedelta(minutes=16)
    error = assert_refused(guarded.send("GET", url), guarded, 403, "AccessDenied")
    assert error["Message"] == "Request is not yet valid"


def test_a_lifetime_over_a_week_is_refused(guarded: Guarded) -> None:
    # GIVEN a URL presigned (validly) for one second more than SigV4 allows
    url = presigned(expires=MAX_EXPIRES + 1)
    # WHEN / THEN S3 refuses it whatever its signature
    error = assert_refused(guarded.send("GET", url), guarded, 400, "AuthorizationQueryParametersError")
    assert "less than a week" in error["Message"]


@pytest.mark.parametrize("missing", ["X-Amz-Credential", "X-Amz-SignedHeaders", "X-Amz-Signature"])
def test_a_url_missing_a_sigv4_parameter_is_refused(guarded: Guarded, missing: str) -> None:
    parts = urlsplit(presigned())
    query = [(name, value) for name, value in parse_qsl(parts.query) if name != missing]
    url = urlunsplit(parts._replace(query=urlencode(query)))
    assert_refused(guarded.send("GET", url), guarded, 400, "AuthorizationQueryParametersError")


def test_a_malformed_or_foreign_credential_scope_is_refused(guarded: Guarded) -> None:
    url = presigned()
    for scope in ("testing/20200101/us-east-1/s3", "testing/20200101/us-east-1/ec2/aws4_request"):
        response = guarded.send("GET", with_query(url, **{"X-Amz-Credential": scope}))
        assert_refused(response, guarded, 400, "AuthorizationQueryParametersError")


def test_a_credential_of_another_region_is_refused_when_the_region_is_known() -> None:
    # GIVEN a guard that knows its buckets' region, and a URL signed for another region
    guarded = Guarded(region="us-east-1")
    url = presigned(region="eu-west-1")
    # WHEN / THEN it is refused, naming the expected region, and one of the right region passes
    error = assert_refused(guarded.send("GET", url), guarded, 400, "AuthorizationQueryParametersError")
    assert error["Region"] == "us-east-1"
    assert guarded.send("GET", presigned()).status_code == 200


def test_presigned_put_head_and_delete_pass_as_issued(guarded: Guarded) -> None:
    # GIVEN presigned PUT (with its signed content type), HEAD and DELETE URLs
    put = presigned("put_object", key="outputs/p-a", params={"ContentType": "application/json"})
    head = presigned("head_object")
    delete = presigned("delete_object")
    # WHEN each is used as issued
    statuses = [
        guarded.send("PUT", put, data=b"{}", headers={"Content-Type": "application/json"}).status_code,
        guarded.send("HEAD", head).status_code,
        guarded.send("DELETE", delete).status_code,
    ]
    # THEN all reach S3
    assert statuses == [200, 200, 200]
    assert [r["method"] for r in guarded.reached()] == ["PUT", "HEAD", "DELETE"]


def test_a_presigned_put_with_a_changed_signed_header_is_refused(guarded: Guarded) -> None:
    put = presigned("put_object", params={"ContentType": "application/json"})
    response = guarded.send("PUT", put, data=b"<html/>", headers={"Content-Type": "text/html"})
    assert_refused(response, guarded, 403, "SignatureDoesNotMatch")


def test_an_unsigned_x_amz_header_is_refused(guarded: Guarded) -> None:
    # GIVEN a presigned PUT, sent with an x-amz-* header it did not sign
    put = presigned("put_object")
    response = guarded.send("PUT", put, data=b"{}", headers={"x-amz-acl": "public-read"})
    # THEN S3 refuses it, naming the header
    error = assert_refused(response, guarded, 403, "AccessDenied")
    assert error["HeadersNotSigned"] == "x-amz-acl"


def test_a_sigv2_presigned_url_is_refused_as_s3_refuses_it_on_new_buckets(guarded: Guarded) -> None:
    url = presigned(signature_version="s3")
    assert "Signature=" in url and "X-Amz-" not in url
    error = assert_refused(guarded.send("GET", url), guarded, 400, "InvalidRequest")
    assert "AWS4-HMAC-SHA256" in error["Message"]


# -- header-signed, anonymous and unrelated requests ----------------------------------------------


def test_header_signed_requests_pass_untouched(guarded: Guarded) -> None:
    # GIVEN requests signed with an Authorization header (the gateway's own boto3 clients)
    auth = {"Authorization": "AWS4-HMAC-SHA256 Credential=testing/20200101/us-east-1/s3/aws4_request, ..."}
    # WHEN they read, write and list
    statuses = [
        guarded.send("GET", f"{ENDPOINT}/{BUCKET}/outputs/p-a", headers=auth).status_code,
        guarded.send("PUT", f"{ENDPOINT}/{BUCKET}/inputs/p-a", data=b"{}", headers=auth).status_code,
        guarded.send("GET", f"{ENDPOINT}/{BUCKET}?list-type=2&prefix=X-Amz-", headers=auth).status_code,
    ]
    # THEN all reach S3
    assert statuses == [200, 200, 200]
    assert len(guarded.reached()) == 3


def test_a_header_signed_request_with_a_presigned_query_too_is_refused(guarded: Guarded) -> None:
    response = guarded.send("GET", presigned(), headers={"Authorization": "AWS4-HMAC-SHA256 Credential=testing/x"})
    assert_refused(response, guarded, 400, "InvalidArgument")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/{BUCKET}/outputs/p-a"),
        ("GET", f"/{BUCKET}"),
        ("PUT", f"/{BUCKET}/inputs/p-a"),
        ("DELETE", f"/{BUCKET}/inputs/p-a"),
        ("POST", f"/{BUCKET}?delete"),
        ("POST", f"/{BUCKET}/inputs/p-a?uploads"),
    ],
)
def test_anonymous_requests_to_the_stacks_buckets_are_refused(guarded: Guarded, method: str, path: str) -> None:
    # GIVEN a request without any credentials
    # WHEN it reaches the stack's bucket
    response = guarded.send(method, f"{ENDPOINT}{path}", data=b"x" if method in ("PUT", "POST") else None)
    # THEN it is refused: the bucket blocks public access
    error = assert_refused(response, guarded, 403, "AccessDenied")
    assert error["Message"] == "Access Denied"


def test_an_anonymous_virtual_host_request_is_refused(guarded: Guarded) -> None:
    response = guarded.send("GET", f"http://{BUCKET}.localhost:4566/outputs/p-a")
    assert_refused(response, guarded, 403, "AccessDenied")


def test_an_anonymous_head_is_refused_without_a_body(guarded: Guarded) -> None:
    response = guarded.send("HEAD", f"{ENDPOINT}/{BUCKET}/outputs/p-a")
    assert response.status_code == 403
    assert response.get_data() == b""
    assert guarded.reached() == []


def test_other_buckets_services_and_cors_preflights_pass_untouched(guarded: Guarded) -> None:
    # GIVEN requests that are not the stack's buckets' business, or never signed by design
    responses = [
        guarded.send("GET", f"{ENDPOINT}/{OTHER_BUCKET}/anything"),
        guarded.send("POST", f"{ENDPOINT}/", data={"Action": "ListQueues"}),
        guarded.send("GET", f"{ENDPOINT}/moto-api/"),
        guarded.send("OPTIONS", f"{ENDPOINT}/{BUCKET}", headers={"Origin": "http://localhost:3000"}),
    ]
    # THEN all reach the application behind, as sent
    assert [r.status_code for r in responses] == [200, 200, 200, 200]
    assert len(guarded.reached()) == 4


# -- browser POST uploads -------------------------------------------------------------------------


def upload_form(key: str = "uploads/p-a", max_bytes: int = 1024, secret: str = "testing-secret") -> dict[str, str]:
    """The gateway's own presigned POST form (S3ObjectStore.presign_upload)."""
    store = S3ObjectStore(BUCKET, kms_key_id=KMS_KEY, client=signing_client(secret))
    return dict(store.presign_upload(key, "application/json", max_bytes, expires_in=900).fields)


def post_form(guarded: Guarded, fields: list[tuple[str, str]] | dict[str, str], file: bytes | None) -> TestResponse:
    """POST a multipart form, its fields in the order given and the file last, as a browser does."""
    data: list[tuple[str, Any]] = list(fields.items() if isinstance(fields, dict) else fields)
    if file is not None:
        data.append(("file", (file, "input.json", "application/json")))
    builder = EnvironBuilder(method="POST", base_url=ENDPOINT, path=f"/{BUCKET}", content_type="multipart/form-data")
    for name, value in data:
        if isinstance(value, tuple):
            builder.files.add_file(name, _bytes_stream(value[0]), value[1], value[2])
        else:
            builder.form.add(name, value)
    return guarded.client.open(builder)


def _bytes_stream(content: bytes) -> Any:
    import io

    return io.BytesIO(content)


def test_the_gateways_form_used_as_issued_is_stored(guarded: Guarded) -> None:
    # GIVEN the gateway's presigned form and a file within its size range
    form = upload_form()
    # WHEN it is posted as a browser posts it
    response = post_form(guarded, form, b'{"x": 1}')
    # THEN moto stores the file under the signed key, with the signed fields
    assert response.status_code == 200
    (reached,) = guarded.reached()
    forwarded = dict(reached["form"])
    assert forwarded["key"] == "uploads/p-a"
    assert forwarded["content-type"] == "application/json"
    assert reached["files"] == {"file": b'{"x": 1}'}


def test_a_form_urlencoded_post_with_only_a_key_is_refused(guarded: Guarded) -> None:
    # GIVEN a POST of the bucket with only key=<upload key>, form-urlencoded (the reported hole)
    response = guarded.send(
        "POST",
        f"{ENDPOINT}/{BUCKET}",
        data=urlencode({"key": "uploads/p-a"}),
        content_type="application/x-www-form-urlencoded",
    )
    # THEN S3 refuses it as not a multipart form, and nothing reaches moto
    error = assert_refused(response, guarded, 412, "PreconditionFailed")
    assert error["Condition"] == "Bucket POST must be of the enclosure-type multipart/form-data"


def test_a_form_urlencoded_post_of_the_full_signed_form_is_refused_too(guarded: Guarded) -> None:
    form = {**upload_form(), "file": '{"x": 1}'}
    response = guarded.send(
        "POST", f"{ENDPOINT}/{BUCKET}", data=urlencode(form), content_type="application/x-www-form-urlencoded"
    )
    assert_refused(response, guarded, 412, "PreconditionFailed")


def test_a_raw_body_post_is_refused(guarded: Guarded) -> None:
    response = guarded.send("POST", f"{ENDPOINT}/{BUCKET}", data=b"key=uploads/p-a", content_type="text/plain")
    assert_refused(response, guarded, 412, "PreconditionFailed")


def test_a_multipart_post_without_policy_or_signature_is_anonymous_and_refused(guarded: Guarded) -> None:
    response = post_form(guarded, {"key": "uploads/p-a"}, b"{}")
    error = assert_refused(response, guarded, 403, "AccessDenied")
    assert error["Message"] == "Access Denied"


def test_a_multipart_post_without_its_signature_is_refused(guarded: Guarded) -> None:
    form = {name: value for name, value in upload_form().items() if name != "x-amz-signature"}
    error = assert_refused(post_form(guarded, form, b"{}"), guarded, 400, "InvalidArgument")
    assert error["ArgumentName"] == "X-Amz-Signature"


def test_a_multipart_post_with_a_tampered_policy_is_refused(guarded: Guarded) -> None:
    # GIVEN the signed form whose policy was swapped for one another key's form carries
    form = upload_form()
    form["policy"] = upload_form(key="inputs/p-a", max_bytes=10**9)["policy"]
    form["key"] = "inputs/p-a"
    # WHEN / THEN the signature no longer matches
    assert_refused(post_form(guarded, form, b"{}"), guarded, 403, "SignatureDoesNotMatch")


def test_a_form_signed_for_another_key_cannot_write_elsewhere(guarded: Guarded) -> None:
    form = {**upload_form(), "key": "inputs/p-a"}
    error = assert_refused(post_form(guarded, form, b"{}"), guarded, 403, "AccessDenied")
    assert "Policy Condition failed" in error["Message"]


def test_a_key_repeated_in_another_case_is_refused(guarded: Guarded) -> None:
    # GIVEN the signed form, plus a second key field in other casing (S3's field names are
    # case-insensitive: the checked key and the stored key could otherwise differ)
    fields = [("Key", "inputs/p-a"), *upload_form().items()]
    # WHEN / THEN it is refused and nothing is stored
    assert_refused(post_form(guarded, fields, b"{}"), guarded, 400, "InvalidArgument")


def test_fields_after_the_file_are_ignored_as_s3_ignores_them(guarded: Guarded) -> None:
    # GIVEN the signed form, its file, then a key field after the file
    form = upload_form()
    builder_fields = list(form.items())
    builder = EnvironBuilder(method="POST", base_url=ENDPOINT, path=f"/{BUCKET}")
    body, content_type = _multipart([*builder_fields, ("file", b"{}"), ("key", "inputs/p-a")])
    builder.input_stream = _bytes_stream(body)
    builder.content_type = content_type
    builder.content_length = len(body)
    # WHEN it is posted
    response = guarded.client.open(builder)
    # THEN the file is stored under the signed key only
    assert response.status_code == 200
    (reached,) = guarded.reached()
    assert [value for name, value in reached["form"] if name == "key"] == ["uploads/p-a"]


def _multipart(parts: list[tuple[str, str | bytes]]) -> tuple[bytes, str]:
    boundary = "test-boundary-1234"
    chunks = []
    for name, value in parts:
        filename = '; filename="input.json"' if isinstance(value, bytes) else ""
        payload = value if isinstance(value, bytes) else value.encode()
        chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"{filename}\r\n\r\n'.encode())
        chunks.append(payload + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


def test_x_ignore_fields_are_allowed_and_not_stored(guarded: Guarded) -> None:
    response = post_form(guarded, {**upload_form(), "x-ignore-trace": "abc"}, b"{}")
    assert response.status_code == 200
    assert "x-ignore-trace" not in dict(guarded.reached()[0]["form"])


def test_a_multipart_post_without_a_file_is_refused(guarded: Guarded) -> None:
    error = assert_refused(post_form(guarded, upload_form(), None), guarded, 400, "InvalidArgument")
    assert error["ArgumentName"] == "file"


def test_an_oversize_upload_is_refused_as_entity_too_large(guarded: Guarded) -> None:
    error = assert_refused(post_form(guarded, upload_form(max_bytes=4), b"12345"), guarded, 400, "EntityTooLarge")
    assert error["MaxSizeAllowed"] == "4"


def test_an_expired_upload_form_is_refused(guarded: Guarded) -> None:
    guarded.now = datetime.now(UTC) + timedelta(seconds=901)
    error = assert_refused(post_form(guarded, upload_form(), b"{}"), guarded, 403, "AccessDenied")
    assert error["Message"] == "Invalid according to Policy: Policy expired."


def test_a_malformed_multipart_body_is_refused(guarded: Guarded) -> None:
    response = guarded.send(
        "POST", f"{ENDPOINT}/{BUCKET}", data=b"--b\r\nno headers here", content_type="multipart/form-data; boundary=b"
    )
    assert_refused(response, guarded, 400, "MalformedPOSTRequest")


def test_a_post_without_content_length_is_refused(guarded: Guarded) -> None:
    body, content_type = _multipart([*upload_form().items(), ("file", b"{}")])
    builder = EnvironBuilder(method="POST", base_url=ENDPOINT, path=f"/{BUCKET}", data=body, content_type=content_type)
    environ = builder.get_environ()
    del environ["CONTENT_LENGTH"]
    captured: list[str] = []
    result = guarded.guard(environ, lambda status, headers: captured.append(status))
    assert captured == ["411 Length Required"]
    assert b"MissingContentLength" in b"".join(result)
    assert guarded.reached() == []

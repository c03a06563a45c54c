"""The presign guard's POST policy check: the local runtime refuses what S3 would refuse.

The forms are the gateway's own (``S3ObjectStore.presign_upload``, i.e. botocore's
``generate_presigned_post``) signed by a client with dummy credentials; nothing touches the network.
"""

from __future__ import annotations

import base64
import functools
import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from ensemble_gateway.adapters.s3 import S3ObjectStore
from ensemble_gateway.local.presign_guard import PolicyViolationError, check_post_policy

BUCKET = "gw-data-123456789012-us-east-1"
KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
SECRETS = {"testing": "testing-secret"}
MAX_BYTES = 1024


@functools.cache
def signing_client(secret: str) -> Any:
    """An S3 client with dummy credentials: presigning is local computation, no request is sent."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key=secret,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


def presigned_form(secret: str = "testing-secret", content_type: str = "application/json") -> dict[str, str]:
    store = S3ObjectStore(BUCKET, kms_key_id=KMS_KEY, client=signing_client(secret))
    return dict(store.presign_upload("inputs/p1", content_type, MAX_BYTES, expires_in=900).fields)


def policy_of(fields: dict[str, str]) -> dict[str, Any]:
    return json.loads(base64.b64decode(fields["policy"]))


def expiry_of(fields: dict[str, str]) -> datetime:
    return datetime.fromisoformat(policy_of(fields)["expiration"].replace("Z", "+00:00"))


@pytest.fixture
def form() -> dict[str, str]:
    return presigned_form()


@pytest.fixture
def before_expiry(form: dict[str, str]) -> datetime:
    return expiry_of(form) - timedelta(seconds=1)


def test_a_valid_upload_is_accepted(form: dict[str, str], before_expiry: datetime) -> None:
    # GIVEN the gateway's presigned form, used as issued, within its size range and lifetime
    # WHEN the guard checks it
    # THEN it passes (no exception), at both ends of the size range
    check_post_policy(form, 1, BUCKET, SECRETS, before_expiry)
    check_post_policy(form, MAX_BYTES, BUCKET, SECRETS, before_expiry)


def test_the_form_carries_the_conditions_s3_must_enforce(form: dict[str, str]) -> None:
    # GIVEN the gateway's presigned form
    conditions = policy_of(form)["conditions"]
    # THEN its policy bounds the size and pins the key, content type and encryption
    assert ["content-length-range", 1, MAX_BYTES] in conditions
    assert {"key": "inputs/p1"} in conditions
    assert {"Content-Type": "application/json"} in conditions
    assert {"x-amz-server-side-encryption": "aws:kms"} in conditions
    assert {"x-amz-server-side-encryption-aws-kms-key-id": KMS_KEY} in conditions


def test_an_expired_policy_is_refused(form: dict[str, str]) -> None:
    # GIVEN a form used one second after its policy expired
    after = expiry_of(form) + timedelta(seconds=1)
    # WHEN / THEN it is refused as expired
    with pytest.raises(PolicyViolationError, match="Policy expired"):
        check_post_policy(form, 10, BUCKET, SECRETS, after)


def test_a_wrong_signature_is_refused(form: dict[str, str], before_expiry: datetime) -> None:
    # GIVEN a form whose signature was altered
    tampered = {**form, "x-amz-signature": "0" * 64}
    # WHEN / THEN it is refused
    with pytest.raises(PolicyViolationError, match="signature"):
        check_post_policy(tampered, 10, BUCKET, SECRETS, before_expiry)


def test_a_policy_altered_after_signing_is_refused(form: dict[str, str], before_expiry: datetime) -> None:
    # GIVEN a client that raised the size limit in the policy, keeping the signature
    policy = policy_of(form)
    policy["conditions"] = [
        ["content-length-range", 1, 10**12] if isinstance(c, list) and c[0] == "content-length-range" else c
        for c in policy["conditions"]
    ]
    tampered = {**form, "policy": base64.b64encode(json.dumps(policy).encode()).decode()}
    # WHEN / THEN the signature no longer matches
    with pytest.raises(PolicyViolationError, match="signature"):
        check_post_policy(tampered, 10**6, BUCKET, SECRETS, before_expiry)


def test_a_form_signed_with_another_secret_or_unknown_key_is_refused(before_expiry: datetime) -> None:
    # GIVEN a form signed with a secret that is not the access key's
    forged = presigned_form(secret="not-the-secret")
    # WHEN / THEN it is refused
    with pytest.raises(PolicyViolationError, match="signature"):
        check_post_policy(forged, 10, BUCKET, SECRETS, before_expiry)
    # AND an access key the endpoint does not know is refused as such
    with pytest.raises(PolicyViolationError, match="Access Key Id"):
        check_post_policy(forged, 10, BUCKET, {"someone-else": "x"}, before_expiry)


def test_an_oversize_upload_is_refused_as_entity_too_large(form: dict[str, str], before_expiry: datetime) -> None:
    # GIVEN a file one byte over the policy's content-length-range
    # WHEN / THEN it is refused with S3's EntityTooLarge
    with pytest.raises(PolicyViolationError, match=r"^EntityTooLarge"):
        check_post_policy(form, MAX_BYTES + 1, BUCKET, SECRETS, before_expiry)


def test_an_empty_upload_is_refused_as_entity_too_small(form: dict[str, str], before_expiry: datetime) -> None:
    with pytest.raises(PolicyViolationError, match=r"^EntityTooSmall"):
        check_post_policy(form, 0, BUCKET, SECRETS, before_expiry)


def test_a_different_content_type_is_refused(form: dict[str, str], before_expiry: datetime) -> None:
    # GIVEN a form whose Content-Type field was changed from the signed one
    changed = {**form, "Content-Type": "text/html"}
    # WHEN / THEN the Content-Type condition fails, naming it
    with pytest.raises(PolicyViolationError, match="content-type"):
        check_post_policy(changed, 10, BUCKET, SECRETS, before_expiry)


def test_a_content_type_with_parameters_must_be_sent_exactly_as_signed() -> None:
    # GIVEN a form presigned for JSON with a charset (a content type the client gave with parameters)
    form = presigned_form(content_type="application/json; charset=utf-8")
    before_expiry = expiry_of(form) - timedelta(seconds=1)
    # THEN its fields and its policy carry the content type as given
    assert form["Content-Type"] == "application/json; charset=utf-8"
    assert {"Content-Type": "application/json; charset=utf-8"} in policy_of(form)["conditions"]
    # AND the form used as issued passes
    check_post_policy(form, 10, BUCKET, SECRETS, before_expiry)
    # AND the bare media type, without the signed parameters, is refused as S3 refuses it
    with pytest.raises(PolicyViolationError, match="content-type"):
        check_post_policy({**form, "Content-Type": "application/json"}, 10, BUCKET, SECRETS, before_expiry)


@pytest.mark.parametrize(
    ("field", "value"),
    [("key", "inputs/someone-else"), ("x-amz-server-side-encryption", "AES256")],
)
def test_changed_key_or_encryption_is_refused(
    form: dict[str, str], before_expiry: datetime, field: str, value: str
) -> None:
    # GIVEN a form whose signed key or encryption field was changed
    changed = {**form, field: value}
    # WHEN / THEN its condition fails, naming the field
    with pytest.raises(PolicyViolationError, match=f"Policy Condition failed.*{field}"):
        check_post_policy(changed, 10, BUCKET, SECRETS, before_expiry)


def test_a_form_posted_to_another_bucket_is_refused(form: dict[str, str], before_expiry: datetime) -> None:
    with pytest.raises(PolicyViolationError, match="bucket"):
        check_post_policy(form, 10, "other-bucket", SECRETS, before_expiry)


def test_an_extra_field_is_refused(form: dict[str, str], before_expiry: datetime) -> None:
    # GIVEN a form with a field the policy does not cover
    extra = {**form, "x-amz-meta-owner": "mallory"}
    # WHEN / THEN it is refused, naming the field
    with pytest.raises(PolicyViolationError, match="Extra input fields: x-amz-meta-owner"):
        check_post_policy(extra, 10, BUCKET, SECRETS, before_expiry)


def test_x_ignore_fields_are_allowed_as_s3_allows_them(form: dict[str, str], before_expiry: datetime) -> None:
    check_post_policy({**form, "x-ignore-trace": "abc"}, 10, BUCKET, SECRETS, before_expiry)


def test_a_form_without_a_policy_is_refused_as_anonymous(form: dict[str, str], before_expiry: datetime) -> None:
    # GIVEN the form without its policy: S3 treats it as an anonymous upload
    without = {k: v for k, v in form.items() if k != "policy"}
    # WHEN / THEN it is refused as S3 refuses anonymous writes to a bucket that blocks public access
    with pytest.raises(PolicyViolationError, match=r"^AccessDenied: Access Denied$") as refused:
        check_post_policy(without, 10, BUCKET, SECRETS, before_expiry)
    assert refused.value.status == 403


def test_a_form_without_a_key_is_refused_first(form: dict[str, str], before_expiry: datetime) -> None:
    without = {k: v for k, v in form.items() if k != "key"}
    with pytest.raises(PolicyViolationError, match="must contain a field named 'key'") as refused:
        check_post_policy(without, 10, BUCKET, SECRETS, before_expiry)
    assert (refused.value.status, refused.value.code) == (400, "InvalidArgument")


@pytest.mark.parametrize("missing", ["x-amz-signature", "x-amz-credential", "x-amz-algorithm", "x-amz-date"])
def test_a_policy_without_all_its_sigv4_fields_is_refused(
    form: dict[str, str], before_expiry: datetime, missing: str
) -> None:
    # GIVEN the form without one of the SigV4 fields that sign its policy
    without = {k: v for k, v in form.items() if k != missing}
    # WHEN / THEN S3 asks for the field
    with pytest.raises(PolicyViolationError, match="must contain a field named") as refused:
        check_post_policy(without, 10, BUCKET, SECRETS, before_expiry)
    assert refused.value.details["ArgumentName"].lower() == missing


def test_a_sigv2_form_is_refused_as_new_buckets_refuse_it(form: dict[str, str], before_expiry: datetime) -> None:
    sigv2 = {"key": "inputs/p1", "policy": form["policy"], "AWSAccessKeyId": "testing", "signature": "c2lnbmF0dXJl"}
    with pytest.raises(PolicyViolationError, match="AWS4-HMAC-SHA256") as refused:
        check_post_policy(sigv2, 10, BUCKET, SECRETS, before_expiry)
    assert refused.value.code == "InvalidRequest"


def test_signature_and_access_key_failures_carry_s3s_codes(form: dict[str, str], before_expiry: datetime) -> None:
    with pytest.raises(PolicyViolationError) as mismatch:
        check_post_policy({**form, "x-amz-signature": "0" * 64}, 10, BUCKET, SECRETS, before_expiry)
    with pytest.raises(PolicyViolationError) as unknown:
        check_post_policy(form, 10, BUCKET, {"someone-else": "x"}, before_expiry)
    assert (mismatch.value.status, mismatch.value.code) == (403, "SignatureDoesNotMatch")
    assert mismatch.value.details["StringToSign"] == form["policy"]
    assert (unknown.value.status, unknown.value.code) == (403, "InvalidAccessKeyId")


def test_a_bucket_field_needs_a_condition_like_any_other(form: dict[str, str], before_expiry: datetime) -> None:
    # GIVEN a form that also sends a bucket field (the gateway's policy names the bucket, so it is covered)
    assert {"bucket": BUCKET} in policy_of(form)["conditions"]
    check_post_policy({**form, "bucket": BUCKET}, 10, BUCKET, SECRETS, before_expiry)
    # WHEN the policy has no bucket condition (a form signed here, with the endpoint's secret)
    policy = policy_of(form)
    policy["conditions"] = [c for c in policy["conditions"] if c != {"bucket": BUCKET}]
    resigned = resign({**form, "bucket": BUCKET}, policy)
    # THEN the bucket field is an extra input field, as S3 answers
    with pytest.raises(PolicyViolationError, match="Extra input fields: bucket"):
        check_post_policy(resigned, 10, BUCKET, SECRETS, before_expiry)


def resign(fields: dict[str, str], policy: dict[str, Any]) -> dict[str, str]:
    """The form with ``policy`` signed by the endpoint's secret (what a client holding it could sign)."""
    import hashlib
    import hmac

    encoded = base64.b64encode(json.dumps(policy).encode()).decode()
    _, date, region, service, _ = fields["x-amz-credential"].split("/")
    key = f"AWS4{SECRETS['testing']}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, encoded.encode(), hashlib.sha256).hexdigest()
    return {**fields, "policy": encoded, "x-amz-signature": signature}


@pytest.mark.parametrize(
    ("policy", "detail"),
    [
        ({"conditions": []}, "missing expiration"),
        ({"expiration": "tomorrow", "conditions": []}, "Invalid 'expiration' value"),
        ({"expiration": "2999-01-01T00:00:00Z", "conditions": [{"a": "1", "b": "2"}]}, "exactly one property"),
        ({"expiration": "2999-01-01T00:00:00Z", "conditions": [["matches", "$key", "x"]]}, "Invalid Condition"),
    ],
)
def test_a_signed_but_invalid_policy_is_refused_as_invalid(
    form: dict[str, str], before_expiry: datetime, policy: dict[str, Any], detail: str
) -> None:
    # GIVEN a correctly signed policy document that S3 cannot read
    resigned = resign(form, policy)
    # WHEN / THEN it is refused with InvalidPolicyDocument, not a crash
    with pytest.raises(PolicyViolationError, match=detail) as refused:
        check_post_policy(resigned, 10, BUCKET, SECRETS, before_expiry)
    assert (refused.value.status, refused.value.code) == (400, "InvalidPolicyDocument")


def test_the_credential_region_is_checked_when_known(form: dict[str, str], before_expiry: datetime) -> None:
    check_post_policy(form, 10, BUCKET, SECRETS, before_expiry, region="us-east-1")
    with pytest.raises(PolicyViolationError, match="region 'us-east-1' is wrong; expecting 'eu-west-1'"):
        check_post_policy(form, 10, BUCKET, SECRETS, before_expiry, region="eu-west-1")

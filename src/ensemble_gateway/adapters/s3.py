"""S3 adapter: presigned POST uploads, presigned downloads, reads and writes."""

from __future__ import annotations

import base64
import contextlib
import hashlib
from datetime import timedelta
from typing import Any

from ..domain.models import utcnow
from ..domain.ports import PresignedUpload, StoredObject
from .aws import LazyClient, client


def split_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` → (bucket, key)."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


class S3ObjectStore(LazyClient):
    """Objects of the gateway's bucket, encrypted with the bucket's KMS key."""

    service_name = "s3"

    def __init__(self, bucket: str, kms_key_id: str | None = None, client: Any = None) -> None:
        super().__init__(client)
        self.bucket = bucket
        self.kms_key_id = kms_key_id

    @property
    def client(self) -> Any:
        if self._client is None:
            from botocore.config import Config

            # SigV4 explicitly: some boto3 versions presign with SigV2 by default.
            self._client = client("s3", config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
        return self._client

    def _sse(self) -> dict[str, str]:
        if self.kms_key_id:
            return {
                "x-amz-server-side-encryption": "aws:kms",
                "x-amz-server-side-encryption-aws-kms-key-id": self.kms_key_id,
            }
        return {}

    def presign_upload(self, key: str, content_type: str, max_bytes: int, expires_in: int) -> PresignedUpload:
        fields: dict[str, str] = {"Content-Type": content_type, **self._sse()}
        conditions: list[Any] = [
            ["content-length-range", 1, max_bytes],
            {"Content-Type": content_type},
            *({name: value} for name, value in self._sse().items()),
        ]
        expires_at = utcnow() + timedelta(seconds=expires_in)
        post = self.client.generate_presigned_post(
            Bucket=self.bucket, Key=key, Fields=fields, Conditions=conditions, ExpiresIn=expires_in
        )
        return PresignedUpload(url=post["url"], fields=dict(post["fields"]), expires_at=expires_at, max_bytes=max_bytes)

    def presign_download(self, uri: str, expires_in: int) -> str:
        bucket, key = split_uri(uri)
        return str(
            self.client.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_in
            )
        )

    def read(self, uri: str) -> bytes:
        bucket, key = split_uri(uri)
        return bytes(self.client.get_object(Bucket=bucket, Key=key)["Body"].read())

    def _encryption(self) -> dict[str, str]:
        if self.kms_key_id:
            return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms_key_id}
        return {}

    def write(self, key: str, body: bytes, content_type: str) -> str:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type, **self._encryption())
        return f"s3://{self.bucket}/{key}"

    def accept_upload(self, upload_key: str, input_key: str) -> StoredObject | None:
        """Copy the upload to ``input_key`` in S3 (no bytes through Lambda); the copy's digest.

        S3 computes the copy's SHA-256 (``ChecksumAlgorithm``: a CopyObject result is one part, so
        its checksum is the whole object's); the size comes from the copy's metadata, so both
        describe exactly the object the model will read.
        """
        from botocore.exceptions import ClientError

        try:
            self.client.copy_object(
                Bucket=self.bucket,
                Key=input_key,
                CopySource={"Bucket": self.bucket, "Key": upload_key},
                MetadataDirective="COPY",
                ChecksumAlgorithm="SHA256",
                **self._encryption(),
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        return self._digest(self.bucket, input_key)

    def describe(self, uri: str) -> StoredObject | None:
        """The SHA-256 and size of the object at ``uri`` (the decision records' digests).

        S3's whole-object checksum when it has one (HeadObject, ``ChecksumMode``), else the
        object hashed as it is streamed (SageMaker writes its outputs without a checksum).
        """
        from botocore.exceptions import ClientError

        bucket, key = split_uri(uri)
        try:
            return self._digest(bucket, key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return None
            raise

    def _stored(self, key: str) -> StoredObject:
        """The digest and size of an object this store just wrote or copied to ``key``."""
        return self._digest(self.bucket, key)

    def _digest(self, bucket: str, key: str) -> StoredObject:
        head = self.client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        checksum = head.get("ChecksumSHA256")
        if checksum and "-" not in checksum:
            digest = base64.b64decode(checksum).hex()
        else:
            # No whole-object checksum to trust (it would be one of parts): hash the object itself.
            body = self.client.get_object(Bucket=bucket, Key=key)["Body"]
            hasher = hashlib.sha256()
            for chunk in iter(lambda: body.read(1024 * 1024), b""):
                hasher.update(chunk)
            digest = hasher.hexdigest()
        return StoredObject(sha256=digest, size=int(head["ContentLength"]))

    def read_range(self, uri: str, start: int, end: int) -> bytes:
        """A ranged GET (``Range: bytes=start-end``); nothing when ``start`` is past the end."""
        from botocore.exceptions import ClientError

        bucket, key = split_uri(uri)
        try:
            response = self.client.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end}")
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "InvalidRange":
                return b""
            raise LookupError(f"{uri} could not be read: {error}") from None
        return bytes(response["Body"].read())

    def copy_from(self, source_uri: str, key: str) -> StoredObject | None:
        """Copy any readable object into this bucket under ``key`` (S3 to S3, with its SHA-256);
        None when it does not exist or may not be read."""
        from botocore.exceptions import ClientError

        bucket, source_key = split_uri(source_uri)
        try:
            self.client.copy_object(
                Bucket=self.bucket,
                Key=key,
                CopySource={"Bucket": bucket, "Key": source_key},
                MetadataDirective="COPY",
                ChecksumAlgorithm="SHA256",
                **self._encryption(),
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in (
                "NoSuchKey",
                "404",
                "AccessDenied",
                "403",
                "NoSuchBucket",
            ):
                return None
            raise
        return self._stored(key)

    def delete(self, key: str) -> None:
        """Best effort: a cleanup that fails leaves the object to the bucket's lifecycle rule."""
        from botocore.exceptions import BotoCoreError, ClientError

        with contextlib.suppress(ClientError, BotoCoreError):
            self.client.delete_object(Bucket=self.bucket, Key=key)


class S3AuditSink(S3ObjectStore):
    """Decision records written straight to the data bucket, in the audit stream's layout.

    The local runtime's audit store: moto's Firehose ignores the stream's dynamic partitioning
    (it writes ``YYYY/MM/DD/HH/`` objects). One object per record,
    ``audit/date=YYYY-MM-DD/hour=HH/<record_id>.json`` (one JSON line): a record delivered again
    replaces itself, where Firehose would append a duplicate line.
    """

    prefix = "audit/"

    def put(self, records: list[dict[str, Any]]) -> None:
        """Write each record under its partition (raises what S3 raises)."""
        import json

        from ..domain.audit import partition

        for record in records:
            day, hour = partition(record)
            name = str(record["record_id"]).replace(":", "_")
            key = f"{self.prefix}date={day}/hour={hour}/{name}.json"
            self.write(key, (json.dumps(record, default=str) + "\n").encode(), "application/x-ndjson")

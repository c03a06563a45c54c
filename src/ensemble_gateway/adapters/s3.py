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
        return self._stored(input_key)

    def _stored(self, input_key: str) -> StoredObject:
        """The digest and size of an object this store just copied to ``input_key``."""
        head = self.client.head_object(Bucket=self.bucket, Key=input_key, ChecksumMode="ENABLED")
        checksum = head.get("ChecksumSHA256")
        if checksum and "-" not in checksum:
            digest = base64.b64decode(checksum).hex()
        else:
            # No whole-object checksum to trust (it would be one of parts): hash the copy itself.
            body = self.client.get_object(Bucket=self.bucket, Key=input_key)["Body"]
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

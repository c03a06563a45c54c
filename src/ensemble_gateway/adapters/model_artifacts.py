"""S3 adapter for model archives: uploads ``model.tar.gz`` files and reads the bucket's data key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..domain.errors import GatewayError
from .aws import LazyClient, error_code


class ModelUploadError(GatewayError):
    """A model archive could not be uploaded; the message is S3's (AccessDenied names the permission)."""

    code = "ModelUploadFailed"


class ModelArtifactStore(LazyClient):
    """Model archives in the gateway's data bucket (``models/...``), encrypted by the bucket's default key."""

    service_name = "s3"

    def upload(self, archive: Path, bucket: str, key: str) -> str:
        """Upload ``archive`` to ``s3://bucket/key`` unless it is there already; return the URI.

        Keys name the archive's digest, so an object that exists holds these very bytes.
        """
        uri = f"s3://{bucket}/{key}"
        try:
            self.client.head_object(Bucket=bucket, Key=key)
            return uri
        except Exception as error:
            # 403 too: without s3:ListBucket a missing object answers 403, not 404.
            if error_code(error) not in ("404", "NoSuchKey", "NotFound", "403", "Forbidden"):
                raise
        from boto3.exceptions import S3UploadFailedError

        try:
            # upload_file switches to multipart above 8 MB (model archives are often larger).
            self.client.upload_file(str(archive), bucket, key, ExtraArgs={"ContentType": "application/gzip"})
        except S3UploadFailedError as error:
            raise ModelUploadError(f"uploading {archive} to {uri} failed: {error}") from None
        return uri

    def default_kms_key(self, bucket: str) -> str | None:
        """The KMS key of the bucket's default encryption (``KMSMasterKeyID``), or None."""
        try:
            configuration: Any = self.client.get_bucket_encryption(Bucket=bucket)
        except Exception as error:
            if error_code(error) == "ServerSideEncryptionConfigurationNotFoundError":
                return None
            raise
        for rule in configuration.get("ServerSideEncryptionConfiguration", {}).get("Rules", []):
            key = rule.get("ApplyServerSideEncryptionByDefault", {}).get("KMSMasterKeyID")
            if key:
                return str(key)
        return None

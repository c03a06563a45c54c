"""Shared boto3 plumbing: one session, clients created on first use."""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def _session() -> Any:
    import boto3

    return boto3.session.Session()


def client(service: str, **kwargs: Any) -> Any:
    """A boto3 client from the shared session (boto3 is imported on first use, not at import)."""
    from botocore.config import Config

    config = kwargs.pop("config", None) or Config(retries={"mode": "standard", "max_attempts": 5})
    return _session().client(service, config=config, **kwargs)


def error_code(error: Exception) -> str:
    """The AWS error code of a botocore ``ClientError`` ('' for anything else)."""
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


class LazyClient:
    """Mixin: ``self.client`` is the injected client or one created on first use."""

    service_name = ""

    def __init__(self, client: Any = None) -> None:
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = client(self.service_name)
        return self._client

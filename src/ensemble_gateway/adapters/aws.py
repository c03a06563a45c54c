"""Shared boto3 plumbing: one session, clients created on first use."""

from __future__ import annotations

import functools
import threading
from typing import Any

# boto3 sessions are not thread-safe, and webhook-delivery works a batch's records in threads: the
# first records of a cold start would otherwise create clients from one session at once.
_CLIENT_LOCK = threading.RLock()


@functools.cache
def _session() -> Any:
    import boto3

    return boto3.session.Session()


def client(service: str, **kwargs: Any) -> Any:
    """A boto3 client from the shared session (boto3 is imported on first use, not at import)."""
    from botocore.config import Config

    config = kwargs.pop("config", None) or Config(retries={"mode": "standard", "max_attempts": 5})
    with _CLIENT_LOCK:
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
            with _CLIENT_LOCK:
                if self._client is None:  # another thread may have made it meanwhile
                    self._client = client(self.service_name)
        return self._client

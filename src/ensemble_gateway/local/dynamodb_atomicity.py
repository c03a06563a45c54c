"""Makes the local DynamoDB keep DynamoDB's promise that every request is atomic.

moto evaluates a ``ConditionExpression`` and applies the write without a lock: two concurrent
conditional writes on one item can both succeed. The gateway's exactly-once guarantees (one
``PENDING_UPLOAD → RUNNING`` transition, one dispatch claim, one terminal write) rest on exactly
one of them winning, as on AWS. So the local runtime runs DynamoDB requests one at a time; they
take a millisecond or two, and moto holds the GIL while it runs them anyway.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

_DYNAMODB_TARGET_PREFIX = "DynamoDB_"


class AtomicDynamoDBMiddleware:
    """Serialises the DynamoDB JSON API (``X-Amz-Target: DynamoDB_20120810.*``); passes the rest."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith(_DYNAMODB_TARGET_PREFIX):
            result: Iterable[bytes] = self.app(environ, start_response)
            return result
        with self._lock:
            # The body is produced inside the lock: moto may build it lazily.
            return list(self.app(environ, start_response))

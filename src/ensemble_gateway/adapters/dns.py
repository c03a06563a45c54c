"""Name resolution for the webhook egress policy (kept apart from the HTTP client: cheap to import)."""

from __future__ import annotations

import socket
from collections.abc import Sequence


def resolve_all(host: str, port: int) -> Sequence[str]:
    """Every A and AAAA address of ``host``."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})

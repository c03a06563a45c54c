"""moto's server app with the per-request work that never changes done once.

Profiling the local runtime under load showed two costs in moto's server mode that depend on
nothing but moto's own code, paid on every request: ``DomainDispatcherApplication`` lists moto's
package directory (an ``isdir`` per backend) to route each request, under a lock every request
takes; and each response class runs ``inspect.getmembers`` on itself to find the action's method.
Both answers are fixed for the life of the process, so they are computed once here. What moto
answers is unchanged.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

__all__ = ["dispatcher_app"]

_patched = False
_patch_lock = threading.Lock()


def _cache_method_names() -> None:
    """``method_names_from_class`` once per class (moto calls it for every request it answers)."""
    global _patched
    with _patch_lock:
        if _patched:
            return
        import moto.core.responses as responses

        responses.method_names_from_class = functools.cache(responses.method_names_from_class)
        _patched = True


def dispatcher_app() -> Any:
    """moto's WSGI app (all services), routing each host once."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    _cache_method_names()

    class CachedDispatcher(DomainDispatcherApplication):
        """Remembers which backend serves a host: moto recomputes it from a directory listing."""

        def __init__(self) -> None:
            super().__init__(create_backend_app)
            self._backend_by_host: dict[str | None, Any] = {}

        def get_backend_for_host(self, host: str | None) -> Any:
            # Called under the dispatcher's lock: the dict needs no other.
            if host not in self._backend_by_host:
                self._backend_by_host[host] = super().get_backend_for_host(host)
            return self._backend_by_host[host]

    return CachedDispatcher()

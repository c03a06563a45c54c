"""Lambda SnapStart runtime hooks for the API functions (the template's ``SnapStart`` parameter).

With SnapStart, Lambda initialises a function once when a version is published, snapshots the
execution environment and restores that snapshot at every cold start. The hooks registered here
put more into the snapshot than the import does, and undo what must not be shared by every
environment restored from it:

- **before the snapshot**: the handler's dependencies are built and the boto3 clients its requests
  use are created (their endpoint rules and service models loaded). No AWS call is made, so no
  connection is open in the snapshot: urllib3 opens one at the first request after a restore.
  Credentials are resolved when a request is signed; on SnapStart functions Lambda supplies
  container credentials (``AWS_CONTAINER_CREDENTIALS_FULL_URI``), which botocore refreshes.
- **after the restore**: the ``random`` module is reseeded. Its generator state lives in the
  process, so every environment restored from one snapshot would draw the same retry jitter
  (ours: webhook retries, SageMaker call retries; botocore's retry backoff draws from it too).

What init creates, and why nothing else needs re-seeding: prediction and batch IDs and webhook
secrets come from :mod:`secrets` (the kernel's CSPRNG) at each call, never at init; timestamps
are read at each call (``utcnow``); no UUID, token or clock value is created at import or by
``default_dependencies()``. Powertools' ``cold_start`` field is true for the first invocation of
a restored environment, as for any other cold start.

``snapshot_restore_py`` ships with Lambda's managed Python runtimes (3.12 and later) and is not
installed anywhere else: outside Lambda (tests, the local runtime) :func:`register_hooks` does
nothing. On a function without SnapStart the hooks are registered and never called.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Collection, Iterator
from typing import Any

from .adapters.aws import LazyClient

_PACKAGE = __name__.split(".")[0]


def register_hooks(dependencies: Callable[[], object], services: Collection[str]) -> bool:
    """Register the before-snapshot and after-restore hooks of one handler.

    Parameters
    ----------
    dependencies
        The handler's ``default_dependencies`` (cached: the handler's first request reuses what the
        hook built).
    services
        The boto3 service names whose clients the handler's requests use (created before the
        snapshot; any other client is still created on first use).

    Returns
    -------
    bool
        Whether the hooks were registered (False outside Lambda's runtime).
    """
    try:
        from snapshot_restore_py import register_after_restore, register_before_snapshot
    except ImportError:
        return False
    register_before_snapshot(before_snapshot, dependencies, frozenset(services))
    register_after_restore(after_restore)
    return True


def before_snapshot(dependencies: Callable[[], object], services: Collection[str]) -> list[str]:
    """Build ``dependencies()`` and create the clients of ``services`` it holds; the services warmed."""
    return [adapter.service_name for adapter in lazy_clients(dependencies()) if _warm(adapter, services)]


def after_restore() -> None:
    """Reseed the ``random`` module from the OS (see the module docstring)."""
    random.seed()


def _warm(adapter: LazyClient, services: Collection[str]) -> bool:
    if adapter.service_name not in services:
        return False
    adapter.client  # noqa: B018 - the property creates the client
    return True


def lazy_clients(root: object) -> Iterator[LazyClient]:
    """Every :class:`LazyClient` reachable from ``root``, once each.

    Walks the attributes of the package's objects and of dataclass instances (the handlers'
    ``Dependencies``), and the items of dicts, lists, tuples and sets; never into other libraries'
    objects (boto3 clients, Powertools).
    """
    seen: set[int] = set()
    pending: list[Any] = [root]
    while pending:
        value = pending.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, dict):
            pending.extend(value.values())
            continue
        if isinstance(value, list | tuple | set | frozenset):
            pending.extend(value)
            continue
        if isinstance(value, LazyClient):
            yield value
        elif type(value).__module__.startswith(_PACKAGE + ".") or dataclasses.is_dataclass(value):
            pending.extend(_attributes(value))


def _attributes(value: object) -> list[Any]:
    found = list(getattr(value, "__dict__", {}).values())
    for cls in type(value).__mro__:
        for slot in getattr(cls, "__slots__", ()):
            if hasattr(value, slot):
                found.append(getattr(value, slot))
    return found

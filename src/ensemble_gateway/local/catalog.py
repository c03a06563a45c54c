"""Applying a catalog file to the local runtime: its models hosted as endpoints, then registered."""

from __future__ import annotations

from pathlib import Path

from ..admin import apply_catalog_file, build_registrar
from ..domain.models import Service
from ..domain.registration import Registrar
from .runtime import REGION, LocalRuntime


def local_registrar(runtime: LocalRuntime) -> Registrar:
    """The registrar of the runtime's deployed stack."""
    assert runtime.stack is not None
    return build_registrar(
        stack_outputs=runtime.stack.outputs,
        name_prefix=runtime.stack.stack_name,
        root=runtime.root,
        client_factory=runtime.client,
    )


def apply_catalog(runtime: LocalRuntime, path: Path) -> list[Service]:
    """Validate a catalog file, host the models that name ``model_data``, register every service.

    The same path as ``ensemble-gateway services apply FILE`` against a running local runtime.
    """
    assert runtime.stack is not None
    return apply_catalog_file(
        path,
        stack_outputs=runtime.stack.outputs,
        name_prefix=runtime.stack.stack_name,
        root=runtime.root,
        client_factory=runtime.client,
        region=REGION,
        host=runtime.sagemaker is not None,
    )

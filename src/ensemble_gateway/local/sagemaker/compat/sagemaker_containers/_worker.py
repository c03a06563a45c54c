"""``sagemaker_containers`` ``worker.Response``: the Flask response model scripts return from ``output_fn``.

A werkzeug ``Response`` (Flask's is one) with the original's signature and JSON as its default
mimetype. The local runtime reads its body, ``content_type`` and ``status_code``; a status of 400
or more is the model's error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from werkzeug.wrappers import Response as _WerkzeugResponse

from . import _content_types as content_types

__all__ = ["Response"]


class Response(_WerkzeugResponse):
    """``Response(response=None, accept=None, status=200, headers=None, mimetype=None)``.

    ``accept`` is accepted and ignored, as the original ignores it (it is deprecated there).
    """

    default_mimetype = content_types.JSON

    def __init__(
        self,
        response: Iterable[bytes] | Iterable[str] | bytes | str | None = None,
        accept: str | None = None,
        status: int | str = 200,
        headers: Mapping[str, Any] | None = None,
        mimetype: str | None = None,
        direct_passthrough: bool = False,
    ) -> None:
        super().__init__(
            response,
            status=status,
            headers=headers,
            mimetype=mimetype,
            direct_passthrough=direct_passthrough,
        )

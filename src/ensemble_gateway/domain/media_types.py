"""Media types as HTTP writes them: a request's ``content_type`` and ``accept``.

Both travel to SageMaker as HTTP headers (``ContentType`` and ``Accept`` of ``InvokeEndpoint`` and
``InvokeEndpointAsync``), and the content type also into the presigned upload's policy, so they
are checked when a prediction is submitted: a malformed one is refused there, with a message the
client can act on, instead of failing later at dispatch.

The grammar is RFC 9110's (section 8.3.1 for a media type, 12.5.1 for ``Accept``), restricted to
printable ASCII: a ``type/subtype`` of tokens, then ``; name=value`` parameters (a token or a
quoted string), and for ``Accept`` a comma-separated list of those, ``*/*`` and ``type/*``
included (``*`` is a token character).
"""

from __future__ import annotations

import re

#: What a model is asked to answer with when the request does not say.
DEFAULT_ACCEPT = "application/json"

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
# Printable ASCII except '"' and '\', or a backslash-escaped printable character.
_QUOTED_STRING = r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*"'
_PARAMETERS = rf"(?:[ \t]*;[ \t]*{_TOKEN}=(?:{_TOKEN}|{_QUOTED_STRING}))*"
_MEDIA_TYPE = rf"{_TOKEN}/{_TOKEN}{_PARAMETERS}"
_MEDIA_RANGES = rf"{_MEDIA_TYPE}(?:[ \t]*,[ \t]*{_MEDIA_TYPE})*"

#: JSON Schema ``pattern`` of a content type (the published OpenAPI document carries it).
CONTENT_TYPE_PATTERN = rf"^{_MEDIA_TYPE}$"
#: JSON Schema ``pattern`` of an ``accept`` value: one media range or a comma-separated list.
ACCEPT_PATTERN = rf"^{_MEDIA_RANGES}$"

_CONTENT_TYPE = re.compile(_MEDIA_TYPE)
_ACCEPT = re.compile(_MEDIA_RANGES)


def is_content_type(value: str) -> bool:
    """Whether ``value`` is one media type, optionally with parameters (``text/csv; header=present``)."""
    return _CONTENT_TYPE.fullmatch(value) is not None


def is_accept(value: str) -> bool:
    """Whether ``value`` is what an HTTP ``Accept`` header may hold (``image/png, */*;q=0.8``)."""
    return _ACCEPT.fullmatch(value) is not None


def media_type(content_type: str) -> str:
    """The media type of ``content_type``, lowercased and without its parameters.

    Media types compare case-insensitively and their parameters do not change what they are:
    ``Application/JSON; charset=utf-8`` is ``application/json``.
    """
    return content_type.split(";", 1)[0].strip().lower()


def same_media_type(first: str, second: str) -> bool:
    """Whether two content types name the same media type (case and parameters ignored)."""
    return media_type(first) == media_type(second)


#: The media types read as JSON (by mappings, inline outputs and inline requests).
JSON_TYPES = ("application/json", "text/json")


def is_json_type(content_type: str) -> bool:
    """Whether a content type (parameters ignored) is JSON."""
    return media_type(content_type) in JSON_TYPES

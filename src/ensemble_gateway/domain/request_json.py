"""Strict parsing of API request bodies: bounded nesting, no duplicate keys.

Python's parser recurses once per nesting level, so a body of a few thousand brackets exhausts
the interpreter's stack (a ``RecursionError``, i.e. a 5xx) before any validation runs; and it keeps
the last of duplicate keys silently, so two readers of the same body (a proxy, an audit log, the
gateway) could disagree on what was asked. Both are refused here, with a message, before parsing.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import InvalidRequestError

#: Deepest nesting of objects and arrays a request body may have (the API's documents need 4).
MAX_NESTING_DEPTH = 32
#: Longest Idempotency-Key (as Stripe's; a UUID is 36): the key is stored on the record.
MAX_IDEMPOTENCY_KEY_LENGTH = 255


class RequestBodyError(ValueError):
    """The body is JSON the API refuses (too deep, duplicate keys); the message says which."""


def nesting_depth_exceeds(text: str, limit: int) -> bool:
    """Whether ``text`` opens more than ``limit`` objects/arrays at once (brackets inside strings
    do not count). Linear, no recursion: safe on any input."""
    depth = 0
    in_string = escaped = False
    for character in text:
        if in_string:
            if escaped:
                escaped = False
            elif character == "\\":
                escaped = True
            elif character == '"':
                in_string = False
        elif character == '"':
            in_string = True
        elif character in "[{":
            depth += 1
            if depth > limit:
                return True
        elif character in "]}":
            depth -= 1
    return False


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise RequestBodyError(f"the request body has the key '{key[:64]}' twice in one object")
        document[key] = value
    return document


def parse_request_json(text: str, *, max_depth: int = MAX_NESTING_DEPTH) -> Any:
    """Parse a request body strictly.

    Raises
    ------
    RequestBodyError
        Nested deeper than ``max_depth``, or an object repeats a key.
    ValueError
        Not JSON at all (``json.JSONDecodeError``).
    """
    if nesting_depth_exceeds(text, max_depth):
        raise RequestBodyError(f"the request body nests objects or arrays deeper than {max_depth} levels")
    return json.loads(text, object_pairs_hook=_refuse_duplicates)


def check_idempotency_key(key: str) -> str:
    """The ``Idempotency-Key`` header's value, if acceptable: 1 to 255 visible ASCII characters.

    Raises
    ------
    InvalidRequestError
        Too long, or a character outside ASCII 0x21-0x7E (a space, a control character, UTF-8).
    """
    if not key:
        # An empty header names no key: refused rather than taken for none (the client meant one).
        raise InvalidRequestError("Idempotency-Key is empty; send 1 to 255 visible ASCII characters, or no header")
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidRequestError(
            f"Idempotency-Key is {len(key)} characters long; at most {MAX_IDEMPOTENCY_KEY_LENGTH} are allowed"
        )
    if not all("!" <= character <= "~" for character in key):
        raise InvalidRequestError("Idempotency-Key may hold only visible ASCII characters (no spaces)")
    return key

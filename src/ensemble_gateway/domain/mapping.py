"""The input-mapping DSL: a JSON template whose ``$`` strings are JSONPath over the step's context.

A mapping builds one ensemble step's input from the request and earlier step outputs. It is
evaluated against the *context* ``{"input": ..., "steps": {<name>: <output>}, "metadata": {...}}``:

- a string starting with ``$`` is a JSONPath expression, replaced by the one value it selects;
- a string starting with ``$$`` is a literal with one leading ``$`` removed (``"$$5"`` → ``"$5"``);
- ``{"$path": "...", "many": true, "default": ...}`` selects a list and/or supplies a default;
- ``{"$bytes": "<path>", "content_type": "..."}`` (whole mapping only) sends decoded base64 bytes;
- ``{"$raw": "input"}`` (whole mapping only) sends the uploaded object unchanged;
- everything else is literal; dicts and lists are walked recursively.

Paths are parsed with ``jsonpath_ng.ext`` (filters, arithmetic) and cached: a step runs the same
mapping for every prediction, so parsing belongs to the first call, not to each one. The module is
pure: no boto3, no I/O. See ``docs/mapping.md`` for the guide.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from jsonpath_ng import JSONPath
from jsonpath_ng.ext import parse
from jsonpath_ng.ext.arithmetic import Operation
from jsonpath_ng.ext.filter import And, Expression, Filter, Or
from jsonpath_ng.ext.iterable import Keys, Len
from jsonpath_ng.jsonpath import Child, Descendants, Fields, Index, Root, Slice, This, Wildcard

from .errors import MappingError

__all__ = [
    "JSON_CONTENT_TYPE",
    "ROOTS",
    "MappedInput",
    "RootRef",
    "compile_path",
    "evaluate_mapping",
    "referenced_roots",
    "validate_mapping",
]

JSON_CONTENT_TYPE = "application/json"
# What a raw passthrough is sent as when the request's content type is unknown.
OCTET_STREAM = "application/octet-stream"

# The top-level names of the context a path may start with.
ROOTS: tuple[str, ...] = ("input", "steps", "metadata")

PATH_KEY = "$path"
BYTES_KEY = "$bytes"
RAW_KEY = "$raw"
PATH_OPTIONS = frozenset({"many", "default"})
BYTES_OPTIONS = frozenset({"content_type"})

# (root, name): name is the step for ("steps", ...) and None for "all of it" (the request, the
# metadata, or every step when a path does not name one).
RootRef = tuple[str, str | None]

# JSONPath node types a mapping may use. An allow-list rather than a deny-list: `parent`, `where`
# and `|` (union) can leave the root a path starts from (``$.steps.a.`parent`.b`` reads step b),
# which would defeat the registration-time check that a path only reads upstream steps.
_ALLOWED_NODES: tuple[type[JSONPath], ...] = (
    Root,
    This,
    Child,
    Descendants,
    Fields,
    Wildcard,
    Index,
    Slice,
    Filter,
    Expression,
    And,
    Or,
    Operation,
    Len,
    Keys,
)

# Marks "any depth" in a flattened path (the `..` of Descendants).
_ANY_DEPTH = object()
# Tells "no default given" apart from an explicit ``"default": null``.
_MISSING = object()


@dataclass(frozen=True)
class MappedInput:
    """The step input a mapping produced: the bytes to store and their content type."""

    body: bytes
    content_type: str


class _UnsupportedPathError(ValueError):
    """A path that parses but cannot be used in a mapping (bad root, disallowed operator)."""


@functools.lru_cache(maxsize=4096)
def compile_path(path: str) -> JSONPath:
    """Parse a JSONPath expression once; later calls with the same string return the same object.

    Parameters
    ----------
    path
        A JSONPath expression in ``jsonpath_ng.ext`` syntax, e.g. ``"$.steps.fraud.score"``.

    Returns
    -------
    JSONPath
        The compiled expression (shared between callers: treat it as read-only).

    Raises
    ------
    MappingError
        When the expression does not parse; the parser's message is in the error and in
        ``__cause__``. Failures are not cached (``lru_cache`` only stores results).
    """
    try:
        return parse(path)
    except Exception as error:  # the parser raises lexer, parser and plain ValueErrors alike
        raise MappingError(f"invalid JSONPath syntax: {error}", path=path) from error


def evaluate_mapping(
    mapping: Any,
    context: Mapping[str, Any],
    *,
    step: str,
    raw_input: bytes | None = None,
    raw_content_type: str | None = None,
) -> MappedInput:
    """Apply a step's mapping to its context and return the step input.

    Parameters
    ----------
    mapping
        The JSON template (any JSON value) from the ensemble's catalog entry.
    context
        ``{"input": <request JSON, or None if the request is not JSON>, "steps": {<name>:
        <output>}, "metadata": {...}}``. A fan-out step's output is a dict keyed by member service.
    step
        The name of the step being mapped; it is named in every error.
    raw_input
        The uploaded request bytes, needed only by ``{"$raw": "input"}``.
    raw_content_type
        The request's content type, returned with ``$raw`` (``application/octet-stream`` if None).

    Returns
    -------
    MappedInput
        For a JSON template, ``json.dumps`` of the result as ``application/json``; for ``$raw``
        the request bytes and content type; for ``$bytes`` the decoded bytes and the given type.

    Raises
    ------
    MappingError
        With ``step``, ``key`` (the location in the template, e.g. ``claim.amount`` or
        ``features[2]``) and ``path`` set, when a path does not parse, matches nothing without a
        default, matches several values without ``many``, or the template is malformed.
    """
    if isinstance(mapping, dict) and RAW_KEY in mapping:
        _check_raw(mapping, step)
        if raw_input is None:
            raise MappingError("'$raw' needs the request's uploaded object, which is not available", step=step)
        return MappedInput(body=raw_input, content_type=raw_content_type or OCTET_STREAM)
    if isinstance(mapping, dict) and BYTES_KEY in mapping:
        path, content_type = _bytes_options(mapping, step)
        encoded = _select(path, context, step=step, key=BYTES_KEY, many=False, default=_MISSING)
        return MappedInput(body=_decode_base64(encoded, step=step, path=path), content_type=content_type)
    value = _render(mapping, context, step, None)
    try:
        body = json.dumps(value, allow_nan=False).encode()
    except ValueError as error:  # NaN/Infinity are not JSON, and the model would reject them later
        raise MappingError(f"the mapped input is not valid JSON: {error}", step=step) from error
    return MappedInput(body=body, content_type=JSON_CONTENT_TYPE)


def referenced_roots(mapping: Any) -> set[RootRef]:
    """Which parts of the context a mapping reads, from each path's leading fields.

    Parameters
    ----------
    mapping
        The JSON template.

    Returns
    -------
    set of (root, name)
        e.g. ``{("input", None), ("steps", "fraud"), ("metadata", None)}``. ``("steps", None)``
        means "every step" (``$.steps``, ``$.steps.*``, ``$.steps..x``). ``$raw`` reads the
        request, so it contributes ``("input", None)``. Roots read inside filter expressions (e.g.
        ``[?(@.score > $.input.threshold)]``) count too.

    Raises
    ------
    MappingError
        When a path does not parse or cannot be analysed (see ``validate_mapping``).
    """
    if isinstance(mapping, dict) and RAW_KEY in mapping:
        _check_raw(mapping, None)
        return {("input", None)}
    roots: set[RootRef] = set()
    for key, path in _iter_paths(mapping, None):
        roots |= _roots(path, step=None, key=key)
    return roots


def validate_mapping(mapping: Any, step: str, available_steps: set[str]) -> None:
    """Check a mapping at registration, before any prediction runs it.

    Parameters
    ----------
    mapping
        The JSON template.
    step
        The step the mapping belongs to (named in errors).
    available_steps
        The steps that always finish before ``step`` starts (its ancestors in the DAG). Branches
        of one Parallel are not upstream of each other, and a step is not upstream of itself.

    Raises
    ------
    MappingError
        Naming step, key and path when a path does not parse; a path does not start with
        ``$.input``, ``$.steps`` or ``$.metadata``; a path uses ``parent``, ``where`` or ``|``; a
        path names a step not in ``available_steps``; a ``$path`` object has unknown or ill-typed
        options; ``$bytes``/``$raw`` is malformed or not the whole mapping.
    """
    if isinstance(mapping, dict) and RAW_KEY in mapping:
        _check_raw(mapping, step)
        return
    for key, path in _iter_paths(mapping, step):
        for root, name in _roots(path, step=step, key=key):
            # ("steps", None) reads every step the context holds; that is always upstream steps.
            if root == "steps" and name is not None and name not in available_steps:
                raise MappingError(f"step '{name}' is not upstream of step '{step}'", step=step, key=key, path=path)


# --- evaluation -------------------------------------------------------------------------------


def _render(template: Any, context: Mapping[str, Any], step: str, key: str | None) -> Any:
    """Replace the paths in a template by what they select; everything else is copied as is."""
    if isinstance(template, str):
        if template.startswith("$$"):
            return template[1:]
        if template.startswith("$"):
            return _select(template, context, step=step, key=key, many=False, default=_MISSING)
        return template
    if isinstance(template, dict):
        if PATH_KEY in template:
            path, many, default = _path_options(template, step, key)
            return _select(path, context, step=step, key=key, many=many, default=default)
        _reject_binary(template, step, key)
        return {name: _render(value, context, step, _child_key(key, name)) for name, value in template.items()}
    if isinstance(template, list):
        return [_render(value, context, step, f"{key or ''}[{index}]") for index, value in enumerate(template)]
    return template


def _select(path: str, context: Mapping[str, Any], *, step: str, key: str | None, many: bool, default: Any) -> Any:
    """The value(s) a path selects, applying the single/many rule and the default."""
    expression = _compiled(path, step=step, key=key)
    try:
        values = [match.value for match in expression.find(context)]
    except Exception as error:  # jsonpath_ng extensions can raise on unexpected value types
        raise MappingError(f"the path could not be evaluated: {error}", step=step, key=key, path=path) from error
    if not values and default is not _MISSING:
        return default
    if many:
        return values
    if len(values) == 1:
        return values[0]
    if not values:
        raise MappingError(_no_value_message(path, context), step=step, key=key, path=path)
    raise MappingError(
        f"the path matches {len(values)} values, a plain path must match exactly one; "
        f'write {{"$path": "{path}", "many": true}} to get them as a list',
        step=step,
        key=key,
        path=path,
    )


def _no_value_message(path: str, context: Mapping[str, Any]) -> str:
    message = 'no value at this path (give a "default" if it is optional)'
    if context.get("input") is None:
        try:
            reads_input = ("input", None) in _path_roots(path)
        except _UnsupportedPathError:
            reads_input = False
        if reads_input:
            # The commonest surprise: an image request has no JSON to select from.
            message += '; the request input is not JSON (pass it through with {"$raw": "input"})'
    return message


def _decode_base64(value: Any, *, step: str, path: str) -> bytes:
    if not isinstance(value, str):
        raise MappingError(
            f"'$bytes' needs a base64 string, the path selects {type(value).__name__}",
            step=step,
            key=BYTES_KEY,
            path=path,
        )
    try:
        # Encoders that wrap lines (MIME) insert newlines; they are not part of the data.
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError) as error:
        raise MappingError(
            f"'$bytes' value is not valid base64: {error}", step=step, key=BYTES_KEY, path=path
        ) from error


# --- template structure (shared by evaluation and validation) ---------------------------------


def _child_key(parent: str | None, name: str) -> str:
    return f"{parent}.{name}" if parent else name


def _compiled(path: str, *, step: str | None, key: str | None) -> JSONPath:
    """``compile_path`` with the step and key added to its error."""
    try:
        return compile_path(path)
    except MappingError as error:
        raise MappingError(
            f"invalid JSONPath syntax: {error.__cause__}", step=step, key=key, path=path
        ) from error.__cause__


def _path_options(template: dict[str, Any], step: str | None, key: str | None) -> tuple[str, bool, Any]:
    """Read and check a ``{"$path": ..., "many": ..., "default": ...}`` object."""
    path = template[PATH_KEY]
    unknown = sorted(set(template) - PATH_OPTIONS - {PATH_KEY})
    if unknown:
        raise MappingError(
            f"unknown option '{unknown[0]}' in a '$path' object (allowed: {', '.join(sorted(PATH_OPTIONS))})",
            step=step,
            key=key,
            path=path if isinstance(path, str) else None,
        )
    if not isinstance(path, str) or not path.startswith("$") or path.startswith("$$"):
        raise MappingError("'$path' must be a JSONPath string starting with '$'", step=step, key=key)
    many = template.get("many", False)
    if not isinstance(many, bool):
        raise MappingError("'many' must be true or false", step=step, key=key, path=path)
    return path, many, template.get("default", _MISSING)


def _bytes_options(template: dict[str, Any], step: str | None) -> tuple[str, str]:
    """Read and check a top-level ``{"$bytes": <path>, "content_type": ...}`` mapping."""
    path = template[BYTES_KEY]
    unknown = sorted(set(template) - BYTES_OPTIONS - {BYTES_KEY})
    if unknown:
        raise MappingError(
            f"unknown option '{unknown[0]}' in a '$bytes' mapping (allowed: content_type)",
            step=step,
            key=BYTES_KEY,
        )
    if not isinstance(path, str) or not path.startswith("$") or path.startswith("$$"):
        raise MappingError("'$bytes' must be a JSONPath string starting with '$'", step=step, key=BYTES_KEY)
    content_type = template.get("content_type")
    if not isinstance(content_type, str) or "/" not in content_type:
        raise MappingError("'$bytes' needs a 'content_type' such as \"image/png\"", step=step, key=BYTES_KEY, path=path)
    return path, content_type


def _check_raw(template: dict[str, Any], step: str | None) -> None:
    """``{"$raw": "input"}`` is the only raw form: the request is the only uploaded object."""
    if set(template) != {RAW_KEY} or template[RAW_KEY] != "input":
        raise MappingError('a raw passthrough is written exactly {"$raw": "input"}', step=step, key=RAW_KEY)


def _reject_binary(template: dict[str, Any], step: str | None, key: str | None) -> None:
    # Bytes cannot sit inside a JSON document, so the binary forms only make sense as the whole input.
    for reserved in (BYTES_KEY, RAW_KEY):
        if reserved in template:
            raise MappingError(f"'{reserved}' is only allowed as the whole mapping, not inside it", step=step, key=key)


def _iter_paths(mapping: Any, step: str | None) -> Iterator[tuple[str | None, str]]:
    """Yield (key, path) for every path in a template, checking its structure on the way."""
    if isinstance(mapping, dict) and BYTES_KEY in mapping:
        path, _ = _bytes_options(mapping, step)
        yield BYTES_KEY, path
        return
    yield from _walk(mapping, step, None)


def _walk(template: Any, step: str | None, key: str | None) -> Iterator[tuple[str | None, str]]:
    if isinstance(template, str):
        if template.startswith("$") and not template.startswith("$$"):
            yield key, template
    elif isinstance(template, dict):
        if PATH_KEY in template:
            path, _, _ = _path_options(template, step, key)
            yield key, path
            return
        _reject_binary(template, step, key)
        for name, value in template.items():
            yield from _walk(value, step, _child_key(key, name))
    elif isinstance(template, list):
        for index, value in enumerate(template):
            yield from _walk(value, step, f"{key or ''}[{index}]")


# --- static analysis of one path ----------------------------------------------------------------


def _roots(path: str, *, step: str | None, key: str | None) -> frozenset[RootRef]:
    _compiled(path, step=step, key=key)  # a syntax error is reported as such, not as "unsupported"
    try:
        return _path_roots(path)
    except _UnsupportedPathError as error:
        raise MappingError(str(error), step=step, key=key, path=path) from error


@functools.lru_cache(maxsize=4096)
def _path_roots(path: str) -> frozenset[RootRef]:
    """The (root, name) pairs one path reads; cached like ``compile_path``."""
    found: set[RootRef] = set()
    _collect(compile_path(path), found, top_level=True)
    return frozenset(found)


def _flatten(node: JSONPath) -> list[Any]:
    """A Child/Descendants tree as its list of segments, ``_ANY_DEPTH`` standing for ``..``."""
    if isinstance(node, Child):
        return _flatten(node.left) + _flatten(node.right)
    if isinstance(node, Descendants):
        return [*_flatten(node.left), _ANY_DEPTH, *_flatten(node.right)]
    return [node]


def _sub_expressions(node: JSONPath) -> Iterator[JSONPath]:
    """The JSONPath operands inside one node (filter expressions, arithmetic sides, ...)."""
    # Generic over attributes so that new jsonpath_ng node shapes are still searched for `$`.
    pending: list[Any] = list(vars(node).values())
    while pending:
        value = pending.pop()
        if isinstance(value, JSONPath):
            yield value
        elif isinstance(value, list | tuple):
            pending.extend(value)


def _collect(node: JSONPath, found: set[RootRef], *, top_level: bool) -> None:
    """Add the roots read by ``node``, and by every ``$``-anchored path nested inside it."""
    segments = _flatten(node)
    head = segments[0]
    if isinstance(head, Root):
        found.update(_anchored_roots(segments))
    elif top_level and not isinstance(head, Operation):
        raise _UnsupportedPathError("a path must start with $.input, $.steps or $.metadata")
    for position, segment in enumerate(segments):
        if segment is _ANY_DEPTH:
            continue
        if not isinstance(segment, _ALLOWED_NODES):
            operator = type(segment).__name__.lstrip("_").lower()
            raise _UnsupportedPathError(
                f"the JSONPath operator '{operator}' is not supported in mappings "
                "(it can read outside the root the path starts from)"
            )
        if isinstance(segment, Root) and position > 0:
            raise _UnsupportedPathError("'$' may only start a path")
        for inner in _sub_expressions(segment):
            _collect(inner, found, top_level=False)


def _anchored_roots(segments: list[Any]) -> set[RootRef]:
    """Roots of a ``$``-anchored segment list: its first field, and for steps its second."""
    first = segments[1] if len(segments) > 1 else None
    if not isinstance(first, Fields) or not first.fields or not set(first.fields) <= set(ROOTS):
        raise _UnsupportedPathError("a path must start with $.input, $.steps or $.metadata")
    second = segments[2] if len(segments) > 2 else None
    # A named step ($.steps.fraud, $.steps['fraud'], $['steps']['a','b']); anything else after
    # $.steps (nothing, *, .., a filter, an index) may read any step. Older jsonpath-ng releases
    # spelled the wildcard Fields('*'), so that counts as "any step" too (the safe reading).
    names: tuple[str | None, ...] = (
        tuple(second.fields) if isinstance(second, Fields) and "*" not in second.fields else (None,)
    )
    roots: set[RootRef] = set()
    for root in first.fields:
        if root == "steps":
            roots.update(("steps", name) for name in names)
        else:
            roots.add((root, None))
    return roots

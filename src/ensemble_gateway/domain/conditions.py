"""The ``when`` language of declarative ensembles: whether a step runs, from what ran before it.

A condition is a JSON object:

- a *test* ``{"path": P, OP: V}`` with OP one of ``equals``, ``not_equals``, ``in`` (V a list),
  ``greater_than``, ``greater_or_equal``, ``less_than``, ``less_or_equal`` (V a number or a string)
  and ``exists`` (V true or false);
- ``{"all": [c, ...]}``, ``{"any": [c, ...]}`` (non-empty lists) and ``{"not": c}``.

P is a JSONPath over the *scope* the mappings read, ``{"input": <request>, "steps": {<name>:
<output>}, "metadata": {...}}``, starting with ``$.input``, ``$.steps.<name>`` or ``$.metadata``.
Paths are compiled with ``mapping.compile_path``, whose cache every evaluation shares.

How a test is decided (a missing value is an answer, never an error):

- ``exists: true`` holds when P selects at least one value; ``exists: false`` when it selects none.
- Every other operator is a *comparison*. It holds only when P selects exactly one value and that
  value compares as asked. A path that selects nothing (a missing key, a skipped step without a
  default) or several values (a wildcard, a filter) makes every comparison false: ``not_equals``
  too, so ``{"path": P, "not_equals": V}`` means "P is there and is not V". Write
  ``{"not": {"path": P, "equals": V}}`` for "P is not V, or is missing".
- Types are not converted: a number compares with a number (``true`` and ``false`` are not
  numbers), a string with a string (by Unicode code points). A comparison between other types, or
  between a number and a string, is false. ``equals`` compares JSON values (objects and lists
  deeply, ``1`` equal to ``1.0``, ``true`` not equal to ``1``); ``in`` holds when the value
  ``equals`` one of the list's items.

The module is pure: no boto3, no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import CatalogValidationError, MappingError
from .mapping import compile_path, referenced_roots

__all__ = [
    "COMBINATORS",
    "OPERATORS",
    "AllOf",
    "AnyOf",
    "Comparison",
    "Condition",
    "Not",
    "condition_paths",
    "describe_condition",
    "evaluate",
    "parse_condition",
]

ORDERING_OPERATORS = ("greater_than", "greater_or_equal", "less_than", "less_or_equal")
OPERATORS: tuple[str, ...] = ("equals", "not_equals", "in", *ORDERING_OPERATORS, "exists")
COMBINATORS: tuple[str, ...] = ("all", "any", "not")

# How describe_condition writes each operator.
_SYMBOLS = {
    "equals": "==",
    "not_equals": "!=",
    "in": "in",
    "greater_than": ">",
    "greater_or_equal": ">=",
    "less_than": "<",
    "less_or_equal": "<=",
}
_EXAMPLE = '{"path": "$.steps.<name>.<field>", "equals": <value>}'


@dataclass(frozen=True)
class Comparison:
    """A test of the value at ``path``: ``operator`` (one of OPERATORS) against ``value``."""

    path: str
    operator: str
    value: Any


@dataclass(frozen=True)
class AllOf:
    """Holds when every condition holds (``all``)."""

    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    """Holds when at least one condition holds (``any``)."""

    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    """Holds when the condition does not (``not``)."""

    condition: Condition


Condition = Comparison | AllOf | AnyOf | Not


# --- parsing ------------------------------------------------------------------------------------


def parse_condition(raw: Any, *, step: str) -> Condition:
    """Read and check a step's ``when``.

    Parameters
    ----------
    raw
        The ``when`` object from the catalog entry.
    step
        The step it belongs to (named in every error).

    Returns
    -------
    Condition
        The parsed condition, ready for :func:`evaluate`.

    Raises
    ------
    CatalogValidationError
        ``step '<step>': when: ...`` naming what is wrong: not an object, an unknown operator (the
        known ones listed), two operators in one test, a test without an operator, ``in`` without
        a list, an ordering comparison against something that is not a number or a string,
        ``exists`` without true/false, an empty ``all``/``any``, a path that does not parse or does
        not start with ``$.input``, ``$.steps.<name>`` or ``$.metadata``.
    """
    return _parse(raw, step, "when")


def _fail(step: str, where: str, message: str) -> CatalogValidationError:
    return CatalogValidationError(f"step '{step}': {where}: {message}")


def _parse(raw: Any, step: str, where: str) -> Condition:
    if not isinstance(raw, Mapping):
        raise _fail(step, where, f"a condition is an object such as {_EXAMPLE}, not {_json(raw)}")
    combinators = [key for key in COMBINATORS if key in raw]
    if combinators:
        if len(raw) != 1:
            others = ", ".join(f"'{key}'" for key in raw if key != combinators[0])
            raise _fail(
                step,
                where,
                f"'{combinators[0]}' must be alone in its object (found also {others}); "
                'nest the other tests inside it, e.g. {"all": [...]}',
            )
        return _parse_combinator(combinators[0], raw[combinators[0]], step, where)
    return _parse_test(raw, step, where)


def _parse_combinator(key: str, value: Any, step: str, where: str) -> Condition:
    inner_where = f"{where}.{key}"
    if key == "not":
        return Not(_parse(value, step, inner_where))
    if not isinstance(value, list) or not value:
        raise _fail(step, where, f"'{key}' needs a non-empty list of conditions")
    parsed = tuple(_parse(item, step, f"{inner_where}[{index}]") for index, item in enumerate(value))
    return AllOf(parsed) if key == "all" else AnyOf(parsed)


def _parse_test(raw: Mapping[str, Any], step: str, where: str) -> Comparison:
    unknown = [key for key in raw if key != "path" and key not in OPERATORS]
    if unknown:
        raise _fail(
            step,
            where,
            f"unknown operator '{unknown[0]}'; operators are: {', '.join(OPERATORS)} "
            f"(and {', '.join(COMBINATORS)} to combine tests)",
        )
    operators = [key for key in raw if key in OPERATORS]
    if len(operators) > 1:
        raise _fail(
            step,
            where,
            f"two operators in one test ('{operators[0]}' and '{operators[1]}'); "
            'combine tests with {"all": [...]} or {"any": [...]}',
        )
    if not operators:
        raise _fail(step, where, f"a test needs an operator, one of: {', '.join(OPERATORS)}")
    if "path" not in raw:
        raise _fail(step, where, f"a test needs a 'path', e.g. {_EXAMPLE}")
    operator = operators[0]
    path = _check_path(raw["path"], step, where)
    value = raw[operator]
    if operator == "in" and not isinstance(value, list):
        raise _fail(step, where, f"'in' needs a list of values, not {_json(value)}")
    if operator == "exists" and not isinstance(value, bool):
        raise _fail(step, where, f"'exists' needs true or false, not {_json(value)}")
    if operator in ORDERING_OPERATORS and not (_is_number(value) or isinstance(value, str)):
        raise _fail(step, where, f"'{operator}' compares with a number or a string, not {_json(value)}")
    return Comparison(path=path, operator=operator, value=value)


def _check_path(path: Any, step: str, where: str) -> str:
    if not isinstance(path, str) or not path.startswith("$") or path.startswith("$$"):
        raise _fail(step, where, f"'path' must be a JSONPath string starting with '$', not {_json(path)}")
    try:
        roots = referenced_roots(path)  # parses (through compile_path's cache) and checks the root
    except MappingError as error:
        raise _fail(step, where, error.message) from None  # MappingError names the path
    if ("steps", None) in roots:
        # A condition on "whatever steps have finished" would depend on timing: name the step.
        raise _fail(step, where, f"path '{path}' must name the step it reads ($.steps.<name>...)")
    return path


def _json(value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


# --- reading -------------------------------------------------------------------------------------


def condition_paths(condition: Condition) -> list[str]:
    """Every path a condition reads, in the order written (repeats kept once).

    Parameters
    ----------
    condition
        A parsed condition.

    Returns
    -------
    list of str
        The paths, e.g. to find which steps the condition depends on (``mapping.referenced_roots``
        accepts the list as a template).
    """
    found: list[str] = []

    def visit(node: Condition) -> None:
        if isinstance(node, Comparison):
            if node.path not in found:
                found.append(node.path)
        elif isinstance(node, Not):
            visit(node.condition)
        else:
            for inner in node.conditions:
                visit(inner)

    visit(condition)
    return found


def describe_condition(condition: Condition) -> str:
    """The condition in one short line, e.g. ``$.steps.decision.decision == "refer"``.

    Parameters
    ----------
    condition
        A parsed condition.

    Returns
    -------
    str
        Tests as ``P == V``, ``P in [...]``, ``P exists``; ``all``/``any``/``not`` as ``and``,
        ``or`` and ``not`` with parentheses.
    """
    if isinstance(condition, Comparison):
        if condition.operator == "exists":
            return f"{condition.path} {'exists' if condition.value else 'is missing'}"
        return f"{condition.path} {_SYMBOLS[condition.operator]} {_json(condition.value)}"
    if isinstance(condition, Not):
        return f"not ({describe_condition(condition.condition)})"
    joiner = " and " if isinstance(condition, AllOf) else " or "
    parts = [describe_condition(inner) for inner in condition.conditions]
    return parts[0] if len(parts) == 1 else "(" + joiner.join(parts) + ")"


# --- evaluation ----------------------------------------------------------------------------------


def evaluate(condition: Condition, scope: Mapping[str, Any]) -> bool:
    """Whether a condition holds over ``scope`` (see the module docstring for the rules).

    Parameters
    ----------
    condition
        A parsed condition.
    scope
        ``{"input": ..., "steps": {<name>: <output>}, "metadata": {...}}``.

    Returns
    -------
    bool
        Never raises for missing or unexpected data: such a comparison is false.
    """
    if isinstance(condition, Comparison):
        return _test(condition, scope)
    if isinstance(condition, Not):
        return not evaluate(condition.condition, scope)
    if isinstance(condition, AllOf):
        return all(evaluate(inner, scope) for inner in condition.conditions)
    return any(evaluate(inner, scope) for inner in condition.conditions)


def _test(test: Comparison, scope: Mapping[str, Any]) -> bool:
    try:
        values = [match.value for match in compile_path(test.path).find(scope)]
    except Exception:  # a filter over unexpected types raises inside jsonpath_ng: nothing selected
        values = []
    if test.operator == "exists":
        return bool(values) is test.value
    if len(values) != 1:
        return False
    value = values[0]
    if test.operator == "equals":
        return _json_equal(value, test.value)
    if test.operator == "not_equals":
        return not _json_equal(value, test.value)
    if test.operator == "in":
        return any(_json_equal(value, item) for item in test.value)
    return _ordered(value, test.operator, test.value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _ordered(left: Any, operator: str, right: Any) -> bool:
    comparable = (_is_number(left) and _is_number(right)) or (isinstance(left, str) and isinstance(right, str))
    if not comparable:
        return False
    if operator == "greater_than":
        return bool(left > right)
    if operator == "greater_or_equal":
        return bool(left >= right)
    if operator == "less_than":
        return bool(left < right)
    return bool(left <= right)


def _json_equal(left: Any, right: Any) -> bool:
    """JSON equality: Python's, except that a boolean is never equal to a number."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left is right
    if _is_number(left) and _is_number(right):
        return bool(left == right)
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return left.keys() == right.keys() and all(_json_equal(left[key], right[key]) for key in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(_json_equal(a, b) for a, b in zip(left, right, strict=True))
    return type(left) is type(right) and bool(left == right)

"""Strict request bodies: what the API refuses before parsing, with a message, never a 5xx."""

from __future__ import annotations

import json

import pytest

from ensemble_gateway.domain.errors import InvalidRequestError
from ensemble_gateway.domain.request_json import (
    MAX_NESTING_DEPTH,
    RequestBodyError,
    check_idempotency_key,
    nesting_depth_exceeds,
    parse_request_json,
)


@pytest.mark.parametrize("depth", [MAX_NESTING_DEPTH + 1, 1_000, 100_000])
def test_a_body_nested_deeper_than_the_limit_is_refused_without_recursing(depth: int) -> None:
    # GIVEN arrays nested far deeper than Python's recursion limit allows to parse
    text = "[" * depth + "]" * depth
    # WHEN / THEN it is refused with the limit named, not a RecursionError
    with pytest.raises(RequestBodyError, match=f"deeper than {MAX_NESTING_DEPTH} levels"):
        parse_request_json(text)


def test_a_body_at_the_limit_parses() -> None:
    # GIVEN objects nested exactly MAX_NESTING_DEPTH deep
    text = '{"a":' * MAX_NESTING_DEPTH + "1" + "}" * MAX_NESTING_DEPTH
    # WHEN / THEN it parses to the same document as the standard parser gives
    assert parse_request_json(text) == json.loads(text)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    # GIVEN a shallow document whose strings hold brackets and escaped quotes
    text = json.dumps({"note": "[" * 500 + '\\" {{{', "list": ["]]]", "[["]})
    # THEN its depth is its structure's (2), not its characters'
    assert not nesting_depth_exceeds(text, 2)
    assert nesting_depth_exceeds(text, 1)
    assert parse_request_json(text)["note"].startswith("[[[")


def test_a_duplicate_key_is_refused_naming_it_at_any_depth() -> None:
    # WHEN / THEN a repeated key is refused, top level or nested
    with pytest.raises(RequestBodyError, match="'service' twice"):
        parse_request_json('{"service": "a", "service": "b"}')
    with pytest.raises(RequestBodyError, match="'url' twice"):
        parse_request_json('{"notification": {"webhook": {"url": "x", "url": "y"}}}')
    # AND the same key in two different objects is fine
    assert parse_request_json('[{"a": 1}, {"a": 2}]') == [{"a": 1}, {"a": 2}]


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("k" * 256, "256 characters long; at most 255"),
        ("k" * 200_000, "200000 characters long"),
        ("has space", "visible ASCII"),
        ("clé", "visible ASCII"),
        ("tab\there", "visible ASCII"),
    ],
)
def test_an_unacceptable_idempotency_key_is_refused_with_the_rule(key: str, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        check_idempotency_key(key)


def test_an_idempotency_key_of_255_visible_characters_is_accepted() -> None:
    key = ("0123456789abcdef-_.~!" * 13)[:255]
    assert check_idempotency_key(key) == key

"""The input-mapping DSL: evaluation, errors, binary forms and registration-time validation."""

from __future__ import annotations

import base64
import json
import re
import struct
import zlib
from typing import Any

import pytest

from ensemble_gateway.domain.errors import MappingError
from ensemble_gateway.domain.mapping import (
    MappedInput,
    compile_path,
    evaluate_mapping,
    referenced_roots,
    validate_mapping,
)


def context(input_: Any = None, steps: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None):
    return {"input": input_, "steps": steps or {}, "metadata": metadata or {}}


CLAIM = {"claim": {"amount": 1200.5, "vehicle_value": 9000, "features": [0.1, 0.2, 0.3], "tags": []}}
# A fan-out step's output: one entry per member service.
CLASSIFY = {
    "model-a": {"label": "billing", "confidence": 0.9},
    "model-b": {"label": "fraud", "confidence": 0.2},
    "model-c": {"label": "delivery", "confidence": 0.7},
}
CTX = context(
    CLAIM,
    steps={"fraud": {"fraud_probability": 0.12}, "classify": CLASSIFY},
    metadata={"channel": "web"},
)


def json_of(result: MappedInput) -> Any:
    assert result.content_type == "application/json"
    return json.loads(result.body)


def tiny_png() -> bytes:
    """A valid 1x1 grey PNG, built by hand so that the test needs no image library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\x80")) + chunk(b"IEND", b"")
    )


# --- literals and templates ---------------------------------------------------------------------


def test_literals_pass_through_unchanged():
    # GIVEN a template with no paths at all
    template = {"s": "plain", "n": 3, "f": 1.5, "b": True, "z": None, "l": [1, "two", {"x": False}]}
    # WHEN it is evaluated
    result = evaluate_mapping(template, CTX, step="s1")
    # THEN the step input is the template itself, as JSON
    assert json_of(result) == template


def test_scalar_literal_as_whole_mapping():
    # GIVEN a mapping that is a single literal number
    # WHEN it is evaluated
    result = evaluate_mapping(42, CTX, step="s1")
    # THEN the body is that number
    assert result.body == b"42"


def test_nested_template_replaces_paths_at_every_depth():
    # GIVEN paths inside nested dicts and lists
    template = {
        "claim": {"amount": "$.input.claim.amount", "source": "$.metadata.channel"},
        "features": ["$.input.claim.features[0]", "$.steps.fraud.fraud_probability", 7],
    }
    # WHEN it is evaluated
    result = json_of(evaluate_mapping(template, CTX, step="s1"))
    # THEN each path is replaced by its value and literals stay
    assert result == {"claim": {"amount": 1200.5, "source": "web"}, "features": [0.1, 0.12, 7]}


def test_body_is_json_dumps_of_the_result():
    # GIVEN a template selecting a whole object
    # WHEN it is evaluated
    result = evaluate_mapping({"claim": "$.input.claim"}, CTX, step="s1")
    # THEN the body is exactly json.dumps of the rendered template
    assert result.body == json.dumps({"claim": CLAIM["claim"]}).encode()


def test_double_dollar_is_a_literal_with_one_dollar_removed():
    # GIVEN strings escaped with $$
    template = {"offer": "$$5 off", "path_text": "$$.input.claim", "twice": "$$$x"}
    # WHEN evaluated
    result = json_of(evaluate_mapping(template, CTX, step="s1"))
    # THEN exactly one leading $ is removed and nothing is looked up
    assert result == {"offer": "$5 off", "path_text": "$.input.claim", "twice": "$$x"}


# --- single, many, default ------------------------------------------------------------------------


def test_plain_path_selects_one_value():
    # GIVEN a path to one value
    # WHEN evaluated as the whole mapping
    result = json_of(evaluate_mapping("$.steps.fraud.fraud_probability", CTX, step="s1"))
    # THEN the value itself (not a list) is the input
    assert result == 0.12


def test_plain_path_matching_several_values_is_an_error_suggesting_many():
    # GIVEN a plain path that matches three values
    # WHEN evaluated
    with pytest.raises(MappingError) as raised:
        evaluate_mapping({"labels": "$.steps.classify.*.label"}, CTX, step="triage")
    # THEN the error names step, key and path and tells the author to use many
    error = raised.value
    assert (error.step, error.key, error.path) == ("triage", "labels", "$.steps.classify.*.label")
    assert "matches 3 values" in error.message
    assert '"many": true' in error.message


def test_plain_path_matching_nothing_is_an_error_naming_step_key_and_path():
    # GIVEN a path to a value the context does not have
    template = {"claim": {"amount": "$.input.claim.total"}}
    # WHEN evaluated
    with pytest.raises(MappingError) as raised:
        evaluate_mapping(template, CTX, step="decision")
    # THEN the error says "no value" and locates the problem
    error = raised.value
    assert error.step == "decision"
    assert error.key == "claim.amount"
    assert error.path == "$.input.claim.total"
    assert "no value" in error.message
    assert error.message.startswith("step 'decision', key 'claim.amount', path '$.input.claim.total': ")
    assert error.http_status == 400


def test_error_key_locates_list_items():
    # GIVEN a missing value inside a list
    template = {"features": [1, 2, "$.input.claim.missing"]}
    # WHEN evaluated
    with pytest.raises(MappingError) as raised:
        evaluate_mapping(template, CTX, step="s1")
    # THEN the key uses [index]
    assert raised.value.key == "features[2]"


def test_missing_value_on_non_json_input_hints_at_raw():
    # GIVEN a request whose input is not JSON (input is None)
    ctx = context(None)
    # WHEN a mapping reads the input
    with pytest.raises(MappingError) as raised:
        evaluate_mapping({"x": "$.input.image"}, ctx, step="s1")
    # THEN the error explains why and suggests $raw
    assert "not JSON" in raised.value.message
    assert '"$raw"' in raised.value.message


def test_default_is_used_only_when_nothing_matches():
    # GIVEN two optional values, one present and one absent, plus an explicit null default
    template = {
        "severity": {"$path": "$.steps.severity.severity", "default": "minor"},
        "fraud": {"$path": "$.steps.fraud.fraud_probability", "default": 1.0},
        "note": {"$path": "$.input.note", "default": None},
    }
    # WHEN evaluated
    result = json_of(evaluate_mapping(template, CTX, step="decision"))
    # THEN the absent value takes its default and the present one keeps its value
    assert result == {"severity": "minor", "fraud": 0.12, "note": None}


def test_many_returns_a_list_of_all_matches():
    # GIVEN the object form with many
    template = {"labels": {"$path": "$.steps.classify.*.label", "many": True}}
    # WHEN evaluated
    result = json_of(evaluate_mapping(template, CTX, step="vote"))
    # THEN every match is in the list, in the order of the fan-out output
    assert result == {"labels": ["billing", "fraud", "delivery"]}


def test_many_returns_a_list_even_for_one_match():
    # GIVEN many over a path with a single match
    template = {"$path": "$.steps.fraud.fraud_probability", "many": True}
    # WHEN evaluated
    # THEN the value comes wrapped in a list
    assert json_of(evaluate_mapping(template, CTX, step="s1")) == [0.12]


def test_many_with_no_match_is_an_empty_list():
    # GIVEN many over a path that matches nothing, and no default
    template = {"tags": {"$path": "$.input.claim.tags[*]", "many": True}}
    # WHEN evaluated
    # THEN the result is an empty list, not an error
    assert json_of(evaluate_mapping(template, CTX, step="s1")) == {"tags": []}


def test_many_with_default_uses_the_default_when_nothing_matches():
    # GIVEN many plus a default
    template = {"$path": "$.steps.absent.*", "many": True, "default": ["none"]}
    # WHEN evaluated
    # THEN the default replaces the empty list
    assert json_of(evaluate_mapping(template, CTX, step="s1")) == ["none"]


def test_unknown_option_in_path_object_is_an_error_naming_it():
    # GIVEN a "$path" object with a misspelt option
    template = {"x": {"$path": "$.input.claim.amount", "defualt": 0}}
    # WHEN evaluated
    with pytest.raises(MappingError) as raised:
        evaluate_mapping(template, CTX, step="s1")
    # THEN the error names the unknown option and the key
    assert "'defualt'" in raised.value.message
    assert raised.value.key == "x"


def test_many_must_be_a_boolean():
    # GIVEN "many" given as a string
    # WHEN evaluated
    with pytest.raises(MappingError, match="'many' must be true or false"):
        evaluate_mapping({"$path": "$.input", "many": "yes"}, CTX, step="s1")
    # THEN it is refused rather than read as truthy


# --- filters and fan-out ------------------------------------------------------------------------


def test_filter_on_fan_out_dict_selects_members_by_value():
    # GIVEN a filter applied directly to the fan-out dict (jsonpath_ng.ext filters iterate a dict's values)
    template = {"$path": "$.steps.classify[?(@.confidence > 0.5)].label", "many": True}
    # WHEN evaluated
    # THEN only the members above the threshold are selected
    assert json_of(evaluate_mapping(template, CTX, step="route")) == ["billing", "delivery"]


def test_filter_with_and_and_string_equality():
    # GIVEN a filter combining two conditions with &&
    template = "$.steps.classify[?(@.confidence < 0.8 && @.label == 'delivery')].confidence"
    # WHEN evaluated
    # THEN the single member meeting both is selected
    assert json_of(evaluate_mapping(template, CTX, step="route")) == 0.7


def test_filter_can_compare_with_a_value_from_the_request():
    # GIVEN a threshold that comes from the request input
    ctx = context({"threshold": 0.8}, steps={"classify": CLASSIFY})
    template = {"$path": "$.steps.classify[?(@.confidence > $.input.threshold)].label", "many": True}
    # WHEN evaluated
    # THEN the filter uses the request's threshold
    assert json_of(evaluate_mapping(template, ctx, step="route")) == ["billing"]


def test_fan_out_member_selected_by_service_name():
    # GIVEN service names with hyphens as keys of a fan-out output
    template = {"a": "$.steps.classify['model-a'].label", "c": "$.steps.classify.model-c.confidence"}
    # WHEN evaluated
    # THEN both the bracket and the dotted form select the member
    assert json_of(evaluate_mapping(template, CTX, step="vote")) == {"a": "billing", "c": 0.7}


def test_fan_out_whole_output_is_a_dict_keyed_by_member():
    # GIVEN a path to the whole fan-out step
    # WHEN evaluated
    # THEN the dict keyed by member service comes through intact
    assert json_of(evaluate_mapping({"all": "$.steps.classify"}, CTX, step="vote")) == {"all": CLASSIFY}


# --- binary ---------------------------------------------------------------------------------------


def test_bytes_decodes_base64_into_raw_bytes_with_the_given_content_type():
    # GIVEN an earlier step that returned a PNG as base64
    png = tiny_png()
    ctx = context({"id": 1}, steps={"crop": {"image": base64.b64encode(png).decode()}})
    # WHEN the whole mapping is a $bytes form
    result = evaluate_mapping({"$bytes": "$.steps.crop.image", "content_type": "image/png"}, ctx, step="ocr")
    # THEN the step input is the decoded PNG, byte for byte
    assert result == MappedInput(body=png, content_type="image/png")
    assert result.body.startswith(b"\x89PNG\r\n\x1a\n")


def test_bytes_accepts_line_wrapped_base64():
    # GIVEN base64 wrapped at 76 characters, as MIME encoders do
    png = tiny_png()
    ctx = context(steps={"crop": {"image": base64.encodebytes(png).decode()}})
    # WHEN decoded
    result = evaluate_mapping({"$bytes": "$.steps.crop.image", "content_type": "image/png"}, ctx, step="ocr")
    # THEN the newlines are ignored
    assert result.body == png


def test_bytes_rejects_invalid_base64():
    # GIVEN a value that is not base64
    ctx = context(steps={"crop": {"image": "not*base64!"}})
    # WHEN decoded
    with pytest.raises(MappingError) as raised:
        evaluate_mapping({"$bytes": "$.steps.crop.image", "content_type": "image/png"}, ctx, step="ocr")
    # THEN the error says so and names the path
    assert "not valid base64" in raised.value.message
    assert raised.value.path == "$.steps.crop.image"


def test_bytes_needs_a_content_type():
    # GIVEN a $bytes mapping without content_type
    # WHEN evaluated
    with pytest.raises(MappingError, match="content_type"):
        evaluate_mapping({"$bytes": "$.steps.crop.image"}, CTX, step="ocr")
    # THEN it is refused


def test_bytes_inside_a_template_is_an_error():
    # GIVEN $bytes nested inside a JSON template
    template = {"image": {"$bytes": "$.steps.crop.image", "content_type": "image/png"}}
    # WHEN evaluated
    with pytest.raises(MappingError) as raised:
        evaluate_mapping(template, CTX, step="ocr")
    # THEN the error says it must be the whole mapping
    assert "whole mapping" in raised.value.message
    assert raised.value.key == "image"


def test_raw_passes_the_upload_through_unchanged():
    # GIVEN an uploaded JPEG-like body and its content type
    raw = b"\xff\xd8\xff\xe0 not json \x00\x01"
    # WHEN the mapping is {"$raw": "input"}
    result = evaluate_mapping(
        {"$raw": "input"}, context(None), step="detect", raw_input=raw, raw_content_type="image/jpeg"
    )
    # THEN the same bytes and content type come out
    assert result == MappedInput(body=raw, content_type="image/jpeg")


def test_raw_without_the_upload_is_an_error():
    # GIVEN no raw input passed to evaluate
    # WHEN the mapping asks for it
    with pytest.raises(MappingError, match="uploaded object"):
        evaluate_mapping({"$raw": "input"}, CTX, step="detect")
    # THEN the error is explicit instead of sending an empty body


def test_raw_only_accepts_input():
    # GIVEN a $raw naming something other than the request
    # WHEN evaluated
    with pytest.raises(MappingError, match=re.escape('exactly {"$raw": "input"}')):
        evaluate_mapping({"$raw": "steps.fraud"}, CTX, step="s1", raw_input=b"x")
    # THEN it is refused


# --- syntax and the compile cache ---------------------------------------------------------------


def test_invalid_syntax_is_a_mapping_error_naming_key_and_path():
    # GIVEN a path that does not parse
    template = {"claim": {"amount": "$.input.claim["}}
    # WHEN evaluated
    with pytest.raises(MappingError) as raised:
        evaluate_mapping(template, CTX, step="s1")
    # THEN the error is a MappingError naming key and path
    assert (raised.value.key, raised.value.path) == ("claim.amount", "$.input.claim[")
    assert "invalid JSONPath syntax" in raised.value.message


def test_compile_path_returns_the_cached_object():
    # GIVEN a path compiled once
    first = compile_path("$.steps.cache_probe_one.value")
    # WHEN it is compiled again
    second = compile_path("$.steps.cache_probe_one.value")
    # THEN the very same object comes back
    assert first is second


def test_evaluation_uses_the_compile_cache():
    # GIVEN a mapping evaluated once (its paths are now compiled)
    template = {"a": "$.input.claim.amount", "b": "$.metadata.channel"}
    evaluate_mapping(template, CTX, step="s1")
    before = compile_path.cache_info()
    # WHEN it is evaluated again
    evaluate_mapping(template, CTX, step="s1")
    after = compile_path.cache_info()
    # THEN both paths are cache hits and nothing new was parsed
    assert after.hits - before.hits == 2
    assert after.misses == before.misses


# --- registration-time validation ---------------------------------------------------------------

DECISION = {
    "fraud_probability": "$.steps.fraud.fraud_probability",
    "estimated_repair_cost": "$.steps.cost.estimated_repair_cost",
    "severity": {"$path": "$.steps.severity.severity", "default": "minor"},
    "vehicle_value": "$.input.claim.vehicle_value",
}


def test_valid_mapping_passes_validation():
    # GIVEN a mapping that only reads the request and upstream steps
    # WHEN validated with those steps upstream
    # THEN nothing is raised
    validate_mapping(DECISION, "decision", {"fraud", "cost", "severity"})


def test_path_to_a_step_that_is_not_upstream_is_refused():
    # GIVEN the decision mapping, but "cost" is not upstream (say it is a parallel branch)
    # WHEN validated
    with pytest.raises(MappingError) as raised:
        validate_mapping(DECISION, "decision", {"fraud", "severity"})
    # THEN the error names both steps, the key and the path
    error = raised.value
    assert "step 'cost' is not upstream of step 'decision'" in error.message
    assert (error.step, error.key, error.path) == (
        "decision",
        "estimated_repair_cost",
        "$.steps.cost.estimated_repair_cost",
    )


def test_a_step_cannot_read_itself():
    # GIVEN a mapping reading its own step
    # WHEN validated
    with pytest.raises(MappingError, match="step 'fraud' is not upstream of step 'fraud'"):
        validate_mapping({"x": "$.steps.fraud.score"}, "fraud", {"cost"})
    # THEN it is refused


def test_step_read_inside_a_filter_is_checked_too():
    # GIVEN a filter comparing with a value from a step that is not upstream
    mapping = {"$path": "$.steps.classify[?(@.confidence > $.steps.tune.threshold)]", "many": True}
    # WHEN validated
    with pytest.raises(MappingError, match="step 'tune' is not upstream"):
        validate_mapping(mapping, "route", {"classify"})
    # THEN the nested reference is caught


@pytest.mark.parametrize("path", ["$.request.claim", "$.claim.amount", "$", "$..amount", "$.*"])
def test_unknown_root_is_refused(path):
    # GIVEN a path that does not start with input, steps or metadata
    # WHEN validated
    with pytest.raises(MappingError) as raised:
        validate_mapping({"x": path}, "s1", set())
    # THEN the error says which roots are allowed
    assert "$.input, $.steps or $.metadata" in raised.value.message
    assert raised.value.path == path


def test_parent_operator_is_refused():
    # GIVEN a path that climbs out of an allowed step into another one
    # WHEN validated
    with pytest.raises(MappingError, match="'parent' is not supported"):
        validate_mapping({"x": "$.steps.fraud.`parent`.cost"}, "decision", {"fraud"})
    # THEN it is refused: the upstream check could not see the step it reads


def test_invalid_syntax_is_refused_at_validation():
    # GIVEN a path with a syntax error
    # WHEN validated
    with pytest.raises(MappingError) as raised:
        validate_mapping({"items": ["$.input.a", "$.input.b."]}, "s1", set())
    # THEN the error names the key and the path
    assert (raised.value.key, raised.value.path) == ("items[1]", "$.input.b.")
    assert "invalid JSONPath syntax" in raised.value.message


def test_unknown_option_is_refused_at_validation():
    # GIVEN a "$path" object with an option that does not exist
    # WHEN validated
    with pytest.raises(MappingError) as raised:
        validate_mapping({"x": {"$path": "$.input.a", "many": True, "flatten": True}}, "s1", set())
    # THEN the error names the option
    assert "unknown option 'flatten'" in raised.value.message
    assert raised.value.key == "x"


@pytest.mark.parametrize(
    "mapping",
    [
        {"image": {"$bytes": "$.input.image", "content_type": "image/png"}},
        [{"$raw": "input"}],
    ],
)
def test_binary_forms_below_top_level_are_refused(mapping):
    # GIVEN $bytes or $raw nested in a template
    # WHEN validated
    with pytest.raises(MappingError, match="only allowed as the whole mapping"):
        validate_mapping(mapping, "s1", set())
    # THEN it is refused


def test_binary_forms_at_top_level_are_valid():
    # GIVEN the two binary forms as whole mappings
    # WHEN validated
    # THEN both pass, and $bytes is checked like any path
    validate_mapping({"$raw": "input"}, "s1", set())
    validate_mapping({"$bytes": "$.steps.crop.image", "content_type": "image/png"}, "s1", {"crop"})
    with pytest.raises(MappingError, match="not upstream"):
        validate_mapping({"$bytes": "$.steps.crop.image", "content_type": "image/png"}, "s1", set())


@pytest.mark.parametrize("path", ["$.steps", "$.steps.*", "$.steps..label", "$.steps[*].score"])
def test_paths_over_all_steps_are_allowed(path):
    # GIVEN a path that reads every step rather than naming one
    # WHEN validated, even with no upstream steps listed
    # THEN it is accepted
    validate_mapping({"x": {"$path": path, "many": True}}, "s1", set())


def test_literals_and_escapes_are_not_validated_as_paths():
    # GIVEN escaped strings that would be invalid paths
    # WHEN validated
    # THEN nothing is raised
    validate_mapping({"price": "$$5", "text": "$$.steps.nope", "n": 1}, "s1", set())


# --- referenced_roots ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$.input.claim.amount", {("input", None)}),
        ("$.metadata.channel", {("metadata", None)}),
        ("$.steps.fraud.fraud_probability", {("steps", "fraud")}),
        ("$.steps['fraud'].fraud_probability", {("steps", "fraud")}),
        ('$["steps"]["fraud"]', {("steps", "fraud")}),
        ("$['steps']['fraud']", {("steps", "fraud")}),
        ("$.steps.repair-cost.value", {("steps", "repair-cost")}),
        ("$.steps['fraud','cost']", {("steps", "fraud"), ("steps", "cost")}),
        ("$.steps", {("steps", None)}),
        ("$.steps.*", {("steps", None)}),
        ("$.steps..label", {("steps", None)}),
        ("$.steps.classify[?(@.c > $.input.t)]", {("steps", "classify"), ("input", None)}),
        ("$.input.a + $.steps.fraud.b", {("input", None), ("steps", "fraud")}),
    ],
)
def test_referenced_roots_of_one_path(path, expected):
    # GIVEN a mapping with one path in some syntax
    # WHEN its roots are derived
    # THEN the leading fields give the root and the step name
    assert referenced_roots({"x": path}) == expected


def test_referenced_roots_of_a_whole_template():
    # GIVEN a template mixing roots, literals and escapes
    mapping = {
        **DECISION,
        "channel": "$.metadata.channel",
        "literal": "$$.steps.not_a_path",
        "list": [{"$path": "$.steps.classify.*.label", "many": True}],
    }
    # WHEN its roots are derived
    # THEN every path contributes and escaped strings do not
    assert referenced_roots(mapping) == {
        ("steps", "fraud"),
        ("steps", "cost"),
        ("steps", "severity"),
        ("steps", "classify"),
        ("input", None),
        ("metadata", None),
    }


def test_referenced_roots_of_binary_forms():
    # GIVEN the two binary whole mappings
    # WHEN their roots are derived
    # THEN $raw reads the request and $bytes reads its path
    assert referenced_roots({"$raw": "input"}) == {("input", None)}
    assert referenced_roots({"$bytes": "$.steps.crop.image", "content_type": "image/png"}) == {("steps", "crop")}


def test_referenced_roots_of_a_literal_mapping_is_empty():
    # GIVEN a mapping with no paths
    # WHEN its roots are derived
    # THEN nothing is read
    assert referenced_roots({"a": 1, "b": ["x", "$$y"]}) == set()

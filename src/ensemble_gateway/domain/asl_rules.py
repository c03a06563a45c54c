"""Checks of a state machine definition: the Amazon States Language's rules, then the gateway's own.

:func:`check_definition` applies the specification's rules (https://states-language.net/spec.html
and the Step Functions developer guide), not what moto happens to accept: moto is a stand-in, and
a definition it runs may still be refused by AWS at ``CreateStateMachine``. It covers JSONPath
states; a JSONata state's fields have another syntax and are only checked for structure.

:func:`check_gateway_rules` adds what the gateway needs of hand-written ensembles so that they
behave the same on AWS and locally.

Both return problems as sentences (an empty list when there are none); registration raises on them.
The module is pure: no boto3, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

__all__ = ["CHOICE_OPERATORS", "check_definition", "check_gateway_rules"]

MAX_STATE_NAME = 80
STATE_TYPES = ("Task", "Parallel", "Map", "Choice", "Pass", "Wait", "Succeed", "Fail")
CALLBACK_SUFFIX = ".waitForTaskToken"

_COMPARED_TYPES = ("String", "Numeric", "Timestamp")
_ORDERINGS = ("Equals", "LessThan", "GreaterThan", "LessThanEquals", "GreaterThanEquals")
# Choice comparison operators; each ``*Path`` form compares with the value at another path.
CHOICE_OPERATORS: frozenset[str] = frozenset(
    [f"{kind}{order}" for kind in _COMPARED_TYPES for order in _ORDERINGS]
    + [f"{kind}{order}Path" for kind in _COMPARED_TYPES for order in _ORDERINGS]
    + ["StringMatches", "BooleanEquals", "BooleanEqualsPath"]
    + ["IsNull", "IsPresent", "IsNumeric", "IsString", "IsBoolean", "IsTimestamp"]
)
_BOOLEAN_RULES = ("And", "Or", "Not")
# Top-level fields of each state type that hold a reference path, and those that may be null.
_PATH_FIELDS = ("InputPath", "OutputPath", "ResultPath", "ItemsPath", "SecondsPath", "TimestampPath")
_NULLABLE_PATHS = ("InputPath", "OutputPath", "ResultPath")
# Fields whose object values may contain ``"key.$": <path or intrinsic>`` entries.
_TEMPLATE_FIELDS = ("Parameters", "ItemSelector", "ResultSelector")
_INTRINSIC_PREFIX = "States."
# How problems name the top-level machine (nested ones are named after their Parallel or Map).
_TOP = "the state machine"


# --- the specification's rules -------------------------------------------------------------------


@dataclass(frozen=True)
class _Scope:
    """The states a transition may go to: those of the same (sub-)machine."""

    states: Mapping[str, Any]
    nested: bool


def check_definition(definition: Any) -> list[str]:
    """Every problem of a definition by the Amazon States Language's rules.

    Parameters
    ----------
    definition
        The parsed JSON of a state machine definition.

    Returns
    -------
    list of str
        One sentence per problem, naming the state (and the branch or Map it is in); empty when
        the definition is valid. Rules: state names ≤ 80 characters and unique machine-wide;
        ``StartAt`` names a state; every state reachable; ``Next``/``End`` as the state type
        requires; a Task's ``Resource``; ``TimeoutSeconds``/``HeartbeatSeconds`` positive
        integers, heartbeat below timeout; ``Retry``/``Catch`` entries (``ErrorEquals``,
        ``States.ALL`` alone and last, ``IntervalSeconds`` ≥ 1, ``MaxAttempts`` ≥ 0,
        ``BackoffRate`` ≥ 1, a Catch's ``Next`` in its own scope); Parallel branches and Map
        processors valid machines whose transitions stay inside; Map ``ProcessorConfig.Mode``;
        a Wait's single duration field; Fail and Succeed without ``Next``/``End``; paths starting
        with ``$``; Choice rules with a known comparison operator.
    """
    problems: list[str] = []
    if not isinstance(definition, Mapping):
        return ["the definition must be a JSON object"]
    _check_machine(definition, _TOP, problems, {}, jsonata=definition.get("QueryLanguage") == "JSONata")
    return problems


def _check_machine(machine: Any, where: str, problems: list[str], seen: dict[str, str], *, jsonata: bool) -> None:
    if not isinstance(machine, Mapping):
        problems.append(f"{where} must be an object with StartAt and States")
        return
    states = machine.get("States")
    if not isinstance(states, Mapping) or not states:
        problems.append(f"{where}: 'States' must be a non-empty object")
        return
    start = machine.get("StartAt")
    if not isinstance(start, str) or start not in states:
        problems.append(f"{where}: StartAt {_quote(start)} is not one of its states")
    _check_positive_int(machine, "TimeoutSeconds", where, problems)
    nested = where != _TOP
    scope = _Scope(states, nested)
    for name, state in states.items():
        label = f"state '{name}'" + (f" ({where})" if nested else "")
        if len(name) > MAX_STATE_NAME:
            problems.append(f"{label}: the name is {len(name)} characters long, at most {MAX_STATE_NAME} are allowed")
        if name in seen:
            problems.append(f"{label}: the name is used twice in the state machine (also in {seen[name]})")
        else:
            seen[name] = where
        if not isinstance(state, Mapping):
            problems.append(f"{label} must be an object")
            continue
        _check_state(
            name, state, label, scope, problems, seen, jsonata=state.get("QueryLanguage", "") == "JSONata" or jsonata
        )
    if isinstance(start, str) and start in states:
        reachable = _reachable(start, states)
        for name in states:
            if name not in reachable:
                label = f"state '{name}'" + (f" ({where})" if nested else "")
                problems.append(f"{label} cannot be reached from StartAt '{start}'")


def _reachable(start: str, states: Mapping[str, Any]) -> set[str]:
    found: set[str] = set()
    pending = [start]
    while pending:
        name = pending.pop()
        if name in found or name not in states:
            continue
        found.add(name)
        state = states[name]
        if isinstance(state, Mapping):
            pending.extend(target for target in _targets(state) if isinstance(target, str))
    return found


def _targets(state: Mapping[str, Any]) -> Iterator[Any]:
    """Every state name a state can go to: Next, Default, the Choices' and the Catchers' Next."""
    yield state.get("Next")
    yield state.get("Default")
    for key in ("Choices", "Catch"):
        entries = state.get(key)
        if isinstance(entries, list):
            yield from (entry.get("Next") for entry in entries if isinstance(entry, Mapping))


def _check_state(
    name: str,
    state: Mapping[str, Any],
    label: str,
    scope: _Scope,
    problems: list[str],
    seen: dict[str, str],
    *,
    jsonata: bool,
) -> None:
    kind = state.get("Type")
    if kind not in STATE_TYPES:
        problems.append(f"{label}: Type {_quote(kind)} is not one of {', '.join(STATE_TYPES)}")
        return
    _check_transitions(state, kind, label, scope, problems)
    if not jsonata:
        _check_paths(state, label, problems)
    if kind in ("Task", "Parallel", "Map"):
        _check_retry(state.get("Retry"), label, problems)
        _check_catch(state.get("Catch"), label, scope, problems)
    elif "Retry" in state or "Catch" in state:
        problems.append(f"{label}: a {kind} state cannot have Retry or Catch")
    if kind == "Task":
        _check_task(state, label, problems)
    elif kind == "Parallel":
        branches = state.get("Branches")
        if not isinstance(branches, list) or not branches:
            problems.append(f"{label}: a Parallel state needs a non-empty list of Branches")
        else:
            for index, branch in enumerate(branches):
                _check_machine(branch, f"branch {index + 1} of Parallel '{name}'", problems, seen, jsonata=jsonata)
    elif kind == "Map":
        _check_map(name, state, label, problems, seen, jsonata=jsonata)
    elif kind == "Wait":
        durations = [key for key in ("Seconds", "Timestamp", "SecondsPath", "TimestampPath") if key in state]
        if len(durations) != 1:
            problems.append(
                f"{label}: a Wait state needs exactly one of Seconds, Timestamp, SecondsPath or TimestampPath"
                + (f" (it has {', '.join(durations)})" if durations else "")
            )
        seconds = state.get("Seconds")
        if "Seconds" in state and not jsonata and not (_is_int(seconds) and seconds >= 0):
            problems.append(f"{label}: Seconds must be a non-negative integer, not {_quote(seconds)}")
    elif kind == "Choice":
        _check_choice(state, label, scope, problems)
    elif kind == "Fail":
        for field, path_field in (("Error", "ErrorPath"), ("Cause", "CausePath")):
            if field in state and path_field in state:
                problems.append(f"{label}: a Fail state has {field} or {path_field}, not both")


def _check_transitions(state: Mapping[str, Any], kind: str, label: str, scope: _Scope, problems: list[str]) -> None:
    has_next = "Next" in state
    has_end = "End" in state
    if kind in ("Succeed", "Fail", "Choice"):
        if has_next or has_end:
            problems.append(f"{label}: a {kind} state cannot have Next or End")
    elif has_next and has_end:
        problems.append(f"{label}: a state has Next or End, not both")
    elif has_end and state["End"] is not True:
        problems.append(f"{label}: End must be true (or be left out for a Next)")
    elif not has_next and not has_end:
        problems.append(f"{label}: a {kind} state needs Next or End")
    if has_next and kind not in ("Succeed", "Fail", "Choice"):
        _check_target(state["Next"], "Next", label, scope, problems)


def _check_target(target: Any, field: str, label: str, scope: _Scope, problems: list[str]) -> None:
    if not isinstance(target, str) or target not in scope.states:
        outside = " (a branch or a Map processor cannot go to a state outside it)" if scope.nested else ""
        problems.append(f"{label}: {field} {_quote(target)} is not a state of its machine{outside}")


def _check_task(state: Mapping[str, Any], label: str, problems: list[str]) -> None:
    resource = state.get("Resource")
    if not isinstance(resource, str) or not resource:
        problems.append(f"{label}: a Task needs a Resource (an ARN)")
    for field in ("TimeoutSeconds", "HeartbeatSeconds"):
        if field in state and f"{field[:-7]}SecondsPath" in state:
            problems.append(f"{label}: {field} or {field[:-7]}SecondsPath, not both")
        _check_positive_int(state, field, label, problems)
    timeout, heartbeat = state.get("TimeoutSeconds"), state.get("HeartbeatSeconds")
    if _is_int(timeout) and _is_int(heartbeat) and heartbeat >= timeout:
        problems.append(f"{label}: HeartbeatSeconds ({heartbeat}) must be smaller than TimeoutSeconds ({timeout})")


def _check_map(
    name: str, state: Mapping[str, Any], label: str, problems: list[str], seen: dict[str, str], *, jsonata: bool
) -> None:
    if "ItemProcessor" in state and "Iterator" in state:
        problems.append(f"{label}: a Map state has ItemProcessor or the legacy Iterator, not both")
    processor = state.get("ItemProcessor", state.get("Iterator"))
    if processor is None:
        problems.append(f"{label}: a Map state needs an ItemProcessor")
        return
    if isinstance(processor, Mapping) and "ProcessorConfig" in processor:
        config = processor["ProcessorConfig"]
        mode = config.get("Mode", "INLINE") if isinstance(config, Mapping) else None
        if mode not in ("INLINE", "DISTRIBUTED"):
            problems.append(f"{label}: ProcessorConfig Mode {_quote(mode)} is not INLINE or DISTRIBUTED")
    _check_machine(processor, f"the processor of Map '{name}'", problems, seen, jsonata=jsonata)
    concurrency = state.get("MaxConcurrency")
    if "MaxConcurrency" in state and not (_is_int(concurrency) and concurrency >= 0):
        problems.append(f"{label}: MaxConcurrency must be a non-negative integer, not {_quote(concurrency)}")


def _check_error_equals(entry: Mapping[str, Any], what: str, label: str, problems: list[str]) -> list[str]:
    errors = entry.get("ErrorEquals")
    if not isinstance(errors, list) or not errors or not all(isinstance(error, str) for error in errors):
        problems.append(f"{label}: {what} needs ErrorEquals, a non-empty list of error names")
        return []
    if "States.ALL" in errors and len(errors) > 1:
        problems.append(f"{label}: {what}: States.ALL must be alone in its ErrorEquals")
    return errors


def _check_retry(retry: Any, label: str, problems: list[str]) -> None:
    if retry is None:
        return
    if not isinstance(retry, list) or not all(isinstance(entry, Mapping) for entry in retry):
        problems.append(f"{label}: Retry must be a list of objects")
        return
    for index, entry in enumerate(retry):
        what = f"Retry entry {index + 1}"
        errors = _check_error_equals(entry, what, label, problems)
        if "States.ALL" in errors and index != len(retry) - 1:
            problems.append(f"{label}: {what}: States.ALL must be in the last entry")
        interval, attempts, backoff = (entry.get(key) for key in ("IntervalSeconds", "MaxAttempts", "BackoffRate"))
        if "IntervalSeconds" in entry and not (_is_int(interval) and interval >= 1):
            problems.append(
                f"{label}: {what}: IntervalSeconds must be an integer of at least 1, not {_quote(interval)}"
            )
        if "MaxAttempts" in entry and not (_is_int(attempts) and attempts >= 0):
            problems.append(f"{label}: {what}: MaxAttempts must be a non-negative integer, not {_quote(attempts)}")
        if "BackoffRate" in entry and not (_is_number(backoff) and backoff >= 1.0):
            problems.append(f"{label}: {what}: BackoffRate must be a number of at least 1.0, not {_quote(backoff)}")
        if "MaxDelaySeconds" in entry:
            _check_positive_int(entry, "MaxDelaySeconds", f"{label}: {what}", problems)
        if entry.get("JitterStrategy", "NONE") not in ("FULL", "NONE"):
            problems.append(f"{label}: {what}: JitterStrategy must be FULL or NONE")


def _check_catch(catch: Any, label: str, scope: _Scope, problems: list[str]) -> None:
    if catch is None:
        return
    if not isinstance(catch, list) or not all(isinstance(entry, Mapping) for entry in catch):
        problems.append(f"{label}: Catch must be a list of objects")
        return
    for index, entry in enumerate(catch):
        what = f"Catch entry {index + 1}"
        errors = _check_error_equals(entry, what, label, problems)
        if "States.ALL" in errors and index != len(catch) - 1:
            problems.append(f"{label}: {what}: States.ALL must be in the last entry")
        if "Next" not in entry:
            problems.append(f"{label}: {what} needs a Next")
        else:
            _check_target(entry["Next"], f"{what}'s Next", label, scope, problems)
        result_path = entry.get("ResultPath")
        if result_path is not None and not _is_reference_path(result_path):
            problems.append(f"{label}: {what}: ResultPath must be a path starting with '$' or null")


def _check_choice(state: Mapping[str, Any], label: str, scope: _Scope, problems: list[str]) -> None:
    choices = state.get("Choices")
    if not isinstance(choices, list) or not choices:
        problems.append(f"{label}: a Choice state needs a non-empty list of Choices")
        return
    for index, rule in enumerate(choices):
        what = f"Choice rule {index + 1}"
        if not isinstance(rule, Mapping):
            problems.append(f"{label}: {what} must be an object")
            continue
        if "Next" not in rule:
            problems.append(f"{label}: {what} needs a Next")
        else:
            _check_target(rule["Next"], f"{what}'s Next", label, scope, problems)
        _check_rule(rule, what, label, problems, top_level=True)
    if "Default" in state:
        _check_target(state["Default"], "Default", label, scope, problems)


def _check_rule(rule: Any, what: str, label: str, problems: list[str], *, top_level: bool) -> None:
    if not isinstance(rule, Mapping):
        problems.append(f"{label}: {what} must be an object")
        return
    if not top_level and "Next" in rule:
        problems.append(f"{label}: {what}: only a top-level Choice rule has a Next")
    if "Condition" in rule:  # JSONata
        return
    booleans = [key for key in _BOOLEAN_RULES if key in rule]
    if booleans:
        key = booleans[0]
        inner = rule[key]
        if key == "Not":
            _check_rule(inner, f"{what} Not", label, problems, top_level=False)
        elif not isinstance(inner, list) or not inner:
            problems.append(f"{label}: {what}: {key} needs a non-empty list of rules")
        else:
            for position, item in enumerate(inner):
                _check_rule(item, f"{what} {key}[{position}]", label, problems, top_level=False)
        return
    operators = [key for key in rule if key not in ("Variable", "Next", "Comment")]
    known = [key for key in operators if key in CHOICE_OPERATORS]
    unknown = [key for key in operators if key not in CHOICE_OPERATORS]
    if unknown:
        problems.append(f"{label}: {what}: {', '.join(unknown)} is not a comparison operator")
    elif len(known) != 1:
        problems.append(f"{label}: {what} needs exactly one comparison operator")
    variable = rule.get("Variable")
    if not _is_path(variable):
        problems.append(f"{label}: {what}: Variable must be a path starting with '$'")
    for key in known:
        if key.endswith("Path") and not _is_path(rule[key]):
            problems.append(f"{label}: {what}: {key} must be a path starting with '$'")


def _check_paths(state: Mapping[str, Any], label: str, problems: list[str]) -> None:
    for field in _PATH_FIELDS:
        if field not in state:
            continue
        value = state[field]
        if value is None and field in _NULLABLE_PATHS:
            continue
        valid = _is_reference_path(value) if field == "ResultPath" else _is_path(value)
        if not valid:
            problems.append(f"{label}: {field} must be a path starting with '$', not {_quote(value)}")
    for field in _TEMPLATE_FIELDS:
        for key, value in _dollar_entries(state.get(field)):
            if not (_is_path(value) or _is_intrinsic(value)):
                problems.append(
                    f"{label}: {field} key '{key}' must be a path starting with '$' or an intrinsic "
                    f"function such as States.Format(...), not {_quote(value)}"
                )


def _dollar_entries(template: Any) -> Iterator[tuple[str, Any]]:
    """The ``"key.$": value`` entries of a Parameters-like template, at any depth."""
    if isinstance(template, Mapping):
        for key, value in template.items():
            if isinstance(key, str) and key.endswith(".$"):
                yield key, value
            else:
                yield from _dollar_entries(value)
    elif isinstance(template, list):
        for value in template:
            yield from _dollar_entries(value)


def _check_positive_int(holder: Mapping[str, Any], field: str, label: str, problems: list[str]) -> None:
    if field in holder and not (_is_int(holder[field]) and holder[field] > 0):
        problems.append(f"{label}: {field} must be a positive integer, not {_quote(holder[field])}")


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_path(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and value.startswith("$")


def _is_reference_path(value: Any) -> bool:
    """A path a result is written to: ``$...``, never the read-only context object ``$$``."""
    return _is_path(value) and not value.startswith("$$")


def _is_intrinsic(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(_INTRINSIC_PREFIX) and "(" in value and value.endswith(")")


def _quote(value: Any) -> str:
    return f"'{value}'" if isinstance(value, str) else repr(value) if value is not None else "(missing)"


# --- the gateway's rules -------------------------------------------------------------------------


def check_gateway_rules(definition: Any) -> list[str]:
    """What the gateway requires of a hand-written ensemble beyond the specification.

    Parameters
    ----------
    definition
        The parsed JSON of a state machine definition (check it with :func:`check_definition`
        first: malformed parts are skipped here).

    Returns
    -------
    list of str
        One sentence per problem, empty when there are none:

        - a callback task (``.waitForTaskToken``) with a ``Retry``: moto replays the previous
          outcome instead of retrying, so the machine would behave differently locally;
        - a Choice comparison on a path that no ``IsPresent: true`` test guards, earlier in the
          same ``And``: on AWS a Choice reading a missing path fails the execution with
          ``States.Runtime``, which nothing can catch (moto takes the Default instead).
    """
    problems: list[str] = []
    for name, state in _all_states(definition):
        callback = state.get("Type") == "Task" and str(state.get("Resource", "")).endswith(CALLBACK_SUFFIX)
        if callback and state.get("Retry"):
            problems.append(
                f"state '{name}' retries a callback task: in moto a Retry of a .waitForTaskToken task reuses "
                "the token and replays the previous outcome; catch the errors and go through a Wait to a copy "
                "of the task instead"
            )
        if state.get("Type") == "Choice" and isinstance(state.get("Choices"), list):
            unguarded: list[str] = []
            for rule in state["Choices"]:
                _unguarded_paths(rule, frozenset(), unguarded)
            for path in dict.fromkeys(unguarded):
                problems.append(
                    f"Choice '{name}' reads {path} without an IsPresent guard: on AWS a missing path fails the "
                    "execution (States.Runtime), which a Choice cannot catch"
                )
    return problems


def _all_states(machine: Any) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every state of a machine, its branches and Map processors included."""
    if not isinstance(machine, Mapping) or not isinstance(machine.get("States"), Mapping):
        return
    for name, state in machine["States"].items():
        if not isinstance(state, Mapping):
            continue
        yield name, state
        branches = state.get("Branches")
        if isinstance(branches, list):
            for branch in branches:
                yield from _all_states(branch)
        processor = state.get("ItemProcessor", state.get("Iterator"))
        if processor is not None:
            yield from _all_states(processor)


def _unguarded_paths(rule: Any, guarded: frozenset[str], found: list[str]) -> None:
    """Add the paths ``rule`` compares without a guard; ``guarded`` are known to be present."""
    if not isinstance(rule, Mapping):
        return
    if isinstance(rule.get("And"), list):
        present = set(guarded)
        for inner in rule["And"]:
            _unguarded_paths(inner, frozenset(present), found)
            # An And stops at its first false test, so later tests only run when this one held.
            if isinstance(inner, Mapping) and inner.get("IsPresent") is True and _is_path(inner.get("Variable")):
                present.add(inner["Variable"])
        return
    if isinstance(rule.get("Or"), list):
        for inner in rule["Or"]:
            _unguarded_paths(inner, guarded, found)
        return
    if "Not" in rule:
        _unguarded_paths(rule["Not"], guarded, found)
        return
    if "IsPresent" in rule:
        return
    read = [rule.get("Variable")]
    read += [value for key, value in rule.items() if key.endswith("Path") and key in CHOICE_OPERATORS]
    for path in read:
        if _is_path(path) and path not in guarded:
            found.append(path)

"""The Glue table of the audit trail accepts every record the builder emits.

The table's columns are read from template.yaml (``AuditTable``) and each record of the
completed, failed, expired, cancelled, skipped, shadowed and ensemble cases is checked against
their Hive types, as the JSON SerDe reads them (keys matched case-insensitively): every field is
a column of a compatible type, and every column is a field (no column silently always null).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gateway_fakes import make_world, model_service, new_client
from test_audit_records import (
    CLAIM,
    REVIEW,
    answer,
    ensemble_world,
    start,
    submit,
    upload,
)
from test_shadows import versioned_model
from test_steps import realtime_answers

from ensemble_gateway.domain.audit import delivery_record
from ensemble_gateway.domain.records import DEADLINE_MARGIN_SECONDS, shadow_prediction_id

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


def columns() -> dict[str, str]:
    from cfnlint.decode import decode

    template, problems = decode(str(TEMPLATE))
    assert not problems and template is not None
    table = template["Resources"]["AuditTable"]["Properties"]["TableInput"]
    return {column["Name"]: column["Type"] for column in table["StorageDescriptor"]["Columns"]}


def split_top(text: str) -> list[str]:
    """``a:int,b:struct<c:int,d:int>`` → ``["a:int", "b:struct<c:int,d:int>"]``."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += {"<": 1, ">": -1}.get(char, 0)
        current += char
    return [*parts, current] if current else parts


def problems(value: Any, hive: str, where: str) -> list[str]:
    """What of ``value`` the Hive type ``hive`` does not accept (null is accepted everywhere)."""
    if value is None:
        return []
    if hive == "string":
        return [] if isinstance(value, str) else [f"{where}: {value!r} is not a string"]
    if hive in ("int", "bigint"):
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and hive == "int" and not -(2**31) <= value < 2**31:
            ok = False
        return [] if ok else [f"{where}: {value!r} is not an {hive}"]
    if hive == "boolean":
        return [] if isinstance(value, bool) else [f"{where}: {value!r} is not a boolean"]
    if hive.startswith("array<"):
        if not isinstance(value, list):
            return [f"{where}: {value!r} is not an array"]
        inner = hive[len("array<") : -1]
        return [p for i, item in enumerate(value) for p in problems(item, inner, f"{where}[{i}]")]
    if hive.startswith("map<"):
        if not isinstance(value, dict):
            return [f"{where}: {value!r} is not a map"]
        key_type, value_type = split_top(hive[len("map<") : -1])
        return [p for k, v in value.items() for p in problems(k, key_type, where) + problems(v, value_type, where)]
    if hive.startswith("struct<"):
        if not isinstance(value, dict):
            return [f"{where}: {value!r} is not a struct"]
        fields = dict(part.split(":", 1) for part in split_top(hive[len("struct<") : -1]))
        found = [f"{where}.{key}: no such field" for key in value if key.lower() not in fields]
        found += [f"{where}.{name}: never written" for name in fields if name not in {k.lower() for k in value}]
        lowered = {key.lower(): item for key, item in value.items()}
        return found + [
            p for name, kind in fields.items() for p in problems(lowered.get(name), kind, f"{where}.{name}")
        ]
    return [f"{where}: unknown Hive type {hive}"]


def check(record: dict[str, Any], table: dict[str, str]) -> list[str]:
    """A record through JSON (what the stream carries) against the table's columns."""
    carried = json.loads(json.dumps(record))
    lowered = {key.lower(): value for key, value in carried.items()}
    found = [f"{key}: no such column" for key in lowered if key not in table]
    found += [f"{name}: never written" for name in table if name not in lowered]
    return found + [p for name, kind in table.items() for p in problems(lowered.get(name), kind, name)]


def every_case() -> list[dict[str, Any]]:
    """Records of every kind of end: completed (async, real-time, payloads kept), failed,
    expired, cancelled, ensemble steps and the ensemble, skipped, shadows, webhook deliveries."""
    world = make_world(
        services=[
            model_service("fraud-score"),
            model_service("kept", audit_payloads=True),
            model_service("scorer-rt", invocation="realtime"),
        ],
        clients=[new_client("c_owner")],
        audit=True,
    )
    hook = {"webhook": {"url": "https://hooks.example.com/ml"}}
    done = submit(world, notification=hook)
    upload(world, done)
    answer(world, done)
    failed = submit(world)
    upload(world, failed)
    answer(world, failed, failed=True)
    kept = submit(world, "kept")
    upload(world, kept)
    answer(world, kept)
    realtime_answers(world, {"p": 0.5})
    upload(world, submit(world, "scorer-rt"))
    cancelled = submit(world)
    upload(world, cancelled)
    client = world.clients.get("c_owner")
    assert client is not None
    world.use_cases.cancellation.cancel(client, cancelled)
    submit(world)  # never uploaded: expires
    world.clock.advance(seconds=900 + DEADLINE_MARGIN_SECONDS + 1)
    world.use_cases.sweeping.sweep()
    assert world.audit is not None
    records = list(world.audit.records)
    prediction = world.store._load(done)
    assert prediction is not None
    attempt = {"event_type": "prediction.completed", "attempt": 1, "at": "2026-11-22T09:00:00+00:00"}
    records.append(delivery_record(prediction, {**attempt, "status_code": 200, "delivered": True}, world.clock()))

    ensembles = ensemble_world(review=REVIEW)
    parent_id, execution = start(ensembles)
    steps = ensembles.steps()
    fraud = steps.call(parent_id, "fraud", "t1", execution=execution)["prediction_id"]
    answer(ensembles, fraud, b'{"p": 0.1}')
    steps.call(parent_id, "review", "t2", execution=execution)
    realtime_answers(ensembles, {"eur": 800}, {"approve": True})
    steps.call(parent_id, "cost", "t3", execution=execution)
    steps.call(parent_id, "decision", "t4", execution=execution)
    assert ensembles.audit is not None
    records += ensembles.audit.records

    shadowed = make_world(services=[versioned_model()], clients=[new_client("c_owner")], audit=True)
    primary = submit(shadowed)
    upload(shadowed, primary, json.dumps(CLAIM).encode())
    shadowed.run_shadow_dispatches()
    answer(shadowed, shadow_prediction_id(primary, "1.1.0"))
    answer(shadowed, primary)
    assert shadowed.audit is not None
    records += shadowed.audit.records
    return records


def test_the_glue_table_accepts_every_record_the_builder_emits() -> None:
    # GIVEN the Glue table's columns, and the records of every kind of end
    table = columns()
    records = every_case()
    assert {(r["kind"], r["status"]) for r in records} >= {
        ("prediction", "COMPLETED"),
        ("prediction", "FAILED"),
        ("prediction", "EXPIRED"),
        ("prediction", "CANCELLED"),
        ("step", "COMPLETED"),
        ("step", "SKIPPED"),
        ("shadow", "COMPLETED"),
        ("delivery", "COMPLETED"),
    }

    # WHEN each is checked against the columns' types
    found = {record["record_id"]: check(record, table) for record in records}

    # THEN every field is a column of its type, and every column is written
    assert {record_id: issues for record_id, issues in found.items() if issues} == {}


def test_the_checker_refuses_what_the_serde_would_not_read() -> None:
    table = {"a": "struct<b:int>", "c": "array<string>"}
    assert check({"a": {"b": "x"}, "c": ["y"]}, table) == ["a.b: 'x' is not an int"]
    assert check({"a": {"b": 1}, "c": [1], "d": 2}, table) == ["d: no such column", "c[0]: 1 is not a string"]

"""Mapping DSL: evaluations per second of a realistic 20-key mapping over ~50 KB of step outputs.

The context: a claim, and the outputs of four steps (damage regions, a 30-line repair estimate, a
fraud explanation with per-feature contributions padded to ~50 KB, fan-out classifier labels).
The mapping picks scalars, sub-documents, defaults, a literal and a ``$$`` escape, a slice, and a
few wildcards and filters over the short lists. A second, scan-heavy variant points two of those
wildcard/filter paths at the long contributions list instead, to show what list scans cost.

``cached``: the paths are compiled once (``compile_path``'s LRU cache), as get-transform-call does
for every prediction after the first. ``parse every time``: the cache is cleared before each
evaluation, so every path is parsed again by ``jsonpath_ng.ext.parse`` (what the code would cost
without the cache). Both run the same ``evaluate_mapping`` on the same context. For scale, the
cost of ``json.loads`` of the same outputs (which get-transform-call also pays, reading them from
S3) is reported too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from .common import median, say, table

TARGET_RATIO = 10.0

MAPPING: dict[str, Any] = {
    "claim_id": "$.input.claim.claim_id",
    "claim_amount": "$.input.claim.claim_amount",
    "vehicle_value": "$.input.claim.vehicle_value",
    "policy_tenure_months": {"$path": "$.input.claim.policy_tenure_months", "default": 0},
    "witness": {"$path": "$.input.claim.witness", "default": None},
    "channel": "$.metadata.channel",
    "severity": "$.steps.damage.severity",
    "severity_scores": "$.steps.damage.scores",
    "damaged_regions": {"$path": "$.steps.damage.regions[?(@.area > 0.2)].name", "many": True},
    "region_count": "$.steps.damage.regions.`len`",
    "estimated_repair_cost": "$.steps.cost.estimated_repair_cost",
    "labour_hours": {"$path": "$.steps.cost.line_items[*].hours", "many": True},
    "expensive_parts": {"$path": "$.steps.cost.line_items[?(@.price > 900)].part", "many": True},
    "first_line_item": "$.steps.cost.line_items[0]",
    "fraud_probability": "$.steps.fraud.fraud_probability",
    "top_factors": {"$path": "$.steps.fraud.contributions[0:5].feature", "many": True},
    "classifier_labels": {"$path": "$.steps.classify.*.label", "many": True},
    "decision_inputs": {
        "fraud": "$.steps.fraud.fraud_probability",
        "cost": "$.steps.cost.estimated_repair_cost",
        "value": "$.input.claim.vehicle_value",
    },
    "currency": "$$EUR",
    "mapping_version": "bench-1",
}
# The same mapping with two wildcard/filter paths over the long contributions list.
SCAN_HEAVY: dict[str, Any] = {
    **MAPPING,
    "labour_hours": {"$path": "$.steps.fraud.contributions[*].value", "many": True},
    "expensive_parts": {"$path": "$.steps.fraud.contributions[?(@.contribution > 0.09)].feature", "many": True},
}


def build_context(target_bytes: int = 50_000) -> tuple[dict[str, Any], int]:
    """A deterministic context whose step outputs serialise to about ``target_bytes``."""
    claim = {
        "claim_id": "C-2024-000123",
        "claim_amount": 8423.5,
        "vehicle_value": 14500,
        "policy_tenure_months": 37,
        "days_since_policy_start": 1120,
        "incident_hour": 23,
        "prior_claims": 1,
        "description": "Rear-ended at a junction; boot lid and bumper damaged, lights broken. " * 4,
    }
    regions = [
        {"name": f"region-{i}", "area": round((i % 10) / 10, 2), "confidence": 0.5 + (i % 5) / 10} for i in range(40)
    ]
    line_items = [
        {"part": f"part-{i:03d}", "hours": round(0.25 * (i % 12), 2), "price": (i * 137) % 1500} for i in range(30)
    ]
    damage = {
        "severity": "moderate",
        "scores": {"minor": 0.1, "moderate": 0.7, "severe": 0.2},
        "regions": regions,
        "model": "damage-severity",
        "version": "1.0.0",
    }
    fraud = {"fraud_probability": 0.12, "model": "fraud-score", "version": "1.0.0", "contributions": []}
    cost = {"estimated_repair_cost": 4210.0, "currency": "EUR", "line_items": line_items}
    classify = {f"triage-model-{i}": {"label": f"label-{i}", "confidence": 0.8, "version": "1.0.0"} for i in range(4)}
    steps = {"damage": damage, "cost": cost, "fraud": fraud, "classify": classify}
    index = 0
    while len(json.dumps(steps)) < target_bytes:
        fraud["contributions"].append(
            {"feature": f"feature_{index:03d}", "value": index * 1.5, "contribution": round(0.001 * (index % 97), 4)}
        )
        index += 1
    context = {"input": {"claim": claim}, "steps": steps, "metadata": {"channel": "broker", "claim": "C-9"}}
    return context, len(json.dumps(steps))


def _rate(function: Callable[[], Any], seconds: float, blocks: int) -> float:
    """Median calls per second over ``blocks`` timed blocks of about ``seconds / blocks`` each."""
    function()  # warm
    calibrate = time.perf_counter()
    iterations = 0
    while time.perf_counter() - calibrate < 0.05:
        function()
        iterations += 1
    per_call = (time.perf_counter() - calibrate) / iterations
    batch = max(1, int(seconds / blocks / per_call))
    rates = []
    for _ in range(blocks):
        started = time.perf_counter()
        for _ in range(batch):
            function()
        rates.append(batch / (time.perf_counter() - started))
    return median(rates)


def _measure(mapping: dict[str, Any], context: dict[str, Any], seconds: float, blocks: int) -> dict[str, float]:
    from ensemble_gateway.domain.mapping import compile_path, evaluate_mapping

    def cached() -> Any:
        return evaluate_mapping(mapping, context, step="decision")

    def parse_every_time() -> Any:
        compile_path.cache_clear()
        return evaluate_mapping(mapping, context, step="decision")

    compile_path.cache_clear()
    return {"cached": _rate(cached, seconds, blocks), "parse_every_time": _rate(parse_every_time, seconds, blocks)}


def per_key(mapping: dict[str, Any], context: dict[str, Any], repeat: int) -> dict[str, dict[str, float]]:
    """Microseconds per evaluation of each key alone, cached and parsed every time."""
    from ensemble_gateway.domain.mapping import compile_path, evaluate_mapping

    out: dict[str, dict[str, float]] = {}
    for key, value in mapping.items():
        single = {key: value}
        evaluate_mapping(single, context, step="decision")
        started = time.perf_counter()
        for _ in range(repeat):
            evaluate_mapping(single, context, step="decision")
        cached = (time.perf_counter() - started) / repeat * 1e6
        started = time.perf_counter()
        for _ in range(repeat):
            compile_path.cache_clear()
            evaluate_mapping(single, context, step="decision")
        parsed = (time.perf_counter() - started) / repeat * 1e6
        out[key] = {"cached_us": cached, "parse_every_time_us": parsed}
    return out


def run(quick: bool = False) -> dict[str, Any]:
    from ensemble_gateway.domain.mapping import evaluate_mapping, validate_mapping

    context, outputs_bytes = build_context()
    steps = {"damage", "cost", "fraud", "classify"}
    for mapping in (MAPPING, SCAN_HEAVY):
        validate_mapping(mapping, "decision", steps)
    result = json.loads(evaluate_mapping(MAPPING, context, step="decision").body)
    paths = sum(1 for _ in _paths(MAPPING))
    serialized = json.dumps(context["steps"])
    seconds, blocks = (0.3, 3) if quick else (2.0, 5)
    say(
        f"Mapping DSL: {len(MAPPING)}-key mapping ({paths} paths) over {outputs_bytes / 1000:.1f} KB of step "
        f"outputs; {blocks} timed blocks of ~{seconds / blocks:.2f} s each, median"
    )
    realistic = _measure(MAPPING, context, seconds, blocks)
    scan_heavy = _measure(SCAN_HEAVY, context, seconds, blocks)
    loads = _rate(lambda: json.loads(serialized), seconds / 2, blocks)
    ratio = realistic["cached"] / realistic["parse_every_time"]
    ratio_scan = scan_heavy["cached"] / scan_heavy["parse_every_time"]
    keys = per_key(MAPPING, context, 3 if quick else 30)
    rows = [
        ["realistic mapping", realistic["cached"], realistic["parse_every_time"], ratio],
        ["scan-heavy variant", scan_heavy["cached"], scan_heavy["parse_every_time"], ratio_scan],
    ]
    say(table(["mapping", "cached eval/s", "parse-every-time eval/s", "ratio"], rows, digits=1))
    say(f"json.loads of the {outputs_bytes / 1000:.0f} KB outputs: {loads:,.0f}/s ({1e6 / loads:,.0f} us)")
    slowest = sorted(keys.items(), key=lambda kv: -kv[1]["cached_us"])[:4]
    parse_us = median([v["parse_every_time_us"] - v["cached_us"] for v in keys.values()])
    slow_text = ", ".join(f"{k} {v['cached_us']:.0f} us" for k, v in slowest)
    say(f"slowest keys cached: {slow_text}; parsing one path costs ~{parse_us:.0f} us")
    say(
        f"cached / parse-every-time (realistic): {ratio:.1f}x (target >= {TARGET_RATIO:.0f}x: "
        f"{'met' if ratio >= TARGET_RATIO else 'NOT met'}); scan-heavy variant: {ratio_scan:.1f}x"
    )
    say()
    return {
        "quick": quick,
        "mapping_keys": len(MAPPING),
        "mapping_paths": paths,
        "outputs_bytes": outputs_bytes,
        "result_keys": sorted(result),
        "evaluations_per_second": realistic,
        "microseconds_per_evaluation": {k: 1e6 / v for k, v in realistic.items()},
        "scan_heavy_evaluations_per_second": scan_heavy,
        "json_loads_outputs_per_second": loads,
        "per_key_us": keys,
        "parse_one_path_us": parse_us,
        "ratio_cached_vs_parse": ratio,
        "ratio_scan_heavy": ratio_scan,
        "target_ratio": TARGET_RATIO,
        "target_met": ratio >= TARGET_RATIO,
    }


def _paths(template: Any) -> Any:
    if isinstance(template, str):
        if template.startswith("$") and not template.startswith("$$"):
            yield template
    elif isinstance(template, dict):
        if "$path" in template:
            yield template["$path"]
            return
        for value in template.values():
            yield from _paths(value)
    elif isinstance(template, list):
        for value in template:
            yield from _paths(value)

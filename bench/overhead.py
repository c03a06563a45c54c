"""Orchestration overhead in the local runtime: upload to COMPLETED, minus the model's own time.

``slow-noop`` sleeps for the request's ``sleep_ms``; run alone (one model) and as the four
sequential steps of ``bench-noop-chain`` (bench/fixtures), with 0 ms and 200 ms per call. The
latency runs from the start of the upload (the client's presigned POST) to the ``finished_at``
the gateway wrote with the COMPLETED status (read from DynamoDB, not polled), and on to the
webhook's arrival. The model's own time is what the model reports (``slept_ms``, summed over the
steps). Configurations are interleaved run by run, so drift on a noisy machine hits all alike.
"""

from __future__ import annotations

import json
import math
from typing import Any

from .common import say, summary, table
from .env import CHAIN_SERVICE, CHAIN_STEPS, BenchEnv

CONFIGS = [
    ("single", "slow-noop", 1, 0),
    ("single", "slow-noop", 1, 200),
    ("chain", CHAIN_SERVICE, CHAIN_STEPS, 0),
    ("chain", CHAIN_SERVICE, CHAIN_STEPS, 200),
]


def _model_ms(output: bytes | None, steps: int, sleep_ms: int) -> tuple[float, bool]:
    """The model time the outputs report (sum over steps), and whether it could be read."""
    try:
        document = json.loads(output or b"")
    except ValueError:
        return float(sleep_ms * steps), False
    if steps == 1:
        return float(document.get("slept_ms", sleep_ms)), "slept_ms" in document
    outputs = document.get("steps", {})
    values = [float(v.get("slept_ms", 0)) for v in outputs.values() if isinstance(v, dict)]
    return (sum(values), True) if len(values) == steps else (float(sleep_ms * steps), False)


def measure(env: BenchEnv, service: str, steps: int, sleep_ms: int) -> dict[str, Any]:
    env.settle()
    submission = env.submit(service, json.dumps({"sleep_ms": sleep_ms}).encode(), "application/json")
    if submission.error:
        raise RuntimeError(f"{service}: {submission.error}")
    hook = env.receiver.wait_for(submission.prediction_id, timeout=120)
    if hook is None:
        raise RuntimeError(f"{service}: no webhook for {submission.prediction_id}")
    record = env.record(submission.prediction_id)
    model_ms, reported = _model_ms(env.download(hook), steps, sleep_ms)
    start = submission.upload_started_at
    to_completed = (record.finished_at.timestamp() - start) * 1000 if record and record.finished_at else math.nan
    return {
        "status": hook.status,
        "upload_ms": (submission.uploaded_at - start) * 1000,
        "to_completed_ms": to_completed,
        "to_webhook_ms": (hook.received_at - start) * 1000,
        "model_ms": model_ms,
        "model_time_reported": reported,
        "overhead_ms": to_completed - model_ms,
    }


def run(env: BenchEnv, quick: bool = False) -> dict[str, Any]:
    runs = 1 if quick else 8
    say(f"Orchestration overhead (local runtime): {runs} runs per configuration, interleaved")
    env.warm_up()
    samples: dict[str, list[dict[str, Any]]] = {f"{kind}/{sleep}": [] for kind, _, _, sleep in CONFIGS}
    for _ in range(runs):
        for kind, service, steps, sleep in CONFIGS:
            samples[f"{kind}/{sleep}"].append(measure(env, service, steps, sleep))
    configs: dict[str, Any] = {}
    for kind, service, steps, sleep in CONFIGS:
        measured = samples[f"{kind}/{sleep}"]
        overhead = summary([m["overhead_ms"] for m in measured])
        configs[f"{kind}/{sleep}"] = {
            "service": service,
            "steps": steps,
            "sleep_ms_per_step": sleep,
            "runs": len(measured),
            "completed": sum(1 for m in measured if m["status"] == "COMPLETED"),
            "to_completed_ms": summary([m["to_completed_ms"] for m in measured]),
            "to_webhook_ms": summary([m["to_webhook_ms"] for m in measured]),
            "model_ms": summary([m["model_ms"] for m in measured]),
            "overhead_ms": overhead,
            "overhead_per_step_ms": {"p50": overhead["p50"] / steps, "p95": overhead["p95"] / steps},
            "samples": measured,
        }
    per_step: dict[str, Any] = {}
    for sleep in sorted({c[3] for c in CONFIGS}):
        single = configs[f"single/{sleep}"]["overhead_ms"]["p50"]
        chain = configs[f"chain/{sleep}"]["overhead_ms"]["p50"]
        per_step[str(sleep)] = {
            "chain_overhead_per_step_p50_ms": chain / CHAIN_STEPS,
            "marginal_overhead_per_extra_step_p50_ms": (chain - single) / (CHAIN_STEPS - 1),
        }
    rows = []
    for c in configs.values():
        rows.append(
            [
                f"{c['service']} x{c['steps']}, {c['sleep_ms_per_step']} ms/step",
                c["completed"],
                c["to_completed_ms"]["p50"],
                c["to_completed_ms"]["p95"],
                c["model_ms"]["p50"],
                c["overhead_ms"]["p50"],
                c["overhead_ms"]["p95"],
                c["overhead_per_step_ms"]["p50"],
                c["to_webhook_ms"]["p50"],
            ]
        )
    say(
        table(
            [
                "configuration",
                "ok",
                "upload->COMPLETED p50",
                "p95",
                "model ms",
                "overhead p50",
                "p95",
                "per step p50",
                "->webhook p50",
            ],
            rows,
            digits=0,
        )
    )
    for sleep, p in per_step.items():
        say(
            f"  sleep {sleep} ms: overhead per step (chain/4) {p['chain_overhead_per_step_p50_ms']:.0f} ms; "
            f"each extra step adds {p['marginal_overhead_per_extra_step_p50_ms']:.0f} ms over a single model"
        )
    say()
    return {"quick": quick, "runs": runs, "configs": configs, "per_step": per_step}

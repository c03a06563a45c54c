"""Burst: many predictions submitted as fast as the API takes them; then 1x vs 3x offered load.

Phase 1 (burst): N predictions of ``slow-noop`` (0 ms) are submitted by a pool of client threads
as fast as the API answers (``POST /predictions`` then the presigned upload). Every prediction
must reach a terminal status and get exactly one verified webhook: we count lost predictions,
missing and duplicate webhooks, submission failures, and report throughput and the latency from
``POST`` to the webhook's arrival (p50/p95/p99).

Phase 2 (load): open-loop arrivals at a fixed rate for a fixed time, at 1x and 3x, where 1x is a
tenth of the throughput phase 1 sustained (so 3x stays below saturation), in ABBA order (1x, 3x,
3x, 1x) so that drift during the run does not favour either. We compare average latency and
failures with CCC's published reference: +5% average latency at 3x traffic, 0% failures.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .common import fmt, say, summary, table
from .env import BenchEnv, Submission

SERVICE = "slow-noop"
BODY = json.dumps({"sleep_ms": 0}).encode()
REFERENCE = {"source": "CCC published reference", "avg_latency_increase_at_3x": 0.05, "failure_rate": 0.0}
TERMINAL = ("COMPLETED", "FAILED", "EXPIRED")


def _evaluate(env: BenchEnv, submissions: list[Submission], timeout: float) -> dict[str, Any]:
    accepted = [s for s in submissions if s.prediction_id and not s.error]
    ids = [s.prediction_id for s in accepted]
    missing = env.receiver.wait_all(ids, timeout)
    env.settle(timeout=10)
    with env.receiver.lock:
        hooks = {pid: list(env.receiver.by_prediction.get(pid, [])) for pid in ids}
    statuses: dict[str, str] = {}
    for pid in ids:
        verified = [h for h in hooks[pid] if h.verified]
        if verified:
            statuses[pid] = verified[0].status
        else:
            record = env.record(pid)
            statuses[pid] = record.status.value if record else "UNKNOWN"
    lost = [pid for pid in ids if statuses[pid] not in TERMINAL]
    duplicates = sum(max(0, n - 1) for pid in ids for n in _per_type(hooks[pid]).values())
    latencies = []
    completions = []
    for submission in accepted:
        verified = [h for h in hooks[submission.prediction_id] if h.verified]
        if verified:
            latencies.append((verified[0].received_at - submission.submitted_at) * 1000)
            completions.append(verified[0].received_at)
    first = min((s.submitted_at for s in submissions), default=0.0)
    last_accept = max((s.uploaded_at for s in accepted), default=first)
    last_done = max(completions, default=first)
    return {
        "submitted": len(submissions),
        "accepted": len(accepted),
        "submission_failures": len(submissions) - len(accepted),
        "submission_errors": sorted({str(s.error)[:200] for s in submissions if s.error})[:5],
        "terminal": len(ids) - len(lost),
        "statuses": {k: list(statuses.values()).count(k) for k in sorted(set(statuses.values()))},
        "lost": len(lost),
        "webhooks_missing": len(missing),
        "webhooks_duplicate": duplicates,
        "webhooks_unverified": sum(1 for pid in ids for h in hooks[pid] if not h.verified),
        "submit_rate_per_s": len(accepted) / (last_accept - first) if last_accept > first else 0.0,
        "throughput_per_s": len(completions) / (last_done - first) if last_done > first else 0.0,
        "duration_s": last_done - first,
        "latency_ms": summary(latencies),
    }


def _per_type(hooks: list[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for hook in hooks:
        if hook.verified:
            counts[hook.event_type] = counts.get(hook.event_type, 0) + 1
    return counts


def burst(env: BenchEnv, count: int, concurrency: int) -> list[Submission]:
    """Submit ``count`` predictions from ``concurrency`` threads, each as soon as the last returned."""
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="bench-client") as pool:
        return list(pool.map(lambda _: env.submit(SERVICE, BODY, "application/json"), range(count)))


def offered_load(env: BenchEnv, rate: float, seconds: float) -> tuple[list[Submission], float]:
    """Open-loop arrivals: one submission every 1/rate s for ``seconds``; returns the achieved rate."""
    count = max(1, round(rate * seconds))
    start = time.time() + 0.2
    results: list[Submission] = []
    lock = threading.Lock()

    def one(index: int) -> None:
        delay = start + index / rate - time.time()
        if delay > 0:
            time.sleep(delay)
        submission = env.submit(SERVICE, BODY, "application/json")
        with lock:
            results.append(submission)

    workers = max(4, min(64, int(rate * 2) + 4))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bench-load") as pool:
        list(pool.map(one, range(count)))
    spread = max(s.submitted_at for s in results) - min(s.submitted_at for s in results)
    return results, (len(results) - 1) / spread if spread > 0 else float(len(results))


def run(env: BenchEnv, quick: bool = False) -> dict[str, Any]:
    count = 20 if quick else 1000
    concurrency = 4
    load_seconds = 2.0 if quick else 20.0
    timeout = 90.0 if quick else 900.0
    env.warm_up()
    say(
        f"Burst: {count} predictions of {SERVICE} (0 ms) from {concurrency} client threads, as fast as the API "
        "takes them"
    )
    submissions = burst(env, count, concurrency)
    result = _evaluate(env, submissions, timeout)
    _print_phase("burst", result)

    base_rate = max(0.5, result["throughput_per_s"] / 10)
    # ABBA order (1x, 3x, 3x, 1x): a drift over the run (the table growing, the machine warming)
    # weighs on both loads alike instead of on whichever ran second.
    order = (1, 3) if quick else (1, 3, 3, 1)
    windows: dict[int, list[Submission]] = {1: [], 3: []}
    achieved_rates: dict[int, list[float]] = {1: [], 3: []}
    for factor in order:
        rate = base_rate * factor
        say(f"Load {factor}x: {rate:.2f} predictions/s offered for {load_seconds:.0f} s")
        offered, achieved = offered_load(env, rate, load_seconds)
        env.receiver.wait_all([s.prediction_id for s in offered if s.prediction_id], timeout)
        windows[factor].extend(offered)
        achieved_rates[factor].append(achieved)
    load: dict[str, Any] = {}
    for factor in (1, 3):
        evaluated = _evaluate(env, windows[factor], timeout)
        evaluated["offered_rate_per_s"] = base_rate * factor
        evaluated["achieved_rate_per_s"] = statistics.fmean(achieved_rates[factor])
        evaluated["windows"] = order.count(factor)
        load[f"{factor}x"] = evaluated
    one, three = load["1x"], load["3x"]
    increase = three["latency_ms"]["mean"] / one["latency_ms"]["mean"] - 1 if one["latency_ms"]["n"] else float("nan")
    failures_3x = (three["submission_failures"] + three["lost"]) / max(1, three["submitted"])
    rows = [
        [
            k,
            v["offered_rate_per_s"],
            v["achieved_rate_per_s"],
            v["submitted"],
            v["terminal"],
            v["lost"],
            v["webhooks_duplicate"],
            v["latency_ms"]["mean"],
            v["latency_ms"]["p50"],
            v["latency_ms"]["p95"],
        ]
        for k, v in load.items()
    ]
    say(
        table(
            ["load", "offered/s", "achieved/s", "submitted", "terminal", "lost", "dup hooks", "mean ms", "p50", "p95"],
            rows,
            digits=1,
        )
    )
    say(
        f"Average latency at 3x vs 1x: {increase * 100:+.1f}% (reference: "
        f"{REFERENCE['avg_latency_increase_at_3x'] * 100:+.0f}%), failures at 3x: {failures_3x * 100:.1f}% "
        f"(reference: {REFERENCE['failure_rate'] * 100:.0f}%)"
    )
    say()
    ok = result["lost"] == 0 and result["webhooks_duplicate"] == 0 and result["webhooks_missing"] == 0
    return {
        "quick": quick,
        "service": SERVICE,
        "count": count,
        "concurrency": concurrency,
        "burst": result,
        "burst_ok": ok,
        "load": load,
        "load_seconds": load_seconds,
        "load_order": list(order),
        "base_rate_rule": "1x = max(0.5/s, burst throughput / 10)",
        "avg_latency_increase_3x_vs_1x": increase,
        "failure_rate_3x": failures_3x,
        "reference": REFERENCE,
        "meets_reference": bool(increase <= REFERENCE["avg_latency_increase_at_3x"] and failures_3x == 0),
    }


def _print_phase(name: str, r: dict[str, Any]) -> None:
    latency = r["latency_ms"]
    say(
        table(
            [
                "phase",
                "submitted",
                "accepted",
                "terminal",
                "lost",
                "missing hooks",
                "dup hooks",
                "submit/s",
                "done/s",
                "p50 ms",
                "p95 ms",
                "p99 ms",
            ],
            [
                [
                    name,
                    r["submitted"],
                    r["accepted"],
                    r["terminal"],
                    r["lost"],
                    r["webhooks_missing"],
                    r["webhooks_duplicate"],
                    r["submit_rate_per_s"],
                    r["throughput_per_s"],
                    latency["p50"],
                    latency["p95"],
                    latency["p99"],
                ]
            ],
            digits=1,
        )
    )
    if r["submission_errors"]:
        say(f"  submission errors: {r['submission_errors']}")
    say(
        f"  statuses: {r['statuses']}; duration {fmt(r['duration_s'])} s; mean latency "
        f"{statistics.fmean([latency['mean']]) if latency['n'] else float('nan'):.0f} ms"
    )

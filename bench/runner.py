"""Runs the benchmarks by name, sharing one local runtime between those that need it."""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Any

from .common import say, write_result

# name -> (module, needs the local runtime). Cold start runs first: it times fresh processes and
# should not compete with the runtime's threads for the CPU.
BENCHMARKS: dict[str, tuple[str, bool]] = {
    "cold_start": ("bench.cold_start", False),
    "mapping": ("bench.mapping_dsl", False),
    "dag_layout": ("bench.dag_layout", False),
    "cost": ("bench.cost", True),
    "aws_latency": ("bench.aws_latency", True),
    "peer": ("bench.peer", True),
    "overhead": ("bench.overhead", True),
    "burst": ("bench.burst", True),
}


def run_benchmarks(
    names: list[str] | None = None,
    *,
    quick: bool = False,
    runtime: Any = None,
    results_dir: Path | None = None,
) -> dict[str, dict[str, Any]]:
    """Run ``names`` (all by default) in the canonical order; write and return their results.

    ``runtime``: an already started ``LocalRuntime`` with the example catalog (e.g. the tests'
    session fixture) to use instead of starting one.
    """
    selected = [n for n in BENCHMARKS if names is None or n in names]
    unknown = sorted(set(names or []) - set(BENCHMARKS))
    if unknown:
        raise SystemExit(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    results: dict[str, dict[str, Any]] = {}
    env: Any = None
    try:
        for name in selected:
            module_name, needs_runtime = BENCHMARKS[name]
            module = importlib.import_module(module_name)
            say(f"=== {name}{' (quick)' if quick else ''} ===")
            started = time.monotonic()
            if needs_runtime:
                if env is None:
                    from .env import BenchEnv

                    say("starting the local runtime ..." if runtime is None else "using the given local runtime")
                    env = BenchEnv.start() if runtime is None else BenchEnv.attach(runtime)
                result = module.run(env, quick=quick)
            else:
                result = module.run(quick=quick)
            result["elapsed_seconds"] = time.monotonic() - started
            path = write_result(name, result, results_dir)
            say(f"[{name}: {result['elapsed_seconds']:.1f} s, wrote {path}]")
            say()
            results[name] = result
    finally:
        if env is not None:
            env.close()
    return results

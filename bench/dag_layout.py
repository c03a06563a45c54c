"""Declarative ensembles: what the generated layout costs against running the exact DAG.

The generator lays a DAG out as nested Parallel states (domain/asl_generation.py ``schedule``):
independent groups run side by side, and inside a connected group the steps with no dependency
left run together before the rest. Nested Parallels cannot express every DAG: in
``a → c, b → c, b → d``, ``d`` waits for ``a`` too. This benchmark measures that wait.

For each DAG, step durations are drawn (lognormal, median 1 s, seeded), and two makespans are
computed: the layout's (a sequence adds up, a Parallel takes its slowest branch) and the exact
DAG's (each step starts when its own dependencies finish: the critical path). The figure is the
layout's extra time over the exact one, for the shipped ensembles and for random DAGs of 3 to 12
steps (each possible edge present with probability 0.3). No AWS and no runtime: the layout is the
generator's own ``schedule`` over the DAG ``infer_dag`` builds.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from .common import say, table

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "catalog.json"


def _spec(upstream: dict[str, list[str]]) -> Any:
    from ensemble_gateway.domain.models import EnsembleSpec

    sinks = [s for s in upstream if not any(s in deps for deps in upstream.values())]
    return EnsembleSpec.model_validate(
        {
            "steps": {name: {"service": "echo", "after": deps} for name, deps in upstream.items()},
            "output": {"results": {name: f"$.steps.{name}" for name in sinks}},
        }
    )


def _layout_time(items: Any, durations: dict[str, float]) -> float:
    from ensemble_gateway.domain.asl_generation import Run

    total = 0.0
    for item in items:
        if isinstance(item, Run):
            total += durations[item.step]
        else:
            total += max(_layout_time(branch, durations) for branch in item.branches)
    return total


def _exact_time(upstream: dict[str, frozenset[str]], durations: dict[str, float]) -> float:
    finished: dict[str, float] = {}

    def finish(step: str) -> float:
        if step not in finished:
            finished[step] = max((finish(d) for d in upstream[step]), default=0.0) + durations[step]
        return finished[step]

    return max(finish(step) for step in upstream)


def _measure(name: str, spec: Any, rng: random.Random, draws: int) -> tuple[float, float]:
    """(mean extra seconds, mean extra %) of the layout over the exact DAG, over ``draws`` draws."""
    from ensemble_gateway.domain.asl_generation import schedule
    from ensemble_gateway.domain.ensemble_dag import infer_dag

    dag = infer_dag(name, spec)
    layout = schedule(dag)
    extra_seconds, extra_percent = 0.0, 0.0
    for _ in range(draws):
        durations = {step: rng.lognormvariate(0.0, 0.5) for step in dag.upstream}
        exact = _exact_time(dag.upstream, durations)
        laid_out = _layout_time(layout, durations)
        extra_seconds += laid_out - exact
        extra_percent += 100.0 * (laid_out - exact) / exact
    return extra_seconds / draws, extra_percent / draws


def _random_dag(rng: random.Random, size: int) -> dict[str, list[str]]:
    names = [f"s{i:02d}" for i in range(size)]
    return {name: [names[j] for j in range(i) if rng.random() < 0.3] for i, name in enumerate(names)}


def run(quick: bool = False) -> dict[str, Any]:
    from ensemble_gateway.domain.models import Service

    rng = random.Random(20261201)
    draws = 20 if quick else 400
    dag_count = 20 if quick else 500
    shipped = {}
    for entry in json.loads(EXAMPLES.read_text()):
        service = Service.model_validate(entry)
        if service.ensemble is not None and service.ensemble.definition is None:
            seconds, percent = _measure(service.name, service.ensemble, rng, draws)
            shipped[service.name] = {"extra_seconds": seconds, "extra_percent": percent}
    worst_shape = {"a": [], "b": [], "c": ["a", "b"], "d": ["b"]}
    seconds, percent = _measure("a-c-b-d", _spec(worst_shape), rng, draws)
    shipped["a → c, b → c, b → d"] = {"extra_seconds": seconds, "extra_percent": percent}
    extras = []
    exact_layouts = 0
    for index in range(dag_count):
        upstream = _random_dag(rng, rng.randint(3, 12))
        seconds, percent = _measure(f"random-{index}", _spec(upstream), rng, max(5, draws // 20))
        extras.append(percent)
        exact_layouts += seconds < 1e-9
    extras.sort()
    random_summary = {
        "dags": dag_count,
        "exact_share_percent": 100.0 * exact_layouts / dag_count,
        "mean_extra_percent": sum(extras) / len(extras),
        "p95_extra_percent": extras[int(0.95 * (len(extras) - 1))],
        "max_extra_percent": extras[-1],
    }
    say(
        table(
            ["DAG", "extra time (s, median step 1 s)", "extra %"],
            [[name, row["extra_seconds"], row["extra_percent"]] for name, row in shipped.items()],
            digits=2,
        )
    )
    say(
        f"random DAGs ({dag_count}, 3-12 steps): exact layout for {random_summary['exact_share_percent']:.0f} %, "
        f"extra time mean {random_summary['mean_extra_percent']:.1f} %, "
        f"p95 {random_summary['p95_extra_percent']:.1f} %, max {random_summary['max_extra_percent']:.1f} %"
    )
    return {"quick": quick, "shipped": shipped, "random": random_summary}

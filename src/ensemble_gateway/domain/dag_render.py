"""Pictures of a declarative ensemble's DAG: plain text for a terminal, Mermaid for docs and PRs.

The module is pure: no boto3, no I/O.
"""

from __future__ import annotations

import json
from typing import Any

from .conditions import describe_condition
from .ensemble_dag import EnsembleDag
from .errors import MappingError
from .mapping import referenced_roots
from .models import EnsembleSpec, EnsembleStep

__all__ = ["render_mermaid", "render_text"]


def _target(step: EnsembleStep) -> str:
    if step.fan_out is not None:
        return f"fan_out task {step.fan_out.task}"
    return str(step.service)


def _in_catalog_order(spec: EnsembleSpec, names: Any) -> list[str]:
    """Names in the order the catalog entry lists the steps: the order their author chose."""
    wanted = set(names)
    return [name for name in spec.steps if name in wanted]


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _json(value: Any) -> str:
    return json.dumps(value, separators=(", ", ": "))


def render_text(service_name: str, spec: EnsembleSpec, dag: EnsembleDag) -> str:
    """The DAG as lines of text, one per level.

    Parameters
    ----------
    service_name
        The ensemble's name.
    spec
        Its ``ensemble`` section (targets, conditions, optional steps).
    dag
        Its DAG, from ``ensemble_dag.infer_dag``.

    Returns
    -------
    str
        e.g.::

            ensemble 'vehicle-claim': 4 steps in 2 levels
            level 1: damage (damage-severity), cost (repair-cost), fraud (fraud-score)
            level 2: decision (claim-decision) ← damage, cost, fraud
            output: decision

        A step shows its target (``fan_out task <task>`` for a fan-out), ``← <dependencies>``,
        ``when <condition>`` and ``[optional, default <value>]``. Steps of a level are separated by
        ``, `` or, when any of them has more than its target, by ``; ``.
    """
    lines = [f"ensemble '{service_name}': {_count(len(spec.steps), 'step')} in {_count(len(dag.levels), 'level')}"]
    for number, level in enumerate(dag.levels, start=1):
        described = []
        annotated = False
        for name in _in_catalog_order(spec, level):
            step = spec.steps[name]
            parts = [f"{name} ({_target(step)})"]
            if dag.upstream[name]:
                parts.append("← " + ", ".join(_in_catalog_order(spec, dag.upstream[name])))
            if name in dag.conditions:
                parts.append(f"when {describe_condition(dag.conditions[name])}")
            if step.optional:
                parts.append(f"[optional, default {_json(step.default)}]")
            annotated = annotated or len(parts) > 1
            described.append(" ".join(parts))
        lines.append(f"level {number}: " + ("; " if annotated else ", ").join(described))
    if dag.output_step is not None:
        lines.append(f"output: {dag.output_step}")
    else:
        lines.append(f"output: {_json(dag.output_mapping)}")
    return "\n".join(lines)


def _label(text: str) -> str:
    """Text safe inside a quoted Mermaid label (entity codes for what Mermaid would parse)."""
    return text.replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def render_mermaid(service_name: str, spec: EnsembleSpec, dag: EnsembleDag) -> str:
    """The DAG as a Mermaid flowchart, in a fenced ```` ```mermaid ```` block.

    Parameters
    ----------
    service_name
        The ensemble's name (a comment in the chart).
    spec
        Its ``ensemble`` section.
    dag
        Its DAG, from ``ensemble_dag.infer_dag``.

    Returns
    -------
    str
        ``graph TD`` with one node per step (its name and target; a condition or ``optional``
        below), a solid edge from each step it reads, a dotted one for an ``after`` order, and an
        ``output`` node fed by the output step or by the steps the output mapping reads. Node ids
        are ``step1``, ``step2``... (step names may hold characters Mermaid gives a meaning to).
    """
    ids = {name: f"step{index}" for index, name in enumerate(spec.steps, start=1)}
    lines = ["```mermaid", "graph TD", f"  %% ensemble {service_name}"]
    for name, step in spec.steps.items():
        label = [name, _target(step)]
        if name in dag.conditions:
            label.append(f"when {describe_condition(dag.conditions[name])}")
        if step.optional:
            label.append("optional")
        shape = ("[[", "]]") if step.fan_out is not None else ("[", "]")
        lines.append(f'  {ids[name]}{shape[0]}"{"<br/>".join(_label(part) for part in label)}"{shape[1]}')
    for name, step in spec.steps.items():
        for dependency in _in_catalog_order(spec, dag.upstream[name]):
            arrow = "-.->" if dependency in step.after else "-->"
            lines.append(f"  {ids[dependency]} {arrow} {ids[name]}")
    lines.append('  output(["output"])')
    for name in _output_sources(spec, dag):
        lines.append(f"  {ids[name]} --> output")
    lines.append("```")
    return "\n".join(lines)


def _output_sources(spec: EnsembleSpec, dag: EnsembleDag) -> list[str]:
    if dag.output_step is not None:
        return [dag.output_step]
    try:
        roots = referenced_roots(dag.output_mapping)
    except MappingError:  # infer_dag has validated it; stay total all the same
        return list(dag.sinks)
    if ("steps", None) in roots:
        return _in_catalog_order(spec, dag.sinks)  # reads every step: they have all finished by then
    return _in_catalog_order(spec, {name for root, name in roots if root == "steps" and name is not None})

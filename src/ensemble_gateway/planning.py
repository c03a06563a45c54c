"""``services plan``: what ``services apply`` would register, shown before anything is registered.

For each ensemble of a catalog file: its DAG (text and a Mermaid ``graph TD`` block), the state
machine it deploys, and, given a sample request (and the outputs of upstream steps), the input
each step's model would receive. Validation is ``apply``'s own (:meth:`Registrar.plan`), so a
file that ``plan`` accepts, ``apply`` accepts, with the same messages when it does not.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .domain.asl import analyse
from .domain.conditions import condition_paths, describe_condition, evaluate, parse_condition
from .domain.dag_render import render_mermaid, render_text
from .domain.ensemble_dag import infer_dag
from .domain.errors import MappingError
from .domain.mapping import evaluate_mapping, referenced_roots
from .domain.models import Service
from .domain.registration import Registrar

__all__ = ["EnsemblePlan", "StepPreview", "plan_services", "preview_inputs"]


@dataclass
class EnsemblePlan:
    """One ensemble as ``apply`` would register it."""

    service: Service
    definition: dict[str, Any]
    text: str
    mermaid: str
    generated: bool


@dataclass
class StepPreview:
    """What one step would receive for a sample request (or why that cannot be known yet)."""

    step: str
    target: str
    status: str  # "input", "skipped", "needs", "error"
    content_type: str | None = None
    body: bytes = b""
    detail: str = ""
    needs: list[str] = field(default_factory=list)


class OfflineCatalog:
    """An empty catalog: ``plan`` without a gateway checks a file against itself only."""

    def get(self, name: str) -> Service | None:
        return None

    def get_many(self, names: Iterable[str]) -> dict[str, Service]:
        return {}

    def list(self, active_only: bool = True) -> list[Service]:
        return []

    def put(self, service: Service) -> None:
        raise RuntimeError("plan registers nothing")


def plan_services(registrar: Registrar, services: list[Service]) -> list[EnsemblePlan]:
    """Validate ``services`` exactly as ``apply`` does; describe each ensemble, register nothing.

    Raises
    ------
    CatalogValidationError
        With the message ``apply`` would give.
    """
    plans = []
    for service, definition_text in registrar.plan(services):
        if service.ensemble is None or definition_text is None:
            continue
        definition = json.loads(definition_text)
        spec = service.ensemble
        if spec.definition is None:
            dag = infer_dag(service.name, spec)
            text, mermaid = render_text(service.name, spec, dag), render_mermaid(service.name, spec, dag)
        else:
            text, mermaid = _hand_written_text(service, definition), _hand_written_mermaid(service, definition)
        plans.append(EnsemblePlan(service, definition, text, mermaid, generated=spec.definition is None))
    return plans


def _hand_written_text(service: Service, definition: Mapping[str, Any]) -> str:
    assert service.ensemble is not None
    analysis = analyse(definition)
    lines = [f"{service.name}: hand-written state machine {service.ensemble.definition}"]
    for step in sorted(analysis.steps, key=lambda name: (len(analysis.upstream[name]), name)):
        spec = service.ensemble.steps[step]
        target = spec.service or f"fan_out task {spec.fan_out.task if spec.fan_out else '?'}"
        before = sorted(analysis.upstream[step])
        lines.append(f"  {step} ({target})" + (f" after {', '.join(before)}" if before else ""))
    return "\n".join(lines)


def _hand_written_mermaid(service: Service, definition: Mapping[str, Any]) -> str:
    assert service.ensemble is not None
    analysis = analyse(definition)
    lines = ["```mermaid", "graph TD"]
    for step in sorted(analysis.steps):
        spec = service.ensemble.steps[step]
        target = spec.service or (spec.fan_out.task if spec.fan_out else "")
        lines.append(f'  {_node(step)}["{step}<br/>{target}"]')
    for step in sorted(analysis.steps):
        ancestors = analysis.upstream[step]
        # Only direct predecessors: an ancestor that another ancestor already follows is implied.
        direct = {a for a in ancestors if not any(a in analysis.upstream[b] for b in ancestors)}
        lines.extend(f"  {_node(a)} --> {_node(step)}" for a in sorted(direct))
    lines.append("```")
    return "\n".join(lines)


def _node(name: str) -> str:
    return "step_" + "".join(c if c.isalnum() else "_" for c in name)


def preview_inputs(
    service: Service,
    request: bytes,
    content_type: str,
    step_outputs: Mapping[str, Any],
    metadata: Mapping[str, str] | None = None,
) -> list[StepPreview]:
    """The input each step of a declarative ensemble would receive for ``request``.

    A step reading a step whose output is not in ``step_outputs`` is reported as needing it; a
    step whose ``when`` is false as skipped (later steps then see its default).
    """
    spec = service.ensemble
    assert spec is not None and spec.definition is None
    dag = infer_dag(service.name, spec)
    parsed: Any = None
    if content_type.split(";")[0].strip().lower() in ("application/json", "text/json"):
        try:
            parsed = json.loads(request)
        except ValueError as error:
            return [
                StepPreview(name, spec.steps[name].service or "", "error", detail=f"the sample is not JSON: {error}")
                for level in dag.levels
                for name in level
            ]
    outputs: dict[str, Any] = dict(step_outputs)
    previews = []
    for level in dag.levels:
        for name in level:
            step = spec.steps[name]
            target = step.service or f"every model of task '{step.fan_out.task if step.fan_out else ''}'"
            reads = {ref for root, ref in referenced_roots(step.mapping) if root == "steps" and ref}
            condition = parse_condition(dict(step.when), step=name) if step.when is not None else None
            if condition is not None:
                reads |= {ref for root, ref in referenced_roots(condition_paths(condition)) if root == "steps" and ref}
            needs = sorted(reads - set(outputs))
            if needs:
                previews.append(StepPreview(name, target, "needs", needs=needs))
                continue
            scope = {"input": parsed, "steps": outputs, "metadata": dict(metadata or {})}
            if condition is not None and not evaluate(condition, scope):
                outputs[name] = step.default
                previews.append(
                    StepPreview(name, target, "skipped", detail=f"when {describe_condition(condition)} is false")
                )
                continue
            try:
                mapped = evaluate_mapping(
                    step.mapping, scope, step=name, raw_input=request, raw_content_type=content_type
                )
            except MappingError as error:
                previews.append(StepPreview(name, target, "error", detail=error.message))
                continue
            previews.append(StepPreview(name, target, "input", content_type=mapped.content_type, body=mapped.body))
    return previews

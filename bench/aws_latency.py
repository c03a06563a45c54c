"""Modelled AWS latency: the critical path of each example service, priced in published hop medians.

Each example service gets one prediction in the local runtime with the recorder installed. From
what actually happened — function invocations and the AWS calls inside them (``bench.trace``),
the local SageMaker runtime's calls, and each Step Functions execution's history with its
``previousEventId`` links — a causal graph is built from the upload to the prediction's
``COMPLETED``/``FAILED`` write (and on to the webhook delivery):

- upload → process-input: S3 ObjectCreated → SQS → Lambda (two hops);
- inside an invocation, its calls one after another (each an AWS API round trip), with the
  locally measured compute between them;
- a Publish → the notifications invocation for that inference ID: SNS → Lambda;
- a webhook SendMessage → webhook-delivery: SQS → Lambda;
- InvokeEndpointAsync → the SageMaker worker reading the input (async queue pick-up), the model
  (excluded), the output write and the SNS publish;
- StartExecution / SendTaskSuccess → the history events they cause → TaskScheduled → the
  get-transform-call invocation: Step Functions → Lambda, plus every extra state entered
  (Parallel, Choice, Map) on the way; Parallel and Map joins wait for all their branches.

The longest path (by modelled time) through that graph is the critical path. Each edge is
priced with a published median where one exists (``HOPS``, sources cited) and an explicit
assumption otherwise (``HOPS`` entries marked ``assumption``, and ``API_P50`` for single API
calls). Model time is excluded. In-function compute is the locally measured time between calls.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ensemble_gateway.domain.media_types import media_type

from .common import fmt, say, table
from .env import CHAIN_SERVICE, BenchEnv
from .trace import Call, Invocation

# Producer-to-consumer medians. "published": Bite-Sized Serverless, "Serverless Messaging: Latency
# Compared" (https://bitesizedserverless.com/bite/serverless-messaging-latency-compared/), tests of
# 1,024 messages each, 4-5 September 2022, eu-west-1; the latency is measured from the producer's
# timestamp before its send call to the consumer Lambda's start, so it includes the send call.
HOPS: dict[str, dict[str, Any]] = {
    "sqs_to_lambda": {
        "ms": 16.2,
        "kind": "published",
        "source": "Bite-Sized Serverless 2022: SQS Standard -> Lambda event source mapping, p50 16.2 ms",
    },
    "sns_to_lambda": {
        "ms": 73.0,
        "kind": "published",
        "source": "Bite-Sized Serverless 2022: SNS Standard -> Lambda (async invoke), p50 73 ms",
    },
    "sfn_to_lambda": {
        "ms": 142.0,
        "kind": "published",
        "source": "Bite-Sized Serverless 2022: Step Functions Standard -> Lambda, p50 142 ms (StartExecution to "
        "the Lambda running); used likewise for SendTaskSuccess -> next Task's Lambda",
    },
    "sfn_extra_transition": {
        "ms": 25.0,
        "kind": "assumption",
        "source": "assumption: each further state entered on the way (Parallel, Choice, Map) adds 25 ms; "
        "no published median",
    },
    "s3_event_to_sqs": {
        "ms": 200.0,
        "kind": "assumption",
        "source": "assumption: S3 event notification delivery to SQS, 200 ms; AWS documents 'typically seconds' "
        "without a median; github.com/lukehoban/lambdaperf found S3 events close to SNS",
    },
    "sagemaker_async_pickup": {
        "ms": 250.0,
        "kind": "assumption",
        "source": "assumption: SageMaker async internal queue to a warm, idle instance starting the request, "
        "250 ms; not published",
    },
    "apigw_to_lambda": {
        "ms": 15.0,
        "kind": "assumption",
        "source": "assumption: API Gateway REST integration overhead before a warm Lambda, 15 ms",
    },
}

# One API round trip from a warm Lambda in the same region, p50. DynamoDB: "single-digit
# millisecond" (AWS DynamoDB product page); the rest are assumptions.
API_P50: dict[str, float] = {
    "dynamodb:GetItem": 5.0,
    "dynamodb:PutItem": 6.0,
    "dynamodb:UpdateItem": 6.0,
    "dynamodb:DeleteItem": 6.0,
    "dynamodb:Query": 8.0,
    "dynamodb:BatchGetItem": 8.0,  # a handful of small items, like a Query
    "dynamodb:Scan": 10.0,
    "dynamodb:TransactWriteItems": 15.0,
    "s3:GetObject": 25.0,
    "s3:HeadObject": 15.0,
    "s3:PutObject": 35.0,
    # A server-side copy of a small object (accepting an upload): about a PUT.
    "s3:CopyObject": 40.0,
    "s3:DeleteObject": 20.0,
    "sqs:SendMessage": 10.0,
    "sns:Publish": 15.0,
    "stepfunctions:StartExecution": 30.0,
    "stepfunctions:SendTaskSuccess": 25.0,
    "stepfunctions:SendTaskFailure": 25.0,
    "sagemaker-runtime:InvokeEndpointAsync": 30.0,
    # Real-time: SageMaker's OverheadLatency plus the network, excluding the model's own time.
    "sagemaker-runtime:InvokeEndpoint": 20.0,
}
API_DEFAULT_MS = 20.0
TARGET_ENSEMBLE = "vehicle-claim"
TARGET_MS = 1000.0
# Issue 19, from the POST of a one-request prediction (input inline) to its terminal status.
INLINE_TARGETS_MS = {"vehicle-claim inline": 1000.0, "repair-cost inline": 150.0, "fraud-score inline": 450.0}
TERMINAL = ("COMPLETED", "FAILED", "EXPIRED")
JOINS = ("ParallelStateSucceeded", "ParallelStateExited", "MapStateSucceeded", "MapStateExited")
QUICK_SERVICES = ["fraud-score", "repair-cost", "vehicle-claim", "complaint-triage"]


@dataclass
class Edge:
    source: str
    weight: float  # modelled ms
    kind: str  # hop | api | compute | model | sfn | link
    label: str
    ref: str = ""  # the HOPS entry a hop or extra state is priced with


@dataclass
class Graph:
    times: dict[str, float] = field(default_factory=dict)  # local wall-clock time of each node
    preds: dict[str, list[Edge]] = field(default_factory=dict)

    def node(self, name: str, t: float) -> str:
        self.times.setdefault(name, t)
        self.preds.setdefault(name, [])
        return name

    def edge(self, source: str, target: str, weight: float, kind: str, label: str, ref: str = "") -> None:
        self.preds.setdefault(target, []).append(Edge(source, weight, kind, label, ref))

    def longest(self, root: str, target: str) -> tuple[float, list[tuple[str, Edge]]]:
        """Longest modelled path root → target (iterative DFS over predecessors)."""
        best: dict[str, tuple[float, Edge | None]] = {root: (0.0, None)}
        stack: list[tuple[str, bool]] = [(target, False)]
        visiting: set[str] = set()
        while stack:
            name, expanded = stack.pop()
            if name in best:
                continue
            if not expanded:
                if name in visiting:
                    best[name] = (-math.inf, None)  # a cycle: cannot happen in a causal graph
                    continue
                visiting.add(name)
                stack.append((name, True))
                for edge in self.preds.get(name, []):
                    if edge.source not in best:
                        stack.append((edge.source, False))
                continue
            value, chosen = -math.inf, None
            for edge in self.preds.get(name, []):
                length = best.get(edge.source, (-math.inf, None))[0] + edge.weight
                if length > value:
                    value, chosen = length, edge
            best[name] = (value, chosen)
        total = best.get(target, (-math.inf, None))[0]
        path: list[tuple[str, Edge]] = []
        name = target
        while name != root and math.isfinite(total):
            edge = best[name][1]
            if edge is None:
                break
            path.append((name, edge))
            name = edge.source
        path.reverse()
        return total, path


def _ts(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


def _api_ms(call: Call) -> float:
    return API_P50.get(call.name, API_DEFAULT_MS)


def sagemaker_jobs(calls: list[Call]) -> dict[int, str]:
    """The inference each SageMaker worker call belongs to (call id -> prediction ID).

    A worker reads an input, runs the model, writes the output and publishes; a shadow reads its
    primary's input, so the recorder tags its read with the primary: the job's publish (its
    ``InferenceId``) says whose job it was.
    """
    owner: dict[int, str] = {}
    by_thread: dict[str, list[Call]] = defaultdict(list)
    for c in calls:
        if c.source == "sagemaker":
            by_thread[c.thread].append(c)
    for thread_calls in by_thread.values():
        job: list[Call] = []
        for c in sorted(thread_calls, key=lambda c: c.t0):
            if c.name == "s3:GetObject" and job:
                owner.update((id(j), str(job[0].info.get("prediction_id", ""))) for j in job)
                job = []
            job.append(c)
            if c.name == "sns:Publish":
                pid = str(c.info.get("prediction_id") or (job[0].info.get("prediction_id", "")))
                owner.update((id(j), pid) for j in job)
                job = []
        owner.update((id(j), str(job[0].info.get("prediction_id", ""))) for j in job)
    return owner


def build_graph(
    prediction_id: str,
    uploaded_at: float,
    calls: list[Call],
    invocations: list[Invocation],
    history: list[dict[str, Any]],
    *,
    inline: bool = False,
) -> tuple[Graph, str | None, str | None]:
    """(graph, terminal node, webhook node) of one top-level prediction.

    ``inline``: the input came in the POST (no upload, no S3 event): the path starts at the POST,
    through API Gateway to new-prediction, which dispatches it."""
    g = Graph()
    root = g.node("upload", uploaded_at)
    hop = {k: float(v["ms"]) for k, v in HOPS.items()}
    call_start: dict[int, str] = {}
    call_end: dict[int, str] = {}
    invocations = [i for i in invocations if i.function != "sweeper"]

    # Calls inside invocations, one after another.
    for inv in invocations:
        start = g.node(f"inv{inv.id}:start", inv.t0)
        previous, previous_t = start, inv.t0
        for call in sorted(inv.calls, key=lambda c: c.t0):
            s = g.node(f"call{id(call)}:start", call.t0)
            e = g.node(f"call{id(call)}:end", call.t1)
            call_start[id(call)], call_end[id(call)] = s, e
            gap = max(0.0, (call.t0 - previous_t) * 1000)
            g.edge(previous, s, gap, "compute", f"{inv.function}: compute")
            g.edge(s, e, _api_ms(call), "api", f"{inv.function}: {call.name}")
            previous, previous_t = e, call.t1
        end = g.node(f"inv{inv.id}:end", inv.t1)
        g.edge(previous, end, max(0.0, (inv.t1 - previous_t) * 1000), "compute", f"{inv.function}: compute")

    def latest(candidates: list[Call], before: float) -> Call | None:
        eligible = [c for c in candidates if c.t0 <= before + 0.001]
        return max(eligible, key=lambda c: c.t0) if eligible else None

    publishes = [c for c in calls if c.service == "sns" and c.operation == "Publish"]
    owners = sagemaker_jobs(calls)
    webhook_sends = [c for c in calls if c.service == "sqs" and c.operation == "SendMessage" and c.source == "function"]

    # SageMaker async jobs: InvokeEndpointAsync → pick-up → input read → model → output write → publish.
    for call in calls:
        if call.name != "sagemaker-runtime:InvokeEndpointAsync":
            continue
        target = call.info.get("prediction_id")
        job = sorted((c for c in calls if c.source == "sagemaker" and owners.get(id(c)) == target), key=lambda c: c.t0)
        previous = call_end.get(id(call))
        if previous is None:
            continue
        for index, job_call in enumerate(job):
            s = g.node(f"call{id(job_call)}:start", job_call.t0)
            e = g.node(f"call{id(job_call)}:end", job_call.t1)
            call_start[id(job_call)], call_end[id(job_call)] = s, e
            if index == 0:
                g.edge(
                    previous,
                    s,
                    hop["sagemaker_async_pickup"],
                    "hop",
                    "SageMaker async queue -> instance",
                    "sagemaker_async_pickup",
                )
            elif job_call.name == "s3:PutObject" and job[index - 1].name == "s3:GetObject":
                g.edge(previous, s, 0.0, "model", "model (excluded)")
            else:
                g.edge(previous, s, 0.0, "link", "sagemaker")
            g.edge(s, e, _api_ms(job_call), "api", f"sagemaker: {job_call.name}")
            previous = e

    def link_senders(inv: Invocation, sends: list[Call], hop_name: str, label: str) -> None:
        """An edge from the latest send for each prediction of ``inv`` to its start: one hop."""
        for target in inv.info.get("prediction_ids", []):
            found = latest([c for c in sends if c.info.get("prediction_id") == target], inv.t0)
            if found is not None and id(found) in call_start:
                g.edge(call_start[id(found)], f"inv{inv.id}:start", hop[hop_name], "hop", label, hop_name)

    # Triggers of invocations.
    for inv in invocations:
        start = f"inv{inv.id}:start"
        if inline and inv.trigger == "api" and inv.info.get("method") == "POST":
            label = "API Gateway -> Lambda (new-prediction)"
            g.edge(root, start, hop["apigw_to_lambda"], "hop", label, "apigw_to_lambda")
        elif inv.function == "process-input" and prediction_id in inv.info.get("prediction_ids", []):
            queued = g.node(f"s3event{inv.id}", inv.t0)
            g.edge(root, queued, hop["s3_event_to_sqs"], "hop", "S3 ObjectCreated -> SQS", "s3_event_to_sqs")
            g.edge(queued, start, hop["sqs_to_lambda"], "hop", "SQS -> Lambda (process-input)", "sqs_to_lambda")
        elif inv.trigger == "sns":
            link_senders(inv, publishes, "sns_to_lambda", "SNS -> Lambda (notifications)")
        elif inv.function == "webhook-delivery":
            link_senders(inv, webhook_sends, "sqs_to_lambda", "SQS -> Lambda (webhook-delivery)")

    # Step Functions: the execution's events, linked by previousEventId, joins, callbacks.
    events = {int(e["id"]): e for e in history}
    children: dict[int, list[int]] = {}
    for event_id, event in events.items():
        children.setdefault(int(event.get("previousEventId") or 0), []).append(event_id)
    tokens: dict[int, str] = {}  # TaskScheduled id -> task token
    payloads: dict[int, dict[str, Any]] = {}
    for event_id, event in events.items():
        node = g.node(f"sfn{event_id}", _ts(event["timestamp"]))
        kind = str(event["type"])
        previous_id = int(event.get("previousEventId") or 0)
        if event_id == 1:
            start_calls = [
                c
                for c in calls
                if c.name == "stepfunctions:StartExecution" and c.info.get("prediction_id") == prediction_id
            ]
            if start_calls and id(start_calls[0]) in call_start:
                g.edge(call_start[id(start_calls[0])], node, 0.0, "sfn", "StartExecution -> execution started")
        else:
            source = f"sfn{previous_id or 1}"
            weight = (
                hop["sfn_extra_transition"] if kind.endswith("StateEntered") and kind != "TaskStateEntered" else 0.0
            )
            name = (event.get("stateEnteredEventDetails") or {}).get("name", "")
            g.edge(
                source,
                node,
                weight,
                "sfn",
                f"Step Functions: {kind} {name}".rstrip(),
                "sfn_extra_transition" if weight else "",
            )
        if kind == "TaskScheduled":
            details = event.get("taskScheduledEventDetails") or {}
            try:
                payload = json.loads(details.get("parameters") or "{}").get("Payload") or {}
            except ValueError:
                payload = {}
            payloads[event_id] = payload
            if payload.get("task_token"):
                tokens[event_id] = str(payload["task_token"])
    for event_id, event in events.items():
        kind = str(event["type"])
        if kind in JOINS:
            for end in _branch_ends(event_id, events, children):
                g.edge(f"sfn{end}", f"sfn{event_id}", 0.0, "sfn", "Step Functions: branch joins")
        if kind == "TaskSucceeded":
            scheduled = _ancestor(event_id, events, "TaskScheduled")
            token = tokens.get(scheduled) if scheduled else None
            if token:
                senders = [
                    c for c in calls if c.name == "stepfunctions:SendTaskSuccess" and c.info.get("token") == token
                ]
                if senders and id(senders[0]) in call_start:
                    g.edge(
                        call_start[id(senders[0])], f"sfn{event_id}", 0.0, "sfn", "SendTaskSuccess -> task succeeded"
                    )
            elif scheduled:
                invoked = _invocation_for(payloads.get(scheduled, {}), invocations, _ts(events[scheduled]["timestamp"]))
                if invoked is not None:
                    g.edge(f"inv{invoked.id}:end", f"sfn{event_id}", 0.0, "sfn", "Lambda returned -> task succeeded")
    for event_id, payload in payloads.items():
        invoked = _invocation_for(payload, invocations, _ts(events[event_id]["timestamp"]))
        if invoked is not None:
            action = f"{payload.get('action')} {payload.get('step') or ''}".strip()
            g.edge(
                f"sfn{event_id}",
                f"inv{invoked.id}:start",
                hop["sfn_to_lambda"],
                "hop",
                f"Step Functions -> Lambda (get-transform-call {action})",
                "sfn_to_lambda",
            )

    terminal = None
    for call in sorted(calls, key=lambda c: c.t0):
        if (
            call.info.get("prediction_id") == prediction_id
            and call.info.get("new_status") in TERMINAL
            and id(call) in call_end
        ):
            terminal = call_end[id(call)]
            break
    webhook = None
    for inv in sorted(invocations, key=lambda i: i.t0):
        if inv.function == "webhook-delivery" and prediction_id in inv.info.get("prediction_ids", []):
            webhook = f"inv{inv.id}:end"
            break
    return g, terminal, webhook


def _ancestor(event_id: int, events: dict[int, dict[str, Any]], kind: str) -> int | None:
    current = events.get(event_id)
    while current is not None:
        if current["type"] == kind:
            return int(current["id"])
        previous = int(current.get("previousEventId") or 0)
        current = events.get(previous) if previous else None
    return None


def _branch_ends(join_id: int, events: dict[int, dict[str, Any]], children: dict[int, list[int]]) -> list[int]:
    """The last event of every branch (Parallel) or iteration (Map) that ``join_id`` waits for."""
    started_kind = "MapStateStarted" if events[join_id]["type"].startswith("Map") else "ParallelStateStarted"
    started = _ancestor(join_id, events, started_kind)
    if started is None:
        return []
    ends = []
    for head in children.get(started, []):
        if head >= join_id:
            continue
        subtree, pending = [], [head]
        while pending:
            current = pending.pop()
            if current < join_id:
                subtree.append(current)
                pending.extend(children.get(current, []))
        ends.append(max(subtree))
    return ends


def _invocation_for(payload: dict[str, Any], invocations: list[Invocation], scheduled_at: float) -> Invocation | None:
    if not payload:
        return None
    candidates = [
        i
        for i in invocations
        if i.function == "get-transform-call"
        and i.info.get("action") == payload.get("action")
        and i.info.get("parent") == payload.get("ensemble_prediction_id")
        and (i.info.get("step") or None) == (payload.get("step") or None)
        and (i.info.get("token") or None) == (payload.get("task_token") or None)
        and (i.info.get("service") or None) == (payload.get("service") or None)
        and i.t0 >= scheduled_at - 0.01
    ]
    return min(candidates, key=lambda i: i.t0) if candidates else None


def summarise_path(path: list[tuple[str, Edge]], times: dict[str, float]) -> dict[str, Any]:
    """Hop counts and modelled ms by kind, and the condensed sequence."""
    counts: Counter[str] = Counter()
    ms: Counter[str] = Counter()
    priced: Counter[str] = Counter()
    sequence: list[dict[str, Any]] = []
    sequential_hops = 0
    for node, edge in path:
        if edge.kind == "hop":
            sequential_hops += 1
        if edge.ref:
            priced["published_hops_ms" if HOPS[edge.ref]["kind"] == "published" else "assumed_hops_ms"] += edge.weight
        elif edge.kind == "api":
            priced["api_calls_ms"] += edge.weight
        elif edge.kind == "compute":
            priced["compute_ms"] += edge.weight
        local_ms = (times.get(node, 0.0) - times.get(edge.source, 0.0)) * 1000
        if edge.kind == "hop":
            key = edge.label.split(" (")[0]
        elif edge.kind == "api":
            key = "AWS API call"
        elif edge.kind == "sfn" and edge.weight > 0:
            key = "Step Functions extra state"
        else:
            key = {"compute": "in-function compute", "model": "model (excluded)"}.get(edge.kind, "")
        if key and (edge.weight > 0 or edge.kind in ("hop", "api", "model")):
            counts[key] += 1
            ms[key] += edge.weight
        sequence.append(
            {
                "label": edge.label,
                "kind": edge.kind,
                "modelled_ms": round(edge.weight, 1),
                "local_ms": round(local_ms, 1),
            }
        )
    return {
        "sequential_hops": sequential_hops,
        "hops": dict(counts),
        "modelled_ms_by_origin": {
            k: round(priced.get(k, 0.0), 1)
            for k in ("published_hops_ms", "assumed_hops_ms", "api_calls_ms", "compute_ms")
        },
        "modelled_ms_by_kind": {k: round(v, 1) for k, v in ms.items()},
        "sequence": sequence,
    }


def condensed(sequence: list[dict[str, Any]]) -> str:
    """The path as hops, with each function's consecutive API calls collapsed."""
    parts: list[str] = []
    calls = 0
    calls_ms = 0.0
    for item in sequence:
        if item["kind"] in ("api", "compute"):
            if item["kind"] == "api":
                calls += 1
            calls_ms += item["modelled_ms"]
            continue
        if calls:
            parts.append(f"[{calls} calls {calls_ms:.0f} ms]")
            calls, calls_ms = 0, 0.0
        if item["kind"] == "hop":
            parts.append(f"{item['label']} {item['modelled_ms']:.0f}")
        elif item["kind"] == "sfn" and item["modelled_ms"] > 0:
            parts.append(f"{item['label'].replace('Step Functions: ', '')} {item['modelled_ms']:.0f}")
        elif item["kind"] == "model":
            parts.append("model")
    if calls:
        parts.append(f"[{calls} calls {calls_ms:.0f} ms]")
    return " > ".join(parts)


def sample_of(env: BenchEnv, service: str) -> tuple[bytes, str]:
    return env.samples(service)[0] if service != CHAIN_SERVICE else (b'{"sleep_ms": 0}', "application/json")


def measure(env: BenchEnv, recorder: Any, service: str, *, inline: bool = False) -> dict[str, Any]:
    data, content_type = sample_of(env, service)
    submission, hook, calls, invocations = env.traced_prediction(recorder, service, data, content_type, inline=inline)
    is_ensemble = env.service(service).kind == "ensemble"
    history = env.execution_history(service, submission.prediction_id) if is_ensemble else []
    graph, terminal, webhook = build_graph(
        submission.prediction_id, submission.uploaded_at, calls, invocations, history, inline=inline
    )
    record = env.record(submission.prediction_id)
    local_ms = (
        (record.finished_at.timestamp() - submission.uploaded_at) * 1000 if record and record.finished_at else math.nan
    )
    result: dict[str, Any] = {
        "status": hook.status,
        "prediction_id": submission.prediction_id,
        "local_upload_to_terminal_ms": local_ms,
        "local_upload_to_webhook_ms": (hook.received_at - submission.uploaded_at) * 1000,
    }
    if terminal is None:
        result["error"] = "no terminal status write found in the trace"
        return result
    total, path = graph.longest("upload", terminal)
    summary = summarise_path(path, graph.times)
    result.update(modelled_ms=total, **summary, condensed=condensed(summary["sequence"]))
    if webhook is not None:
        result["modelled_to_webhook_ms"] = graph.longest("upload", webhook)[0]
    result["modelled_submit_ms"] = submit_ms(invocations)
    return result


def submit_ms(invocations: list[Invocation]) -> float:
    """POST /predictions answered: API Gateway -> Lambda, then new-prediction's calls one by one."""
    for inv in invocations:
        if inv.trigger == "api" and inv.info.get("method") == "POST":
            total, previous_t = float(HOPS["apigw_to_lambda"]["ms"]), inv.t0
            for call in sorted(inv.calls, key=lambda c: c.t0):
                total += max(0.0, (call.t0 - previous_t) * 1000) + _api_ms(call)
                previous_t = call.t1
            return total + max(0.0, (inv.t1 - previous_t) * 1000)
    return math.nan


def run(env: BenchEnv, quick: bool = False) -> dict[str, Any]:
    services = QUICK_SERVICES if quick else [s.name for s in _catalog(env)] + [CHAIN_SERVICE]
    say(
        f"Modelled AWS latency: one traced prediction per service ({len(services)} services), critical path "
        "priced with published per-hop medians (model time excluded)"
    )
    results: dict[str, Any] = {}
    with env.recorder() as recorder:
        for service in services:
            results[service] = measure(env, recorder, service)
        # The same with the input in the POST (JSON samples only): one request, no S3 event.
        for service in services:
            if media_type(sample_of(env, service)[1]) == "application/json":
                results[f"{service} inline"] = measure(env, recorder, service, inline=True)
    rows = []
    for service, r in results.items():
        hops = r.get("hops", {})
        origin = r.get("modelled_ms_by_origin", {})
        rows.append(
            [
                service,
                r["status"],
                r.get("modelled_ms", math.nan),
                r.get("modelled_to_webhook_ms", math.nan),
                origin.get("published_hops_ms", math.nan),
                origin.get("assumed_hops_ms", math.nan),
                origin.get("api_calls_ms", math.nan),
                origin.get("compute_ms", math.nan),
                r.get("sequential_hops", 0),
                hops.get("SQS -> Lambda", 0),
                hops.get("SNS -> Lambda", 0),
                hops.get("Step Functions -> Lambda", 0),
                hops.get("Step Functions extra state", 0),
                hops.get("AWS API call", 0),
                r["local_upload_to_terminal_ms"],
                r.get("modelled_submit_ms", math.nan),
            ]
        )
    say(
        table(
            [
                "service",
                "status",
                "AWS ms",
                "+webhook",
                "published",
                "assumed",
                "API",
                "compute",
                "hops",
                "SQS>L",
                "SNS>L",
                "SFN>L",
                "states",
                "API calls",
                "local ms",
                "submit",
            ],
            rows,
            digits=0,
        )
    )
    say(
        "AWS ms = modelled upload -> terminal status written (model time excluded); +webhook = to the webhook "
        "delivery; published/assumed = hop latencies from published medians / assumptions; API = sequential AWS "
        "API calls; compute = measured locally between calls; local ms = measured here, model time included; "
        "submit = modelled POST /predictions (API Gateway + new-prediction)."
    )
    say()
    for service, r in results.items():
        if "condensed" in r:
            say(f"{service}: {r['condensed']}")
    target = results.get(TARGET_ENSEMBLE, {})
    met = bool(target.get("modelled_ms", math.inf) <= TARGET_MS)
    inline_targets = {
        label: {"max_ms": limit, "modelled_ms": results.get(label, {}).get("modelled_ms")}
        for label, limit in INLINE_TARGETS_MS.items()
        if label in results
    }
    for label, entry in inline_targets.items():
        entry["met"] = bool((entry["modelled_ms"] or math.inf) <= entry["max_ms"])
        say(
            f"Target (POST -> terminal): {label} <= {entry['max_ms']:.0f} ms: "
            f"{fmt(entry['modelled_ms'] or math.nan, 0)} ms -> {'met' if entry['met'] else 'NOT met'}"
        )
    assumed = [k for k, v in HOPS.items() if v["kind"] == "assumption"]
    say()
    say(
        f"Target: {TARGET_ENSEMBLE} modelled overhead <= {TARGET_MS:.0f} ms: "
        f"{fmt(target.get('modelled_ms', math.nan), 0)} ms -> {'met' if met else 'NOT met'}"
    )
    assumed_text = ", ".join(f"{k}={HOPS[k]['ms']:g} ms" for k in assumed)
    say(
        f"(assumed, unpublished hop figures: {assumed_text}; API call p50s are assumptions too, "
        "see bench/aws_latency.py)"
    )
    say()
    return {
        "quick": quick,
        "hops": HOPS,
        "api_p50_ms": API_P50,
        "api_default_ms": API_DEFAULT_MS,
        "services": results,
        "target": {
            "service": TARGET_ENSEMBLE,
            "max_ms": TARGET_MS,
            "modelled_ms": target.get("modelled_ms"),
            "met": met,
            "inline": inline_targets,
        },
    }


def _catalog(env: BenchEnv) -> list[Any]:
    from ensemble_gateway.adapters.dynamodb import DynamoServiceCatalog

    from .trace import untraced

    with untraced():
        catalog = DynamoServiceCatalog(env.runtime.stack.outputs["ServicesTableName"], env.runtime.client("dynamodb"))
        return [
            s
            for s in catalog.list(active_only=True)
            if s.name != CHAIN_SERVICE and (env.runtime.root / "examples" / s.name / "samples").is_dir()
        ]

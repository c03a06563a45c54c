"""A peer, side by side: the CCC design priced and timed from the same traced run as ours.

CCC is the reference design this project is compared with: an ensemble orchestration on AWS with
Step Functions where every step goes through the full single-model path. As its authors describe
it, per step: a Lambda reads the step's inputs back from S3 and calls the new-prediction code; the
step's child then takes the single-model path (new prediction record, S3 input object, S3 event
→ SQS → process-input → SageMaker → SNS → notification Lambda); SNS notifies every completion;
a final Lambda assembles the result.

Nothing of CCC runs here. Each service gets traced predictions in the local runtime, exactly as
``bench.cost`` and ``bench.aws_latency`` trace them; *ours* is priced and timed with their own
functions (``cost.account``, ``aws_latency.build_graph``) on that trace, and *CCC* is a derived
counterfactual of the same trace: the same request, the same steps with the same children, the
same DAG (the same Step Functions layout), the same sizes, with each step's work replaced by what
CCC does for it. The single-model path a CCC step runs is *ours, as traced in the same run*: the
standalone ``fraud-score`` (async) and ``repair-cost`` (real-time) predictions of each round are
the templates. Prices: ``cost.PRICES``; hop medians and API p50s: ``aws_latency.HOPS`` and
``aws_latency.API_P50`` (published figures and assumptions flagged there by ``kind``).

How our trace is split (``partition``), into pieces both designs share or not:

- ``submit`` (shared): API Gateway's request and new-prediction's invocation;
- ``client upload via S3 event`` (shared; ``CLIENT_UPLOAD``): the client's presigned upload, the
  S3 notification, the input queue's receive/delete and process-input's invocation of the
  top-level prediction; the piece an inline-input path (no upload) would change for both;
- ``result`` (shared): webhook-delivery, its queue's receive/delete, the client's download;
- ``shadows`` (shared): shadow dispatch, the shadows' SageMaker work and notifications (CCC's
  new-prediction code would start the same shadows);
- ``orchestration`` (shared): Step Functions transitions;
- ``steps``: per child, its get-transform-call and notification invocations and SageMaker work;
- ``finish``: the Complete task's invocation and the calls that finish the ensemble (output
  document, terminal status, webhook enqueue, decision record), wherever ours makes them.

CCC, per child of the traced run (``ccc_step``):

1. Step Functions → the step Lambda (a Lambda request; the same Task state as ours, so the same
   transitions). It reads the step's inputs back from S3, one ``GetObject`` each, one after
   another: the request if the step's mapping or ``when`` reads ``$.input``, and the output of
   every child of each step it reads (a fan-out: one per member; a skipped step: none). It then
   runs the new-prediction code in process: the calls new-prediction made in the standalone run
   *without the API-key lookups* (a Lambda calling the code is not an API client), and writes the
   step input to S3 where a client would upload it (one ``PutObject``).
2. The step input's S3 event → SQS → process-input (``STEP_S3_EVENT``): one S3 notification, the
   input queue's receive/delete and process-input's invocation, its calls as in the standalone run
   of a model of the same invocation kind (shadow work removed).
3. Async models: SageMaker's reads, write and SNS publish as in the standalone async run.
   Real-time models: "SNS for every completion": process-input writes the output (as ours does)
   and publishes the completion to SNS instead of finishing the prediction itself.
4. SNS → the notification Lambda: its calls as in the standalone async run, the webhook enqueue
   replaced by ``SendTaskSuccess`` (a child resumes its workflow; it has no webhook).

A skipped step (``when`` false) is priced as ours: the step Lambda settles it, nothing is called.
The final Lambda (``ccc_finish``): Step Functions → Lambda (the Complete task ours runs as
well), it reads back from S3 every output the ensemble's ``output`` names (a step: each of its
children's outputs; a mapping: those of every step it reads), then makes the finishing calls ours
made, in our order. Standalone services: an async model's path *is* CCC's (ratio 1); a real-time
model's completion goes through SNS and the notification Lambda as in 3-4.

Durations: a CCC Lambda is billed for the local in-function time of the invocation it stands for
(the step Lambda: our get-transform-call of that step, its finishing calls excluded; the rest: the
template's) plus the local time of each call it makes (a call CCC adds: the mean local time of
that operation in the trace). Latency: CCC's critical path is the longest path through our
execution's Step Functions history (the same layout, joins wait for every branch) with each
step's Task priced as the CCC chain above (hops from ``aws_latency.HOPS``, each call its
``API_P50``), the front (upload → execution started) as ours, and the final Lambda after the
last step. Stated assumptions: ``ASSUMPTIONS`` (each with its ``kind``), also in the JSON.
"""

from __future__ import annotations

import dataclasses
import math
import re
import statistics
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from . import aws_latency, cost
from .common import say, table
from .env import BenchEnv
from .trace import Call, Invocation

SERVICES = cost.SERVICES
ASYNC_TEMPLATE = "fraud-score"
REALTIME_TEMPLATE = "repair-cost"
CLIENT_UPLOAD = "client upload via S3 event"
STEP_S3_EVENT = "step input S3 event"
SHADOW_ID = re.compile(r"-h[0-9a-f]{20}$")
TERMINAL = aws_latency.TERMINAL

# Each figure or rule of the CCC model that is not read from the trace. kind: "assumption" (ours,
# no source), "proxy" (a traced figure standing for one CCC has), "favours CCC" (an assumption
# chosen so that CCC is not priced above what its description implies).
ASSUMPTIONS: dict[str, dict[str, str]] = {
    "same_layout": {
        "kind": "assumption",
        "text": "CCC's state machine has ours' states: one Task per step (per fan-out member), the same "
        "Parallel/Map layout, one final Task (our Complete task): the same transitions",
    },
    "step_inputs_from_s3": {
        "kind": "assumption",
        "text": "the step Lambda reads each input with one GetObject, one after another: the request if the "
        "step reads $.input, and each output of every step it reads (a fan-out: one per member)",
    },
    "new_prediction_code": {
        "kind": "favours CCC",
        "text": "the step Lambda runs new-prediction's code with the calls it made in the standalone run "
        "minus the API-key lookups (ClientsTable), and its compute is not added",
    },
    "step_lambda_duration": {
        "kind": "proxy",
        "text": "the step Lambda's in-function time is our get-transform-call's for the same step",
    },
    "single_model_path": {
        "kind": "proxy",
        "text": "a step's child runs our single-model path as traced in the same round: process-input, "
        "SageMaker and notifications of the standalone fraud-score (async) / repair-cost (real-time) "
        "prediction, shadow work removed",
    },
    "realtime_completion_via_sns": {
        "kind": "assumption",
        "text": "a real-time model cannot be called async: process-input calls it, writes the output and "
        "publishes the completion to SNS (SNS for every completion); the notification Lambda finishes it",
    },
    "notification_resumes_workflow": {
        "kind": "assumption",
        "text": "the notification Lambda resumes the step's Task with SendTaskSuccess where a top-level "
        "prediction enqueues its webhook",
    },
    "final_lambda_reads_outputs": {
        "kind": "assumption",
        "text": "the final Lambda reads back from S3 every output the ensemble's output names (one "
        "GetObject each, one after another), then makes our finishing calls",
    },
    "shared_pieces": {
        "kind": "assumption",
        "text": "submission, client upload via S3 event, shadows, webhook delivery and the client's "
        "download are the same in both designs (taken from the trace as they are)",
    },
    "messages_below_64kb": {
        "kind": "assumption",
        "text": "S3 events, SNS and SQS messages carry keys and URIs, far below a 64 KB billing chunk; the "
        "inputs' and outputs' sizes (in the JSON) change no request count",
    },
}

_S3_GET_OPERATIONS = ("GetObject", "HeadObject")


# ----------------------------------------------------------------------------------------------
# What a design pays
# ----------------------------------------------------------------------------------------------
@dataclass
class Bill:
    """Billable counts of a piece of work (one design's share of one prediction), and their $."""

    lambda_requests: float = 0.0
    lambda_ms: float = 0.0
    transitions: float = 0.0
    dynamodb_wru: float = 0.0
    dynamodb_rru: float = 0.0
    sqs_requests: float = 0.0
    sns_publishes: float = 0.0
    s3_put_class: float = 0.0
    s3_get_class: float = 0.0
    api_requests: float = 0.0
    # Decision records (S3 under audit/ locally): Firehose records on AWS, as cost.account prices them.
    audit_gb: float = 0.0
    audit_bytes_gb: float = 0.0
    calls: Counter[str] = field(default_factory=Counter)

    def add(self, other: Bill) -> Bill:
        for f in dataclasses.fields(self):
            if f.name == "calls":
                self.calls.update(other.calls)
            else:
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    def add_calls(self, calls: list[Call]) -> Bill:
        """Count calls as ``cost.account`` does (DynamoDB units from the recorder's estimates)."""
        for c in calls:
            self.calls[c.name] += 1
            if c.service == "sqs":
                self.sqs_requests += 1
            elif c.service == "sns" and c.operation == "Publish":
                self.sns_publishes += 1
            elif c.service == "s3" and str(c.info.get("key") or "").startswith(cost.AUDIT_PREFIX):
                size = int(c.info.get("bytes") or 0)
                rounding = cost.FIREHOSE_RECORD_ROUNDING_BYTES
                self.audit_gb += math.ceil(max(1, size) / rounding) * rounding / 1024**3
                self.audit_bytes_gb += size / 1024**3
            elif c.service == "s3":
                if c.operation in cost.S3_PUT_CLASS:
                    self.s3_put_class += 1
                else:
                    self.s3_get_class += 1
            self.dynamodb_rru += float(c.info.get("rru", 0))
            self.dynamodb_wru += float(c.info.get("wru", 0))
        return self

    def add_lambda(self, ms: float, requests: float = 1.0) -> Bill:
        self.lambda_requests += requests
        self.lambda_ms += ms
        return self

    def dollars(self) -> dict[str, float]:
        """$ by service, with ``cost.PRICES`` (the same keys as ``cost.account``'s ``dollars``)."""
        p = cost.PRICES
        return {
            "lambda_requests": self.lambda_requests * p["lambda_request"],
            "lambda_duration": self.lambda_ms / 1000 * cost.LAMBDA_MEMORY_GB * p["lambda_gb_second_arm64"],
            "step_functions": self.transitions * p["sfn_standard_transition"],
            "dynamodb": self.dynamodb_wru * p["dynamodb_wru"] + self.dynamodb_rru * p["dynamodb_rru"],
            "sqs": self.sqs_requests * p["sqs_request"],
            "sns": self.sns_publishes * p["sns_publish"],
            "s3": self.s3_put_class * p["s3_put_class"] + self.s3_get_class * p["s3_get_class"],
            "api_gateway": self.api_requests * p["apigw_rest_request"],
            "firehose_audit": self.audit_gb * p["firehose_gb_ingested"]
            + self.audit_bytes_gb * p["firehose_dynamic_partitioning_gb"],
        }

    def total(self) -> float:
        return sum(self.dollars().values())

    def counts(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "calls"}
        data["aws_calls"] = sum(self.calls.values())
        return data


@dataclass
class Work:
    """One Lambda invocation of a modelled design: its calls in order, the local in-function time
    before each of them, and after the last."""

    function: str
    calls: list[Call]
    gaps_ms: list[float]  # local time before each call (since the previous call or the start)
    tail_ms: float = 0.0  # local time after the last call

    @staticmethod
    def of(inv: Invocation, kept: list[Call], *, tail: bool = True, function: str = "") -> Work:
        """The calls ``kept`` of a traced invocation, with the local time ahead of each (what the
        handler computed since the previous call, kept or not) and, if ``tail``, after the last."""
        ordered = sorted(inv.calls, key=lambda c: c.t0)
        kept_ids = {id(c) for c in kept}
        calls, gaps, previous = [], [], inv.t0
        for call in ordered:
            if id(call) in kept_ids:
                calls.append(call)
                gaps.append(max(0.0, call.t0 - previous) * 1000)
            previous = call.t1
        tail_ms = max(0.0, inv.t1 - previous) * 1000 if tail else 0.0
        return Work(function or inv.function, calls, gaps, tail_ms)

    @property
    def compute_ms(self) -> float:
        return sum(self.gaps_ms) + self.tail_ms

    @property
    def billed_ms(self) -> float:
        return self.compute_ms + sum((c.t1 - c.t0) * 1000 for c in self.calls)

    def bill(self) -> Bill:
        return Bill().add_lambda(self.billed_ms).add_calls(self.calls)

    def replaced(self, calls: list[Call], compute_ms: float, function: str = "") -> Work:
        """Other calls (no local time between them), this work's compute ahead of them."""
        return Work(
            function or self.function,
            calls,
            [compute_ms] + [0.0] * (len(calls) - 1) if calls else [],
            0.0 if calls else compute_ms,
        )


def _synthetic(name: str, local_ms: float, **info: Any) -> Call:
    """A call CCC makes that the trace has no instance of (its local time: ``local_ms``)."""
    service, operation = name.split(":", 1)
    return Call(service, operation, 0.0, local_ms / 1000, "ccc", "function", None, dict(info))


def _local_means(calls: list[Call]) -> dict[str, float]:
    by_name: dict[str, list[float]] = defaultdict(list)
    for c in calls:
        if c.source == "function":
            by_name[c.name].append((c.t1 - c.t0) * 1000)
    return {k: statistics.fmean(v) for k, v in by_name.items()}


# ----------------------------------------------------------------------------------------------
# One traced prediction, split into pieces
# ----------------------------------------------------------------------------------------------
@dataclass
class Traced:
    """One prediction as recorded (billable calls and invocations only, as ``cost`` counts them)."""

    service: str
    kind: str  # model | ensemble
    prediction_id: str
    uploaded_at: float
    calls: list[Call]
    invocations: list[Invocation]
    history: list[dict[str, Any]]
    children: list[Any]  # the child records (step, service, status, output_uri)
    spec: Any  # the ensemble's catalog section, or None
    invocation_kind: str | None  # async | realtime for a model

    @property
    def shadow_ids(self) -> set[str]:
        ids = {str(c.info.get("prediction_id", "")) for c in self.calls}
        return {i for i in ids if SHADOW_ID.search(i)}


_is_shadow_call = cost.is_shadow_call
_shadow_work = cost.shadow_work


def _finishing_window(inv: Invocation, top: str) -> list[Call]:
    """The calls of ``inv`` that finish the ensemble ``top``: from writing its output document to
    the last call about it (terminal status, webhook enqueue, decision record)."""
    ordered = sorted(inv.calls, key=lambda c: c.t0)
    start = next((i for i, c in enumerate(ordered) if c.info.get("key") == f"outputs/{top}"), None)
    if start is None:
        start = next(
            (
                i
                for i, c in enumerate(ordered)
                if c.info.get("prediction_id") == top and c.info.get("new_status") in TERMINAL
            ),
            None,
        )
    if start is None:
        return []
    end = start
    for i in range(start, len(ordered)):
        c = ordered[i]
        if c.info.get("prediction_id") == top or f"/{top}_" in str(c.info.get("key", "")):
            end = i
    return ordered[start : end + 1]


sagemaker_jobs = aws_latency.sagemaker_jobs


@dataclass
class Pieces:
    """Our trace split into pieces (see the module docstring): calls and invocations of each."""

    bills: dict[str, Bill]
    steps: dict[str, Bill]  # child ID -> its share of ours
    step_invocations: dict[str, list[Invocation]]  # child ID -> get-transform-call, notifications
    finish: list[Work]  # the Complete task's invocation, then the finishing calls made elsewhere
    unattributed: int  # function calls in no piece (0: the pieces add up to the trace)
    others: list[str]  # invocations in the window that are not this prediction's


def _child_of(inv: Invocation, top: str) -> str | None:
    from ensemble_gateway.domain.steps import child_prediction_id

    if inv.function == "get-transform-call" and inv.info.get("action") == "call" and inv.info.get("step"):
        return child_prediction_id(top, str(inv.info["step"]), inv.info.get("service") or None)
    return None


def partition(t: Traced) -> Pieces:
    """Split our traced prediction into the shared pieces, the steps and the finish."""
    top = t.prediction_id
    shadows = t.shadow_ids
    children = {c.prediction_id for c in t.children}
    names = ["submit", CLIENT_UPLOAD, "orchestration", "finish", "result", "shadows", "model", "other"]
    others: list[str] = []
    bills = {n: Bill() for n in names}
    steps: dict[str, Bill] = defaultdict(Bill)
    step_invocations: dict[str, list[Invocation]] = defaultdict(list)
    completes: list[Work] = []
    windows: list[Work] = []
    seen: set[int] = set()
    jobs = sagemaker_jobs(t.calls)

    # The shadows' share is cost's own (so that the pieces without it add up to cost.account).
    shadow_calls, shadow_invocations = cost.shadow_share(t.calls, t.invocations)
    shadow_call_ids = {id(c) for c in shadow_calls}

    def put(bill: Bill, calls: list[Call]) -> None:
        if bill is not bills["shadows"]:
            bills["shadows"].add_calls([c for c in calls if id(c) in shadow_call_ids])
            seen.update(id(c) for c in calls)
            calls = [c for c in calls if id(c) not in shadow_call_ids]
        bill.add_calls(calls)
        seen.update(id(c) for c in calls)

    shadow_invocation_ids = {i.id for i in shadow_invocations}
    for inv in t.invocations:
        ids = set(inv.info.get("prediction_ids", []))
        child = _child_of(inv, top)
        if inv.id in shadow_invocation_ids:
            target = bills["shadows"]
        elif inv.function == "new-prediction":
            target = bills["submit"]
        elif inv.function == "process-input" and top in ids:
            target = bills[CLIENT_UPLOAD]
        elif inv.function == "webhook-delivery":
            target = bills["result"]
        elif inv.function == "shadow-dispatch" or (ids and ids <= shadows):
            target = bills["shadows"]
        elif inv.function == "get-transform-call" and inv.info.get("action") == "complete":
            target = bills["finish"]
        elif child is not None:
            target = steps[child]
            step_invocations[child].append(inv)
        elif inv.function == "notifications" and ids & children:
            child = next(iter(ids & children))
            target = steps[child]
            step_invocations[child].append(inv)
        elif inv.function == "notifications" and top in ids:
            target = bills["model"]
        else:
            # Not this prediction's (work of another one that ran late into the window): kept in
            # ``other``, shared by both designs, and reported.
            target = bills["other"]
            others.append(f"{inv.function} {inv.trigger} {sorted(ids)}")
        moved = {id(c) for c in inv.calls if id(c) in shadow_call_ids}
        window = _finishing_window(inv, top) if t.kind == "ensemble" and target is not bills["finish"] else []
        window_ids = {id(c) for c in window}
        window_ms = Work.of(inv, window, tail=False).billed_ms if window else 0.0
        if target is bills["finish"]:
            completes.append(Work.of(inv, [c for c in inv.calls if id(c) not in moved]))
        if window:
            windows.append(Work.of(inv, window, tail=False))
        put(bills["shadows"], [c for c in inv.calls if id(c) in moved])
        put(bills["finish"], window)
        put(target, [c for c in inv.calls if id(c) not in moved and id(c) not in window_ids])
        target.add_lambda(math.ceil(inv.seconds * 1000) - window_ms)  # billed per ms, as cost does
        bills["finish"].add_lambda(window_ms, requests=0)
    api = [i for i in t.invocations if i.trigger == "api"]
    bills["submit"].api_requests += len(api)
    bills[CLIENT_UPLOAD].s3_put_class += 1  # the client's presigned upload
    bills[CLIENT_UPLOAD].sqs_requests += sum(
        len(i.info.get("prediction_ids", [])) for i in t.invocations if i.function == "process-input"
    )  # S3 -> SQS notifications (cost counts them from process-input's records)
    bills["result"].s3_get_class += 1  # the client's download of the result
    bills["orchestration"].transitions += sum(1 for e in t.history if str(e.get("type", "")).endswith("StateEntered"))
    for call in t.calls:
        if id(call) in seen or call.source == "function":
            continue
        queue = str(call.info.get("queue", ""))
        pid = str(call.info.get("prediction_id", ""))
        if id(call) in shadow_call_ids:
            target = bills["shadows"]
        elif call.source == "event-source":
            target = (
                bills["shadows"]
                if "Shadow" in queue
                else bills["result"]
                if "Webhook" in queue
                else bills[CLIENT_UPLOAD]
            )
        elif call.source == "sagemaker":
            pid = jobs.get(id(call), pid)
            target = bills["shadows"] if pid in shadows else steps[pid] if pid in children else bills["model"]
        elif call.source == "stepfunctions":
            target = bills["orchestration"]
        else:
            target = bills["result"]
        put(target, [call])
    # Calls of the flat trace no invocation lists (the recorder's window cut an invocation):
    # shared, in ``other``, and counted.
    stray = [c for c in t.calls if c.source == "function" and id(c) not in seen]
    put(bills["other"], stray)
    unattributed = len(stray)
    return Pieces(bills, dict(steps), dict(step_invocations), completes + windows, unattributed, others)


# ----------------------------------------------------------------------------------------------
# Our single-model path, as traced: what CCC runs for every step
# ----------------------------------------------------------------------------------------------
@dataclass
class SingleModelPath:
    """A standalone prediction's path from new-prediction to its completion, as CCC reuses it."""

    kind: str  # async | realtime
    new_prediction: list[Call]  # new-prediction's calls without the API-key lookups
    s3_event: list[Call]  # the input queue's receive/delete (+ the S3 notification, counted apart)
    process_input: Work  # to the model call (async) / the output write (real-time), shadows removed
    process_input_calls_to_model: int  # how many of its calls precede the model (latency)
    sagemaker: list[Call]  # async: SageMaker's input read, output write, SNS publish
    notification: Work  # async: the notification invocation (real-time: the async template's)
    notification_calls_to_terminal: int  # calls up to and including the terminal status write

    @staticmethod
    def of(t: Traced) -> SingleModelPath:
        top = t.prediction_id
        shadows = t.shadow_ids
        new_prediction = next(i for i in t.invocations if i.function == "new-prediction")
        process = next(i for i in t.invocations if i.function == "process-input" and top in i.info["prediction_ids"])
        moved = _shadow_work(process.calls, shadows)
        kept = [c for c in sorted(process.calls, key=lambda c: c.t0) if id(c) not in moved]
        model_at = next(i for i, c in enumerate(kept) if c.service == "sagemaker-runtime")
        if t.invocation_kind == "realtime":
            # Up to the output's write: from there on, the completion goes the SNS way.
            end = next(
                i
                for i, c in enumerate(kept)
                if c.name == "s3:PutObject" and i > model_at and "outputs/" in c.info["key"]
            )
            kept = kept[: end + 1]
        s3_event = [
            c
            for c in t.calls
            if c.source == "event-source"
            and "InputQueue" in str(c.info.get("queue", ""))
            and (c.operation == "DeleteMessageBatch" or top in c.info.get("prediction_ids", []))
        ]
        jobs = sagemaker_jobs(t.calls)
        sagemaker = [c for c in t.calls if c.source == "sagemaker" and jobs.get(id(c)) == top]
        notification = next(
            (i for i in t.invocations if i.function == "notifications" and top in i.info.get("prediction_ids", [])),
            None,
        )
        if notification is not None:
            n_calls = sorted(notification.calls, key=lambda c: c.t0)
            note = Work.of(notification, n_calls)
            terminal_at = next(i for i, c in enumerate(n_calls) if c.info.get("new_status") in TERMINAL)
        else:
            note, terminal_at = Work("notifications", [], []), -1
        return SingleModelPath(
            kind=str(t.invocation_kind),
            new_prediction=[c for c in new_prediction.calls if "ClientsTable" not in str(c.info.get("table"))],
            s3_event=s3_event,
            process_input=Work.of(process, kept, tail=t.invocation_kind != "realtime"),
            process_input_calls_to_model=model_at + 1,
            sagemaker=sagemaker,
            notification=note,
            notification_calls_to_terminal=terminal_at + 1,
        )


def _for_child(notification: Work, means: dict[str, float]) -> Work:
    """The notification Lambda of a child: it resumes the workflow where a top-level one enqueues
    its webhook."""
    calls = [
        _synthetic("stepfunctions:SendTaskSuccess", means.get("stepfunctions:SendTaskSuccess", 0.0))
        if c.name == "sqs:SendMessage" and "Webhook" in str(c.info.get("queue", ""))
        else c
        for c in notification.calls
    ]
    return Work(notification.function, calls, notification.gaps_ms, notification.tail_ms)


# ----------------------------------------------------------------------------------------------
# CCC, per step and at the end
# ----------------------------------------------------------------------------------------------
def _roots(template: Any) -> set[tuple[str, str | None]]:
    from ensemble_gateway.domain.mapping import referenced_roots

    try:
        return set(referenced_roots(template))
    except Exception:  # a template the mapping code refuses reads nothing we can count
        return set()


def step_reads(spec: Any, step: str) -> tuple[bool, set[str] | None]:
    """(reads the request, steps it reads; None: every step) of a step's mapping and ``when``."""
    from ensemble_gateway.domain.conditions import condition_paths, parse_condition

    entry = spec.steps[step]
    roots = _roots(entry.mapping if entry.mapping is not None else "$.input")
    if entry.when is not None:
        roots |= _roots(condition_paths(parse_condition(entry.when, step=step)))
    reads_steps = {name for root, name in roots if root == "steps" and name is not None}
    return ("input", None) in roots, (None if ("steps", None) in roots else reads_steps)


def output_reads(spec: Any) -> set[str] | None:
    """The steps whose outputs the ensemble's ``output`` reads (None: every step)."""
    output = spec.output
    if output is None:
        named = set(spec.steps) - {s for name in spec.steps for s in (step_reads(spec, name)[1] or set()) if s != name}
        return named
    if isinstance(output, str):
        return {output}
    roots = _roots(output)
    if ("steps", None) in roots:
        return None
    return {name for root, name in roots if root == "steps" and name is not None}


def _outputs_of(t: Traced, steps: set[str] | None) -> list[Any]:
    return [c for c in t.children if c.output_uri and (steps is None or c.step in steps)]


@dataclass
class CccStep:
    """What CCC does for one child of the traced run: its Lambdas, in order, and its pieces."""

    child_id: str
    step: str
    service: str
    model_kind: str  # async | realtime | skipped
    step_lambda: Work
    s3_event: list[Call]
    process_input: Work | None
    sagemaker: list[Call]
    completion_publish: list[Call]  # real-time: the completion's SNS publish
    notification: Work | None
    reads: int  # S3 reads of the step Lambda
    template: SingleModelPath | None

    def bill(self) -> Bill:
        bill = self.step_lambda.bill()
        if self.process_input is None:
            return bill
        bill.sqs_requests += 1  # the step input's S3 event notification (STEP_S3_EVENT)
        bill.add_calls(self.s3_event + self.sagemaker + self.completion_publish)
        bill.add(self.process_input.bill())
        if self.notification is not None:
            bill.add(self.notification.bill())
        return bill


def ccc_step(
    t: Traced,
    child: Any,
    ours: list[Invocation],
    templates: dict[str, SingleModelPath],
    means: dict[str, float],
) -> CccStep:
    """CCC's work for one child of our traced run (see the module docstring, 1-4)."""
    step_inv = next((i for i in ours if i.function == "get-transform-call"), None)
    if step_inv is None:
        raise RuntimeError(f"{t.service}: no get-transform-call invocation for step {child.step} in the trace")
    window = {id(c) for c in _finishing_window(step_inv, t.prediction_id)}
    own = Work.of(step_inv, [c for c in step_inv.calls if id(c) not in window], function="step")
    status = str(getattr(child.status, "value", child.status))
    if status == "SKIPPED":
        return CccStep(child.prediction_id, child.step, child.service, "skipped", own, [], None, [], [], None, 0, None)
    reads_input, reads_steps = step_reads(t.spec, child.step)
    read_from = (set(t.spec.steps) - {child.step}) if reads_steps is None else reads_steps
    reads = int(reads_input) + len(_outputs_of(t, read_from))
    model_kind = _model_kind(step_inv)
    template = templates[model_kind]
    calls = [_synthetic("s3:GetObject", means.get("s3:GetObject", 0.0)) for _ in range(reads)]
    calls += template.new_prediction
    calls.append(_synthetic("s3:PutObject", means.get("s3:PutObject", 0.0), key=f"uploads/{child.prediction_id}"))
    publish = [] if model_kind == "async" else [_synthetic("sns:Publish", means.get("sns:Publish", 0.0))]
    return CccStep(
        child_id=child.prediction_id,
        step=child.step,
        service=child.service,
        model_kind=model_kind,
        step_lambda=own.replaced(calls, own.compute_ms),
        s3_event=template.s3_event,
        process_input=template.process_input,
        sagemaker=template.sagemaker if model_kind == "async" else [],
        completion_publish=publish,
        notification=_for_child(templates["async"].notification, means),
        reads=reads,
        template=template,
    )


def _model_kind(step_inv: Invocation) -> str:
    """How our step called its model: in the invocation (real-time) or not (async)."""
    names = {c.name for c in step_inv.calls}
    return "realtime" if "sagemaker-runtime:InvokeEndpoint" in names else "async"


def ccc_finish(t: Traced, pieces: Pieces, means: dict[str, float]) -> Work:
    """The final Lambda: reads back what the output names, then our finishing calls in our order."""
    outputs = _outputs_of(t, output_reads(t.spec))
    calls = [_synthetic("s3:GetObject", means.get("s3:GetObject", 0.0)) for _ in outputs]
    gaps = [0.0] * len(calls)
    tail = 0.0
    for work in pieces.finish:
        calls += work.calls
        gaps += work.gaps_ms
        tail += work.tail_ms
    return Work("final", calls, gaps, tail)


@dataclass
class Ccc:
    """The CCC counterfactual of one traced prediction."""

    bills: dict[str, Bill]  # by piece
    steps: list[CccStep]
    finish: Work | None
    completion: Work | None  # a standalone real-time model's SNS completion

    def total(self) -> Bill:
        bill = Bill()
        for piece in self.bills.values():
            bill.add(piece)
        return bill


def model_ccc(t: Traced, pieces: Pieces, templates: dict[str, SingleModelPath], means: dict[str, float]) -> Ccc:
    """CCC's bill of ``t``: the shared pieces as traced, each step and the finish as CCC does them."""
    # Shadows are left out of both bills, as cost.account leaves them out (the operator's choice).
    shared = ("submit", CLIENT_UPLOAD, "orchestration", "result", "other")
    bills = {k: dataclasses.replace(pieces.bills[k], calls=Counter(pieces.bills[k].calls)) for k in shared}
    if t.kind != "ensemble":
        bills["model"] = pieces.bills["model"]
        completion = None
        if t.invocation_kind == "realtime":
            # SNS for every completion: process-input stops at the output's write and publishes;
            # the notification Lambda (the async template's, with its webhook) finishes.
            template = SingleModelPath.of(t)
            process = next(
                i
                for i in t.invocations
                if i.function == "process-input" and t.prediction_id in i.info["prediction_ids"]
            )
            kept = {id(c) for c in template.process_input.calls} | _shadow_work(process.calls, t.shadow_ids)
            after = Work.of(process, [c for c in process.calls if id(c) not in kept])
            upload = bills[CLIENT_UPLOAD]
            removed = after.bill()
            for f in ("dynamodb_wru", "dynamodb_rru", "sqs_requests", "sns_publishes", "s3_put_class", "s3_get_class"):
                setattr(upload, f, getattr(upload, f) - getattr(removed, f))
            upload.calls.subtract(removed.calls)
            upload.lambda_ms -= after.billed_ms
            upload.add_calls([_synthetic("sns:Publish", means.get("sns:Publish", 0.0))])
            completion = templates["async"].notification
            bills["completion"] = completion.bill()
        return Ccc(bills, [], None, completion)
    steps = []
    by_step = Bill()
    for child in t.children:
        step = ccc_step(t, child, pieces.step_invocations.get(child.prediction_id, []), templates, means)
        steps.append(step)
        by_step.add(step.bill())
    bills["steps"] = by_step
    finish = ccc_finish(t, pieces, means)
    finish_bill = finish.bill()
    finish_bill.lambda_requests = pieces.bills["finish"].lambda_requests  # our Complete task's Lambda
    if not finish_bill.lambda_requests:
        finish_bill.lambda_requests = 1
    bills["finish"] = finish_bill
    return Ccc(bills, steps, finish, None)


# ----------------------------------------------------------------------------------------------
# Latency: CCC's critical path through our execution's history
# ----------------------------------------------------------------------------------------------
class _Chain:
    """Appends edges one after another in a graph (a CCC invocation or hop sequence)."""

    def __init__(self, graph: aws_latency.Graph, start: str, prefix: str) -> None:
        self.g, self.at, self.prefix, self.n = graph, start, prefix, 0

    def _next(self) -> str:
        self.n += 1
        return self.g.node(f"{self.prefix}:{self.n}", 0.0)

    def hop(self, ref: str, label: str) -> None:
        target = self._next()
        self.g.edge(self.at, target, float(aws_latency.HOPS[ref]["ms"]), "hop", label, ref)
        self.at = target

    def compute(self, ms: float, label: str) -> None:
        if ms > 0:
            target = self._next()
            self.g.edge(self.at, target, ms, "compute", f"{label}: compute")
            self.at = target

    def call(self, call: Call, label: str) -> None:
        target = self._next()
        self.g.edge(self.at, target, aws_latency._api_ms(call), "api", f"{label}: {call.name}")
        self.at = target

    def link(self, kind: str, label: str, weight: float = 0.0) -> None:
        target = self._next()
        self.g.edge(self.at, target, weight, kind, label)
        self.at = target

    def end(self, target: str, label: str) -> None:
        self.g.edge(self.at, target, 0.0, "link", label)
        self.at = target


def _work_chain(chain: _Chain, work: Work, calls: int, label: str) -> None:
    """The first ``calls`` calls of ``work`` one after another, each after its local compute."""
    for gap, call in zip(work.gaps_ms[:calls], work.calls[:calls], strict=True):
        chain.compute(gap, label)
        chain.call(call, label)
    if calls >= len(work.calls):
        chain.compute(work.tail_ms, label)


def _ccc_step_chain(chain: _Chain, step: CccStep) -> None:
    chain.hop("sfn_to_lambda", "Step Functions -> Lambda (step)")
    _work_chain(chain, step.step_lambda, len(step.step_lambda.calls), f"step {step.step}")
    if step.process_input is None or step.template is None:
        return
    chain.hop("s3_event_to_sqs", f"S3 ObjectCreated -> SQS ({STEP_S3_EVENT})")
    chain.hop("sqs_to_lambda", "SQS -> Lambda (process-input)")
    if step.model_kind == "async":
        _work_chain(chain, step.process_input, step.template.process_input_calls_to_model, "process-input")
        chain.hop("sagemaker_async_pickup", "SageMaker async queue -> instance")
        for index, call in enumerate(step.sagemaker):
            if call.name == "sns:Publish":
                break
            if index and call.name == "s3:PutObject":
                chain.link("model", "model (excluded)")
            chain.call(call, "sagemaker")
    else:
        _work_chain(chain, step.process_input, len(step.process_input.calls), "process-input")
    chain.hop("sns_to_lambda", "SNS -> Lambda (notifications)")
    note = step.notification
    assert note is not None
    resume = next(i for i, c in enumerate(note.calls) if c.name == "stepfunctions:SendTaskSuccess")
    _work_chain(chain, note, resume, "notifications")


def ccc_latency(
    t: Traced, graph: aws_latency.Graph, ccc: Ccc, pieces: Pieces
) -> tuple[float, list[tuple[str, aws_latency.Edge]]]:
    """CCC's modelled upload -> terminal status, through our history with CCC's Tasks."""
    g = aws_latency.Graph()
    root = g.node("upload", 0.0)
    # The front (upload -> execution started) is ours, hop by hop: both designs start alike.
    _, front = graph.longest("upload", "sfn1")
    previous = root
    for node, edge in front:
        g.node(node, 0.0)
        g.edge(previous, node, edge.weight, edge.kind, edge.label, edge.ref)
        previous = node
    events = {int(e["id"]): e for e in t.history}
    for target, edges in graph.preds.items():
        if target.startswith("sfn"):
            for e in edges:
                if e.source.startswith("sfn"):
                    g.node(target, 0.0)
                    g.edge(e.source, target, e.weight, e.kind, e.label, e.ref)
    by_child = {s.child_id: s for s in ccc.steps}
    from ensemble_gateway.domain.steps import child_prediction_id

    complete: int | None = None
    for event_id, event in events.items():
        if event["type"] != "TaskScheduled":
            continue
        payload = _payload(event)
        if payload.get("action") == "complete":
            complete = event_id
            continue
        if payload.get("action") != "call":
            continue
        child = child_prediction_id(t.prediction_id, str(payload.get("step")), payload.get("service") or None)
        done = next(
            (
                i
                for i, e in events.items()
                if e["type"] == "TaskSucceeded" and aws_latency._ancestor(i, events, "TaskScheduled") == event_id
            ),
            None,
        )
        if done is None or child not in by_child:
            continue
        chain = _Chain(g, f"sfn{event_id}", f"ccc:{child}")
        _ccc_step_chain(chain, by_child[child])
        chain.end(f"sfn{done}", "SendTaskSuccess -> task succeeded")
    terminal = g.node("terminal", 0.0)
    if complete is None:
        # Our machine ends with its output step (no Complete task): CCC's final Lambda is the
        # state after that step's success.
        succeeded = [i for i, e in events.items() if e["type"] == "TaskSucceeded" and f"sfn{i}" in g.times]
        complete = max(succeeded) if succeeded else None
    if complete is None or ccc.finish is None:
        return math.nan, []
    chain = _Chain(g, f"sfn{complete}", "ccc:final")
    chain.hop("sfn_to_lambda", "Step Functions -> Lambda (final)")
    finish = ccc.finish
    to_terminal = next(
        (
            i + 1
            for i, c in enumerate(finish.calls)
            if c.info.get("prediction_id") == t.prediction_id and c.info.get("new_status") in TERMINAL
        ),
        len(finish.calls),
    )
    _work_chain(chain, finish, to_terminal, "final")
    chain.end(terminal, "terminal status written")
    return g.longest("upload", terminal)


def _payload(event: dict[str, Any]) -> dict[str, Any]:
    import json

    details = event.get("taskScheduledEventDetails") or {}
    try:
        return dict(json.loads(details.get("parameters") or "{}").get("Payload") or {})
    except ValueError:
        return {}


def ccc_model_latency(
    t: Traced, graph: aws_latency.Graph, ours_ms: float, templates: dict[str, SingleModelPath]
) -> tuple[float, list[tuple[str, aws_latency.Edge]]]:
    """A standalone model: async as ours; real-time: ours to the output's write, then SNS."""
    if t.invocation_kind != "realtime":
        return ours_ms, []
    write = next(
        c
        for c in sorted(t.calls, key=lambda c: c.t0)
        if c.source == "function" and c.name == "s3:PutObject" and str(c.info.get("key", "")).startswith("outputs/")
    )
    node = f"call{id(write)}:end"
    to_write, path = graph.longest("upload", node)
    g = aws_latency.Graph()
    g.node("upload", 0.0)
    g.edge("upload", g.node("written", 0.0), to_write, "link", "upload -> output written (as ours)")
    chain = _Chain(g, "written", "ccc:completion")
    # The SNS hop's published median runs from before the Publish call: the call is in it.
    chain.hop("sns_to_lambda", "SNS -> Lambda (notifications)")
    note = templates["async"].notification
    _work_chain(chain, note, templates["async"].notification_calls_to_terminal, "notifications")
    chain.end(g.node("terminal", 0.0), "terminal status written")
    total, tail = g.longest("upload", "terminal")
    return total, path + tail[1:]


# ----------------------------------------------------------------------------------------------
# Running it
# ----------------------------------------------------------------------------------------------
def trace_one(env: BenchEnv, recorder: Any, service: str, data: bytes, content_type: str) -> Traced:
    submission, hook, calls, invocations = env.traced_prediction(recorder, service, data, content_type, download=True)
    entry = env.service(service)
    is_ensemble = entry.kind == "ensemble"
    history = env.execution_history(service, submission.prediction_id) if is_ensemble else []
    children = env.children(submission.prediction_id) if is_ensemble else []
    calls, invocations = cost._billable(calls, invocations)
    if hook.status != "COMPLETED":
        raise RuntimeError(f"{service}: {submission.prediction_id} ended {hook.status}")
    kind = None if is_ensemble else str(getattr(entry.model.invocation, "value", entry.model.invocation))
    return Traced(
        service=service,
        kind="ensemble" if is_ensemble else "model",
        prediction_id=submission.prediction_id,
        uploaded_at=submission.uploaded_at,
        calls=calls,
        invocations=invocations,
        history=history,
        children=children,
        spec=entry.ensemble if is_ensemble else None,
        invocation_kind=kind,
    )


def compare(t: Traced, templates: dict[str, SingleModelPath]) -> dict[str, Any]:
    """Ours and CCC for one traced prediction: $ by service and piece, modelled latency."""
    child_ids = {c.prediction_id for c in t.children}
    ours = cost.account(t.calls, t.invocations, t.history, child_ids)
    pieces = partition(t)
    means = _local_means(t.calls)
    ccc = model_ccc(t, pieces, templates, means)
    total = ccc.total()
    graph, terminal, _ = aws_latency.build_graph(t.prediction_id, t.uploaded_at, t.calls, t.invocations, t.history)
    ours_ms, ours_path = graph.longest("upload", terminal) if terminal else (math.nan, [])
    if t.kind == "ensemble":
        ccc_ms, ccc_path = ccc_latency(t, graph, ccc, pieces)
    else:
        ccc_ms, ccc_path = ccc_model_latency(t, graph, ours_ms, templates)
        if not ccc_path:
            ccc_path = ours_path
    if not math.isfinite(ccc_ms):
        ccc_ms, ccc_path = math.nan, []
    ccc_summary = aws_latency.summarise_path(ccc_path, {})
    ours_summary = aws_latency.summarise_path(ours_path, graph.times)
    pieces_total = Bill()
    for name, bill in [*pieces.bills.items(), *(("step", b) for b in pieces.steps.values())]:
        if name != "shadows":  # left out of cost.account's total too
            pieces_total.add(bill)
    return {
        "prediction_id": t.prediction_id,
        "ours": {
            "dollars": ours["dollars"],
            "dollars_total": ours["dollars_total"],
            "counts": {
                k: ours[k]
                for k in (
                    "lambda_invocations_total",
                    "state_transitions",
                    "sns_publishes",
                    "sqs_requests",
                    "s3_put_class",
                    "s3_get_class",
                    "aws_calls_total",
                )
            },
            "pieces_dollars": {k: b.total() for k, b in pieces.bills.items()}
            | {"steps": sum(b.total() for b in pieces.steps.values())},
            "partition_dollars_total": pieces_total.total(),
            "unattributed_calls": pieces.unattributed,
            "other_invocations": pieces.others,
            "modelled_ms": ours_ms,
            "modelled_ms_by_origin": ours_summary["modelled_ms_by_origin"],
            "hops": ours_summary["hops"],
        },
        "ccc": {
            "dollars": total.dollars(),
            "dollars_total": total.total(),
            "counts": total.counts(),
            "pieces_dollars": {k: b.total() for k, b in ccc.bills.items()},
            "steps": [
                {
                    "step": s.step,
                    "service": s.service,
                    "model": s.model_kind,
                    "s3_reads_back": s.reads,
                    "lambda_invocations": s.bill().lambda_requests,
                    "aws_calls": sum(s.bill().calls.values()) + (1 if s.process_input is not None else 0),
                    "sns_publishes": s.bill().sns_publishes,
                    "sqs_requests": s.bill().sqs_requests,
                    "s3_put_class": s.bill().s3_put_class,
                    "s3_get_class": s.bill().s3_get_class,
                    "dollars": s.bill().total(),
                }
                for s in ccc.steps
            ],
            "modelled_ms": ccc_ms,
            "modelled_ms_by_origin": ccc_summary["modelled_ms_by_origin"],
            "hops": ccc_summary["hops"],
            "critical_path": aws_latency.condensed(ccc_summary["sequence"]),
            "path": [
                {
                    "label": e.label,
                    "kind": e.kind,
                    "modelled_ms": round(e.weight, 1),
                    "ref": e.ref,
                    "ref_kind": aws_latency.HOPS[e.ref]["kind"] if e.ref else None,
                }
                for _, e in ccc_path
            ],
        },
    }


def _ratio(a: float, b: float) -> float:
    return a / b if b and math.isfinite(a) and math.isfinite(b) else math.nan


def run(env: BenchEnv, quick: bool = False) -> dict[str, Any]:
    runs = 1 if quick else 3
    say(
        f"Peer: the CCC design priced and timed from the same traced run ({runs} round(s), each service once "
        "per round; CCC's single-model path is ours from the same round)"
    )
    env.warm_up()
    rounds: list[dict[str, Traced]] = []
    with env.recorder() as recorder:
        # The pollers' long polls (1 s) started before the recorder was installed would go
        # unrecorded: let them end first, so that the first prediction's receives are counted.
        time.sleep(1.5)
        for index in range(runs):
            traced = {}
            for service, _ in SERVICES:
                samples = env.samples(service)
                data, content_type = samples[index % len(samples)]
                traced[service] = trace_one(env, recorder, service, data, content_type)
            rounds.append(traced)
    per_round: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for traced in rounds:
        templates = {
            "async": SingleModelPath.of(traced[ASYNC_TEMPLATE]),
            "realtime": SingleModelPath.of(traced[REALTIME_TEMPLATE]),
        }
        for service, t in traced.items():
            per_round[service].append(compare(t, templates))
    services: dict[str, Any] = {}
    for service, kind in SERVICES:
        results = per_round[service]
        mean = cost._mean_dict(
            [
                {
                    "ours": {k: v for k, v in r["ours"].items()},
                    "ccc": {k: v for k, v in r["ccc"].items() if k not in ("steps", "critical_path", "path")},
                }
                for r in results
            ]
        )
        ours, ccc = mean["ours"], mean["ccc"]
        by_service = {
            k: {
                "ours_per_million": ours["dollars"][k] * 1e6,
                "ccc_per_million": ccc["dollars"][k] * 1e6,
                "ratio": _ratio(ours["dollars"][k], ccc["dollars"][k]),
            }
            for k in ours["dollars"]
        }
        services[service] = {
            "kind": kind,
            "runs": len(results),
            "ours_dollars_per_million": ours["dollars_total"] * 1e6,
            "ccc_dollars_per_million": ccc["dollars_total"] * 1e6,
            "cost_ratio": _ratio(ours["dollars_total"], ccc["dollars_total"]),
            "dollars_per_million_by_service": by_service,
            "ours_pieces_per_million": {k: v * 1e6 for k, v in ours["pieces_dollars"].items()},
            "ccc_pieces_per_million": {k: v * 1e6 for k, v in ccc["pieces_dollars"].items()},
            "partition_check": {
                "account_dollars_total": ours["dollars_total"],
                "pieces_dollars_total": ours["partition_dollars_total"],
                "unattributed_calls": ours["unattributed_calls"],
                "other_invocations": [x for r in results for x in r["ours"]["other_invocations"]],
            },
            "ours_counts": ours["counts"],
            "ccc_counts": ccc["counts"],
            "ours_modelled_ms": ours["modelled_ms"],
            "ccc_modelled_ms": ccc["modelled_ms"],
            "latency_ratio": _ratio(ours["modelled_ms"], ccc["modelled_ms"]),
            "ours_modelled_ms_by_origin": ours["modelled_ms_by_origin"],
            "ccc_modelled_ms_by_origin": ccc["modelled_ms_by_origin"],
            "ours_hops": ours["hops"],
            "ccc_hops": ccc["hops"],
            "ccc_steps": results[0]["ccc"]["steps"],
            "ccc_critical_path": results[0]["ccc"]["critical_path"],
            "ccc_path": results[0]["ccc"]["path"],
            "prediction_ids": [r["prediction_id"] for r in results],
        }
    _print(services)
    return {
        "quick": quick,
        "rounds": runs,
        "templates": {"async": ASYNC_TEMPLATE, "realtime": REALTIME_TEMPLATE},
        "assumptions": ASSUMPTIONS,
        "hops": aws_latency.HOPS,
        "api_p50_ms": aws_latency.API_P50,
        "prices_usd": cost.PRICES,
        "notes": [
            "ratio = ours / CCC (below 1: ours is cheaper or faster).",
            "Modelled latency: upload -> terminal status written, model time excluded (as aws_latency).",
            "Ours is cost.account and aws_latency.build_graph on this benchmark's own trace; CCC is derived "
            "from the same trace (see the module docstring).",
        ],
        "services": services,
    }


def _print(services: dict[str, Any]) -> None:
    rows = []
    for name, s in services.items():
        rows.append(
            [
                name,
                s["ours_dollars_per_million"],
                s["ccc_dollars_per_million"],
                s["cost_ratio"],
                s["ours_modelled_ms"],
                s["ccc_modelled_ms"],
                s["latency_ratio"],
            ]
        )
    say(table(["service", "ours $/1M", "CCC $/1M", "ratio", "ours ms", "CCC ms", "ratio"], rows, digits=2))
    say("(excluding model compute; ratio = ours / CCC; ms = modelled upload -> terminal on AWS, model excluded)")
    say()
    names = list(services)
    keys = list(services[names[0]]["dollars_per_million_by_service"])
    money = []
    for key in keys:
        row: list[Any] = [key]
        for name in names:
            d = services[name]["dollars_per_million_by_service"][key]
            row.append(f"{d['ours_per_million']:.2f} / {d['ccc_per_million']:.2f}")
        money.append(row)
    say(table(["$ per 1M: ours / CCC", *names], money))
    say()
    pieces = sorted(
        {k for s in services.values() for k in (*s["ours_pieces_per_million"], *s["ccc_pieces_per_million"])}
    )
    piece_rows = []
    for piece in pieces:
        row = [piece]
        for name in names:
            o = services[name]["ours_pieces_per_million"].get(piece, 0.0)
            c = services[name]["ccc_pieces_per_million"].get(piece, 0.0)
            row.append(f"{o:.2f} / {c:.2f}")
        piece_rows.append(row)
    say(table(["by piece, $ per 1M: ours / CCC", *names], piece_rows))
    say()
    for name, s in services.items():
        steps = s["ccc_steps"]
        if steps:
            text = "; ".join(
                f"{x['step']}({x['service']}, {x['model']}): {x['lambda_invocations']:.0f} Lambda, "
                f"{x['aws_calls']:.0f} calls, {x['s3_reads_back']} S3 reads back, {x['sns_publishes']:.0f} SNS"
                for x in steps
            )
            say(f"{name}: CCC per step: {text}")
    say()
    for name, s in services.items():
        say(f"{name}: CCC critical path: {s['ccc_critical_path'] or '(as ours)'}")
    say()
    assumed = [k for k, v in ASSUMPTIONS.items() if v["kind"] != "proxy"]
    say(
        f"(CCC model assumptions: {', '.join(assumed)}; proxies: "
        f"{', '.join(k for k, v in ASSUMPTIONS.items() if v['kind'] == 'proxy')}; see bench/peer.py)"
    )
    say()

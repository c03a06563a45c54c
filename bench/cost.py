"""Cost per prediction: every AWS API call, Lambda invocation and state transition, priced.

Each prediction runs alone (sequentially) in the local runtime with the recorder installed
(``bench.trace``): the window from ``POST /predictions`` to the webhook (and the work after it)
holds exactly that prediction's calls. What is counted, and as what it is billed on AWS:

- calls made by the gateway's functions (DynamoDB, S3, SQS, SNS, Step Functions, SageMaker);
- the event source mappings' SQS ``ReceiveMessage``/``DeleteMessageBatch`` that returned or
  deleted messages (idle long polls are a fixed cost per queue, not per prediction); the local
  runtime's SNS → SQS → poller queues stand in for SNS → Lambda and are not counted (SNS delivers
  to Lambda for free);
- S3 → SQS event notifications (one ``SendMessage`` per upload, done inside moto: counted from the
  records process-input received);
- SageMaker's own S3 reads/writes and SNS publishes for async endpoints (on your bill too);
- Step Functions → Lambda invocations (Lambda requests), state transitions from each execution's
  history (``*StateEntered`` events, which is how Standard workflows are billed);
- the client's side: one ``POST /predictions`` (API Gateway), one presigned POST upload (S3 PUT
  class), one presigned GET of the result (S3 GET class). The client polls nothing: it gets a
  webhook.

Not counted: model compute (SageMaker instance time), KMS (the bucket uses S3 Bucket Keys, so
per-object KMS calls are amortised away), CloudWatch Logs ingestion, X-Ray traces, data transfer,
storage, free tiers, and the sweeper (a schedule: a fixed cost, not per prediction).

Public us-east-1 prices (on-demand list prices from the AWS pricing pages; see PRICES).
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from typing import Any

from .common import fmt, say, table
from .env import BenchEnv
from .trace import Call, Invocation

# Public us-east-1 list prices. Sources (pricing pages, figures as listed when this was written;
# re-check before quoting):
#   Lambda        https://aws.amazon.com/lambda/pricing/           $0.20 per 1M requests;
#                 arm64 $0.0000133334 per GB-second (first 7.5 billion GB-s a month)
#   Step Functions https://aws.amazon.com/step-functions/pricing/  Standard: $0.025 per 1,000 state transitions
#   DynamoDB      https://aws.amazon.com/dynamodb/pricing/on-demand/  on-demand, Standard table class:
#                 $0.625 per 1M write request units, $0.125 per 1M read request units (the prices
#                 since the 50% on-demand reduction of 1 Nov 2024; before it: $1.25 and $0.25,
#                 kept below as DYNAMODB_BEFORE_NOV_2024 for comparison)
#   SQS           https://aws.amazon.com/sqs/pricing/              standard queue $0.40 per 1M requests
#                 (each 64 KB chunk of a payload is a request)
#   SNS           https://aws.amazon.com/sns/pricing/              $0.50 per 1M publishes (per 64 KB chunk);
#                 deliveries to Lambda and SQS: no charge
#   S3            https://aws.amazon.com/s3/pricing/               Standard: PUT/COPY/POST/LIST $0.005 per 1,000,
#                 GET/SELECT/HEAD and others $0.0004 per 1,000
#   API Gateway   https://aws.amazon.com/api-gateway/pricing/      REST API $3.50 per 1M requests (first 333M)
#   Data Firehose https://aws.amazon.com/firehose/pricing/         Direct PUT $0.029 per GB ingested (first
#                 500 TB/month), each record rounded up to 5 KB; dynamic partitioning $0.020 per GB
#                 (its per-object delivery charge is amortised over a buffer of records: left out)
PRICES: dict[str, float] = {
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_second_arm64": 0.0000133334,
    "sfn_standard_transition": 0.025 / 1e3,
    "dynamodb_wru": 0.625 / 1e6,
    "dynamodb_rru": 0.125 / 1e6,
    "sqs_request": 0.40 / 1e6,
    "sns_publish": 0.50 / 1e6,
    "s3_put_class": 0.005 / 1e3,
    "s3_get_class": 0.0004 / 1e3,
    "apigw_rest_request": 3.50 / 1e6,
    "firehose_gb_ingested": 0.029,
    "firehose_dynamic_partitioning_gb": 0.020,
}
# The local runtime writes decision records to the data bucket under audit/ in the stream's layout
# (moto's Firehose ignores partitioning); on AWS each is one Firehose record: priced as that.
AUDIT_PREFIX = "audit/"
FIREHOSE_RECORD_ROUNDING_BYTES = 5 * 1024
# A shadow's prediction ID (domain/records.py shadow_prediction_id): its traffic is the operator's
# choice of the moment, priced apart from the prediction's own cost.
SHADOW_ID = re.compile(r"-h[0-9a-f]{20}$")
DYNAMODB_BEFORE_NOV_2024 = {"dynamodb_wru": 1.25 / 1e6, "dynamodb_rru": 0.25 / 1e6}
LAMBDA_MEMORY_GB = 0.5  # template.yaml Globals: MemorySize 512, arm64
S3_PUT_CLASS = {
    "PutObject",
    "CopyObject",
    "CreateMultipartUpload",
    "UploadPart",
    "CompleteMultipartUpload",
    "ListObjects",
    "ListObjectsV2",
}

# (service, what it is, samples cycled through)
SERVICES = [
    ("fraud-score", "async model"),
    ("repair-cost", "real-time model"),
    ("vehicle-claim", "ensemble, 4 steps"),
    ("complaint-triage", "ensemble, fan-out"),
]
TARGET_TRANSITIONS_PER_STEP = 1.25
TARGET_CALLS_PER_STEP = 8.0
# Issue 19: vehicle-claim at most $200 per million predictions, model compute excluded.
TARGET_DOLLARS = {"vehicle-claim": 200.0, "vehicle-claim inline": 200.0}


def shadow_ids_of(calls: list[Call]) -> set[str]:
    """The shadow predictions the calls name."""
    ids = {str(c.info.get("prediction_id", "")) for c in calls}
    return {i for i in ids if SHADOW_ID.search(i)}


def is_shadow_call(call: Call, shadows: set[str]) -> bool:
    pid = str(call.info.get("prediction_id", ""))
    return pid in shadows or (call.name == "sqs:SendMessage" and "Shadow" in str(call.info.get("queue", "")))


def shadow_work(calls: list[Call], shadows: set[str]) -> set[int]:
    """A primary's shadow start: the shadows' records and queue messages, and the update that
    records their versions on the primary (the primary's next write after the last message)."""
    marked: set[int] = set()
    pending = False
    for call in sorted(calls, key=lambda c: c.t0):
        if is_shadow_call(call, shadows):
            marked.add(id(call))
            pending = call.name == "sqs:SendMessage" or pending
        elif pending and call.name == "dynamodb:UpdateItem":
            marked.add(id(call))
            pending = False
    return marked


def shadow_share(calls: list[Call], invocations: list[Invocation]) -> tuple[list[Call], list[Invocation]]:
    """The calls and invocations of the prediction's shadows: shadow-dispatch, the shadows'
    notifications and SageMaker side, and the primary's calls that start them."""
    shadows = shadow_ids_of(calls + [c for i in invocations for c in i.calls])
    shadow_invocations = [
        i
        for i in invocations
        if i.function == "shadow-dispatch"
        or (i.info.get("prediction_ids") and set(i.info["prediction_ids"]) <= shadows)
    ]
    ids = {i.id for i in shadow_invocations}
    marked = {
        id(c)
        for c in calls
        if c.invocation in ids
        or (c.source != "function" and is_shadow_call(c, shadows))
        # The shadow queue's receives and deletes (shadow-dispatch's event source).
        or (c.source == "event-source" and "Shadow" in str(c.info.get("queue", "")))
    }
    found = [c for c in calls if id(c) in marked]
    for invocation in invocations:
        # A call the recorder attributes to a shadow invocation, listed under another.
        attributed = {id(c) for c in invocation.calls if c.invocation in ids} - marked
        found += [c for c in invocation.calls if id(c) in attributed]
        marked |= attributed
        if invocation.id not in ids:
            # An invocation's own list may hold calls the flat list does not (recorded apart).
            work = shadow_work(invocation.calls, shadows)
            found += [c for c in invocation.calls if id(c) in work and id(c) not in marked]
            marked |= work
    return found, shadow_invocations


def _billable(calls: list[Call], invocations: list[Invocation]) -> tuple[list[Call], list[Invocation]]:
    """Drop what is not per prediction or not on AWS: the sweeper, idle polls, local-only queues,
    and the shadows (priced apart, see ``shadow_share``)."""
    shadow_calls, shadow_invocations = shadow_share(calls, invocations)
    dropped_calls = {id(c) for c in shadow_calls}
    sweeper = {i.id for i in invocations if i.function == "sweeper"}
    kept_invocations = [i for i in invocations if i.function != "sweeper" and i not in shadow_invocations]
    kept = []
    for call in calls:
        if call.invocation in sweeper or id(call) in dropped_calls:
            continue
        if call.service == "sqs" and call.info.get("local_only"):
            continue
        if call.source == "event-source" and call.operation == "ReceiveMessage" and not call.info.get("messages"):
            continue
        kept.append(call)
    return kept, kept_invocations


def account(
    calls: list[Call],
    invocations: list[Invocation],
    history: list[dict[str, Any]],
    child_ids: set[str],
    *,
    client_uploads: int = 1,
    client_downloads: int = 1,
) -> dict[str, Any]:
    """Counts and dollars of one prediction."""
    calls, invocations = _billable(calls, invocations)
    by_function = Counter(i.function for i in invocations)
    lambda_ms = sum(math.ceil(i.seconds * 1000) for i in invocations)
    api_requests = sum(1 for i in invocations if i.trigger == "api")
    s3_notifications = sum(len(i.info.get("prediction_ids", [])) for i in invocations if i.function == "process-input")
    transitions = sum(1 for e in history if str(e.get("type", "")).endswith("StateEntered"))
    steps = [i for i in invocations if i.function == "get-transform-call" and i.info.get("action") == "call"]

    calls_by_source: dict[str, Counter[str]] = defaultdict(Counter)
    for call in calls:
        calls_by_source[call.source][call.name] += 1
    function_of = {i.id: i.function for i in invocations}
    calls_by_function: dict[str, Counter[str]] = defaultdict(Counter)
    for call in calls:
        if call.source == "function" and call.invocation in function_of:
            calls_by_function[function_of[call.invocation]][call.name] += 1
    gateway_calls = [c for c in calls if c.source == "function"]
    sqs_requests = sum(1 for c in calls if c.service == "sqs") + s3_notifications
    sns_publishes = sum(1 for c in calls if c.service == "sns" and c.operation == "Publish")
    audit = [c for c in calls if c.service == "s3" and str(c.info.get("key") or "").startswith(AUDIT_PREFIX)]
    audit_ids = {id(c) for c in audit}
    calls_without_audit = [c for c in calls if id(c) not in audit_ids]
    audit_gb = sum(math.ceil(max(1, int(c.info.get("bytes") or 1)) / FIREHOSE_RECORD_ROUNDING_BYTES) for c in audit)
    audit_gb *= FIREHOSE_RECORD_ROUNDING_BYTES / 1024**3
    audit_bytes_gb = sum(int(c.info.get("bytes") or 0) for c in audit) / 1024**3
    s3_put = sum(1 for c in calls_without_audit if c.service == "s3" and c.operation in S3_PUT_CLASS) + client_uploads
    s3_get = (
        sum(1 for c in calls_without_audit if c.service == "s3" and c.operation not in S3_PUT_CLASS) + client_downloads
    )
    rru = sum(float(c.info.get("rru", 0)) for c in calls)
    wru = sum(float(c.info.get("wru", 0)) for c in calls)
    dynamodb_calls = sum(1 for c in calls if c.service == "dynamodb")

    dollars = {
        "lambda_requests": len(invocations) * PRICES["lambda_request"],
        "lambda_duration": lambda_ms / 1000 * LAMBDA_MEMORY_GB * PRICES["lambda_gb_second_arm64"],
        "step_functions": transitions * PRICES["sfn_standard_transition"],
        "dynamodb": wru * PRICES["dynamodb_wru"] + rru * PRICES["dynamodb_rru"],
        "sqs": sqs_requests * PRICES["sqs_request"],
        "sns": sns_publishes * PRICES["sns_publish"],
        "s3": s3_put * PRICES["s3_put_class"] + s3_get * PRICES["s3_get_class"],
        "api_gateway": api_requests * PRICES["apigw_rest_request"],
        "firehose_audit": audit_gb * PRICES["firehose_gb_ingested"]
        + audit_bytes_gb * PRICES["firehose_dynamic_partitioning_gb"],
    }
    dynamodb_before = wru * DYNAMODB_BEFORE_NOV_2024["dynamodb_wru"] + rru * DYNAMODB_BEFORE_NOV_2024["dynamodb_rru"]

    # What each ensemble step costs: its get-transform-call, its child's notification, the
    # SageMaker side of its model call, and Step Functions' invocation of get-transform-call.
    step_invocations = {i.id for i in steps}
    step_invocations |= {
        i.id for i in invocations if i.function == "notifications" and set(i.info.get("prediction_ids", [])) & child_ids
    }
    step_calls = [
        c
        for c in calls
        if c.invocation in step_invocations
        or (c.source == "sagemaker" and c.info.get("prediction_id") in child_ids)
        or (c.source == "sagemaker" and str(c.info.get("key", "")).startswith("steps/"))
        or (c.source == "stepfunctions" and c.info.get("action") == "call")
    ]
    n_steps = len(steps)
    per_step: dict[str, Any] | None = None
    if n_steps:
        gateway_step_calls = [c for c in step_calls if c.source == "function"]
        per_step = {
            "steps": n_steps,
            "transitions": transitions / n_steps,
            "gateway_calls": len(gateway_step_calls) / n_steps,
            "all_calls": len(step_calls) / n_steps,
            "amortised_gateway_calls": len(gateway_calls) / n_steps,
            "amortised_all_calls": len(calls) / n_steps,
            "gateway_calls_by_operation": {
                k: v / n_steps for k, v in Counter(c.name for c in gateway_step_calls).most_common()
            },
        }
    return {
        "lambda_invocations": dict(by_function),
        "lambda_invocations_total": len(invocations),
        "lambda_billed_ms": lambda_ms,
        "api_requests": api_requests,
        "state_transitions": transitions,
        "steps": n_steps,
        "aws_calls_total": len(calls) + s3_notifications,
        "aws_calls_by_source": {
            source: dict(counter.most_common()) for source, counter in sorted(calls_by_source.items())
        },
        "gateway_calls": len(gateway_calls),
        "gateway_calls_by_function": {f: dict(c.most_common()) for f, c in sorted(calls_by_function.items())},
        "s3_event_notifications": s3_notifications,
        "dynamodb_calls": dynamodb_calls,
        "dynamodb_rru": rru,
        "dynamodb_wru": wru,
        "sqs_requests": sqs_requests,
        "sns_publishes": sns_publishes,
        "s3_put_class": s3_put,
        "s3_get_class": s3_get,
        "audit_records": len(audit),
        "dollars": dollars,
        "dollars_total": sum(dollars.values()),
        "dollars_total_dynamodb_pre_nov_2024": sum(dollars.values()) - dollars["dynamodb"] + dynamodb_before,
        "per_step": per_step,
    }


def _mean_dict(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Average of numeric leaves (dicts merged key-wise; absent keys count as 0)."""
    keys: list[str] = []
    for item in items:
        keys.extend(k for k in item if k not in keys)
    out: dict[str, Any] = {}
    for key in keys:
        values = [item.get(key) for item in items]
        present = [v for v in values if v is not None]
        if present and all(isinstance(v, dict) for v in present):
            out[key] = _mean_dict([v if isinstance(v, dict) else {} for v in values])
        elif present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
            out[key] = sum(float(v or 0) for v in values) / len(items)
        else:
            out[key] = present[0] if present else None
    return out


def measure(
    env: BenchEnv, recorder: Any, service: str, data: bytes, content_type: str, *, inline: bool = False
) -> dict[str, Any]:
    submission, hook, calls, invocations = env.traced_prediction(
        recorder, service, data, content_type, download=True, inline=inline
    )
    record = env.record(submission.prediction_id)
    is_ensemble = record is not None and env.service(service).kind == "ensemble"
    history = env.execution_history(service, submission.prediction_id) if is_ensemble else []
    child_ids = {c.prediction_id for c in env.children(submission.prediction_id)} if is_ensemble else set()
    # Inline: the input is in the POST, no client upload to S3.
    result = account(calls, invocations, history, child_ids, client_uploads=0 if inline else 1)
    shadow_calls, shadow_invocations = shadow_share(calls, invocations)
    result["shadow_invocations"] = len(shadow_invocations)
    result["shadow_calls"] = len(shadow_calls)
    result["status"] = hook.status
    result["prediction_id"] = submission.prediction_id
    return result


def variants() -> list[tuple[str, str, str, bool]]:
    """(label, service, kind, inline): every service with an upload, and again with its input inline."""
    found = [(service, service, kind, False) for service, kind in SERVICES]
    found += [(f"{service} inline", service, f"{kind}, input inline", True) for service, kind in SERVICES]
    return found


def run(env: BenchEnv, quick: bool = False) -> dict[str, Any]:
    runs = 1 if quick else 3
    say(f"Cost per prediction: {runs} sequential prediction(s) per service, every AWS call recorded")
    per_service: dict[str, Any] = {}
    with env.recorder() as recorder:
        for label, service, kind, inline in variants():
            samples = env.samples(service)
            measured = []
            for index in range(runs):
                data, content_type = samples[index % len(samples)]
                measured.append(measure(env, recorder, service, data, content_type, inline=inline))
            statuses = Counter(m["status"] for m in measured)
            per_step = [m["per_step"] for m in measured if m["per_step"]]
            mean = _mean_dict(
                [{k: v for k, v in m.items() if k not in ("per_step", "status", "prediction_id")} for m in measured]
            )
            mean["per_step"] = _mean_dict(per_step) if per_step else None
            if mean["per_step"]:
                mean["per_step"]["transitions_target_met"] = (
                    mean["per_step"]["transitions"] <= TARGET_TRANSITIONS_PER_STEP
                )
                mean["per_step"]["gateway_calls_target_met"] = (
                    mean["per_step"]["gateway_calls"] <= TARGET_CALLS_PER_STEP
                )
                mean["per_step"]["all_calls_target_met"] = mean["per_step"]["all_calls"] <= TARGET_CALLS_PER_STEP
            mean["kind"] = kind
            mean["runs"] = runs
            mean["statuses"] = dict(statuses)
            mean["dollars_per_million"] = mean["dollars_total"] * 1e6
            mean["dollars_per_million_by_service"] = {k: v * 1e6 for k, v in mean["dollars"].items()}
            mean["inline"] = inline
            per_service[label] = mean
    _print(per_service)
    ensembles = {s: v["per_step"] for s, v in per_service.items() if v.get("per_step")}
    return {
        "quick": quick,
        "runs_per_service": runs,
        "prices_usd": PRICES,
        "dynamodb_prices_before_nov_2024_usd": DYNAMODB_BEFORE_NOV_2024,
        "lambda_memory_gb": LAMBDA_MEMORY_GB,
        "notes": [
            "Lambda duration is the locally measured handler time (a proxy for AWS duration), billed per ms.",
            "ESM SQS receives/deletes are counted per message as measured with predictions one at a time; "
            "under load one ReceiveMessage/DeleteMessageBatch serves up to 10 messages.",
            "Excluded: model compute, KMS (bucket keys), CloudWatch Logs, X-Ray, storage, transfer, free tiers, "
            "sweeper schedule, idle ESM long polls.",
        ],
        "services": per_service,
        "targets": {
            "transitions_per_step_max": TARGET_TRANSITIONS_PER_STEP,
            "aws_calls_per_step_max": TARGET_CALLS_PER_STEP,
            "met": {
                s: bool(p["transitions_target_met"] and p["gateway_calls_target_met"]) for s, p in ensembles.items()
            },
            "dollars_per_million_max": TARGET_DOLLARS,
            "dollars_met": {
                s: per_service[s]["dollars_per_million"] <= limit
                for s, limit in TARGET_DOLLARS.items()
                if s in per_service
            },
        },
    }


def _print(per_service: dict[str, Any]) -> None:
    names = list(per_service)
    rows: list[list[Any]] = []

    def row(label: str, getter: Any, digits: int = 1) -> None:
        rows.append([label, *[fmt(getter(per_service[n]), digits) for n in names]])

    row("Lambda invocations", lambda v: v["lambda_invocations_total"])
    for function in sorted({f for v in per_service.values() for f in v["lambda_invocations"]}):
        row(f"  {function}", lambda v, f=function: v["lambda_invocations"].get(f, 0.0))
    row("Lambda billed ms (local)", lambda v: v["lambda_billed_ms"], 0)
    row("Step Functions transitions", lambda v: v["state_transitions"])
    row("AWS API calls (all)", lambda v: v["aws_calls_total"])
    for source in ("function", "event-source", "sagemaker", "stepfunctions", "other"):
        row(f"  by {source}", lambda v, s=source: sum(v["aws_calls_by_source"].get(s, {}).values()))
    row("  S3 -> SQS notifications", lambda v: v["s3_event_notifications"])
    row("DynamoDB calls", lambda v: v["dynamodb_calls"])
    row("DynamoDB RRU", lambda v: v["dynamodb_rru"])
    row("DynamoDB WRU (incl. GSI)", lambda v: v["dynamodb_wru"])
    row("SQS requests", lambda v: v["sqs_requests"])
    row("SNS publishes", lambda v: v["sns_publishes"])
    row("S3 PUT-class / GET-class", lambda v: f"{v['s3_put_class']:.1f} / {v['s3_get_class']:.1f}")
    row("API Gateway requests", lambda v: v["api_requests"])
    say(table(["per prediction", *names], rows))
    say()
    money = [
        [k, *[per_service[n]["dollars_per_million_by_service"][k] for n in names]]
        for k in per_service[names[0]]["dollars_per_million_by_service"]
    ]
    money.append(["TOTAL $ / 1M predictions", *[per_service[n]["dollars_per_million"] for n in names]])
    money.append(
        [
            "(DynamoDB at pre-Nov-2024 prices)",
            *[per_service[n]["dollars_total_dynamodb_pre_nov_2024"] * 1e6 for n in names],
        ]
    )
    say(table(["$ per 1M predictions (excl. model)", *names], money, digits=2))
    for label, limit in TARGET_DOLLARS.items():
        if label in per_service:
            total = per_service[label]["dollars_per_million"]
            say(f"Target: {label} <= ${limit:g} / 1M: ${total:.2f} -> {'met' if total <= limit else 'NOT met'}")
    say(
        "Decision records are priced as Firehose records (the local runtime writes them to S3); shadows' "
        "traffic is left out (shadow invocations per prediction: "
        + ", ".join(f"{n} {per_service[n].get('shadow_invocations', 0):.1f}" for n in names)
        + ")."
    )
    say()
    steps = [(n, per_service[n]["per_step"]) for n in names if per_service[n].get("per_step")]
    if steps:
        step_rows = []
        for name, p in steps:
            step_rows.append(
                [
                    name,
                    p["steps"],
                    p["transitions"],
                    p["gateway_calls"],
                    p["all_calls"],
                    p["amortised_all_calls"],
                    bool(p["transitions_target_met"] and p["gateway_calls_target_met"]),
                ]
            )
        say(
            table(
                [
                    "per ensemble step",
                    "steps",
                    "transitions",
                    "gateway calls",
                    "+integrations",
                    "all/steps",
                    f"target met (<={TARGET_TRANSITIONS_PER_STEP:g}, <={TARGET_CALLS_PER_STEP:g})",
                ],
                step_rows,
                digits=2,
            )
        )
        for name, p in steps:
            ops = ", ".join(f"{k} {v:.2f}" for k, v in p["gateway_calls_by_operation"].items())
            say(f"  {name}: gateway calls per step: {ops}")
        say()
    say("Gateway calls per prediction, by function:")
    for name in names:
        for function, ops in per_service[name]["gateway_calls_by_function"].items():
            text = ", ".join(f"{op.split(':', 1)[1]} {n:.1f}" for op, n in ops.items())
            say(f"  {name:17s} {function:19s} {text}")
    say()

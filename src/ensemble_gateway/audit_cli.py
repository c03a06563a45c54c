"""``ensemble-gateway audit export|show``: the decision records of the audit trail.

The records are JSON lines under ``audit/date=YYYY-MM-DD/hour=HH/`` of the data bucket (the
audit stream's objects on AWS, one object per record in the local runtime), partitioned by the
hour each decision ended (see ``domain/audit.py``). Both commands read the partitions of a time
window only, one day's listing at a time, and deduplicate records on ``record_id`` (a record may
be delivered twice, see ``domain/auditing.py``).

- ``export [--since T] [--until T] [--service S] [-o FILE]``: the records that ended in the window
  (default: the last 24 hours), of one service or all, as JSON Lines, oldest first.
- ``show PREDICTION_ID``: the decision, its steps, shadows and deliveries: which models and
  versions decided, on which inputs (by hash), how long each step took and where its time went,
  who was told. The window starts at the prediction's creation (in its ID) and runs 7 days on
  (``--within``); ``--json`` prints the records themselves.

``stats [--since T] [--until T] [--json]`` prints the dashboard's figures from the same records
(per service: predictions, failures, latency p50/p95, model time against queue and gateway
overhead; webhooks given up on) and the depth of each dead-letter queue.

Against a deployed gateway (``--stack-name``) the bucket is the stack's ``BucketName`` output and
the calls are those of ``tests/operator_permissions.py``; against the running local runtime, its
bucket in the local AWS.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = ["AuditTrail", "Decision", "add_audit_commands", "parse_moment", "statistics"]

AUDIT_PREFIX = "audit/"
# A prediction ID starts with its creation time (domain/models.new_prediction_id).
_ID_TIME = re.compile(r"^p(\d{14})")
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_moment(text: str) -> datetime:
    """An ISO 8601 moment (local time without an offset) or an age (``90s``, ``30m``, ``2h``, ``7d``).

    Raises
    ------
    argparse.ArgumentTypeError
        Neither.
    """
    value = text.strip()
    if value[:-1].isdigit() and value[-1:].lower() in _AGE_UNITS:
        return datetime.now(UTC) - timedelta(seconds=int(value[:-1]) * _AGE_UNITS[value[-1].lower()])
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is neither an ISO 8601 moment (2026-12-01T09:30) nor an age (90s, 30m, 2h, 7d)"
        ) from None
    return moment.astimezone(UTC)  # a naive moment is the local time


def _duration(text: str) -> timedelta:
    value = text.strip()
    if value[:-1].isdigit() and value[-1:].lower() in _AGE_UNITS:
        return timedelta(seconds=int(value[:-1]) * _AGE_UNITS[value[-1].lower()])
    raise argparse.ArgumentTypeError(f"'{text}' is not a duration (90s, 30m, 2h, 7d)")


def _moment_of(record: dict[str, Any]) -> datetime | None:
    value = record.get("finished_at") or record.get("recorded_at")
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def created_at_of(prediction_id: str) -> datetime | None:
    """The creation time a prediction ID carries (None: not an ID the gateway made)."""
    match = _ID_TIME.match(prediction_id)
    if match is None:
        return None
    try:
        return datetime.strptime(match.group(1), "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None


@dataclass
class AuditTrail:
    """Reads decision records from the data bucket.

    Parameters
    ----------
    s3
        A boto3 S3 client allowed ``ListBucket`` on ``audit/`` and ``GetObject`` (and the data
        key's ``Decrypt``).
    bucket
        The gateway's data bucket.
    """

    s3: Any
    bucket: str
    #: How many objects were read (the cost of a window).
    objects_read: int = field(default=0, init=False)

    def records(self, since: datetime, until: datetime, service: str | None = None) -> list[dict[str, Any]]:
        """The records that ended in ``[since, until]``, of ``service`` (None: any), oldest first,
        each ``record_id`` once (the one recorded last)."""
        unique: dict[str, dict[str, Any]] = {}
        for record in self._read(since, until):
            moment = _moment_of(record)
            if moment is None or not since <= moment <= until:
                continue
            if service is not None and record.get("service") != service:
                continue
            key = str(record.get("record_id"))
            kept = unique.get(key)
            if kept is None or str(record.get("recorded_at") or "") >= str(kept.get("recorded_at") or ""):
                unique[key] = record
        return sorted(unique.values(), key=lambda r: (str(r.get("finished_at") or ""), str(r.get("record_id"))))

    def decision(self, prediction_id: str, since: datetime, until: datetime) -> Decision | None:
        """The decision records of ``prediction_id`` and of everything under it (steps at any
        depth, shadows, deliveries) that ended in the window; None when it has no record there."""
        records = self.records(since, until)
        tree = {prediction_id}
        # Parents end after their steps: a few passes find the deepest steps (nesting is bounded).
        for _ in range(8):
            grown = tree | {str(r["prediction_id"]) for r in records if r.get("parent_id") in tree}
            if grown == tree:
                break
            tree = grown
        mine = [r for r in records if r.get("prediction_id") in tree]
        top = [r for r in mine if r.get("prediction_id") == prediction_id and r.get("kind") != "delivery"]
        if not top:
            return None
        return Decision(
            record=top[-1],
            steps=[r for r in mine if r.get("kind") == "step"],
            shadows=[r for r in mine if r.get("kind") == "shadow"],
            deliveries=[r for r in mine if r.get("kind") == "delivery"],
        )

    def _read(self, since: datetime, until: datetime) -> Iterator[dict[str, Any]]:
        """Every record of the partitions the window overlaps (whole hours, UTC)."""
        first = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        last = until.astimezone(UTC)
        day = first.replace(hour=0)
        while day <= last:
            prefix = f"{AUDIT_PREFIX}date={day:%Y-%m-%d}/"
            for key in self._keys(prefix):
                hour = _hour_of(key)
                if hour is None:
                    continue
                start = day.replace(hour=hour)
                if start + timedelta(hours=1) <= first or start > last:
                    continue
                yield from self._lines(key)
            day += timedelta(days=1)

    def _keys(self, prefix: str) -> Iterator[str]:
        request: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        while True:
            response = self.s3.list_objects_v2(**request)
            for entry in response.get("Contents", []):
                yield str(entry["Key"])
            token = response.get("NextContinuationToken")
            if not response.get("IsTruncated") or not token:
                return
            request["ContinuationToken"] = token

    def _lines(self, key: str) -> Iterator[dict[str, Any]]:
        self.objects_read += 1
        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        for line in body.decode("utf-8", errors="replace").splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a torn line is skipped, as the Glue table's SerDe does
            if isinstance(record, dict) and "record_id" in record:
                yield record


def _hour_of(key: str) -> int | None:
    match = re.search(r"/hour=(\d{2})/", key)
    return int(match.group(1)) if match else None


@dataclass
class Decision:
    """A prediction's decision record and the records under it."""

    record: dict[str, Any]
    steps: list[dict[str, Any]]
    shadows: list[dict[str, Any]]
    deliveries: list[dict[str, Any]]

    def document(self) -> dict[str, Any]:
        """What ``audit show --json`` prints."""
        return {"prediction": self.record, "steps": self.steps, "shadows": self.shadows, "deliveries": self.deliveries}


# -- text ------------------------------------------------------------------------------------
def _ms(value: Any) -> str:
    return "-" if not isinstance(value, int | float) else f"{value / 1000:.3f}s"


def _short(digest: Any) -> str:
    return "-" if not digest else str(digest)[:12]


def _object_line(entry: Any) -> str:
    if not isinstance(entry, dict):
        return "-"
    size = entry.get("size")
    described = f"sha256 {entry.get('sha256') or 'unknown'}"
    if size is not None:
        described += f", {size} bytes"
    if entry.get("content_type"):
        described += f", {entry['content_type']}"
    # A real-time step's input goes to the model from memory: its hash is all that names it.
    where = entry.get("uri") or "not stored (passed to the model from memory)"
    return f"{where} ({described})"


def _served(record: dict[str, Any]) -> str:
    version = record.get("version") or "?"
    endpoint = record.get("endpoint")
    return f"{record.get('service')} {version}" + (f" on {endpoint}" if endpoint else "")


def _timing(record: dict[str, Any]) -> str:
    timing = record.get("timing") or {}
    if not timing:
        return "-"
    if timing.get("model_ms") is None:
        return f"total {_ms(timing.get('total_ms'))}"
    return (
        f"total {_ms(timing.get('total_ms'))} = queue {_ms(timing.get('queue_ms'))} + "
        f"model {_ms(timing.get('model_ms'))} + gateway {_ms(timing.get('overhead_ms'))}"
    )


def _delivery_line(entry: dict[str, Any]) -> str:
    if entry.get("channel") == "eventbridge":
        return f"EventBridge event {entry.get('event_type')} (event_id {entry.get('event_id')})"
    outcome = (
        "delivered" if entry.get("delivered") else ("failed: " + str(entry.get("error") or entry.get("status_code")))
    )
    return (
        f"webhook {entry.get('event_type')} to {entry.get('target')}: {outcome} "
        f"(attempt {entry.get('attempt')}, HTTP {entry.get('status_code') or '-'}, at {entry.get('at')})"
    )


def show_lines(decision: Decision) -> list[str]:
    """The human-readable ``audit show``: the decision, then each step, shadow and delivery."""
    record = decision.record
    lines = [
        f"prediction {record.get('prediction_id')}: {record.get('status')}",
        f"  decided by  {_served(record)} ({record.get('service_kind')})",
        f"  client      {record.get('client_id')}",
        f"  created     {record.get('created_at')}   finished {record.get('finished_at')}",
        f"  time        {_timing(record)}",
        f"  input       {_object_line(record.get('input'))}",
        f"  output      {_object_line(record.get('output'))}",
    ]
    assignment = record.get("assignment")
    if isinstance(assignment, dict):
        split = ", ".join(f"{v} {w}%" for v, w in sorted((assignment.get("traffic") or {}).items()))
        how = f"sticky on '{assignment.get('key')}'" if assignment.get("by") == "sticky" else "random"
        lines.append(f"  traffic     {how}, bucket {assignment.get('bucket')} of [{split}]")
    error = record.get("error")
    if isinstance(error, dict):
        lines.append(f"  error       {error.get('code')}: {error.get('message')}")
    told = list(record.get("deliveries") or []) + [d for r in decision.deliveries for d in r.get("deliveries") or []]
    callback = (record.get("callback") or {}).get("kind")
    if told:
        lines.append("  notified    " + _delivery_line(told[0]))
        lines += ["              " + _delivery_line(entry) for entry in told[1:]]
    elif callback == "webhook":
        lines.append(
            f"  notified    webhook to {(record.get('callback') or {}).get('target')}: no delivery recorded yet"
        )
    else:
        lines.append(f"  notified    {'nobody (the client polls)' if callback in (None, 'none') else callback}")
    if decision.steps:
        lines.append("steps")
        by_id = {str(r.get("prediction_id")): r for r in decision.steps}
        order = [str(s.get("prediction_id")) for s in record.get("steps") or []]
        ordered = [by_id[i] for i in order if i in by_id] + [r for i, r in by_id.items() if i not in order]
        for step in ordered:
            lines.append(
                f"  {step.get('step') or '-'}: {step.get('status')} by {_served(step)}"
                + (f" [under {step.get('parent_id')}]" if step.get("parent_id") != record.get("prediction_id") else "")
            )
            lines.append(f"    time    {_timing(step)}")
            lines.append(f"    input   {_object_line(step.get('input'))}")
            lines.append(f"    output  {_object_line(step.get('output'))}")
            if isinstance(step.get("error"), dict):
                lines.append(f"    error   {step['error'].get('code')}: {step['error'].get('message')}")
    elif record.get("steps"):
        lines.append("steps (from the ensemble's record; their own records are not in the window)")
        for step in record["steps"]:
            lines.append(
                f"  {step.get('name')}: {step.get('status')} by {step.get('service')} {step.get('version') or '?'}"
            )
    if decision.shadows or record.get("shadows"):
        lines.append("shadows (never the result)")
        for shadow in decision.shadows:
            lines.append(
                f"  {shadow.get('service')} {shadow.get('version')}: {shadow.get('status')}, "
                f"output sha256 {_short((shadow.get('output') or {}).get('sha256'))}, {_timing(shadow)}"
            )
        seen = {s.get("prediction_id") for s in decision.shadows}
        for shadow in record.get("shadows") or []:
            if shadow.get("prediction_id") not in seen:
                lines.append(f"  {shadow.get('service')} {shadow.get('version')}: {shadow.get('status') or 'running'}")
    return lines


# -- stats -----------------------------------------------------------------------------------
def _percentile(values: list[int], fraction: float) -> int | None:
    """The nearest-rank percentile (None of nothing)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))]


def _mean(values: list[int]) -> int | None:
    return round(sum(values) / len(values)) if values else None


def statistics(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The dashboard's figures per service and kind (``prediction``, ``step``, ``shadow``), from
    decision records: what ``domain/metering.py`` puts on CloudWatch, computed from the trail.

    Webhooks given up on are the ``delivery`` records not delivered, counted on their service.
    """
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for record in records:
        kind = str(record.get("kind"))
        service = str(record.get("service"))
        if kind == "delivery":
            entry = groups.setdefault((service, "prediction"), _empty(service, "prediction"))
            if not all(d.get("delivered") for d in record.get("deliveries") or []):
                entry["webhook_failures"] += 1
            continue
        entry = groups.setdefault((service, kind), _empty(service, kind))
        entry["predictions"] += 1
        status = record.get("status")
        if status in ("FAILED", "EXPIRED"):
            entry["failures"] += 1
        if status == "SKIPPED":
            continue
        timing = record.get("timing") or {}
        for name in ("total_ms", "queue_ms", "model_ms", "overhead_ms"):
            if isinstance(timing.get(name), int):
                entry["_" + name].append(timing[name])
    figures = []
    for (_, _), entry in sorted(groups.items()):
        totals = entry.pop("_total_ms")
        entry["latency_p50_ms"] = _percentile(totals, 0.50)
        entry["latency_p95_ms"] = _percentile(totals, 0.95)
        for name in ("queue_ms", "model_ms", "overhead_ms"):
            entry[f"mean_{name}"] = _mean(entry.pop("_" + name))
        figures.append(entry)
    return figures


def _empty(service: str, kind: str) -> dict[str, Any]:
    return {
        "service": service,
        "kind": kind,
        "predictions": 0,
        "failures": 0,
        "webhook_failures": 0,
        "_total_ms": [],
        "_queue_ms": [],
        "_model_ms": [],
        "_overhead_ms": [],
    }


def dead_letter_depths(sqs: Any, urls: Iterable[str]) -> dict[str, int]:
    """The messages waiting in each dead-letter queue, by queue name."""
    depths = {}
    for url in urls:
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
        depths[url.rstrip("/").rsplit("/", 1)[-1]] = int(attributes["Attributes"]["ApproximateNumberOfMessages"])
    return depths


# -- commands --------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Cli:
    """The CLI's target lookup and the error it prints (given: see models_cli._Cli)."""

    aws_target: Callable[[argparse.Namespace], tuple[dict[str, Any], Any, str]]
    error: type[Exception]

    def trail(self, args: argparse.Namespace) -> AuditTrail:
        outputs, factory, _ = self.aws_target(args)
        bucket = outputs.get("BucketName")
        if not bucket:
            raise self.error("the gateway's stack has no BucketName output: is it an Ensemble Gateway stack?")
        return AuditTrail(factory("s3"), str(bucket))


def _window(args: argparse.Namespace, cli: _Cli) -> tuple[datetime, datetime]:
    until = args.until or datetime.now(UTC)
    since = args.since or until - timedelta(hours=24)
    if since > until:
        raise cli.error(f"--since ({since:%Y-%m-%dT%H:%M:%SZ}) is after --until ({until:%Y-%m-%dT%H:%M:%SZ})")
    return since, until


def _export(cli: _Cli, args: argparse.Namespace) -> int:
    since, until = _window(args, cli)
    records = cli.trail(args).records(since, until, args.service)
    lines: Iterable[str] = (json.dumps(record, sort_keys=True) + "\n" for record in records)
    if args.output and args.output != "-":
        path = Path(args.output)
        try:
            with path.open("w", encoding="utf-8") as out:
                out.writelines(lines)
        except OSError as error:
            raise cli.error(f"cannot write {path}: {error.strerror or error}") from None
        print(f"{len(records)} decision records written to {path}", file=sys.stderr)
    else:
        sys.stdout.writelines(lines)
    return 0


def _show(cli: _Cli, args: argparse.Namespace) -> int:
    prediction_id = args.prediction_id
    created = created_at_of(prediction_id)
    since = args.since or (created - timedelta(minutes=5) if created else None)
    if since is None:
        raise cli.error(f"'{prediction_id}' carries no creation time: give --since (when it was created)")
    until = min(since + args.within, datetime.now(UTC) + timedelta(hours=1))
    decision = cli.trail(args).decision(prediction_id, since, until)
    if decision is None:
        raise cli.error(
            f"no decision record of '{prediction_id}' between {since:%Y-%m-%dT%H:%M:%SZ} and "
            f"{until:%Y-%m-%dT%H:%M:%SZ} (a record reaches the audit trail within minutes of the end; "
            "an unfinished prediction has none)"
        )
    if args.json:
        print(json.dumps(decision.document(), indent=2, sort_keys=True))
    else:
        print("\n".join(show_lines(decision)))
    return 0


def _stats(cli: _Cli, args: argparse.Namespace) -> int:
    since, until = _window(args, cli)
    outputs, factory, _ = cli.aws_target(args)
    bucket = outputs.get("BucketName")
    if not bucket:
        raise cli.error("the gateway's stack has no BucketName output: is it an Ensemble Gateway stack?")
    figures = statistics(AuditTrail(factory("s3"), str(bucket)).records(since, until))
    urls = [u for u in str(outputs.get("DeadLetterQueueUrls") or "").split(",") if u]
    depths = dead_letter_depths(factory("sqs"), urls)
    if args.json:
        window = {"since": f"{since:%Y-%m-%dT%H:%M:%SZ}", "until": f"{until:%Y-%m-%dT%H:%M:%SZ}"}
        print(json.dumps({"window": window, "services": figures, "dead_letter_queues": depths}, indent=2))
        return 0
    print(f"from {since:%Y-%m-%dT%H:%M:%SZ} to {until:%Y-%m-%dT%H:%M:%SZ} (decision records)")
    header = ("SERVICE", "KIND", "COUNT", "FAILED", "P50", "P95", "QUEUE", "MODEL", "OVERHEAD", "WEBHOOKS FAILED")
    rows = [
        (
            f["service"],
            f["kind"],
            str(f["predictions"]),
            str(f["failures"]),
            _ms(f["latency_p50_ms"]),
            _ms(f["latency_p95_ms"]),
            _ms(f["mean_queue_ms"]),
            _ms(f["mean_model_ms"]),
            _ms(f["mean_overhead_ms"]),
            str(f["webhook_failures"]),
        )
        for f in figures
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    if not rows:
        print("(no decision records in the window)")
    print("dead-letter queues: " + (", ".join(f"{name} {depth}" for name, depth in depths.items()) or "-"))
    return 0


def add_audit_commands(
    sub: Any,
    common: argparse.ArgumentParser,
    *,
    aws_target: Callable[[argparse.Namespace], tuple[dict[str, Any], Any, str]],
    cli_error: type[Exception],
) -> None:
    """Add ``audit export|show`` and ``stats`` to the CLI's subcommands.

    Parameters
    ----------
    sub
        The CLI's subparsers.
    common
        The parent parser of the target options (``--stack-name``, ``--region``...).
    aws_target
        The CLI's ``(stack outputs, client factory, stack name)`` of the local runtime or ``--stack-name``.
    cli_error
        The error the CLI prints without a traceback.
    """
    cli = _Cli(aws_target, cli_error)
    audit = sub.add_parser("audit", help="the audit trail: every decision, its models, inputs and outputs (operator)")
    actions = audit.add_subparsers(dest="action", required=True)
    export = actions.add_parser(
        "export", parents=[common], help="the decision records of a time window, as JSON Lines (oldest first)"
    )
    export.add_argument(
        "--since", type=parse_moment, metavar="T", help="from this moment or age (default: 24h before --until)"
    )
    export.add_argument("--until", type=parse_moment, metavar="T", help="until this moment or age (default: now)")
    export.add_argument("--service", metavar="S", help="only the records of this service")
    export.add_argument("-o", "--output", metavar="FILE", help="write to FILE (default: standard output)")
    export.set_defaults(func=lambda args: _export(cli, args))
    show = actions.add_parser(
        "show",
        parents=[common],
        help="a prediction's decision: models and versions, inputs by hash, time per step, who was told",
    )
    show.add_argument("prediction_id")
    show.add_argument(
        "--since", type=parse_moment, metavar="T", help="start looking here (default: its creation, from its ID)"
    )
    show.add_argument(
        "--within", type=_duration, default=timedelta(days=7), metavar="D", help="how long after (default: 7d)"
    )
    show.add_argument("--json", action="store_true", help="print the records themselves")
    show.set_defaults(func=lambda args: _show(cli, args))
    stats = sub.add_parser(
        "stats",
        parents=[common],
        help="per service: predictions, failures, latency p50/p95, model time vs overhead; DLQ depths",
    )
    stats.add_argument(
        "--since", type=parse_moment, metavar="T", help="from this moment or age (default: 24h before --until)"
    )
    stats.add_argument("--until", type=parse_moment, metavar="T", help="until this moment or age (default: now)")
    stats.add_argument("--json", action="store_true", help="print the figures as JSON")
    stats.set_defaults(func=lambda args: _stats(cli, args))

"""``ensemble-gateway demo``: the local runtime end to end on the example services.

Starts everything, creates a client, sends each example service its sample inputs through the HTTP
API (presigned POST uploads, webhooks to a receiver that verifies every signature), shows
progress, prints the results with their lineage, and stops.

It also shows versions (see the README's "Versions: approval, canary, shadow"): the example
catalog registers triage-product 1.1.0 pending approval, with a 10% canary split sticky on the
metadata field ``customer_id``, and fraud-score 1.1.0 as a shadow of every fraud-score
prediction. The demo approves triage-product 1.1.0 (as ``services approve`` does), sends every
prediction with a ``customer_id``, sends triage-product one complaint from each of
:data:`CANARY_CUSTOMERS` customers more, then prints how many predictions each version served
and what the shadow answered.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .session import LocalSession

CONTENT_TYPES = {".json": "application/json", ".png": "image/png", ".jpg": "image/jpeg", ".txt": "text/plain"}
#: The canary of the example catalog: the service, the version the demo approves, who approves it.
CANARY = ("triage-product", "1.1.0", "demo")
#: The service whose catalog entry names a shadow version.
SHADOWED = "fraud-score"
#: How many customers send triage-product one complaint each, beside the samples: enough for the
#: 10% canary to get some of them (the draw is a hash of the customer: the same every run).
CANARY_CUSTOMERS = 40
TERMINAL = ("COMPLETED", "FAILED", "EXPIRED", "CANCELLED")


class VerifyingReceiver:
    """A webhook receiver on 127.0.0.1 that verifies Standard Webhooks signatures."""

    def __init__(self, secret: str) -> None:
        from standardwebhooks import Webhook

        verifier = Webhook(secret)
        self.verified: list[dict[str, Any]] = []
        self.rejected = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                try:
                    verifier.verify(body, dict(self.headers.items()))
                except Exception:
                    with receiver.lock:
                        receiver.rejected += 1
                    self.send_response(401)
                else:
                    with receiver.lock:
                        receiver.verified.append({"id": self.headers.get("webhook-id"), **json.loads(body)})
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/webhooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def summarise(output: Any) -> str:
    """A few words about a model's (or an ensemble's) output."""
    if not isinstance(output, dict):
        return str(output)[:60]
    if "result" in output and "steps" in output:
        # An ensemble: its result, plus the steps a reader would want to see at a glance.
        text = summarise(output["result"]) if output["result"] is not None else ""
        escalation = output["steps"].get("escalate")
        return f"{text}; escalated: {summarise(escalation)}" if escalation else text
    if output and all(isinstance(value, dict) and "model" in value for value in output.values()):
        # A fan-out: one output per member model.
        return ", ".join(summarise(value).split(" [")[0] for value in output.values())
    parts = []
    if "decision" in output:
        parts.append(f"decision={output['decision']}")
    if "fraud_probability" in output:
        top = ", ".join(output.get("top_factors", [])[:3])
        parts.append(f"fraud_probability={output['fraud_probability']:.2f} (top factors: {top})")
    if "estimated_repair_cost" in output:
        parts.append(f"repair_cost=EUR {output['estimated_repair_cost']:,.0f}")
    if "severity" in output:
        parts.append(f"severity={output['severity']}")
    if "label" in output:
        parts.append(f"{output.get('task', 'label')}={output['label']} ({output.get('confidence', 0):.2f})")
    if "priority" in output:
        parts.append(f"priority={output['priority']} → {output.get('route_to')}")
    if "echo" in output:
        parts.append(f"echo={json.dumps(output['echo'])[:50]}")
    if "ok" in output:
        parts.append("ok")
    if not parts:
        parts.append(json.dumps(output)[:80])
    if "version" in output:
        parts.append(f"[{output.get('model', '')} v{output['version']}]")
    return " ".join(parts)


def _elapsed(start: str, end: str) -> float:
    from datetime import datetime

    def parse(moment: str) -> datetime:
        return datetime.fromisoformat(moment.replace("Z", "+00:00"))

    return (parse(end) - parse(start)).total_seconds()


def customer_id(number: int) -> str:
    """The demo's customer ``number`` (the metadata field triage-product's canary is sticky on)."""
    return f"C{number:04d}"


def approve_canary(session: LocalSession) -> Any:
    """Approve the canary version as ``services approve SERVICE VERSION --by demo`` does; return
    the service after it, or None when the catalog has no such pending version."""
    from ..adapters.dynamodb import DynamoServiceCatalog
    from ..domain.models import VersionStatus
    from ..service_versions import ServiceVersions

    assert session.runtime.stack is not None
    service, version, by = CANARY
    catalog = DynamoServiceCatalog(
        session.runtime.stack.outputs["ServicesTableName"], session.runtime.client("dynamodb")
    )
    entry = catalog.get(service)
    record = entry.versions().get(version) if entry is not None else None
    if record is None or record.status is not VersionStatus.PENDING_APPROVAL:
        return None
    change = ServiceVersions(catalog).approve(service, version, by=by, note="the demo's canary")
    return change.service


def served_versions(jobs: list[dict[str, Any]], service: str) -> list[tuple[str, str]]:
    """(customer, version) of every prediction the jobs made of ``service``: their own, or their
    ensemble steps' (the lineage's ``model.version``)."""
    served = []
    for job in jobs:
        doc = job.get("doc") or {}
        customer = job.get("customer", "")
        if job["service"] == service and doc.get("status") == "COMPLETED":
            served.append((customer, _version(doc)))
        for step in doc.get("steps") or []:
            if step.get("service") == service and step.get("status") == "COMPLETED":
                served.append((customer, _version(step)))
    return served


def _version(document: dict[str, Any]) -> str:
    """The catalog version in a lineage's ``model.version`` (a real-time endpoint adds ``/<variant>``)."""
    return str((document.get("model") or {}).get("version")).split("/")[0]


def shadows_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The shadow outcomes of a prediction document: its own and its steps' (``shadows``)."""
    found = [s for s in doc.get("shadows") or [] if isinstance(s, dict)]
    for step in doc.get("steps") or []:
        found.extend(s for s in step.get("shadows") or [] if isinstance(s, dict))
    return found


def _samples(root: Path, service: str, limit: int) -> list[Path]:
    folder = root / "examples" / service / "samples"
    return sorted(p for p in folder.iterdir() if p.suffix in CONTENT_TYPES)[:limit] if folder.exists() else []


def run_demo(catalog: Path, per_service: int = 3, out: Callable[[str], None] | None = None) -> int:
    """Run the demo; return 0 when every prediction ended as expected and every webhook verified."""
    say = out or (lambda line: print(line, flush=True))
    started = time.monotonic()

    def stamp() -> str:
        return f"[{time.monotonic() - started:5.1f}s]"

    say("Ensemble Gateway demo: the real handlers, template.yaml wiring and state machines on this machine")
    say("(moto for S3, SQS, SNS, DynamoDB and Step Functions; a local SageMaker runtime for the models).")
    session = LocalSession(api_port=0, verbose=False)
    say(f"{stamp()} starting the local runtime ...")
    session.start(catalog)
    from ..client import GatewayClient

    api = GatewayClient(session.runtime.api_url, session.api_key)
    receiver = VerifyingReceiver(session.webhook_secret)
    try:
        services = api.services()
        ensembles = [s["name"] for s in services if s["kind"] == "ensemble"]
        say(
            f"{stamp()} ready: API {session.runtime.api_url}, {len(services)} services "
            f"({len(ensembles)} ensembles: {', '.join(ensembles)}), client 'local-user' created"
        )
        say(f"{stamp()} webhook receiver {receiver.url} verifies every signature with `standardwebhooks`")
        canary = approve_canary(session)
        if canary is not None:
            split = " ".join(f"{v}={w}" for v, w in canary.serving_traffic().items())
            say(
                f"{stamp()} {CANARY[0]} {CANARY[1]} approved by '{CANARY[2]}' (as `ensemble-gateway services approve "
                f"{CANARY[0]} {CANARY[1]} --by {CANARY[2]}`): its canary split {split} serves, sticky on "
                f"metadata {canary.sticky()}"
            )
        shadowed = next((s for s in services if s["name"] == SHADOWED), None)
        say("")
        jobs: list[dict[str, Any]] = []
        for service in services:
            for path in _samples(session.runtime.root, service["name"], per_service):
                content_type = CONTENT_TYPES[path.suffix]
                # Every prediction comes from a customer, as a client's would.
                customer = customer_id(len(jobs) + 1)
                accepted = api.submit(
                    service["name"],
                    content_type=content_type,
                    webhook_url=receiver.url,
                    metadata={"sample": path.name, "customer_id": customer},
                )
                api.upload(accepted["upload"], path.read_bytes(), content_type)
                jobs.append(
                    {
                        "service": service["name"],
                        "kind": service["kind"],
                        "sample": path.name,
                        "customer": customer,
                        "id": accepted["prediction_id"],
                        "doc": None,
                    }
                )
        say(
            f"{stamp()} submitted {len(jobs)} predictions to {len({j['service'] for j in jobs})} services "
            "(POST /predictions, then the input through its presigned POST)"
        )
        canary_jobs = _submit_canary(api, session.runtime.root) if canary is not None else []
        if canary_jobs:
            say(
                f"{stamp()} submitted {len(canary_jobs)} more to {CANARY[0]}, one complaint from each of "
                f"{len(canary_jobs)} customers (metadata customer_id), for its canary"
            )
        _wait_all(api, jobs + canary_jobs, say, stamp)
        _wait_webhooks(receiver, jobs)
        say("")
        say("Results (GET /predictions/{id}; outputs downloaded through their presigned URLs)")
        expected_failures = 0
        unexpected = 0
        widths = result_widths(jobs)
        for job in jobs:
            doc = job["doc"]
            # Server-side time from the request to its terminal status (the demo polls round-robin,
            # so its own clock would add the time spent submitting and polling the others).
            seconds = _elapsed(doc["created_at"], doc["updated_at"])
            if doc["status"] == "COMPLETED":
                detail = summarise(json.loads(api.download(doc)))
            else:
                error = doc.get("error") or {}
                detail = f"{error.get('code')}: {error.get('message', '')[:90]}"
                if job["service"] == "always-fails":
                    expected_failures += 1
                    detail += "  (expected: this model always fails)"
                else:
                    unexpected += 1
            say(result_line(job["service"], job["sample"], doc["status"], seconds, detail, widths))
            for step in doc.get("steps") or []:
                took = ""
                if step.get("started_at") and step.get("finished_at"):
                    took = f"{_elapsed(step['started_at'], step['finished_at']):4.1f}s"
                model = step.get("model") or {}
                say(
                    f"      └ {step['name']:{widths['step']}} {step['service']:{widths['step_service']}} "
                    f"{step['status']:10} {took:5}  endpoint {model.get('endpoint')} v{model.get('version')}"
                )
        versions_ok = True
        if canary is not None:
            say("")
            versions_ok = _show_versions(api, jobs, canary_jobs, canary, shadowed, say)
        duplicates = len(receiver.verified) - len({w["id"] for w in receiver.verified})
        say("")
        say(
            f"Webhooks: {len(receiver.verified)} delivered and verified, {receiver.rejected} rejected, "
            f"{duplicates} duplicates"
        )
        completed = sum(1 for j in jobs if j["doc"]["status"] == "COMPLETED")
        say(
            f"Predictions: {len(jobs)} submitted, {completed} completed, "
            f"{expected_failures} failed as expected, {unexpected} failed unexpectedly"
        )
        say(f"{stamp()} done; stopping the local runtime")
        ok = unexpected == 0 and receiver.rejected == 0 and len(receiver.verified) == len(jobs) and versions_ok
        return 0 if ok else 1
    finally:
        receiver.close()
        session.stop()


def _submit_canary(api: Any, root: Path) -> list[dict[str, Any]]:
    """One complaint to the canary's service from each of :data:`CANARY_CUSTOMERS` customers (no
    webhook: the demo reads their lineage), the texts of its and complaint-triage's samples in turn."""
    texts = [path.read_bytes() for name in (CANARY[0], "complaint-triage") for path in _samples(root, name, 10)]
    jobs: list[dict[str, Any]] = []
    for number in range(1, CANARY_CUSTOMERS + 1):
        customer = customer_id(number)
        accepted = api.submit(CANARY[0], content_type="application/json", metadata={"customer_id": customer})
        api.upload(accepted["upload"], texts[number % len(texts)], "application/json")
        jobs.append(
            {
                "service": CANARY[0],
                "kind": "model",
                "sample": "",
                "customer": customer,
                "id": accepted["prediction_id"],
                "doc": None,
            }
        )
    return jobs


def _show_versions(
    api: Any,
    jobs: list[dict[str, Any]],
    canary_jobs: list[dict[str, Any]],
    canary: Any,
    shadowed: dict[str, Any] | None,
    say: Callable[[str], None],
) -> bool:
    """Print the canary's predictions per version and the shadow's outcomes; whether both behaved:
    every prediction of the canary's service completed, each customer's on one version, and the
    shadow ran beside every prediction of the shadowed service."""
    name = CANARY[0]
    served = served_versions(jobs + canary_jobs, name)
    counts: dict[str, int] = {}
    by_customer: dict[str, set[str]] = {}
    for customer, version in served:
        counts[version] = counts.get(version, 0) + 1
        by_customer.setdefault(customer, set()).add(version)
    split = " ".join(f"{v}={w}" for v, w in canary.serving_traffic().items())
    say(f"Versions ({name}: a canary {split}, sticky on metadata {canary.sticky()}; the lineage's model.version)")
    shown = ", ".join(f"{version}: {count}" for version, count in sorted(counts.items()))
    on_canary = sorted(c for c, versions in by_customer.items() if CANARY[1] in versions)
    say(
        f"  {name:18} {len(served)} predictions from {len(by_customer)} customers (the samples', complaint-triage's "
        f"steps and the {len(canary_jobs)} complaints more): {shown}"
    )
    say(f"  {'':18} customers on {CANARY[1]}: {', '.join(on_canary) or 'none'}")
    mixed = sorted(c for c, versions in by_customer.items() if len(versions) > 1)
    say(
        f"  {'':18} sticky: "
        + (
            f"customers served by two versions: {', '.join(mixed)}"
            if mixed
            else "each customer's predictions on one version"
        )
    )
    failed = sum(1 for job in canary_jobs if job["doc"]["status"] != "COMPLETED")
    ok = not mixed and failed == 0 and bool(on_canary)
    if shadowed is not None:
        ok = (
            _show_shadows(api, [job for job in jobs if job["service"] == SHADOWED or job["kind"] == "ensemble"], say)
            and ok
        )
    return ok


def _show_shadows(api: Any, jobs: list[dict[str, Any]], say: Callable[[str], None], timeout: float = 30.0) -> bool:
    """Wait for the shadows of ``jobs`` to end (a prediction never waits for its shadows), then
    print what each answered beside the served version; whether every shadow completed."""
    deadline = time.monotonic() + timeout
    while True:
        pending = [job for job in jobs if any(s.get("status") not in TERMINAL for s in shadows_of(job["doc"]))]
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(0.3)
        for job in pending:
            job["doc"] = api.status(job["id"])
    outcomes = [(job, shadow) for job in jobs for shadow in shadows_of(job["doc"])]
    direct = [job for job in jobs if job["service"] == SHADOWED]
    completed = sum(1 for _, shadow in outcomes if shadow.get("status") == "COMPLETED")
    versions = sorted({str(shadow.get("version")) for _, shadow in outcomes})
    say(
        f"  {SHADOWED:18} shadow {', '.join(versions) or '(none)'}: {len(outcomes)} shadow predictions beside "
        f"{len(direct)} {SHADOWED} predictions and the ensembles' {SHADOWED} steps, {completed} completed "
        "(GET /predictions/{id} shadows; never the result)"
    )
    for job, shadow in outcomes:
        if job["service"] != SHADOWED:
            continue
        served = (job["doc"].get("model") or {}).get("version")
        output = shadow.get("output")
        answer = summarise(output).split(" [")[0] if isinstance(output, dict) else shadow.get("status")
        say(f"  {'':18} {job['sample']:26} served by {served}; shadow {shadow.get('version')}: {answer}")
    return bool(outcomes) and completed == len(outcomes) and all(shadows_of(job["doc"]) for job in direct)


def result_widths(jobs: list[dict[str, Any]]) -> dict[str, int]:
    """Column widths of the results table: as wide as the longest service, sample and step name.

    Nothing is cut (a sample named ``bereaved-mortgage-fees.json`` is shown whole); the minimums
    keep short tables aligned as they always were.
    """
    steps = [step for job in jobs for step in ((job.get("doc") or {}).get("steps") or [])]
    return {
        "service": max([18, *(len(job["service"]) for job in jobs)]),
        "sample": max([26, *(len(job["sample"]) for job in jobs)]),
        "step": max([13, *(len(str(step.get("name", ""))) for step in steps)]),
        "step_service": max([18, *(len(str(step.get("service", ""))) for step in steps)]),
    }


def result_line(service: str, sample: str, status: str, seconds: float, detail: str, widths: dict[str, int]) -> str:
    """One row of the results table (see :func:`result_widths`)."""
    return f"  {service:{widths['service']}} {sample:{widths['sample']}} {status:10} {seconds:5.1f}s  {detail}"


def _wait_all(
    api: Any,
    jobs: list[dict[str, Any]],
    say: Callable[[str], None],
    stamp: Callable[[], str],
    timeout: float = 240.0,
) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        for job in jobs:
            if job["doc"] is None or job["doc"]["status"] not in TERMINAL:
                job["doc"] = api.status(job["id"])
        counts: dict[str, int] = {}
        for job in jobs:
            counts[job["doc"]["status"]] = counts.get(job["doc"]["status"], 0) + 1
        line = ", ".join(f"{count} {status.lower()}" for status, count in sorted(counts.items()))
        if line != last:
            say(f"{stamp()} progress: {line}")
            last = line
        if all(job["doc"]["status"] in TERMINAL for job in jobs):
            return
        time.sleep(0.3)
    print("timed out waiting for predictions", file=sys.stderr)


def _wait_webhooks(receiver: VerifyingReceiver, jobs: list[dict[str, Any]], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with receiver.lock:
            if len(receiver.verified) >= len(jobs):
                return
        time.sleep(0.2)

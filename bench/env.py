"""The local runtime as the benchmarks use it: the example catalog, the bench ensemble, a client,
a verifying webhook receiver, and helpers to submit predictions and wait for their webhooks."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .common import ROOT
from .trace import Call, Invocation, Recorder, untraced

EXAMPLES = ROOT / "examples"
BENCH_CATALOG = Path(__file__).resolve().parent / "fixtures" / "noop-chain.json"
CHAIN_SERVICE = "bench-noop-chain"
CHAIN_STEPS = 4
CONTENT_TYPES = {".json": "application/json", ".png": "image/png", ".jpg": "image/jpeg", ".txt": "text/plain"}


def ensure_models() -> None:
    """Train the example models if their artefacts are absent (as ``make models`` would)."""
    models = EXAMPLES / "models"
    if models.exists() and any(d.is_dir() for d in models.glob("*/model")):
        return
    spec = importlib.util.spec_from_file_location("examples_train", EXAMPLES / "train.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.train_all()


@dataclass
class Webhook:
    received_at: float
    webhook_id: str
    event_type: str
    prediction_id: str
    status: str
    verified: bool
    document: dict[str, Any]


class WebhookReceiver:
    """A real HTTP receiver on 127.0.0.1 verifying every Standard Webhooks signature."""

    def __init__(self, secret: str) -> None:
        from standardwebhooks import Webhook as Verifier

        verifier = Verifier(secret)
        self.received: list[Webhook] = []
        self.by_prediction: dict[str, list[Webhook]] = {}
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                arrived = time.time()
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                try:
                    verifier.verify(body, dict(self.headers.items()))
                    verified = True
                except Exception:
                    verified = False
                try:
                    document = json.loads(body)
                except ValueError:
                    document = {}
                data = document.get("data", {}) if isinstance(document, dict) else {}
                hook = Webhook(
                    received_at=arrived,
                    webhook_id=str(self.headers.get("webhook-id", "")),
                    event_type=str(document.get("type", "")),
                    prediction_id=str(data.get("prediction_id", "")),
                    status=str(data.get("status", "")),
                    verified=verified,
                    document=data,
                )
                with receiver.lock:
                    receiver.received.append(hook)
                    receiver.by_prediction.setdefault(hook.prediction_id, []).append(hook)
                    receiver.arrived.notify_all()
                self.send_response(204 if verified else 401)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/webhooks"
        self.thread = threading.Thread(target=self.server.serve_forever, name="bench-webhooks", daemon=True)
        self.thread.start()

    def wait_for(self, prediction_id: str, timeout: float) -> Webhook | None:
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                hooks = [h for h in self.by_prediction.get(prediction_id, []) if h.verified]
                if hooks:
                    return hooks[0]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self.arrived.wait(timeout=min(remaining, 0.5))

    def wait_all(self, prediction_ids: list[str], timeout: float) -> set[str]:
        """Wait until every prediction has a verified webhook; return the IDs still missing."""
        deadline = time.monotonic() + timeout
        wanted = set(prediction_ids)
        with self.lock:
            while True:
                missing = {p for p in wanted if not any(h.verified for h in self.by_prediction.get(p, []))}
                remaining = deadline - time.monotonic()
                if not missing or remaining <= 0:
                    return missing
                self.arrived.wait(timeout=min(remaining, 0.5))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Submission:
    service: str
    prediction_id: str = ""
    submitted_at: float = 0.0  # before POST /predictions
    accepted_at: float = 0.0  # 202 received
    upload_started_at: float = 0.0
    uploaded_at: float = 0.0  # presigned POST answered
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class BenchEnv:
    """A started local runtime (its own, or one borrowed from the tests) set up for benchmarks."""

    def __init__(self, runtime: Any, *, owns_runtime: bool) -> None:
        from ensemble_gateway.client import GatewayClient

        self.runtime = runtime
        self.owns_runtime = owns_runtime
        self._registered_chain = False
        self._register_chain()
        with untraced():
            from ensemble_gateway.adapters.dynamodb import DynamoClientDirectory, DynamoPredictionStore
            from ensemble_gateway.admin import create_client

            outputs = runtime.stack.outputs
            directory = DynamoClientDirectory(outputs["ClientsTableName"], runtime.client("dynamodb"))
            client, self.api_key = create_client(directory, "bench")
            self.webhook_secret = client.webhook_secrets[0]
            self.store = DynamoPredictionStore(outputs["PredictionsTableName"], runtime.client("dynamodb"))
        self.api = GatewayClient(runtime.api_url, self.api_key, timeout=60.0)
        self.receiver = WebhookReceiver(self.webhook_secret)
        self._local = threading.local()
        self._warm = False

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def start(cls) -> BenchEnv:
        """Start a local runtime of our own (the sweeper effectively off: it is not per prediction)."""
        from ensemble_gateway.local.catalog import apply_catalog
        from ensemble_gateway.local.runtime import LocalRuntime

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        ensure_models()
        runtime = LocalRuntime(ROOT, api_port=0, sweep_interval=3600.0)
        runtime.start()
        try:
            apply_catalog(runtime, EXAMPLES / "catalog.json")
            return cls(runtime, owns_runtime=True)
        except BaseException:
            runtime.stop()
            raise

    @classmethod
    def attach(cls, runtime: Any) -> BenchEnv:
        """Use a runtime that is already running with the example catalog (the tests' fixture)."""
        return cls(runtime, owns_runtime=False)

    def _register_chain(self) -> None:
        from ensemble_gateway.local.catalog import apply_catalog

        with untraced():
            apply_catalog(self.runtime, BENCH_CATALOG)
        self._registered_chain = True

    def close(self) -> None:
        self.receiver.close()
        if self.owns_runtime:
            self.runtime.stop()
        elif self._registered_chain:
            self._unregister_chain()

    def _unregister_chain(self) -> None:
        """Leave a borrowed runtime's catalog as it was: drop the bench ensemble again."""
        outputs = self.runtime.stack.outputs
        with untraced(), contextlib.suppress(Exception):
            service = self.service(CHAIN_SERVICE)
            self.runtime.client("dynamodb").delete_item(
                TableName=outputs["ServicesTableName"], Key={"name": {"S": CHAIN_SERVICE}}
            )
            if service is not None and service.ensemble is not None and service.ensemble.state_machine_arn:
                self.runtime.client("stepfunctions").delete_state_machine(
                    stateMachineArn=service.ensemble.state_machine_arn
                )

    def __enter__(self) -> BenchEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def recorder(self) -> Recorder:
        return Recorder(self.runtime)

    # -- data -------------------------------------------------------------------------------------
    @staticmethod
    def samples(service: str) -> list[tuple[bytes, str]]:
        folder = EXAMPLES / service / "samples"
        return [
            (p.read_bytes(), CONTENT_TYPES.get(p.suffix, "application/octet-stream")) for p in sorted(folder.iterdir())
        ]

    def service(self, name: str) -> Any:
        from ensemble_gateway.adapters.dynamodb import DynamoServiceCatalog

        with untraced():
            catalog = DynamoServiceCatalog(
                self.runtime.stack.outputs["ServicesTableName"], self.runtime.client("dynamodb")
            )
            return catalog.get(name)

    def record(self, prediction_id: str) -> Any:
        """The prediction's record, read directly (not through the API)."""
        with untraced():
            return self.store.get(prediction_id)

    def children(self, prediction_id: str) -> list[Any]:
        with untraced():
            return self.store.children(prediction_id)

    def execution_history(self, service_name: str, prediction_id: str) -> list[dict[str, Any]]:
        """The Step Functions history of an ensemble prediction (execution name = prediction ID)."""
        service = self.service(service_name)
        if service is None or service.ensemble is None or not service.ensemble.state_machine_arn:
            return []
        arn = service.ensemble.state_machine_arn.replace(":stateMachine:", ":execution:") + ":" + prediction_id
        events: list[dict[str, Any]] = []
        with untraced():
            sfn = self.runtime.client("stepfunctions")
            kwargs: dict[str, Any] = {"executionArn": arn, "maxResults": 1000}
            while True:
                page = sfn.get_execution_history(**kwargs)
                events.extend(page["events"])
                if not page.get("nextToken"):
                    return events
                kwargs["nextToken"] = page["nextToken"]

    # -- predictions ------------------------------------------------------------------------------
    def _client(self) -> Any:
        """One API client per thread (a requests session is not shared between threads)."""
        from ensemble_gateway.client import GatewayClient

        client = getattr(self._local, "api", None)
        if client is None:
            client = GatewayClient(self.runtime.api_url, self.api_key, timeout=60.0)
            self._local.api = client
        return client

    def submit(
        self, service: str, data: bytes, content_type: str, *, webhook: bool = True, inline: bool = False
    ) -> Submission:
        """POST /predictions with a webhook, then upload through the presigned POST; or, ``inline``,
        one POST carrying the (JSON) input: its start is then the POST (``uploaded_at`` = submitted)."""
        api = self._client()
        submission = Submission(service=service, submitted_at=time.time())
        if inline:
            submission.uploaded_at = submission.upload_started_at = submission.submitted_at
            try:
                accepted = api.submit(
                    service,
                    content_type=content_type,
                    webhook_url=self.receiver.url if webhook else None,
                    extra={"input": json.loads(data)},
                )
                submission.accepted_at = time.time()
                submission.prediction_id = accepted["prediction_id"]
            except Exception as error:
                submission.error = f"{type(error).__name__}: {error}"
            return submission
        try:
            accepted = api.submit(
                service, content_type=content_type, webhook_url=self.receiver.url if webhook else None
            )
            submission.accepted_at = time.time()
            submission.prediction_id = accepted["prediction_id"]
            submission.upload_started_at = time.time()
            api.upload(accepted["upload"], data, content_type)
            submission.uploaded_at = time.time()
        except Exception as error:
            submission.error = f"{type(error).__name__}: {error}"
        return submission

    def traced_prediction(
        self,
        recorder: Recorder,
        service: str,
        data: bytes,
        content_type: str,
        *,
        download: bool = False,
        inline: bool = False,
    ) -> tuple[Submission, Webhook, list[Call], list[Invocation]]:
        """One prediction on a quiet runtime, to its webhook (and its result downloaded): what it
        submitted, the webhook, and every call and invocation recorded meanwhile."""
        self.settle()
        mark = recorder.mark()
        submission = self.submit(service, data, content_type, inline=inline)
        if submission.error:
            raise RuntimeError(f"{service}: submission failed: {submission.error}")
        hook = self.receiver.wait_for(submission.prediction_id, timeout=120)
        if hook is None:
            raise RuntimeError(f"{service}: no webhook for {submission.prediction_id} within 120 s")
        if download:
            self.download(hook)
        self.settle()
        calls, invocations = recorder.since(mark)
        return submission, hook, calls, invocations

    def download(self, hook: Webhook) -> bytes | None:
        result = hook.document.get("result") or {}
        if not result.get("url"):
            return None
        response = self._client().http.get(result["url"], timeout=60)
        response.raise_for_status()
        return bytes(response.content)

    def warm_up(self) -> None:
        """One ensemble prediction (untimed) so that every function and the slow-noop model are loaded."""
        if self._warm:
            return
        for service, data, content_type in (
            ("vehicle-claim", *self.samples("vehicle-claim")[0]),
            (CHAIN_SERVICE, b'{"sleep_ms": 0}', "application/json"),
        ):
            submission = self.submit(service, data, content_type)
            if submission.error or self.receiver.wait_for(submission.prediction_id, 120) is None:
                raise RuntimeError(f"warm-up prediction of {service} failed: {submission.error or 'no webhook'}")
        self.settle()
        self._warm = True

    def settle(self, timeout: float = 5.0) -> None:
        """Wait until the pollers and the models are idle (what follows a webhook is done)."""
        time.sleep(0.05)
        self.runtime.wait_idle(timeout)
        time.sleep(0.1)
        self.runtime.wait_idle(timeout)

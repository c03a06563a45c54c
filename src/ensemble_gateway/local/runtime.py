"""The local runtime: moto as the embedded AWS, our middlewares, pollers and the API front end.

One process, no AWS account, no Docker. It deploys ``template.yaml`` with the local deployer, runs
each function's real handler for its real event sources, answers the SageMaker API (control plane
and runtime) so that ``services apply`` hosts models as endpoints, and serves the API on 127.0.0.1
like ``sam local start-api``.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .deployer import DeployedStack, LocalDeployer
from .dynamodb_atomicity import AtomicDynamoDBMiddleware
from .lambdas import FunctionRegistry, LambdaInvokeMiddleware
from .pollers import ScheduleRunner, SqsPoller, schedule_interval, sns_event_records
from .presign_guard import PresignGuardMiddleware
from .stepfunctions_stop import StopExecutionMiddleware

LOCAL_ACCESS_KEY = "testing"
LOCAL_SECRET_KEY = "testing"
REGION = "us-east-1"

# What differs from AWS locally, and why: there is no IAM to sign API requests with, so clients
# use API keys; webhook receivers on this machine are plain http on loopback.
LOCAL_OVERRIDES = {
    "AUTH_MODE": "api_key",
    "ALLOW_LOOPBACK_WEBHOOKS": "true",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "POWERTOOLS_DEV": "false",
    # moto's Firehose writes YYYY/MM/DD/HH/ objects whatever the stream's prefix says: the
    # decision records go straight to the bucket, in the stream's date=/hour= layout.
    "AUDIT_SINK": "s3",
}


@dataclass(frozen=True)
class InFlight:
    """What the runtime still has to do for its clients, as seen at one moment.

    Parameters
    ----------
    running
        IDs of the top-level predictions that are ``RUNNING`` (uploaded, being predicted).
    uploads_queued
        Uploads that arrived and wait in the input queue for ``process-input`` to take them
        (their predictions are still ``PENDING_UPLOAD``; they start like any other).
    webhooks_queued
        Webhook deliveries still queued: waiting, being sent, or retries waiting for their time.
    events_queued
        Every other message of an event-source queue: model notifications, and uploads that
        ``process-input`` is handling right now (their predictions are becoming ``RUNNING``).
    busy_pollers
        Event-source pollers in the middle of a batch.
    awaiting_upload
        Accepted top-level predictions whose input has not come: not in flight (nothing to finish
        until a client uploads), and lost with the runtime's memory when it stops.
    """

    running: tuple[str, ...] = ()
    uploads_queued: int = 0
    webhooks_queued: int = 0
    events_queued: int = 0
    busy_pollers: int = 0
    awaiting_upload: int = 0

    @property
    def idle(self) -> bool:
        """True when nothing accepted and uploaded is left to finish or to notify."""
        return not (
            self.running or self.uploads_queued or self.webhooks_queued or self.events_queued or self.busy_pollers
        )

    @property
    def predictions(self) -> int:
        """Predictions in flight: running, or uploaded and queued to start."""
        return len(self.running) + self.uploads_queued


@dataclass
class DrainReport:
    """What :meth:`LocalRuntime.drain` did.

    ``outcome`` is ``"drained"`` (nothing left in flight), ``"deadline"`` (the drain deadline
    passed first) or ``"interrupted"`` (asked to stop at once).
    """

    outcome: str
    seconds: float
    started_with: InFlight
    left: InFlight
    finished: list[str] = field(default_factory=list)


def project_root() -> Path:
    """The directory holding ``template.yaml`` (the source checkout)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "template.yaml").exists():
            return parent
    return Path.cwd()


class _Server(threading.Thread):
    def __init__(self, app: Any, host: str, port: int, name: str, request_handler: type[Any] | None = None) -> None:
        from werkzeug.serving import make_server

        super().__init__(name=name, daemon=True)
        self.httpd = make_server(host, port, app, threaded=True, request_handler=request_handler)
        self.port = self.httpd.server_port

    def run(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class LocalRuntime:
    """The whole gateway on 127.0.0.1.

    Parameters
    ----------
    root
        Project root (template.yaml, statemachines/, examples/).
    api_port
        Port of the API front end (3000 like ``sam local start-api``; 0 picks a free one).
    aws_port
        Port of the embedded AWS endpoint (0 picks a free one).
    parameter_overrides
        Template parameters, e.g. ``{"UploadUrlExpirySeconds": "60"}``.
    sweep_interval
        Seconds between sweeper runs (None: the template's schedule).
    log
        Receives one readable line per event worth telling.
    model_processes
        Run each endpoint's model in worker processes of its own, as SageMaker containers do (a
        crash or a memory-hungry model cannot take the gateway down, and model code does not
        compete for this process's GIL); False runs models on threads of this process.
    """

    def __init__(
        self,
        root: Path | None = None,
        *,
        api_port: int = 3000,
        aws_port: int = 0,
        parameter_overrides: dict[str, str] | None = None,
        sweep_interval: float | None = None,
        host_models: bool = True,
        log: Callable[[str], None] | None = None,
        extra_environment: dict[str, str] | None = None,
        model_processes: bool = True,
    ) -> None:
        self.root = root or project_root()
        self.model_processes = model_processes
        self.api_port = api_port
        self.aws_port = aws_port
        self.parameter_overrides = parameter_overrides or {}
        self.sweep_interval = sweep_interval
        self.host_models = host_models
        self.log = log or (lambda line: None)
        self.extra_environment = extra_environment or {}
        self.stack: DeployedStack | None = None
        self.registry: FunctionRegistry | None = None
        self.sagemaker: Any = None
        self.sagemaker_control: Any = None
        self.lambda_invoke: LambdaInvokeMiddleware | None = None
        self._threads: list[Any] = []
        self._servers: list[_Server] = []
        self._saved_environ: dict[str, str | None] = {}
        self._session: Any = None
        self._clients: dict[str, Any] = {}
        self.api: Any = None
        # What the running drain saw last (None before a drain).
        self.last_in_flight: InFlight | None = None
        self.aws_url = ""
        self.api_url = ""

    # -- environment --------------------------------------------------------------------------
    def _set_env(self, values: dict[str, str]) -> None:
        for key, value in values.items():
            if key not in self._saved_environ:
                self._saved_environ[key] = os.environ.get(key)
            os.environ[key] = value

    def client(self, service: str) -> Any:
        """A boto3 client of the local endpoint (one per service: clients are thread-safe)."""
        if service not in self._clients:
            import boto3
            from botocore.config import Config

            if self._session is None:
                # One session: each new one reloads botocore's service models (~0.15 s a client).
                self._session = boto3.session.Session()
            options: dict[str, Any] = {"retries": {"max_attempts": 2}, "max_pool_connections": 32}
            if service == "s3":
                options.update(signature_version="s3v4", s3={"addressing_style": "path"})
            self._clients[service] = self._session.client(
                service,
                region_name=REGION,
                endpoint_url=self.aws_url,
                aws_access_key_id=LOCAL_ACCESS_KEY,
                aws_secret_access_key=LOCAL_SECRET_KEY,
                config=Config(**options),
            )
        return self._clients[service]

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> LocalRuntime:
        from .. import bootstrap
        from . import inprocess
        from .moto_dispatch import dispatcher_app

        self.registry = FunctionRegistry({}, REGION, on_invoke=self._on_invoke)
        moto_app = dispatcher_app()
        app: Any = StopExecutionMiddleware(AtomicDynamoDBMiddleware(moto_app))
        self.lambda_invoke = LambdaInvokeMiddleware(app, self.registry)
        app = self.lambda_invoke
        app = PresignGuardMiddleware(app, {LOCAL_ACCESS_KEY: LOCAL_SECRET_KEY}, self._bucket_names, region=REGION)
        if self.host_models:
            from .sagemaker import LocalSageMakerRuntime
            from .sagemaker_control import LocalSageMakerControlPlane

            self.sagemaker = LocalSageMakerRuntime(
                self.client, region=REGION, logger=self.log, model_processes=self.model_processes
            )
            app = self.sagemaker.middleware(app)
            # CreateModel / CreateEndpoint … host models in the runtime above, without a restart.
            self.sagemaker_control = LocalSageMakerControlPlane(
                self.sagemaker, self.client, region=REGION, account_id=self.sagemaker.account_id, logger=self.log
            )
            app = self.sagemaker_control.middleware(app)
        aws_server = _Server(app, "127.0.0.1", self.aws_port, "local-aws")
        self.aws_url = f"http://127.0.0.1:{aws_server.port}"
        self._set_env(
            {
                "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": LOCAL_SECRET_KEY,
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
                "AWS_ENDPOINT_URL": self.aws_url,
                "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": self.aws_url,
                "MOTO_PORT": str(aws_server.port),
                "MOTO_ALLOW_NONEXISTENT_REGION": "true",
                # AWS's managed policies exist in every account (the template's API Gateway role
                # attaches AmazonAPIGatewayPushToCloudWatchLogs); moto has them only when asked,
                # read when it first serves IAM in this process (moto's config API cannot set it).
                "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
            }
        )
        aws_server.start()
        self._servers.append(aws_server)
        # This process's own boto3 calls (deployer, handlers, pollers, models) skip loopback HTTP.
        inprocess.register(self.aws_url, app)
        self._configure_moto()
        deployer = LocalDeployer(
            self.root / "template.yaml",
            self.client,
            parameter_overrides=self.parameter_overrides,
            region=REGION,
        )
        self.stack = deployer.deploy()
        self.registry.functions.update(self.stack.functions)
        self.registry._locks.update({name: threading.Lock() for name in self.stack.functions})
        environment: dict[str, str] = {}
        for spec in self.stack.functions.values():
            environment.update(spec.environment)
        self._set_env({**environment, **LOCAL_OVERRIDES, **self.extra_environment})
        bootstrap.reset()
        self.registry.preload()
        self._start_event_sources()
        from .api import ApiFrontEnd, json_error_request_handler

        api = ApiFrontEnd(self.stack.functions, self.registry, self.stack.parameters.get("Stage", "dev"))
        self.api = api
        api_server = _Server(api, "127.0.0.1", self.api_port, "local-api", json_error_request_handler())
        self.api_url = f"http://127.0.0.1:{api_server.port}"
        # Webhooks may go to loopback here, but not to the runtime itself (a POST to its AWS
        # endpoint can invoke a function); both ports are known now. Reset: settings re-read.
        self._set_env({"WEBHOOK_FORBIDDEN_LOOPBACK_PORTS": f"{aws_server.port},{api_server.port}"})
        bootstrap.reset()
        api_server.start()
        self._servers.append(api_server)
        return self

    def _configure_moto(self) -> None:
        request = urllib.request.Request(
            f"{self.aws_url}/moto-api/config",
            method="POST",
            data=json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def _bucket_names(self) -> set[str]:
        """The stack's buckets: the presign guard checks requests to these (read on every request)."""
        return self.stack.buckets if self.stack is not None else set()

    def _start_event_sources(self) -> None:
        assert self.stack is not None and self.registry is not None
        sqs = self.client("sqs")
        sns = self.client("sns")
        for spec in self.stack.functions.values():
            sns_queue: tuple[str, str] | None = None
            for event in spec.events:
                props = event.properties
                if event.kind == "SQS":
                    arn = props["Queue"]
                    poller = SqsPoller(
                        self.client("sqs"),
                        self.stack.queue_urls_by_arn[arn],
                        arn,
                        spec,
                        self.registry,
                        batch_size=int(props.get("BatchSize", 10)),
                        report_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
                    )
                    self._threads.append(poller)
                elif event.kind == "SNS":
                    # SNS → Lambda is played as SNS → SQS → poller: moto delivers SNS synchronously
                    # inside Publish, and a failing function must not fail the publisher.
                    if sns_queue is None:
                        attributes = {"VisibilityTimeout": "2"}
                        if spec.dead_letter_arn:
                            # Lambda retries an asynchronous event twice, then dead-letters it.
                            attributes["RedrivePolicy"] = json.dumps(
                                {"deadLetterTargetArn": spec.dead_letter_arn, "maxReceiveCount": "3"}
                            )
                        url = sqs.create_queue(QueueName=f"{spec.function_name}-sns-deliveries", Attributes=attributes)[
                            "QueueUrl"
                        ]
                        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                            "QueueArn"
                        ]
                        sns_queue = (url, arn)
                        subscription = f"{props['Topic']}:local-{spec.function_name}"
                        self._threads.append(
                            SqsPoller(
                                self.client("sqs"),
                                url,
                                arn,
                                spec,
                                self.registry,
                                batch_size=10,
                                report_failures=False,
                                to_event=sns_event_records(subscription),
                                one_record_per_event=True,
                            )
                        )
                    sns.subscribe(TopicArn=props["Topic"], Protocol="sqs", Endpoint=sns_queue[1])
                elif event.kind == "Schedule":
                    interval = self.sweep_interval or schedule_interval(str(props["Schedule"]))
                    self._threads.append(
                        ScheduleRunner(spec, self.registry, interval, f"{spec.function_name}-{event.name}")
                    )
        for thread in self._threads:
            thread.start()

    def _on_invoke(self, function_name: str, seconds: float, error: BaseException | None) -> None:
        if error is not None:
            self.log(f"function {function_name} failed after {seconds * 1000:.0f} ms: {error}")

    def pause_event_sources(self, timeout: float = 30.0) -> bool:
        """Stop running functions for the event sources (queues, topics, schedules) until
        :meth:`resume_event_sources`, as if their mappings and rules were disabled.

        Waits for the invocations under way; False if some had not finished within ``timeout``.
        Messages stay on their queues meanwhile. Step Functions executions and the API still run.
        """
        for thread in self._threads:
            thread.pause()
        deadline = time.monotonic() + timeout
        # Every thread was asked first: they finish their batches side by side.
        return all([thread.wait_paused(max(0.0, deadline - time.monotonic())) for thread in self._threads])

    def resume_event_sources(self) -> None:
        for thread in self._threads:
            thread.resume()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no poller is busy and no model job runs (a heuristic for tests and demo)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            busy = any(getattr(t, "busy", None) is not None and t.busy.is_set() for t in self._threads)
            models_idle = self.sagemaker.wait_idle(0.05) if self.sagemaker else True
            if not busy and models_idle:
                return True
            time.sleep(0.05)
        return False

    # -- draining -------------------------------------------------------------------------------
    def close_intake(self, retry_after: float) -> None:
        """Make the API refuse new predictions (503 with ``Retry-After``); reads still answer."""
        if self.api is not None:
            self.api.close_intake(retry_after)

    def in_flight(self) -> InFlight:
        """What is left to finish: running predictions, queued uploads, notifications and webhooks.

        The queues are read before the predictions table, and every hop of the pipeline writes its
        next step (a status, a message) before it deletes the message it came from, so work moving
        between the two reads is seen at least once.
        """
        assert self.stack is not None
        pollers = [thread for thread in self._threads if isinstance(thread, SqsPoller)]
        busy = sum(1 for poller in pollers if poller.busy.is_set())
        input_queue = self.stack.physical.get("InputQueue")
        webhook_queue = self.stack.outputs.get("WebhookQueueUrl")
        uploads = events = webhooks = 0
        sqs = self.client("sqs")
        for url in {poller.queue_url for poller in pollers}:
            attributes = sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )["Attributes"]
            handling = int(attributes["ApproximateNumberOfMessagesNotVisible"])
            waiting = int(attributes["ApproximateNumberOfMessages"]) + int(
                attributes["ApproximateNumberOfMessagesDelayed"]
            )
            if url == input_queue:
                # An upload being handled may already be RUNNING: counted as an event, not twice.
                uploads += waiting
                events += handling
            elif url == webhook_queue:
                webhooks += waiting + handling
            else:
                events += waiting + handling
        running = self._top_level("RUNNING")
        pending = self._top_level("PENDING_UPLOAD")
        # Uploaded but not yet taken by process-input (its event queued or being handled): an
        # upload object says so. Counting queue messages instead mistook an event still being
        # deleted for another prediction's upload.
        uploaded = sum(1 for prediction_id in pending if self._has_upload(prediction_id))
        return InFlight(
            running=tuple(running),
            uploads_queued=uploads,
            webhooks_queued=webhooks,
            events_queued=events,
            busy_pollers=busy,
            # A queued upload's prediction is still PENDING_UPLOAD until process-input takes it.
            awaiting_upload=len(pending) - uploaded,
        )

    def _has_upload(self, prediction_id: str) -> bool:
        assert self.stack is not None
        from ..domain.records import upload_key

        try:
            self.client("s3").head_object(Bucket=self.stack.outputs["BucketName"], Key=upload_key(prediction_id))
        except Exception:  # 404 (or anything else): no upload to wait for
            return False
        return True

    def _top_level(self, status: str) -> list[str]:
        """IDs of the top-level predictions in ``status`` (ensemble steps are their parents' work)."""
        assert self.stack is not None
        dynamodb = self.client("dynamodb")
        table = self.stack.outputs["PredictionsTableName"]
        found: list[str] = []
        # The sweeper's index: every PENDING_UPLOAD and RUNNING record has a deadline.
        query: dict[str, Any] = {
            "TableName": table,
            "IndexName": "by-status-deadline",
            "KeyConditionExpression": "#s = :s",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {":s": {"S": status}},
        }
        while True:
            response = dynamodb.query(**query)
            for key in response.get("Items", []):
                item = dynamodb.get_item(
                    TableName=table,
                    Key={"prediction_id": key["prediction_id"]},
                    ProjectionExpression="prediction_id, parent_id, #s",
                    ExpressionAttributeNames={"#s": "status"},
                    ConsistentRead=True,
                ).get("Item")
                if item is None or item.get("status", {}).get("S") != status:
                    continue
                if "S" in item.get("parent_id", {}):
                    continue
                found.append(item["prediction_id"]["S"])
            if "LastEvaluatedKey" not in response:
                return found
            query["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def drain(
        self,
        deadline_seconds: float,
        *,
        interrupted: Callable[[], bool] = lambda: False,
        on_progress: Callable[[InFlight, float], None] | None = None,
        poll_seconds: float = 0.25,
        progress_every: float = 5.0,
    ) -> DrainReport:
        """Close intake, then wait until what was accepted and uploaded has finished and notified.

        In flight are the predictions that are ``RUNNING`` or whose upload has arrived, and every
        notification and webhook still queued, retries included. Predictions still waiting for
        their upload are not waited for: nothing can finish them until a client uploads (an upload
        that comes during the drain is processed and waited for like the others).

        Parameters
        ----------
        deadline_seconds
            How long to wait at most; 0 closes intake and returns at once.
        interrupted
            Polled while waiting: True stops the wait at once (``outcome == "interrupted"``).
        on_progress
            Called at once, then about every ``progress_every`` seconds, with what is left and
            the seconds spent.
        poll_seconds
            How often to look.
        progress_every
            Seconds between ``on_progress`` calls.

        Returns
        -------
        DrainReport
            The outcome, what was in flight at the start and what is left.
        """
        started = time.monotonic()
        deadline = started + max(0.0, deadline_seconds)
        self.close_intake(max(0.0, deadline_seconds))
        first = self.in_flight()
        current = self.last_in_flight = first
        # The first call comes at once: the caller says what the drain starts with.
        next_progress = started
        outcome = "drained"
        # Idle twice in a row, a poll apart: a message can be between a receive and the poller's
        # busy flag, or a status between two reads, for a moment.
        idle_seen = 0
        while True:
            idle_seen = idle_seen + 1 if current.idle else 0
            if idle_seen >= 2:
                break
            if interrupted():
                outcome = "interrupted"
                break
            now = time.monotonic()
            if now >= deadline:
                outcome = "deadline"
                break
            if on_progress is not None and now >= next_progress:
                on_progress(current, now - started)
                next_progress = now + progress_every
            time.sleep(min(poll_seconds, max(0.0, deadline - now)))
            current = self.last_in_flight = self.in_flight()
        still_running = set(current.running)
        return DrainReport(
            outcome=outcome,
            seconds=time.monotonic() - started,
            started_with=first,
            left=current,
            finished=[prediction_id for prediction_id in first.running if prediction_id not in still_running],
        )

    def stop(self) -> None:
        for thread in self._threads:
            thread.stopping.set()
        for thread in self._threads:
            thread.join(timeout=5)
        if self.sagemaker is not None:
            self.sagemaker.shutdown()
        if self.sagemaker_control is not None:
            self.sagemaker_control.shutdown()
        from . import inprocess

        inprocess.unregister(self.aws_url)
        for server in reversed(self._servers):
            server.stop()
        self._threads.clear()
        self._servers.clear()
        self._clients.clear()
        self.api = None
        for key, value in self._saved_environ.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_environ.clear()
        from .. import bootstrap

        bootstrap.reset()

    def __enter__(self) -> LocalRuntime:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

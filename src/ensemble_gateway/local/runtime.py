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
from pathlib import Path
from typing import Any

from .deployer import DeployedStack, LocalDeployer
from .dynamodb_atomicity import AtomicDynamoDBMiddleware
from .lambdas import FunctionRegistry, LambdaInvokeMiddleware
from .pollers import ScheduleRunner, SqsPoller, schedule_interval, sns_event_records
from .presign_guard import PresignGuardMiddleware

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
}


def project_root() -> Path:
    """The directory holding ``template.yaml`` (the source checkout)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "template.yaml").exists():
            return parent
    return Path.cwd()


class _Server(threading.Thread):
    def __init__(self, app: Any, host: str, port: int, name: str) -> None:
        from werkzeug.serving import make_server

        super().__init__(name=name, daemon=True)
        self.httpd = make_server(host, port, app, threaded=True)
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
    ) -> None:
        self.root = root or project_root()
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
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        from .. import bootstrap

        self.registry = FunctionRegistry({}, REGION, on_invoke=self._on_invoke)
        moto_app = DomainDispatcherApplication(create_backend_app)
        app: Any = AtomicDynamoDBMiddleware(moto_app)
        self.lambda_invoke = LambdaInvokeMiddleware(app, self.registry)
        app = self.lambda_invoke
        app = PresignGuardMiddleware(app, {LOCAL_ACCESS_KEY: LOCAL_SECRET_KEY}, self._bucket_names)
        if self.host_models:
            from .sagemaker import LocalSageMakerRuntime
            from .sagemaker_control import LocalSageMakerControlPlane

            self.sagemaker = LocalSageMakerRuntime(self.client, region=REGION, logger=self.log)
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
        self._start_event_sources()
        from .api import ApiFrontEnd

        api = ApiFrontEnd(self.stack.functions, self.registry, self.stack.parameters.get("Stage", "dev"))
        api_server = _Server(api, "127.0.0.1", self.api_port, "local-api")
        self.api_url = f"http://127.0.0.1:{api_server.port}"
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

    def stop(self) -> None:
        for thread in self._threads:
            thread.stopping.set()
        for thread in self._threads:
            thread.join(timeout=5)
        if self.sagemaker is not None:
            self.sagemaker.shutdown()
        if self.sagemaker_control is not None:
            self.sagemaker_control.shutdown()
        for server in reversed(self._servers):
            server.stop()
        self._threads.clear()
        self._servers.clear()
        self._clients.clear()
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

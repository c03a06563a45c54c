"""The ``ensemble-gateway`` command line: run the local runtime, the demo, and talk to a gateway.

Against the local runtime (started by ``ensemble-gateway local``) the commands find it through
``.local-runtime/state.json`` in the working directory. Against a deployed stack give
``--stack-name`` (operator commands, with your AWS credentials) and ``--api-url`` (API calls,
SigV4-signed unless ``--api-key`` is given).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

STATE_FILE = Path(".local-runtime") / "state.json"


class CliError(Exception):
    """A problem the user can fix; printed without a traceback."""


# -- targets ------------------------------------------------------------------------------
def _state_path() -> Path:
    """Where ``ensemble-gateway local`` records itself (``ENSEMBLE_GATEWAY_STATE`` overrides it)."""
    return Path(os.environ.get("ENSEMBLE_GATEWAY_STATE", STATE_FILE))


def _local_state(*, stale_is_error: bool = True) -> dict[str, Any] | None:
    """The running local runtime's state file, or None when there is none.

    A state file whose runtime is gone (killed, crashed: it could not remove it) is removed, and
    the CLI says so rather than failing to connect.

    Raises
    ------
    CliError
        The state file is stale (unless ``stale_is_error`` is False: None then) or unreadable.
    """
    path = _state_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror}") from None
    try:
        state = json.loads(text)
    except ValueError:
        state = None
    if isinstance(state, dict) and _runtime_alive(state):
        return state
    path.unlink(missing_ok=True)
    if not stale_is_error:
        return None
    raise CliError(
        f"the local runtime recorded in {path} is not running (stale state file removed); "
        "start it with `ensemble-gateway local`"
    )


def _runtime_alive(state: dict[str, Any]) -> bool:
    """False when the recorded process is gone or nothing listens on the recorded port.

    The API's port, or the AWS endpoint's for a state file that records only that one.
    """
    import socket
    from urllib.parse import urlsplit

    pid = state.get("pid")
    # Signal 0 only checks the process exists (on Windows os.kill would terminate it).
    if os.name == "posix" and isinstance(pid, int) and pid > 0:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # it exists, as another user's process
    recorded = state.get("api_url") or state.get("aws_url")
    if not isinstance(recorded, str):
        return False
    try:
        url = urlsplit(recorded)
        address = (url.hostname or "127.0.0.1", url.port or 80)
    except ValueError:
        return False
    try:
        with socket.create_connection(address, timeout=2):
            return True
    except ConnectionRefusedError:
        return False
    except OSError:
        # Slow or unreachable is not gone: the request itself will tell.
        return True


def _remove_own_state_file(path: Path) -> None:
    """Remove the state file if this process wrote it (a later runtime may have replaced it)."""
    try:
        recorded = json.loads(path.read_text(encoding="utf-8")).get("pid")
    except (OSError, ValueError, AttributeError):
        return
    if recorded == os.getpid():
        path.unlink(missing_ok=True)


def _aws_target(args: argparse.Namespace) -> tuple[dict[str, Any], Any, str]:
    """(stack outputs, client factory, stack name) of the local runtime or a deployed stack."""
    import boto3

    if args.stack_name:
        session: Any = boto3.session.Session(region_name=args.region)
        stacks = session.client("cloudformation").describe_stacks(StackName=args.stack_name)["Stacks"]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
        return outputs, session.client, args.stack_name
    state = _local_state()
    if state is None:
        raise CliError("no local runtime found (start `ensemble-gateway local`) and no --stack-name given")
    # moto's well-known local credentials: the local runtime accepts any.
    local_session: Any = boto3.session.Session(
        region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )

    def factory(service: str) -> Any:
        return local_session.client(service, endpoint_url=state["aws_url"])

    return state["outputs"], factory, state["stack_name"]


def _api(args: argparse.Namespace) -> Any:
    from .client import GatewayClient

    given = args.api_url or os.environ.get("ENSEMBLE_GATEWAY_API_URL")
    # An API named explicitly needs the state file only for its key, if it is the local runtime's.
    state = _local_state(stale_is_error=not given)
    api_url = given or (state or {}).get("api_url")
    if not api_url:
        raise CliError("no API: start `ensemble-gateway local` or give --api-url")
    api_key = args.api_key or os.environ.get("ENSEMBLE_GATEWAY_API_KEY")
    if api_key is None and state is not None and api_url == state.get("api_url"):
        api_key = state.get("api_key")
    return GatewayClient(api_url, api_key, region=args.region)


# -- commands -----------------------------------------------------------------------------
LOCAL_CLIENT_FILE = "local-client.json"


class _StopSignals:
    """SIGINT (Ctrl-C) and SIGTERM: the first asks for a drained stop, a second for an immediate one.

    The handlers only record: the main thread acts (printing from a signal handler could re-enter
    a write the main thread was in the middle of).
    """

    def __init__(self) -> None:
        import threading

        self.requested = threading.Event()
        self.signals: list[int] = []

    def install(self) -> None:
        import signal

        # Installed even when the shell started us with SIGINT ignored (a background job): this
        # is a server the user stops with Ctrl-C or SIGTERM, and it must drain either way.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.signals.append(signum)
        self.requested.set()

    @property
    def first_name(self) -> str:
        return _signal_name(self.signals[0]) if self.signals else ""

    @property
    def again(self) -> bool:
        """A second signal came: stop at once."""
        return len(self.signals) >= 2


def _signal_name(signum: int) -> str:
    import signal

    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


def cmd_local(args: argparse.Namespace) -> int:
    import threading

    from .local.session import LocalSession

    state_path = _state_path()
    signals = _StopSignals()
    signals.install()
    session = LocalSession(api_port=args.port, aws_port=args.aws_port, verbose=True)
    outcome: dict[str, Any] = {}
    # The runtime starts, serves, drains and stops in a thread of its own, so that this thread
    # stays free to act on a second Ctrl-C at any moment, even in the middle of a stop.
    worker = threading.Thread(
        target=_run_local, args=(session, state_path, args, signals, outcome), name="local-runtime", daemon=True
    )
    worker.start()
    told = False
    while worker.is_alive():
        worker.join(0.2)
        if signals.again:
            _stop_at_once(session, state_path, signals)
        if signals.requested.is_set() and "started" not in outcome and not told:
            told = True
            print(
                f"\n{signals.first_name} while starting: stopping once started; Ctrl-C again stops at once", flush=True
            )
    if "error" in outcome:
        raise outcome["error"]
    return int(outcome.get("code", 1))


def _run_local(
    session: Any, state_path: Path, args: argparse.Namespace, signals: _StopSignals, outcome: dict[str, Any]
) -> None:
    import errno

    from .domain.errors import GatewayError
    from .local.session import write_private_file

    try:
        session.start(catalog=Path(args.catalog), client_file=state_path.parent / LOCAL_CLIENT_FILE)
    except (OSError, GatewayError, LookupError, ValueError) as error:
        session.stop()
        outcome["error"] = CliError(_start_failure(error, args))
        return
    except SystemExit:
        # werkzeug's make_server exits (after saying which port) when a port is taken.
        session.stop()
        outcome["error"] = CliError(_start_failure(OSError(errno.EADDRINUSE, "address in use"), args))
        return
    outcome["started"] = True
    try:
        if not signals.requested.is_set():
            write_private_file(state_path, json.dumps(session.state(), indent=2))
            _print_banner(session, state_path.parent / LOCAL_CLIENT_FILE, args)
        signals.requested.wait()
        print(f"\n{signals.first_name}: stopping", flush=True)
        report = session.drain(args.drain_seconds, interrupted=lambda: signals.again)
        # Non-zero when the deadline left predictions or webhooks unfinished: they are lost.
        outcome["code"] = 0 if report.outcome == "drained" else 1
    finally:
        session.stop()
        _remove_own_state_file(state_path)
    print("stopped", flush=True)


def _print_banner(session: Any, client_file: Path, args: argparse.Namespace) -> None:
    kept = "restored from" if session.client_restored else "created, kept in"
    print(f"API        {session.runtime.api_url}   (Authorization: Bearer {session.api_key})")
    print(f"AWS        {session.runtime.aws_url}   (moto + local SageMaker runtime)")
    print(f"services   {', '.join(session.service_names)}")
    print(f"client     {session.client_id} ({kept} {client_file})")
    print(
        "restart    keeps the local client's API key; loses everything else: services added with "
        "`services apply`, other clients, predictions (local state lives in memory)"
    )
    print("try:       ensemble-gateway predict vehicle-claim examples/vehicle-claim/samples/write-off.json --wait")
    print(
        f"Ctrl-C stops. So does SIGTERM: new predictions get 503 while those in flight finish "
        f"(up to {args.drain_seconds:g} s, --drain-seconds); Ctrl-C again stops at once.",
        flush=True,
    )


def _start_failure(error: BaseException, args: argparse.Namespace) -> str:
    import errno

    if isinstance(error, OSError) and error.errno == errno.EADDRINUSE:
        return (
            f"cannot start the local runtime: a port it needs is in use (API --port {args.port}, "
            f"AWS --aws-port {args.aws_port}; 0 picks a free one)"
        )
    return f"cannot start the local runtime: {error}"


def _stop_at_once(session: Any, state_path: Path, signals: _StopSignals) -> None:
    """A second signal: leave now, without waiting for anything, but not a stale state file."""
    left = getattr(session.runtime, "last_in_flight", None)
    abandoned = ""
    if left is not None and left.predictions:
        abandoned = f" ({left.predictions} prediction{'' if left.predictions == 1 else 's'} in flight abandoned)"
    _remove_own_state_file(state_path)
    print(f"\n{_signal_name(signals.signals[-1])} again: stopped at once{abandoned}", flush=True)
    sys.stderr.flush()
    # os._exit: threads still running model code or a stop would hold a normal exit back.
    os._exit(128 + signals.signals[-1])


def cmd_demo(args: argparse.Namespace) -> int:
    from .local.demo import run_demo

    return run_demo(Path(args.catalog), per_service=args.per_service)


def cmd_clients_create(args: argparse.Namespace) -> int:
    from .adapters.dynamodb import DynamoClientDirectory
    from .admin import create_client

    outputs, factory, _ = _aws_target(args)
    directory = DynamoClientDirectory(outputs["ClientsTableName"], factory("dynamodb"))
    client, api_key = create_client(directory, args.name, principal_arn=args.principal_arn)
    document = {
        "client_id": client.client_id,
        "name": client.name,
        "api_key": api_key,
        "webhook_secret": client.webhook_secrets[0],
    }
    if args.json:
        print(json.dumps(document))
    else:
        for key, value in document.items():
            print(f"{key:15} {value}")
        print("Keep the api_key and webhook_secret: they are not shown again.")
    return 0


def cmd_clients_rotate_secret(args: argparse.Namespace) -> int:
    from .adapters.dynamodb import DynamoClientDirectory
    from .admin import retire_old_webhook_secrets, rotate_webhook_secret

    outputs, factory, _ = _aws_target(args)
    directory = DynamoClientDirectory(outputs["ClientsTableName"], factory("dynamodb"))
    if args.retire:
        client = retire_old_webhook_secrets(directory, args.client_id)
        print(json.dumps({"client_id": client.client_id, "webhook_secrets": len(client.webhook_secrets)}))
        return 0
    client = rotate_webhook_secret(directory, args.client_id)
    print(
        json.dumps(
            {
                "client_id": client.client_id,
                "webhook_secret": client.webhook_secrets[0],
                "note": "webhooks are signed with the new and the previous secret until --retire",
            }
        )
    )
    return 0


def cmd_services_list(args: argparse.Namespace) -> int:
    services = _api(args).services()
    if args.json:
        print(json.dumps(services, indent=2))
        return 0
    for service in services:
        print(
            f"{service['name']:20} {service['kind']:9} v{service['version']:8} "
            f"{','.join(service['content_types']):28} {service['description']}"
        )
    return 0


def cmd_services_apply(args: argparse.Namespace) -> int:
    from .admin import apply_catalog_file

    outputs, factory, stack_name = _aws_target(args)
    local = not args.stack_name
    registered = apply_catalog_file(
        Path(args.file),
        stack_outputs=outputs,
        name_prefix=stack_name,
        root=Path(args.root),
        client_factory=factory,
        region="us-east-1" if local else args.region,
        # The local runtime hosts each model that names model_data at once; on AWS an endpoint
        # is deployed on its own (apply registers the catalog entry).
        host=local,
    )
    for service in registered:
        extra = f" -> {service.ensemble.state_machine_arn}" if service.ensemble else ""
        if service.model is not None and service.model.model_data and local:
            extra = (
                f" -> endpoint {service.model.endpoint_name} ({service.model.framework}, {service.model.model_data})"
            )
        print(f"registered {service.kind} {service.name} v{service.version}{extra}")
    return 0


def cmd_services_plan(args: argparse.Namespace) -> int:
    from .admin import build_registrar, load_services
    from .domain.registration import Registrar
    from .planning import OfflineCatalog, plan_services, preview_inputs

    services = load_services(Path(args.file))
    try:
        outputs, factory, stack_name = _aws_target(args)
        registrar = build_registrar(
            stack_outputs=outputs, name_prefix=stack_name, root=Path(args.root), client_factory=factory
        )
    except CliError:
        # No gateway to look targets up in: check the file against itself.
        print("note: no local runtime and no --stack-name: services outside this file are unknown", file=sys.stderr)
        root = Path(args.root)
        registrar = Registrar(
            catalog=OfflineCatalog(),
            machines=None,  # type: ignore[arg-type]  # plan deploys nothing
            read_definition=lambda relative: (root / relative).read_text(encoding="utf-8"),
            substitutions={"GetTransformCallFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:plan"},
            name_prefix="plan",
            role_arn="arn:aws:iam::123456789012:role/plan",
        )
    plans = plan_services(registrar, services)
    models = [s for s in services if s.kind == "model"]
    for service in models:
        print(f"model {service.name} v{service.version}: valid")
    step_outputs = {}
    for item in args.step_output or []:
        name, sep, file = item.partition("=")
        if not sep:
            raise CliError(f"--step-output takes NAME=FILE, got '{item}'")
        try:
            step_outputs[name] = json.loads(Path(file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise CliError(f"--step-output {name}: {error}") from None
    if args.service:
        plans = [plan for plan in plans if plan.service.name == args.service]
        if not plans:
            raise CliError(f"{args.file} has no ensemble '{args.service}'")
    for plan in plans:
        print()
        print(plan.text)
        print()
        print(plan.mermaid)
        if args.asl:
            print()
            print(json.dumps(plan.definition, indent=2))
        if args.input:
            path = Path(args.input)
            try:
                sample = path.read_bytes()
            except OSError as error:
                raise CliError(f"--input: {error}") from None
            print()
            if not plan.generated:
                print(f"{plan.service.name}: step inputs are shown for declarative ensembles only")
                continue
            content_type = _content_type(path, args.content_type)
            print(f"step inputs for {path} ({content_type}):")
            for preview in preview_inputs(plan.service, sample, content_type, step_outputs):
                print(_preview_line(preview))
    return 0


def _preview_line(preview: Any) -> str:
    head = f"  {preview.step} → {preview.target}"
    if preview.status == "needs":
        wanted = ", ".join(f"--step-output {name}=FILE" for name in preview.needs)
        return f"{head}: needs the output of {', '.join(preview.needs)} (give {wanted})"
    if preview.status == "skipped":
        return f"{head}: SKIPPED ({preview.detail})"
    if preview.status == "error":
        return f"{head}: error: {preview.detail}"
    if preview.content_type and preview.content_type.split(";")[0].endswith("json"):
        body = preview.body.decode("utf-8", "replace")
        return f"{head} ({preview.content_type}): {body}"
    return f"{head} ({preview.content_type}): {len(preview.body)} bytes"


def _content_type(path: Path, given: str | None) -> str:
    if given:
        return given
    return {
        ".json": "application/json",
        ".png": "image/png",
        ".jpg": "image/jpeg",
        ".jpeg": "image/jpeg",
        ".txt": "text/plain",
        ".csv": "text/csv",
        ".npy": "application/x-npy",
        ".npz": "application/x-npz",
        ".libsvm": "text/libsvm",
    }.get(path.suffix.lower(), "application/octet-stream")


def _service_admin_target(args: argparse.Namespace) -> tuple[Any, Any, Any, str, str]:
    """(catalog, state machines, cloudformation client, stack name, ensemble role) of the target."""
    from .adapters.dynamodb import DynamoServiceCatalog
    from .adapters.stepfunctions import StepFunctionsMachines

    outputs, factory, stack_name = _aws_target(args)
    return (
        DynamoServiceCatalog(outputs["ServicesTableName"], factory("dynamodb")),
        StepFunctionsMachines(factory("stepfunctions")),
        factory("cloudformation"),
        stack_name,
        outputs["EnsembleStateMachineRoleArn"],
    )


def cmd_services_delete(args: argparse.Namespace) -> int:
    from .service_admin import delete_service

    catalog, machines, cloudformation, stack_name, role_arn = _service_admin_target(args)
    deleted = delete_service(
        catalog,
        machines,
        args.name,
        stack_name=stack_name,
        role_arn=role_arn,
        cloudformation=cloudformation,
        force=args.force,
    )
    if args.json:
        print(json.dumps(deleted.__dict__))
        return 0
    done = []
    if deleted.entry_removed:
        done.append("catalog entry removed")
    if deleted.state_machine_arn:
        done.append(f"state machine {deleted.state_machine_arn} deleted")
    print(f"deleted service {deleted.name}: {', '.join(done)}")
    if deleted.endpoint_stack:
        print(
            f"its endpoint stack {deleted.endpoint_stack} remains (SageMaker bills it while it runs): "
            f"aws cloudformation delete-stack --stack-name {deleted.endpoint_stack}"
        )
    return 0


def cmd_services_orphans(args: argparse.Namespace) -> int:
    from .service_admin import find_orphans

    catalog, machines, cloudformation, stack_name, role_arn = _service_admin_target(args)
    orphans = find_orphans(catalog, machines, stack_name=stack_name, role_arn=role_arn, cloudformation=cloudformation)
    if args.json:
        print(json.dumps(orphans.document(), indent=2))
        return 0
    if not orphans:
        print(f"no orphans: every state machine and endpoint stack of {stack_name} has its catalog entry")
        return 0
    for machine in orphans.state_machines:
        print(f"state machine   {machine.name:40} no catalog entry references it")
        print(f"  remove: ensemble-gateway services delete {machine.name[len(stack_name) + 1 :]}")
    for stack in orphans.endpoint_stacks:
        print(f"endpoint stack  {stack.name:40} {stack.status}; service '{stack.service}' is not in the catalog")
        print(f"  remove: aws cloudformation delete-stack --stack-name {stack.name}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    api = _api(args)
    path = Path(args.file)
    content_type = _content_type(path, args.content_type)
    accepted = api.submit(args.service, content_type=content_type, accept=args.accept, webhook_url=args.webhook)
    api.upload(accepted["upload"], path.read_bytes(), content_type)
    prediction_id = accepted["prediction_id"]
    if not args.wait:
        print(json.dumps({"prediction_id": prediction_id, "status": "uploaded"}))
        return 0
    progress = Progress(prediction_id, stream=sys.stderr)
    document = api.wait(prediction_id, timeout=args.timeout, on_progress=progress.update)
    progress.done()
    print(json.dumps(document, indent=2))
    return 0 if document["status"] == "COMPLETED" else 1


def cmd_status(args: argparse.Namespace) -> int:
    print(json.dumps(_api(args).status(args.prediction_id), indent=2))
    return 0


class Progress:
    """One line that shows the status and, for ensembles, how many steps have finished."""

    def __init__(self, prediction_id: str, stream: Any) -> None:
        self.prediction_id = prediction_id
        self.stream = stream
        self.started = time.monotonic()
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.last = ""

    def update(self, document: dict[str, Any]) -> None:
        steps = document.get("steps") or []
        finished = sum(1 for s in steps if s["status"] in ("COMPLETED", "FAILED"))
        detail = (
            f" steps {finished}/{len(steps)} " + " ".join(f"{s['name']}:{s['status'].lower()}" for s in steps)
            if steps
            else ""
        )
        line = f"{self.prediction_id} {document['status']:<14}{detail}"
        if line == self.last:
            return
        self.last = line
        elapsed = time.monotonic() - self.started
        if self.tty:
            self.stream.write(f"\r\033[K{elapsed:5.1f}s {line}")
        else:
            self.stream.write(f"{elapsed:5.1f}s {line}\n")
        self.stream.flush()

    def done(self) -> None:
        if self.tty:
            self.stream.write("\n")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ensemble-gateway", description=__doc__.splitlines()[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api-url", help="the gateway API (default: the local runtime)")
    common.add_argument(
        "--api-key", help="API key (default: the local runtime's; none: SigV4 with your AWS credentials)"
    )
    common.add_argument("--stack-name", help="a deployed stack (operator commands)")
    common.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"))
    sub = parser.add_subparsers(dest="command", required=True)

    local = sub.add_parser("local", help="run the whole gateway on this machine (no AWS, no Docker)")
    local.add_argument("--port", type=int, default=3000, help="API port (default 3000, like sam local)")
    local.add_argument("--aws-port", type=int, default=4566, help="port of the embedded AWS endpoint")
    local.add_argument("--catalog", default="examples/catalog.json")
    local.add_argument(
        "--drain-seconds",
        type=_seconds,
        default=30.0,
        help="on Ctrl-C or SIGTERM, how long in-flight predictions and webhooks may take to finish (default 30)",
    )
    local.set_defaults(func=cmd_local)

    demo = sub.add_parser("demo", help="start the local runtime, run the examples end to end, print, stop")
    demo.add_argument("--catalog", default="examples/catalog.json")
    demo.add_argument("--per-service", type=int, default=3, help="samples sent to each service")
    demo.set_defaults(func=cmd_demo)

    clients = sub.add_parser("clients", help="manage API clients").add_subparsers(dest="action", required=True)
    create = clients.add_parser("create", parents=[common], help="create a client: api_key and webhook_secret")
    create.add_argument("name")
    create.add_argument("--json", action="store_true")
    create.add_argument("--principal-arn", help="the IAM principal of this client (deployed stacks)")
    create.set_defaults(func=cmd_clients_create)

    rotate = clients.add_parser(
        "rotate-secret", parents=[common], help="add a new webhook secret (both sign webhooks until --retire)"
    )
    rotate.add_argument("client_id")
    rotate.add_argument("--retire", action="store_true", help="keep only the newest secret")
    rotate.set_defaults(func=cmd_clients_rotate_secret)

    services = sub.add_parser("services", help="the service catalog").add_subparsers(dest="action", required=True)
    listing = services.add_parser("list", parents=[common], help="the active services")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_services_list)
    apply = services.add_parser("apply", parents=[common], help="validate and register services from a JSON file")
    apply.add_argument("file")
    apply.add_argument("--root", default=".", help="where ensemble definition paths are relative to")
    apply.set_defaults(func=cmd_services_apply)
    plan = services.add_parser(
        "plan", parents=[common], help="validate like apply, register nothing; show each ensemble's DAG"
    )
    plan.add_argument("file")
    plan.add_argument("--root", default=".", help="where ensemble definition paths are relative to")
    plan.add_argument("--asl", action="store_true", help="print the state machine definition it would deploy")
    plan.add_argument("--input", metavar="SAMPLE", help="show the input each step's model would receive")
    plan.add_argument("--content-type", help="the sample's media type (default: from its extension)")
    plan.add_argument("--service", help="show only this ensemble of the file")
    plan.add_argument(
        "--step-output",
        action="append",
        metavar="NAME=FILE",
        help="the JSON output of an upstream step, for the steps that read it (repeatable)",
    )
    plan.set_defaults(func=cmd_services_plan)
    delete = services.add_parser(
        "delete", parents=[common], help="deactivate and remove a catalog entry and its ensemble's state machine"
    )
    delete.add_argument("name")
    delete.add_argument(
        "--force", action="store_true", help="even if an ensemble uses it or its ensemble has running executions"
    )
    delete.add_argument("--json", action="store_true")
    delete.set_defaults(func=cmd_services_delete)
    orphans = services.add_parser(
        "orphans", parents=[common], help="state machines and endpoint stacks no catalog entry accounts for"
    )
    orphans.add_argument("--json", action="store_true")
    orphans.set_defaults(func=cmd_services_orphans)

    predict = sub.add_parser("predict", parents=[common], help="submit FILE to SERVICE")
    predict.add_argument("service")
    predict.add_argument("file")
    predict.add_argument("--wait", action="store_true", help="show progress until the prediction finishes")
    predict.add_argument("--content-type", help="the input's media type (default: from the file's extension)")
    predict.add_argument("--accept", help="the media type wanted for the output (the model's Accept)")
    predict.add_argument("--webhook", help="https URL to notify when done")
    predict.add_argument("--timeout", type=float, default=300.0)
    predict.set_defaults(func=cmd_predict)

    status = sub.add_parser("status", parents=[common], help="a prediction's status, lineage and result link")
    status.add_argument("prediction_id")
    status.set_defaults(func=cmd_status)

    from .models_cli import add_model_commands

    add_model_commands(sub, common, aws_target=_aws_target, cli_error=CliError)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .client import GatewayClientError
    from .domain.errors import GatewayError

    try:
        return int(args.func(args))
    except (CliError, GatewayClientError, GatewayError, LookupError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""The ``ensemble-gateway`` command line: run the local runtime, the demo, and talk to a gateway.

Against the local runtime (started by ``ensemble-gateway local``) the commands find it through
its state file, from any directory (see :func:`state_file_candidates`). Against a deployed stack
give ``--stack-name`` (operator commands, with your AWS credentials) and ``--api-url`` (API calls,
SigV4-signed unless ``--api-key`` is given).

Exit statuses are in :data:`EPILOG`: every error a user can cause is one line on stderr and one
of those statuses, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# -- exit statuses ---------------------------------------------------------------------------
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_RUNNING = 3
EXIT_UNREACHABLE = 4
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141

STATE_ENV = "ENSEMBLE_GATEWAY_STATE"
STATE_NAME = "state.json"
LOCAL_CLIENT_FILE = "local-client.json"
# Where older versions kept the state and the local client: the directory `local` ran in.
LEGACY_DIR = ".local-runtime"

DESCRIPTION = """\
Run the Ensemble Gateway on this machine (local, demo), and use a gateway, local or deployed:
predictions (predict, upload, status, list, cancel, result), batches (batch), services, clients and the
audit trail."""

EPILOG = """\
exit status:
  0    done; for predict --wait, upload --wait, status and result: the prediction COMPLETED;
       for batch --wait and batch status: the batch COMPLETED (every item)
  1    the prediction ended FAILED, EXPIRED or CANCELLED; the batch ended
       COMPLETED_WITH_FAILURES, FAILED or CANCELLED (batch --wait, batch status)
  2    usage or input error: bad arguments, a missing or unreadable file, no local runtime
       running, or a request the gateway refused (unknown service or prediction, bad input,
       a version change it cannot make: `services approve|traffic|promote|...`)
  3    the prediction is still running: predict --wait past its --timeout, or status or
       result of a prediction (or batch status|result of a batch) that has not finished
  4    the gateway cannot be reached or did not serve the request (connection refused or
       reset, no answer in time, 429, 5xx)
  130  interrupted (Ctrl-C); a prediction or batch being waited for keeps running
  141  the output was closed early (e.g. `| head`)

the local runtime:
  `ensemble-gateway local` records where it listens in $XDG_STATE_HOME/ensemble-gateway/state.json
  (~/.local/state/ensemble-gateway/state.json without XDG_STATE_HOME) and keeps its client's
  API key and webhook secret beside it, in local-client.json (both owner-only). Every command
  finds it there, from any directory. ENSEMBLE_GATEWAY_STATE=FILE records it in FILE instead
  (the client's file beside it): one runtime per state file. A .local-runtime/state.json in the
  working directory or a parent (written by older versions) is looked at first.

environment:
  ENSEMBLE_GATEWAY_API_URL  default of --api-url
  ENSEMBLE_GATEWAY_API_KEY  default of --api-key
  ENSEMBLE_GATEWAY_STATE    the local runtime's state file (see above)
"""

# The statuses of a prediction that has not ended (the others are terminal).
UNFINISHED = ("PENDING_UPLOAD", "RUNNING")
# The statuses of an ensemble step that has ended (SKIPPED: its condition was false).
STEP_ENDED = frozenset({"COMPLETED", "FAILED", "SKIPPED", "EXPIRED", "CANCELLED"})
PREDICTION_STATUSES = ("PENDING_UPLOAD", "RUNNING", "COMPLETED", "FAILED", "EXPIRED", "CANCELLED")


class CliError(Exception):
    """A problem the user can fix; printed as one line without a traceback.

    Parameters
    ----------
    message
        What went wrong and, when it helps, what to do.
    exit_code
        The command's exit status (see :data:`EPILOG`).
    """

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# -- where the local runtime records itself ----------------------------------------------------
def user_state_dir() -> Path:
    """The per-user directory of the local runtime's state: ``$XDG_STATE_HOME/ensemble-gateway``.

    ``~/.local/state/ensemble-gateway`` when ``XDG_STATE_HOME`` is unset or not absolute (the XDG
    Base Directory specification says to ignore a relative one).

    Raises
    ------
    CliError
        There is no home directory to put it in.
    """
    given = os.environ.get("XDG_STATE_HOME", "")
    if given and os.path.isabs(given):
        return Path(given) / "ensemble-gateway"
    try:
        return Path.home() / ".local" / "state" / "ensemble-gateway"
    except RuntimeError:
        raise CliError(f"no home directory to keep the local runtime's state in: set {STATE_ENV}=FILE") from None


def _state_path() -> Path:
    """Where ``ensemble-gateway local`` records itself (``ENSEMBLE_GATEWAY_STATE`` overrides it)."""
    given = os.environ.get(STATE_ENV)
    return Path(given).expanduser() if given else user_state_dir() / STATE_NAME


def state_file_candidates() -> list[Path]:
    """The state files the CLI looks for the local runtime in, in order.

    ``ENSEMBLE_GATEWAY_STATE`` alone when it is set; otherwise ``.local-runtime/state.json`` in the
    working directory and each of its parents (where older versions of ``local`` wrote it), then
    the per-user one (:func:`user_state_dir`).
    """
    given = os.environ.get(STATE_ENV)
    if given:
        return [Path(given).expanduser()]
    candidates: list[Path] = []
    try:
        here = Path.cwd()
        candidates.extend(directory / LEGACY_DIR / STATE_NAME for directory in (here, *here.parents))
    except OSError:
        pass  # a working directory that was removed has no parents to look in
    with contextlib.suppress(CliError):  # no home directory: only the other places
        candidates.append(user_state_dir() / STATE_NAME)
    return candidates


def _recorded_state(path: Path) -> tuple[dict[str, Any] | None, bool]:
    """(the state in ``path`` if its runtime is alive, whether a stale file was found and removed).

    Raises
    ------
    CliError
        The file exists but cannot be read.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None, False
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror}") from None
    try:
        state = json.loads(text)
    except ValueError:
        state = None
    if isinstance(state, dict) and _runtime_alive(state):
        return state, False
    path.unlink(missing_ok=True)
    return None, True


def _local_state(*, stale_is_error: bool = True) -> dict[str, Any] | None:
    """The running local runtime's state, or None when there is none.

    The first of :func:`state_file_candidates` whose runtime is alive. A state file whose runtime
    is gone (killed, crashed: it could not remove it) is removed, and the CLI says so rather than
    failing to connect.

    Raises
    ------
    CliError
        Only stale state files were found (unless ``stale_is_error`` is False: None then), or one
        is unreadable.
    """
    stale: list[Path] = []
    for path in state_file_candidates():
        state, was_stale = _recorded_state(path)
        if state is not None:
            return state
        if was_stale:
            stale.append(path)
    if stale and stale_is_error:
        raise CliError(
            f"the local runtime recorded in {stale[0]} is not running (stale state file removed); "
            "start it with `ensemble-gateway local`"
        )
    return None


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


# -- targets ------------------------------------------------------------------------------
def _local_factory(state: dict[str, Any]) -> Any:
    """boto3 clients of the local runtime's AWS endpoint."""
    import boto3

    # moto's well-known local credentials: the local runtime accepts any.
    session: Any = boto3.session.Session(
        region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )

    def factory(service: str) -> Any:
        return session.client(service, endpoint_url=state["aws_url"])

    return factory


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
    return state["outputs"], _local_factory(state), state["stack_name"]


def _check_api_url(url: str) -> None:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018  # raises ValueError for a port that is not a number
    except ValueError:
        valid = False
    if not valid:
        raise CliError(f"--api-url takes an http(s) URL such as http://127.0.0.1:3000, got '{url}'")


def _api_target(args: argparse.Namespace) -> tuple[Any, dict[str, Any] | None]:
    """The API client, and the local runtime's state when that client talks to it (else None)."""
    from .client import GatewayClient

    given = args.api_url or os.environ.get("ENSEMBLE_GATEWAY_API_URL")
    if given:
        _check_api_url(given)
    # An API named explicitly needs the state file only for its key, if it is the local runtime's.
    state = _local_state(stale_is_error=not given)
    api_url = given or (state or {}).get("api_url")
    if not api_url:
        raise CliError(
            "no gateway to talk to: no local runtime is running (start one with `ensemble-gateway local`) "
            "and no --api-url given"
        )
    local = state if state is not None and api_url.rstrip("/") == str(state.get("api_url", "")).rstrip("/") else None
    api_key = args.api_key or os.environ.get("ENSEMBLE_GATEWAY_API_KEY")
    if api_key is None and local is not None:
        api_key = local.get("api_key")
    return GatewayClient(api_url, api_key, region=args.region), local


def _api(args: argparse.Namespace) -> Any:
    return _api_target(args)[0]


# -- local and demo -----------------------------------------------------------------------------
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


def _catalog_file(given: str | None) -> Path:
    """``--catalog``: a file the user named (relative to the working directory), or the examples."""
    if given is None:
        # The example catalog of the checkout, wherever the command runs (the session resolves it).
        return Path("examples") / "catalog.json"
    path = Path(given).expanduser().absolute()
    if not path.is_file():
        raise CliError(f"--catalog {given}: no such file")
    return path


def cmd_local(args: argparse.Namespace) -> int:
    import threading

    from .local.session import LocalSession

    state_path = _state_path()
    catalog = _catalog_file(args.catalog)
    running, _ = _recorded_state(state_path)
    if running is not None:
        raise CliError(
            f"a local runtime is already running (API {running.get('api_url')}, pid {running.get('pid')}), "
            f"recorded in {state_path}: stop it first, or give this one a state file of its own "
            f"({STATE_ENV}=FILE)"
        )
    client_file = state_path.parent / LOCAL_CLIENT_FILE
    _adopt_legacy_local_client(client_file)
    signals = _StopSignals()
    signals.install()
    session = LocalSession(api_port=args.port, aws_port=args.aws_port, verbose=True)
    outcome: dict[str, Any] = {}
    # The runtime starts, serves, drains and stops in a thread of its own, so that this thread
    # stays free to act on a second Ctrl-C at any moment, even in the middle of a stop.
    worker = threading.Thread(
        target=_run_local,
        args=(session, state_path, client_file, catalog, args, signals, outcome),
        name="local-runtime",
        daemon=True,
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


def _adopt_legacy_local_client(client_file: Path) -> None:
    """Keep the local client an older version kept in ``.local-runtime/``, so its API key stays valid.

    Only for the per-user location (an explicit ``ENSEMBLE_GATEWAY_STATE`` says where it is), and
    only when that location has no client yet. The old file is copied, not moved: an older
    version of the CLI may still use it.
    """
    from .local.session import LocalClientFileError, load_local_client, store_local_client

    if os.environ.get(STATE_ENV) or client_file.exists():
        return
    here = Path.cwd()
    for directory in (here, *here.parents):
        legacy = directory / LEGACY_DIR / LOCAL_CLIENT_FILE
        if not legacy.is_file():
            continue
        try:
            credentials = load_local_client(legacy)
        except LocalClientFileError:
            return
        if credentials is not None:
            store_local_client(client_file, credentials)
            print(f"note: the local client kept in {legacy} is kept in {client_file} from now on", flush=True)
        return


def _run_local(
    session: Any,
    state_path: Path,
    client_file: Path,
    catalog: Path,
    args: argparse.Namespace,
    signals: _StopSignals,
    outcome: dict[str, Any],
) -> None:
    import errno

    from .domain.errors import GatewayError
    from .local.session import write_private_file

    try:
        session.start(catalog=catalog, client_file=client_file)
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
            _print_banner(session, state_path, client_file, args)
        signals.requested.wait()
        print(f"\n{signals.first_name}: stopping", flush=True)
        report = session.drain(args.drain_seconds, interrupted=lambda: signals.again)
        # Non-zero when the deadline left predictions or webhooks unfinished: they are lost.
        outcome["code"] = 0 if report.outcome == "drained" else 1
    finally:
        session.stop()
        _remove_own_state_file(state_path)
    print("stopped", flush=True)


def _print_banner(session: Any, state_path: Path, client_file: Path, args: argparse.Namespace) -> None:
    kept = "restored from" if session.client_restored else "created, kept in"
    print(f"API        {session.runtime.api_url}   (Authorization: Bearer {session.api_key})")
    print(f"AWS        {session.runtime.aws_url}   (moto + local SageMaker runtime)")
    print(f"services   {', '.join(session.service_names)}")
    print(f"client     {session.client_id} ({kept} {client_file})")
    print(f"webhooks   signed with {session.webhook_secret} (the client's webhook secret)")
    print(f"state      {state_path} (every ensemble-gateway command finds the runtime there)")
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

    return run_demo(_catalog_file(args.catalog), per_service=args.per_service)


# -- clients ------------------------------------------------------------------------------------
def _client_directory(args: argparse.Namespace) -> Any:
    from .adapters.dynamodb import DynamoClientDirectory

    outputs, factory, _ = _aws_target(args)
    return DynamoClientDirectory(outputs["ClientsTableName"], factory("dynamodb"))


def cmd_clients_create(args: argparse.Namespace) -> int:
    from .admin import create_client

    directory = _client_directory(args)
    client, api_key = create_client(directory, args.name, principal_arn=args.principal_arn, unique_name=True)
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
    return EXIT_OK


def cmd_clients_list(args: argparse.Namespace) -> int:
    from .admin import list_clients

    clients = list_clients(_client_directory(args))
    # Never a secret or a key's hash: the listing says who exists and how each authenticates.
    documents = [
        {
            "client_id": client.client_id,
            "name": client.name,
            "principal_arn": client.principal_arn,
            "webhook_secrets": len(client.webhook_secrets),
        }
        for client in clients
    ]
    if args.json:
        print(json.dumps(documents, indent=2))
        return EXIT_OK
    if not documents:
        print("no clients (create one with `ensemble-gateway clients create NAME`)")
        return EXIT_OK
    rows = [
        (
            client.client_id,
            client.name,
            client.principal_arn or "API key",
            f"{len(client.webhook_secrets)}" + (" (rotating)" if len(client.webhook_secrets) > 1 else ""),
        )
        for client in clients
    ]
    _print_table(("CLIENT", "NAME", "AUTHENTICATES BY", "WEBHOOK SECRETS"), rows)
    return EXIT_OK


def cmd_clients_rotate_secret(args: argparse.Namespace) -> int:
    from .admin import retire_old_webhook_secrets, rotate_webhook_secret

    directory = _client_directory(args)
    if args.retire:
        client = retire_old_webhook_secrets(directory, args.client_id)
        print(json.dumps({"client_id": client.client_id, "webhook_secrets": len(client.webhook_secrets)}))
        return EXIT_OK
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
    return EXIT_OK


# -- services -----------------------------------------------------------------------------------
def cmd_services_list(args: argparse.Namespace) -> int:
    services = _api(args).services()
    if args.json:
        print(json.dumps(services, indent=2))
        return EXIT_OK
    rows = [
        (
            service["name"],
            service["kind"],
            f"v{service['version']}",
            ",".join(service["content_types"]),
            service.get("description", ""),
        )
        for service in services
    ]
    _print_table(None, rows)
    return EXIT_OK


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
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "name": service.name,
                        "kind": service.kind,
                        "version": service.version,
                        "state_machine_arn": service.ensemble.state_machine_arn if service.ensemble else None,
                        "endpoint": service.model.endpoint_name if service.model else None,
                    }
                    for service in registered
                ],
                indent=2,
            )
        )
        return EXIT_OK
    for service in registered:
        extra = f" -> {service.ensemble.state_machine_arn}" if service.ensemble else ""
        if service.model is not None and service.model.model_data and local:
            extra = (
                f" -> endpoint {service.model.endpoint_name} ({service.model.framework}, {service.model.model_data})"
            )
        print(f"registered {service.kind} {service.name} v{service.version}{extra}")
    return EXIT_OK


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
    return EXIT_OK


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
        return EXIT_OK
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
    return EXIT_OK


def _set_service_active(catalog: Any, name: str, active: bool) -> tuple[Any, bool, list[str]]:
    """Mark a catalog entry active or inactive: (the entry now, whether it changed, the ensembles using it).

    Proposed as ``service_admin.set_service_active`` (the module of ``services delete``); kept
    here until it moves. An inactive service refuses new predictions (422 ``ServiceInactive``);
    those already accepted finish, ensemble steps naming it still call it, and fan-outs over its
    tasks leave it out from their next prediction.

    Raises
    ------
    LookupError
        No entry of that name.
    """
    from .service_admin import referencing_ensembles

    entry = catalog.get(name)
    if entry is None:
        raise LookupError(f"no service '{name}' in the catalog")
    changed = entry.active != active
    if changed:
        entry = entry.model_copy(update={"active": active})
        catalog.put(entry)
    return entry, changed, referencing_ensembles(catalog.list(active_only=False), name)


def cmd_services_activate(args: argparse.Namespace, *, active: bool = True) -> int:
    catalog = _service_admin_target(args)[0]
    entry, changed, users = _set_service_active(catalog, args.name, active)
    if args.json:
        print(json.dumps({"name": entry.name, "active": entry.active, "changed": changed, "used_by": users}))
        return EXIT_OK
    state = "active" if active else "inactive"
    if not changed:
        print(f"service {entry.name} was already {state}")
    elif active:
        print(f"activated service {entry.name}: it takes new predictions again")
    else:
        print(
            f"deactivated service {entry.name}: new predictions are refused (422 ServiceInactive); "
            "those already accepted finish"
        )
    if users and not active:
        print(f"ensembles that use it as a step still call it: {', '.join(users)}")
    if entry.tasks and changed:
        verb = "joins" if active else "leaves"
        print(f"it {verb} the fan-outs over {', '.join(entry.tasks)} from their next prediction")
    return EXIT_OK


def cmd_services_deactivate(args: argparse.Namespace) -> int:
    return cmd_services_activate(args, active=False)


def cmd_services_orphans(args: argparse.Namespace) -> int:
    from .service_admin import find_orphans

    catalog, machines, cloudformation, stack_name, role_arn = _service_admin_target(args)
    orphans = find_orphans(catalog, machines, stack_name=stack_name, role_arn=role_arn, cloudformation=cloudformation)
    if args.json:
        print(json.dumps(orphans.document(), indent=2))
        return EXIT_OK
    if not orphans:
        print(f"no orphans: every state machine and endpoint stack of {stack_name} has its catalog entry")
        return EXIT_OK
    for machine in orphans.state_machines:
        print(f"state machine   {machine.name:40} no catalog entry references it")
        print(f"  remove: ensemble-gateway services delete {machine.name[len(stack_name) + 1 :]}")
    for stack in orphans.endpoint_stacks:
        print(f"endpoint stack  {stack.name:40} {stack.status}; service '{stack.service}' is not in the catalog")
        print(f"  remove: aws cloudformation delete-stack --stack-name {stack.name}")
    return EXIT_OK


# -- versions: approval, traffic, shadows, promotion -----------------------------------------------
def _service_versions(args: argparse.Namespace) -> tuple[Any, Any, dict[str, Any]]:
    """(the version commands of the target's catalog, its client factory, its stack outputs)."""
    from .adapters.dynamodb import DynamoServiceCatalog
    from .service_versions import ServiceVersions

    outputs, factory, _ = _aws_target(args)
    catalog = DynamoServiceCatalog(outputs["ServicesTableName"], factory("dynamodb"))
    return ServiceVersions(catalog), factory, outputs


def _actor(args: argparse.Namespace, factory: Any) -> str:
    """``--by``, or who the caller is: the STS caller ARN on AWS, ``$USER`` on the local runtime."""
    from .service_versions import aws_actor, local_actor

    if args.by:
        return str(args.by)
    return aws_actor(factory("sts")) if args.stack_name else local_actor()


def _split_text(split: dict[str, int] | None, sticky_key: str | None = None) -> str:
    if not split:
        return "nothing"
    text = " ".join(f"{version}={weight}" for version, weight in split.items())
    return f"{text} (sticky on {sticky_key})" if sticky_key else text


def _event_text(event: Any) -> str:
    """What one history event did, in words (without who and when)."""
    if event.action == "traffic":
        text = f"traffic {_split_text(event.traffic, event.sticky_key)}"
    elif event.action == "shadow":
        text = f"shadows {' '.join(event.shadow or []) or 'none'}"
    else:
        text = " ".join(part for part in (event.action.replace("_", " "), event.version) if part)
        if event.traffic is not None:
            text += f": traffic {_split_text(event.traffic, event.sticky_key)}"
    return f"{text} ({event.note})" if event.note else text


def _routing_text(service: Any) -> str:
    shadows = " ".join(service.shadow_versions()) or "none"
    return f"serving {_split_text(service.serving_traffic(), service.sticky())}; shadows {shadows}"


def _print_change(change: Any, args: argparse.Namespace) -> int:
    from .service_versions import change_document

    if args.json:
        print(json.dumps(change_document(change), indent=2))
        return EXIT_OK
    for event in change.events:
        print(f"{change.service.name}: {_event_text(event)}, by {event.by} at {_moment(event.at.isoformat())}")
    print(f"{change.service.name} now: {_routing_text(change.service)}")
    state = change.service.rollout
    if state is not None and state.requested:
        print(f"waiting for approval: {_split_text(state.requested, state.requested_sticky_key)}")
    return EXIT_OK


def cmd_services_approve(args: argparse.Namespace) -> int:
    versions, _, _ = _service_versions(args)
    return _print_change(versions.approve(args.name, args.version, by=args.by, note=args.note), args)


def cmd_services_reject(args: argparse.Namespace) -> int:
    versions, _, _ = _service_versions(args)
    return _print_change(versions.reject(args.name, args.version, by=args.by, note=args.note), args)


def cmd_services_traffic(args: argparse.Namespace) -> int:
    split: dict[str, int] = {}
    for version, weight in args.split:
        if version in split:
            raise CliError(f"version {version} is given twice: give each version once, VERSION=WEIGHT")
        split[version] = weight
    if args.sticky_key and args.no_sticky:
        raise CliError("give --sticky-key or --no-sticky, not both")
    versions, factory, _ = _service_versions(args)
    change = versions.set_traffic(
        args.name, split, by=_actor(args, factory), sticky_key=args.sticky_key, keep_sticky=not args.no_sticky
    )
    return _print_change(change, args)


def cmd_services_shadow(args: argparse.Namespace) -> int:
    from .service_versions import rollout_document

    if args.versions and args.off:
        raise CliError("give shadow versions or --off, not both")
    versions, factory, _ = _service_versions(args)
    if not args.versions and not args.off:
        service = versions.service(args.name)
        if args.json:
            document = rollout_document(service)
            print(json.dumps({"name": service.name, "shadow": document["shadow"]}, indent=2))
        else:
            shadows = service.shadow_versions()
            print(f"{service.name}: shadows {' '.join(shadows)}" if shadows else f"{service.name}: no shadows")
        return EXIT_OK
    return _print_change(versions.set_shadows(args.name, args.versions, by=_actor(args, factory)), args)


def cmd_services_promote(args: argparse.Namespace) -> int:
    versions, factory, _ = _service_versions(args)
    return _print_change(versions.promote(args.name, args.version, by=_actor(args, factory), note=args.note), args)


def cmd_services_rollback(args: argparse.Namespace) -> int:
    versions, factory, _ = _service_versions(args)
    return _print_change(versions.rollback(args.name, by=_actor(args, factory), note=args.note), args)


def cmd_services_history(args: argparse.Namespace) -> int:
    from .domain.rollout import version_order
    from .service_versions import history_document

    versions, _, _ = _service_versions(args)
    service = versions.service(args.name)
    if args.json:
        print(json.dumps(history_document(service), indent=2))
        return EXIT_OK
    print(f"service {service.name} ({service.kind}): {_routing_text(service)}")
    state = service.rollout
    if state is not None and state.requested:
        print(f"waiting for approval: {_split_text(state.requested, state.requested_sticky_key)}")
    print()
    records = sorted(service.versions().values(), key=lambda r: version_order(r.version))
    _print_table(
        ("VERSION", "STATUS", "REGISTERED", "DECIDED BY", "DECIDED AT", "NOTE"),
        [
            (
                r.version,
                r.status.value,
                _moment(r.registered_at.isoformat()),
                r.decided_by or "-",
                _moment(r.decided_at.isoformat()) if r.decided_at else "-",
                r.note or "",
            )
            for r in records
        ],
    )
    history = state.history if state is not None else []
    print()
    if not history:
        print("no history (the entry was stored before versions were recorded)")
        return EXIT_OK
    _print_table(
        ("WHEN", "BY", "ACTION", "VERSION", "TRAFFIC / SHADOWS", "NOTE"),
        [
            (
                _moment(event.at.isoformat()),
                event.by,
                event.action,
                event.version or "-",
                f"traffic {_split_text(event.traffic, event.sticky_key)}"
                if event.traffic is not None
                else (f"shadows {' '.join(event.shadow) or 'none'}" if event.shadow is not None else ""),
                event.note or "",
            )
            for event in history
        ],
    )
    return EXIT_OK


def _latency(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.3f}s"


def _compare_sources(factory: Any, outputs: dict[str, Any]) -> tuple[Any, Any]:
    """(the predictions table, a reader of output URIs) of the target."""
    from .adapters.dynamodb import DynamoPredictionStore
    from .service_versions import s3_reader

    return DynamoPredictionStore(outputs["PredictionsTableName"], factory("dynamodb")), s3_reader(factory("s3"))


def cmd_services_compare(args: argparse.Namespace) -> int:
    from .service_versions import compare

    versions, factory, outputs = _service_versions(args)
    service = versions.service(args.name)
    since = _parse_moment(args.since) if args.since else None
    records, read = _compare_sources(factory, outputs)
    comparison = compare(
        service,
        records,
        read,
        since=since,
        limit=args.limit,
        tolerance=args.tolerance,
    )
    if args.json:
        print(json.dumps(comparison.document(), indent=2))
        return EXIT_OK
    window = f"since {_moment(args.since)}, " if args.since else ""
    print(f"{service.name}: {comparison.records} records ({window}at most {args.limit}); {_routing_text(service)}")
    if not comparison.versions:
        print("no predictions of this service yet")
        return EXIT_OK
    print()
    traffic = comparison.traffic
    _print_table(
        ("VERSION", "TRAFFIC", "PREDICTIONS", "COMPLETED", "FAILED", "P50", "P95"),
        [
            (
                f.version,
                f"{traffic[f.version]}%" if f.version in traffic else "-",
                str(f.predictions),
                str(f.completed),
                str(f.failed),
                _latency(f.p50),
                _latency(f.p95),
            )
            for f in comparison.versions
        ],
    )
    if comparison.shadows:
        print()
        _print_table(
            ("SHADOW", "OF", "SHADOWED", "COMPLETED", "FAILED", "P50", "P95", "AGREEMENT"),
            [
                (
                    s.version,
                    s.served,
                    str(s.shadowed),
                    str(s.completed),
                    str(s.failed),
                    _latency(s.p50),
                    _latency(s.p95),
                    "-" if s.agreement is None else f"{s.agreement:.1%} ({s.agreed}/{s.compared})",
                )
                for s in comparison.shadows
            ],
        )
        print()
        print(
            f"agreement: labels exactly, numbers within {args.tolerance:g} (relative, or absolute near 0), "
            "JSON objects and arrays item by item, other outputs byte for byte"
        )
    return EXIT_OK


# -- predictions --------------------------------------------------------------------------------
def _read_input(path: Path) -> bytes:
    """The input file's bytes, read before anything is created at the gateway.

    Raises
    ------
    CliError
        It is missing, a directory, unreadable or empty (S3's upload policy refuses 0 bytes).
    """
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise CliError(f"cannot read {path}: it is a directory, not a file") from None
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror or error}") from None
    if not data:
        raise CliError(f"{path} is empty: there is nothing to predict on")
    return data


def _service_entry(api: Any, name: str) -> dict[str, Any] | None:
    """The ``GET /services`` entry of ``name``, or None (unknown or inactive: the API will say which)."""
    from .client import GatewayClientError, GatewayUnreachableError

    try:
        services = api.services()
    except GatewayUnreachableError:
        raise
    except GatewayClientError:
        # A caller allowed to predict but not to list: the prediction's own answer will tell.
        return None
    return next((service for service in services if service.get("name") == name), None)


def _exit_for_status(status: str) -> int:
    if status == "COMPLETED":
        return EXIT_OK
    if status in UNFINISHED:
        return EXIT_RUNNING
    return EXIT_FAILED


def _client_error_exit(error: Exception) -> int:
    """The exit status of an API error: 4 when the gateway could not serve it, 2 when it refused it."""
    from .client import GatewayUnreachableError

    status = getattr(error, "status", 0)
    if isinstance(error, GatewayUnreachableError) or status == 429 or status >= 500:
        return EXIT_UNREACHABLE
    return EXIT_USAGE


def cmd_predict(args: argparse.Namespace) -> int:
    from .client import GatewayClientError

    path = Path(args.file)
    data = _read_input(path)
    content_type = _content_type(path, args.content_type)
    api, local = _api_target(args)
    service = _service_entry(api, args.service)
    limit = service.get("max_bytes") if service else None
    if isinstance(limit, int) and len(data) > limit:
        raise CliError(f"{path} is {len(data):,} bytes; service '{args.service}' takes at most {limit:,}")
    extra: dict[str, Any] | None = None
    if args.inline:
        extra = {"input": _inline_input(path, data, content_type)}
    accepted = api.submit(
        args.service,
        content_type=content_type,
        accept=args.accept,
        webhook_url=args.webhook,
        metadata=dict(args.metadata) if args.metadata else None,
        idempotency_key=args.idempotency_key,
        extra=extra,
    )
    prediction_id = accepted["prediction_id"]
    upload = accepted.get("upload")
    if args.inline:
        pass  # the input came with the request: stored and started, nothing to upload
    elif upload is None:
        # An idempotent replay of a prediction whose input was accepted (or whose window closed).
        print(
            f"prediction {prediction_id} was already submitted with this idempotency key: nothing uploaded again",
            file=sys.stderr,
        )
    else:
        try:
            api.upload(upload, data, content_type)
        except GatewayClientError as error:
            raise CliError(
                f"prediction {prediction_id} was created but its input was not uploaded ({error}); upload it "
                f"with `ensemble-gateway upload {prediction_id} {path}` before it expires",
                exit_code=_client_error_exit(error),
            ) from None
        except KeyboardInterrupt:
            raise CliError(
                f"interrupted: prediction {prediction_id} was created, its input perhaps not uploaded: "
                f"`ensemble-gateway status {prediction_id}` tells (PENDING_UPLOAD: "
                f"`ensemble-gateway upload {prediction_id} {path}`)",
                exit_code=EXIT_INTERRUPTED,
            ) from None
    return _follow(api, local, prediction_id, args, service)


def _inline_input(path: Path, data: bytes, content_type: str) -> Any:
    """The file's JSON value, for ``predict --inline`` (which sends only JSON)."""
    from .domain.media_types import is_json_type

    if not is_json_type(content_type):
        raise CliError(f"--inline sends JSON only and {path} is {content_type}: leave out --inline to upload it")
    try:
        value = json.loads(data)
    except ValueError as error:
        raise CliError(f"{path} is not valid JSON ({error}): --inline sends the file's JSON value") from None
    if value is None:
        raise CliError(f"{path} holds JSON null, which cannot be sent inline: leave out --inline to upload it")
    return value


def cmd_upload(args: argparse.Namespace) -> int:
    from .client import GatewayClientError

    path = Path(args.file)
    data = _read_input(path)
    api, local = _api_target(args)
    renewed = api.renew_upload(args.prediction_id)
    form = renewed["upload"]
    limit = form.get("max_bytes")
    if isinstance(limit, int) and len(data) > limit:
        raise CliError(f"{path} is {len(data):,} bytes; this prediction's upload takes at most {limit:,}")
    try:
        # The form's policy fixes the content type: the one the prediction was created with.
        api.upload(form, data)
    except GatewayClientError as error:
        raise CliError(
            f"the upload of {path} to prediction {args.prediction_id} was refused: {error}",
            exit_code=_client_error_exit(error),
        ) from None
    return _follow(api, local, args.prediction_id, args, None)


def _follow(api: Any, local: dict[str, Any] | None, prediction_id: str, args: argparse.Namespace, service: Any) -> int:
    """After the upload: the prediction's status (polled once), or with ``--wait`` its progress and end."""
    from .client import GatewayUnreachableError

    if not args.wait:
        # One poll: the documented status (PENDING_UPLOAD until the upload is accepted, RUNNING...).
        document = api.status(prediction_id)
        _show(document, args)
        if document["status"] in UNFINISHED:
            print(f"follow it with `ensemble-gateway status {prediction_id}` (or predict --wait)", file=sys.stderr)
            return EXIT_OK
        return _exit_for_status(document["status"])
    if service is None:
        service = _service_entry(api, api.status(prediction_id)["service"])
    progress = Progress(prediction_id, stream=sys.stderr, steps=_known_steps(service, local))
    try:
        document = api.wait(prediction_id, timeout=args.timeout, on_progress=progress.update, max_interval=2.0)
    except KeyboardInterrupt:
        progress.done()
        raise CliError(
            f"interrupted: prediction {prediction_id} keeps running; check it with "
            f"`ensemble-gateway status {prediction_id}`",
            exit_code=EXIT_INTERRUPTED,
        ) from None
    except GatewayUnreachableError as error:
        progress.done()
        raise CliError(
            f"{error}; prediction {prediction_id} may still be running: "
            f"`ensemble-gateway status {prediction_id}` once the gateway answers",
            exit_code=EXIT_UNREACHABLE,
        ) from None
    progress.done()
    _show(document, args)
    if document["status"] in UNFINISHED:
        print(
            f"still {document['status']} after {args.timeout:g} s (--timeout): prediction {prediction_id} keeps "
            f"running; check it with `ensemble-gateway status {prediction_id}`",
            file=sys.stderr,
        )
        return EXIT_RUNNING
    return _exit_for_status(document["status"])


def cmd_status(args: argparse.Namespace) -> int:
    document = _api(args).status(args.prediction_id)
    _show(document, args)
    return _exit_for_status(document["status"])


def cmd_list(args: argparse.Namespace) -> int:
    page = _api(args).list_predictions(
        status=args.status,
        service=args.service,
        created_after=args.created_after,
        limit=args.limit,
        next_token=args.next_token,
    )
    if args.json:
        print(json.dumps(page, indent=2))
        return EXIT_OK
    predictions = page.get("predictions") or []
    if not predictions:
        filtered = args.status or args.service or args.created_after or args.next_token
        print("no predictions" + (" match" if filtered else ""))
    else:
        rows = [
            (p["prediction_id"], p["service"], p["status"], _moment(p.get("created_at")), _metadata(p))
            for p in predictions
        ]
        _print_table(("PREDICTION", "SERVICE", "STATUS", "CREATED", "METADATA"), rows)
    token = page.get("next_token")
    if token:
        print(f"more: ensemble-gateway list --next-token {token} (with the same filters)", file=sys.stderr)
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace) -> int:
    document = _api(args).cancel(args.prediction_id)
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        print(f"prediction {document.get('prediction_id', args.prediction_id)} is {document['status']}")
    return EXIT_OK if document["status"] == "CANCELLED" else _exit_for_status(document["status"])


def cmd_result(args: argparse.Namespace) -> int:
    api = _api(args)
    prediction_id = args.prediction_id
    document = api.status(prediction_id)
    status = document["status"]
    if status in UNFINISHED:
        raise CliError(
            f"prediction {prediction_id} is {status}: no result yet (`ensemble-gateway status {prediction_id}`)",
            exit_code=EXIT_RUNNING,
        )
    if status != "COMPLETED" or not document.get("result"):
        error = document.get("error") or {}
        reason = f": {error.get('code')}: {error.get('message')}" if error else ""
        raise CliError(f"prediction {prediction_id} ended {status}{reason}; it has no result", exit_code=EXIT_FAILED)
    content_type = str(document["result"].get("content_type") or "application/octet-stream")
    to_file = args.output not in (None, "-")
    text = _is_text(content_type)
    if not to_file and not text and (args.json or sys.stdout.isatty()):
        # Decided before the download: raw bytes on a terminal (or in JSON) help nobody.
        raise CliError(
            f"the result of {prediction_id} is {content_type}, not text: write it to a file with -o FILE "
            "(or redirect the output)"
        )
    data = api.download(document)
    if to_file:
        target = Path(args.output)
        try:
            target.write_bytes(data)
        except OSError as error:
            raise CliError(f"cannot write {target}: {error.strerror or error}") from None
    if args.json:
        output: Any = None
        if not to_file:
            decoded = data.decode(_charset(content_type), "replace")
            output = decoded
            if content_type.split(";")[0].strip().lower().endswith("json"):
                # Not the JSON it claims to be: shown as the text it is.
                with contextlib.suppress(ValueError):
                    output = json.loads(decoded)
        print(
            json.dumps(
                {
                    "prediction_id": prediction_id,
                    "content_type": content_type,
                    "size": len(data),
                    "file": str(args.output) if to_file else None,
                    "output": output,
                },
                indent=2,
            )
        )
    elif to_file:
        print(f"wrote {len(data):,} bytes ({content_type}) to {args.output}")
    elif text:
        shown = data.decode(_charset(content_type), "replace")
        sys.stdout.write(shown if shown.endswith("\n") else shown + "\n")
    else:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
    return EXIT_OK


def _is_text(content_type: str) -> bool:
    """Whether a media type is text a terminal can show (JSON, XML, CSV and their kin included)."""
    media = content_type.split(";")[0].strip().lower()
    kind, _, subtype = media.partition("/")
    textual = {"json", "xml", "csv", "x-ndjson", "jsonlines", "x-jsonlines", "yaml", "x-yaml", "javascript", "libsvm"}
    return kind == "text" or subtype in textual or subtype.endswith(("+json", "+xml"))


def _charset(content_type: str) -> str:
    import codecs

    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"')
            try:
                codecs.lookup(charset)
            except LookupError:
                break
            return charset
    return "utf-8"


# -- output -------------------------------------------------------------------------------------
def _print_table(header: Sequence[str] | None, rows: Sequence[Sequence[str]]) -> None:
    """Columns as wide as their widest cell: nothing is cut."""
    lines = [tuple(header)] if header else []
    lines.extend(tuple(str(cell) for cell in row) for row in rows)
    if not lines:
        return
    widths = [max(len(line[column]) for line in lines) for column in range(len(lines[0]))]
    for line in lines:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


def _moment(value: Any) -> str:
    """An API timestamp to the second, in UTC (``2026-12-01T19:37:13Z``)."""
    parsed = _parse_moment(value)
    return parsed.strftime("%Y-%m-%dT%H:%M:%SZ") if parsed else str(value or "")


def _parse_moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def _seconds_between(start: Any, end: Any) -> float | None:
    began, ended = _parse_moment(start), _parse_moment(end)
    return (ended - began).total_seconds() if began and ended else None


def _metadata(document: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in (document.get("metadata") or {}).items())


def _show(document: dict[str, Any], args: argparse.Namespace) -> None:
    if getattr(args, "json", False):
        print(json.dumps(document, indent=2))
    else:
        print("\n".join(summary_lines(document)))


def summary_lines(document: dict[str, Any]) -> list[str]:
    """A prediction's document for a reader: status, model, input, result or error, lineage."""
    lines: list[str] = []

    def row(label: str, value: str) -> None:
        lines.append(f"{label:10}  {value}")

    prediction_id = str(document.get("prediction_id", ""))
    status = str(document.get("status", ""))
    row("prediction", prediction_id)
    row("service", str(document.get("service", "")))
    took = _seconds_between(document.get("created_at"), document.get("updated_at"))
    row("status", status + (f" after {took:.1f} s" if took is not None and status not in UNFINISHED else ""))
    row("created", _moment(document.get("created_at")))
    if document.get("metadata"):
        row("metadata", _metadata(document))
    model = document.get("model") or {}
    if model.get("endpoint"):
        row("model", f"{model['endpoint']} v{model.get('version')}")
    given = document.get("input") or {}
    if given:
        digest = str(given.get("sha256") or "")
        row("input", f"{given.get('content_type')}, {given.get('size', 0):,} bytes, sha256 {digest[:16]}…")
    result = document.get("result") or {}
    if result:
        row("result", f"{result.get('content_type')}: `ensemble-gateway result {prediction_id}` shows it (-o FILE)")
    error = document.get("error") or {}
    if error:
        step = f" (step {error['step']})" if error.get("step") else ""
        row("error", f"{error.get('code')}: {error.get('message')}{step}")
    steps = document.get("steps") or []
    if steps:
        row("steps", str(len(steps)))
        name_width = max(len(str(step.get("name", ""))) for step in steps)
        service_width = max(len(str(step.get("service", ""))) for step in steps)
        for step in steps:
            seconds = _seconds_between(step.get("started_at"), step.get("finished_at"))
            took_step = f"{seconds:5.1f}s" if seconds is not None else "      "
            step_model = step.get("model") or {}
            endpoint = f"  {step_model['endpoint']} v{step_model.get('version')}" if step_model.get("endpoint") else ""
            lines.append(
                f"  {step.get('name', '')!s:{name_width}}  {step.get('service', '')!s:{service_width}}  "
                f"{step.get('status', '')!s:9}  {took_step}{endpoint}".rstrip()
            )
    return lines


def _known_steps(service: dict[str, Any] | None, local: dict[str, Any] | None) -> list[str] | None:
    """An ensemble's step names, known before any step starts: the progress counts them from the start.

    From the ``GET /services`` entry when it lists them (``steps``: names, or objects with a
    ``name``); else, against the local runtime, from its catalog. None when they cannot be known
    (a deployed gateway whose service list does not name steps): progress then counts the steps
    it has seen end, without a total.
    """
    if not service or service.get("kind") != "ensemble":
        return None
    listed = service.get("steps")
    if isinstance(listed, list) and listed:
        return [item if isinstance(item, str) else str(item.get("name")) for item in listed]
    if local is None:
        return None
    from botocore.exceptions import BotoCoreError, ClientError

    from .adapters.dynamodb import DynamoServiceCatalog

    try:
        entry = DynamoServiceCatalog(local["outputs"]["ServicesTableName"], _local_factory(local)("dynamodb")).get(
            str(service["name"])
        )
    except (BotoCoreError, ClientError, KeyError, TypeError, ValueError):
        # The count is a convenience: without it the progress line still shows every step seen.
        return None
    return list(entry.ensemble.steps) if entry is not None and entry.ensemble is not None else None


def _step_state(statuses: Sequence[str], ended: bool) -> tuple[str, bool]:
    """(how a step name reads in the progress line, whether it has ended) from its children's statuses.

    A fan-out step has one child per member model: it has ended when all of them have.
    """
    if not statuses:
        return ("not-run" if ended else "pending"), False
    finished = [status for status in statuses if status in STEP_ENDED]
    if len(finished) < len(statuses):
        share = f"({len(finished)}/{len(statuses)})" if len(statuses) > 1 else ""
        return f"running{share}", False
    for status in ("FAILED", "EXPIRED", "CANCELLED", "COMPLETED"):
        if status in finished:
            return status.lower(), True
    return "skipped", True


def progress_line(document: dict[str, Any], steps: Sequence[str] | None = None) -> str:
    """The progress of a prediction in one line; for an ensemble, its steps.

    Parameters
    ----------
    document
        The prediction's ``GET /predictions/{id}`` document.
    steps
        The ensemble's step names, when known (see :func:`_known_steps`): the line counts them
        all from the first poll (``steps 0/4``), the ones not started yet as ``pending``. None:
        the steps the document shows, and how many have ended, without a total.
    """
    status = str(document.get("status", ""))
    head = f"{document.get('prediction_id', '')} {status:<14}"
    children = document.get("steps") or []
    if steps is None and not children:
        return head.rstrip()
    by_name: dict[str, list[str]] = {}
    for child in children:
        by_name.setdefault(str(child.get("name")), []).append(str(child.get("status")))
    known = list(steps or [])
    names = known + [name for name in by_name if name not in known]
    ended = status not in UNFINISHED
    states = [(name, *_step_state(by_name.get(name, []), ended)) for name in names]
    done = sum(1 for _, _, finished in states if finished)
    count = f"steps {done}/{len(names)}" if steps is not None else f"steps {done} done"
    return f"{head} {count} " + " ".join(f"{name}:{label}" for name, label, _ in states)


class Progress:
    """One line that shows the status and, for ensembles, how many steps have finished."""

    def __init__(self, prediction_id: str, stream: Any, steps: Sequence[str] | None = None) -> None:
        self.prediction_id = prediction_id
        self.stream = stream
        self.steps = steps
        self.started = time.monotonic()
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.last = ""

    def update(self, document: dict[str, Any]) -> None:
        line = progress_line({"prediction_id": self.prediction_id, **document}, self.steps)
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
        if self.tty and self.last:
            self.stream.write("\n")
            self.stream.flush()


# -- argument types -----------------------------------------------------------------------------
def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, got {text}")
    return value


def _metadata_item(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"takes KEY=VALUE, got '{text}'")
    return key, value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {text}")
    return value


_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _created_after(text: str) -> str:
    """``--created-after``: an ISO 8601 moment (local time without an offset) or an age (``30m``, ``2h``, ``7d``)."""
    value = text.strip()
    if value[:-1].isdigit() and value[-1:].lower() in _AGE_UNITS:
        moment = datetime.now(UTC) - timedelta(seconds=int(value[:-1]) * _AGE_UNITS[value[-1].lower()])
    else:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"'{text}' is neither an ISO 8601 moment (2026-12-01T09:30) nor an age (90s, 30m, 2h, 7d)"
            ) from None
        moment = moment.astimezone(UTC)  # a naive moment is the local time
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _split_item(text: str) -> tuple[str, int]:
    """``services traffic``: one ``VERSION=WEIGHT`` (a whole percentage)."""
    version, sep, weight = text.partition("=")
    if not sep or not version.strip():
        raise argparse.ArgumentTypeError(f"takes VERSION=WEIGHT (such as 1.1.0=10), got '{text}'")
    try:
        value = int(weight.strip().removesuffix("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"the weight of {version.strip()} must be a whole number from 0 to 100, got '{weight}'"
        ) from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"the weight of {version.strip()} must be from 0 to 100, got {value}")
    return version.strip(), value


def _tolerance(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _status_name(text: str) -> str:
    value = text.strip().upper()
    if value not in PREDICTION_STATUSES:
        raise argparse.ArgumentTypeError(f"'{text}' is not a status; statuses are {', '.join(PREDICTION_STATUSES)}")
    return value


# -- the parser ---------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ensemble-gateway",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api-url", help="the gateway API (default: the running local runtime's)")
    common.add_argument(
        "--api-key", help="API key (default: the local runtime's; none: SigV4 with your AWS credentials)"
    )
    common.add_argument("--stack-name", help="a deployed gateway stack (operator commands: clients, services)")
    common.add_argument(
        "--region",
        default=os.environ.get("AWS_REGION", "us-east-1"),
        help="AWS region of --stack-name and of SigV4 signing (default: $AWS_REGION or us-east-1)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    local = sub.add_parser("local", help="run the whole gateway on this machine (no AWS, no Docker)")
    local.add_argument("--port", type=int, default=3000, help="API port (default 3000, like sam local; 0: a free one)")
    local.add_argument(
        "--aws-port", type=int, default=4566, help="port of the embedded AWS endpoint (default 4566; 0: a free one)"
    )
    local.add_argument(
        "--catalog",
        metavar="FILE",
        help="the services to register at start (default: the checkout's examples/catalog.json)",
    )
    local.add_argument(
        "--drain-seconds",
        type=_seconds,
        default=30.0,
        help="on Ctrl-C or SIGTERM, how long in-flight predictions and webhooks may take to finish (default 30)",
    )
    local.set_defaults(func=cmd_local)

    demo = sub.add_parser("demo", help="start the local runtime, run the examples end to end, print, stop")
    demo.add_argument(
        "--catalog", metavar="FILE", help="the services to run (default: the checkout's examples/catalog.json)"
    )
    demo.add_argument("--per-service", type=int, default=3, help="samples sent to each service (default 3)")
    demo.set_defaults(func=cmd_demo)

    clients = sub.add_parser("clients", help="API clients (operator)").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    create = clients.add_parser("create", parents=[common], help="create a client: its api_key and webhook_secret")
    create.add_argument("name", help="a name no other client has")
    create.add_argument("--json", action="store_true", help="print the client as JSON")
    create.add_argument("--principal-arn", help="the IAM principal of this client (deployed stacks)")
    create.set_defaults(func=cmd_clients_create)
    clients_list = clients.add_parser("list", parents=[common], help="every client (no secrets)")
    clients_list.add_argument("--json", action="store_true", help="print the clients as JSON")
    clients_list.set_defaults(func=cmd_clients_list)
    rotate = clients.add_parser(
        "rotate-secret", parents=[common], help="add a new webhook secret (both sign webhooks until --retire)"
    )
    rotate.add_argument("client_id")
    rotate.add_argument("--retire", action="store_true", help="keep only the newest secret")
    rotate.add_argument("--json", action="store_true", help="print JSON (this command always does)")
    rotate.set_defaults(func=cmd_clients_rotate_secret)

    services = sub.add_parser("services", help="the service catalog").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    listing = services.add_parser("list", parents=[common], help="the active services")
    listing.add_argument("--json", action="store_true", help="print the GET /services entries as JSON")
    listing.set_defaults(func=cmd_services_list)
    apply = services.add_parser("apply", parents=[common], help="validate and register services from a JSON file")
    apply.add_argument("file")
    apply.add_argument("--root", default=".", help="where ensemble definition paths are relative to")
    apply.add_argument("--json", action="store_true", help="print what was registered as JSON")
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
    deactivate = services.add_parser(
        "deactivate", parents=[common], help="refuse new predictions for a service (its entry stays; activate undoes)"
    )
    deactivate.add_argument("name")
    deactivate.add_argument("--json", action="store_true", help="print the outcome as JSON")
    deactivate.set_defaults(func=cmd_services_deactivate)
    activate = services.add_parser("activate", parents=[common], help="take new predictions for a service again")
    activate.add_argument("name")
    activate.add_argument("--json", action="store_true", help="print the outcome as JSON")
    activate.set_defaults(func=cmd_services_activate)
    delete = services.add_parser(
        "delete", parents=[common], help="deactivate and remove a catalog entry and its ensemble's state machine"
    )
    delete.add_argument("name")
    delete.add_argument(
        "--force", action="store_true", help="even if an ensemble uses it or its ensemble has running executions"
    )
    delete.add_argument("--json", action="store_true", help="print the outcome as JSON")
    delete.set_defaults(func=cmd_services_delete)
    orphans = services.add_parser(
        "orphans", parents=[common], help="state machines and endpoint stacks no catalog entry accounts for"
    )
    orphans.add_argument("--json", action="store_true", help="print them as JSON")
    orphans.set_defaults(func=cmd_services_orphans)
    _add_version_commands(services, common)

    predict = sub.add_parser(
        "predict",
        parents=[common],
        help="submit FILE to SERVICE (the file is read first: nothing is created if it cannot be)",
        epilog="exit status: 0 submitted (with --wait: COMPLETED), 1 FAILED, EXPIRED or CANCELLED, "
        "2 input or usage error, 3 still running at --timeout, 4 gateway unreachable, 130 Ctrl-C "
        "(the prediction keeps running)",
    )
    predict.add_argument("service", help="the service to run (`ensemble-gateway services list`)")
    predict.add_argument("file", help="the input")
    predict.add_argument("--wait", action="store_true", help="show progress until the prediction finishes")
    predict.add_argument(
        "--timeout",
        type=_seconds,
        default=300.0,
        help="with --wait, how many seconds to wait before leaving it running (exit 3; default 300)",
    )
    predict.add_argument("--content-type", help="the input's media type (default: from the file's extension)")
    predict.add_argument("--accept", help="the media type wanted for the output (the model's Accept)")
    predict.add_argument(
        "--metadata",
        action="append",
        type=_metadata_item,
        metavar="KEY=VALUE",
        help="metadata kept with the prediction and echoed back (repeatable)",
    )
    predict.add_argument(
        "--idempotency-key",
        metavar="KEY",
        help="the same key and request within 24 h give the same prediction (a retry creates no second one)",
    )
    predict.add_argument("--webhook", metavar="URL", help="https URL to notify when done")
    predict.add_argument(
        "--inline",
        action="store_true",
        help="send a JSON file in the request itself: one request, no upload (up to the gateway's "
        "InlineInputMaxBytes, default 256 KiB)",
    )
    predict.add_argument("--json", action="store_true", help="print the prediction's document as JSON")
    predict.set_defaults(func=cmd_predict)

    upload = sub.add_parser(
        "upload",
        parents=[common],
        help="upload FILE as the input of a prediction still PENDING_UPLOAD (a new upload form)",
    )
    upload.add_argument("prediction_id")
    upload.add_argument("file", help="the input (its content type is the one the prediction was created with)")
    upload.add_argument("--wait", action="store_true", help="show progress until the prediction finishes")
    upload.add_argument(
        "--timeout", type=_seconds, default=300.0, help="with --wait, seconds before leaving it running (exit 3)"
    )
    upload.add_argument("--json", action="store_true", help="print the prediction's document as JSON")
    upload.set_defaults(func=cmd_upload)

    status = sub.add_parser(
        "status",
        parents=[common],
        help="a prediction's status, lineage and result (exit 0 COMPLETED, 1 ended otherwise, 3 not finished)",
    )
    status.add_argument("prediction_id")
    status.add_argument("--json", action="store_true", help="print the GET /predictions/{id} document as JSON")
    status.set_defaults(func=cmd_status)

    predictions = sub.add_parser("list", parents=[common], help="your predictions, newest first")
    predictions.add_argument("--status", type=_status_name, help="only those with this status")
    predictions.add_argument("--service", help="only those of this service")
    predictions.add_argument(
        "--created-after",
        type=_created_after,
        metavar="WHEN",
        help="only those created after WHEN: ISO 8601 (local time without an offset) or an age (30m, 2h, 7d)",
    )
    predictions.add_argument("--limit", type=_positive_int, help="at most this many (one page)")
    predictions.add_argument("--next-token", metavar="TOKEN", help="the next page (the token the last page printed)")
    predictions.add_argument("--json", action="store_true", help="print the GET /predictions page as JSON")
    predictions.set_defaults(func=cmd_list)

    cancel = sub.add_parser("cancel", parents=[common], help="end a prediction that has not finished: CANCELLED")
    cancel.add_argument("prediction_id")
    cancel.add_argument("--json", action="store_true", help="print the prediction's document as JSON")
    cancel.set_defaults(func=cmd_cancel)

    result = sub.add_parser(
        "result",
        parents=[common],
        help="a COMPLETED prediction's output: printed when it is text, or written with -o FILE",
    )
    result.add_argument("prediction_id")
    result.add_argument("-o", "--output", metavar="FILE", help="write the output to FILE ('-': standard output)")
    result.add_argument(
        "--json", action="store_true", help="print {prediction_id, content_type, size, file, output} as JSON"
    )
    result.set_defaults(func=cmd_result)

    from .models_cli import add_model_commands

    add_model_commands(sub, common, aws_target=_aws_target, cli_error=CliError)
    from .audit_cli import add_audit_commands

    add_audit_commands(sub, common, aws_target=_aws_target, cli_error=CliError)

    from .batch_cli import add_batch_commands

    add_batch_commands(sub, common, api_target=_api_target, cli_error=CliError, client_error_exit=_client_error_exit)
    return parser


def _add_version_commands(services: Any, common: argparse.ArgumentParser) -> None:
    """``services approve|reject|traffic|shadow|promote|rollback|history|compare``."""
    by_default = "who decides (default: your AWS caller ARN with --stack-name, else $USER)"
    for action, verb in (("approve", "let a version pending approval serve"), ("reject", "never serve a version")):
        command = services.add_parser(action, parents=[common], help=f"{verb} (recorded with who and when)")
        command.add_argument("name", help="the service")
        command.add_argument("version")
        command.add_argument("--by", required=True, metavar="NAME", help="who decides (recorded in the history)")
        command.add_argument("--note", metavar="TEXT", help="why (recorded in the history)")
        command.add_argument("--json", action="store_true", help="print the service's versions and the events")
        command.set_defaults(func=cmd_services_approve if action == "approve" else cmd_services_reject)

    traffic = services.add_parser(
        "traffic",
        parents=[common],
        help="split the traffic between approved versions: 1.0.0=90 1.1.0=10",
        epilog="weights are whole percentages adding up to 100; a version at 0 gets no traffic",
    )
    traffic.add_argument("name", help="the service")
    traffic.add_argument("split", nargs="+", type=_split_item, metavar="VERSION=WEIGHT")
    traffic.add_argument(
        "--sticky-key",
        metavar="FIELD",
        help="a metadata field: the same value always gets the same version (default: the current one)",
    )
    traffic.add_argument("--no-sticky", action="store_true", help="drop the sticky key: one random draw each")
    traffic.add_argument("--by", metavar="NAME", help=by_default)
    traffic.add_argument("--json", action="store_true", help="print the service's versions and the events")
    traffic.set_defaults(func=cmd_services_traffic)

    shadow = services.add_parser(
        "shadow",
        parents=[common],
        help="also send every input to these versions (their outputs only recorded); none given: show them",
    )
    shadow.add_argument("name", help="the service")
    shadow.add_argument("versions", nargs="*", metavar="VERSION", help="the shadow versions (they replace the current)")
    shadow.add_argument("--off", action="store_true", help="no shadows any more")
    shadow.add_argument("--by", metavar="NAME", help=by_default)
    shadow.add_argument("--json", action="store_true", help="print the shadows (and the events) as JSON")
    shadow.set_defaults(func=cmd_services_shadow)

    promote = services.add_parser(
        "promote", parents=[common], help="give an approved version all traffic (the others retire)"
    )
    promote.add_argument("name", help="the service")
    promote.add_argument("version")
    promote.add_argument("--by", metavar="NAME", help=by_default)
    promote.add_argument("--note", metavar="TEXT", help="why (recorded in the history)")
    promote.add_argument("--json", action="store_true", help="print the service's versions and the events")
    promote.set_defaults(func=cmd_services_promote)

    rollback = services.add_parser(
        "rollback", parents=[common], help="return to the traffic split before the last change"
    )
    rollback.add_argument("name", help="the service")
    rollback.add_argument("--by", metavar="NAME", help=by_default)
    rollback.add_argument("--note", metavar="TEXT", help="why (recorded in the history)")
    rollback.add_argument("--json", action="store_true", help="print the service's versions and the events")
    rollback.set_defaults(func=cmd_services_rollback)

    history = services.add_parser(
        "history", parents=[common], help="a service's versions, who approved them, and every change"
    )
    history.add_argument("name", help="the service")
    history.add_argument("--json", action="store_true", help="print the versions and the history as JSON")
    history.set_defaults(func=cmd_services_history)

    compare = services.add_parser(
        "compare",
        parents=[common],
        help="per version: predictions, failures, p50/p95 latency; per shadow: agreement with the served one",
        epilog="reads the service's records with a Scan of the predictions table (billed per item read, "
        "the whole table at worst): --limit stops it early, --since only filters",
    )
    compare.add_argument("name", help="the service")
    compare.add_argument(
        "--since",
        type=_created_after,
        metavar="WHEN",
        help="only predictions created since WHEN: ISO 8601 (local time without an offset) or an age (30m, 2h, 7d)",
    )
    compare.add_argument(
        "--limit",
        type=_positive_int,
        default=1000,
        metavar="N",
        help="read at most N records (default 1000; in table order, not newest first)",
    )
    compare.add_argument(
        "--tolerance",
        type=_tolerance,
        default=1e-6,
        metavar="X",
        help="how far two numbers may be apart and agree: relative, or absolute near 0 (default 1e-6)",
    )
    compare.add_argument("--json", action="store_true", help="print the figures as JSON (latencies in seconds)")
    compare.set_defaults(func=cmd_services_compare)


# -- running a command --------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """Run one command; return its exit status (see :data:`EPILOG`)."""
    # argparse answers usage errors itself: a message and exit status 2.
    from .batch_cli import batch_argv

    args = build_parser().parse_args(batch_argv(sys.argv[1:] if argv is None else argv))
    from .client import GatewayClientError
    from .domain.errors import GatewayError

    try:
        code = int(args.func(args))
        # Inside the handlers: a reader that went away is reported here, not at interpreter exit.
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # The reader closed the pipe (`| head`): stop quietly, as tools killed by SIGPIPE do.
        _discard_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED, prefix="")
    except CliError as error:
        return _fail(str(error), error.exit_code, prefix="" if error.exit_code == EXIT_INTERRUPTED else "error: ")
    except GatewayClientError as error:
        return _fail(str(error), _client_error_exit(error))
    except (GatewayError, LookupError) as error:
        return _fail(str(error), EXIT_USAGE)
    except (ConnectionError, TimeoutError) as error:
        return _fail(f"cannot reach the gateway: {error}", EXIT_UNREACHABLE)
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        return _fail(f"{where}{error.strerror or error}", EXIT_USAGE)
    except Exception as error:
        handled = _aws_failure(error)
        if handled is None:
            raise
        return _fail(*handled)


def _fail(message: str, code: int, prefix: str = "error: ") -> int:
    with contextlib.suppress(BrokenPipeError):  # nobody is reading stderr either
        print(f"{prefix}{message}", file=sys.stderr, flush=True)
    return code


def _discard_stdout() -> None:
    """Point standard output at /dev/null, so that the interpreter's last flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass  # not a real file (a test's capture): nothing will flush it to a closed pipe


_RETRYABLE_AWS = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "ServiceUnavailable",
        "InternalError",
        "InternalFailure",
    }
)


def _aws_failure(error: Exception) -> tuple[str, int] | None:
    """The message and exit status of an AWS SDK error (operator commands), or None for any other."""
    if not type(error).__module__.startswith("botocore"):
        return None
    from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, NoCredentialsError
    from botocore.exceptions import ConnectionError as AwsConnectionError

    if isinstance(error, AwsConnectionError | HTTPClientError):
        # Refused, reset or timed out: on the local runtime, one that has just stopped.
        return f"cannot reach AWS: {error}", EXIT_UNREACHABLE
    if isinstance(error, NoCredentialsError):
        return (
            "no AWS credentials for --stack-name (configure a profile or AWS_* variables), or leave "
            "--stack-name out to use the running local runtime",
            EXIT_USAGE,
        )
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        retry = code in _RETRYABLE_AWS or status >= 500
        return f"AWS: {error}", EXIT_UNREACHABLE if retry else EXIT_USAGE
    if isinstance(error, BotoCoreError):
        return f"AWS: {error}", EXIT_USAGE
    return None


if __name__ == "__main__":
    sys.exit(main())

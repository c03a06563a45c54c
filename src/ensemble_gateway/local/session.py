"""A ready-to-use local gateway: the runtime, the example catalog, a client, readable logs.

The runtime keeps its state in memory (moto): a restart starts from the example catalog again.
Only the local client survives a restart, through a file of its own (see
:func:`load_local_client`), so that scripts holding its API key keep working.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, TextIO

from .runtime import DrainReport, InFlight, LocalRuntime

_FIELDS = ("prediction_id", "service", "status", "endpoint", "reason", "key")

#: The name of the client the local runtime creates for its user.
LOCAL_CLIENT_NAME = "local-user"


class LocalClientFileError(Exception):
    """The local client's file exists but cannot be read as one."""


@dataclass(frozen=True)
class LocalClientCredentials:
    """The local client as its file keeps it: enough to register the very same client again.

    Parameters
    ----------
    client_id
        The client's ID (the owner of its predictions).
    name
        The client's name.
    api_key
        Its API key, in clear: the file is the only place it is kept (mode 0600).
    webhook_secret
        The secret its webhooks are signed with.
    """

    client_id: str
    name: str
    api_key: str
    webhook_secret: str


def write_private_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (0600), atomically.

    The file is written beside its destination and renamed over it, so a reader never sees half
    of it; its directory is created owner-only (0700) when missing.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        # os.open's mode does not apply to a file that already existed.
        os.chmod(partial, 0o600)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def load_local_client(path: Path) -> LocalClientCredentials | None:
    """The local client kept in ``path``, or None when there is no such file.

    Raises
    ------
    LocalClientFileError
        The file exists but is unreadable or not a local client's file.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as error:
        raise LocalClientFileError(f"cannot read {path}: {error.strerror}") from None
    try:
        document = json.loads(text)
        credentials = LocalClientCredentials(
            **{item.name: document[item.name] for item in fields(LocalClientCredentials)}
        )
    except (ValueError, TypeError, KeyError):
        raise LocalClientFileError(f"{path} is not a local client's file") from None
    if not all(isinstance(value, str) and value for value in asdict(credentials).values()):
        raise LocalClientFileError(f"{path} is not a local client's file (a field is empty or not text)")
    return credentials


def store_local_client(path: Path, credentials: LocalClientCredentials) -> None:
    """Keep ``credentials`` in ``path`` (mode 0600) for the next start of the runtime."""
    write_private_file(path, json.dumps(asdict(credentials), indent=2) + "\n")


def _readable_formatter() -> logging.Formatter:
    from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

    class ReadableFormatter(LambdaPowertoolsFormatter):
        """One short line per gateway event instead of Lambda's JSON log records.

        It stays a Powertools formatter so that the handlers' ``inject_lambda_context`` works.
        """

        def format(self, record: logging.LogRecord) -> str:
            fields = " ".join(f"{name}={getattr(record, name)}" for name in _FIELDS if hasattr(record, name))
            stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
            return f"{stamp} gateway  {record.getMessage()}  {fields}".rstrip()

    return ReadableFormatter()


class LocalSession:
    """Starts the local runtime with the example catalog and a client, and stops it all."""

    def __init__(
        self,
        *,
        api_port: int = 3000,
        aws_port: int = 0,
        verbose: bool = True,
        stream: TextIO | None = None,
        root: Path | None = None,
    ) -> None:
        self.stream = stream or sys.stdout
        self.verbose = verbose
        self.runtime = LocalRuntime(root, api_port=api_port, aws_port=aws_port, log=self._say, sweep_interval=5.0)
        self.api_key = ""
        self.webhook_secret = ""
        self.client_id = ""
        # Whether start() registered the client kept in its file again (False: a new client).
        self.client_restored = False
        self.service_names: list[str] = []

    def _say(self, line: str) -> None:
        if self.verbose:
            stamp = time.strftime("%H:%M:%S")
            print(f"{stamp} {line}", file=self.stream, flush=True)

    def start(self, catalog: Path, client_file: Path | None = None) -> LocalSession:
        """Start the runtime, register ``catalog`` and the local client.

        Parameters
        ----------
        catalog
            The services to register (relative paths are relative to the project root).
        client_file
            Where the local client is kept across restarts: registered again from it when it
            exists, created and written to it (mode 0600) when not. None: a new client each time.
        """
        from .catalog import apply_catalog

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", message="No application metrics to publish")
        self._check_models()
        self.runtime.start()
        self._readable_logs()
        root = self.runtime.root
        services = apply_catalog(self.runtime, catalog if catalog.is_absolute() else root / catalog)
        # A file may hold several versions of one service: each name once.
        self.service_names = list(dict.fromkeys(service.name for service in services))
        self._register_client(client_file)
        return self

    def _register_client(self, client_file: Path | None) -> None:
        from ..adapters.dynamodb import DynamoClientDirectory
        from ..admin import create_client, reserve_client_name
        from ..domain.auth import hash_api_key
        from ..domain.models import Client

        assert self.runtime.stack is not None
        directory = DynamoClientDirectory(
            self.runtime.stack.outputs["ClientsTableName"], self.runtime.client("dynamodb")
        )
        saved: LocalClientCredentials | None = None
        if client_file is not None:
            try:
                saved = load_local_client(client_file)
            except LocalClientFileError as error:
                print(f"note: {error}; a new local client replaces it", file=self.stream)
        if saved is not None:
            # The same client again: its predictions' owner, API key and webhook secret are unchanged.
            directory.put(
                Client(
                    client_id=saved.client_id,
                    name=saved.name,
                    api_key_hash=hash_api_key(saved.api_key),
                    webhook_secrets=[saved.webhook_secret],
                )
            )
            # Its name too, as `clients create` reserves names: no second client may take it.
            reserve_client_name(directory, saved.name, saved.client_id)
            self.client_id, self.api_key, self.webhook_secret = saved.client_id, saved.api_key, saved.webhook_secret
            self.client_restored = True
            return
        client, self.api_key = create_client(directory, LOCAL_CLIENT_NAME, unique_name=True)
        self.client_id, self.webhook_secret = client.client_id, client.webhook_secrets[0]
        self.client_restored = False
        if client_file is not None:
            store_local_client(
                client_file, LocalClientCredentials(client.client_id, client.name, self.api_key, self.webhook_secret)
            )

    def _check_models(self) -> None:
        models = self.runtime.root / "examples" / "models"
        trained = [d for d in models.glob("*/model") if d.is_dir()] if models.exists() else []
        if models.exists() and not trained:
            print(
                "note: the example models are not trained; run `make models` (or `python examples/train.py`)",
                file=self.stream,
            )

    def _readable_logs(self) -> None:
        from ..observability import logger

        standard = logging.getLogger(logger.name)
        for handler in standard.handlers:
            handler.setFormatter(_readable_formatter())
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(self.stream)
        standard.setLevel(logging.INFO if self.verbose else logging.WARNING)

    def state(self) -> dict[str, Any]:
        """What the CLI needs to find and use this runtime (its state file, see ``ensemble-gateway --help``)."""
        assert self.runtime.stack is not None
        return {
            "api_url": self.runtime.api_url,
            "aws_url": self.runtime.aws_url,
            "stack_name": self.runtime.stack.stack_name,
            "outputs": self.runtime.stack.outputs,
            "api_key": self.api_key,
            "client_id": self.client_id,
            "root": str(self.runtime.root),
            # The CLI tells a runtime that is gone from one that is slow by this process.
            "pid": os.getpid(),
        }

    def drain(self, seconds: float, interrupted: Callable[[], bool] = lambda: False) -> DrainReport:
        """Refuse new predictions, finish those in flight and their webhooks, and say so.

        See :meth:`LocalRuntime.drain` for what is in flight; the progress and the outcome are
        printed to the session's stream.

        Parameters
        ----------
        seconds
            The drain deadline.
        interrupted
            True stops waiting at once.
        """
        said_start = False

        def progress(left: InFlight, elapsed: float) -> None:
            nonlocal said_start
            if not said_start:
                said_start = True
                self._tell(f"draining: {_describe(left)}; new predictions get 503; up to {seconds:g} s")
            else:
                self._tell(f"draining: {_describe(left)} ({elapsed:.0f} s)")

        report = self.runtime.drain(seconds, interrupted=interrupted, on_progress=progress)
        if not said_start:
            progress(report.started_with, 0.0)
        left = report.left
        if left.awaiting_upload:
            # Counted at the end: a request inside the API when intake closed may still have
            # created its prediction after the drain's first look.
            self._tell(
                f"not drained: {_count(left.awaiting_upload, 'accepted prediction')} still waiting for "
                "an upload (lost when the runtime stops)"
            )
        if report.outcome == "drained" and report.started_with.idle:
            self._tell(f"drained in {report.seconds:.1f} s: nothing was in flight")
        elif report.outcome == "drained":
            finished = _count(report.started_with.predictions, "prediction")
            self._tell(f"drained in {report.seconds:.1f} s: {finished} finished, every webhook sent")
        elif report.outcome == "deadline":
            self._tell(f"drain deadline reached after {report.seconds:.0f} s: {_describe(left)}, lost")
            if left.running:
                self._tell(f"still running: {', '.join(left.running)}")
        else:
            self._tell(f"drain interrupted: {_describe(left)} abandoned")
        return report

    def _tell(self, line: str) -> None:
        print(line, file=self.stream, flush=True)

    def stop(self) -> None:
        self.runtime.stop()


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _describe(left: InFlight) -> str:
    """``2 predictions in flight (1 running, 1 upload queued), 1 webhook to send`` and the like."""
    if left.idle:
        return "nothing left in flight"
    parts = []
    detail = []
    if left.running:
        detail.append(f"{len(left.running)} running")
    if left.uploads_queued:
        detail.append(_count(left.uploads_queued, "upload") + " queued")
    if detail:
        parts.append(_count(left.predictions, "prediction") + f" in flight ({', '.join(detail)})")
    if left.webhooks_queued:
        parts.append(_count(left.webhooks_queued, "webhook") + " to send")
    if left.events_queued:
        parts.append(_count(left.events_queued, "event") + " to handle")
    if left.busy_pollers and not (left.events_queued or left.uploads_queued or left.webhooks_queued):
        parts.append(_count(left.busy_pollers, "handler") + " finishing")
    return ", ".join(parts)

"""A ready-to-use local gateway: the runtime, the example catalog, a client, readable logs."""

from __future__ import annotations

import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Any, TextIO

from .runtime import LocalRuntime

_FIELDS = ("prediction_id", "service", "status", "endpoint", "reason", "key")


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
        self.service_names: list[str] = []

    def _say(self, line: str) -> None:
        if self.verbose:
            stamp = time.strftime("%H:%M:%S")
            print(f"{stamp} {line}", file=self.stream, flush=True)

    def start(self, catalog: Path) -> LocalSession:
        from ..adapters.dynamodb import DynamoClientDirectory
        from ..admin import create_client
        from .catalog import apply_catalog

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", message="No application metrics to publish")
        self._check_models()
        self.runtime.start()
        self._readable_logs()
        root = self.runtime.root
        services = apply_catalog(self.runtime, catalog if catalog.is_absolute() else root / catalog)
        self.service_names = [service.name for service in services]
        assert self.runtime.stack is not None
        directory = DynamoClientDirectory(
            self.runtime.stack.outputs["ClientsTableName"], self.runtime.client("dynamodb")
        )
        client, self.api_key = create_client(directory, "local-user")
        self.webhook_secret = client.webhook_secrets[0]
        return self

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
        assert self.runtime.stack is not None
        return {
            "api_url": self.runtime.api_url,
            "aws_url": self.runtime.aws_url,
            "stack_name": self.runtime.stack.stack_name,
            "outputs": self.runtime.stack.outputs,
            "api_key": self.api_key,
            "root": str(self.runtime.root),
        }

    def stop(self) -> None:
        self.runtime.stop()

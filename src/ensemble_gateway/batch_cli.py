"""``ensemble-gateway batch``: many inputs in one request (``POST /batches``), watched to the end.

- ``batch SERVICE FILE.jsonl [--wait] [--max-concurrency N] [--tolerated-failure-percent P]
  [--metadata K=V ...] [--idempotency-key K] [--json]`` (``batch submit`` spelt out) reads the
  manifest first, creates the batch, uploads the manifest through the form the gateway answers
  and prints the batch ID; with ``--wait`` it shows a progress bar on stderr (items done / total,
  percent, rate, ETA) until the batch ends, then its summary.
- ``batch status ID [--wait]``, ``batch result ID [-o FILE]`` (the result file, JSON Lines: one
  line per input line, in input order), ``batch cancel ID``.

Exit statuses as the rest of the CLI (see ``cli.EPILOG``): 0 the batch COMPLETED (every item);
1 it ended COMPLETED_WITH_FAILURES, FAILED or CANCELLED; 2 usage or input error; 3 not finished
(``status``, ``result``); 4 the gateway could not be reached; 130 Ctrl-C (the batch goes on).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .batch_progress import RateMeter, progress_text, should_print

__all__ = ["ACTIONS", "BatchProgress", "add_batch_commands", "batch_argv", "summary_lines"]

# As cli.py numbers them (a unit test checks they agree): not imported, see _Cli.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_RUNNING = 3
EXIT_UNREACHABLE = 4
EXIT_INTERRUPTED = 130

ACTIONS = ("submit", "status", "result", "cancel")
BATCH_TERMINAL = ("COMPLETED", "COMPLETED_WITH_FAILURES", "FAILED", "CANCELLED")
# The contract's limits (the gateway enforces them too; checked here before anything is created).
MAX_LINES = 100_000
MAX_CONCURRENCY = 100
# Metadata keys the gateway sets on every item itself.
RESERVED_METADATA = ("batch_id", "line")
# The options of the batch actions that take a value: batch_argv skips their values.
_VALUED = frozenset(
    {
        "--api-url",
        "--api-key",
        "--stack-name",
        "--region",
        "--max-concurrency",
        "--tolerated-failure-percent",
        "--metadata",
        "--idempotency-key",
        "--content-type",
        "--webhook",
        "-o",
        "--output",
        "--progress-interval",
    }
)

USAGE = """\
ensemble-gateway batch [submit] SERVICE FILE.jsonl [--wait] [--max-concurrency N]
                              [--tolerated-failure-percent P] [--metadata KEY=VALUE ...]
                              [--idempotency-key KEY] [--json]
       ensemble-gateway batch status ID [--wait] [--json]
       ensemble-gateway batch result ID [-o FILE]
       ensemble-gateway batch cancel ID [--json]"""

DESCRIPTION = """\
Send every line of a JSON Lines manifest to a service as one batch: each line becomes a
prediction (ID <batch_id>-<line:06d>), at most --max-concurrency running at once, and the
result file has one line per input line, in input order: {line, prediction_id, status,
output | error}. A bad line (invalid JSON, too large) fails that item only.

A manifest line is the item's JSON input (in a text/* batch, a JSON string: the item's text),
or {"s3_uri": "s3://...", "content_type": "..."} naming an object the gateway can read (binary
inputs; on AWS, in a bucket its operator listed)."""

EPILOG = """\
exit status:
  0    submitted (with --wait, and for status: the batch COMPLETED, every item);
       result: the result file was written; cancel: the batch is CANCELLED
  1    the batch ended COMPLETED_WITH_FAILURES, FAILED (its failures passed
       --tolerated-failure-percent) or CANCELLED
  2    usage or input error: a missing, unreadable or empty manifest, bad arguments, an
       unknown batch or service, a batch that had already ended (cancel)
  3    the batch has not finished (status), or has no result file yet (result: a batch
       CANCELLED or FAILED writes it once its running items have ended)
  4    the gateway cannot be reached or did not serve the request
  130  Ctrl-C: the batch keeps running (`batch status ID --wait` watches it again)"""


@dataclass(frozen=True)
class _Cli:
    """What the CLI module gives these commands: its API lookup and the error it prints.

    Given rather than imported: run as ``python -m ensemble_gateway.cli``, the CLI is the module
    ``__main__``, and an import would load a second copy whose ``CliError`` it does not catch.
    """

    api_target: Callable[[argparse.Namespace], tuple[Any, dict[str, Any] | None]]
    error: Callable[..., Exception]
    client_error_exit: Callable[[Exception], int]


# -- argv -------------------------------------------------------------------------------------
def batch_argv(argv: Sequence[str]) -> list[str]:
    """``batch SERVICE FILE`` as ``batch submit SERVICE FILE``; an action given after options moved first.

    argparse's subcommands need the action first; ``batch`` takes a service where an action
    would be (the common case needs no verb), and options before either.

    Parameters
    ----------
    argv
        The command line without the program name.

    Returns
    -------
    list of str
        ``argv`` unchanged unless it is a ``batch`` command.
    """
    tokens = list(argv)
    if not tokens or tokens[0] != "batch":
        return tokens
    rest = tokens[1:]
    index = 0
    while index < len(rest):
        token = rest[index]
        if token == "--":
            index += 1
            break
        if not token.startswith("-") or token == "-":
            break
        index += 2 if token in _VALUED else 1
    if index >= len(rest):
        # Options only (`batch -h`, `batch --json`): argparse says what is missing.
        return tokens
    if rest[index] in ACTIONS:
        return ["batch", rest[index], *rest[:index], *rest[index + 1 :]]
    return ["batch", "submit", *rest]


# -- argument types ---------------------------------------------------------------------------
def _concurrency(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if not 1 <= value <= MAX_CONCURRENCY:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_CONCURRENCY}, got {value}")
    return value


def _percent(text: str) -> int:
    try:
        value = int(text.strip().removesuffix("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole percentage (0 to 100)") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be from 0 to 100, got {text}")
    return value


def _metadata_item(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"takes KEY=VALUE, got '{text}'")
    if key in RESERVED_METADATA:
        raise argparse.ArgumentTypeError(f"'{key}' is set on every item by the gateway itself: use another key")
    return key, value


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text}")
    return value


# -- the parser ---------------------------------------------------------------------------------
def add_batch_commands(
    sub: Any,
    common: argparse.ArgumentParser,
    *,
    api_target: Callable[[argparse.Namespace], tuple[Any, dict[str, Any] | None]],
    cli_error: Callable[..., Exception],
    client_error_exit: Callable[[Exception], int],
) -> None:
    """Add ``batch [submit]|status|result|cancel`` to the CLI's subcommands.

    Parameters
    ----------
    sub
        The CLI's subparsers.
    common
        The parent parser of the target options (``--api-url``, ``--api-key``...).
    api_target
        The CLI's ``(API client, local runtime state or None)`` of the target.
    cli_error
        The error the CLI prints as one line without a traceback (``message, exit_code=``).
    client_error_exit
        The CLI's exit status of an API error (2 refused, 4 not served).
    """
    cli = _Cli(api_target, cli_error, client_error_exit)
    batch = sub.add_parser(
        "batch",
        help="a JSON Lines manifest through a service, one prediction per line (progress, ordered results)",
        usage=USAGE,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # prog given: argparse would otherwise put the whole custom usage in front of each action's.
    actions = batch.add_subparsers(dest="action", required=True, metavar="ACTION", prog="ensemble-gateway batch")

    submit = actions.add_parser(
        "submit",
        parents=[common],
        help="(the default action) submit FILE.jsonl to SERVICE; the file is read first",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    submit.add_argument("service", help="the service every line goes to (`ensemble-gateway services list`)")
    submit.add_argument("file", help="the manifest: JSON Lines, one input per line")
    submit.add_argument("--wait", action="store_true", help="show progress on stderr until the batch ends")
    submit.add_argument(
        "--max-concurrency",
        type=_concurrency,
        metavar="N",
        help=f"at most N items running at once (1-{MAX_CONCURRENCY}; the gateway's default: 10)",
    )
    submit.add_argument(
        "--tolerated-failure-percent",
        type=_percent,
        metavar="P",
        help="end the batch FAILED once more than P%% of its items failed (a whole number, 0-100; default 0)",
    )
    submit.add_argument(
        "--metadata",
        action="append",
        type=_metadata_item,
        metavar="KEY=VALUE",
        help="metadata copied to every item, beside batch_id and line (repeatable)",
    )
    submit.add_argument(
        "--idempotency-key",
        metavar="KEY",
        help="the same key and request within 24 h give the same batch (a retry creates no second one)",
    )
    submit.add_argument("--content-type", help="the items' media type (default: the service's first)")
    submit.add_argument("--webhook", metavar="URL", help="https URL notified once, when the batch ends")
    _wait_options(submit)
    submit.add_argument("--json", action="store_true", help="print the batch's GET /batches/{id} document as JSON")
    submit.set_defaults(func=lambda args: cmd_submit(args, cli))

    status = actions.add_parser(
        "status",
        parents=[common],
        help="a batch's status and counts (exit 0 COMPLETED, 1 ended otherwise, 3 not finished)",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    status.add_argument("batch_id")
    status.add_argument("--wait", action="store_true", help="show progress until it ends (watch it again)")
    _wait_options(status)
    status.add_argument("--json", action="store_true", help="print the GET /batches/{id} document as JSON")
    status.set_defaults(func=lambda args: cmd_status(args, cli))

    result = actions.add_parser(
        "result",
        parents=[common],
        help="the result file of a batch that has ended: JSON Lines, one line per input line, in order",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    result.add_argument("batch_id")
    result.add_argument("-o", "--output", metavar="FILE", help="write it to FILE ('-': standard output, the default)")
    result.add_argument(
        "--json", action="store_true", help="with -o, print {batch_id, file, size, counts} as JSON (else the lines)"
    )
    result.set_defaults(func=lambda args: cmd_result(args, cli))

    cancel = actions.add_parser(
        "cancel",
        parents=[common],
        help="stop a batch: no new item starts, running items are cancelled; CANCELLED",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cancel.add_argument("batch_id")
    cancel.add_argument("--json", action="store_true", help="print the batch's document as JSON")
    cancel.set_defaults(func=lambda args: cmd_cancel(args, cli))


def _wait_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--progress-interval",
        type=_interval,
        default=5.0,
        metavar="S",
        help="with --wait and stderr not a terminal: one progress line every S seconds (default 5)",
    )


# -- submit -------------------------------------------------------------------------------------
def read_manifest(path: Path, error: Callable[..., Exception]) -> tuple[bytes, int]:
    """The manifest's bytes and its number of lines, read before anything is created.

    Only what makes the whole request pointless is refused here; a bad line is the gateway's to
    report, in that line of the result file.

    Raises
    ------
    Exception
        ``error`` (the CLI's): the file is missing, a directory, unreadable, empty, or has more
        than :data:`MAX_LINES` lines.
    """
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise error(f"cannot read {path}: it is a directory, not a file") from None
    except OSError as failure:
        raise error(f"cannot read {path}: {failure.strerror or failure}") from None
    if not data.strip():
        raise error(f"{path} is empty: a manifest has one input per line (JSON Lines)")
    # An empty trailing line is not an item (the gateway ignores it too).
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    if lines > MAX_LINES:
        raise error(f"{path} has {lines:,} lines; a batch takes at most {MAX_LINES:,}: split it")
    return data, lines


def cmd_submit(args: argparse.Namespace, cli: _Cli) -> int:
    from .client import GatewayClientError

    path = Path(args.file)
    data, lines = read_manifest(path, cli.error)
    api, _ = cli.api_target(args)
    accepted = api.submit_batch(
        args.service,
        content_type=args.content_type,
        max_concurrency=args.max_concurrency,
        tolerated_failure_percent=args.tolerated_failure_percent,
        webhook_url=args.webhook,
        metadata=dict(args.metadata) if args.metadata else None,
        idempotency_key=args.idempotency_key,
    )
    batch_id = str(accepted["batch_id"])
    upload = accepted.get("upload")
    if upload is None:
        # An idempotent replay of a batch whose manifest had arrived.
        _note(f"batch {batch_id} was already submitted with this idempotency key: nothing uploaded again")
    else:
        limit = upload.get("max_bytes")
        if isinstance(limit, int) and len(data) > limit:
            # Nothing can start without its manifest: end the batch rather than leave it waiting.
            with contextlib.suppress(GatewayClientError):
                api.cancel_batch(batch_id)
            raise cli.error(
                f"{path} is {len(data):,} bytes; a manifest upload takes at most {limit:,} (batch {batch_id} cancelled)"
            )
        try:
            api.upload_manifest(upload, data)
        except GatewayClientError as failure:
            raise cli.error(
                f"batch {batch_id} was created but its manifest was not uploaded ({failure}); submit it again "
                "(with the same --idempotency-key: the same batch)",
                exit_code=cli.client_error_exit(failure),
            ) from None
        except KeyboardInterrupt:
            raise cli.error(
                f"interrupted: batch {batch_id} was created, its manifest perhaps not uploaded: "
                f"`ensemble-gateway batch status {batch_id}` tells (PENDING_UPLOAD: not uploaded)",
                exit_code=EXIT_INTERRUPTED,
            ) from None
    if args.wait:
        _note(f"batch {batch_id}: {lines:,} lines submitted to {args.service}")
        return _watch(api, batch_id, args, cli)
    if args.json:
        print(json.dumps(api.batch(batch_id), indent=2))
    else:
        print(batch_id)
    _note(
        f"batch {batch_id}: {lines:,} lines submitted to {args.service}; watch it with "
        f"`ensemble-gateway batch status {batch_id} --wait`"
    )
    return EXIT_OK


# -- waiting ------------------------------------------------------------------------------------
def _counts(document: dict[str, Any]) -> dict[str, int]:
    counts = document.get("counts") or {}
    return {key: int(value) for key, value in counts.items() if isinstance(value, int | float)}


def items_done(document: dict[str, Any]) -> tuple[int, int | None]:
    """(items ended, items in all or None while not counted yet) of a batch document."""
    counts = _counts(document)
    done = counts.get("completed", 0) + counts.get("failed", 0) + counts.get("cancelled", 0)
    total = counts.get("total")
    if not total and document.get("status") not in BATCH_TERMINAL:
        # The driver counts the lines as it reads the manifest: 0 until then means "not known".
        total = None
    return done, total


class BatchProgress:
    """The progress bar of a batch on ``stream``: redrawn in place on a terminal, else a line every ``interval`` s.

    Parameters
    ----------
    batch_id
        Shown at the start of the line.
    stream
        Where it is drawn (stderr: stdout keeps the summary).
    clock
        Seconds, monotonic (a test's own clock).
    interval
        Seconds between two lines when ``stream`` is not a terminal.
    window
        Seconds the rate is measured over.
    """

    def __init__(
        self,
        batch_id: str,
        stream: Any,
        clock: Callable[[], float] = time.monotonic,
        interval: float = 5.0,
        window: float = 30.0,
    ) -> None:
        self.batch_id = batch_id
        self.stream = stream
        self.clock = clock
        self.interval = interval
        self.meter = RateMeter(window)
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.last_printed: float | None = None
        self.last_status = ""
        self.drawn = False

    def line(self, document: dict[str, Any]) -> str:
        """Record the document's count and return the line it makes."""
        done, total = items_done(document)
        self.meter.add(self.clock(), done)
        status = str(document.get("status", ""))
        text = f"{self.batch_id} " + progress_text(self.meter.snapshot(done, total), f"{status:<14}".rstrip())
        failed = _counts(document).get("failed", 0)
        return text + (f"  {failed:,} failed" if failed else "")

    def update(self, document: dict[str, Any]) -> None:
        """Show the progress a ``GET /batches/{id}`` document gives."""
        text = self.line(document)
        now = self.clock()
        status = str(document.get("status", ""))
        final = status in BATCH_TERMINAL or status != self.last_status
        self.last_status = status
        if not should_print(tty=self.tty, now=now, last_printed=self.last_printed, interval=self.interval, final=final):
            return
        self.last_printed = now
        if self.tty:
            self.stream.write(f"\r\033[K{text}")
        else:
            self.stream.write(f"{text}\n")
        self.drawn = True
        self.stream.flush()

    def close(self) -> None:
        """End the line being redrawn (on a terminal), so that what follows starts on its own."""
        if self.tty and self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False


def _watch(api: Any, batch_id: str, args: argparse.Namespace, cli: _Cli) -> int:
    from .client import GatewayUnreachableError

    progress = BatchProgress(batch_id, sys.stderr, interval=args.progress_interval)
    try:
        document = api.wait_batch(batch_id, on_progress=progress.update)
    except KeyboardInterrupt:
        progress.close()
        raise cli.error(
            f"interrupted: batch {batch_id} keeps running (Ctrl-C stops the waiting, not the batch); watch it "
            f"again with `ensemble-gateway batch status {batch_id} --wait`, stop it with "
            f"`ensemble-gateway batch cancel {batch_id}`",
            exit_code=EXIT_INTERRUPTED,
        ) from None
    except GatewayUnreachableError as failure:
        progress.close()
        raise cli.error(
            f"{failure}; batch {batch_id} may still be running: `ensemble-gateway batch status {batch_id} --wait` "
            "once the gateway answers",
            exit_code=EXIT_UNREACHABLE,
        ) from None
    progress.close()
    _show(document, args)
    return exit_for_status(str(document.get("status", "")))


def exit_for_status(status: str) -> int:
    """0 COMPLETED, 1 the other ends (some or all items did not complete), 3 not ended."""
    if status == "COMPLETED":
        return EXIT_OK
    if status in BATCH_TERMINAL:
        return EXIT_FAILED
    return EXIT_RUNNING


# -- status, result, cancel ---------------------------------------------------------------------
def cmd_status(args: argparse.Namespace, cli: _Cli) -> int:
    api, _ = cli.api_target(args)
    if args.wait:
        return _watch(api, args.batch_id, args, cli)
    document = api.batch(args.batch_id)
    _show(document, args)
    return exit_for_status(str(document.get("status", "")))


def cmd_result(args: argparse.Namespace, cli: _Cli) -> int:
    api, _ = cli.api_target(args)
    batch_id = args.batch_id
    document = api.batch(batch_id)
    status = str(document.get("status", ""))
    if status not in BATCH_TERMINAL:
        raise cli.error(
            f"batch {batch_id} is {status}: no result file yet (`ensemble-gateway batch status {batch_id} --wait`)",
            exit_code=EXIT_RUNNING,
        )
    if not (document.get("result") or {}).get("url"):
        if not document.get("finished_at"):
            # CANCELLED or FAILED at once; the file comes once the items still running have ended.
            raise cli.error(
                f"batch {batch_id} is {status}; its result file is written once its running items have ended "
                f"(`ensemble-gateway batch status {batch_id} --wait`)",
                exit_code=EXIT_RUNNING,
            )
        raise cli.error(
            f"batch {batch_id} ended {status}{_reason(document)} without a result file", exit_code=EXIT_FAILED
        )
    to_file = args.output not in (None, "-")
    if not to_file:
        sys.stdout.flush()
        api.download_to(document, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return EXIT_OK
    target = Path(args.output)
    # Written beside the target, then renamed: a download that breaks off leaves no half file.
    part = target.with_name(f".{target.name}.part")
    try:
        with part.open("wb") as file:
            size = api.download_to(document, file)
        part.replace(target)
    except OSError as failure:
        raise cli.error(f"cannot write {target}: {failure.strerror or failure}") from None
    finally:
        part.unlink(missing_ok=True)
    counts = _counts(document)
    if args.json:
        print(json.dumps({"batch_id": batch_id, "file": str(target), "size": size, "counts": counts}, indent=2))
    else:
        print(f"wrote {counts.get('total', 0):,} lines ({size:,} bytes, JSON Lines) to {target}: {_count_text(counts)}")
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace, cli: _Cli) -> int:
    api, _ = cli.api_target(args)
    document = api.cancel_batch(args.batch_id)
    status = str(document.get("status", ""))
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        batch_id = document.get("batch_id", args.batch_id)
        print(f"batch {batch_id} is {status}: no new item starts, running items are cancelled")
    return EXIT_OK if status == "CANCELLED" else exit_for_status(status)


# -- output -------------------------------------------------------------------------------------
def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _show(document: dict[str, Any], args: argparse.Namespace) -> None:
    if getattr(args, "json", False):
        print(json.dumps(document, indent=2))
    else:
        print("\n".join(summary_lines(document)))


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def _when(value: Any) -> str:
    parsed = _moment(value)
    return parsed.strftime("%Y-%m-%dT%H:%M:%SZ") if parsed else str(value or "-")


def _count_text(counts: dict[str, int]) -> str:
    shown = [f"{counts.get(name, 0):,} {name}" for name in ("completed", "failed", "cancelled")]
    shown += [f"{counts[name]:,} {name}" for name in ("running", "pending") if counts.get(name)]
    return ", ".join(shown)


def _reason(document: dict[str, Any]) -> str:
    error = document.get("error") or {}
    if not error:
        return ""
    if isinstance(error, dict):
        return f": {error.get('code')}: {error.get('message')}"
    return f": {error}"


def summary_lines(document: dict[str, Any]) -> list[str]:
    """A batch's document for a reader: status and how long, the items' counts, the result file."""
    lines: list[str] = []

    def row(label: str, value: str) -> None:
        lines.append(f"{label:11}  {value}")

    batch_id = str(document.get("batch_id", ""))
    status = str(document.get("status", ""))
    row("batch", batch_id)
    row("service", str(document.get("service", "")))
    began = _moment(document.get("started_at")) or _moment(document.get("created_at"))
    ended = _moment(document.get("finished_at"))
    took = f" after {(ended - began).total_seconds():.1f} s" if began and ended else ""
    row("status", status + took)
    counts = _counts(document)
    row("items", f"{counts.get('total', 0):,}: {_count_text(counts)}")
    concurrency = document.get("max_concurrency")
    if concurrency is not None:
        tolerated = document.get("tolerated_failure_percent")
        row("concurrency", f"{concurrency}" + (f" (failures tolerated up to {tolerated}%)" if tolerated else ""))
    row("created", _when(document.get("created_at")))
    if document.get("finished_at"):
        row("finished", _when(document.get("finished_at")))
    metadata = document.get("metadata") or {}
    if metadata:
        row("metadata", ", ".join(f"{key}={value}" for key, value in metadata.items()))
    if document.get("error"):
        row("error", _reason(document).removeprefix(": "))
    result = document.get("result") or {}
    if result.get("url"):
        expires = f"; its link expires {_when(result['expires_at'])}" if result.get("expires_at") else ""
        row("result", f"`ensemble-gateway batch result {batch_id} -o results.jsonl` (JSON Lines{expires})")
    elif status not in BATCH_TERMINAL:
        row("follow", f"`ensemble-gateway batch status {batch_id} --wait`")
    elif not document.get("finished_at"):
        row("result", f"written once the running items have ended (`ensemble-gateway batch status {batch_id} --wait`)")
    return lines

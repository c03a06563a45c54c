"""Write a batch manifest of complaints for complaint-triage: JSON Lines, one `{"text": ...}` per line.

    python examples/make_batch.py                        # complaints-1000.jsonl, here
    python examples/make_batch.py -n 50 -o small.jsonl
    python examples/make_batch.py --bad-lines 3          # and 3 lines the gateway must refuse, one by one
    ensemble-gateway batch complaint-triage complaints-1000.jsonl --wait

Deterministic: the same file every run. The complaints come from `triage_corpus.generate_corpus`
with a seed of their own (not the training or held-out seeds of `train.py`): every product and
issue, about a third with a vulnerability cue, openings, context and closings varied. With
`--bad-lines K`, K lines spread through the file are replaced by lines the gateway reports in
that line of the result file (invalid JSON, a JSON value the model refuses, an empty text),
while the others go through.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXAMPLES_DIR = Path(__file__).resolve().parent
if str(EXAMPLES_DIR) not in sys.path:
    sys.path.insert(0, str(EXAMPLES_DIR))

from triage_corpus import generate_corpus  # noqa: E402

# Not one of train.py's seeds (SEED + 5 and + 6 train and hold out the triage models).
BATCH_SEED = 20261717
# The kinds of bad line, in turn: what each one makes the item fail with.
BAD_LINES = (
    '{"text": "I want to complain about my mortgage',  # invalid JSON (cut off)
    '["a JSON array, not an object with a text"]',  # the triage models want {"text": "..."}
    '{"text": "   "}',  # an empty complaint
)


def manifest_lines(count: int = 1000, bad_lines: int = 0) -> list[str]:
    """The manifest's lines (without their newlines).

    Parameters
    ----------
    count
        How many lines.
    bad_lines
        How many of them to replace with lines the items fail on (spread evenly, never line 1).

    Returns
    -------
    list of str
        Compact JSON objects ``{"text": ...}``, and the bad lines where they were asked for.
    """
    if count < 1:
        raise ValueError(f"a manifest needs at least one line, got {count}")
    if not 0 <= bad_lines < count:
        raise ValueError(f"--bad-lines must be from 0 to {count - 1}, got {bad_lines}")
    lines = [
        json.dumps({"text": complaint["text"]}, ensure_ascii=False)
        for complaint in generate_corpus(count, seed=BATCH_SEED)
    ]
    for index in range(bad_lines):
        position = (index + 1) * count // (bad_lines + 1)
        lines[max(1, position)] = BAD_LINES[index % len(BAD_LINES)]
    return lines


def write_manifest(path: Path, count: int = 1000, bad_lines: int = 0) -> Path:
    """Write :func:`manifest_lines` to ``path`` (UTF-8, one line each, a newline after the last)."""
    path.write_text("".join(f"{line}\n" for line in manifest_lines(count, bad_lines)), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a complaint-triage batch manifest (JSON Lines).")
    parser.add_argument("-n", "--count", type=int, default=1000, help="how many complaints (default 1000)")
    parser.add_argument("-o", "--output", help="the file to write (default: complaints-<count>.jsonl, here)")
    parser.add_argument("--bad-lines", type=int, default=0, metavar="K", help="replace K lines with bad ones")
    args = parser.parse_args(argv)
    path = Path(args.output or f"complaints-{args.count}.jsonl")
    try:
        write_manifest(path, args.count, args.bad_lines)
    except ValueError as error:
        parser.error(str(error))
    except OSError as error:
        print(f"error: cannot write {path}: {error.strerror or error}", file=sys.stderr)
        return 2
    print(f"{args.count} lines ({args.bad_lines} bad) in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

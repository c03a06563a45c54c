"""``python -m bench [names...] [--quick]``: run the benchmarks and write bench/results/<name>.json."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .runner import BENCHMARKS, run_benchmarks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all): {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test), not meaningful figures")
    parser.add_argument("--results-dir", type=Path, default=None, help="where to write <name>.json")
    args = parser.parse_args(argv)
    run_benchmarks(args.names or None, quick=args.quick, results_dir=args.results_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())

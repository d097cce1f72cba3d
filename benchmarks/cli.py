"""The ``initbench`` command line."""

from __future__ import annotations

import argparse
import sys

import inits


class UsageError(Exception):
    """Bad input: printed as one line, exit code 2."""


def _cmd_list(args: argparse.Namespace) -> int:
    for e in inits.available():
        print(f"{e.name:24s} {e.family:18s} {e.formula:52s} {e.reference}")
    return 0


def _cmd_variance_table(args: argparse.Namespace) -> int:
    from benchmarks.variance_table import variance_table

    table = variance_table(args.seed)
    with __import__("pandas").option_context("display.width", 200, "display.max_rows", 200):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``initbench``."""
    parser = argparse.ArgumentParser(prog="initbench", description=__doc__)
    parser.add_argument("--version", action="version", version=f"initbench {inits.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="list registered initializers")
    p.set_defaults(func=_cmd_list)
    p = sub.add_parser("variance-table", help="measured vs target variance of every initializer")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_variance_table)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: returns the exit code (2 for bad input, with one line on stderr)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, ValueError, TypeError) as err:
        print(f"initbench: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""Command line of the offline side: ``python -m index <command>``.

One module per group of commands, each registering its sub-commands on the parser; this
package and :mod:`index.console` are the only places of the offline side that print.
"""

from __future__ import annotations

import argparse

from index.cli import bench, dataset, evaluation, vectors
from index.console import run_cli

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m index``."""
    parser = argparse.ArgumentParser(
        prog="python -m index",
        description="Offline side: inspect a labelled dataset, build and search its vector index.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="More log output (-vv for debug).")
    sub = parser.add_subparsers(dest="command", required=True)
    dataset.register(sub)
    vectors.register(sub)
    bench.register(sub)
    evaluation.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    return run_cli(build_parser(), argv)

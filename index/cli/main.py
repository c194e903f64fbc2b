"""The parser of ``python -m index`` and its entry point.

The CLI alone decides what to print: progress and summaries on stderr, ``--json`` results
on stdout, one clear line (never a stack trace) for a user error.
"""

from __future__ import annotations

import argparse

from index.cli import bench, dataset, evaluation, vectors
from index.console import run_cli


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m index``."""
    parser = argparse.ArgumentParser(prog="python -m index", description="Offline side: inspect a labelled dataset, build and search its vector index.")
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

"""Command line of the online side: ``python -m agent ask | chat | trace | eval | bench``.

One module per group of commands, each registering its sub-commands; these modules and
:mod:`index.console` are the only places of the online side that print. An unreachable
endpoint is one line on stderr and exit 1; other user errors exit 2.
"""

from __future__ import annotations

import argparse

from agent.cli import ask, evaluation, traces
from index.console import command_parser, run_cli

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m agent``."""
    return command_parser("python -m agent", "Online side: ask a Qwen3-VL agent about photos, with retrieved labelled examples.", [ask, traces, evaluation])


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    return run_cli(build_parser(), argv)

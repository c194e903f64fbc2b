"""Command line of the offline side: ``python -m index <command>``.

One module per group of commands, each registering its sub-commands on the parser; this
package and :mod:`index.console` are the only places of the offline side that print.
"""

from __future__ import annotations

import argparse

from index.console import command_parser, run_cli

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m index``."""
    # Imported here, not above: ``agent``'s commands import index.cli.common, and should not
    # pay for every offline command's modules.
    from index.cli import bench, dataset, evaluation, vectors

    return command_parser(
        "python -m index",
        "Offline side: inspect a labelled dataset (or synthesise one), build and search its vector index, "
        "evaluate retrieval against chance and benchmark indexing.",
        [m.register for m in (dataset, vectors, bench, evaluation)],
        epilog="Run `python -m index COMMAND --help` for a command's flags and an example.",
    )


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    return run_cli(build_parser(), argv)

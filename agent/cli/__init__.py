"""Command line of the online side: ``python -m agent ask | chat | trace | eval | bench | fake-server | serve``.

One module per group of commands, each registering its sub-commands on the parser; this
package and :mod:`index.console` are the only places of the online side that print. An
unreachable or refusing endpoint is one line on stderr and exit 1 (an unreachable one says
what to do, :mod:`agent.cli.endpoint`); other user errors exit 2; ``chat`` reports either and
goes on.
"""

from __future__ import annotations

import argparse

from agent.cli import ask, evaluation, fake, serve, traces
from agent.cli.ask import print_report, report_json
from index.console import command_parser, run_cli

__all__ = ["build_parser", "main", "print_report", "report_json"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m agent``."""
    return command_parser(
        "python -m agent",
        "Online side: ask a Qwen3-VL agent about photos, with retrieved labelled examples; chat; read the "
        "traces; evaluate the modes against the annotations; benchmark the time around the model; "
        "serve the inspection over HTTP (an OpenAI-compatible API and a page); or serve a fake model "
        "to try it all with none.",
        [ask.register, traces.register, evaluation.register, fake.register, serve.register],
        epilog="Run `python -m agent COMMAND --help` for a command's flags and an example.",
    )


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    return run_cli(build_parser(), argv)

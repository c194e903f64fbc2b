"""Command line of the online side: ``python -m agent ask | chat | trace | eval | bench``.

One module per group of commands, each registering its sub-commands; these modules and
:mod:`index.console` are the only places of the online side that print. An unreachable
endpoint is one line on stderr and exit 1; other user errors exit 2.
"""

from agent.cli.main import build_parser, main

__all__ = ["build_parser", "main"]

"""Command line of the offline side: ``python -m index <command>``.

One module per group of commands, each registering its sub-commands on the parser; this
package and :mod:`index.console` are the only places of the offline side that print.
"""

from index.cli.main import build_parser, main

__all__ = ["build_parser", "main"]

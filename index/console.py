"""Everything the command lines print goes through here: one console, progress bars, one error line.

Library code never prints: it logs (``logging.getLogger(__name__)``) and reports progress
through callbacks. The CLIs (``index.cli``, ``agent.cli``) print with :data:`console`
(stderr: progress, summaries, errors) and :data:`out` (stdout: results, ``--json``), and run
their commands through :func:`run_cli`, the one place a :class:`~index.errors.DamageRagError`
becomes a single line and an exit code.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from index.errors import DamageRagError

#: Progress, summaries and errors (stderr).
console = Console(stderr=True, soft_wrap=True)
#: Results (stdout): what a script reads.
out = Console(soft_wrap=True)


class RateColumn(ProgressColumn):
    """Items per second."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        """The task's current rate."""
        speed = task.finished_speed or task.speed
        return Text(f"{speed:6.1f} {self.unit}/s" if speed else f"    ? {self.unit}/s", style="cyan")


def _progress(unit: str) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(unit),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True,
        disable=not console.is_terminal,
    )


@contextmanager
def progress_bar(description: str, unit: str = "files") -> Iterator[tuple[Callable[[int], None], Callable[[int], None]]]:
    """A progress bar (rate and ETA) on stderr, shown on a terminal only.

    Yields:
        ``(advance, set_total)``: advance by n items; set the total once it is known.
    """
    with _progress(unit) as progress:
        task = progress.add_task(description, total=None)
        yield (lambda n: progress.advance(task, n)), (lambda total: progress.update(task, total=total))


@contextmanager
def phase_progress(descriptions: dict[str, str], unit: str = "items") -> Iterator[Callable[[str, int, int], None]]:
    """One progress bar per phase of a longer run (e.g. indexing, then asking the model).

    Yields:
        ``update(phase, done, total)``; ``descriptions`` names each phase's bar.
    """
    with _progress(unit) as progress:
        tasks: dict[str, Any] = {}

        def update(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = progress.add_task(descriptions.get(phase, phase))
            progress.update(tasks[phase], completed=done, total=total or None)

        yield update


def say(message: str) -> None:
    """One line on stderr, printed as text: data (paths, labels, model text) is never markup."""
    console.print(message, markup=False, highlight=False)


def flag(word: str, style: str, message: str) -> None:
    """``word: message`` on stderr with ``word`` in ``style`` (e.g. "skipped", "yellow"); the message as text."""
    console.print(Text.assemble((word, style), ": ", message), highlight=False)


def cells(*values: Any) -> list[Text]:
    """Table cells as text (a rich table would read markup in plain strings)."""
    return [Text(str(value)) for value in values]


def print_json(data: Any) -> None:
    """``data`` as one line of JSON on stdout (for ``--json``)."""
    out.file.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")
    out.file.flush()


def error_line(exc: BaseException) -> str:
    """The one line a user sees for an error (markup in the message is shown as text)."""
    return f"[red]error:[/] {escape(str(exc))}"


def command_parser(prog: str, description: str, registrars: list[Callable[[Any], None]]) -> argparse.ArgumentParser:
    """The parser of a command line whose sub-commands come from ``registrars``.

    Each registrar adds its sub-commands to the sub-parsers it is given, with
    ``set_defaults(func=...)``; ``-v`` / ``-vv`` are common to all.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="More log output (-vv for debug).")
    sub = parser.add_subparsers(dest="command", required=True)
    for register in registrars:
        register(sub)
    return parser


def run_cli(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse ``argv``, run the chosen command (``args.func``) and return its exit code.

    Sets up logging (``-v`` info, ``-vv`` debug) on stderr. A project error
    (:class:`~index.errors.DamageRagError`) becomes one line on stderr and its
    ``exit_code``; Ctrl-C exits 130. Anything else is a bug and keeps its traceback.
    """
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    args = parser.parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(getattr(args, "verbose", 0), 2)]
    logging.basicConfig(level=level, format="%(message)s", handlers=[RichHandler(console=console, show_path=False)])
    try:
        return int(args.func(args))
    except DamageRagError as exc:
        console.print(error_line(exc), highlight=False)
        return exc.exit_code
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        return 130

"""Everything the command lines print goes through here: one console, progress bars, one error line.

Library code never prints: it logs (``logging.getLogger(__name__)``) and reports progress
through callbacks. The CLIs (``index.cli``, ``agent.cli``) print with :data:`console`
(stderr: progress, summaries, errors) and :data:`out` (stdout: results, ``--json``), and run
their commands through :func:`run_cli`, the one place a :class:`~index.errors.DamageRagError`
becomes a single line and an exit code.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
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


def show_table(table: Any, width: int = 1000) -> None:
    """A rich table on stderr: at the terminal's width on a terminal (columns marked
    ``overflow="fold"`` wrap, nothing is cut), at its natural width when stderr is piped
    (rich would assume 80 columns and cut paths short)."""
    if console.is_terminal:
        console.print(table)
        return
    wide = Console(file=io.StringIO(), width=width, color_system=None, soft_wrap=True)
    wide.print(table)
    console.out("\n".join(line.rstrip() for line in wide.file.getvalue().rstrip("\n").splitlines()), highlight=False)


def print_json(data: Any) -> None:
    """``data`` as one line of JSON on stdout (for ``--json``)."""
    out.file.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")
    out.file.flush()


def error_line(exc: BaseException) -> str:
    """The one line a user sees for an error (markup in the message is shown as text)."""
    return f"[red]error:[/] {escape(str(exc))}"


_REST_ROLE = re.compile(r":[a-z]+:`(~?)([^`<]*?)\s*(?:<[^>]*>)?`")


def plain(text: str | None) -> str | None:
    """``text`` without reST markup, for help screens: ``double backticks`` and :role:`targets`
    read as the words they mark (``:class:`~a.b.C``` as ``C``, as Sphinx shows it)."""
    if not text:
        return text
    text = _REST_ROLE.sub(lambda m: m.group(2).rsplit(".", 1)[-1] if m.group(1) else m.group(2), text)
    return text.replace("``", "")


class HelpFormatter(argparse.HelpFormatter):
    """Help that shows every default and reads as plain text.

    A flag whose help does not say its default already gets ``(default: X)``; flags without a
    value (switches, ``-v``) and defaults of None are left alone. In descriptions and epilogs,
    indented lines (examples, lists) are kept as written and the other lines are wrapped as
    paragraphs.
    """

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        import textwrap

        lines: list[str] = []
        paragraph: list[str] = []
        for line in (plain(text) or "").splitlines() + [""]:
            if line.strip() and not line.startswith(" "):
                paragraph.append(line.strip())
                continue
            if paragraph:
                lines.extend(textwrap.wrap(" ".join(paragraph), width, initial_indent=indent, subsequent_indent=indent))
                paragraph = []
            lines.append(indent + line)
        return "\n".join(lines).rstrip()

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = plain(action.help) or ""
        if action.help is argparse.SUPPRESS:
            return action.help
        if (action.nargs == 0 or any(action.default is v for v in (None, False, argparse.SUPPRESS)) or "default" in text.lower()
                or not (action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE))):
            return text
        return f"{text.rstrip('.')} (default: %(default)s)."


def package_version() -> str:
    """The installed version of ``damage-rag``; in a bare checkout, the one ``pyproject.toml`` declares."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("damage-rag")
    except PackageNotFoundError:
        pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
        found = re.search(r'^version\s*=\s*"([^"]+)"', pyproject.read_text(encoding="utf-8"), re.MULTILINE) \
            if pyproject.is_file() else None
        return found.group(1) if found else "unknown"


def _common_flags() -> argparse.ArgumentParser:
    """Flags every sub-command takes too, so ``-v`` works before or after the sub-command. Its
    default is suppressed: ``-v ask`` keeps the count the main parser set."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                        help="More log output (-vv for debug).")
    return common


class _SubCommands(argparse._SubParsersAction):  # noqa: SLF001 - argparse's own extension point
    """Sub-parsers with the common flags, the help formatter, plain-text help and an example.

    ``add_parser(name, help=..., example="python -m ...")``: ``help`` is also the description,
    ``example`` (a line or a list of lines) becomes the epilog.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._common = _common_flags()

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        example = kwargs.pop("example", None)
        if kwargs.get("help"):
            kwargs["help"] = plain(kwargs["help"])
            kwargs.setdefault("description", kwargs["help"])
        if kwargs.get("description"):
            kwargs["description"] = plain(kwargs["description"])
        if example:
            lines = [example] if isinstance(example, str) else list(example)
            kwargs.setdefault("epilog", ("example:\n" if len(lines) == 1 else "examples:\n")
                              + "\n".join(f"  {line}" for line in lines))
        kwargs.setdefault("formatter_class", HelpFormatter)
        kwargs["parents"] = [*kwargs.get("parents", []), self._common]
        return super().add_parser(name, **kwargs)


def command_parser(prog: str, description: str, registrars: list[Callable[[Any], None]],
                   epilog: str | None = None) -> argparse.ArgumentParser:
    """The parser of a command line whose sub-commands come from ``registrars``.

    Each registrar adds its sub-commands to the sub-parsers it is given
    (``sub.add_parser(name, help=..., example=...)``) with ``set_defaults(func=...)``.
    ``-v`` / ``-vv`` are common to all, before or after the sub-command; ``--version`` prints
    the package version; every default shows in ``--help``.
    """
    parser = argparse.ArgumentParser(prog=prog, description=plain(description), epilog=epilog,
                                     formatter_class=HelpFormatter)
    parser.register("action", "parsers", _SubCommands)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="More log output (-vv for debug).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
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

"""``python -m agent ask`` (one question), ``python -m agent chat`` (a session), and how a report is shown."""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from agent.llm import ModelEndpointError
from index.config import DEFAULT_CONFIG, MODES
from index.console import console, error_line, out
from index.errors import UserError


def register(sub: Any) -> None:
    """Add ``ask`` and ``chat`` to the sub-command parsers ``sub``."""
    p = sub.add_parser("ask", help="Ask one question about one photo.")
    add_engine_args(p)
    p.add_argument("--image", required=True, help="The photo.")
    p.add_argument("question", help="The question, e.g. '¿Tiene rayones en el capó?'.")
    p.add_argument("--json", action="store_true", help="Print the report as one JSON object.")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("chat", help="Interactive session: attach photos, ask, follow up.")
    add_engine_args(p)
    p.add_argument("--image", help="Photo to start with.")
    p.set_defaults(func=cmd_chat)


def add_engine_args(parser: argparse.ArgumentParser) -> None:
    """The flags of the commands that run the engine."""
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="Domain YAML (default: %(default)s).")
    parser.add_argument("--mode", choices=MODES, help="Overrides agent.mode.")
    parser.add_argument("--api-base", help="OpenAI-compatible endpoint (overrides model.api_base).")
    parser.add_argument("--model", help="Served model name (overrides model.model).")
    parser.add_argument("--index", type=Path, help="Index directory (default: index.dir of the config).")
    parser.add_argument("--embedder", help="Query embedder (default: the one the index manifest records).")


def _engine(args: argparse.Namespace) -> Any:
    from agent.engine import DamageQueryEngine

    return DamageQueryEngine.from_config(args.config, index_dir=args.index, embedder=args.embedder,
                                         api_base=args.api_base, model=args.model, mode=args.mode)


def _live(kind: str, data: dict[str, Any]) -> None:
    """Show tool calls as they happen."""
    if kind == "tool_call":
        console.print(f"[cyan]→ {escape(data['name'])}[/]({escape(json.dumps(data['arguments'], ensure_ascii=False))})")
    elif kind == "tool_result":
        colour = "red" if data["error"] else "green"
        first = data["text"].splitlines()[0] if data["text"] else ""
        shown = f" · {len(data['images'])} image(s) shown" if data["images"] else ""
        console.print(f"  [{colour}]←[/] {escape(first[:140])}{shown}")
    elif kind == "protocol":
        console.print(f"[yellow]{escape(data['message'])}[/]")


def print_report(report: Any) -> None:
    """A readable report: answer, findings table, examples, trace id."""
    status = {True: "[red]damage detected[/]", False: "[green]no damage detected[/]", None: "[yellow]no valid answer[/]"}
    console.print(f"{status[report.damage_detected]} · mode {report.mode} · {report.tool_calls} tool call(s) · "
                  f"{report.timings.get('total_s', 0):.1f}s")
    if report.answer:
        out.print(report.answer, markup=False, highlight=False)
    if report.findings:
        table = Table(show_edge=False)
        for column in ("label", "location", "severity", "confidence", "box (px)", "evidence"):
            table.add_column(column)
        for f in report.findings:
            cells = (f.label.name, f.location or "-", f.severity or "-", f"{f.confidence:.2f}",
                     str(f.bbox_px or "-"), (f.evidence or "")[:60])
            table.add_row(*(Text(cell) for cell in cells))
        out.print(table)
    if report.error:
        console.print(f"[yellow]{escape(report.error)}[/]")
    if report.examples_used:
        console.print(f"examples shown: {escape(', '.join(report.examples_used))}")
    console.print(f"trace: {report.trace_id}")


def cmd_ask(args: argparse.Namespace) -> int:
    """One question about one photo."""
    if not Path(args.image).is_file():
        raise UserError(f"Photo {args.image} does not exist.")
    engine = _engine(args)
    report = engine.query(args.image, args.question, on_event=None if args.json else _live)
    if args.json:
        out.file.write(report.model_dump_json() + "\n")
    else:
        print_report(report)
    return 0


CHAT_HELP = """Commands: /photo PATH (attach a photo) · /mode agentic|rag|zero-shot · /trace (last trace) · /quit
Anything else is a question about the attached photo (English or Spanish)."""


def cmd_chat(args: argparse.Namespace) -> int:
    """An interactive session."""
    engine = _engine(args)
    session = engine.session(args.mode)
    console.print(f"[bold]damage inspection chat[/] · {engine.config.model.model} at {engine.config.model.api_base}")
    console.print(CHAT_HELP)
    if args.image:
        session.attach(args.image)
        console.print(f"photo: {escape(args.image)}")
    last_trace = None
    while True:
        try:
            line = input("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            console.print()
            return 0
        if not line:
            continue
        if line.startswith("/"):
            command, _, rest = line.partition(" ")
            rest = " ".join(shlex.split(rest)) if rest else ""
            if command in ("/quit", "/exit", "/q"):
                return 0
            if command == "/photo":
                if not Path(rest).is_file():
                    console.print(f"[red]no such photo:[/] {escape(rest)}")
                    continue
                session.attach(rest)
                console.print(f"photo: {escape(rest)}")
            elif command == "/mode" and rest in MODES:
                session.mode = rest
                console.print(f"mode: {rest}")
            elif command == "/trace":
                console.print(f"last trace: {last_trace}" if last_trace else "no question asked yet")
            else:
                console.print(CHAT_HELP)
            continue
        if session.photo is None:
            console.print("[yellow]attach a photo first:[/] /photo PATH")
            continue
        try:
            report = session.ask(line, on_event=_live)
        except ModelEndpointError as exc:
            console.print(error_line(exc))
            continue
        last_trace = report.trace_id
        print_report(report)

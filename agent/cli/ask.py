"""Command line of the online side: ``python -m agent chat | ask | trace``.

Progress and reports go to stderr/stdout through rich; ``--json`` prints one JSON object on
stdout. An unreachable endpoint is one line on stderr and exit 1; other user errors exit 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)
DEFAULT_CONFIG = "configs/vehicle_damage.yaml"


def _engine(args: argparse.Namespace) -> Any:
    from agent.engine import DamageQueryEngine

    return DamageQueryEngine.from_config(args.config, index_dir=args.index, embedder=args.embedder,
                                         api_base=args.api_base, model=args.model, mode=args.mode)


def _live(kind: str, data: dict[str, Any]) -> None:
    """Show tool calls as they happen."""
    if kind == "tool_call":
        console.print(f"[cyan]→ {data['name']}[/]({json.dumps(data['arguments'], ensure_ascii=False)})")
    elif kind == "tool_result":
        colour = "red" if data["error"] else "green"
        first = data["text"].splitlines()[0] if data["text"] else ""
        shown = f" · {len(data['images'])} image(s) shown" if data["images"] else ""
        console.print(f"  [{colour}]←[/] {first[:140]}{shown}")
    elif kind == "protocol":
        console.print(f"[yellow]{data['message']}[/]")


def print_report(report: Any) -> None:
    """A readable report: answer, findings table, examples, trace id."""
    status = {True: "[red]damage detected[/]", False: "[green]no damage detected[/]", None: "[yellow]no valid answer[/]"}
    console.print(f"{status[report.damage_detected]} · mode {report.mode} · {report.tool_calls} tool call(s) · "
                  f"{report.timings.get('total_s', 0):.1f}s")
    if report.answer:
        out.print(report.answer)
    if report.findings:
        table = Table(show_edge=False)
        for column in ("label", "location", "severity", "confidence", "box (px)", "evidence"):
            table.add_column(column)
        for f in report.findings:
            table.add_row(f.label.name, f.location or "-", f.severity or "-", f"{f.confidence:.2f}",
                          str(f.bbox_px or "-"), (f.evidence or "")[:60])
        out.print(table)
    if report.error:
        console.print(f"[yellow]{report.error}[/]")
    if report.examples_used:
        console.print(f"examples shown: {', '.join(report.examples_used)}")
    console.print(f"trace: {report.trace_id}")


def cmd_ask(args: argparse.Namespace) -> int:
    """One question about one photo."""
    if not Path(args.image).is_file():
        raise _UserError(f"Photo {args.image} does not exist.")
    engine = _engine(args)
    report = engine.query(args.image, args.question, on_event=None if args.json else _live)
    if args.json:
        print(report.model_dump_json())
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
        console.print(f"photo: {args.image}")
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
                    console.print(f"[red]no such photo:[/] {rest}")
                    continue
                session.attach(rest)
                console.print(f"photo: {rest}")
            elif command == "/mode" and rest in ("agentic", "rag", "zero-shot"):
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
        from agent.llm import ModelEndpointError

        try:
            report = session.ask(line, on_event=_live)
        except ModelEndpointError as exc:
            console.print(f"[red]error:[/] {exc}")
            continue
        last_trace = report.trace_id
        print_report(report)


def cmd_trace(args: argparse.Namespace) -> int:
    """List traces, show one, or render one as HTML."""
    from agent.trace import list_traces, load_trace, render_html
    from index.config import load_config

    traces_dir = Path(args.traces_dir) if args.traces_dir else load_config(args.config).agent.traces_dir
    if args.action == "list":
        rows = list_traces(traces_dir)
        if args.json:
            print(json.dumps(rows, ensure_ascii=False))
            return 0
        table = Table(show_edge=False)
        for column in ("id", "mode", "tools", "damage", "question"):
            table.add_column(column)
        for row in rows:
            table.add_row(row["id"], str(row["mode"]), str(row["tool_calls"]), str(row["damage_detected"]), str(row["question"])[:60])
        out.print(table)
        return 0
    if not args.id:
        raise _UserError("trace show needs a trace id (see `python -m agent trace list`).")
    events = load_trace(traces_dir, args.id)
    if args.html:
        path = render_html(events, Path(args.html))
        console.print(f"wrote {path}")
    if args.json:
        print(json.dumps({"id": args.id, "events": events}, ensure_ascii=False))
    elif not args.html:
        for event in events:
            kind = event["type"]
            if kind == "tool_call":
                out.print(f"{event['t']:7.2f}s tool {event['name']}({json.dumps(event['arguments'], ensure_ascii=False)})"
                          f"{' ERROR' if event['error'] else ''}\n          {event['result_text'][:300]}")
            elif kind == "model_request":
                out.print(f"{event['t']:7.2f}s model request {event['step']} ({event['latency_s']:.2f}s, {event.get('usage', {})}, images {event['image_sizes']})")
            elif kind == "images_sent":
                out.print("          images shown: " + "; ".join(i["caption"] for i in event["images"]))
            elif kind == "report":
                out.print(json.dumps(event["report"], indent=2, ensure_ascii=False))
            elif kind in ("protocol", "invalid_answer"):
                out.print(f"{event['t']:7.2f}s {kind}: {event.get('message') or event.get('error')}")
    return 0


class _UserError(Exception):
    """A user mistake: one line, exit 2."""


def _add_engine_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="Domain YAML (default: %(default)s).")
    parser.add_argument("--mode", choices=["agentic", "rag", "zero-shot"], help="Overrides agent.mode.")
    parser.add_argument("--api-base", help="OpenAI-compatible endpoint (overrides model.api_base).")
    parser.add_argument("--model", help="Served model name (overrides model.model).")
    parser.add_argument("--index", type=Path, help="Index directory (default: index.dir of the config).")
    parser.add_argument("--embedder", help="Query embedder (default: the one the index manifest records).")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m agent``."""
    parser = argparse.ArgumentParser(prog="python -m agent", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="count", default=0)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ask", help="Ask one question about one photo.")
    _add_engine_args(p)
    p.add_argument("--image", required=True, help="The photo.")
    p.add_argument("question", help="The question, e.g. '¿Tiene rayones en el capó?'.")
    p.add_argument("--json", action="store_true", help="Print the report as one JSON object.")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("chat", help="Interactive session: attach photos, ask, follow up.")
    _add_engine_args(p)
    p.add_argument("--image", help="Photo to start with.")
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("trace", help="Inspect the traces of past queries.")
    p.add_argument("action", choices=["list", "show"])
    p.add_argument("id", nargs="?", help="Trace id (for show).")
    p.add_argument("--config", default=DEFAULT_CONFIG)
    p.add_argument("--traces-dir", help="Trace folder (default: agent.traces_dir of the config).")
    p.add_argument("--json", action="store_true")
    p.add_argument("--html", help="Write a self-contained HTML page of the trace here.")
    p.set_defaults(func=cmd_trace)

    from agent.evaluation.run import add_eval_arguments, cmd_eval

    p = sub.add_parser("eval", help="Score zero-shot / rag / agentic answers against the annotations.")
    add_eval_arguments(p)
    p.set_defaults(func=cmd_eval)

    from agent.bench import add_bench_arguments, cmd_bench

    p = sub.add_parser("bench", help="Per-query time this project adds around the model (fake server).")
    add_bench_arguments(p)
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    args = build_parser().parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(message)s", handlers=[RichHandler(console=console, show_path=False)])
    from agent.llm import ModelEndpointError
    from agent.prompts import PromptError
    from agent.trace import TraceNotFoundError
    from index.cli import _domain_errors
    from index.config import ConfigError

    try:
        return args.func(args)
    except ModelEndpointError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        return 1
    except (_UserError, ConfigError, PromptError, TraceNotFoundError, *_domain_errors()) as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

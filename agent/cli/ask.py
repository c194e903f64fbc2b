"""``ask`` (one question about one photo) and ``chat`` (a session with follow-ups)."""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from agent.cli.endpoint import check_reachable, with_hint
from agent.endpoint_errors import ModelEndpointError
from agent.trace import TraceWriteFailure, trace_file
from index.cli.common import INDEX_HELP
from index.config import DEFAULT_CONFIG, MODES, apply_overrides, load_config
from index.console import console, error_line, flag, out, print_json
from index.errors import DamageRagError, UserError

__all__ = ["add_engine_args", "print_report", "register", "report_json"]


def register(sub: Any) -> None:
    """Add ``ask`` and ``chat`` to the sub-command parsers ``sub``."""
    p = sub.add_parser("ask", help="Ask one question about one photo.",
                       example='python -m agent ask --image photo.jpg "¿Tiene rayones en el capó?" --mode rag')
    add_engine_args(p)
    p.add_argument("--image", required=True, help="The photo.")
    p.add_argument("question", help="The question, e.g. '¿Tiene rayones en el capó?'.")
    shape = p.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true", help="Print the whole report as one JSON object on stdout.")
    shape.add_argument("--simple", action="store_true",
                       help="Print the short JSON (damage_detected, damage_type, location, confidence, "
                            "similar_examples_used, analysis) on stdout.")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("chat", help="Interactive session: attach photos, ask, follow up.",
                       example="python -m agent chat --image photo.jpg")
    add_engine_args(p)
    p.add_argument("--image", help="Photo to start with (default: none; attach one with /photo PATH).")
    p.set_defaults(func=cmd_chat)


def add_engine_args(parser: argparse.ArgumentParser) -> None:
    """The flags of the commands that run the engine."""
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="Domain YAML (default: %(default)s).")
    parser.add_argument("--mode", choices=MODES, help="agentic, rag or zero-shot (default: agent.mode of --config, "
                                                      "agentic in the shipped configs).")
    parser.add_argument("--api-base", help="OpenAI-compatible endpoint of the model (default: model.api_base of "
                                           "--config; the vehicle config reads $VLM_API_BASE, else "
                                           "http://localhost:8000/v1).")
    parser.add_argument("--model", help="Served model name (default: model.model of --config; the vehicle config "
                                        "reads $VLM_MODEL, else Qwen/Qwen3-VL-4B-Instruct).")
    parser.add_argument("--index", type=Path, metavar="INDEX_DIR", help=INDEX_HELP)
    parser.add_argument("--embedder", help="Query embedder (default: the one the index manifest records).")
    parser.add_argument("--traces-dir", type=Path, help="Where each query writes its trace (default: "
                                                        "agent.traces_dir of --config, outputs/traces).")


def _engine(args: argparse.Namespace) -> Any:
    from agent.engine import DamageQueryEngine

    config = load_config(args.config)
    if args.traces_dir:
        config = apply_overrides(config, {"agent.traces_dir": str(args.traces_dir)})
    return DamageQueryEngine.from_config(config, index_dir=args.index, embedder=args.embedder,
                                         api_base=args.api_base, model=args.model, mode=args.mode)


def _check_photo(path: str) -> None:
    """A missing or unreadable photo is one line before anything loads."""
    from index.imaging.decode import read_header

    if not Path(path).is_file():
        raise UserError(f"Photo {path} does not exist.")
    read_header(Path(path))


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
    elif kind == "waiting":  # the first question of a session waits for the index to load
        console.print(f"[dim]{escape(data['message'])} …[/]")
    elif kind == "ready":
        console.print(f"[dim]  ready after {data['seconds']:.1f}s[/]")


def print_report(report: Any, trace_failure: TraceWriteFailure | None = None) -> None:
    """A readable report: answer, findings table, examples, trace id (or why there is no trace:
    ``trace_failure``)."""
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
    if trace_failure is None:
        console.print(f"trace: {report.trace_id}")
    else:
        flag("note", "yellow", trace_failure.note())


def report_json(report: Any, traces_dir: Path, trace_failure: TraceWriteFailure | None = None) -> dict[str, Any]:
    """The report as ``ask --json`` prints it: its fields, plus ``trace`` (the trace file, or
    None when it could not be written) and ``trace_error`` (why not, else None)."""
    data = report.model_dump(mode="json")
    data["trace"] = None if trace_failure is not None else str(trace_file(traces_dir, report.trace_id))
    data["trace_error"] = None if trace_failure is None else trace_failure.reason
    return data


def cmd_ask(args: argparse.Namespace) -> int:
    """One question about one photo. The photo and the endpoint are checked before the index and
    its embedder start loading (in the background; zero-shot loads neither). The answer never depends on its trace: one that cannot be written is a
    note on stderr after the answer, and the exit code stays 0."""
    _check_photo(args.image)
    engine = _engine(args)
    quiet = args.json or args.simple
    try:
        check_reachable(engine.config.model)
        if engine.config.agent.mode != "zero-shot":
            engine.start_loading()  # the index and embedder load while the photo is read and the request composed
        report = engine.query(args.image, args.question, on_event=None if quiet else _live)
    except ModelEndpointError as exc:
        raise with_hint(exc) from None
    failure = engine.trace_failure(report.trace_id)
    if quiet:
        print_json(report.to_simple() if args.simple else report_json(report, engine.config.agent.traces_dir, failure))
        if failure is not None:
            flag("note", "yellow", failure.note())
    else:
        print_report(report, failure)
    return 0


def _prepare(engine: Any, mode: str) -> None:
    """While the user types: import the model client and, unless ``mode`` is zero-shot, load the
    index and its embedder, both in the background (a question that comes first says what it
    waits for)."""
    from agent.llm import preload_client

    preload_client()
    if mode != "zero-shot":
        engine.start_loading()


CHAT_HELP = """Commands: /photo PATH (attach a photo) · /mode agentic|rag|zero-shot · /trace (last trace) · /quit
Anything else is a question about the attached photo (English or Spanish)."""


def cmd_chat(args: argparse.Namespace) -> int:
    """An interactive session. An endpoint that is down is said at the start, and the session
    goes on (start the server, then ask)."""
    engine = _engine(args)
    session = engine.session(args.mode)
    console.print(f"[bold]damage inspection chat[/] · {escape(engine.config.model.model)} at "
                  f"{escape(engine.config.model.api_base)}")
    try:
        check_reachable(engine.config.model)
    except ModelEndpointError as exc:
        flag("warning", "yellow", str(exc))
    _prepare(engine, engine.config.agent.mode)
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
                _prepare(engine, rest)
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
        except ModelEndpointError as exc:  # the endpoint failed: say it (and what to do), go on
            console.print(error_line(with_hint(exc)))
            continue
        except DamageRagError as exc:  # an unreadable photo: say it, go on
            console.print(error_line(exc))
            continue
        failure = session.engine.trace_failure(report.trace_id)
        last_trace = report.trace_id if failure is None else f"not written ({failure.reason})"
        print_report(report, failure)

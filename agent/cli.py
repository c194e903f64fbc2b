"""Command line of the online side: ``python -m agent ask | chat | trace | eval | bench``.

This module and :mod:`index.console` are the only places of the online side that print.
An unreachable or refusing endpoint is one line on stderr and exit 1; other user errors
exit 2; ``chat`` reports either and goes on.
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from agent.evaluation.run import DEFAULT_QUESTION, EvalOptions, run_evaluation
from agent.trace import TraceWriteFailure, trace_file
from index.config import DEFAULT_CONFIG, MODES
from index.console import (
    command_parser,
    console,
    error_line,
    flag,
    out,
    phase_progress,
    print_json,
    run_cli,
)
from index.errors import DamageRagError, UserError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m agent``."""
    return command_parser(
        "python -m agent",
        "Online side: ask a Qwen3-VL agent about photos, with retrieved labelled examples.",
        [_register_ask, _register_traces, _register_evaluation],
    )


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    return run_cli(build_parser(), argv)


# ------------------------------------------------------------------ ask, chat


def _register_ask(sub: Any) -> None:
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
    """One question about one photo. The answer never depends on its trace: one that cannot be
    written is a note on stderr after the answer, and the exit code stays 0."""
    if not Path(args.image).is_file():
        raise UserError(f"Photo {args.image} does not exist.")
    engine = _engine(args)
    report = engine.query(args.image, args.question, on_event=None if args.json else _live)
    failure = engine.trace_failure(report.trace_id)
    if args.json:
        print_json(report_json(report, engine.config.agent.traces_dir, failure))
        if failure is not None:
            flag("note", "yellow", failure.note())
    else:
        print_report(report, failure)
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
        except DamageRagError as exc:  # an endpoint failure or an unreadable photo: say it, go on
            console.print(error_line(exc))
            continue
        failure = session.engine.trace_failure(report.trace_id)
        last_trace = report.trace_id if failure is None else f"not written ({failure.reason})"
        print_report(report, failure)


# ------------------------------------------------------------------ trace


def _register_traces(sub: Any) -> None:
    """Add ``trace`` to the sub-command parsers ``sub``."""
    p = sub.add_parser("trace", help="Inspect the traces of past queries.")
    p.add_argument("action", choices=["list", "show"])
    p.add_argument("id", nargs="?", help="Trace id (for show).")
    p.add_argument("--config", default=DEFAULT_CONFIG)
    p.add_argument("--traces-dir", help="Trace folder (default: agent.traces_dir of the config).")
    p.add_argument("--json", action="store_true")
    p.add_argument("--html", help="Write a self-contained HTML page of the trace here.")
    p.set_defaults(func=cmd_trace)


def cmd_trace(args: argparse.Namespace) -> int:
    """List traces, show one, or render one as HTML."""
    from agent.trace import list_traces, load_trace, render_html
    from index.config import load_config

    def show(line: str) -> None:
        out.print(line, markup=False, highlight=False)

    traces_dir = Path(args.traces_dir) if args.traces_dir else load_config(args.config).agent.traces_dir
    if args.action == "list":
        rows = list_traces(traces_dir)
        if args.json:
            print_json(rows)
            return 0
        table = Table(show_edge=False)
        for column in ("id", "status", "mode", "tools", "damage", "seconds", "question"):
            table.add_column(column)
        for row in rows:
            seconds = f"{row['seconds']:.1f}" if isinstance(row.get("seconds"), int | float) else "-"
            cells = (row["id"], row["status"], row["mode"], row["tool_calls"], row["damage_detected"], seconds,
                     str(row["question"])[:60])
            table.add_row(*(Text(str(cell)) for cell in cells))
        out.print(table)
        return 0
    if not args.id:
        raise UserError("trace show needs a trace id (see `python -m agent trace list`).")
    events = load_trace(traces_dir, args.id)
    if args.html:
        path = render_html(events, Path(args.html))
        console.print(f"wrote {escape(str(path))}")
    if args.json:
        print_json({"id": args.id, "events": events})
    elif not args.html:
        for event in events:
            kind = event["type"]
            if kind == "tool_call":
                show(f"{event['t']:7.2f}s tool {event['name']}({json.dumps(event['arguments'], ensure_ascii=False)})"
                     f"{' ERROR' if event['error'] else ''}\n          {event['result_text'][:300]}")
            elif kind == "model_request":
                show(f"{event['t']:7.2f}s model request {event['step']} ({event['latency_s']:.2f}s, {event.get('usage', {})}, images {event['image_sizes']})")
            elif kind == "images_sent":
                show("          images shown: " + "; ".join(i["caption"] for i in event["images"]))
            elif kind == "report":
                show(json.dumps(event["report"], indent=2, ensure_ascii=False))
            elif kind in ("protocol", "invalid_answer"):
                show(f"{event['t']:7.2f}s {kind}: {event.get('message') or event.get('error')}")
            elif kind == "error":
                show(f"{event['t']:7.2f}s FAILED ({event.get('problem')}): {event.get('message')}")
            elif kind in ("budget", "answer_repair"):
                show(f"{event['t']:7.2f}s {kind}: {'; '.join(event.get('omitted') or event.get('repairs') or [])}")
    return 0


# ------------------------------------------------------------------ eval, bench


def _register_evaluation(sub: Any) -> None:
    """Add ``eval`` and ``bench`` to the sub-command parsers ``sub``."""
    parser = sub.add_parser("eval", help="Score zero-shot / rag / agentic answers against the annotations.")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="Domain YAML (default: %(default)s).")
    parser.add_argument("--dataset", type=Path, help="Dataset folder (overrides dataset.root).")
    parser.add_argument("--embedder", help="Embedder of the train-side index (overrides embedder.model).")
    parser.add_argument("--api-base", help="OpenAI-compatible endpoint (overrides model.api_base).")
    parser.add_argument("--model", help="Served model name (overrides model.model).")
    parser.add_argument("--n", type=int, default=100, help="Test photos to ask about (default %(default)s).")
    parser.add_argument("--modes", default=",".join(MODES),
                        help="Comma-separated modes to compare (default %(default)s).")
    parser.add_argument("--question", help="The question asked about every photo (default: "
                        f"{DEFAULT_QUESTION!r} with the config's subject).")
    parser.add_argument("--test-fraction", type=float, default=0.2,
                        help="Share of photos (whole vehicles) on the test side (default %(default)s).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the split, the sample and the bootstrap.")
    parser.add_argument("--concurrency", type=int, default=4, help="Requests in flight at once (default %(default)s).")
    parser.add_argument("--no-cache", action="store_true", help="Ask again even when an answer is stored.")
    parser.add_argument("--out", type=Path, help="Run folder (default outputs/eval/<config>-<model>-n<N>-seed<S>).")
    parser.add_argument("--index-root", type=Path,
                        help="Folder of the cached train-side indexes index_<key> (default: the run folder "
                             "with --out, else outputs/eval).")
    parser.add_argument("--rebuild-index", action="store_true", help="Bring the train-side index up to date first.")
    parser.add_argument("--bootstrap", type=int, default=1000, help="Bootstrap resamples (default %(default)s).")
    parser.add_argument("--confidence", type=float, default=0.95, help="Interval confidence (default %(default)s).")
    parser.add_argument("--iou", type=float, default=0.3, help="IoU for a region to count as found (default %(default)s).")
    parser.add_argument("--no-plots", action="store_true", help="Skip the PNG plots.")
    parser.add_argument("--json", action="store_true", help="Print the result as one JSON object on stdout.")
    parser.set_defaults(func=cmd_eval)

    parser = sub.add_parser("bench", help="Per-query time this project adds around the model (fake server).")
    parser.add_argument("--queries", type=int, default=30, help="Queries per mode.")
    parser.add_argument("--regions", type=int, default=10_000, help="Region nodes in the index.")
    parser.add_argument("--workdir", type=Path, help="Keep the synthetic data and index here.")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=cmd_bench)


def options_from_args(args: argparse.Namespace) -> EvalOptions:
    """The :class:`EvalOptions` of parsed ``eval`` flags."""
    return EvalOptions(
        config=args.config, dataset=args.dataset, embedder=args.embedder, api_base=args.api_base, model=args.model,
        n=args.n, modes=tuple(m.strip() for m in args.modes.split(",") if m.strip()), question=args.question,
        test_fraction=args.test_fraction, seed=args.seed, concurrency=args.concurrency, use_cache=not args.no_cache,
        out=args.out, index_root=args.index_root, rebuild_index=args.rebuild_index, resamples=args.bootstrap,
        confidence=args.confidence, iou_threshold=args.iou, plots=not args.no_plots,
    )


def cmd_eval(args: argparse.Namespace) -> int:
    """Run the evaluation and print its summary (or JSON)."""
    from agent.evaluation.outputs import format_summary

    options = options_from_args(args)
    with phase_progress({"index": "indexing train photos", "queries": "asking the model"}) as progress:
        result = run_evaluation(options, progress=progress)
    if args.json:
        print_json(result)
    else:
        out.print(format_summary(result), highlight=False, markup=False)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the per-query overhead benchmark and print the table (or JSON)."""
    from agent.bench import format_table, run_benchmark

    started = time.perf_counter()
    result = run_benchmark(args.queries, args.regions, args.workdir)
    result["seconds"] = round(time.perf_counter() - started, 1)
    if args.json:
        print_json(result)
    else:
        out.print(format_table(result), highlight=False, markup=False)
    return 0

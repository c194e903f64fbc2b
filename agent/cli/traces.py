"""``trace``: the traces of past queries, listed, shown or written as one HTML page."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from index.config import DEFAULT_CONFIG
from index.console import console, out, print_json
from index.errors import UserError

__all__ = ["register"]



def register(sub: Any) -> None:
    """Add ``trace`` to the sub-command parsers ``sub``."""
    p = sub.add_parser("trace", help="Inspect the traces of past queries: list them, show one (or write it as HTML).",
                       example=["python -m agent trace list", "python -m agent trace show ID --html trace.html"])
    p.add_argument("action", choices=["list", "show"], help="list: every trace, newest first; show: one trace.")
    p.add_argument("id", nargs="?", help="Trace id, for show (see trace list).")
    p.add_argument("--config", default=DEFAULT_CONFIG, help="Domain YAML, for its agent.traces_dir (default: %(default)s).")
    p.add_argument("--traces-dir", help="Trace folder (default: agent.traces_dir of --config, outputs/traces).")
    p.add_argument("--json", action="store_true", help="Print the list or the trace's events as JSON on stdout.")
    p.add_argument("--html", help="Write a self-contained HTML page of the trace here (show).")
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

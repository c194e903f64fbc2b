"""``python -m index eval``: retrieval evaluation of region strategies x embedders."""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path
from typing import Any

from rich import box
from rich.table import Table

from index.cli.common import add_config_args, config_from_args
from index.console import cells, flag, print_json, progress_bar, say, show_table
from index.errors import EvaluationError, UserError
from index.evaluation import (
    DEFAULT_CACHE_DIR,
    DEFAULT_OUT_DIR,
    DEFAULT_STRATEGIES,
    STRATEGY_NAMES_HELP,
    evaluate_retrieval,
    format_interval,
    format_metric,
    parse_strategies,
    row_interval,
    short_model_name,
)
from index.evaluation.intervals import METRICS, MIN_QUERIES, metric_name


def register(sub: Any) -> None:
    """Add ``eval`` to the sub-command parsers ``sub``."""
    parser = sub.add_parser("eval", help="Retrieval evaluation: region strategies x embedders on a vehicle-grouped split.",
                            example="python -m index eval --dataset data/synth --embedder efficientnet-lite0 "
                                    "--strategies default,no-merge,image")
    add_config_args(parser)
    parser.add_argument("--embedder", action="append", metavar="MODEL",
                        help="Embedder model id or local path; repeat to compare (default: the config's).")
    parser.add_argument("--strategies", default=DEFAULT_STRATEGIES,
                        help=f"Comma list of region strategies: {STRATEGY_NAMES_HELP} (default: %(default)s).")
    parser.add_argument("-k", type=int, default=5, help="Cut-off of precision@k, hit@k and the k-NN vote (default %(default)s).")
    parser.add_argument("--depth", type=int, default=100,
                        help="Ranked-list depth for average precision; 0 ranks the whole index (default %(default)s).")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="Share of images on the test side (default %(default)s).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the split, of --limit's sample and of the bootstrap.")
    parser.add_argument("--limit", type=int, help="Evaluate on a stratified sample of N images, before splitting (default: all).")
    parser.add_argument("--out", type=Path, help=f"Run folder (default {DEFAULT_OUT_DIR}/retrieval-<time>).")
    parser.add_argument("--cache-dir", type=Path,
                        help=f"Cache of the per-row train indexes and query vectors (default {DEFAULT_CACHE_DIR}).")
    parser.add_argument("--no-cache", action="store_true", help="Build the row indexes inside the run folder instead.")
    parser.add_argument("--workers", type=int, help="Decoding threads (default 2).")
    parser.add_argument("--no-plots", action="store_true", help="Skip the PNG plots.")
    parser.add_argument("--bootstrap", type=int, default=2000, metavar="N",
                        help="Bootstrap resamples of the test vehicles per interval (default %(default)s).")
    parser.add_argument("--confidence", type=float, default=0.95,
                        help="Coverage of the intervals (default %(default)s).")
    parser.add_argument("--json", action="store_true", help="Print the result as one JSON object on stdout.")
    parser.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    """Run the retrieval evaluation from parsed command-line arguments."""
    config = config_from_args(args)
    for name, value, low in (("-k", args.k, 1), ("--depth", args.depth, 0), ("--limit", args.limit, 2),
                             ("--workers", args.workers, 1), ("--bootstrap", args.bootstrap, 1)):
        if value is not None and value < low:
            raise UserError(f"{name} must be at least {low}, got {value}.")
    if not 0 < args.confidence < 1:
        raise UserError(f"--confidence must be between 0 and 1, got {args.confidence}.")
    try:
        specs = parse_strategies(args.strategies)
    except EvaluationError as exc:
        raise UserError(str(exc)) from None
    run_dir = args.out or DEFAULT_OUT_DIR / f"retrieval-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    cache_dir = run_dir / "indexes" if args.no_cache else (args.cache_dir or DEFAULT_CACHE_DIR)
    with progress_bar("Evaluating retrieval", "photos") as (advance, set_total):
        try:
            result = evaluate_retrieval(
                config, strategies=specs, embedders=args.embedder, k=args.k, depth=args.depth,
                test_fraction=args.test_fraction, seed=args.seed, limit=args.limit, run_dir=run_dir,
                cache_dir=cache_dir, workers=args.workers, plots=not args.no_plots,
                resamples=args.bootstrap, confidence=args.confidence, progress=advance, total=set_total)
        except EvaluationError as exc:
            raise UserError(str(exc)) from None
    if args.json:
        print_json(result)
        return 0
    print_summary(result)
    return 0


def print_summary(result: dict[str, Any]) -> None:
    """The run on stderr: per row and metric, value [interval], chance and lift; then the verdicts."""
    k = result["k"]
    confidence = 100 * result.get("bootstrap", {}).get("confidence", 0.95)
    embedders = list(dict.fromkeys(row["embedder"] for row in result["rows"]))
    title = f"{result['dataset']}: retrieval, k={k}, {confidence:g} % intervals over test vehicles"
    if len(embedders) == 1:
        title += f", {short_model_name(embedders[0])}"
    table = Table(title=title, show_edge=False, box=box.SIMPLE_HEAD)
    columns = ["strategy", *(["embedder"] if len(embedders) > 1 else []), "kind", "queries", "metric",
               "value [CI]", "chance", "lift [CI]"]
    for column in columns:
        left = column in ("strategy", "embedder", "kind", "metric")
        table.add_column(column, justify="left" if left else "right", no_wrap=not left,
                         overflow="ellipsis" if left else "fold", max_width=24 if left else None)
    for row in result["rows"]:
        for i, metric in enumerate(METRICS):
            chance = row.get(f"chance_{metric}")
            head = [row["strategy"], *([short_model_name(row["embedder"])] if len(embedders) > 1 else []),
                    row["kind"], f"{row['queries']}{' (!)' if row['queries'] < MIN_QUERIES else ''}"]
            table.add_row(*cells(*(head if i == 0 else [""] * len(head)), metric_name(metric, k, short=True),
                                 format_interval(row_interval(row, metric)),
                                 "n/a" if chance is None else format_metric(chance),
                                 format_interval(row_interval(row, f"lift_{metric}"), signed=True)),
                          end_section=i == len(METRICS) - 1)
    show_table(table, width=160)
    for warning in result.get("warnings", []):
        flag("warning", "yellow", warning)
    for row in result["rows"]:
        if row.get("against_chance"):
            say(f"vs chance: {row['against_chance']}")
    for line in result.get("verdicts", []):
        say(f"verdict: {line}")
    say(f"best by mAP: {result['best']['strategy']} / {short_model_name(result['best']['embedder'])}")
    say(f"report: {result['files']['markdown']}  ({result['seconds']:.1f}s)")

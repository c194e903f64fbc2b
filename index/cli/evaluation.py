"""``python -m index eval``: retrieval evaluation of region strategies x embedders."""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.table import Table

from index.cli.common import add_config_args, config_from_args
from index.console import cells, console, print_json, progress_bar, say
from index.errors import EvaluationError, UserError
from index.evaluation import (
    DEFAULT_CACHE_DIR,
    DEFAULT_OUT_DIR,
    DEFAULT_STRATEGIES,
    STRATEGY_NAMES_HELP,
    evaluate_retrieval,
    format_metric,
    parse_strategies,
    short_model_name,
)


def register(sub: Any) -> None:
    """Add ``eval`` to the sub-command parsers ``sub``."""
    parser = sub.add_parser("eval", help="Retrieval evaluation: region strategies x embedders on a vehicle-grouped split.")
    add_config_args(parser)
    parser.add_argument("--embedder", action="append", metavar="MODEL",
                        help="Embedder model id or local path; repeat to compare (default: the config's).")
    parser.add_argument("--strategies", default=DEFAULT_STRATEGIES,
                        help=f"Comma list of region strategies: {STRATEGY_NAMES_HELP} (default: %(default)s).")
    parser.add_argument("-k", type=int, default=5, help="Cut-off of precision@k, hit@k and the k-NN vote (default %(default)s).")
    parser.add_argument("--depth", type=int, default=100,
                        help="Ranked-list depth for average precision; 0 ranks the whole index (default %(default)s).")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="Share of images on the test side (default %(default)s).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the split and of --limit's sample.")
    parser.add_argument("--limit", type=int, help="Evaluate on a stratified sample of N images (before splitting).")
    parser.add_argument("--out", type=Path, help=f"Run folder (default {DEFAULT_OUT_DIR}/retrieval-<time>).")
    parser.add_argument("--cache-dir", type=Path,
                        help=f"Cache of the per-row train indexes and query vectors (default {DEFAULT_CACHE_DIR}).")
    parser.add_argument("--no-cache", action="store_true", help="Build the row indexes inside the run folder instead.")
    parser.add_argument("--workers", type=int, help="Decoding threads (default 2).")
    parser.add_argument("--no-plots", action="store_true", help="Skip the PNG plots.")
    parser.add_argument("--json", action="store_true", help="Print the result as one JSON object on stdout.")
    parser.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    """Run the retrieval evaluation from parsed command-line arguments."""
    config = config_from_args(args)
    for name, value, low in (("-k", args.k, 1), ("--depth", args.depth, 0), ("--limit", args.limit, 2),
                             ("--workers", args.workers, 1)):
        if value is not None and value < low:
            raise UserError(f"{name} must be at least {low}, got {value}.")
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
                progress=advance, total=set_total)
        except EvaluationError as exc:
            raise UserError(str(exc)) from None
    if args.json:
        print_json(result)
        return 0
    k = result["k"]
    table = Table(title=f"{result['dataset']}: retrieval, k={k}", show_edge=False)
    for column in ("strategy", "embedder", "queries", "nodes", f"P@{k}", f"hit@{k}", "mAP", "kNN F1", "s"):
        table.add_column(column, justify="left" if column in ("strategy", "embedder") else "right")
    for row in result["rows"]:
        table.add_row(*cells(row["strategy"], short_model_name(row["embedder"]), str(row["queries"]), str(row["index_nodes"]),
                      format_metric(row["precision_at_k"]), format_metric(row["hit_at_k"]), format_metric(row["map"]),
                      format_metric(row["knn_macro_f1"]), f"{row['seconds']:.1f}"))
    console.print(table)
    say(f"best by mAP: {result['best']['strategy']} / {short_model_name(result['best']['embedder'])}")
    say(f"report: {result['files']['markdown']}  ({result['seconds']:.1f}s)")
    return 0

"""``eval`` (the modes scored against the annotations) and ``bench`` (the time around the model)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.cli.endpoint import with_hint
from agent.endpoint_errors import ModelEndpointError
from agent.evaluation.question import DEFAULT_QUESTION
from index.config import DEFAULT_CONFIG, MODES
from index.console import out, phase_progress, print_json, say
from index.errors import UserError

if TYPE_CHECKING:
    from agent.evaluation.run import EvalOptions

__all__ = ["options_from_args", "register"]



def register(sub: Any) -> None:
    """Add ``eval`` and ``bench`` to the sub-command parsers ``sub``."""
    parser = sub.add_parser("eval", help="Score zero-shot / rag / agentic answers against the annotations.",
                            example="python -m agent eval --dataset /path/to/photos --n 100 --modes zero-shot,rag,agentic")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="Domain YAML (default: %(default)s).")
    parser.add_argument("--dataset", type=Path, help="Dataset folder (default: dataset.root of --config).")
    parser.add_argument("--embedder", help="Embedder of the train-side index (default: embedder.model of --config).")
    parser.add_argument("--api-base", help="OpenAI-compatible endpoint of the model (default: model.api_base of "
                                           "--config; the vehicle config reads $VLM_API_BASE, else "
                                           "http://localhost:8000/v1).")
    parser.add_argument("--model", help="Served model name (default: model.model of --config; the vehicle config "
                                        "reads $VLM_MODEL, else Qwen/Qwen3-VL-4B-Instruct).")
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
    parser.add_argument("--cache-dir", type=Path, dest="index_root",
                        help="Folder of the cached train-side indexes index_<key> (default: the run folder "
                             "with --out, else outputs/eval).")
    parser.add_argument("--index-root", type=Path, dest="index_root", help=argparse.SUPPRESS)  # its name before --cache-dir
    parser.add_argument("--rebuild-index", action="store_true", help="Bring the train-side index up to date first.")
    parser.add_argument("--bootstrap", type=int, default=1000, help="Bootstrap resamples (default %(default)s).")
    parser.add_argument("--confidence", type=float, default=0.95, help="Interval confidence (default %(default)s).")
    parser.add_argument("--iou", type=float, default=0.3, help="IoU for a region to count as found (default %(default)s).")
    parser.add_argument("--no-plots", action="store_true", help="Skip the PNG plots.")
    parser.add_argument("--json", action="store_true", help="Print the result as one JSON object on stdout.")
    parser.set_defaults(func=cmd_eval)

    parser = sub.add_parser("bench", help="Per-query time this project adds around the model (fake server).",
                            example="python -m agent bench --queries 10")
    parser.add_argument("--queries", type=int, default=30, help="Queries per mode.")
    parser.add_argument("--regions", type=int, default=10_000, help="Region nodes in the index.")
    parser.add_argument("--workdir", type=Path, help="Keep the synthetic data and index here (default: a temporary folder).")
    parser.add_argument("--json", action="store_true", help="Print the result as one JSON object on stdout.")
    parser.add_argument("--service", action="store_true",
                        help="Benchmark `agent serve` instead: --requests questions at once over HTTP against the "
                             "in-process engine (agent/bench_service.py).")
    parser.add_argument("--requests", type=int, default=50, help="With --service: questions sent at once.")
    parser.set_defaults(func=cmd_bench)


def options_from_args(args: argparse.Namespace) -> EvalOptions:
    """The :class:`EvalOptions` of parsed ``eval`` flags."""
    from agent.evaluation.run import EvalOptions

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
    from agent.evaluation.run import run_evaluation

    options = options_from_args(args)
    try:
        with phase_progress({"index": "indexing train photos", "queries": "asking the model"}) as progress:
            result = run_evaluation(options, progress=progress)
    except ModelEndpointError as exc:
        # run.check_endpoint's error carries no classified answer: know it by its words
        unreachable = exc.answer is None and "cannot be reached" in str(exc)
        raise with_hint(exc, unreachable=unreachable) from None
    if args.json:
        print_json(result)
    else:
        out.print(format_summary(result), highlight=False, markup=False)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the per-query overhead benchmark and print the table (or JSON)."""
    from agent.bench import format_table, run_benchmark

    if args.service:
        from agent.bench_service import format_service_table, run_service_benchmark

        if args.requests < 1:
            raise UserError(f"--requests must be at least 1, got {args.requests}.")
        result = run_service_benchmark(args.requests, workdir=args.workdir, progress=say)
        if args.json:
            print_json(result)
        else:
            out.print(format_service_table(result), highlight=False, markup=False)
        return 0 if result["checks"]["pass"] else 1  # a request unanswered or mixed up
    started = time.perf_counter()
    result = run_benchmark(args.queries, args.regions, args.workdir)
    result["seconds"] = round(time.perf_counter() - started, 1)
    if args.json:
        print_json(result)
    else:
        out.print(format_table(result), highlight=False, markup=False)
    return 0

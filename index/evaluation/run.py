"""One retrieval evaluation run: split, every (strategy, embedder) row, comparisons, outputs.

The dataset is read once (optionally a stratified sample of ``--limit`` images) and split by
vehicle group (:func:`index.dataset.splits.split_by_vehicle`, ``--test-fraction``, ``--seed``):
every shot of one vehicle is on one side, so a near-duplicate of a test photo is never in the
index it is evaluated against. Each row is then built (:mod:`~index.evaluation.split_index`) and
scored (:mod:`~index.evaluation.rows`).

Rows of different kinds have different query sets (regions vs photos vs tiles), so rows are
compared only within a kind (:mod:`~index.evaluation.intervals`): ``strategy_comparisons`` pairs
every two strategies of one embedder and kind, ``comparisons`` every embedder with the first one
within a strategy; both give paired differences on the same bootstrap resamples of the test
vehicles, and a verdict line each (``verdicts``).
"""

from __future__ import annotations

import gc
import logging
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from index.config import DomainConfig
from index.dataset.ingest import read_dataset
from index.dataset.sampling import stratified_sample
from index.dataset.splits import split_by_vehicle
from index.errors import EvaluationError
from index.evaluation.context import Progress, RunContext
from index.evaluation.intervals import RowScores, compare_rows, strategy_comparisons
from index.evaluation.outputs import short_model_name, write_outputs
from index.evaluation.rows import evaluate_row
from index.evaluation.split_index import DEFAULT_CACHE_DIR
from index.evaluation.strategies import DEFAULT_STRATEGIES, StrategySpec, parse_strategies
from index.files import write_json_atomic

logger = logging.getLogger(__name__)

DEFAULT_OUT_DIR = Path("outputs/eval")


def evaluate_retrieval(
    config: DomainConfig,
    *,
    strategies: list[StrategySpec] | str | None = None,
    embedders: list[str] | None = None,
    k: int = 5,
    depth: int = 100,
    test_fraction: float = 0.2,
    seed: int = 0,
    limit: int | None = None,
    run_dir: Path | None = None,
    cache_dir: Path | None = None,
    workers: int | None = None,
    plots: bool = True,
    resamples: int = 2000,
    confidence: float = 0.95,
    progress: Progress | None = None,
    total: Progress | None = None,
) -> dict[str, Any]:
    """Run the retrieval evaluation and write its outputs.

    Args:
        config: The domain configuration.
        strategies: Strategy specs or a comma list of names (default :data:`DEFAULT_STRATEGIES`).
        embedders: Model ids or paths, one row set each (default: the config's embedder).
        k: Cut-off of precision@k, hit@k and the k-NN vote.
        depth: Depth of the ranked list for AP (0: the whole index).
        test_fraction: Share of images (by vehicle group) on the test side.
        seed: Seed of the split and of the ``limit`` sample.
        limit: Evaluate on a stratified sample of this many images (before splitting).
        run_dir: Output folder (default ``outputs/eval/retrieval-<UTC time>``).
        cache_dir: Where row indexes and query vectors are cached, one folder per row named
            by its key (default ``outputs/eval/cache``; pass ``run_dir / "indexes"`` to keep
            them with the run).
        workers: Decoding threads (default: 2).
        plots: Write the PNG plots.
        resamples: Bootstrap resamples of the test vehicles, per interval.
        confidence: Two-sided coverage of the intervals (0.95: 95 % intervals).
        progress: Called with the number of photos just processed.
        total: Called once with the number of photos to process.

    Returns:
        The result (also written to ``retrieval.json``): ``rows`` (one per strategy and
        embedder: ``precision_at_k``, ``hit_at_k``, ``map``, ``knn_macro_f1``, each with
        ``<metric>_ci``, ``chance_<metric>``, ``lift_<metric>``, ``lift_<metric>_ci`` and
        ``<metric>_over_chance``; ``queries``, ``vehicles``, ``warnings``, ``against_chance``,
        ``index_nodes``, ``seconds``, per-label F1 and confusion matrix), ``best``,
        ``comparisons`` (embedders), ``strategy_comparisons``, ``verdicts``, ``warnings``,
        ``bootstrap``, ``split`` and ``files``.

    Raises:
        EvaluationError: If the options are invalid or a side of the split is empty.
        EmbedderError: If an embedder cannot be loaded.
        AdapterError: If the dataset cannot be read.
    """
    from index.embedders import load_embedder

    started = time.perf_counter()
    if k < 1:
        raise EvaluationError("k must be at least 1")
    if resamples < 1 or not 0 < confidence < 1:
        raise EvaluationError("resamples must be at least 1 and confidence between 0 and 1")
    if isinstance(strategies, list) and all(isinstance(s, StrategySpec) for s in strategies) and strategies:
        specs = list(strategies)
    else:
        specs = parse_strategies(strategies or DEFAULT_STRATEGIES)
    models = list(dict.fromkeys(embedders or [config.embedder.model]))
    run_dir = Path(run_dir or DEFAULT_OUT_DIR / f"retrieval-{datetime.now().strftime('%Y%m%d-%H%M%S')}")
    scan = read_dataset(config)
    records = scan.records
    if limit is not None and limit < len(records):
        records = stratified_sample(records, limit, seed=seed)
    try:
        split = split_by_vehicle(records, test_fraction=test_fraction, seed=seed)
    except ValueError as exc:
        raise EvaluationError(str(exc)) from None
    if not split.train or not split.test:
        raise EvaluationError(
            f"the split has {len(split.train)} train and {len(split.test)} test images "
            f"({len({r.vehicle_group for r in records})} vehicle groups); use more images or "
            "another --test-fraction")
    leaks = split.groups("train") & split.groups("test")
    if leaks:  # split_by_vehicle guarantees none; checked because every number depends on it
        raise EvaluationError(f"vehicle groups on both sides of the split: {sorted(leaks)[:5]}")
    if total:
        total(len(models) * len(specs) * (len(split.train) + len(split.test)))
    ctx = RunContext(config=config, split=split, k=k, depth=depth,
                     cache_root=Path(cache_dir or DEFAULT_CACHE_DIR), workers=max(1, workers or 2),
                     progress=progress, resamples=resamples, confidence=confidence, seed=seed)
    rows: list[dict[str, Any]] = []
    scores: dict[tuple[str, str], RowScores] = {}
    for model in models:
        embedder_config = config.embedder
        if model != config.embedder.model:
            embedder_config = config.embedder.model_copy(update={"model": model, "family": "auto"})
        embedder = load_embedder(embedder_config)
        for spec in specs:
            row, row_scores = evaluate_row(ctx, spec, embedder, embedder_config, model)
            rows.append(row)
            scores[(spec.name, model)] = row_scores
        del embedder
        gc.collect()
    # Image/tile relevance (any shared label on a whole photo) is easier than region relevance,
    # so the best row is chosen among region rows when there are any.
    pool = [r for r in rows if r["kind"] == "region"] or rows
    best = max(pool, key=lambda r: (r["map"], r["hit_at_k"], r["knn_macro_f1"]))
    boot = {"n_resamples": resamples, "confidence": confidence, "seed": seed}
    by_strategy = strategy_comparisons([scores[(s.name, m)] for m in models for s in specs], **boot)
    comparisons = _comparisons(specs, models, scores, boot)
    for line in [c["verdict"] for c in by_strategy + comparisons]:
        logger.info("%s", line)
    result = {
        "dataset": config.name,
        "k": k,
        "depth": depth,
        "test_fraction": test_fraction,
        "seed": seed,
        "limit": limit,
        "strategies": [s.name for s in specs],
        "embedders": models,
        "split": split.summary(),
        "read_skipped": len(scan.skipped),
        "rows": rows,
        "best": {"strategy": best["strategy"], "embedder": best["embedder"],
                 "by": "map among region rows" if pool is not rows else "map"},
        "bootstrap": {"unit": "test vehicle", "resamples": resamples, "confidence": confidence, "seed": seed,
                      "paired": True},
        "comparisons": comparisons,
        "strategy_comparisons": by_strategy,
        "verdicts": [c["verdict"] for c in by_strategy] + [c["verdict"] for c in comparisons],
        "warnings": [w for r in rows for w in r["warnings"]],
        "run_dir": str(run_dir),
        "cache_dir": str(ctx.cache_root),
        "seconds": 0.0,
    }
    result["files"] = write_outputs(result, run_dir, ctx.queries_out, plots=plots)
    result["seconds"] = round(time.perf_counter() - started, 2)
    write_json_atomic(run_dir / "retrieval.json", result)
    return result


def _comparisons(specs: list[StrategySpec], models: list[str], scores: dict[tuple[str, str], RowScores],
                 boot: dict[str, Any]) -> list[dict[str, Any]]:
    """Each embedder minus the first one, per strategy: paired by query and vehicle.

    ``difference`` and ``ci95`` are the mAP difference (the first key this list had); every
    metric is in ``metrics``.
    """
    out = []
    for spec in specs:
        base = scores[(spec.name, models[0])]
        for model in models[1:]:
            other = scores[(spec.name, model)]
            if not base.queries or not other.queries:
                continue
            pair = compare_rows(other, base, name_a=f"{spec.name} / {short_model_name(model)}",
                                name_b=short_model_name(models[0]), **boot)
            ap = pair["metrics"]["map"]
            out.append({"strategy": spec.name, "kind": spec.kind, "metric": "map", "embedder": model,
                        "baseline": models[0], "difference": ap["diff"], "ci95": [ap["ci_low"], ap["ci_high"]],
                        "queries": other.queries, **pair})
    return out

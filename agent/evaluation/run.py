"""``python -m agent eval``: what retrieval buys, measured on the user's own annotations.

The proof of concept the user asked for: the same question about the same test photos, asked
in each mode (``zero-shot``: photo and question only; ``rag``: top-k similar labelled examples
first; ``agentic``: the model picks its retrieval tools), each answer scored against the
annotations, and the differences between modes given with paired bootstrap intervals so that
100 photos are not over-read.

How one run goes:

1. Read the dataset and split it by vehicle (:func:`index.dataset.splits.split_by_vehicle`): no
   vehicle has photos on both sides. Draw ``n`` test photos with
   :func:`index.dataset.sampling.stratified_sample` (every label present).
2. Build the index of the TRAIN side only (or reuse it: ``index_<key>``, the key covering
   dataset, annotations, strategy, embedder and split; see :mod:`agent.evaluation.train_index`).
3. Ask every (photo, mode) through :meth:`DamageQueryEngine.aquery` concurrently, at most
   ``concurrency`` at a time, always excluding the query's own photo and vehicle from
   retrieval. Each answer is stored as JSON under ``RUN_DIR/responses/`` the moment it
   arrives; a rerun reuses stored answers (``--no-cache`` asks again).
4. Score (:mod:`agent.evaluation.scoring`) and write ``agent_eval.json``, ``agent_eval.md`` and
   PNG plots (:mod:`agent.evaluation.outputs`).

A request the server refuses or fails (a 4xx, 5xx after retries, a timeout, a malformed reply)
makes that answer invalid, with the server's words as its error, and is not stored, so a rerun
asks again; a problem every request would meet (unreachable endpoint, refused API key, unknown
model) stops the run with :class:`~agent.llm.ModelEndpointError` (answers already stored are kept).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from agent.endpoint_errors import ENDPOINT_WIDE, ModelEndpointError
from agent.evaluation.answers import (
    load_cached,
    photo_frame,
    photo_input,
    response_key,
    setup_key,
    slug,
    store,
)
from agent.evaluation.question import DEFAULT_QUESTION
from agent.evaluation.scoring import GroundTruth, compare_modes, prediction_from_report, score_mode
from agent.report import DamageReport
from index.config import DEFAULT_CONFIG, MODES, DomainConfig, apply_overrides, load_config
from index.errors import EvaluationError

logger = logging.getLogger(__name__)

EVAL_ROOT = Path("outputs/eval")

#: ``progress(phase, done, total)``: phase is "index" or "queries".
Progress = Callable[[str, int, int], None]




@dataclass
class EvalOptions:
    """Everything one evaluation run takes (the CLI flags, as a library call)."""

    config: str | Path | DomainConfig = DEFAULT_CONFIG
    dataset: Path | None = None
    embedder: str | None = None
    api_base: str | None = None
    model: str | None = None
    n: int = 100
    modes: tuple[str, ...] = MODES
    question: str | None = None  # default: DEFAULT_QUESTION with the config's subject
    test_fraction: float = 0.2
    seed: int = 0
    concurrency: int = 4
    use_cache: bool = True
    out: Path | None = None
    index_root: Path | None = None
    rebuild_index: bool = False
    resamples: int = 1000
    confidence: float = 0.95
    iou_threshold: float = 0.3
    plots: bool = True


@dataclass
class _Query:
    """One (photo, mode) to ask, with where its answer is stored."""

    mode: str
    record: Any
    truth: GroundTruth
    key: str
    path: Path
    report: DamageReport | None = None
    cached: bool = False
    rejected: str | None = None


# --------------------------------------------------------------------------------------------
# the run


def check_endpoint(api_base: str, timeout_s: float) -> None:
    """Fail fast, before any index is built, when nothing listens at ``api_base``.

    Any HTTP answer (even 401 or 404) counts as reachable; the queries report the rest.

    Raises:
        ModelEndpointError: When the connection itself fails.
    """
    import httpx

    try:
        httpx.get(api_base.rstrip("/") + "/models", timeout=min(timeout_s, 10.0))
    except httpx.TransportError as exc:
        raise ModelEndpointError(f"The model endpoint {api_base} cannot be reached ({exc}).") from None


async def _ask_all(engine: Any, queries: list[_Query], question: str, concurrency: int, model: str,
                   progress: Progress | None) -> None:
    """Ask every query, at most ``concurrency`` in flight; store each answer as it arrives."""
    semaphore = asyncio.Semaphore(max(1, concurrency))
    done = 0

    async def one(query: _Query) -> None:
        nonlocal done
        from index.imaging.decode import ImageReadError

        async with semaphore:
            record = query.record
            try:
                source, _ = photo_input(record)
                query.report = await engine.aquery(
                    source, question, mode=query.mode, exclude_images=[record.image_id],
                    exclude_groups=[record.vehicle_group] if record.vehicle_group else [])
                store(query.path, query.key, query.report, image_id=record.image_id, model=model)
            except ModelEndpointError as exc:
                if exc.problem in ENDPOINT_WIDE or exc.problem is None:
                    raise  # every photo would fail the same way: stop, keeping the answers stored
                query.rejected = str(exc)
            except ImageReadError as exc:
                query.rejected = f"photo unreadable: {exc}"
            if query.rejected:
                logger.warning("%s %s: %s (counted as invalid)", query.mode, record.image_id, query.rejected)
                query.report = DamageReport(damage_detected=None, valid=False, error=query.rejected, mode=query.mode,
                                            model=model, trace_id="", question=question)
            else:
                logger.info("%s %s: %s", query.mode, record.image_id, "valid" if query.report.valid else "invalid")
        done += 1
        if progress:
            progress("queries", done, len(queries))

    tasks = [asyncio.create_task(one(q)) for q in queries]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _load_config(config: DomainConfig, options: EvalOptions, run_dir: Path) -> DomainConfig:
    return apply_overrides(config, {
        "dataset.root": options.dataset, "embedder.model": options.embedder, "model.api_base": options.api_base,
        "model.model": options.model, "agent.traces_dir": str(run_dir / "traces"),
    })


def _check(options: EvalOptions) -> None:
    unknown = [m for m in options.modes if m not in MODES]
    if unknown or not options.modes:
        raise EvaluationError(f"Unknown mode(s) {', '.join(unknown) or '(none given)'}; use {', '.join(MODES)}.")
    if len(set(options.modes)) != len(options.modes):
        raise EvaluationError("A mode is listed twice in --modes.")
    if options.n < 1 or options.concurrency < 1 or options.resamples < 1:
        raise EvaluationError("--n, --concurrency and --bootstrap must be at least 1.")
    if not 0 < options.test_fraction < 1 or not 0 < options.confidence < 1:
        raise EvaluationError("--test-fraction and --confidence must be between 0 and 1.")


def default_run_dir(config: DomainConfig, options: EvalOptions) -> Path:
    """``outputs/eval/<config>-<model>-n<N>-seed<S>``: stable, so a rerun finds its stored answers."""
    model = slug(config.model.model.rstrip("/").rsplit("/", 1)[-1])
    return EVAL_ROOT / f"{config.name}-{model}-n{options.n}-seed{options.seed}"


def run_evaluation(options: EvalOptions, *, embedder: Any = None, progress: Progress | None = None) -> dict[str, Any]:
    """Run the evaluation and write its outputs; returns what ``agent_eval.json`` holds.

    Args:
        options: What to evaluate and how.
        embedder: An already loaded embedder for the train-side index (default: load the
            configured one, only if the index must be built).
        progress: Called as work advances, for a progress bar.

    Raises:
        EvaluationError: If the run cannot be done as asked.
        ModelEndpointError: If the model endpoint cannot be reached.
        ConfigError, AdapterError, EmbedderError: From the config, dataset and embedder.
    """
    from agent.evaluation.outputs import write_outputs
    from agent.evaluation.train_index import ensure_train_index, index_key
    from index.dataset.ingest import read_dataset
    from index.dataset.sampling import stratified_sample
    from index.dataset.splits import split_by_vehicle

    started = time.perf_counter()
    _check(options)
    base = options.config if isinstance(options.config, DomainConfig) else load_config(options.config)
    base = apply_overrides(base, {"model.model": options.model})
    run_dir = Path(options.out) if options.out else default_run_dir(base, options)
    config = _load_config(base, options, run_dir)
    if not options.question:
        options = replace(options, question=DEFAULT_QUESTION.format(subject=config.subject))
    scan = read_dataset(config)
    if not scan.records:
        raise EvaluationError(f"No usable annotated photos in {config.dataset.root}.")
    split = split_by_vehicle(scan.records, options.test_fraction, options.seed)
    retrieval = [m for m in options.modes if m != "zero-shot"]
    if not split.test:
        raise EvaluationError(f"The split left no test photos (test fraction {options.test_fraction}); raise --test-fraction.")
    if retrieval and not split.train:
        raise EvaluationError("The split left no train photos to retrieve from; lower --test-fraction.")
    sample = stratified_sample(split.test, options.n, seed=options.seed)
    if len(sample) < options.n:
        logger.warning("only %d test photos on the test side; evaluating all of them", len(sample))
    key = index_key(config, split.train, test_fraction=options.test_fraction, seed=options.seed)
    index_dir = Path(options.index_root or (run_dir if options.out else EVAL_ROOT)) / f"index_{key}"
    setup = setup_key(config)
    model = config.model.model
    truths = {r.image_id: GroundTruth.from_record(r, photo_frame(r)) for r in sample}
    queries = []
    for record in sample:
        for mode in options.modes:
            qkey = response_key(mode, record.image_id, options.question, model, "-" if mode == "zero-shot" else key, setup)
            path = run_dir / "responses" / mode / f"{slug(record.image_id)}-{qkey[:12]}.json"
            query = _Query(mode, record, truths[record.image_id], qkey, path)
            if options.use_cache:
                query.report = load_cached(path, qkey)
                query.cached = query.report is not None
            queries.append(query)
    pending = [q for q in queries if not q.cached]
    logger.info("%d answers stored, %d to ask", len(queries) - len(pending), len(pending))
    index_info: dict[str, Any] = {"dir": str(index_dir), "key": key, "built": False}
    engine = None
    if pending:
        check_endpoint(config.model.api_base, config.model.timeout_s)
        from agent.engine import DamageQueryEngine

        if any(q.mode != "zero-shot" for q in pending):
            from agent.evaluation.train_index import index_ready

            if embedder is None and (options.rebuild_index or not index_ready(index_dir)):
                from index.embedders import load_embedder

                embedder = load_embedder(config.embedder)
            counts = {"done": 0, "total": 0}

            def indexed(n: int) -> None:
                counts["done"] += n
                if progress:
                    progress("index", counts["done"], counts["total"])

            index_info.update(ensure_train_index(
                config, split.train, index_dir, embedder=embedder, rebuild=options.rebuild_index,
                progress=indexed, total=lambda t: counts.update(total=t)))
        engine = DamageQueryEngine(config, index_dir=index_dir, embedder=embedder)
        if any(q.mode != "zero-shot" for q in pending):
            _ = engine.index  # open it (and load the embedder) once, before the concurrent queries
        asyncio.run(_ask_all(engine, pending, options.question, options.concurrency, model, progress))
    result = _score(options, config, sample, truths, queries, split, index_info, run_dir, model)
    result["seconds"] = round(time.perf_counter() - started, 2)
    write_outputs(result, run_dir, plots=options.plots)
    return result


def _score(options: EvalOptions, config: DomainConfig, sample: list[Any], truths: dict[str, GroundTruth],
           queries: list[_Query], split: Any, index_info: dict[str, Any], run_dir: Path, model: str) -> dict[str, Any]:
    labels = config.taxonomy.label_keys()
    by = {(q.mode, q.record.image_id): q for q in queries}
    ordered = [truths[r.image_id] for r in sample]
    predictions = {m: [prediction_from_report(by[(m, t.image_id)].report, t) for t in ordered] for m in options.modes}
    rows = []
    for mode in options.modes:
        row = score_mode(mode, ordered, predictions[mode], labels, iou_threshold=options.iou_threshold)
        mine = [q for q in queries if q.mode == mode]
        row.update(cached=sum(q.cached for q in mine), asked=sum(not q.cached for q in mine),
                   rejected=sum(bool(q.rejected) for q in mine))
        rows.append(row)
    differences = compare_modes(ordered, predictions, labels, resamples=options.resamples,
                                confidence=options.confidence, seed=options.seed)
    photos = []
    for i, truth in enumerate(ordered):
        entry = truth.to_dict()
        for mode in options.modes:
            q, pred = by[(mode, truth.image_id)], predictions[mode][i]
            entry[mode] = {"valid": pred.valid, "detected": pred.detected, "labels": sorted(pred.labels),
                           "boxes": [{"label": k, "box": [round(v, 1) for v in b]} for k, b in pred.boxes],
                           "error": pred.error, "trace_id": q.report.trace_id if q.report else None,
                           "cached": q.cached, "response": str(q.path) if not q.rejected else None}
        photos.append(entry)
    summary = split.summary()
    return _rounded({
        "kind": "agent_eval", "config": config.name, "dataset": str(config.dataset.root), "model": model,
        "api_base": config.model.api_base, "question": options.question, "modes": list(options.modes),
        "labels": labels, "n_requested": options.n, "n": len(sample), "seed": options.seed,
        "test_fraction": options.test_fraction, "iou_threshold": options.iou_threshold,
        "bootstrap": {"resamples": options.resamples, "confidence": options.confidence, "paired": True},
        "split": {k: summary[k] for k in ("train_images", "test_images", "train_groups", "test_groups", "shared_groups")},
        "index": {**index_info, "embedder": config.embedder.model, "kinds": list(config.regions.kinds)},
        "rows": rows, "differences": differences, "verdicts": [d["verdict"] for d in differences],
        "requests": {"asked": sum(not q.cached for q in queries), "cached": sum(q.cached for q in queries),
                     "rejected": sum(bool(q.rejected) for q in queries)},
        "run_dir": str(run_dir), "photos": photos,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    })


def _rounded(value: Any, digits: int = 4) -> Any:
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: _rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v, digits) for v in value]
    return value

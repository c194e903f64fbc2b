"""Retrieval evaluation: which region strategy and which embedder retrieve the right examples?

``python -m index eval`` answers it with numbers, without any model server:

1. **Split.** The dataset is read once (optionally a stratified sample of ``--limit`` images)
   and split by vehicle group (:func:`index.dataset.splits.split_by_vehicle`, ``--test-fraction``,
   ``--seed``): every shot of one vehicle is on one side, so a near-duplicate of a test photo
   is never in the index it is evaluated against.
2. **Index per row.** For every (strategy, embedder) row, an exact (flat) FAISS index is built
   from the crops planned on the **train** images only, with that row's region strategy, and
   kept in a cache directory keyed by (strategy, embedder fingerprint, split content), so a
   rerun reuses it (``--cache-dir``, ``--no-cache``). Only the node kind being evaluated is
   indexed (``region``, ``image`` or ``tile``).
3. **Queries.** The same strategy plans crops on the **test** images; each test photo is
   decoded once for all its query crops (:func:`index.regions.cut.render_photo`) and the crops are
   embedded in batches. Every *labelled* crop of the row's kind is one query, searched in the
   train index restricted to that kind, with the query's own image and vehicle group excluded
   (already guaranteed by the split; passed anyway).

Query kinds and relevance
-------------------------
* **region** strategies (``default``, ``margin=X``, ``no-merge``, ``min-side=X``): the query is a
  test region crop (one defect, or several merged marks of one label) and the index holds train
  region crops. A region node carries exactly one label.
* **image**: the query is the whole test photo, the index holds whole train photos.
* **tile** (``tile`` or ``tile=RxC``): the queries are the test photo's grid tiles that hold an
  annotation (a tile holds the annotations whose box centre falls in it), the index holds
  every train tile, labelled or not.

A retrieved node is **relevant** to a query when their label sets **overlap** (share at least one
label). For region queries against region nodes this is simply "same label". Crops with no label
(undamaged photos or tiles) are not used as queries (counted as ``unlabelled_skipped``);
unlabelled index nodes are never relevant.

Metrics (per query, then averaged over the row's queries; see :mod:`index.evaluation.metrics`)
-------------------------------------------------------------------------------------
* ``precision_at_k``: relevant share of the top ``k`` (``-k``, default 5).
* ``hit_at_k``: 1 if any of the top ``k`` is relevant.
* ``map``: mean over queries of AP@D, the average precision of the ranked list cut at depth
  ``D`` (``--depth``, default 100; 0 ranks the whole index), normalised by ``min(R, D)`` where
  ``R`` is the number of relevant nodes in the index. A label absent from the train side gives
  AP 0.
* ``knn_macro_f1``: a k-nearest-neighbour classifier: each of the top ``k`` votes for each of
  its labels with its cosine similarity (unlabelled tiles vote ``none``); the label with the
  largest total wins (:func:`index.evaluation.metrics.weighted_vote`). For a multi-label query (image,
  tile) the prediction is right when it names any of the query's labels; the truth used in
  the confusion matrix is then the predicted label, otherwise the query's dominant label
  (largest annotated area). Per-label precision / recall / F1 are over the labels present in
  the test truth; macro F1 is their unweighted mean.

Rows of different kinds have different query sets (regions vs photos vs tiles): compare region
strategies with each other, and embedders within one strategy (their query sets are identical,
so ``comparisons`` gives a paired bootstrap interval of their mAP difference).

Outputs (``--out RUN_DIR``, default ``outputs/eval/retrieval-<time>``): ``retrieval.json`` (what
``--json`` prints), ``retrieval.md`` (the table, per-label F1 and confusion matrix of the best
row by mAP, among the region rows when there are any), ``retrieval_queries.jsonl`` (one line per query, for error analysis),
``metrics.png`` and ``confusion.png``.
"""

from __future__ import annotations

import gc
import json
import logging
import re
import shutil
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from index.config import DomainConfig, RegionStrategy
from index.dataset.ingest import read_dataset
from index.dataset.records import ImageRecord, Issue, issue_list
from index.dataset.sampling import stratified_sample
from index.dataset.splits import Split, split_by_vehicle
from index.errors import EvaluationError
from index.evaluation import metrics
from index.files import digest, write_json_atomic
from index.index_dir import MANIFEST, node_counts, write_manifest
from index.regions.cut import pixel_signature, render_photo
from index.regions.plan import RegionCrop, plan_crops

logger = logging.getLogger(__name__)

#: The strategies compared when ``--strategies`` is not given.
DEFAULT_STRATEGIES = "default,margin=0.25,margin=1.0,no-merge,image,tile"
DEFAULT_CACHE_DIR = Path("outputs/eval/cache")
DEFAULT_OUT_DIR = Path("outputs/eval")
CACHE_VERSION = 1
_CACHE_DONE = "eval_cache.json"
_QUERIES = "queries.npz"

Progress = Callable[[int], None]




# --------------------------------------------------------------------------------------------
# strategies


@dataclass(frozen=True)
class StrategySpec:
    """One named region strategy: overrides of the config's ``regions`` and the node kind.

    Attributes:
        name: As given on the command line, e.g. ``margin=0.25`` or ``margin=1.0+no-merge``.
        kind: The node kind indexed and queried: ``region``, ``image`` or ``tile``.
        overrides: ``RegionStrategy`` fields changed from the config, as (field, value) pairs.
    """

    name: str
    kind: str = "region"
    overrides: tuple[tuple[str, Any], ...] = ()

    def settings(self, base: RegionStrategy) -> str:
        """The strategy's effective knobs in words, e.g. ``margin 0.5, min side 0.06, merge 0.02``."""
        r = self.regions(base)
        if self.kind == "image":
            return f"whole photo, longer side {r.image_max_side}px"
        if self.kind == "tile":
            return f"tiles {r.tile_grid[0]}x{r.tile_grid[1]}, {r.crop_size}px"
        merge = f"merge {r.merge_distance:g}" if r.merge_distance > 0 else "no merge"
        return f"margin {r.context_margin:g}, min side {r.min_side:g}, {merge}, {r.crop_size}px"

    def regions(self, base: RegionStrategy) -> RegionStrategy:
        """The config's region strategy with this row's overrides, producing only ``kind``."""
        data = base.model_dump()
        data.update(dict(self.overrides))
        data["kinds"] = [self.kind]
        return RegionStrategy.model_validate(data)


STRATEGY_NAMES_HELP = ("default | margin=X (context margin) | min-side=X | no-merge | image | tile | "
                       "tile=RxC, combined with '+' (e.g. margin=1.0+no-merge)")


def parse_strategy(text: str) -> StrategySpec:
    """Parse one strategy name (see the module docstring for the named set).

    Raises:
        EvaluationError: If a part names no strategy or its value does not validate.
    """
    name = text.strip()
    if not name:
        raise EvaluationError(f"empty strategy name; known: {STRATEGY_NAMES_HELP}")
    kind, overrides = "region", {}
    for part in name.split("+"):
        key, _, value = part.strip().partition("=")
        try:
            if key == "default" and not value:
                continue
            if key == "no-merge" and not value:
                overrides["merge_distance"] = 0.0
            elif key == "margin" and value:
                overrides["context_margin"] = float(value)
            elif key == "min-side" and value:
                overrides["min_side"] = float(value)
            elif key == "image" and not value:
                kind = "image"
            elif key == "tile":
                kind = "tile"
                if value:
                    rows, cols = (int(v) for v in value.lower().split("x"))
                    overrides["tile_grid"] = (rows, cols)
            else:
                raise EvaluationError(f"unknown strategy '{part}' in '{name}'; known: {STRATEGY_NAMES_HELP}")
        except ValueError as exc:
            if isinstance(exc, EvaluationError):
                raise
            raise EvaluationError(f"strategy '{part}': bad value '{value}'") from None
    spec = StrategySpec(name=name, kind=kind, overrides=tuple(sorted(overrides.items())))
    try:
        spec.regions(RegionStrategy())
    except ValueError as exc:
        first = exc.errors()[0]["msg"] if hasattr(exc, "errors") else str(exc)
        raise EvaluationError(f"strategy '{name}': {first}") from None
    return spec


def parse_strategies(text: str | Iterable[str]) -> list[StrategySpec]:
    """Parse a comma list (or several) of strategy names, dropping duplicates."""
    parts = text.split(",") if isinstance(text, str) else [p for t in text for p in t.split(",")]
    specs = [parse_strategy(p) for p in parts if p.strip()]
    if not specs:
        raise EvaluationError(f"no strategy given; known: {STRATEGY_NAMES_HELP}")
    return list({s.name: s for s in specs}.values())


# --------------------------------------------------------------------------------------------
# rendering and embedding


def _rendered(plan: list[tuple[ImageRecord, list[RegionCrop]]], workers: int) -> Iterator[tuple[ImageRecord, Any]]:
    """Decode each photo once (in threads, at most ``2 × workers`` in flight), in plan order."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="eval-decode") as pool:
        window: deque[tuple[ImageRecord, Any]] = deque()
        queue = iter(plan)
        try:
            while True:
                while len(window) < 2 * workers:
                    nxt = next(queue, None)
                    if nxt is None:
                        break
                    record, crops = nxt
                    future = pool.submit(render_photo, record, crops, "eval") if crops else None
                    window.append((record, future))
                if not window:
                    break
                record, future = window.popleft()
                yield record, (future.result() if future is not None else [])
        finally:
            for _, future in window:
                if future is not None:
                    future.cancel()


def embed_plan(
    plan: list[tuple[ImageRecord, list[RegionCrop]]],
    embedder: Any,
    *,
    batch_size: int = 16,
    workers: int = 2,
    progress: Progress | None = None,
) -> tuple[list[RegionCrop], np.ndarray, list[Issue]]:
    """Render and embed every planned crop: each photo decoded once, crops embedded in batches.

    Args:
        plan: ``(record, crops)`` per photo.
        embedder: A loaded embedder (``embed_images`` returns unit float32 rows).
        batch_size: Crops per forward pass.
        workers: Decoding threads.
        progress: Called with 1 after each photo.

    Returns:
        The crops that were embedded, their vectors (one row each) and the photos that could
        not be decoded.
    """
    crops: list[RegionCrop] = []
    chunks: list[np.ndarray] = []
    issues: list[Issue] = []
    pending: list[Any] = []

    def flush() -> None:
        if pending:
            chunks.append(np.asarray(embedder.embed_images([r.image for r in pending]), dtype=np.float32))
            crops.extend(r.crop for r in pending)
            for rendered in pending:
                rendered.image.close()
            pending.clear()

    for _record, result in _rendered(plan, workers):
        if isinstance(result, Issue):
            issues.append(result)
        else:
            pending.extend(result)
            if len(pending) >= batch_size:
                flush()
        if progress:
            progress(1)
    flush()
    dim = chunks[0].shape[1] if chunks else 0
    vectors = np.concatenate(chunks) if chunks else np.zeros((0, dim), dtype=np.float32)
    return crops, vectors, issues


# --------------------------------------------------------------------------------------------
# the train index of one row


def build_split_index(
    config: DomainConfig,
    crops: list[RegionCrop],
    vectors: np.ndarray,
    index_dir: Path,
    *,
    embedder_info: Any,
    embedder_config: Any,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write an exact index of already embedded crops that :meth:`DamageIndex.open` reads.

    Args:
        config: The domain configuration of the row (its ``regions`` is the row's strategy).
        crops: The embedded train crops.
        vectors: Their vectors, one row per crop.
        index_dir: Where to write ``faiss.index``, ``metadata.json`` and ``manifest.json``.
        embedder_info: The embedder's :class:`~index.embedders.EmbedderInfo`.
        embedder_config: The embedder's configuration (recorded in the manifest).
        extra: More manifest fields (the evaluation records its strategy and cache key).
    """
    from index.vector_store.store import FaissNodeStore, VectorIndexConfig

    started = time.perf_counter()
    store_config = VectorIndexConfig(dir=str(index_dir), type="flat")
    store = FaissNodeStore(config=store_config)
    for start in range(0, len(crops), 1024):
        nodes = []
        for crop, vector in zip(crops[start:start + 1024], vectors[start:start + 1024], strict=True):
            node = crop.to_image_node(config.name)
            node.embedding = vector.tolist()
            nodes.append(node)
        store.add(nodes)
    index_dir.mkdir(parents=True, exist_ok=True)
    store.persist(index_dir)
    snapshot = config.model_copy(update={"embedder": embedder_config, "index": store_config})
    write_manifest(index_dir, snapshot, embedder_info, counts=node_counts(crops), images={}, complete=True,
                   build_seconds=time.perf_counter() - started, extra=extra)


# --------------------------------------------------------------------------------------------
# one row


@dataclass
class _Context:
    """What every row of one run shares."""

    config: DomainConfig
    split: Split
    k: int
    depth: int
    cache_root: Path
    workers: int
    progress: Progress | None
    signatures: dict[str, str] = field(default_factory=dict)
    queries_out: list[dict[str, Any]] = field(default_factory=list)

    def signature(self, record: ImageRecord) -> str:
        if record.image_id not in self.signatures:
            try:
                self.signatures[record.image_id] = pixel_signature(record)
            except OSError:
                self.signatures[record.image_id] = "unreadable"
        return self.signatures[record.image_id]

    def advance(self, n: int) -> None:
        if self.progress and n:
            self.progress(n)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", Path(text).name or text)[:40]


def _cache_key(ctx: _Context, spec: StrategySpec, strategy: RegionStrategy, fingerprint: str,
               train: list[tuple[ImageRecord, list[RegionCrop]]],
               test: list[tuple[ImageRecord, list[RegionCrop]]]) -> str:
    sides = {side: [[record.image_id, record.vehicle_group, ctx.signature(record),
                     [[crop.node_id, crop.label_keys] for crop in crops]] for record, crops in plan]
             for side, plan in (("train", train), ("test", test))}
    return digest({
        "version": CACHE_VERSION, "dataset": ctx.config.name, "kind": spec.kind,
        "strategy": strategy.model_dump(mode="json"), "embedder": fingerprint, "sides": sides,
    })


def _dominant(crop: RegionCrop) -> str:
    area: Counter[str] = Counter()
    for region in crop.regions:
        area[region.label_key] += region.area
    return max(area, key=lambda label: (area[label], -crop.label_keys.index(label)))


def _prepare(ctx: _Context, spec: StrategySpec, embedder: Any, embedder_config: Any, label: str
             ) -> tuple[Path, list[str], np.ndarray, dict[str, RegionCrop], bool, int, list[Issue]]:
    """Build (or reuse) the row's train index and query vectors."""
    config = ctx.config
    strategy = spec.regions(config.regions)
    train = [(r, plan_crops(r, strategy, config.name)) for r in ctx.split.train]
    planned_test = [(r, plan_crops(r, strategy, config.name)) for r in ctx.split.test]
    unlabelled = sum(1 for _, crops in planned_test for c in crops if not c.label_keys)
    test = [(r, [c for c in crops if c.label_keys]) for r, crops in planned_test]
    by_id = {c.node_id: c for _, crops in test for c in crops}
    key = _cache_key(ctx, spec, strategy, embedder.info.fingerprint, train, test)
    row_dir = ctx.cache_root / f"{_slug(spec.name)}__{_slug(label)}__{key[:12]}"
    done = row_dir / _CACHE_DONE
    try:
        stored = json.loads(done.read_text(encoding="utf-8"))
        if stored.get("key") == key:
            with np.load(row_dir / _QUERIES) as data:
                ids, vectors = [str(i) for i in data["ids"]], data["vectors"]
            if all(i in by_id for i in ids):
                ctx.advance(len(train) + len(test))
                logger.info("%s / %s: reusing %s", spec.name, label, row_dir)
                return row_dir / "index", ids, vectors, by_id, True, unlabelled, [
                    Issue(**i) for i in stored.get("issues", [])]
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no usable cache: rebuild the row
    shutil.rmtree(row_dir, ignore_errors=True)
    batch = max(1, int(getattr(embedder_config, "batch_size", 16)))
    train_crops, train_vectors, issues = embed_plan(train, embedder, batch_size=batch,
                                                    workers=ctx.workers, progress=ctx.progress)
    row_config = config.model_copy(update={"regions": strategy})
    if train_crops:
        build_split_index(row_config, train_crops, train_vectors, row_dir / "index",
                          embedder_info=embedder.info, embedder_config=embedder_config,
                          extra={"eval": {"strategy": spec.name, "key": key}})
    query_crops, vectors, test_issues = embed_plan(test, embedder, batch_size=batch,
                                                   workers=ctx.workers, progress=ctx.progress)
    issues += test_issues
    ids = [c.node_id for c in query_crops]
    row_dir.mkdir(parents=True, exist_ok=True)
    np.savez(row_dir / _QUERIES, ids=np.asarray(ids, dtype=str), vectors=vectors)
    write_json_atomic(done, {"key": key, "strategy": spec.name, "embedder": label,
                      "train_nodes": len(train_crops), "issues": issue_list(issues)})
    return row_dir / "index", ids, vectors, by_id, False, unlabelled, issues


def _evaluate_row(ctx: _Context, spec: StrategySpec, embedder: Any, embedder_config: Any,
                  label: str) -> tuple[dict[str, Any], dict[str, float]]:
    """Metrics of one (strategy, embedder) row, and its per-query AP keyed by query id."""
    from index.search import DamageIndex

    started = time.perf_counter()
    index_dir, ids, vectors, by_id, cached, unlabelled, issues = _prepare(ctx, spec, embedder, embedder_config, label)
    index = DamageIndex.open(index_dir, embedder=embedder) if (index_dir / MANIFEST).is_file() else None
    node_labels: list[frozenset[str]] = []
    if index is not None:
        node_labels = [frozenset(n.metadata.get("labels") or []) for n in index.store.get_nodes(index.store.node_ids())]
    depth = len(node_labels) if ctx.depth <= 0 else max(ctx.depth, ctx.k)
    relevant_counts: dict[frozenset[str], int] = {}
    p_at_k, hits_at_k, aps, y_true, y_pred = [], [], [], [], []
    per_query_ap: dict[str, float] = {}
    for node_id, vector in zip(ids, vectors, strict=True):
        crop = by_id[node_id]
        record = crop.record
        wanted = frozenset(crop.label_keys)
        hits = []
        if index is not None:
            hits = index.search(vector=vector, k=depth, kind=spec.kind, exclude_images=[record.image_id],
                                exclude_groups=[record.vehicle_group] if record.vehicle_group else None)
        ranking = [bool(wanted & set(h.labels)) for h in hits]
        if wanted not in relevant_counts:
            relevant_counts[wanted] = sum(1 for labels in node_labels if labels & wanted)
        n_relevant = min(relevant_counts[wanted], depth)
        ap = metrics.average_precision(ranking, max(n_relevant, sum(ranking)))
        predicted = metrics.weighted_vote([(h.labels, h.similarity) for h in hits[:ctx.k]])
        truth = predicted if predicted in wanted else _dominant(crop)
        p_at_k.append(metrics.precision_at_k(ranking, ctx.k))
        hits_at_k.append(metrics.hit_at_k(ranking, ctx.k))
        aps.append(ap)
        y_true.append(truth)
        y_pred.append(predicted)
        per_query_ap[node_id] = ap
        ctx.queries_out.append({
            "strategy": spec.name, "embedder": label, "query": node_id, "kind": crop.kind,
            "image_id": record.image_id, "labels": sorted(wanted), "predicted": predicted,
            "correct": predicted in wanted, "ap": round(ap, 4), "precision_at_k": p_at_k[-1],
            "top": [{"id": h.id, "labels": h.labels, "similarity": h.similarity,
                     "image_id": h.metadata.get("image_id")} for h in hits[:ctx.k]],
        })
    order = ctx.config.taxonomy.label_keys()
    present = [key for key in order if key in set(y_true)]
    report = metrics.classification_report(y_true, y_pred, labels=present)
    cm_labels, cm = metrics.confusion_matrix(y_true, y_pred, labels=[key for key in order if key in set(y_true) | set(y_pred)])
    ci = metrics.bootstrap_mean_ci(aps, seed=0)
    row = {
        "strategy": spec.name,
        "kind": spec.kind,
        "settings": spec.settings(ctx.config.regions),
        "embedder": label,
        "embedder_family": embedder.info.family,
        "precision_at_k": round(metrics.mean(p_at_k), 4),
        "hit_at_k": round(metrics.mean(hits_at_k), 4),
        "map": round(metrics.mean(aps), 4),
        "map_ci95": _rounded_bounds(ci),
        "knn_macro_f1": round(float(report["macro_f1"]), 4),
        "knn_accuracy": round(float(report["accuracy"]), 4),
        "queries": len(ids),
        "unlabelled_skipped": unlabelled,
        "index_nodes": len(node_labels),
        "index_nodes_by_label": dict(Counter(label for labels in node_labels for label in labels)),
        "cached": cached,
        "seconds": round(time.perf_counter() - started, 2),
        "per_label": {key: {m: round(v, 4) if isinstance(v, float) else v for m, v in values.items()}
                      for key, values in report["per_label"].items()},
        "confusion": {"labels": cm_labels, "matrix": cm},
        "skipped": issue_list(issues),
    }
    logger.info("%s / %s: P@%d %.3f hit@%d %.3f mAP %.3f kNN F1 %.3f (%d queries, %.1fs)",
                spec.name, label, ctx.k, row["precision_at_k"], ctx.k, row["hit_at_k"], row["map"],
                row["knn_macro_f1"], row["queries"], row["seconds"])
    return row, per_query_ap


# --------------------------------------------------------------------------------------------
# the run


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
        progress: Called with the number of photos just processed.
        total: Called once with the number of photos to process.

    Returns:
        The result (also written to ``retrieval.json``): ``rows`` (one per strategy and
        embedder: ``precision_at_k``, ``hit_at_k``, ``map``, ``knn_macro_f1``, ``queries``,
        ``index_nodes``, ``seconds``, per-label F1 and confusion matrix), ``best``,
        ``comparisons``, ``split`` and ``files``.

    Raises:
        EvaluationError: If the options are invalid or a side of the split is empty.
        EmbedderError: If an embedder cannot be loaded.
        AdapterError: If the dataset cannot be read.
    """
    from index.embedders import load_embedder

    started = time.perf_counter()
    if k < 1:
        raise EvaluationError("k must be at least 1")
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
    ctx = _Context(config=config, split=split, k=k, depth=depth,
                   cache_root=Path(cache_dir or DEFAULT_CACHE_DIR), workers=max(1, workers or 2),
                   progress=progress)
    rows: list[dict[str, Any]] = []
    aps: dict[tuple[str, str], dict[str, float]] = {}
    for model in models:
        embedder_config = config.embedder
        if model != config.embedder.model:
            embedder_config = config.embedder.model_copy(update={"model": model, "family": "auto"})
        embedder = load_embedder(embedder_config)
        for spec in specs:
            row, per_query = _evaluate_row(ctx, spec, embedder, embedder_config, model)
            rows.append(row)
            aps[(spec.name, model)] = per_query
        del embedder
        gc.collect()
    # Image/tile relevance (any shared label on a whole photo) is easier than region relevance,
    # so the best row is chosen among region rows when there are any.
    pool = [r for r in rows if r["kind"] == "region"] or rows
    best = max(pool, key=lambda r: (r["map"], r["hit_at_k"], r["knn_macro_f1"]))
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
        "comparisons": _comparisons(specs, models, aps),
        "run_dir": str(run_dir),
        "cache_dir": str(ctx.cache_root),
        "seconds": 0.0,
    }
    result["files"] = write_outputs(result, run_dir, ctx.queries_out, plots=plots)
    result["seconds"] = round(time.perf_counter() - started, 2)
    write_json_atomic(run_dir / "retrieval.json", result)
    return result


def _comparisons(specs: list[StrategySpec], models: list[str],
                 aps: dict[tuple[str, str], dict[str, float]]) -> list[dict[str, Any]]:
    """Paired bootstrap intervals of each embedder's mAP minus the first one's, per strategy."""
    out = []
    for spec in specs:
        base = aps[(spec.name, models[0])]
        for model in models[1:]:
            other = aps[(spec.name, model)]
            common = [q for q in base if q in other]
            if not common:
                continue
            ci = metrics.bootstrap_diff_ci([other[q] for q in common], [base[q] for q in common], seed=0)
            out.append({"strategy": spec.name, "metric": "map", "embedder": model, "baseline": models[0],
                        "difference": round(ci.estimate, 4), "ci95": _rounded_bounds(ci),
                        "queries": len(common)})
    return out


# --------------------------------------------------------------------------------------------
# outputs


def _rounded_bounds(ci: metrics.Interval) -> list[float | None]:
    """An interval's bounds rounded for the report (None where there is no interval)."""
    return [None if v is None else round(v, 4) for v in (ci.low, ci.high)]


def format_metric(value: float) -> str:
    """A metric as printed in tables: three decimals."""
    return f"{value:.3f}"


def format_markdown(result: dict[str, Any]) -> str:
    """The run as Markdown: the comparison table, then per-label F1 and confusion of the best row."""
    k = result["k"]
    split = result["split"]
    lines = [
        f"# Retrieval evaluation: {result['dataset']}",
        "",
        f"Split by vehicle (seed {result['seed']}, test fraction {result['test_fraction']}): "
        f"{split['train_images']} train images ({split['train_groups']} groups), "
        f"{split['test_images']} test images ({split['test_groups']} groups), "
        f"{split['shared_groups']} shared groups. k = {k}; AP depth = "
        f"{result['depth'] if result['depth'] > 0 else 'whole index'}.",
        "",
        f"| strategy | settings | embedder | queries | index nodes | P@{k} | hit@{k} | mAP | kNN macro-F1 | seconds |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['strategy']} | {row['settings']} | {short_model_name(row['embedder'])} | {row['queries']} | "
            f"{row['index_nodes']} | {format_metric(row['precision_at_k'])} | {format_metric(row['hit_at_k'])} | "
            f"{format_metric(row['map'])} | {format_metric(row['knn_macro_f1'])} | {row['seconds']:.1f} |")
    lines += ["", "Relevant = the retrieved node shares a label with the query. Region rows query "
              "test defects against train defects; `image` rows query whole photos; `tile` rows "
              "query labelled tiles. Compare rows of one kind with each other.", ""]
    if result.get("comparisons"):
        lines += ["## Embedders compared (paired bootstrap, 95%)", "",
                  "| strategy | embedder | minus | mAP difference | 95% interval |", "|---|---|---|---:|---|"]
        for c in result["comparisons"]:
            lines.append(f"| {c['strategy']} | {short_model_name(c['embedder'])} | {short_model_name(c['baseline'])} | "
                         f"{c['difference']:+.3f} | [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}] |")
        lines.append("")
    best = _best_row(result)
    lines += [f"## Best row by {result['best']['by']}: {best['strategy']} / {short_model_name(best['embedder'])}", "",
              "| label | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for key, v in best["per_label"].items():
        lines.append(f"| {key} | {format_metric(v['precision'])} | {format_metric(v['recall'])} | {format_metric(v['f1'])} | {v['support']} |")
    labels, matrix = best["confusion"]["labels"], best["confusion"]["matrix"]
    lines += ["", "Confusion matrix of the k-NN vote (rows: truth, columns: prediction):", "",
              "| truth \\ predicted | " + " | ".join(labels) + " |",
              "|---|" + "---:|" * len(labels)]
    for label, counts in zip(labels, matrix, strict=True):
        lines.append(f"| {label} | " + " | ".join(str(c) for c in counts) + " |")
    return "\n".join(lines) + "\n"


def short_model_name(model: str) -> str:
    """A model id or path as printed in tables: its last component."""
    return Path(model).name or model


def _best_row(result: dict[str, Any]) -> dict[str, Any]:
    best = result["best"]
    return next(r for r in result["rows"] if r["strategy"] == best["strategy"] and r["embedder"] == best["embedder"])


def write_outputs(result: dict[str, Any], run_dir: Path, queries: list[dict[str, Any]] | None = None,
                  *, plots: bool = True) -> dict[str, Any]:
    """Write ``retrieval.md``, ``retrieval_queries.jsonl`` and the plots; returns their paths.

    ``retrieval.json`` is written by :func:`evaluate_retrieval` once the paths are known.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = {"json": str(run_dir / "retrieval.json"), "markdown": str(run_dir / "retrieval.md")}
    (run_dir / "retrieval.md").write_text(format_markdown(result), encoding="utf-8")
    if queries is not None:
        path = run_dir / "retrieval_queries.jsonl"
        with path.open("w", encoding="utf-8") as handle:
            for item in queries:
                handle.write(json.dumps(item, ensure_ascii=False) + "\n")
        files["queries"] = str(path)
    files["plots"] = []
    if plots:
        from index.evaluation.plots import plot_confusion, plot_metrics

        best = _best_row(result)
        files["plots"].append(str(plot_metrics(result["rows"], run_dir / "metrics.png", k=result["k"])))
        files["plots"].append(str(plot_confusion(
            best["confusion"]["labels"], best["confusion"]["matrix"], run_dir / "confusion.png",
            title=f"k-NN vote, {best['strategy']} / {short_model_name(best['embedder'])}")))
    return files

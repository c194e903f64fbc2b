"""The train-side index and the query vectors of one (strategy, embedder) row, built or reused.

For every row, an exact (flat) FAISS index is built from the crops planned on the **train**
images only, with that row's region strategy, and kept in a cache directory keyed by
(strategy, embedder fingerprint, split content), so a rerun reuses it (``--cache-dir``,
``--no-cache``). Only the node kind being evaluated is indexed (``region``, ``image`` or
``tile``). The same strategy plans crops on the **test** images; their labelled crops are the
row's queries, embedded once and cached beside the index.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from index.config import DomainConfig, RegionStrategy
from index.dataset.records import ImageRecord, Issue, issue_list
from index.evaluation.context import RunContext
from index.evaluation.embedding import embed_plan
from index.evaluation.strategies import StrategySpec
from index.files import digest, write_json_atomic
from index.index_dir import node_counts, write_manifest
from index.regions.plan import RegionCrop, plan_crops

logger = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path("outputs/eval/cache")
CACHE_VERSION = 1
_CACHE_DONE = "eval_cache.json"
_QUERIES = "queries.npz"


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
        index_dir: Where to write ``faiss.index``, ``metadata.sqlite`` and ``manifest.json``.
        embedder_info: The embedder's :class:`~index.embedders.EmbedderInfo`.
        embedder_config: The embedder's configuration (recorded in the manifest).
        extra: More manifest fields (the evaluation records its strategy and cache key).
    """
    from index.vector_store import VectorIndexConfig, new_store

    started = time.perf_counter()
    store_config = VectorIndexConfig(dir=str(index_dir), type="flat")
    store = new_store(store_config)  # an evaluation cache: always flat FAISS
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


@dataclass(frozen=True)
class PreparedRow:
    """A row's train index and queries, ready to be scored.

    Attributes:
        index_dir: The train index (absent when no train crop was planned).
        ids: Node id of each query, in the order of ``vectors``.
        vectors: The query vectors, one row each.
        by_id: The labelled test crop of each query id.
        cached: Whether the index and vectors were reused from the cache.
        unlabelled: Test crops left out because they carry no label.
        issues: Photos that could not be decoded.
    """

    index_dir: Path
    ids: list[str]
    vectors: np.ndarray
    by_id: dict[str, RegionCrop]
    cached: bool
    unlabelled: int
    issues: list[Issue]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", Path(text).name or text)[:40]


def _cache_key(ctx: RunContext, spec: StrategySpec, strategy: RegionStrategy, fingerprint: str,
               train: list[tuple[ImageRecord, list[RegionCrop]]],
               test: list[tuple[ImageRecord, list[RegionCrop]]]) -> str:
    sides = {side: [[record.image_id, record.vehicle_group, ctx.signature(record),
                     [[crop.node_id, crop.label_keys] for crop in crops]] for record, crops in plan]
             for side, plan in (("train", train), ("test", test))}
    return digest({
        "version": CACHE_VERSION, "dataset": ctx.config.name, "kind": spec.kind,
        "strategy": strategy.model_dump(mode="json"), "embedder": fingerprint, "sides": sides,
    })


def prepare_row(ctx: RunContext, spec: StrategySpec, embedder: Any, embedder_config: Any, label: str) -> PreparedRow:
    """Build (or reuse) the row's train index and query vectors.

    Args:
        ctx: What the run's rows share.
        spec: The row's strategy.
        embedder: The row's loaded embedder.
        embedder_config: Its configuration (recorded in the index manifest).
        label: The embedder as named on the command line (in the cache folder's name).
    """
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
                return PreparedRow(row_dir / "index", ids, vectors, by_id, True, unlabelled, [
                    Issue(**i) for i in stored.get("issues", [])])
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
    return PreparedRow(row_dir / "index", ids, vectors, by_id, False, unlabelled, issues)

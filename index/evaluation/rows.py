"""Scoring one (strategy, embedder) row: its queries against its train index.

Every *labelled* test crop of the row's kind is one query, searched in the train index
restricted to that kind, with the query's own image and vehicle group excluded (already
guaranteed by the split; passed anyway).

Relevance
---------
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
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

import index.evaluation.metrics as metrics
from index.dataset.records import issue_list
from index.evaluation.context import RunContext
from index.evaluation.outputs import rounded_bounds
from index.evaluation.split_index import prepare_row
from index.evaluation.strategies import StrategySpec
from index.index_dir import MANIFEST
from index.regions.plan import RegionCrop

logger = logging.getLogger(__name__)


def _dominant(crop: RegionCrop) -> str:
    area: Counter[str] = Counter()
    for region in crop.regions:
        area[region.label_key] += region.area
    return max(area, key=lambda label: (area[label], -crop.label_keys.index(label)))


def evaluate_row(ctx: RunContext, spec: StrategySpec, embedder: Any, embedder_config: Any,
                 label: str) -> tuple[dict[str, Any], dict[str, float]]:
    """Metrics of one (strategy, embedder) row, and its per-query AP keyed by query id.

    Each query's record (labels, prediction, AP, top ``k``) is appended to ``ctx.queries_out``.
    """
    from index.search import DamageIndex

    started = time.perf_counter()
    prepared = prepare_row(ctx, spec, embedder, embedder_config, label)
    index_dir, by_id = prepared.index_dir, prepared.by_id
    index = DamageIndex.open(index_dir, embedder=embedder) if (index_dir / MANIFEST).is_file() else None
    node_labels: list[frozenset[str]] = []
    if index is not None:
        node_labels = [frozenset(n.metadata.get("labels") or []) for n in index.store.get_nodes(index.store.node_ids())]
    depth = len(node_labels) if ctx.depth <= 0 else max(ctx.depth, ctx.k)
    relevant_counts: dict[frozenset[str], int] = {}
    p_at_k, hits_at_k, aps, y_true, y_pred = [], [], [], [], []
    per_query_ap: dict[str, float] = {}
    for node_id, vector in zip(prepared.ids, prepared.vectors, strict=True):
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
        "map_ci95": rounded_bounds(ci),
        "knn_macro_f1": round(float(report["macro_f1"]), 4),
        "knn_accuracy": round(float(report["accuracy"]), 4),
        "queries": len(prepared.ids),
        "unlabelled_skipped": prepared.unlabelled,
        "index_nodes": len(node_labels),
        "index_nodes_by_label": dict(Counter(label for labels in node_labels for label in labels)),
        "cached": prepared.cached,
        "seconds": round(time.perf_counter() - started, 2),
        "per_label": {key: {m: round(v, 4) if isinstance(v, float) else v for m, v in values.items()}
                      for key, values in report["per_label"].items()},
        "confusion": {"labels": cm_labels, "matrix": cm},
        "skipped": issue_list(prepared.issues),
    }
    logger.info("%s / %s: P@%d %.3f hit@%d %.3f mAP %.3f kNN F1 %.3f (%d queries, %.1fs)",
                spec.name, label, ctx.k, row["precision_at_k"], ctx.k, row["hit_at_k"], row["map"],
                row["knn_macro_f1"], row["queries"], row["seconds"])
    return row, per_query_ap

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

Uncertainty and chance (:mod:`~index.evaluation.intervals`, :mod:`~index.evaluation.chance`)
-----------------------------------------------------------------------------------------
Each metric comes with a bootstrap interval over the test **vehicles** (``<metric>_ci``), its
chance level (``chance_<metric>``: the expected score of a random ranking of this train index,
or for the vote the label-prior vote, always the train side's majority label) and the lift
over it (``lift_<metric>``, ``lift_<metric>_ci``). A row with fewer than 50 queries carries a
warning.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

import index.evaluation.metrics as metrics
from index.dataset.records import ImageRecord, issue_list
from index.evaluation.bootstrap import UnitResamples
from index.evaluation.chance import (
    chance_average_precision,
    chance_hit_at_k,
    chance_precision_at_k,
    majority_label,
)
from index.evaluation.context import RunContext
from index.evaluation.intervals import RowScores, summarise
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


def vehicle_unit(record: ImageRecord) -> str:
    """The bootstrap unit of a query: its photo's vehicle group, else the photo itself."""
    return record.vehicle_group or f"image:{record.image_id}"


def evaluate_row(ctx: RunContext, spec: StrategySpec, embedder: Any, embedder_config: Any,
                 label: str) -> tuple[dict[str, Any], RowScores]:
    """Metrics of one (strategy, embedder) row, and its per-query scores (for comparisons).

    Each query's record (labels, prediction, AP, chance, top ``k``) is appended to
    ``ctx.queries_out``.
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
    order = ctx.config.taxonomy.label_keys()
    majority = majority_label(node_labels, order)
    scores = RowScores(strategy=spec.name, embedder=label, kind=spec.kind, k=ctx.k)
    relevant_counts: dict[frozenset[str], int] = {}
    chance: dict[frozenset[str], tuple[float, float, float]] = {}
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
            relevant = relevant_counts[wanted] = sum(1 for labels in node_labels if labels & wanted)
            n = len(node_labels)
            chance[wanted] = (chance_precision_at_k(relevant, n, ctx.k), chance_hit_at_k(relevant, n, ctx.k),
                              chance_average_precision(relevant, n, depth))
        n_relevant = min(relevant_counts[wanted], depth)
        ap = metrics.average_precision(ranking, max(n_relevant, sum(ranking)))
        predicted = metrics.weighted_vote([(h.labels, h.similarity) for h in hits[:ctx.k]])
        prior = majority or metrics.NO_LABEL
        scores.units.append(vehicle_unit(record))
        scores.precision.append(metrics.precision_at_k(ranking, ctx.k))
        scores.hit.append(metrics.hit_at_k(ranking, ctx.k))
        scores.ap.append(ap)
        for target, value in zip((scores.chance_precision, scores.chance_hit, scores.chance_ap), chance[wanted],
                                 strict=True):
            target.append(value)
        scores.y_true.append(predicted if predicted in wanted else _dominant(crop))
        scores.y_pred.append(predicted)
        scores.chance_true.append(prior if prior in wanted else _dominant(crop))
        scores.chance_pred.append(prior)
        ctx.queries_out.append({
            "strategy": spec.name, "embedder": label, "query": node_id, "kind": crop.kind,
            "image_id": record.image_id, "vehicle": scores.units[-1], "labels": sorted(wanted),
            "predicted": predicted, "correct": predicted in wanted, "ap": round(ap, 4),
            "precision_at_k": scores.precision[-1], "chance_precision_at_k": round(chance[wanted][0], 4),
            "top": [{"id": h.id, "labels": h.labels, "similarity": h.similarity,
                     "image_id": h.metadata.get("image_id")} for h in hits[:ctx.k]],
        })
    y_true, y_pred = scores.y_true, scores.y_pred
    scores.labels = [key for key in order if key in set(y_true)]
    scores.chance_labels = [key for key in order if key in set(scores.chance_true)]
    report = metrics.classification_report(y_true, y_pred, labels=scores.labels)
    cm_labels, cm = metrics.confusion_matrix(y_true, y_pred, labels=[key for key in order if key in set(y_true) | set(y_pred)])
    resamples = UnitResamples.draw(scores.units, n_resamples=ctx.resamples, seed=ctx.seed, confidence=ctx.confidence)
    summary = summarise(scores, resamples)
    row = {
        "strategy": spec.name,
        "kind": spec.kind,
        "settings": spec.settings(ctx.config.regions),
        "embedder": label,
        "embedder_family": embedder.info.family,
        **summary,
        "map_ci95": summary["map_ci"],  # the older name of map_ci, kept for existing readers
        "knn_accuracy": round(float(report["accuracy"]), 4),
        "chance_knn_label": majority,
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
    logger.info("%s / %s: P@%d %.3f (chance %.3f) hit@%d %.3f mAP %.3f kNN F1 %.3f (chance %.3f) "
                "(%d queries, %d vehicles, %.1fs)", spec.name, label, ctx.k, row["precision_at_k"],
                row["chance_precision_at_k"], ctx.k, row["hit_at_k"], row["map"], row["knn_macro_f1"],
                row["chance_knn_macro_f1"], row["queries"], row["vehicles"], row["seconds"])
    return row, scores

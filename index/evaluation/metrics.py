"""Small, pure evaluation metrics shared by the retrieval and the end-to-end evaluations.

Nothing here reads files, loads models or logs: every function takes plain Python values and
returns plain Python values (floats, lists, dicts), so results are JSON-ready.

* classification: :func:`confusion_matrix`, :func:`classification_report` (per-label
  precision / recall / F1 and macro F1), :func:`weighted_vote` (a similarity-weighted k-NN vote);
* ranking: :func:`precision_at_k`, :func:`hit_at_k`, :func:`average_precision`,
  :func:`mean_average_precision`;
* localisation: :func:`box_iou` (the one in :mod:`index.imaging.geometry`);
* counts and summaries: :func:`precision_recall_f1`, :func:`mean_of_present`, :func:`percentile`;
* uncertainty: :class:`Interval`, :func:`bootstrap_indices`, :func:`bootstrap_mean_ci`,
  :func:`bootstrap_diff_ci` (paired, deterministic: one seed gives one set of resamples), and
  :class:`UnitResamples`, the same bootstrap drawing whole *units* (vehicles) instead of items,
  for items correlated within a unit (``groups=`` of the two functions above uses it); they
  live in :mod:`index.evaluation.bootstrap` and are re-exported here.

Conventions: a ranking is a sequence of booleans, best first, ``True`` where the retrieved
item is relevant; a division by zero gives 0.0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from index.evaluation.bootstrap import (
    Interval,
    UnitResamples,
    bootstrap_diff_ci,
    bootstrap_indices,
    bootstrap_mean_ci,
    percentile_interval,
)
from index.imaging.geometry import box_iou

__all__ = [
    "Interval",
    "UnitResamples",
    "average_precision",
    "bootstrap_diff_ci",
    "bootstrap_indices",
    "bootstrap_mean_ci",
    "box_iou",
    "classification_report",
    "confusion_matrix",
    "f1_score",
    "hit_at_k",
    "mean",
    "mean_average_precision",
    "mean_of_present",
    "percentile",
    "percentile_interval",
    "precision_at_k",
    "precision_recall_f1",
    "weighted_vote",
]

NO_LABEL = "none"


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else 0.0


def mean(values: Sequence[float]) -> float:
    """Arithmetic mean; 0.0 for no values."""
    return _ratio(sum(values), len(values))


def mean_of_present(values: Sequence[float | None]) -> float | None:
    """Arithmetic mean of the values that are not None; None when there are none."""
    present = [float(v) for v in values if v is not None]
    return sum(present) / len(present) if present else None


def percentile(values: Sequence[float | None], q: float) -> float | None:
    """The ``q``-th percentile (0-100, linear interpolation) of the present, non-NaN values."""
    clean = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return float(np.percentile(clean, q)) if clean else None


def precision_recall_f1(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Precision, recall and F1 from counts (0.0 where undefined)."""
    return _ratio(tp, tp + fp), _ratio(tp, tp + fn), _ratio(2 * tp, 2 * tp + fp + fn)


# ------------------------------------------------------------------------------ classification


def confusion_matrix(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str] | None = None
) -> tuple[list[str], list[list[int]]]:
    """Count (truth, prediction) pairs.

    Args:
        y_true: True label of each item.
        y_pred: Predicted label of each item (same length).
        labels: Order of the rows and columns; labels seen in the data but missing here are
            appended in sorted order, so no pair is ever dropped. Default: sorted union.

    Returns:
        ``(labels, matrix)`` where ``matrix[i][j]`` counts items of true label ``labels[i]``
        predicted as ``labels[j]``.
    """
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} items but y_pred has {len(y_pred)}")
    order = list(dict.fromkeys(labels or []))
    order += sorted((set(y_true) | set(y_pred)) - set(order))
    position = {label: i for i, label in enumerate(order)}
    matrix = [[0] * len(order) for _ in order]
    for truth, pred in zip(y_true, y_pred, strict=True):
        matrix[position[truth]][position[pred]] += 1
    return order, matrix


def f1_score(precision: float, recall: float) -> float:
    """Harmonic mean of precision and recall; 0.0 when both are 0."""
    return _ratio(2 * precision * recall, precision + recall)


def classification_report(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str] | None = None
) -> dict[str, object]:
    """Per-label precision, recall, F1 and support, their macro average and accuracy.

    Args:
        y_true: True label of each item.
        y_pred: Predicted label of each item.
        labels: The labels to report and average over (default: the sorted union of true and
            predicted labels). Predictions outside ``labels`` still count as false positives of
            nothing and false negatives of the true label.

    Returns:
        ``{"per_label": {label: {"precision", "recall", "f1", "support"}}, "macro_precision",
        "macro_recall", "macro_f1", "accuracy", "n"}``.
    """
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} items but y_pred has {len(y_pred)}")
    chosen = list(labels) if labels is not None else sorted(set(y_true) | set(y_pred))
    per_label: dict[str, dict[str, float | int]] = {}
    for label in chosen:
        tp = sum(1 for t, p in zip(y_true, y_pred, strict=True) if t == label and p == label)
        predicted = sum(1 for p in y_pred if p == label)
        support = sum(1 for t in y_true if t == label)
        precision, recall = _ratio(tp, predicted), _ratio(tp, support)
        per_label[label] = {"precision": precision, "recall": recall,
                            "f1": f1_score(precision, recall), "support": support}
    correct = sum(1 for t, p in zip(y_true, y_pred, strict=True) if t == p)
    return {
        "per_label": per_label,
        "macro_precision": mean([v["precision"] for v in per_label.values()]),
        "macro_recall": mean([v["recall"] for v in per_label.values()]),
        "macro_f1": mean([v["f1"] for v in per_label.values()]),
        "accuracy": _ratio(correct, len(y_true)),
        "n": len(y_true),
    }


def weighted_vote(candidates: Sequence[tuple[Sequence[str], float]], empty: str = NO_LABEL) -> str:
    """The label with the largest summed similarity among ranked neighbours (a k-NN vote).

    Args:
        candidates: ``(labels, similarity)`` of each neighbour, best first. A neighbour votes
            for each of its labels with weight ``max(similarity, 0)`` (plus a tiny constant, so
            an all-negative list still votes); one without labels votes for ``empty``.
        empty: The label of an unlabelled neighbour.

    Returns:
        The winning label; ties go to the label that appears first in the ranking. ``empty``
        when there are no candidates.
    """
    totals: dict[str, float] = {}
    first: dict[str, int] = {}
    for rank, (labels, similarity) in enumerate(candidates):
        for label in list(dict.fromkeys(labels)) or [empty]:
            totals[label] = totals.get(label, 0.0) + max(float(similarity), 0.0) + 1e-9
            first.setdefault(label, rank)
    if not totals:
        return empty
    return min(totals, key=lambda label: (-totals[label], first[label]))


# ------------------------------------------------------------------------------ ranking


def precision_at_k(relevant: Sequence[bool], k: int) -> float:
    """Share of the first ``k`` ranks holding a relevant item (missing ranks count as misses)."""
    if k <= 0:
        raise ValueError("k must be positive")
    return sum(1 for r in relevant[:k] if r) / k


def hit_at_k(relevant: Sequence[bool], k: int) -> float:
    """1.0 when a relevant item is among the first ``k`` ranks, else 0.0."""
    if k <= 0:
        raise ValueError("k must be positive")
    return 1.0 if any(relevant[:k]) else 0.0


def average_precision(relevant: Sequence[bool], n_relevant: int | None = None) -> float:
    """Average precision of one ranked list: the mean of precision@i over the relevant ranks i.

    Args:
        relevant: The ranking, best first.
        n_relevant: How many relevant items could have been retrieved (the denominator). For
            a ranking cut at depth ``D`` from a collection holding ``R`` relevant items, pass
            ``min(R, D)`` (AP@D). Default: the number of relevant items in ``relevant``.

    Returns:
        AP in [0, 1]; 0.0 when nothing is relevant.
    """
    hits, total = 0, 0.0
    for rank, is_relevant in enumerate(relevant, start=1):
        if is_relevant:
            hits += 1
            total += hits / rank
    denominator = hits if n_relevant is None else n_relevant
    if denominator < hits:
        raise ValueError(f"n_relevant={n_relevant} is less than the {hits} relevant items ranked")
    return _ratio(total, denominator)


def mean_average_precision(
    rankings: Sequence[Sequence[bool]], n_relevant: Sequence[int | None] | None = None
) -> float:
    """Mean of :func:`average_precision` over queries (``n_relevant`` per query, optional)."""
    counts = list(n_relevant) if n_relevant is not None else [None] * len(rankings)
    return mean([average_precision(r, n) for r, n in zip(rankings, counts, strict=True)])

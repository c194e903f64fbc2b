"""Scoring of damage reports against the user's annotations: pure functions, no I/O.

Ground truth of one photo is the set of labels its regions carry (multi-label) and the regions'
boxes in source pixels. A prediction is what a :class:`~agent.report.DamageReport` says: its
``damage_detected``, the label set of its findings and their boxes. An invalid report (or a
request the server refused) predicts nothing.

Per mode: damage-detected accuracy, per-label precision / recall / F1 (per photo: a label is a
true positive when both truth and prediction hold it), macro F1 over the labels present in the
sample, micro F1, per-photo F1, localisation (share of ground-truth regions hit by a predicted
box of the same label at IoU ≥ 0.3, and their mean best IoU), valid-report rate, tool calls,
latency and tokens. Between modes: paired bootstrap intervals of the differences.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from index.config import MODES
from index.evaluation.metrics import (
    Interval,
    bootstrap_diff_ci,
    bootstrap_indices,
    box_iou,
    mean_of_present,
    percentile,
    percentile_interval,
    precision_recall_f1,
)
from index.imaging.geometry import Box

logger = logging.getLogger(__name__)

NONE_LABEL = "(none)"





# --------------------------------------------------------------------------------------------
# inputs


@dataclass(frozen=True)
class TruthRegion:
    """One annotated region: its label key and box (x0, y0, x1, y1) in source pixels."""

    label: str
    box: Box


@dataclass(frozen=True)
class GroundTruth:
    """What the annotations say about one photo.

    ``frame`` is the (width, height) of the photo as the model was given it when that differs
    from the annotation frame (``width`` × ``height``); predicted pixel boxes are rescaled.
    """

    image_id: str
    labels: frozenset[str]
    regions: tuple[TruthRegion, ...]
    width: int
    height: int
    vehicle_group: str = ""
    frame: tuple[int, int] | None = None

    @property
    def damaged(self) -> bool:
        """True when the photo has at least one annotated region."""
        return bool(self.regions)

    @classmethod
    def from_record(cls, record: Any, frame: tuple[int, int] | None = None) -> GroundTruth:
        """Ground truth of an :class:`~index.dataset.records.ImageRecord`."""
        regions = tuple(TruthRegion(r.label_key, tuple(float(v) for v in r.bbox)) for r in record.regions)
        size = (int(record.width), int(record.height))
        return cls(record.image_id, frozenset(record.label_keys()), regions, size[0], size[1],
                   record.vehicle_group or "", frame if frame and tuple(frame) != size else None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"image_id": self.image_id, "labels": sorted(self.labels), "vehicle_group": self.vehicle_group,
                "width": self.width, "height": self.height,
                "regions": [{"label": r.label, "box": [round(v, 1) for v in r.box]} for r in self.regions]}


@dataclass(frozen=True)
class Prediction:
    """What one report predicts, in the annotation frame; invalid reports predict nothing."""

    valid: bool
    detected: bool
    labels: frozenset[str]
    boxes: tuple[tuple[str, Box], ...] = ()
    tool_calls: int = 0
    latency_s: float | None = None
    tokens: int | None = None
    error: str | None = None


def prediction_from_report(report: Any, truth: GroundTruth) -> Prediction:
    """Read a :class:`~agent.report.DamageReport` (or None: no report) as a prediction.

    Boxes come from ``bbox_px``, rescaled to the annotation frame when the photo was sent in
    another frame (``truth.frame``); a finding with only ``bbox_2d`` is converted from 0–1000.
    """
    if report is None:
        return Prediction(valid=False, detected=False, labels=frozenset(), error="no report")
    timings = dict(report.timings or {})
    usage = dict(report.usage or {})
    tokens = usage.get("total_tokens")
    if tokens is None and ("prompt_tokens" in usage or "completion_tokens" in usage):
        tokens = usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)
    common = {"tool_calls": int(report.tool_calls or 0), "latency_s": timings.get("total_s"), "tokens": tokens,
              "error": report.error}
    if not report.valid:
        return Prediction(valid=False, detected=False, labels=frozenset(), **common)
    frame_w, frame_h = truth.frame or (truth.width, truth.height)
    sx, sy = truth.width / max(frame_w, 1), truth.height / max(frame_h, 1)
    boxes = []
    for finding in report.findings:
        if finding.bbox_px:
            x0, y0, x1, y1 = finding.bbox_px
            boxes.append((finding.label.key, (x0 * sx, y0 * sy, x1 * sx, y1 * sy)))
        elif finding.bbox_2d:
            x0, y0, x1, y1 = finding.bbox_2d
            w, h = truth.width / 1000, truth.height / 1000
            boxes.append((finding.label.key, (x0 * w, y0 * h, x1 * w, y1 * h)))
    labels = frozenset(f.label.key for f in report.findings)
    return Prediction(valid=True, detected=report.damage_detected is True, labels=labels, boxes=tuple(boxes), **common)


# --------------------------------------------------------------------------------------------
# elementary measures


def set_f1(truth: frozenset[str], predicted: frozenset[str]) -> float:
    """F1 of one photo's predicted label set against its true set (1.0 when both are empty)."""
    if not truth and not predicted:
        return 1.0
    return 2 * len(truth & predicted) / (len(truth) + len(predicted))


def localisation(truth: GroundTruth, prediction: Prediction, iou_threshold: float = 0.3) -> dict[str, list[float]]:
    """Per ground-truth region: best IoU with a predicted box of the same label, and of any label."""
    same, any_label = [], []
    for region in truth.regions:
        ious = [(label, box_iou(region.box, box)) for label, box in prediction.boxes]
        same.append(max((v for label, v in ious if label == region.label), default=0.0))
        any_label.append(max((v for _, v in ious), default=0.0))
    return {"best_iou": same, "best_iou_any_label": any_label,
            "hit": [float(v >= iou_threshold) for v in same],
            "hit_any_label": [float(v >= iou_threshold) for v in any_label]}


# --------------------------------------------------------------------------------------------
# one mode


def indicator_matrix(sets: Sequence[frozenset[str]], labels: Sequence[str]) -> np.ndarray:
    """Photos × labels boolean matrix of label membership."""
    return np.array([[key in s for key in labels] for s in sets], dtype=bool).reshape(len(sets), len(labels))


def macro_f1_from(truth: np.ndarray, pred: np.ndarray) -> float | None:
    """Macro F1 over the labels (columns) with support in ``truth``; None if none has."""
    tp = (truth & pred).sum(axis=0)
    fp = (~truth & pred).sum(axis=0)
    fn = (truth & ~pred).sum(axis=0)
    support = truth.sum(axis=0) > 0
    if not support.any():
        return None
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    return float(f1[support].mean())


def cooccurrence(truths: Sequence[GroundTruth], predictions: Sequence[Prediction],
                 labels: Sequence[str]) -> dict[str, Any]:
    """Labels × labels counts of photos where truth holds the row label and the prediction the
    column label; an undamaged photo counts in row ``(none)``, an empty prediction in column
    ``(none)``. The diagonal is per-label hits; off-diagonal cells show confusions."""
    axis = [*labels, NONE_LABEL]
    where = {k: i for i, k in enumerate(axis)}
    matrix = [[0] * len(axis) for _ in axis]
    for truth, pred in zip(truths, predictions, strict=True):
        rows = [k for k in labels if k in truth.labels] or [NONE_LABEL]
        cols = [k for k in labels if k in pred.labels] or [NONE_LABEL]
        for r in rows:
            for c in cols:
                matrix[where[r]][where[c]] += 1
    return {"rows": axis, "cols": axis, "matrix": matrix}


def score_mode(mode: str, truths: Sequence[GroundTruth], predictions: Sequence[Prediction],
               labels: Sequence[str], *, iou_threshold: float = 0.3) -> dict[str, Any]:
    """Every measure of one mode over the photos (``truths`` and ``predictions`` aligned)."""
    n = len(truths)
    truth_m = indicator_matrix([t.labels for t in truths], labels)
    pred_m = indicator_matrix([p.labels for p in predictions], labels)
    per_label: dict[str, dict[str, float | int]] = {}
    for j, key in enumerate(labels):
        tp = int((truth_m[:, j] & pred_m[:, j]).sum())
        fp = int((~truth_m[:, j] & pred_m[:, j]).sum())
        fn = int((truth_m[:, j] & ~pred_m[:, j]).sum())
        precision, recall, f1 = precision_recall_f1(tp, fp, fn)
        per_label[key] = {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn,
                          "tp": tp, "fp": fp, "fn": fn}
    tp_all = sum(int(v["tp"]) for v in per_label.values())
    fp_all = sum(int(v["fp"]) for v in per_label.values())
    fn_all = sum(int(v["fn"]) for v in per_label.values())
    hits: list[float] = []
    best: list[float] = []
    hits_any: list[float] = []
    for truth, pred in zip(truths, predictions, strict=True):
        loc = localisation(truth, pred, iou_threshold)
        hits += loc["hit"]
        best += loc["best_iou"]
        hits_any += loc["hit_any_label"]
    photo_f1 = [set_f1(t.labels, p.labels) for t, p in zip(truths, predictions, strict=True)]
    correct = [float(p.detected == t.damaged) for t, p in zip(truths, predictions, strict=True)]
    latencies = [p.latency_s for p in predictions if p.latency_s is not None]
    return {
        "mode": mode,
        "n": n,
        "detected_accuracy": mean_of_present(correct),
        "macro_f1": macro_f1_from(truth_m, pred_m) if n else None,
        "micro_f1": precision_recall_f1(tp_all, fp_all, fn_all)[2],
        "photo_f1": mean_of_present(photo_f1),
        "exact_match": mean_of_present([float(t.labels == p.labels) for t, p in zip(truths, predictions, strict=True)]),
        "localisation_hit_rate": mean_of_present(hits),
        "mean_best_iou": mean_of_present(best),
        "localisation_hit_rate_any_label": mean_of_present(hits_any),
        "regions": len(hits),
        "iou_threshold": iou_threshold,
        "valid_report_rate": mean_of_present([float(p.valid) for p in predictions]),
        "invalid_reports": sum(1 for p in predictions if not p.valid),
        "tool_calls_per_query": mean_of_present([float(p.tool_calls) for p in predictions]),
        "latency_p50_s": percentile(latencies, 50),
        "latency_p95_s": percentile(latencies, 95),
        "tokens_per_query": mean_of_present([p.tokens for p in predictions]),
        "per_label": per_label,
        "cooccurrence": cooccurrence(truths, predictions, labels),
    }


# --------------------------------------------------------------------------------------------
# differences between modes


def paired_mean_difference(a: Sequence[float], b: Sequence[float], *, resamples: int = 1000,
                           confidence: float = 0.95, seed: int = 0) -> Interval:
    """Difference of means of two paired per-photo measures, with a paired bootstrap interval.

    The resamples are :func:`~index.evaluation.metrics.bootstrap_indices` of the seed, shared by
    every metric of a comparison.
    """
    return bootstrap_diff_ci(list(a), list(b), n_resamples=resamples, confidence=confidence, seed=seed)


def paired_macro_f1_difference(truth: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, indices: np.ndarray,
                               confidence: float = 0.95) -> Interval:
    """Macro F1 of a minus that of b, resampling photos (labels with support in each resample)."""
    a, b = macro_f1_from(truth, pred_a), macro_f1_from(truth, pred_b)
    if a is None or b is None:
        return Interval(None, None, None, confidence, 0)
    t, pa, pb = truth[indices], pred_a[indices], pred_b[indices]  # resamples × photos × labels
    support = t.sum(axis=1) > 0

    def macro(pred: np.ndarray) -> np.ndarray:
        tp = (t & pred).sum(axis=1)
        wrong = (~t & pred).sum(axis=1) + (t & ~pred).sum(axis=1)
        f1 = 2 * tp / np.maximum(2 * tp + wrong, 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(support.any(axis=1), (f1 * support).sum(axis=1) / support.sum(axis=1), np.nan)

    return percentile_interval(a - b, macro(pa) - macro(pb), confidence)


def ordered_pairs(modes: Sequence[str]) -> list[tuple[str, str]]:
    """Every pair of modes as (a, b), a the more retrieval-heavy one (``a − b`` is reported)."""
    rank = {m: MODES.index(m) if m in MODES else len(MODES) for m in modes}
    ordered = sorted(modes, key=lambda m: (rank[m], m))
    return [(ordered[j], ordered[i]) for i in range(len(ordered)) for j in range(i + 1, len(ordered))]


DIFF_METRICS = {"macro_f1": "macro F1", "photo_f1": "photo F1", "detected_accuracy": "detected accuracy"}


def compare_modes(truths: Sequence[GroundTruth], predictions: dict[str, Sequence[Prediction]], labels: Sequence[str],
                  *, resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> list[dict[str, Any]]:
    """Paired differences between every pair of modes, with intervals and a verdict line each.

    The same bootstrap resamples of photos (one seed) serve every pair and metric, so
    intervals are comparable.
    """
    n = len(truths)
    indices = bootstrap_indices(n, resamples, seed) if n else np.zeros((0, 0), dtype=int)
    truth_m = indicator_matrix([t.labels for t in truths], labels)
    out = []
    for a, b in ordered_pairs(list(predictions)):
        pa, pb = predictions[a], predictions[b]
        per_photo = {
            "photo_f1": ([set_f1(t.labels, p.labels) for t, p in zip(truths, pa, strict=True)],
                         [set_f1(t.labels, p.labels) for t, p in zip(truths, pb, strict=True)]),
            "detected_accuracy": ([float(p.detected == t.damaged) for t, p in zip(truths, pa, strict=True)],
                                  [float(p.detected == t.damaged) for t, p in zip(truths, pb, strict=True)]),
        }
        intervals = {"macro_f1": paired_macro_f1_difference(
            truth_m, indicator_matrix([p.labels for p in pa], labels), indicator_matrix([p.labels for p in pb], labels),
            indices, confidence)}
        for name, (va, vb) in per_photo.items():
            intervals[name] = paired_mean_difference(va, vb, resamples=resamples, confidence=confidence, seed=seed)
        changed = sum(1 for x, y in zip(*per_photo["photo_f1"], strict=True) if x != y)
        out.append({"a": a, "b": b, "pair": f"{a} vs {b}", "n": n, "photos_changed": changed,
                    "metrics": {k: v.to_dict("diff") for k, v in intervals.items()},
                    "verdict": verdict(a, b, intervals)})
    return out


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.3f}"


def format_interval(interval: Interval | dict[str, Any]) -> str:
    """``+0.120 [+0.050, +0.190]``."""
    d = interval.to_dict("diff") if isinstance(interval, Interval) else interval
    if d["diff"] is None:
        return "n/a"
    if d["ci_low"] is None:
        return _signed(d["diff"])
    return f"{_signed(d['diff'])} [{_signed(d['ci_low'])}, {_signed(d['ci_high'])}]"


def verdict(a: str, b: str, intervals: dict[str, Interval]) -> str:
    """One line: the macro F1 difference with its interval and what the intervals say.

    A metric counts when its interval excludes 0; ``a`` is better when some metric says so
    and none says the opposite, "mixed" when they disagree.
    """
    better = [DIFF_METRICS[k] for k, v in intervals.items() if v.significant and (v.low or 0) > 0]
    worse = [DIFF_METRICS[k] for k, v in intervals.items() if v.significant and (v.high or 0) < 0]
    head = f"{a} vs {b}: macro F1 {format_interval(intervals['macro_f1'])}"
    retrieval = b == "zero-shot" and a != "zero-shot"
    if better and not worse:
        what = "retrieval helps" if retrieval else f"{a} is better"
        return f"{head} — {what} ({', '.join(better)} significantly higher)"
    if worse and not better:
        what = "retrieval hurts" if retrieval else f"{a} is worse"
        return f"{head} — {what} ({', '.join(worse)} significantly lower)"
    if better and worse:
        return f"{head} — mixed: higher {', '.join(better)}, lower {', '.join(worse)}"
    return f"{head} — no significant difference"

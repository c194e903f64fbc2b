"""How sure a row's numbers are: chance levels, lifts, vehicle-bootstrap intervals, verdicts.

Every row keeps its per-query scores (:class:`RowScores`): the four metrics, the chance level of
each (:mod:`index.evaluation.chance`), the k-NN and label-prior predictions, and the **unit** of
each query, its photo's vehicle group (the photo itself when it has none). Intervals resample
those units, never single queries: the regions of one photo, and the photos of one car, are
alike, and resampling them one by one would give intervals too narrow to trust.

* :func:`summarise`: a row's metric, interval, chance level and lift (metric - chance, with an
  interval: the same resamples score both) as flat, JSON-ready keys, and a warning when the
  row has fewer than :data:`MIN_QUERIES` queries;
* :func:`against_chance`: one line saying whether a row's retrieval beats chance;
* :func:`compare_rows`: the paired difference of two rows (two strategies of one kind and
  embedder, or two embedders of one strategy) on the same resampled vehicles, with a verdict
  line; :func:`strategy_comparisons` runs it over every pair of strategies.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np

import index.evaluation.metrics as metrics
from index.evaluation.bootstrap import Interval, UnitResamples
from index.evaluation.outputs import format_interval, format_signed, short_model_name

logger = logging.getLogger(__name__)

#: Below this many queries a row is flagged: its intervals are wide and it may not generalise.
MIN_QUERIES = 50
#: Below this many test vehicles a row is flagged: a bootstrap over so few units is rough.
MIN_VEHICLES = 10

#: The metrics given intervals, chance levels and lifts, in report order.
METRICS = ("precision_at_k", "hit_at_k", "map", "knn_macro_f1")


def metric_name(metric: str, k: int, short: bool = False) -> str:
    """A metric key as printed: ``P@5``, ``hit@5``, ``mAP``, ``kNN macro-F1`` (``short``: ``kNN F1``)."""
    return {"precision_at_k": f"P@{k}", "hit_at_k": f"hit@{k}", "map": "mAP",
            "knn_macro_f1": "kNN F1" if short else "kNN macro-F1"}[metric]


@dataclass
class RowScores:
    """The per-query scores of one row, in query order (all lists of one length).

    Attributes:
        strategy: The row's strategy name.
        embedder: The row's embedder (model id or path).
        kind: The node kind queried.
        k: The cut-off of P@k, hit@k and the vote.
        units: The resampling unit of each query (its vehicle group).
        precision, hit, ap: P@k, hit@k and AP of each query.
        chance_precision, chance_hit, chance_ap: Their expectations under a random ranking.
        y_true, y_pred: Truth and k-NN prediction of each query (as in the confusion matrix).
        chance_true, chance_pred: The same for the label-prior vote.
        labels: The labels the vote's macro F1 averages over (present in ``y_true``).
        chance_labels: Those of the label-prior vote (present in ``chance_true``).
    """

    strategy: str
    embedder: str
    kind: str
    k: int
    units: list[str] = field(default_factory=list)
    precision: list[float] = field(default_factory=list)
    hit: list[float] = field(default_factory=list)
    ap: list[float] = field(default_factory=list)
    chance_precision: list[float] = field(default_factory=list)
    chance_hit: list[float] = field(default_factory=list)
    chance_ap: list[float] = field(default_factory=list)
    y_true: list[str] = field(default_factory=list)
    y_pred: list[str] = field(default_factory=list)
    chance_true: list[str] = field(default_factory=list)
    chance_pred: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    chance_labels: list[str] = field(default_factory=list)

    @property
    def queries(self) -> int:
        """The number of queries."""
        return len(self.units)

    def estimates(self) -> dict[str, tuple[float, float]]:
        """``{metric: (value, chance)}`` on all the queries."""
        f1 = metrics.classification_report(self.y_true, self.y_pred, labels=self.labels)["macro_f1"]
        prior = metrics.classification_report(self.chance_true, self.chance_pred, labels=self.chance_labels)["macro_f1"]
        return {
            "precision_at_k": (metrics.mean(self.precision), metrics.mean(self.chance_precision)),
            "hit_at_k": (metrics.mean(self.hit), metrics.mean(self.chance_hit)),
            "map": (metrics.mean(self.ap), metrics.mean(self.chance_ap)),
            "knn_macro_f1": (float(f1), float(prior)),
        }

    def samples(self, resamples: UnitResamples) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{metric: (value samples, chance samples)}``, one entry per resample of ``resamples``."""
        mean = resamples.mean_samples
        return {
            "precision_at_k": (mean(self.precision, self.units), mean(self.chance_precision, self.units)),
            "hit_at_k": (mean(self.hit, self.units), mean(self.chance_hit, self.units)),
            "map": (mean(self.ap, self.units), mean(self.chance_ap, self.units)),
            "knn_macro_f1": (resamples.macro_f1_samples(self.y_true, self.y_pred, self.labels, self.units),
                             resamples.macro_f1_samples(self.chance_true, self.chance_pred, self.chance_labels,
                                                        self.units)),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _bounds(interval: Interval) -> list[float | None]:
    return [_round(interval.low), _round(interval.high)]


def summarise(scores: RowScores, resamples: UnitResamples) -> dict[str, Any]:
    """The row keys of ``scores``: per metric ``m``, ``m``, ``m_ci``, ``chance_m``, ``lift_m``, ``lift_m_ci``
    and ``m_over_chance`` (None when chance is 0); then ``queries``, ``vehicles``, ``warnings``
    and ``against_chance`` (:func:`against_chance`).
    """
    out: dict[str, Any] = {}
    lifts: dict[str, Interval] = {}
    values: dict[str, Interval] = {}
    samples = scores.samples(resamples)
    for metric, (value, chance) in scores.estimates().items():
        drawn, drawn_chance = samples[metric]
        values[metric] = resamples.interval(value, drawn)
        lifts[metric] = resamples.interval(value - chance, drawn - drawn_chance)
        out[metric] = _round(value)
        out[f"{metric}_ci"] = _bounds(values[metric])
        out[f"chance_{metric}"] = _round(chance)
        out[f"lift_{metric}"] = _round(value - chance)
        out[f"lift_{metric}_ci"] = _bounds(lifts[metric])
        out[f"{metric}_over_chance"] = round(value / chance, 3) if chance > 0 else None
    out["queries"] = scores.queries
    out["vehicles"] = len(set(scores.units))
    out["warnings"] = []
    name = f"{scores.strategy} / {short_model_name(scores.embedder)}"
    if scores.queries < MIN_QUERIES:
        out["warnings"].append(
            f"{name}: only {scores.queries} queries (fewer than {MIN_QUERIES}) from {out['vehicles']} test "
            "vehicles; its intervals are wide and its numbers may not generalise")
    elif out["vehicles"] < MIN_VEHICLES:
        out["warnings"].append(
            f"{name}: its {scores.queries} queries come from only {out['vehicles']} test vehicles (fewer than "
            f"{MIN_VEHICLES}); a bootstrap over so few vehicles is rough")
    for warning in out["warnings"]:
        logger.info("%s", warning)  # the report carries it; the CLI prints it once, with the table
    out["against_chance"] = against_chance(scores, values, lifts)
    return out


def against_chance(scores: RowScores, values: dict[str, Interval], lifts: dict[str, Interval]) -> str:
    """One line: P@k and kNN macro-F1 with their chance and lift, then whether any lift excludes 0."""
    k = scores.k
    shown = ("precision_at_k", "knn_macro_f1")
    parts = [f"{metric_name(m, k)} {format_interval(values[m])} vs chance {values[m].estimate - lifts[m].estimate:.3f}, "
             f"lift {format_interval(lifts[m], signed=True)}" for m in shown]

    def named(chosen: list[str]) -> str:
        return ", ".join(metric_name(m, k) + ("" if m in shown else f" {format_interval(lifts[m], signed=True)}")
                         for m in chosen)

    above = [m for m, v in lifts.items() if v.significant and (v.low or 0) > 0]
    below = [m for m, v in lifts.items() if v.significant and (v.high or 0) < 0]
    if all(v.low is None for v in lifts.values()):
        tail = "no interval (fewer than two test vehicles)"
    elif above and not below:
        tail = f"above chance on {named(above)}"
    elif below and not above:
        tail = f"below chance on {named(below)}"
    elif above and below:
        tail = f"mixed: above chance on {named(above)}, below on {named(below)}"
    else:
        tail = "not distinguishable from chance"
    head = f"{scores.strategy} / {short_model_name(scores.embedder)} ({scores.kind}, {scores.queries} queries)"
    return f"{head}: {'; '.join(parts)} — {tail}"


def compare_rows(a: RowScores, b: RowScores, *, name_a: str, name_b: str, n_resamples: int = 2000,
                 confidence: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """``a - b`` for every metric, paired through the test vehicles, with a verdict line.

    Both rows are scored on the same resamples of the union of their vehicles (each drawn
    vehicle brings its queries of either row), so what the vehicles have in common cancels out.
    """
    resamples = UnitResamples.draw([*a.units, *b.units], n_resamples=n_resamples, seed=seed,
                                   confidence=confidence)
    est_a, est_b = a.estimates(), b.estimates()
    samples_a, samples_b = a.samples(resamples), b.samples(resamples)
    intervals = {m: resamples.interval(est_a[m][0] - est_b[m][0], samples_a[m][0] - samples_b[m][0])
                 for m in METRICS}
    return {"a": name_a, "b": name_b, "queries_a": a.queries, "queries_b": b.queries,
            "vehicles": len(resamples.units),
            "metrics": {m: {**v.to_dict("diff"), "diff": _round(v.estimate), "ci_low": _round(v.low),
                            "ci_high": _round(v.high)} for m, v in intervals.items()},
            "verdict": verdict(name_a, name_b, intervals, a.k)}


def verdict(a: str, b: str, intervals: dict[str, Interval], k: int, primary: str = "precision_at_k") -> str:
    """``a beats b by +0.080 P@5 [+0.030, +0.130]`` or ``a vs b: no clear difference in P@5 (...)``.

    The primary metric decides; the others whose interval excludes 0 are named after it.
    """
    main = intervals[primary]
    if main.significant and (main.high or 0) < 0:  # b is the better one: say it that way round
        return verdict(b, a, {m: _flip(v) for m, v in intervals.items()}, k, primary)
    name = metric_name(primary, k)
    up = [f"{metric_name(m, k)} {format_interval(v, signed=True)}" for m, v in intervals.items()
          if m != primary and v.significant and (v.low or 0) > 0]
    down = [f"{metric_name(m, k)} {format_interval(v, signed=True)}" for m, v in intervals.items()
            if m != primary and v.significant and (v.high or 0) < 0]
    if main.significant:
        line = f"{a} beats {b} by {format_signed(main.estimate)} {name}"
        if main.low is not None and main.high is not None:
            line += f" [{format_signed(main.low)}, {format_signed(main.high)}]"
        return line + (f"; also {', '.join(up)}" if up else "") + (f"; but {', '.join(down)}" if down else "")
    line = f"{a} vs {b}: no clear difference in {name} ({format_interval(main, signed=True)})"
    return line + (f"; {a} higher on {', '.join(up)}" if up else "") + (f"; {a} lower on {', '.join(down)}" if down else "")


def _flip(interval: Interval) -> Interval:
    """The interval of ``b - a`` from that of ``a - b``."""
    def neg(value: float | None) -> float | None:
        return None if value is None else -value

    return Interval(neg(interval.estimate), neg(interval.high), neg(interval.low), interval.confidence,
                    interval.resamples)


def strategy_comparisons(rows: Sequence[RowScores], *, n_resamples: int = 2000, confidence: float = 0.95,
                         seed: int = 0) -> list[dict[str, Any]]:
    """Every pair of strategies of one embedder and node kind, the better P@k first (``a - b``)."""
    groups: dict[tuple[str, str], list[RowScores]] = {}
    for row in rows:
        groups.setdefault((row.embedder, row.kind), []).append(row)
    out = []
    for (embedder, kind), members in groups.items():
        for first, second in combinations(members, 2):
            if not first.queries or not second.queries:
                continue
            a, b = first, second
            if metrics.mean(b.precision) > metrics.mean(a.precision):
                a, b = b, a
            pair = compare_rows(a, b, name_a=a.strategy, name_b=b.strategy, n_resamples=n_resamples,
                                confidence=confidence, seed=seed)
            pair["verdict"] = f"{kind} rows, {short_model_name(embedder)}: {pair['verdict']}"
            out.append({"kind": kind, "embedder": embedder, **pair})
    return out

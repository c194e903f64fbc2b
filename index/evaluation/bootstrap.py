"""Bootstrap intervals: one resampling scheme for every interval of the evaluations.

:func:`bootstrap_indices` draws the resamples (one generator per seed, so every metric
resampled with a seed shares its resamples); :func:`bootstrap_mean_ci` and
:func:`bootstrap_diff_ci` resample items, or whole units with ``groups=``;
:class:`UnitResamples` resamples units (test vehicles) for statistics over several item sets
(two rows paired through their vehicles) and for macro F1. Re-exported by
:mod:`index.evaluation.metrics`. Pure: no files, models or logging.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "Interval",
    "UnitResamples",
    "bootstrap_diff_ci",
    "bootstrap_indices",
    "bootstrap_mean_ci",
    "percentile_interval",
]


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided bootstrap percentile interval (None where undefined)."""

    estimate: float | None
    low: float | None
    high: float | None
    confidence: float = 0.95
    resamples: int = 0

    @property
    def significant(self) -> bool:
        """True when the interval excludes 0."""
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)

    def to_dict(self, name: str = "estimate") -> dict[str, Any]:
        """JSON-ready form; ``name`` is the key of the estimate (``"diff"`` for a difference)."""
        return {name: self.estimate, "ci_low": self.low, "ci_high": self.high, "confidence": self.confidence,
                "resamples": self.resamples, "significant": self.significant}


def bootstrap_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """``resamples`` x ``n`` item indices drawn with replacement, one row per resample.

    Rows are drawn one after another from one generator, so the first rows for a seed are the
    same however many are asked for: every metric resampled with one seed shares its resamples.
    """
    rng = np.random.default_rng(seed)
    if n == 0 or resamples == 0:
        return np.zeros((resamples, n), dtype=np.int64)
    return np.stack([rng.integers(0, n, size=n) for _ in range(resamples)])


def percentile_interval(estimate: float | None, samples: np.ndarray, confidence: float) -> Interval:
    """The percentile interval of bootstrap ``samples`` (NaN samples left out) around ``estimate``."""
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1")
    samples = np.asarray(samples, dtype=np.float64)
    samples = samples[~np.isnan(samples)]
    if estimate is None or samples.size == 0:
        return Interval(estimate, None, None, confidence, int(samples.size))
    tail = (1 - confidence) / 2
    low, high = np.quantile(samples, [tail, 1 - tail])
    return Interval(estimate, float(low), float(high), confidence, int(samples.size))


def bootstrap_mean_ci(
    values: Sequence[float], *, n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0,
    groups: Sequence[Hashable] | None = None,
) -> Interval:
    """Percentile-bootstrap confidence interval of a mean (deterministic for a seed).

    Args:
        values: The per-item values.
        n_resamples: Bootstrap resamples.
        confidence: Two-sided coverage, e.g. 0.95.
        seed: Seed of the resampling (:func:`bootstrap_indices`).
        groups: The unit of each item (e.g. its vehicle): whole units are resampled
            (:class:`UnitResamples`), not items. Default: every item is its own unit.

    Returns:
        ``Interval(mean, low, high)``; no interval (None bounds) for fewer than two values
        (units), and no estimate for none.
    """
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return Interval(None, None, None, confidence, 0)
    estimate = float(data.mean())
    if groups is not None:
        resamples = UnitResamples.draw(groups, n_resamples=n_resamples, seed=seed, confidence=confidence)
        return resamples.interval(estimate, resamples.mean_samples(data, groups))
    if data.size < 2:
        return Interval(estimate, None, None, confidence, 0)
    means = data[bootstrap_indices(data.size, n_resamples, seed)].mean(axis=1)
    return percentile_interval(estimate, means, confidence)


def bootstrap_diff_ci(
    a: Sequence[float], b: Sequence[float], *, n_resamples: int = 2000,
    confidence: float = 0.95, seed: int = 0, groups: Sequence[Hashable] | None = None,
) -> Interval:
    """Paired bootstrap interval of ``mean(a) - mean(b)`` (items resampled together).

    Args:
        a: Per-item scores of one system (e.g. with retrieval).
        b: The other system's scores on the same items, in the same order.
        n_resamples: Bootstrap resamples.
        confidence: Two-sided coverage.
        seed: Seed of the resampling.
        groups: The unit of each item: whole units are resampled (see
            :func:`bootstrap_mean_ci`).

    Returns:
        ``Interval(mean difference, low, high)``; an interval excluding 0 says the difference
        is unlikely to be chance at that confidence.
    """
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} and {len(b)}")
    diffs = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return bootstrap_mean_ci(diffs.tolist(), n_resamples=n_resamples, confidence=confidence, seed=seed,
                             groups=groups)


@dataclass(frozen=True)
class UnitResamples:
    """Bootstrap resamples of *units* (e.g. test vehicles), shared by every statistic computed from it.

    Items within one unit are correlated (the regions of one photo, the photos of one car), so
    resampling items would understate the uncertainty: here each resample draws ``len(units)``
    units with replacement (:func:`bootstrap_indices` over the sorted units) and takes every
    item of a drawn unit, as often as the unit was drawn. A mean is then the ratio of the
    resampled sums; two item sets (two rows) resampled with one instance are paired through
    their units.

    Attributes:
        units: The distinct units, sorted (by their text): the columns of ``counts``.
        counts: ``resamples x units``: how many times each unit is drawn in each resample.
        confidence: Two-sided coverage of :meth:`interval`.
    """

    units: tuple[Hashable, ...]
    counts: np.ndarray
    confidence: float = 0.95

    @classmethod
    def draw(cls, units: Sequence[Hashable], *, n_resamples: int = 2000, seed: int = 0,
             confidence: float = 0.95) -> UnitResamples:
        """Resamples of the distinct ``units`` (duplicates and order do not matter)."""
        distinct = tuple(sorted(set(units), key=str))
        n = len(distinct)
        picks = bootstrap_indices(n, n_resamples, seed)
        offsets = (np.arange(n_resamples, dtype=np.int64) * n)[:, None]
        counts = np.bincount((picks + offsets).ravel(), minlength=n_resamples * n).reshape(n_resamples, n)
        return cls(distinct, counts, confidence)

    def totals(self, values: np.ndarray, item_units: Sequence[Hashable]) -> np.ndarray:
        """Per resample, the sum of ``values`` (``items`` or ``items x m``) over the drawn items."""
        position = {unit: i for i, unit in enumerate(self.units)}
        try:
            index = np.asarray([position[u] for u in item_units], dtype=np.int64)
        except KeyError as exc:
            raise ValueError(f"item unit {exc.args[0]!r} is not one of the resampled units") from None
        data = np.asarray(values, dtype=np.float64)
        if len(index) != len(data):
            raise ValueError(f"{len(data)} values but {len(index)} item units")
        per_unit = np.zeros((len(self.units), *data.shape[1:]))
        np.add.at(per_unit, index, data)
        return self.counts @ per_unit

    def mean_samples(self, values: Sequence[float] | np.ndarray, item_units: Sequence[Hashable]) -> np.ndarray:
        """The mean of ``values`` in every resample (NaN where a resample holds none of the items)."""
        sums = self.totals(np.asarray(values, dtype=np.float64), item_units)
        sizes = self.totals(np.ones(len(item_units)), item_units)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(sizes > 0, sums / np.where(sizes > 0, sizes, 1), np.nan)

    def macro_f1_samples(self, y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str],
                         item_units: Sequence[Hashable]) -> np.ndarray:
        """The macro F1 of :func:`classification_report` (over ``labels``) in every resample.

        A resample averages over the labels of ``labels`` it holds true items of (as the point
        estimate averages over the labels present); NaN when it holds none.
        """
        position = {label: i for i, label in enumerate(labels)}
        truth = np.zeros((len(y_true), len(labels)))
        pred = np.zeros_like(truth)
        for i, (t, p) in enumerate(zip(y_true, y_pred, strict=True)):
            if t in position:
                truth[i, position[t]] = 1.0
            if p in position:
                pred[i, position[p]] = 1.0
        sums = self.totals(np.concatenate([truth, pred, truth * pred], axis=1), item_units)
        support, predicted, tp = np.split(sums, 3, axis=1)
        f1 = np.divide(2 * tp, support + predicted, out=np.zeros_like(tp), where=(support + predicted) > 0)
        present = support > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(present.any(axis=1), (f1 * present).sum(axis=1) / present.sum(axis=1), np.nan)

    def interval(self, estimate: float | None, samples: np.ndarray) -> Interval:
        """The percentile interval of ``samples`` around ``estimate``; none for fewer than two units."""
        if len(self.units) < 2:
            return Interval(estimate, None, None, self.confidence, 0)
        return percentile_interval(estimate, samples, self.confidence)

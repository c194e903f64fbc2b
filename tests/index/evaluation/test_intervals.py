"""Vehicle-bootstrap intervals, lifts, the small-row warning, paired verdicts and the per-kind plot.

Rows are built from constructed per-query scores, not from an embedder.
"""

from __future__ import annotations

import numpy as np
import pytest

from index.evaluation import metrics
from index.evaluation.bootstrap import UnitResamples
from index.evaluation.intervals import (
    MIN_QUERIES,
    RowScores,
    compare_rows,
    strategy_comparisons,
    summarise,
    verdict,
)
from index.evaluation.plots import metrics_figure


def _row(precision: list[float], units: list[str], *, strategy: str = "s", kind: str = "region",
         embedder: str = "e", chance: float = 0.2, truths: list[str] | None = None,
         preds: list[str] | None = None) -> RowScores:
    n = len(precision)
    truths = truths or ["a" if i % 2 else "b" for i in range(n)]
    preds = preds or truths
    return RowScores(strategy=strategy, embedder=embedder, kind=kind, k=5, units=list(units),
                     precision=list(precision), hit=[1.0 if p > 0 else 0.0 for p in precision], ap=list(precision),
                     chance_precision=[chance] * n, chance_hit=[0.5] * n, chance_ap=[chance] * n,
                     y_true=truths, y_pred=preds, chance_true=truths, chance_pred=["a"] * n,
                     labels=sorted(set(truths)), chance_labels=sorted(set(truths)))


# ---------------------------------------------------------------------------- resampling unit


def test_unit_resamples_draw_whole_vehicles():
    resamples = UnitResamples.draw(["v3", "v1", "v2", "v1"], n_resamples=50, seed=4)
    assert resamples.units == ("v1", "v2", "v3")
    assert resamples.counts.shape == (50, 3) and (resamples.counts.sum(axis=1) == 3).all()
    picks = metrics.bootstrap_indices(3, 50, 4)  # the one bootstrap: same draws, counted per unit
    assert (resamples.counts == np.stack([np.bincount(row, minlength=3) for row in picks])).all()
    # Every item of a drawn vehicle comes along, as often as the vehicle is drawn.
    totals = resamples.totals(np.ones(4), ["v1", "v1", "v2", "v3"])
    assert (totals == 2 * resamples.counts[:, 0] + resamples.counts[:, 1] + resamples.counts[:, 2]).all()
    with pytest.raises(ValueError):
        resamples.totals(np.ones(1), ["v9"])


def test_identical_queries_within_a_vehicle_count_as_one_vehicle_not_many():
    # 10 vehicles x 20 identical queries: 10 pieces of evidence, not 200.
    per_vehicle = [0.0, 1.0, 0.2, 0.9, 0.4, 0.6, 0.1, 0.8, 0.3, 0.7]
    values = [v for v in per_vehicle for _ in range(20)]
    units = [f"car{i}" for i in range(10) for _ in range(20)]
    by_vehicle = metrics.bootstrap_mean_ci(values, groups=units, seed=0)
    by_region = metrics.bootstrap_mean_ci(values, seed=0)
    assert by_vehicle.estimate == pytest.approx(by_region.estimate) == pytest.approx(np.mean(per_vehicle))
    assert (by_vehicle.high - by_vehicle.low) > 3 * (by_region.high - by_region.low)
    # ... and exactly the interval of the ten vehicle means resampled as items.
    of_means = metrics.bootstrap_mean_ci(per_vehicle, seed=0)
    assert (by_vehicle.low, by_vehicle.high) == pytest.approx((of_means.low, of_means.high))


def test_macro_f1_samples_equal_the_report_on_each_expanded_resample():
    truths = ["a", "a", "b", "c", "b", "a", "c", "c"]
    preds = ["a", "b", "b", "c", "none", "a", "a", "c"]
    units = ["v1", "v1", "v2", "v3", "v3", "v4", "v5", "v5"]
    labels = ["a", "b", "c"]
    resamples = UnitResamples.draw(units, n_resamples=30, seed=2)
    samples = resamples.macro_f1_samples(truths, preds, labels, units)
    for r in range(30):
        drawn = {u: int(c) for u, c in zip(resamples.units, resamples.counts[r], strict=True)}
        expanded = [(t, p) for t, p, u in zip(truths, preds, units, strict=True) for _ in range(drawn[u])]
        present = [label for label in labels if label in {t for t, _ in expanded}]
        report = metrics.classification_report([t for t, _ in expanded], [p for _, p in expanded], labels=present)
        assert samples[r] == pytest.approx(report["macro_f1"])


# ---------------------------------------------------------------------------- chance, lift, warnings


def test_summary_carries_interval_chance_and_lift():
    units = [f"v{i // 5}" for i in range(60)]
    row = _row([0.6 if i % 3 else 0.4 for i in range(60)], units, chance=0.2)
    summary = summarise(row, UnitResamples.draw(units, n_resamples=300, seed=0))
    for key in ("precision_at_k", "precision_at_k_ci", "chance_precision_at_k", "lift_precision_at_k",
                "lift_precision_at_k_ci", "precision_at_k_over_chance", "hit_at_k_ci", "map_ci",
                "knn_macro_f1", "knn_macro_f1_ci", "chance_knn_macro_f1", "queries", "vehicles"):
        assert key in summary
    assert summary["chance_precision_at_k"] == 0.2
    assert summary["lift_precision_at_k"] == pytest.approx(summary["precision_at_k"] - 0.2, abs=1e-4)
    low, high = summary["lift_precision_at_k_ci"]
    assert low > 0 and high < 1  # clearly above chance
    assert summary["queries"] == 60 and summary["vehicles"] == 12 and summary["warnings"] == []
    assert "above chance" in summary["against_chance"] and "P@5" in summary["against_chance"]


def test_a_row_at_chance_is_said_to_be_so():
    units = [f"v{i // 4}" for i in range(80)]
    rng = np.random.default_rng(0)
    row = _row([float(v) for v in rng.random(80) < 0.3], units, chance=0.3)
    row.chance_hit = row.hit[:]  # hit@k exactly at chance too
    row.y_pred = ["a"] * 80  # the vote answers the majority label, like the prior
    summary = summarise(row, UnitResamples.draw(units, n_resamples=500, seed=0))
    assert summary["lift_knn_macro_f1"] == 0.0
    assert "not distinguishable from chance" in summary["against_chance"]


def test_fewer_than_fifty_queries_warn():
    small = _row([0.5] * (MIN_QUERIES - 1), [f"v{i}" for i in range(MIN_QUERIES - 1)])
    summary = summarise(small, UnitResamples.draw(small.units, n_resamples=50))
    assert len(summary["warnings"]) == 1 and f"only {MIN_QUERIES - 1} queries" in summary["warnings"][0]
    enough = _row([0.5] * MIN_QUERIES, [f"v{i}" for i in range(MIN_QUERIES)])
    assert summarise(enough, UnitResamples.draw(enough.units, n_resamples=50))["warnings"] == []
    few_cars = _row([0.5] * 60, [f"v{i % 3}" for i in range(60)])
    (warning,) = summarise(few_cars, UnitResamples.draw(few_cars.units, n_resamples=50))["warnings"]
    assert "only 3 test vehicles" in warning


# ---------------------------------------------------------------------------- paired verdicts


def test_paired_difference_over_the_same_vehicles_is_narrower_than_either_interval():
    # Vehicles differ a lot; strategy a is 0.1 better on every vehicle (its queries differ in number).
    level = {f"v{i}": 0.1 + 0.08 * i for i in range(10)}
    units_a = [u for u in level for _ in range(3)]
    units_b = [u for u in level for _ in range(4)]
    a = _row([level[u] + 0.1 for u in units_a], units_a, strategy="margin=1.0")
    b = _row([level[u] for u in units_b], units_b, strategy="default")
    pair = compare_rows(a, b, name_a="margin=1.0", name_b="default", n_resamples=500)
    diff = pair["metrics"]["precision_at_k"]
    assert diff["diff"] == pytest.approx(0.1) and diff["ci_low"] == pytest.approx(0.1) and diff["significant"]
    alone = metrics.bootstrap_mean_ci(a.precision, groups=a.units, n_resamples=500)
    assert alone.high - alone.low > 0.2  # unpaired, the vehicle spread would hide the difference
    assert pair["verdict"].startswith("margin=1.0 beats default by +0.100 P@5 [+0.100, +0.100]")
    assert pair["vehicles"] == 10 and (pair["queries_a"], pair["queries_b"]) == (30, 40)


def test_verdict_lines():
    def interval(est, low, high):
        return metrics.Interval(est, low, high)

    none = interval(0.0, 0.0, 0.0)
    up = {"precision_at_k": interval(0.08, 0.03, 0.13), "hit_at_k": none, "map": interval(0.05, 0.01, 0.09),
          "knn_macro_f1": interval(-0.1, -0.2, -0.01)}
    assert verdict("default", "tile", up, 5) == ("default beats tile by +0.080 P@5 [+0.030, +0.130]; "
                                                 "also mAP +0.050 [+0.010, +0.090]; "
                                                 "but kNN macro-F1 -0.100 [-0.200, -0.010]")
    down = {m: interval(-v.estimate, -v.high, -v.low) for m, v in up.items()}
    assert verdict("tile", "default", down, 5).startswith("default beats tile by +0.080 P@5 [+0.030, +0.130]")
    unclear = {m: interval(0.01, -0.03, 0.05) for m in up}
    assert verdict("a", "b", unclear, 5) == "a vs b: no clear difference in P@5 (+0.010 [-0.030, +0.050])"


def test_strategies_are_paired_within_one_embedder_and_kind_only():
    units = [f"v{i}" for i in range(12)]
    rows = [_row([0.3] * 12, units, strategy="default"), _row([0.6] * 12, units, strategy="margin=1.0"),
            _row([0.5] * 12, units, strategy="image", kind="image"),
            _row([0.4] * 12, units, strategy="default", embedder="other")]
    (pair,) = strategy_comparisons(rows, n_resamples=100)
    assert (pair["a"], pair["b"], pair["kind"], pair["embedder"]) == ("margin=1.0", "default", "region", "e")
    assert pair["verdict"].startswith("region rows, e: margin=1.0 beats default by +0.300 P@5")


# ---------------------------------------------------------------------------- plot


def test_metrics_plot_has_one_panel_per_kind_with_intervals_and_chance():
    rows = []
    for strategy, kind, n in (("default", "region", 40), ("margin=1.0", "region", 42), ("image", "image", 17),
                              ("tile", "tile", 90)):
        row = {"strategy": strategy, "kind": kind, "embedder": "tiny", "queries": n}
        for key in ("precision_at_k", "hit_at_k", "map", "knn_macro_f1"):
            row.update({key: 0.5, f"{key}_ci": [0.4, 0.6], f"chance_{key}": 0.3})
        rows.append(row)
    figure = metrics_figure(rows, k=5)
    assert len(figure.axes) == 3
    titles = [axes.get_title() for axes in figure.axes]
    assert titles[0].startswith("region rows (n = 40–42 queries)")
    assert titles[1].startswith("image rows (n = 17 queries)") and titles[2].startswith("tile rows (n = 90")
    for axes in figure.axes:
        bars = [c for c in axes.containers if hasattr(c, "errorbar")]
        assert bars and all(c.errorbar is not None for c in bars)  # intervals drawn
        assert axes.collections  # the chance lines

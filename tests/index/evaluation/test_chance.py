"""Chance levels: closed forms against exhaustive enumeration, simulation and hand-computed cases.

No embedder here: the rankings are constructed (a tiny random model's vectors mean nothing).
"""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from index.evaluation import metrics
from index.evaluation.chance import (
    chance_average_precision,
    chance_hit_at_k,
    chance_precision_at_k,
    majority_label,
)
from index.evaluation.intervals import RowScores


def _every_ranking(n_relevant: int, n_nodes: int) -> list[list[bool]]:
    """Every random ranking of the index, each distinct arrangement once (all equally likely)."""
    nodes = [True] * n_relevant + [False] * (n_nodes - n_relevant)
    return [list(p) for p in sorted(set(itertools.permutations(nodes)))]


def test_hand_computed_small_index():
    # 4 nodes, 2 relevant, k = 2: six equally likely arrangements.
    assert chance_precision_at_k(2, 4, 2) == pytest.approx(0.5)
    assert chance_hit_at_k(2, 4, 2) == pytest.approx(5 / 6)  # only FF.. misses: 1 of C(4,2) = 6
    # AP over the whole index, the six arrangements by hand:
    # TTFF 1, TFTF 5/6, TFFT 3/4, FTTF 7/12, FTFT 1/2, FFTT 5/12 -> mean 49/72.
    assert chance_average_precision(2, 4) == pytest.approx(49 / 72)
    assert chance_precision_at_k(1, 3, 5) == pytest.approx(1 / 5)  # index shorter than k: misses
    assert chance_hit_at_k(1, 3, 5) == 1.0
    assert chance_hit_at_k(0, 10, 5) == chance_precision_at_k(0, 10, 5) == chance_average_precision(0, 10) == 0.0
    assert chance_precision_at_k(0, 0, 5) == chance_average_precision(0, 0) == 0.0
    assert chance_average_precision(1, 1) == 1.0
    with pytest.raises(ValueError):
        chance_precision_at_k(3, 2, 1)
    with pytest.raises(ValueError):
        chance_hit_at_k(1, 2, 0)


@pytest.mark.parametrize("n_nodes", [1, 2, 5, 7])
def test_closed_forms_equal_the_mean_over_every_ranking(n_nodes):
    for n_relevant in range(n_nodes + 1):
        rankings = _every_ranking(n_relevant, n_nodes)
        for k in (1, 2, 3, 9):
            assert chance_precision_at_k(n_relevant, n_nodes, k) == pytest.approx(
                np.mean([metrics.precision_at_k(r, k) for r in rankings]))
            assert chance_hit_at_k(n_relevant, n_nodes, k) == pytest.approx(
                np.mean([metrics.hit_at_k(r, k) for r in rankings]))
        for depth in (1, 2, 4, None):
            cut = n_nodes if depth is None else min(depth, n_nodes)
            norm = min(n_relevant, cut)  # the normalisation rows.py uses: min(R, D)
            exact = np.mean([metrics.average_precision(r[:cut], norm) for r in rankings])
            assert chance_average_precision(n_relevant, n_nodes, depth) == pytest.approx(exact)


def test_closed_forms_match_a_simulation_of_random_neighbours_on_labelled_nodes():
    """Multi-label nodes drawn at random for multi-label queries: overlap relevance, as rows.py ranks."""
    rng = random.Random(11)
    nodes = [frozenset(rng.sample("abcd", rng.choice([0, 1, 1, 1, 2]))) for _ in range(60)]
    queries = [frozenset("a"), frozenset("bc"), frozenset("d"), frozenset("ab")]
    k, depth, trials = 5, 20, 4000
    for wanted in queries:
        relevant = sum(1 for labels in nodes if labels & wanted)
        p, hit, ap = [], [], []
        for _ in range(trials):
            ranking = [bool(labels & wanted) for labels in rng.sample(nodes, len(nodes))][:depth]
            p.append(metrics.precision_at_k(ranking, k))
            hit.append(metrics.hit_at_k(ranking, k))
            ap.append(metrics.average_precision(ranking, min(relevant, depth)))
        for simulated, closed in ((p, chance_precision_at_k(relevant, len(nodes), k)),
                                  (hit, chance_hit_at_k(relevant, len(nodes), k)),
                                  (ap, chance_average_precision(relevant, len(nodes), depth))):
            standard_error = np.std(simulated) / np.sqrt(trials)
            assert abs(np.mean(simulated) - closed) < 4 * standard_error + 1e-9


def test_majority_label_counts_labelled_nodes_and_breaks_ties_by_taxonomy():
    nodes = [{"dent"}, {"scratch"}, {"scratch", "dent"}, set(), set(), set(), {"crack"}]
    assert majority_label(nodes) == "dent"  # dent 2, scratch 2: alphabetical without an order
    assert majority_label(nodes, order=["scratch", "dent"]) == "scratch"
    assert majority_label([set(), set()]) is None  # unlabelled nodes never win: "none" is no label
    assert majority_label([["a", "a", "a"], ["b"], ["b"]]) == "b"  # a node counts once per label it holds


def test_label_prior_vote_macro_f1_by_hand():
    """Always answering the train majority 'a' on test truths a, a, b, c: F1(a) = 2*2/(2+4), others 0."""
    truths = ["a", "a", "b", "c"]
    scores = RowScores(strategy="s", embedder="e", kind="region", k=5, units=["v1", "v1", "v2", "v3"],
                       precision=[0.0] * 4, hit=[0.0] * 4, ap=[0.0] * 4, chance_precision=[0.0] * 4,
                       chance_hit=[0.0] * 4, chance_ap=[0.0] * 4, y_true=truths, y_pred=truths,
                       chance_true=truths, chance_pred=["a"] * 4, labels=["a", "b", "c"],
                       chance_labels=["a", "b", "c"])
    knn, prior = scores.estimates()["knn_macro_f1"]
    assert knn == 1.0
    assert prior == pytest.approx((2 / 3) / 3)

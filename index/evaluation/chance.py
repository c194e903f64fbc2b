"""Chance levels: what each retrieval metric scores when the index is ranked at random.

A metric means little without the score a ranking that knows nothing would get: with one label
on 70 % of the train nodes, a P@5 of 0.7 is no signal at all. For one query with ``R`` relevant
nodes (nodes sharing a label with it) among the ``N`` nodes of the train index, a random
ranking is a uniformly random permutation of the index (neighbours drawn without replacement,
so in proportion to the train side's label frequencies), and the expected scores have closed
forms:

* P@k: ``min(k, N) / k * R / N`` (ranks past the index are misses, as in
  :func:`~index.evaluation.metrics.precision_at_k`);
* hit@k: ``1 - C(N - R, k') / C(N, k')`` with ``k' = min(k, N)`` (hypergeometric: no relevant
  node among the first ``k'``);
* AP@D normalised by ``min(R, D)`` (as in :mod:`index.evaluation.rows`): rank ``i`` is relevant
  with probability ``R / N`` and, given that, holds in expectation ``1 + (i - 1)(R - 1)/(N - 1)``
  relevant items among the first ``i``, so ``E[AP@D] = R / (N min(R, D)) * sum_{i <= min(D, N)}
  (1 + (i - 1)(R - 1)/(N - 1)) / i``.

The chance of the k-NN vote is the **label-prior vote**: always answering the train side's
majority label (:func:`majority_label`); its macro F1 is computed on the test queries like the
vote's. A row's chance level is the mean over its queries of their chance scores, so it follows
the test side's label mix too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

__all__ = [
    "chance_average_precision",
    "chance_hit_at_k",
    "chance_precision_at_k",
    "majority_label",
]


def _check(n_relevant: int, n_nodes: int) -> None:
    if n_nodes < 0 or not 0 <= n_relevant <= n_nodes:
        raise ValueError(f"need 0 <= n_relevant <= n_nodes, got {n_relevant} and {n_nodes}")


def chance_precision_at_k(n_relevant: int, n_nodes: int, k: int) -> float:
    """Expected precision@k of a random ranking of ``n_nodes`` nodes, ``n_relevant`` of them relevant."""
    if k <= 0:
        raise ValueError("k must be positive")
    _check(n_relevant, n_nodes)
    if n_nodes == 0:
        return 0.0
    return min(k, n_nodes) / k * n_relevant / n_nodes


def chance_hit_at_k(n_relevant: int, n_nodes: int, k: int) -> float:
    """Probability that a random ranking has a relevant node among its first ``k``."""
    if k <= 0:
        raise ValueError("k must be positive")
    _check(n_relevant, n_nodes)
    if n_relevant == 0:
        return 0.0
    miss = 1.0  # C(N - R, k') / C(N, k') as a product, exact for any size
    for i in range(min(k, n_nodes)):
        miss *= max(n_nodes - n_relevant - i, 0) / (n_nodes - i)
    return 1.0 - miss


def chance_average_precision(n_relevant: int, n_nodes: int, depth: int | None = None) -> float:
    """Expected AP@``depth`` (normalised by ``min(R, depth)``) of a random ranking.

    Args:
        n_relevant: ``R``, the relevant nodes in the index.
        n_nodes: ``N``, the nodes in the index.
        depth: ``D``, where the ranking is cut (None or 0: the whole index).

    Returns:
        The expectation; 0.0 when nothing is relevant.
    """
    _check(n_relevant, n_nodes)
    depth = n_nodes if not depth or depth > n_nodes else depth
    if n_relevant == 0 or depth == 0:
        return 0.0
    share = (n_relevant - 1) / (n_nodes - 1) if n_nodes > 1 else 0.0
    total = sum((1 + (i - 1) * share) / i for i in range(1, depth + 1))
    return n_relevant / n_nodes * total / min(n_relevant, depth)


def majority_label(node_labels: Iterable[Iterable[str]], order: Sequence[str] = ()) -> str | None:
    """The label held by the most nodes (each node counts once per label it holds).

    Unlabelled nodes are left out: the label-prior vote answers a damage label, never "none"
    (a stronger baseline than answering "none" on an index of mostly undamaged tiles). Ties go
    to the label first in ``order`` (the taxonomy), then alphabetically. None for no labels.
    """
    counts = Counter(label for labels in node_labels for label in set(labels))
    if not counts:
        return None
    rank = {label: i for i, label in enumerate(order)}
    return min(counts, key=lambda label: (-counts[label], rank.get(label, len(rank)), label))

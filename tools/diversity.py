"""Choosing k representative yet diverse examples of one label, deterministically.

The first pick is the most typical example (closest to the label's mean vector). Each next
pick prefers, in this order: another vehicle, another photo, another zone, another size band
(small / medium / large tercile of area), then the largest embedding distance to the examples
already picked (max-min diversity). Ties go to the smaller node id.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Candidate:
    """What diversity is judged on for one node."""

    node_id: str
    image_id: str | None
    group: str | None
    zone: str | None
    area: float


def size_bands(areas: list[float], bands: int = 3) -> list[int]:
    """The size band (0 = smallest tercile) of each area, by rank; ties share the lower band."""
    n = len(areas)
    if n < bands:
        return [0] * n
    ordered = sorted(areas)
    first_rank = {}
    for rank, area in enumerate(ordered):
        first_rank.setdefault(area, rank)
    return [min(bands - 1, first_rank[area] * bands // n) for area in areas]


def _typicality(vectors: np.ndarray | None, areas: list[float]) -> np.ndarray:
    if vectors is not None and len(vectors):
        centroid = vectors.mean(axis=0)
        norm = float(np.linalg.norm(centroid))
        if norm > 0:
            return vectors @ (centroid / norm)
    # No vectors: the example of median size is the typical one.
    ranks = np.argsort(np.argsort(np.asarray(areas, dtype=np.float64), kind="stable"), kind="stable")
    return -np.abs(ranks - (len(areas) - 1) / 2)


def select_diverse(candidates: list[Candidate], vectors: np.ndarray | None, k: int) -> list[int]:
    """Indices of ``k`` candidates, the most typical first, then the most diverse.

    Args:
        candidates: The examples to choose from (any order; ties go to the smaller node id).
        vectors: Their L2-normalised embeddings, one row each, or None.
        k: How many to choose.

    Returns:
        Indices into ``candidates``, in pick order.
    """
    n = len(candidates)
    if n == 0 or k <= 0:
        return []
    order = sorted(range(n), key=lambda i: candidates[i].node_id)
    areas = [candidates[i].area for i in order]
    vecs = None if vectors is None else np.asarray(vectors, dtype=np.float32)[order]
    bands = size_bands(areas)
    typical = _typicality(vecs, areas)
    first = int(np.argmax(typical))  # first maximum: smallest node id among ties
    picked = [first]
    nearest = None if vecs is None else vecs @ vecs[first]  # highest similarity to a picked one
    seen_groups = {candidates[order[first]].group}
    seen_images = {candidates[order[first]].image_id}
    seen_zones = {candidates[order[first]].zone}
    seen_bands = {bands[first]}
    while len(picked) < min(k, n):
        best, best_key = -1, None
        for j in range(n):
            if j in picked:
                continue
            c = candidates[order[j]]
            distance = 0.0 if nearest is None else 1.0 - float(nearest[j])
            key = (
                c.group not in seen_groups,
                c.image_id not in seen_images,
                c.zone not in seen_zones,
                bands[j] not in seen_bands,
                round(distance, 6),
                float(typical[j]),
            )
            if best_key is None or key > best_key:
                best, best_key = j, key
        picked.append(best)
        c = candidates[order[best]]
        seen_groups.add(c.group)
        seen_images.add(c.image_id)
        seen_zones.add(c.zone)
        seen_bands.add(bands[best])
        if nearest is not None and vecs is not None:
            nearest = np.maximum(nearest, vecs @ vecs[best])
    return [order[j] for j in picked]

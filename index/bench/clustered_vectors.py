"""Clustered synthetic embeddings for the ANN benchmark, generated in chunks from a seed.

Uniform (isotropic Gaussian) vectors in 768-d are the worst case for approximate search: every
point is nearly equidistant from every other, so a graph index must visit most of the data to
find the true top-10. Real image embeddings are nothing like that: they fall into clusters
(similar photos, similar parts) and their variance sits in a few dozen directions.
:class:`ClusteredVectors` imitates that shape:

- ``clusters`` centres, each drawn from ``N(0, diag(s**2))`` with a power-law spectrum
  ``s_i**2 = i**-decay`` (``decay`` 1.0: about 30 effective dimensions out of 768);
- each point = a centre chosen uniformly at random + ``spread`` x ``N(0, diag(s**2))`` (the same
  spectrum inside a cluster), then L2-normalised;
- queries are held-out points from the same distribution (another random stream), never in the
  index.

The spectrum is axis-aligned; a random rotation would change no distance or inner product, so
it is left out. ``isotropic`` (:func:`isotropic_chunk`) is the uniform-on-the-sphere contrast.
Chunk ``i`` always comes out the same for a seed, so an index can be filled twice (flat, then
HNSW) without keeping the data in memory.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Distribution = Literal["clustered", "isotropic"]


class ClusteredVectors:
    """A seeded mixture of Gaussians with a power-law spectrum, read in reproducible chunks."""

    def __init__(self, dim: int, clusters: int = 1000, spread: float = 0.5, decay: float = 1.0,
                 seed: int = 0, distribution: Distribution = "clustered") -> None:
        if dim < 1 or clusters < 1 or spread <= 0 or decay < 0:
            raise ValueError("dim and clusters must be >= 1, spread > 0 and decay >= 0")
        self.dim, self.clusters, self.spread, self.decay = dim, clusters, spread, decay
        self.seed, self.distribution = seed, distribution
        self.scale = (np.arange(1, dim + 1, dtype=np.float64) ** (-decay / 2)).astype(np.float32)
        rng = np.random.default_rng([seed, 0])
        self.centres = rng.standard_normal((clusters, dim), dtype=np.float32) * self.scale

    @property
    def effective_dim(self) -> float:
        """Participation ratio of the spectrum, ``(sum s**2)**2 / sum s**4``."""
        var = self.scale.astype(np.float64) ** 2
        return float(var.sum() ** 2 / (var**2).sum())

    def describe(self) -> str:
        """One line saying what the vectors are, for the benchmark's output."""
        if self.distribution == "isotropic":
            return (f"isotropic synthetic: uniform on the {self.dim}-d sphere (the ANN worst case, "
                    "unlike real embeddings)")
        return (f"clustered synthetic: {self.clusters:,} Gaussian clusters, power-law spectrum i^-{self.decay:g} "
                f"(~{self.effective_dim:.0f} effective dims), spread {self.spread:g}, L2-normalised; "
                "queries held out from the same distribution")

    def _draw(self, rng: np.random.Generator, rows: int) -> np.ndarray:
        if self.distribution == "isotropic":
            x = rng.standard_normal((rows, self.dim), dtype=np.float32)
        else:
            labels = rng.integers(0, self.clusters, size=rows)
            x = rng.standard_normal((rows, self.dim), dtype=np.float32)
            x *= self.spread * self.scale
            x += self.centres[labels]
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return x

    def chunk(self, index: int, rows: int) -> np.ndarray:
        """Chunk ``index`` of the data set: ``rows`` unit vectors, float32, the same every call."""
        return self._draw(np.random.default_rng([self.seed, 1, index]), rows)

    def queries(self, rows: int) -> np.ndarray:
        """``rows`` held-out query vectors from the same distribution (not in any chunk)."""
        return self._draw(np.random.default_rng([self.seed, 2]), rows)


def chunk_bounds(n: int, chunk: int) -> list[tuple[int, int, int]]:
    """``(chunk index, start, stop)`` for ``n`` rows in chunks of ``chunk``."""
    return [(i, start, min(start + chunk, n)) for i, start in enumerate(range(0, n, chunk))]


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Mean over queries of ``|found top-k & true top-k| / k``.

    Args:
        found: (queries, >= k) ids returned by the index under test; -1 (FAISS padding) never
            counts as a hit.
        truth: (queries, >= k) exact top-k ids, best first.
        k: how many of each row count.

    Returns:
        Recall@k in [0, 1].
    """
    found, truth = np.asarray(found)[:, :k], np.asarray(truth)[:, :k]
    if found.shape[0] != truth.shape[0]:
        raise ValueError(f"{found.shape[0]} result rows for {truth.shape[0]} queries")
    if found.shape[0] == 0:
        raise ValueError("recall of zero queries is undefined")
    hits = sum(len(set(f[f >= 0].tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True))
    return hits / (k * found.shape[0])
